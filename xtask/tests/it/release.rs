//! The release workflow (`.github/workflows/release.yml`), xtask's `RELEASE_TARGETS` and the
//! manifests the release renders (`cargo xtask index`) name the same platforms.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use xtask::dist::{PLUGINS, RELEASE_TARGETS, VERSION, krew_platform, sha256_hex, workspace_root};
use xtask::krew::{self, SUPPORTED_PLATFORMS};

/// `(target, os, arch)` of every entry of the workflow's build matrix.
fn workflow_matrix() -> Vec<(String, String, String)> {
    let path = workspace_root().join(".github/workflows/release.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let include = doc["jobs"]["archive"]["strategy"]["matrix"]["include"]
        .as_array()
        .expect("jobs.archive.strategy.matrix.include");
    include
        .iter()
        .map(|e| {
            let field = |k: &str| {
                e[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {e}"))
                    .to_string()
            };
            (field("target"), field("os"), field("arch"))
        })
        .collect()
}

#[test]
fn the_workflow_matrix_builds_exactly_xtasks_release_targets_for_their_krew_platforms() {
    let matrix = workflow_matrix();
    let targets: BTreeSet<&str> = matrix.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(targets.len(), matrix.len(), "no target twice: {matrix:?}");
    assert_eq!(targets, RELEASE_TARGETS.into_iter().collect());
    for (target, os, arch) in &matrix {
        assert_eq!(
            krew_platform(target),
            Some((os.as_str(), arch.as_str())),
            "{target}: the matrix's os/arch are the ones dist names its archive by"
        );
        assert!(SUPPORTED_PLATFORMS.contains(&(os.as_str(), arch.as_str())));
        if os == "linux" {
            assert!(target.ends_with("-linux-musl"), "{target}: static (musl)");
        }
    }
    let platforms: BTreeSet<(&str, &str)> = matrix
        .iter()
        .map(|(_, o, a)| (o.as_str(), a.as_str()))
        .collect();
    for want in [
        ("linux", "amd64"),
        ("linux", "arm64"),
        ("darwin", "amd64"),
        ("darwin", "arm64"),
        ("windows", "amd64"),
    ] {
        assert!(platforms.contains(&want), "{want:?} is released");
    }
}

fn xtask_index(dist: &Path, krew_dir: &Path, index: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("index")
        .arg("--dist")
        .arg(dist)
        .arg("--krew")
        .arg(krew_dir)
        .arg("--index")
        .arg(index)
        .output()
        .unwrap()
}

#[test]
fn the_release_manifests_select_exactly_the_workflows_platforms_with_each_archives_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    let krew_dir = tmp.path().join("krew");
    let index = tmp.path().join("index");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::create_dir_all(&krew_dir).unwrap();
    std::fs::copy(
        workspace_root().join("krew/template.yaml"),
        krew_dir.join("template.yaml"),
    )
    .unwrap();
    // Stand-ins for the jobs' artifacts: distinct bytes per platform, so each sha256 differs.
    let matrix = workflow_matrix();
    for (target, os, arch) in &matrix {
        let name = krew::archive_file_name(VERSION, os, arch);
        std::fs::write(dist.join(name), format!("archive for {target}")).unwrap();
    }

    // One archive missing: the release step fails and names it.
    let (_, os, arch) = &matrix[matrix.len() - 1];
    let last = dist.join(krew::archive_file_name(VERSION, os, arch));
    let kept = std::fs::read(&last).unwrap();
    std::fs::remove_file(&last).unwrap();
    let out = xtask_index(&dist, &krew_dir, &index);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&krew::archive_file_name(VERSION, os, arch)),
        "{err}"
    );
    std::fs::write(&last, kept).unwrap();

    let out = xtask_index(&dist, &krew_dir, &index);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: BTreeSet<(String, String)> = matrix
        .iter()
        .map(|(_, o, a)| (o.clone(), a.clone()))
        .collect();
    for p in PLUGINS {
        let file = format!("{}.yaml", p.name);
        let text = std::fs::read_to_string(index.join("plugins").join(&file)).unwrap();
        assert_eq!(
            text,
            std::fs::read_to_string(krew_dir.join("plugins").join(&file)).unwrap(),
            "the index serves what krew/plugins records"
        );
        let m = krew::validate(&file, &text).unwrap_or_else(|e| panic!("{file}: {e:?}"));
        let mut selected = BTreeSet::new();
        for platform in m.spec.unwrap().platforms.unwrap() {
            let sel = platform.selector.unwrap().selected_platforms();
            assert_eq!(sel.len(), 1, "{file}: one platform per entry");
            let (os, arch) = sel[0];
            assert!(selected.insert((os.to_string(), arch.to_string())));
            let archive = krew::archive_file_name(VERSION, os, arch);
            assert!(platform.uri.unwrap().ends_with(&format!("/{archive}")));
            let bytes = std::fs::read(dist.join(&archive)).unwrap();
            assert_eq!(
                platform.sha256,
                Some(sha256_hex(&bytes)),
                "{file} {os}/{arch}"
            );
            let bin = platform.bin.unwrap();
            assert_eq!(bin.ends_with(".exe"), os == "windows", "{file} {os}: {bin}");
        }
        assert_eq!(
            selected, want,
            "{file}: the manifest's platforms are the matrix's"
        );
    }
}
