//! `kubectl mtls-probe`: stage 4, proof that the mTLS path works end to end (`direct`, `check`)
//! and diagnosis when it does not (`doctor`). Today it offers shell completion; the probes are
//! being built.

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

use crate::cli::{GlobalArgs, Plugin, Shell, write_completion};
use crate::error::Error;

/// The executable's file name; kubectl runs it for `kubectl mtls-probe`.
pub const BIN_NAME: &str = "kubectl-mtls_probe";

/// `kubectl mtls-probe` — prove the mTLS path works, and diagnose it when it does not.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-mtls_probe",
    bin_name = "kubectl mtls-probe",
    version,
    about = "Prove the mTLS path through the egress gateway works end to end, and diagnose it when it does not",
    after_help = "Planned commands (not available yet):
  direct    workstation -> target: refused without a client certificate, 200 with ours, verified chain
  check     client cluster: request through the egress gateway, XFCC matches our client certificate
  doctor    static diagnosis of both clusters, one finding per problem with its fix"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a shell completion script (bash, zsh or fish)
    Completion {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
}

impl Plugin for Cli {
    fn global(&self) -> &GlobalArgs {
        &self.global
    }

    async fn run(self, out: &mut dyn Write) -> Result<(), Error> {
        match self.command {
            Command::Completion { shell } => write_completion(shell, Cli::command(), BIN_NAME, out),
        }
    }
}
