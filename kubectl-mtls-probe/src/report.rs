//! The result every probe reports: a list of named checks, each passed, failed or skipped with a
//! one-line detail, rendered as a table (default) or JSON. Any failed check makes the command exit 1.

use serde::Serialize;

use shared::cli::Table;
use shared::error::Error;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// It holds.
    Passed,
    /// It does not hold: the detail says what is wrong and what to do.
    Failed,
    /// It could not be run (an earlier check failed, or it does not apply).
    Skipped,
}

impl Status {
    /// The word shown in the table.
    pub fn label(self) -> &'static str {
        match self {
            Status::Passed => "ok",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        }
    }
}

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short stable name, e.g. `server-trust`.
    pub name: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found, or what is wrong and the fix.
    pub detail: String,
}

impl Check {
    /// A passed check.
    pub fn passed(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Passed, detail)
    }
    /// A failed check.
    pub fn failed(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Failed, detail)
    }
    /// A check that was not run.
    pub fn skipped(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Skipped, detail)
    }
    fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Self {
        Self {
            name,
            status,
            detail: detail.into(),
        }
    }
}

/// The checks as a `CHECK RESULT DETAIL` table.
pub fn table(checks: &[Check]) -> Table {
    let mut t = Table::new(["CHECK", "RESULT", "DETAIL"]);
    for c in checks {
        t.row([c.name, c.status.label(), c.detail.as_str()]);
    }
    t
}

/// The names of the failed checks, in order.
pub fn failed_names(checks: &[Check]) -> Vec<&'static str> {
    checks
        .iter()
        .filter(|c| c.status == Status::Failed)
        .map(|c| c.name)
        .collect()
}

/// `Ok` when no check failed; otherwise [`Error::CheckFailed`] naming the failed checks.
pub fn outcome(subject: &str, checks: &[Check]) -> Result<(), Error> {
    let failed = failed_names(checks);
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::CheckFailed(format!(
        "{subject}: {} of {} checks failed ({}); see the DETAIL column for the fix",
        failed.len(),
        checks.len(),
        failed.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_failed_checks() {
        let checks = [
            Check::passed("a", "fine"),
            Check::failed("b", "broken"),
            Check::skipped("c", "not run"),
        ];
        let err = outcome("x.example.com", &checks).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(
            err.to_string(),
            "x.example.com: 1 of 3 checks failed (b); see the DETAIL column for the fix"
        );
        assert!(outcome("x", &checks[..1]).is_ok());
        assert!(outcome("x", &[checks[2].clone()]).is_ok());
        assert_eq!(
            table(&checks).to_string(),
            "CHECK   RESULT    DETAIL\na       ok        fine\nb       FAILED    broken\nc       skipped   not run\n"
        );
    }
}
