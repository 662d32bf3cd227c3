//! What `explain` prints: the reports of [`shared::netpol::matrix`] as text (the JSON and YAML
//! forms serialize them as they are).

use std::fmt::Write as _;

use shared::cli::Table;
use shared::netpol::matrix::{Matrix, PathReport, Verdict};
use shared::netpol::{Decision, Reason};

/// The text form of reports: the verdict line, then each hop with the deciding policy and rule,
/// and the rules that nearly matched.
pub(crate) fn render_text(reports: &[PathReport]) -> String {
    let mut s = String::new();
    for r in reports {
        let _ = writeln!(
            s,
            "{} -> {}/{}: {}",
            r.pod,
            r.destination,
            r.protocol,
            r.verdict.as_str().to_uppercase()
        );
        for h in &r.hops {
            let _ = writeln!(
                s,
                "  {}: {}",
                h.hop.description,
                if h.allowed { "allowed" } else { "denied" }
            );
            let mut decision = |label: &str, d: &Decision| {
                let _ = writeln!(s, "    {label}: {d}");
                if let Reason::NoRuleAllows { near_misses, .. } = &d.reason {
                    for m in near_misses {
                        let _ = writeln!(s, "      {m}");
                    }
                }
            };
            decision("egress", &h.egress);
            if let Some(i) = &h.ingress {
                decision("ingress at destination", i);
            }
        }
    }
    s
}

/// The matrix as a table, then one legend line per column.
pub(crate) fn render_matrix(m: &Matrix) -> String {
    let mut table = Table::new(
        std::iter::once("POD".to_string()).chain(m.columns.iter().map(|c| c.name.clone())),
    );
    for r in &m.rows {
        table.row(
            std::iter::once(r.pod.clone()).chain(
                r.cells
                    .iter()
                    .map(|c| c.map_or("-", Verdict::as_str).to_string()),
            ),
        );
    }
    let mut s = table.to_string();
    s.push('\n');
    for c in &m.columns {
        let _ = writeln!(s, "{}: {}/{}", c.name, c.destination, c.protocol);
    }
    s
}
