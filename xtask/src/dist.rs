//! `cargo xtask dist`: the release build of the multi-call `kubectl-mtls`, completions, one
//! reproducible `.tar.gz` per platform, sha256 sums, and the krew manifests rendered from the
//! template.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};
use flate2::{Compression, GzBuilder};
use sha2::{Digest as _, Sha256};

use crate::krew::{self, ArchiveRef, Template};

/// The cargo package that builds the one executable every archive carries.
pub const PACKAGE: &str = "kubectl-mtls";
/// The multi-call executable: it runs the plugin named by the file name it is started as
/// (`kubectl-mtls_certs` → certs, …), so the four plugins share one copy of their common code.
/// Every manifest's `bin`.
pub const BIN: &str = krew::BIN;

/// The four plugins: krew name and the link name kubectl runs (each plugin crate's `BIN_NAME`).
pub const PLUGINS: [Plugin; 4] = [
    Plugin::new("mtls-certs", kubectl_mtls_certs::BIN_NAME),
    Plugin::new("mtls-egress", kubectl_mtls_egress::BIN_NAME),
    Plugin::new("mtls-lockdown", kubectl_mtls_lockdown::BIN_NAME),
    Plugin::new("mtls-probe", kubectl_mtls_probe::BIN_NAME),
];

/// One plugin's names.
#[derive(Debug, Clone, Copy)]
pub struct Plugin {
    /// Krew plugin name (`mtls-certs`), also the manifest's file name.
    pub name: &'static str,
    /// The name krew links onto `PATH` (`kubectl-` + name with `-` → `_`), pointing at [`BIN`];
    /// kubectl runs it with that name as `argv[0]`, which selects the plugin.
    pub link: &'static str,
}

impl Plugin {
    const fn new(name: &'static str, link: &'static str) -> Plugin {
        Plugin { name, link }
    }
}

/// The shells completions are generated for, and the file each script goes to in the archive.
pub fn completion_files(link: &str) -> [(&'static str, String); 3] {
    [
        ("bash", format!("completions/{link}.bash")),
        ("zsh", format!("completions/_{link}")),
        ("fish", format!("completions/{link}.fish")),
    ]
}

/// Man pages for every plugin and each of its subcommands, from their clap definitions:
/// `man/kubectl-mtls_certs.1`, `man/kubectl-mtls_certs-gen.1`, … (`man -l FILE` reads one; with
/// the directory on `MANPATH`'s `man1/`, `man kubectl-mtls_certs`). No date, so reproducible.
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    fn render(
        cmd: &clap::Command,
        name: String,
        out: &mut Vec<(String, Vec<u8>)>,
    ) -> anyhow::Result<()> {
        let mut page = Vec::new();
        // clap takes `'static` names (no `string` feature); a few dozen short strings, once.
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        clap_mangen::Man::new(cmd.clone().name(static_name))
            .render(&mut page)
            .with_context(|| format!("cannot render the man page of {name}"))?;
        out.push((format!("man/{name}.1"), page));
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            render(sub, format!("{name}-{}", sub.get_name()), out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    for (p, mut cmd) in PLUGINS.iter().zip(crate::docs::plugins()) {
        // Built: global flags reach the subcommands, usage lines read `kubectl mtls-certs gen`.
        cmd.build();
        render(&cmd, p.link.to_string(), &mut out)?;
    }
    Ok(out)
}

/// What `dist` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rust target triples; empty means the host.
    pub targets: Vec<String>,
    /// Where the archives go.
    pub out: PathBuf,
    /// The krew source directory: `template.yaml` is read, `plugins/*.yaml` written (the
    /// committed record of what the index serves).
    pub krew: PathBuf,
    /// The index repository's tree: `plugins/*.yaml` at its root (where `kubectl krew index add`
    /// reads them) and a README. Published as the repository the template's `index` names.
    pub index: PathBuf,
}

/// An archive `dist` wrote.
#[derive(Debug, Clone)]
pub struct Built {
    /// Its path.
    pub path: PathBuf,
    /// Its platform and checksum.
    pub archive: ArchiveRef,
    /// Size of the packed executable ([`BIN`]), in bytes.
    pub bin_sizes: Vec<(String, u64)>,
}

/// The workspace this xtask belongs to (its parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// The workspace version (xtask inherits it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The workspace repository URL (xtask inherits it).
pub const REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");

/// The Rust targets a release ships, one archive each: what krew users run (static musl on
/// Linux, so no glibc version matters). `.github/workflows/release.yml` builds exactly these (a
/// test compares them), and [`index_from_archives`] requires an archive for each.
pub const RELEASE_TARGETS: [&str; 5] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-msvc",
];

