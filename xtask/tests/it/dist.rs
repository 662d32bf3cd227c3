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
    /// The first run's index repository tree (dist's default: OUT/krew-index).
    index: PathBuf,
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
        index: out.join("krew-index"),
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
    // Man pages (issue 14): one per plugin and per subcommand, from the clap definitions.
    expected.push("man/".to_string());
    let pages = xtask::dist::man_pages().unwrap();
    expected.extend(pages.iter().map(|(path, _)| path.clone()));
    expected.sort();
    assert_eq!(
        order, expected,
        "exactly the multi-call binary, LICENSE, completions and man pages"
    );
    for p in PLUGINS {
        let page = text(&archive[&format!("man/{}.1", p.link)].5);
        assert!(page.contains(".TH"), "{}: a roff man page", p.link);
        assert!(
            archive.contains_key(&format!("man/{}-completion.1", p.link)),
            "{}: a page per subcommand",
            p.link
        );
    }

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

/// Serves the files of `dir` over HTTP on loopback (GET `/<file name>`; 404 otherwise), as the
/// release host does; returns the base URL. krew downloads with Go's `http.DefaultClient`, which
/// has no `file://` transport, so an index whose `uri`s were `file://` would pass a copy-based
/// test and fail in krew: the index test downloads over HTTP instead.
fn serve(dir: &Path) -> String {
    let dir = dir.to_path_buf();
    serve_with(move |path| {
        let name = path.trim_start_matches('/');
        (!name.contains('/') && !name.is_empty())
            .then(|| std::fs::read(dir.join(name)).ok())
            .flatten()
            .map(|body| ("application/octet-stream", body))
    })
}

/// A loopback HTTP/1.1 server answering each GET with `answer(path)` (404 for `None`), one
/// response per connection; returns the base URL.
fn serve_with(answer: impl Fn(&str) -> Option<(&'static str, Vec<u8>)> + Send + 'static) -> String {
    use std::io::{BufRead as _, BufReader, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if header == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request.split(' ').nth(1).unwrap_or("/");
            let path = path.split('?').next().unwrap_or_default();
            let _ = match answer(path) {
                Some((content_type, body)) => stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|()| stream.write_all(&body)),
                None => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    base
}

/// `git` with no user or system configuration, and a fixed identity for commits.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=index test", "-c", "user.email=index@test"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Extracts a downloaded archive by krew's rules (`internal/download/downloader.go`): the type is
/// detected from the content (gzip magic, as Go's `http.DetectContentType`), only directories and
/// regular files are accepted (a symlink or hard link makes krew fail the install), entries with
/// `..` or an absolute path are refused, and each file keeps its mode.
fn krew_extract(archive: &[u8], dir: &Path) {
    assert!(
        archive.starts_with(&[0x1f, 0x8b, 0x08]),
        "krew detects the archive type by content: not gzip"
    );
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name == "pax_global_header" {
            continue;
        }
        assert!(
            !name.contains("..") && !name.starts_with('/') && !name.starts_with('\\'),
            "krew refuses the suspicious entry {name:?}"
        );
        let mode = entry.header().mode().unwrap();
        let path = dir.join(&name);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&path).unwrap(),
            tar::EntryType::Regular => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                std::fs::write(&path, data).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            other => panic!("krew cannot unpack {name:?}: entry type {other:?}"),
        }
    }
}

