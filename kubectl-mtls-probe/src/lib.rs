//! `kubectl mtls-probe`: stage 4, proof that the mTLS path works end to end (`direct`, `check`)
//! and diagnosis when it does not ([`doctor`]).
//!
//! Modules: [`check`] (the `check` command: from a pod in the client cluster), [`direct`] (the
//! `direct` command: workstation → target), [`report`] (checks and
//! their rendering), `http` (the minimal HTTP/1.1 client), and the pure parsers the
//! cluster-side probes read with: [`xfcc`] (the `X-Forwarded-Client-Cert` header) and
//! [`access_log`] (Envoy's JSON access-log lines).

pub mod access_log;
pub mod check;
pub mod direct;
pub mod doctor;
mod http;
pub mod report;
pub mod xfcc;

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

use shared::cli::{CompletionArgs, GlobalArgs, Plugin, VersionArgs};
use shared::error::Error;

/// The executable's file name; kubectl runs it for `kubectl mtls-probe`.
pub const BIN_NAME: &str = "kubectl-mtls_probe";

/// `kubectl mtls-probe` — prove the mTLS path works, and diagnose it when it does not.
#[derive(Parser, Debug)]
#[command(
    name = BIN_NAME,
    bin_name = "kubectl mtls-probe",
    // Like kubectl's help, never wrapped: examples stay whole lines to copy and paste.
    term_width = 0,
    version,
    about = "Prove the mTLS path through the egress gateway works end to end, and diagnose it when it does not",
    after_help = "Examples:
  # Workstation -> target: refused without a client certificate, 200 with ours, chain and SAN verified
  kubectl mtls-probe direct --host httpbin.example.com --cert ./mtls/client.crt --key ./mtls/client.key --ca ./mtls/ca.crt

  # Client cluster: a request through the egress gateway, XFCC carries our client certificate, the
  # gateway logged outbound|443||host, and (with a lockdown) nothing else leaves the namespace
  kubectl mtls-probe check --host httpbin.example.com -n apps --client-cert ./mtls/client.crt

  # Static diagnosis of both clusters, or of a GitOps folder (one finding per problem, with the fix)
  kubectl mtls-probe doctor --context client --target-context target
  kubectl mtls-probe doctor -f ./gitops"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    Check(check::CheckArgs),
    Direct(direct::DirectArgs),
    Doctor(crate::doctor::command::DoctorArgs),
    Version(VersionArgs),
    Completion(CompletionArgs),
}

impl Plugin for Cli {
    fn global(&self) -> &GlobalArgs {
        &self.global
    }

    async fn run(self, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
        match self.command {
            Command::Check(args) => check::run(&args, &self.global, out, err).await,
            Command::Direct(args) => direct::run(&args, out).await,
            Command::Doctor(args) => doctor::command::run(&args, &self.global, out, err).await,
            Command::Version(args) => args.run(out),
            Command::Completion(args) => args.run(Cli::command(), BIN_NAME, out),
        }
    }
}