/// Maps a Rust target triple to krew's `(os, arch)`; `None` for targets we do not package.
pub fn krew_platform(target: &str) -> Option<(&'static str, &'static str)> {
    let arch = match target.split('-').next()? {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" => "386",
        "armv7" | "arm" => "arm",
        "powerpc64le" => "ppc64le",
        _ => return None,
    };
    let os = if target.contains("-linux-") {
        "linux"
    } else if target.contains("-apple-darwin") {
        "darwin"
    } else if target.contains("-windows-") {
        // krew detects the archive type by its content, so Windows takes the .tar.gz too.
        "windows"
    } else {
        return None;
    };
    Some((os, arch))
}

/// `cargo`, with the environment a plain shell would give it.
///
/// `cargo xtask` is `cargo run`, and `cargo test` runs the dist tests: both hand this process
/// `CARGO_MANIFEST_DIR`, `CARGO_PKG_*` and friends describing xtask. Build scripts declare
/// `rerun-if-env-changed` on some of these (ring: `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, …;
/// every cc-rs user: `SOURCE_DATE_EPOCH`), and cargo compares them with its *own* environment,
/// so passing them on made every dist rebuild ring, rustls, kube and everything above them,
/// and the next plain `cargo build --release` (bench/gen.sh) rebuild them back. Dropping them
/// lets dist reuse what a plain release build left in `target/release` and vice versa.
/// `SOURCE_DATE_EPOCH` only sets the archive's mtimes (nothing in the build reads a clock).
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let per_package = [
            "CARGO_PKG_",
            "CARGO_BIN_EXE_",
            "CARGO_FEATURE_",
            "CARGO_CFG_",
        ]
        .iter()
        .any(|p| key.starts_with(p));
        let set_by_cargo_for_xtask = matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "OUT_DIR"
                | "SOURCE_DATE_EPOCH"
        );
        if per_package || set_by_cargo_for_xtask {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn output(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(out.stdout)
}

fn host_target() -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let vv = String::from_utf8(output(Command::new(&rustc).arg("-vV"))?)?;
    vv.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV printed no host line")
}

fn target_installed(target: &str) -> anyhow::Result<bool> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = String::from_utf8(output(Command::new(&rustc).args(["--print", "sysroot"]))?)?;
    Ok(Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(target)
        .join("lib")
        .is_dir())
}

fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let json =
        output(
            cargo()
                .current_dir(root)
                .args(["metadata", "--format-version", "1", "--no-deps"]),
        )?;
    let meta: serde_json::Value = serde_json::from_slice(&json)?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

/// `cargo build --release --locked -p kubectl-mtls`; returns the directory holding the
/// executable. The host builds without `--target`, so it shares `target/release` (and, since
/// the multi-call package enables no features of its own, the dependency builds of
/// `cargo build --release --workspace --bins`).
fn build(root: &Path, target: &str, host: &str) -> anyhow::Result<PathBuf> {
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["build", "--release", "--locked", "-p", PACKAGE]);
    let dir = target_dir(root)?;
    let bins = if target == host {
        dir.join("release")
    } else {
        cmd.args(["--target", target]);
        dir.join(target).join("release")
    };
    eprintln!("dist: {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(status.success(), "{cmd:?} failed ({status})");
    Ok(bins)
}

/// Makes `link` run `target`: a symlink on unix, a copy named `link.exe` elsewhere (Windows runs
/// only files with an executable extension; the binary strips `.exe` from its name).
fn link_or_copy(target: &Path, link: &Path) -> anyhow::Result<PathBuf> {
    #[cfg(unix)]
    let (made, link) = (std::os::unix::fs::symlink(target, link), link.to_path_buf());
    #[cfg(not(unix))]
    let (made, link) = {
        let link = link.with_extension("exe");
        (std::fs::copy(target, &link).map(drop), link)
    };
    made.with_context(|| format!("cannot link {} to {}", link.display(), target.display()))?;
    Ok(link)
}

/// The executable's file name as built for `target` (`.exe` on Windows).
fn exe_name(target: &str) -> String {
    if target.contains("-windows-") {
        format!("{BIN}.exe")
    } else {
        BIN.to_string()
    }
}

/// One file in an archive.
struct Entry {
    path: String,
    data: Vec<u8>,
    mode: u32,
}

