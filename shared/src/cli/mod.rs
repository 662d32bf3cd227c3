//! What every plugin's command line shares: global flags, `-o` and one renderer for it
//! ([`write_output`]), `--dry-run`, the run loop that maps errors to exit codes and prints the
//! one error line ([`report`]), the `completion` subcommand, and plain-text tables.
//!
//! A plugin is a [`clap::Parser`] that implements [`Plugin`]; its `main` is one call to [`main`],
//! which also answers kubectl's completion requests ([`complete`]).
//! stdout carries data (tables, YAML, JSON); stderr carries talk (errors, progress, warnings):
//! a command writes both through the writers it is given, never to the process's streams.

mod apply;
pub mod complete;
mod files;
mod log;
mod table;

use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use apply::{apply_and_print, apply_and_print_limited, print_plan};
pub use files::{Source, read_manifests};
pub use table::Table;

use crate::cluster::KubeArgs;
use crate::error::Error;

/// Flags every plugin accepts: kubectl's connection flags and `-v`.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Log verbosity on stderr, as kubectl's -v N or -v=N: 1-6 requests, 7-8 details, 9+ everything
    #[arg(short = 'v', long = "v", alias = "verbose", value_name = "N", global = true,
          num_args = 0..=1, default_value_t = 0, default_missing_value = "1", hide_default_value = true,
          value_parser = parse_verbosity)]
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

/// `-o/--output` of a command that applies objects: [`OutputFormat`]'s, and kubectl's `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApplyOutput {
    /// One result line per object.
    Table,
    /// The objects, as YAML (a multi-document stream).
    Yaml,
    /// The objects, as a JSON `List`.
    Json,
    /// One `kind.group/name` per object, as `kubectl apply -o name` prints them.
    Name,
}

impl ApplyOutput {
    /// The format of output that is not a list of objects (a report); `None` for `name`.
    pub fn format(self) -> Option<OutputFormat> {
        match self {
            ApplyOutput::Table => Some(OutputFormat::Table),
            ApplyOutput::Yaml => Some(OutputFormat::Yaml),
            ApplyOutput::Json => Some(OutputFormat::Json),
            ApplyOutput::Name => None,
        }
    }
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
    /// Output format: yaml (default with --dry-run=client) or json prints the objects, name their
    /// names (kind.group/name), table the result lines.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ApplyOutput>,
    /// Take over fields another field manager owns (server-side apply --force-conflicts).
    #[arg(long)]
    pub force_conflicts: bool,
    /// The name server-side apply records as the manager of the fields written
    #[arg(long, value_name = "NAME", default_value = crate::cluster::FIELD_MANAGER,
          value_parser = parse_field_manager)]
    pub field_manager: String,
}

/// `--expiry-warning`: the threshold below which a certificate in use is reported as expiring
/// (`inspect --managed`, `status`, `doctor`).
#[derive(clap::Args, Debug, Clone)]
pub struct ExpiryArgs {
    /// Warn about certificates in use that expire within this time: days (30d, or 30) or hours (720h)
    #[arg(long, value_name = "DURATION", default_value = "30d",
          value_parser = crate::pki::parse_expiry_warning)]
    pub expiry_warning: time::Duration,
}

