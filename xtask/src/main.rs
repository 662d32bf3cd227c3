//! `cargo xtask dist [--target T]… [--out DIR] [--krew DIR] [--index DIR]`, `cargo xtask index
//! --dist DIR`, `cargo xtask manifests --check`, and
//! `cargo xtask docs [--check]` (docs/reference.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::{dist, docs};

/// Project tooling for kubectl-mtls: release archives, krew manifests, generated docs.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build release archives for each target and rewrite the krew manifests to match them.
    Dist {
        /// Rust target triple to build (repeatable); default: the host.
        #[arg(long = "target", value_name = "TRIPLE")]
        targets: Vec<String>,
        /// Output directory for the archives and their .sha256 files.
        #[arg(long, default_value_os_t = dist::workspace_root().join("dist"))]
        out: PathBuf,
        /// The krew source directory (template.yaml in, plugins/*.yaml out).
        #[arg(long, default_value_os_t = dist::workspace_root().join("krew"))]
        krew: PathBuf,
        /// Where the index repository's tree goes (plugins/*.yaml at its root); default: OUT/krew-index.
        #[arg(long)]
        index: Option<PathBuf>,
    },
    /// Render the manifests for every release platform from the archives in DIR (the release's
    /// last step) and write the index repository's tree.
    Index {
        /// The directory holding one archive per release target.
        #[arg(long, value_name = "DIR")]
        dist: PathBuf,
        /// The krew source directory (template.yaml in, plugins/*.yaml out).
        #[arg(long, default_value_os_t = dist::workspace_root().join("krew"))]
        krew: PathBuf,
        /// Where the index repository's tree goes; default: DIR/krew-index.
        #[arg(long)]
        index: Option<PathBuf>,
    },
    /// Check the committed krew manifests against krew's rules and the template.
    Manifests {
        /// Check only (required: manifests are written by `dist`).
        #[arg(long)]
        check: bool,
        /// The krew index directory.
        #[arg(long, default_value_os_t = dist::workspace_root().join("krew"))]
        krew: PathBuf,
    },
    /// Rewrite the generated regions of docs/reference.md: the command reference (from the plugins' clap
    /// definitions) and the troubleshooting table (from doctor's rules).
    Docs {
        /// Only compare: exit 1 and name the stale regions when the file is not current.
        #[arg(long)]
        check: bool,
        /// The file to update (the regions' markers must be in it).
        #[arg(long, default_value_os_t = docs::readme_path())]
        readme: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Dist {
            targets,
            out,
            krew,
            index,
        } => {
            let started = std::time::Instant::now();
            let index = index.unwrap_or_else(|| out.join("krew-index"));
            let built = dist::dist(&dist::Options {
                targets,
                out,
                krew: krew.clone(),
                index: index.clone(),
            })?;
            for b in &built {
                let size = std::fs::metadata(&b.path)?.len();
                println!("{}  {}  ({size} bytes)", b.archive.sha256, b.path.display());
                for (bin, bytes) in &b.bin_sizes {
                    println!("    {bin}: {bytes} bytes");
                }
            }
            println!(
                "rewrote {}/plugins/*.yaml; the index repository's tree is {}; dist took {:.1} s",
                krew.display(),
                index.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Index { dist, krew, index } => {
            let index = index.unwrap_or_else(|| dist.join("krew-index"));
            let archives = dist::index_from_archives(&dist, &krew, &index)?;
            for a in &archives {
                println!("{}  {}/{}", a.sha256, a.os, a.arch);
            }
            println!(
                "rewrote {}/plugins/*.yaml and the index tree {}",
                krew.display(),
                index.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Manifests { check, krew } => {
            anyhow::ensure!(
                check,
                "manifests are written by `cargo xtask dist`; `manifests --check` checks them"
            );
            let problems = dist::check_manifests(&krew)?;
            for p in &problems {
                eprintln!("{p}");
            }
            if problems.is_empty() {
                println!("krew manifests OK");
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
        Cmd::Docs { check, readme } => {
            let shown = readme.display();
            if check {
                let text = std::fs::read_to_string(&readme)
                    .map_err(|e| anyhow::anyhow!("read {shown}: {e}"))?;
                let stale = docs::stale_regions(&text)?;
                if stale.is_empty() {
                    println!("{shown}: generated regions are current");
                    return Ok(ExitCode::SUCCESS);
                }
                eprintln!(
                    "{shown}: stale generated region(s): {}; run `cargo xtask docs`",
                    stale.join(", ")
                );
                return Ok(ExitCode::FAILURE);
            }
            if docs::write_readme(&readme)? {
                println!("{shown}: rewrote the generated regions");
            } else {
                println!("{shown}: generated regions are current");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
