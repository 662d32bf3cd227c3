//! `cargo xtask dist` end to end: it builds the multi-call release binary (slow: fat LTO) and
//! packs the archive twice, once per test binary run; every test checks something of that one
//! result: manifests vs archive, archive contents, reproducibility, and the plugins run through
//! the real `kubectl` via links named like the plugins, both from a plain `PATH` and from a
//! krew-like install.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::LazyLock;

use xtask::dist::{BIN, PLUGINS, REPOSITORY, VERSION, workspace_root};
use xtask::krew;

/// A fixed SOURCE_DATE_EPOCH for both runs, so the test can check every entry's mtime.
const EPOCH: u64 = 1_700_000_000;
const MIB: u64 = 1024 * 1024;

struct Dist {
    _tmp: tempfile::TempDir,
    tmp: PathBuf,
    /// The first run's krew index (template copied in, manifests rendered by dist).
    krew: PathBuf,
    /// The first run's archives.
    out: PathBuf,
    /// The linux/amd64 archive of the first run.
    archive: PathBuf,
    /// The same archive from the second run.
    second: PathBuf,
}

fn run_dist(tmp: &Path, run: &str) -> (PathBuf, PathBuf) {
    let krew_dir = tmp.join(format!("krew-{run}"));
    std::fs::create_dir_all(&krew_dir).unwrap();
    std::fs::copy(
        workspace_root().join("krew/template.yaml"),
        krew_dir.join("template.yaml"),
    )
    .unwrap();
    let out = tmp.join(format!("dist-{run}"));
    let result = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("dist")
        .arg("--out")
        .arg(&out)
        .arg("--krew")
        .arg(&krew_dir)
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "xtask dist failed:\n{}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    (krew_dir, out)
}

static DIST: LazyLock<Dist> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().to_path_buf();
    let (krew, out) = run_dist(&tmp, "1");
    let (_, out2) = run_dist(&tmp, "2");
    let name = krew::archive_file_name(VERSION, "linux", "amd64");
    Dist {
        _tmp: dir,
        archive: out.join(&name),
        second: out2.join(&name),
        tmp,
        krew,
        out,
    }
});

fn dist() -> &'static Dist {
    &DIST
}

/// The archive's entries: path → (mode, uid, gid, mtime, is_dir, contents).
type Entries = BTreeMap<String, (u32, u64, u64, u64, bool, Vec<u8>)>;

fn entries(archive: &Path) -> (Vec<String>, Entries) {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut order = Vec::new();
    let mut map = Entries::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        order.push(path.clone());
        let is_dir = h.entry_type().is_dir();
        let row = (
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            is_dir,
            data,
        );
        map.insert(path, row);
    }
    (order, map)
}

/// Unpacks `archive` into `dir` with the system's tar (independent of the tar crate).
fn untar(archive: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// sha256 by coreutils, independent of the sha2 crate dist uses.
fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// The real kubectl, found on the test's own PATH before any test replaces PATH.
fn kubectl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl is not installed (Debian: kubernetes-client; .ci/run installs it)")
}

/// Runs kubectl with `PATH` = `path_dir` only.
fn kubectl_with_path(path_dir: &Path, args: &[&str]) -> Output {
    Command::new(kubectl())
        .args(args)
        .env("PATH", path_dir)
        .env("KUBECONFIG", path_dir.join("no-kubeconfig"))
        .output()
        .unwrap()
}