#[test]
fn krew_index_add_clones_the_dist_index_and_installs_all_four_plugins_that_kubectl_runs() {
    let d = dist();
    let work = d.tmp.join("krew-index-test");
    std::fs::create_dir_all(&work).unwrap();

    // The index dist wrote: exactly plugins/<name>.yaml at its root (krew reads every regular
    // *.yaml there), plus a README whose `index add` URL is the template's index repository.
    let template = krew::Template::load(&workspace_root().join("krew/template.yaml")).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(d.index.join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = PLUGINS.iter().map(|p| format!("{}.yaml", p.name)).collect();
    want.sort();
    assert_eq!(files, want, "the index's plugins/ holds the four manifests");
    let readme = std::fs::read_to_string(d.index.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("kubectl krew index add mtls {}", template.index)),
        "{readme}"
    );
    for p in PLUGINS {
        assert_eq!(
            std::fs::read_to_string(d.index.join("plugins").join(format!("{}.yaml", p.name)))
                .unwrap(),
            std::fs::read_to_string(d.krew.join("plugins").join(format!("{}.yaml", p.name)))
                .unwrap(),
            "the index serves what krew/plugins records"
        );
    }

    // Published: the index tree as a git repository, its archive URLs pointing at a loopback
    // mirror of the release (same files, same sha256), as an air-gapped mirror would.
    let release = format!("{REPOSITORY}/releases/download/v{VERSION}");
    let mirror = serve(&d.out);
    let published = work.join("published");
    std::fs::create_dir_all(published.join("plugins")).unwrap();
    std::fs::copy(d.index.join("README.md"), published.join("README.md")).unwrap();
    for file in &files {
        let body = std::fs::read_to_string(d.index.join("plugins").join(file)).unwrap();
        assert!(body.contains(&release), "{file} points at the release");
        std::fs::write(
            published.join("plugins").join(file),
            body.replace(&release, &mirror),
        )
        .unwrap();
    }
    git(&published, &["init", "-q"]);
    git(&published, &["add", "-A"]);
    git(&published, &["commit", "-q", "-m", "index"]);

    // `kubectl krew index add mtls URL`: `git clone -v URL <root>/index/mtls`
    // (krew gitutil.EnsureCloned), then every command reads <root>/index/mtls/plugins/.
    let root = work.join("krew-root");
    std::fs::create_dir_all(root.join("index")).unwrap();
    let url = format!("file://{}", published.display());
    git(&root.join("index"), &["clone", "-q", "-v", &url, "mtls"]);
    let plugins_dir = root.join("index/mtls/plugins");

    let bin_dir = root.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    for p in PLUGINS {
        // `kubectl krew install mtls/<name>`: the manifest by name from the clone, validated.
        let file = plugins_dir.join(format!("{}.yaml", p.name));
        assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
        let body = std::fs::read_to_string(&file).unwrap();
        let m = krew::validate(&format!("{}.yaml", p.name), &body)
            .unwrap_or_else(|e| panic!("{}: {e:?}", p.name));
        let spec = m.spec.unwrap();
        let version = spec.version.unwrap();
        // The first platform whose selector matches {os: linux, arch: amd64}.
        let platform = spec
            .platforms
            .unwrap()
            .into_iter()
            .find(|pl| pl.selector.as_ref().unwrap().matches("linux", "amd64") == Ok(true))
            .expect("a platform for linux/amd64");
        // Download over HTTP, require status 200, verify the sha256 of what arrived.
        let uri = platform.uri.unwrap();
        assert!(uri.starts_with(&mirror), "{uri}");
        let download = work.join(format!("{}.download", p.name));
        let curl = Command::new("curl")
            .args(["-fsS", "--max-time", "60", "-o"])
            .arg(&download)
            .arg(&uri)
            .output()
            .unwrap();
        assert!(curl.status.success(), "GET {uri}: {}", text(&curl.stderr));
        let bytes = std::fs::read(&download).unwrap();
        assert_eq!(
            Some(xtask::dist::sha256_hex(&bytes)),
            platform.sha256,
            "{}: sha256 of the download",
            p.name
        );
        // Extract into a staging directory, then (no `files:` → `{from: "*", to: "."}`) move
        // everything into store/<name>/<version>/.
        let staging = work.join(format!("{}.staging", p.name));
        std::fs::create_dir_all(&staging).unwrap();
        krew_extract(&bytes, &staging);
        assert!(platform.files.is_none());
        let install = root.join("store").join(p.name).join(&version);
        std::fs::create_dir_all(&install).unwrap();
        for entry in std::fs::read_dir(&staging).unwrap() {
            let entry = entry.unwrap();
            std::fs::rename(entry.path(), install.join(entry.file_name())).unwrap();
        }
        // Link bin/kubectl-<name, '-' → '_'> to the manifest's bin inside the install dir.
        let bin = install.join(platform.bin.unwrap());
        assert!(
            bin.starts_with(&install) && bin.is_file(),
            "{}",
            bin.display()
        );
        let link = bin_dir.join(format!("kubectl-{}", p.name.replace('-', "_")));
        std::os::unix::fs::symlink(&bin, &link).unwrap();
    }

    let list = kubectl_with_path(&bin_dir, &["plugin", "list"]);
    let (stdout, stderr) = (text(&list.stdout), text(&list.stderr));
    assert!(
        list.status.success(),
        "kubectl plugin list: {stdout}\n{stderr}"
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
        assert!(
            text(&help.stdout).lines().any(|l| is_usage_of(l, p.name)),
            "{}",
            text(&help.stdout)
        );
    }
    // And one real command through kubectl, from the installed plugin: gen writes a bundle.
    let certs = work.join("bundle");
    let gen_out = kubectl_with_path(
        &bin_dir,
        &[
            "mtls-certs",
            "gen",
            "--domain",
            "httpbin.example.com",
            "--client",
            "client.example.com",
            "--out",
            certs.to_str().unwrap(),
        ],
    );
    assert!(gen_out.status.success(), "{}", text(&gen_out.stderr));
    assert!(certs.join("client.crt").is_file());
}

/// Runs `kubectl __complete ARGS` (what kubectl's shell completion scripts run) with `PATH` =
/// `path_dir` and `KUBECONFIG` = `kubeconfig`; returns the candidate values (descriptions cut)
/// and the directive line.
fn kubectl_complete(path_dir: &Path, kubeconfig: &Path, args: &[&str]) -> (Vec<String>, String) {
    let out = Command::new(kubectl())
        .arg("__complete")
        .args(args)
        .env("PATH", path_dir)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    let directive = lines.pop().unwrap_or_default().to_string();
    let values = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    (values, directive)
}

