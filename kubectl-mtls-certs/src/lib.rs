//! `kubectl mtls-certs`: stage 1 (the PKI) and the credential Secrets of stages 2 and 3.
//!
//! Each subcommand has its own module: `generate` (`gen`) writes a CA + server + client bundle,
//! `issue` signs more leaves, `inspect` describes certificates in files, directories and
//! Secrets (`managed`: `inspect --managed`, every credential Secret we manage, with expiry),
//! `verify` runs a TLS peer's checks, `secret` turns a bundle into the Secret each gateway
//! reads, `renew` re-issues the leaves and `rotate` (`rotate-ca`) replaces the CA in three
//! phases (`rotate_all`: `--phase all`, with `traffic` checks between them); `lifecycle` holds
//! what those two share.

mod generate;
mod inspect;
mod issue;
mod lifecycle;
mod managed;
mod renew;
mod rotate;
mod rotate_all;
mod secret;
mod traffic;
mod verify;

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

use shared::cli::{CompletionArgs, GlobalArgs, Plugin, VersionArgs};
use shared::error::Error;

/// The executable's file name; kubectl runs it for `kubectl mtls-certs`.
pub const BIN_NAME: &str = "kubectl-mtls_certs";

/// `kubectl mtls-certs` — certificates for mutual TLS between two Istio clusters.
#[derive(Parser, Debug)]
#[command(
    name = BIN_NAME,
    bin_name = "kubectl mtls-certs",
    // Like kubectl's help, never wrapped: examples stay whole lines to copy and paste.
    term_width = 0,
    version,
    about = "Certificates for mutual TLS through an Istio egress gateway: generate, issue, inspect, verify, and turn them into the Secrets Istio reads",
    after_help = "Examples:
  # Stage 1: a CA, a server certificate for the target host and a client certificate
  kubectl mtls-certs gen --domain httpbin.example.com --client client.example.com --out ./mtls

  # Stage 2 and 3: the credential Secrets, one per cluster (preview first)
  kubectl mtls-certs secret target --dir ./mtls --context target --dry-run=client
  kubectl mtls-certs secret client --dir ./mtls --context client

  # What is in a file, a directory, or a Secret on the cluster
  kubectl mtls-certs inspect ./mtls
  kubectl mtls-certs inspect secret/client-credential -n istio-system

  # Every credential Secret we manage, with days left and the CAs each trusts
  kubectl mtls-certs inspect --managed -A

  # Before they expire: renew the leaves (and the Secret on the target), or replace the CA
  kubectl mtls-certs renew --dir ./mtls --server --context target
  kubectl mtls-certs rotate-ca --phase 1 --dir ./mtls --target-context target --client-context client"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    Gen(generate::GenArgs),
    Issue(issue::IssueArgs),
    Inspect(inspect::InspectArgs),
    Verify(verify::VerifyArgs),
    Secret(secret::SecretArgs),
    Renew(renew::RenewArgs),
    RotateCa(rotate::RotateArgs),
    Version(VersionArgs),
    #[command(
        after_help = "Example:\n  kubectl mtls-certs completion bash > /etc/bash_completion.d/kubectl-mtls_certs"
    )]
    Completion(CompletionArgs),
}

impl Plugin for Cli {
    fn global(&self) -> &GlobalArgs {
        &self.global
    }

    async fn run(self, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
        match self.command {
            Command::Gen(args) => generate::run(&args, out),
            Command::Issue(args) => issue::run(&args, out),
            Command::Inspect(args) => inspect::run(&args, &self.global, out, err).await,
            Command::Verify(args) => verify::run(&args, out),
            Command::Secret(args) => secret::run(&args, &self.global, out).await,
            Command::Renew(args) => renew::run(&args, &self.global, out).await,
            Command::RotateCa(args) => rotate::run(&args, &self.global, out, err).await,
            Command::Version(args) => args.run(out),
            Command::Completion(args) => args.run(Cli::command(), BIN_NAME, out),
        }
    }
}

/// Today, as every command sees it.
pub(crate) fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
