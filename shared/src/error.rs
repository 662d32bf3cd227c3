//! The one error type commands return, and how it maps to kubectl-style exit codes.
//!
//! Exit codes: 0 success, 1 a check failed, 2 bad input or usage, 3 cluster/API error;
//! 130 when the user interrupted a command with Ctrl-C.
//! Every variant's `Display` is one line: the cause, then a hint the user can act on.
//! [`one_line`] makes any text (a server message, a tool's output) fit such a line.

use crate::cluster::ClusterError;
use crate::manifest::ManifestError;
use crate::names::NameError;
use crate::pki::PkiError;
use crate::plan::PlanError;

/// A command failed; `Display` is the single line shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed host name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A manifest could not be built from the inputs (e.g. a bad object name).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An object could not be put into a plan (a builder bug, not user input).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Certificates, keys or files were unusable.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The cluster could not be reached or refused the request.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Flags that parse but do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// The cluster is not in a state the command can work with (e.g. no egress gateway, several
    /// Istio CRs, a foreign DestinationRule in the way); the message says what to do.
    #[error("{0}")]
    State(String),
    /// The command ran, and what it checked did not hold (e.g. `verify`).
    #[error("{0}")]
    CheckFailed(String),
    /// The user pressed Ctrl-C; what the command created was removed before exiting.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// Writing the command's own output failed (a closed pipe is not reported).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<crate::gateway::GatewayError> for Error {
    fn from(e: crate::gateway::GatewayError) -> Self {
        Error::State(e.to_string())
    }
}

impl From<crate::manifest::egress::EgressPlanError> for Error {
    fn from(e: crate::manifest::egress::EgressPlanError) -> Self {
        match e {
            crate::manifest::egress::EgressPlanError::Manifest(e) => Error::Manifest(e),
            crate::manifest::egress::EgressPlanError::Plan(e) => Error::Plan(e),
        }
    }
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::CheckFailed(_) => 1,
            Error::Name(_)
            | Error::Manifest(_)
            | Error::Plan(_)
            | Error::Pki(_)
            | Error::Usage(_)
            | Error::Output(_) => 2,
            Error::State(_) => 3,
            // 128 + SIGINT, as shells report a process stopped by Ctrl-C.
            Error::Interrupted(_) => 130,
            Error::Cluster(e) => e.exit_code(),
        }
    }
}

/// Flattens whitespace (newlines included) to single spaces and cuts the text at `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max).collect();
        cut.push('…');
        cut
    }
}
