//! What every plugin's command line shares: global flags, `-o` and one renderer for it
//! ([`write_output`]), `--dry-run`, the run loop that maps errors to exit codes and prints the
//! one error line ([`report`]), the `completion` subcommand, and plain-text tables.
//!
//! A plugin is a [`clap::Parser`] that implements [`Plugin`]; its `main` is one call to [`main`].
//! stdout carries data (tables, YAML, JSON); stderr carries talk (errors, progress, warnings):
//! a command writes both through the writers it is given, never to the process's streams.

mod apply;
mod files;
mod table;

use std::future::Future;
use std::io::{self, Write};
use std::process::ExitCode;

pub use apply::{apply_and_print, print_plan};
pub use files::{Source, read_manifests};
pub use table::Table;

use crate::cluster::KubeArgs;
use crate::error::Error;

/// Flags every plugin accepts: kubectl's connection flags and `-v`.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Log verbosity on stderr: -v requests, -vv details, -vvv everything.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Connection flags, as kubectl has them (plugins get none of kubectl's own).
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `-o/--output` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Table,
    /// YAML (a multi-document stream for manifests).
    Yaml,
    /// JSON (a `List` for manifests).
    Json,
}

/// `--dry-run` modes, as kubectl spells them; a bare `--dry-run` means `client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DryRun {
    /// Apply for real.
    #[default]
    None,
    /// Print what would be applied; contact no cluster.
    Client,
    /// Send to the API server with `dryRun=All`: validated and admitted, never stored.
    Server,
}

/// The `--dry-run`, `-o` and `--force-conflicts` flags of a command that applies a plan.
#[derive(clap::Args, Debug, Clone)]
pub struct ApplyArgs {
    /// Only print (client) or only validate on the server (server); nothing is changed.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true,
          default_value_t = DryRun::None, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Output format: yaml (default with --dry-run=client) or json prints the objects, table the result lines.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    /// Take over fields another field manager owns (server-side apply --force-conflicts).
    #[arg(long)]
    pub force_conflicts: bool,
}

/// A plugin's parsed command line, ready to run.
pub trait Plugin: clap::Parser {
    /// Its global flags.
    fn global(&self) -> &GlobalArgs;
    /// Runs the command, writing data to `out` and progress, warnings and notes to `err`.
    fn run(
        self,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> impl Future<Output = Result<(), Error>>;
}

/// The whole `main` of a plugin: parse flags (clap exits 2 on usage errors), set up logging and
/// the single crypto provider, run, and turn the outcome into an exit code and one error line.
pub fn main<P: Plugin>() -> ExitCode {
    let cli = P::parse();
    init_logging(cli.global().verbose);
    // One provider for the whole process (ring); kube's TLS client builds on it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let verbose = cli.global().verbose;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let mut stdout = io::stdout().lock();
    let result = runtime.block_on(cli.run(&mut stdout, &mut io::stderr()));
    let flushed = stdout.flush();
    match result.and(flushed.map_err(Error::Output)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            report(&e, verbose);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Prints `error: <line>` to stderr; with `-v`, the chain of causes below it.
pub fn report(err: &Error, verbose: u8) {
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    if verbose > 0 {
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            let _ = writeln!(stderr, "  caused by: {s}");
            source = s.source();
        }
    }
}

fn init_logging(verbose: u8) {
    if verbose == 0 && std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    // kube-client logs a response body it cannot decode at `warn`; a body can be a Secret, so
    // kube-client stays at `error` unless RUST_LOG asks otherwise.
    let level = match verbose {
        0 | 1 => "warn,kube_client=error,shared=debug",
        2 => "info,kube_client=error,shared=trace",
        _ => "trace,kube_client=error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .try_init();
}

/// Shells `completion` can generate scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// Print a shell completion script (bash, zsh or fish)
#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

impl CompletionArgs {
    /// Writes the completion script for `command` (named `bin_name`, the executable's file name).
    pub fn run(
        &self,
        mut command: clap::Command,
        bin_name: &str,
        out: &mut dyn Write,
    ) -> Result<(), Error> {
        let shell = match self.shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        };
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut command, bin_name, &mut buf);
        out.write_all(&buf)?;
        Ok(())
    }
}

/// Writes a command's result as `-o json` (indented, one object) or `-o yaml`; `-o table` is the
/// command's own text, written by `table`.
pub fn write_output<T: serde::Serialize + ?Sized>(
    out: &mut dyn Write,
    format: OutputFormat,
    value: &T,
    table: impl FnOnce(&mut dyn Write) -> Result<(), Error>,
) -> Result<(), Error> {
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        OutputFormat::Yaml => {
            let value = serde_json::to_value(value).map_err(io::Error::from)?;
            write!(out, "{}", crate::plan::render_yaml([&value]))?;
        }
        OutputFormat::Table => table(out)?,
    }
    Ok(())
}