/// Checks `--field-manager` as the API server does (1 to 128 printable characters).
fn parse_field_manager(value: &str) -> Result<String, String> {
    if value.is_empty() || value.chars().count() > 128 || value.chars().any(char::is_control) {
        return Err(
            "a field manager is 1 to 128 printable characters, e.g. --field-manager platform-gitops"
                .into(),
        );
    }
    Ok(value.to_string())
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
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(words) = complete::request(&args) {
        return complete::main(P::command(), &words);
    }
    let cli = P::parse_from(args);
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

/// Parses `-v`'s value: a number (kubectl's levels, 0-10 and beyond), or the `v`s after the
/// first of `-vv`/`-vvv` (read as 2 and 3, so the old spelling still works).
pub fn parse_verbosity(value: &str) -> Result<u8, String> {
    if !value.is_empty() && value.bytes().all(|b| b == b'v') {
        return Ok(u8::try_from(value.len() + 1).unwrap_or(u8::MAX));
    }
    value.parse::<u8>().map_err(|_| {
        format!("verbosity {value:?} is not a number: use -v N or -v=N, e.g. -v 6 for requests")
    })
}

/// Our log levels for kubectl's verbosity numbers: 0 off, 1 requests (and error causes), 2
/// details, 3 everything.
fn log_level(verbose: u8) -> u8 {
    match verbose {
        0 => 0,
        1..=6 => 1,
        7..=8 => 2,
        _ => 3,
    }
}

fn init_logging(verbose: u8) {
    let verbose = log_level(verbose);
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
    // RUST_LOG takes `target=level` directives; one that does not parse is ignored.
    let directives = std::env::var("RUST_LOG")
        .ok()
        .and_then(|text| log::Directives::parse(&text))
        .or_else(|| log::Directives::parse(level))
        .expect("the built-in directives parse");
    log::init(directives);
}

/// Print the version: version, git commit, build date (the commit's), target
#[derive(clap::Args, Debug)]
pub struct VersionArgs {
    /// Accepted as in kubectl: a plugin has only a client version
    #[arg(long)]
    pub client: bool,
    /// Output format: json or yaml (default: one line per field)
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// What `version` reports.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// `v` + the workspace version.
    pub version: String,
    /// The git commit built (`unknown` outside a git checkout).
    pub commit: String,
    /// The commit's date (ISO 8601), which stands for the build date in reproducible builds.
    pub build_date: String,
    /// The Rust target triple built for.
    pub target: String,
}

impl VersionInfo {
    /// This build's facts.
    pub fn current() -> VersionInfo {
        VersionInfo {
            version: format!("v{}", env!("CARGO_PKG_VERSION")),
            commit: env!("MTLS_GIT_COMMIT").into(),
            build_date: env!("MTLS_BUILD_DATE").into(),
            target: env!("MTLS_BUILD_TARGET").into(),
        }
    }
}

impl VersionArgs {
    /// Prints [`VersionInfo::current`] in the chosen format.
    pub fn run(&self, out: &mut dyn Write) -> Result<(), Error> {
        let info = VersionInfo::current();
        write_output(
            out,
            self.output.unwrap_or(OutputFormat::Table),
            &info,
            |out| {
                writeln!(out, "Client Version: {}", info.version)?;
                writeln!(out, "Commit: {}", info.commit)?;
                writeln!(out, "Build Date: {}", info.build_date)?;
                writeln!(out, "Target: {}", info.target)?;
                Ok(())
            },
        )
    }
}

/// Shells `completion` can generate scripts for, and `kubectl` itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// kubectl's own completion (kubectl 1.26+): link kubectl_complete-<plugin> beside this plugin
    Kubectl,
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// Print a shell completion script (bash, zsh or fish), or enable kubectl's own completion
///
/// `completion kubectl` makes `kubectl <plugin> <TAB>` complete in any shell where kubectl's
/// completion is loaded: it links `kubectl_complete-<plugin>` to this plugin in the directory
/// the plugin was run from (for krew, ~/.krew/bin), which kubectl runs for completions.
#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    /// The shell to complete for, or kubectl.
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
            Shell::Kubectl => {
                let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
                let plugin = invoked_path(args.first().map(PathBuf::from), bin_name)?;
                let link = link_completion(&plugin, bin_name)?;
                writeln!(
                    out,
                    "{} -> {}: `kubectl {} <TAB>` completes in shells with kubectl's completion loaded",
                    link.display(),
                    plugin.file_name().unwrap_or_default().to_string_lossy(),
                    command
                        .get_bin_name()
                        .unwrap_or(bin_name)
                        .trim_start_matches("kubectl ")
                )?;
                return Ok(());
            }
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

/// The plugin's path on `PATH`: `argv0` when it names a directory (kubectl runs plugins by their
/// full path), else the first `PATH` entry holding `bin_name`.
fn invoked_path(argv0: Option<PathBuf>, bin_name: &str) -> Result<PathBuf, Error> {
    if let Some(path) = argv0.filter(|p| p.parent().is_some_and(|d| !d.as_os_str().is_empty())) {
        return Ok(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(bin_name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{bin_name} is not on PATH: install the plugin (krew, or links on PATH), then run `kubectl {} completion kubectl`",
                bin_name.trim_start_matches("kubectl-").replace('_', "-")
            ))
        })
}

/// Links `kubectl_complete-<plugin>` beside `plugin` to its file name (relative, so it follows
/// krew's upgrades of the plugin link). An existing link to the same name is kept.
fn link_completion(plugin: &Path, bin_name: &str) -> Result<PathBuf, Error> {
    let dir = plugin.parent().unwrap_or(Path::new("."));
    let target = plugin
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(bin_name));
    let link = dir.join(complete::completion_name(bin_name));
    if let Ok(existing) = std::fs::read_link(&link) {
        if existing == target {
            return Ok(link);
        }
        return Err(Error::Usage(format!(
            "{} already links to {}: remove it to link it to {}",
            link.display(),
            existing.display(),
            target.display()
        )));
    }
    if link.exists() {
        return Err(Error::Usage(format!(
            "{} exists and is not a link: remove it first",
            link.display()
        )));
    }
    #[cfg(unix)]
    let made = std::os::unix::fs::symlink(&target, &link);
    #[cfg(not(unix))]
    let made = std::fs::copy(plugin, &link).map(drop);
    made.map_err(|e| {
        Error::Usage(format!(
            "cannot create {}: {e}; create it by hand: a link or copy of {}",
            link.display(),
            plugin.display()
        ))
    })?;
    Ok(link)
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