#[test]
fn kubectl_completes_all_four_plugins_through_their_kubectl_complete_links() {
    let d = dist();
    let unpacked = d.tmp.join("unpacked-complete");
    untar(&d.archive, &unpacked);
    // A cluster that answers namespace lists, and a kubeconfig naming it in two contexts.
    let api = serve_with(|path| {
        (path == "/api/v1/namespaces").then(|| {
            let list = r#"{"apiVersion":"v1","kind":"NamespaceList","metadata":{"resourceVersion":"7"},
                "items":[{"metadata":{"name":"mtls-demo"}},{"metadata":{"name":"istio-system"}}]}"#;
            ("application/json", list.as_bytes().to_vec())
        })
    });
    let path_dir = d.tmp.join("path-complete");
    std::fs::create_dir_all(&path_dir).unwrap();
    let kubeconfig = path_dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: alpha\n\
             clusters:\n- name: local\n  cluster:\n    server: {api}\n\
             - name: nowhere\n  cluster:\n    server: http://127.0.0.1:9\n\
             users:\n- name: me\n  user:\n    token: t\n\
             contexts:\n- name: alpha\n  context:\n    cluster: local\n    user: me\n\
             - name: beta\n  context:\n    cluster: nowhere\n    user: me\n"
        ),
    )
    .unwrap();
    for p in PLUGINS {
        std::os::unix::fs::symlink(unpacked.join(BIN), path_dir.join(p.link)).unwrap();
    }

    // Without kubectl_complete-* on PATH, kubectl has nothing to ask: no subcommands offered.
    let (values, _) = kubectl_complete(&path_dir, &kubeconfig, &["mtls-certs", ""]);
    assert!(!values.contains(&"gen".to_string()), "{values:?}");

    for p in PLUGINS {
        let complete = format!("kubectl_complete-{}", p.link.trim_start_matches("kubectl-"));
        std::os::unix::fs::symlink(unpacked.join(BIN), path_dir.join(&complete)).unwrap();
    }
    let subcommands = |plugin: &str| -> Vec<&'static str> {
        match plugin {
            "mtls-certs" => vec!["gen", "issue", "inspect", "verify", "secret", "completion"],
            "mtls-egress" => vec![
                "expose",
                "enable",
                "disable",
                "status",
                "connect",
                "disconnect",
                "completion",
            ],
            "mtls-lockdown" => vec!["apply", "remove", "explain", "completion"],
            "mtls-probe" => vec!["check", "direct", "doctor", "completion"],
            other => panic!("{other}"),
        }
    };
    for p in PLUGINS {
        let (values, directive) = kubectl_complete(&path_dir, &kubeconfig, &[p.name, ""]);
        for sub in subcommands(p.name) {
            assert!(
                values.iter().any(|v| v == sub),
                "{}: {sub} in {values:?}",
                p.name
            );
        }
        assert_eq!(
            directive, ":4",
            "{}: no file names for a subcommand",
            p.name
        );
        // Flags of the first subcommand, global ones included.
        let sub = subcommands(p.name)[0];
        let (values, _) = kubectl_complete(&path_dir, &kubeconfig, &[p.name, sub, "--"]);
        for flag in ["--context", "--namespace", "--kubeconfig", "--help"] {
            assert!(
                values.iter().any(|v| v == flag),
                "{} {sub}: {flag} in {values:?}",
                p.name
            );
        }
        // --context from the kubeconfig, as a separate word and after '='.
        let (values, directive) =
            kubectl_complete(&path_dir, &kubeconfig, &[p.name, sub, "--context", ""]);
        assert_eq!(values, ["alpha", "beta"], "{}", p.name);
        assert_eq!(directive, ":4");
        let (values, _) = kubectl_complete(&path_dir, &kubeconfig, &[p.name, sub, "--context=b"]);
        assert_eq!(values, ["--context=beta"], "{}", p.name);
        // -n from the cluster of the current context, and nothing (quickly) from one that is down.
        let (values, _) = kubectl_complete(&path_dir, &kubeconfig, &[p.name, sub, "-n", ""]);
        assert_eq!(values, ["mtls-demo", "istio-system"], "{}", p.name);
        let (values, directive) = kubectl_complete(
            &path_dir,
            &kubeconfig,
            &[p.name, sub, "--context", "beta", "-n", ""],
        );
        assert!(values.is_empty(), "{values:?}");
        assert_eq!(directive, ":4");
    }
    // A value enum: --key-type's values.
    let (values, _) = kubectl_complete(
        &path_dir,
        &kubeconfig,
        &["mtls-certs", "gen", "--key-type", "rsa"],
    );
    assert_eq!(values, ["rsa-2048", "rsa-3072", "rsa-4096"]);
    // A path: the shell completes file names (directive 0, cobra's default).
    let (_, directive) = kubectl_complete(&path_dir, &kubeconfig, &["mtls-certs", "inspect", ""]);
    assert_eq!(directive, ":0");
}