/// `Usage: kubectl mtls-certs` alone or followed by arguments.
fn is_usage_of(line: &str, plugin: &str) -> bool {
    let want = format!("Usage: kubectl {plugin}");
    line == want || line.starts_with(&format!("{want} "))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn manifest(krew_dir: &Path, name: &str) -> krew::Manifest {
    let file = format!("{name}.yaml");
    let body = std::fs::read_to_string(krew_dir.join("plugins").join(&file)).unwrap();
    krew::validate(&file, &body).unwrap_or_else(|e| panic!("{file}: {e:?}"))
}

fn linux_amd64(m: &krew::Manifest) -> krew::Platform {
    let platforms = m.spec.as_ref().unwrap().platforms.clone().unwrap();
    let hits: Vec<_> = platforms
        .into_iter()
        .filter(|p| p.selector.as_ref().unwrap().matches("linux", "amd64") == Ok(true))
        .collect();
    assert_eq!(hits.len(), 1, "one platform for linux/amd64");
    hits.into_iter().next().unwrap()
}

#[test]
fn every_manifest_carries_the_sha256_of_its_archive_and_a_packed_executable_bin() {
    let d = dist();
    let (_, archive) = entries(&d.archive);
    let actual = sha256sum(&d.archive);
    for p in PLUGINS {
        let m = manifest(&d.krew, p.name);
        assert!(krew::project_rules(&m, VERSION, REPOSITORY).is_empty());
        let platform = linux_amd64(&m);
        let uri = platform.uri.unwrap();
        let file = uri.rsplit('/').next().unwrap();
        assert_eq!(
            d.out.join(file),
            d.archive,
            "{}: uri names the archive",
            p.name
        );
        assert!(uri.starts_with(REPOSITORY), "{uri}");
        assert_eq!(
            platform.sha256.as_deref(),
            Some(actual.as_str()),
            "{}",
            p.name
        );
        let bin = platform.bin.unwrap();
        assert_eq!(bin, BIN, "{}: bin is the multi-call executable", p.name);
        let (mode, _, _, _, is_dir, data) = &archive[&bin];
        assert!(!is_dir && mode & 0o111 == 0o111, "{bin} mode {mode:o}");
        assert!(data.starts_with(b"\x7fELF"), "{bin} is an executable");
    }
    // The .sha256 file beside the archive verifies with coreutils.
    let status = Command::new("sha256sum")
        .arg("-c")
        .arg(format!(
            "{}.sha256",
            d.archive.file_name().unwrap().to_string_lossy()
        ))
        .current_dir(&d.out)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn archive_is_flat_with_license_completions_and_fixed_metadata() {
    let d = dist();
    let (order, archive) = entries(&d.archive);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "entries in sorted order");

    let mut expected = vec![
        "LICENSE".to_string(),
        "completions/".to_string(),
        BIN.to_string(),
    ];
    for p in PLUGINS {
        for (_, file) in xtask::dist::completion_files(p.link) {
            expected.push(file);
        }
    }
    expected.sort();
    assert_eq!(
        order, expected,
        "exactly the multi-call binary, LICENSE and completions"
    );

    let license = std::fs::read(workspace_root().join("LICENSE")).unwrap();
    assert_eq!(archive["LICENSE"].5, license);
    assert!(text(&license).contains("Apache License") && text(&license).contains("Version 2.0"));

    for (path, (mode, uid, gid, mtime, is_dir, data)) in &archive {
        assert_eq!((*uid, *gid), (0, 0), "{path} owner");
        assert_eq!(*mtime, EPOCH, "{path} mtime = SOURCE_DATE_EPOCH");
        let want = if path == BIN || *is_dir { 0o755 } else { 0o644 };
        assert_eq!(*mode, want, "{path} mode");
        assert!(*is_dir || !data.is_empty(), "{path} is empty");
    }
    for p in PLUGINS {
        for (shell, file) in xtask::dist::completion_files(p.link) {
            assert!(
                text(&archive[&file].5).contains(p.link),
                "{shell} script names {}",
                p.link
            );
        }
    }
    assert!(
        archive[BIN].5.starts_with(b"\x7fELF"),
        "{BIN} is an executable"
    );
    let size = archive[BIN].5.len() as u64;
    let packed = std::fs::metadata(&d.archive).unwrap().len();
    eprintln!(
        "sizes: {BIN} {size} bytes ({:.2} MiB), archive {packed} bytes ({:.2} MiB)",
        size as f64 / MIB as f64,
        packed as f64 / MIB as f64
    );
    assert!(size < 8 * MIB, "{BIN} is {size} bytes, target < 8 MiB");
}

#[test]
fn bash_completion_registers_each_plugin() {
    let d = dist();
    let dir = d.tmp.join("bash-completion");
    untar(&d.archive, &dir);
    for p in PLUGINS {
        let script = dir.join(format!("completions/{}.bash", p.link));
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}' && complete -p {}",
                script.display(),
                p.link
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains(p.link), "{}", text(&out.stdout));
    }
}

#[test]
fn two_dist_runs_give_byte_identical_archives() {
    let d = dist();
    let first = std::fs::read(&d.archive).unwrap();
    let second = std::fs::read(&d.second).unwrap();
    assert_eq!(
        first[4..8],
        [0, 0, 0, 0],
        "gzip header carries no timestamp"
    );
    assert!(first == second, "archives differ between two dist runs");
}