/// The `.tar.gz` bytes for `entries`: sorted by path, `completions/` as a directory entry, fixed
/// owner (0/0 root), modes and mtime, gzip header without a timestamp or file name.
fn pack(mut entries: Vec<Entry>, mtime: u64) -> anyhow::Result<Vec<u8>> {
    let gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    let mut tar = tar::Builder::new(gz);
    let header = |kind: tar::EntryType, size: u64, mode: u32| -> anyhow::Result<tar::Header> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        Ok(h)
    };
    // Parent directories get their own entries, sorted in among the files ("completions/"
    // comes right before "completions/…"), so the whole archive is in path order.
    let mut dirs: Vec<Entry> = entries
        .iter()
        .filter_map(|e| e.path.rsplit_once('/').map(|(d, _)| format!("{d}/")))
        .map(|path| Entry {
            path,
            data: Vec::new(),
            mode: 0o755,
        })
        .collect();
    entries.append(&mut dirs);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    for e in &entries {
        let kind = if e.path.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        };
        let mut h = header(kind, e.data.len() as u64, e.mode)?;
        tar.append_data(&mut h, &e.path, e.data.as_slice())?;
    }
    Ok(tar.into_inner()?.finish()?)
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `dist`: builds, packs, checksums, renders the manifests into `opts.krew/plugins/`.
pub fn dist(opts: &Options) -> anyhow::Result<Vec<Built>> {
    let root = workspace_root();
    let host = host_target()?;
    let mut targets = opts.targets.clone();
    if targets.is_empty() {
        targets.push(host.clone());
    }
    targets.sort();
    targets.dedup();
    for t in &targets {
        if krew_platform(t).is_none() {
            bail!("target {t} is not packaged: dist knows linux, darwin and windows targets");
        }
        if !target_installed(t)? {
            bail!("target {t} is not installed: `rustup target add {t}` (and a linker for it)");
        }
    }
    let mtime = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={s} is not a number"))?,
        Err(_) => 0,
    };
    let template = Template::load(&opts.krew.join("template.yaml"))?;
    let license = std::fs::read(root.join("LICENSE")).context("cannot read LICENSE")?;

    // Completions are the same on every platform: generate them with the host build, run
    // through links named like the plugins (the name selects the plugin).
    let host_bins = build(&root, &host, &host)?;
    let mut common = vec![Entry {
        path: "LICENSE".into(),
        data: license,
        mode: 0o644,
    }];
    let links = target_dir(&root)?.join("xtask-dist-links");
    let _ = std::fs::remove_dir_all(&links);
    std::fs::create_dir_all(&links)
        .with_context(|| format!("cannot create {}", links.display()))?;
    for p in PLUGINS {
        let exe = link_or_copy(&host_bins.join(exe_name(&host)), &links.join(p.link))?;
        for (shell, path) in completion_files(p.link) {
            let script = output(Command::new(&exe).args(["completion", shell]))?;
            ensure!(
                !script.is_empty(),
                "{} completion {shell} printed nothing",
                exe.display()
            );
            common.push(Entry {
                path,
                data: script,
                mode: 0o644,
            });
        }
    }
    std::fs::remove_dir_all(&links)
        .with_context(|| format!("cannot remove {}", links.display()))?;
    for (path, data) in man_pages()? {
        common.push(Entry {
            path,
            data,
            mode: 0o644,
        });
    }

    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let mut built = Vec::new();
    for t in &targets {
        let (os, arch) = krew_platform(t).expect("checked above");
        let bins = if *t == host {
            host_bins.clone()
        } else {
            build(&root, t, &host)?
        };
        let mut entries: Vec<Entry> = common
            .iter()
            .map(|e| Entry {
                path: e.path.clone(),
                data: e.data.clone(),
                mode: e.mode,
            })
            .collect();
        let path = bins.join(exe_name(t));
        let data =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let bin = krew::bin_for(os);
        let bin_sizes = vec![(bin.clone(), data.len() as u64)];
        entries.push(Entry {
            path: bin,
            data,
            mode: 0o755,
        });
        let bytes = pack(entries, mtime)?;
        let sha256 = sha256_hex(&bytes);
        let name = krew::archive_file_name(VERSION, os, arch);
        let path = opts.out.join(&name);
        std::fs::write(&path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut sum = std::fs::File::create(opts.out.join(format!("{name}.sha256")))?;
        writeln!(sum, "{sha256}  {name}")?;
        built.push(Built {
            path,
            archive: ArchiveRef {
                os: os.into(),
                arch: arch.into(),
                sha256,
            },
            bin_sizes,
        });
    }

    let archives: Vec<ArchiveRef> = built.iter().map(|b| b.archive.clone()).collect();
    let rendered = template.render(VERSION, REPOSITORY, &archives)?;
    let plugins_dir = opts.krew.join("plugins");
    std::fs::create_dir_all(&plugins_dir)?;
    for (file, text) in &rendered {
        let path = plugins_dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    write_index(&opts.index, &template, &rendered)?;
    Ok(built)
}

/// The release's last step (`cargo xtask index --dist DIR`): reads the archive of every
/// [`RELEASE_TARGETS`] platform from `dist` (the release jobs' artifacts, one per platform),
/// renders the manifests with their sha256 into `krew/plugins/` and writes the index tree.
/// Fails, naming them, when archives are missing.
pub fn index_from_archives(
    dist: &Path,
    krew_dir: &Path,
    index: &Path,
) -> anyhow::Result<Vec<ArchiveRef>> {
    let template = Template::load(&krew_dir.join("template.yaml"))?;
    let mut archives = Vec::new();
    let mut missing = Vec::new();
    for target in RELEASE_TARGETS {
        let (os, arch) = krew_platform(target).expect("release targets are packaged");
        let path = dist.join(krew::archive_file_name(VERSION, os, arch));
        match std::fs::read(&path) {
            Ok(bytes) => archives.push(ArchiveRef {
                os: os.into(),
                arch: arch.into(),
                sha256: sha256_hex(&bytes),
            }),
            Err(_) => missing.push(path.display().to_string()),
        }
    }
    ensure!(
        missing.is_empty(),
        "missing release archives: {}; every release target needs one (`cargo xtask dist --target T`)",
        missing.join(", ")
    );
    let rendered = template.render(VERSION, REPOSITORY, &archives)?;
    let plugins_dir = krew_dir.join("plugins");
    std::fs::create_dir_all(&plugins_dir)?;
    for (file, text) in &rendered {
        let path = plugins_dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    write_index(index, &template, &rendered)?;
    Ok(archives)
}

/// Writes the index repository's tree into `dir`: `plugins/<name>.yaml` for each rendered
/// manifest (nothing else in `plugins/`: krew reads every regular `*.yaml` there) and a README.
/// Anything already in `dir` is replaced, except a `.git` directory, so a clone of the published
/// index can be updated in place and committed.
pub fn write_index(
    dir: &Path,
    template: &Template,
    rendered: &[(String, String)],
) -> anyhow::Result<()> {
    let plugins = dir.join(INDEX_PLUGINS_DIR);
    let _ = std::fs::remove_dir_all(&plugins);
    std::fs::create_dir_all(&plugins)
        .with_context(|| format!("cannot create {}", plugins.display()))?;
    for (file, text) in rendered {
        let path = plugins.join(file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let readme = dir.join("README.md");
    std::fs::write(&readme, index_readme(template))
        .with_context(|| format!("cannot write {}", readme.display()))?;
    Ok(())
}

/// Where krew reads an index's manifests, relative to the root of the cloned index repository
/// (krew `environment.Paths.IndexPluginsPath`: `<root>/index/<name>/plugins`).
pub const INDEX_PLUGINS_DIR: &str = "plugins";

/// The README of the published index repository.
pub fn index_readme(template: &Template) -> String {
    let names: Vec<String> = template
        .plugins
        .iter()
        .map(|p| format!("mtls/{}", p.name))
        .collect();
    format!(
        "# kubectl-mtls krew index\n\n\
         A custom krew index for the kubectl-mtls plugins ({home}). Generated by \
         `cargo xtask dist` from `krew/template.yaml` in that repository; do not edit here.\n\n\
         ```sh\n\
         kubectl krew index add mtls {index}\n\
         kubectl krew install {names}\n\
         ```\n",
        home = REPOSITORY,
        index = template.index,
        names = names.join(" "),
    )
}

/// `manifests --check`: every committed manifest passes krew's and our rules, and is exactly
/// what the template renders for the archives it points at. Returns the problems found.
pub fn check_manifests(krew_dir: &Path) -> anyhow::Result<Vec<String>> {
    let template = Template::load(&krew_dir.join("template.yaml"))?;
    let mut problems = Vec::new();
    let plugins_dir = krew_dir.join("plugins");
    let mut files: Vec<String> = std::fs::read_dir(&plugins_dir)
        .with_context(|| format!("cannot read {}", plugins_dir.display()))?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<_>>()?;
    files.sort();
    let mut expected: Vec<String> = template
        .plugins
        .iter()
        .map(|p| format!("{}.yaml", p.name))
        .collect();
    expected.sort();
    if files != expected {
        problems.push(format!(
            "krew/plugins holds {files:?}, the template names {expected:?}"
        ));
    }
    for file in files {
        let text = std::fs::read_to_string(plugins_dir.join(&file))?;
        let manifest = match krew::validate(&file, &text) {
            Ok(m) => m,
            Err(errors) => {
                problems.extend(errors.into_iter().map(|e| format!("{file}: {e}")));
                continue;
            }
        };
        problems.extend(
            krew::project_rules(&manifest, VERSION, REPOSITORY)
                .into_iter()
                .map(|e| format!("{file}: {e}")),
        );
        let rendered = template.render(VERSION, REPOSITORY, &krew::archives_of(&manifest))?;
        match rendered.iter().find(|(f, _)| *f == file) {
            Some((_, want)) if *want == text => {}
            Some(_) => problems.push(format!(
                "{file}: differs from what krew/template.yaml renders; run `cargo xtask dist`"
            )),
            None => {}
        }
    }
    Ok(problems)
}