#[test]
fn the_multi_call_binary_under_its_own_name_says_how_to_run_it() {
    let d = dist();
    let unpacked = d.tmp.join("unpacked-own-name");
    untar(&d.archive, &unpacked);
    let out = Command::new(unpacked.join(BIN))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    for p in PLUGINS {
        assert!(err.contains(p.link), "{err}");
    }
}

#[test]
fn kubectl_finds_all_four_plugins_on_path_and_runs_them() {
    let d = dist();
    let unpacked = d.tmp.join("unpacked");
    untar(&d.archive, &unpacked);
    // PATH holds only the four links, each pointing at the one unpacked executable.
    let path_dir = d.tmp.join("path");
    std::fs::create_dir_all(&path_dir).unwrap();
    for p in PLUGINS {
        std::os::unix::fs::symlink(unpacked.join(BIN), path_dir.join(p.link)).unwrap();
    }

    let list = kubectl_with_path(&path_dir, &["plugin", "list"]);
    let (stdout, stderr) = (text(&list.stdout), text(&list.stderr));
    assert!(
        list.status.success(),
        "kubectl plugin list failed:\n{stdout}\n{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("warning"), "{stderr}");
    for p in PLUGINS {
        let full = path_dir.join(p.link).display().to_string();
        assert!(
            stdout.lines().any(|l| l.trim() == full),
            "{full} not listed:\n{stdout}"
        );
    }

    for p in PLUGINS {
        let help = kubectl_with_path(&path_dir, &[p.name, "--help"]);
        let out = text(&help.stdout);
        assert!(
            help.status.success(),
            "kubectl {} --help: {}",
            p.name,
            text(&help.stderr)
        );
        let usage = out
            .lines()
            .find(|l| l.starts_with("Usage:"))
            .unwrap_or_default();
        assert!(
            is_usage_of(usage, p.name),
            "usage line {usage:?} of kubectl {}",
            p.name
        );
    }
}

#[test]
fn krew_like_install_from_the_manifests_runs_through_kubectl() {
    let d = dist();
    let root = d.tmp.join("krew-root");
    let bin_dir = root.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    for p in PLUGINS {
        // What `kubectl krew install mtls/<name>` does, step by step, driven by the manifest.
        let m = manifest(&d.krew, p.name);
        let version = m.spec.as_ref().unwrap().version.clone().unwrap();
        let platform = linux_amd64(&m);
        let uri = platform.uri.unwrap();
        let download = d.out.join(uri.rsplit('/').next().unwrap());
        assert_eq!(
            Some(sha256sum(&download)),
            platform.sha256,
            "checksum before install"
        );
        let store = root.join("store").join(p.name).join(&version);
        untar(&download, &store);
        let license = store.join("LICENSE");
        assert!(
            license.is_file(),
            "krew requires a LICENSE among installed files"
        );
        let bin = store.join(platform.bin.unwrap());
        assert_eq!(bin, store.join(BIN));
        let mode = std::fs::metadata(&bin).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{} is executable", bin.display());
        // krew's link name: "kubectl-" + plugin name with '-' → '_', pointing at the manifest's
        // bin in this plugin's own store directory.
        let link = bin_dir.join(format!("kubectl-{}", p.name.replace('-', "_")));
        assert_eq!(link, bin_dir.join(p.link));
        std::os::unix::fs::symlink(&bin, &link).unwrap();
    }

    let list = kubectl_with_path(&bin_dir, &["plugin", "list"]);
    let (stdout, stderr) = (text(&list.stdout), text(&list.stderr));
    assert!(
        list.status.success(),
        "kubectl plugin list failed:\n{stdout}\n{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("warning"), "{stderr}");
    for p in PLUGINS {
        let link = bin_dir.join(p.link).display().to_string();
        assert!(
            stdout.lines().any(|l| l.trim() == link),
            "{link} not listed:\n{stdout}"
        );

        let help = kubectl_with_path(&bin_dir, &[p.name, "--help"]);
        assert!(help.status.success(), "{}", text(&help.stderr));
        let out = text(&help.stdout);
        assert!(out.lines().any(|l| is_usage_of(l, p.name)), "{out}");

        let version = kubectl_with_path(&bin_dir, &[p.name, "--version"]);
        assert!(version.status.success(), "{}", text(&version.stderr));
        let line = text(&version.stdout);
        assert!(
            line.trim_end().ends_with(VERSION),
            "kubectl {} --version: {line}",
            p.name
        );
    }
}
