//! The committed krew manifests against krew's rules, and the validator against broken manifests.

use std::path::PathBuf;

use xtask::dist::{BIN, PLUGINS, REPOSITORY, VERSION, check_manifests, workspace_root};
use xtask::krew::{self, ArchiveRef, Template};

fn krew_dir() -> PathBuf {
    workspace_root().join("krew")
}

fn committed(name: &str) -> String {
    let path = krew_dir().join("plugins").join(format!("{name}.yaml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_committed_manifest_passes_krew_and_project_rules() {
    for p in PLUGINS {
        let file = format!("{}.yaml", p.name);
        let m = krew::validate(&file, &committed(p.name))
            .unwrap_or_else(|errors| panic!("{file}:\n  {}", errors.join("\n  ")));
        let errors = krew::project_rules(&m, VERSION, REPOSITORY);
        assert!(errors.is_empty(), "{file}:\n  {}", errors.join("\n  "));
        let spec = m.spec.unwrap();
        assert_eq!(
            spec.version.as_deref(),
            Some(format!("v{VERSION}").as_str())
        );
        for platform in spec.platforms.unwrap() {
            assert_eq!(platform.bin.as_deref(), Some(BIN), "{file}");
        }
    }
}

#[test]
fn committed_manifests_are_what_the_template_renders() {
    let problems = check_manifests(&krew_dir()).unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn manifests_check_command_passes_on_the_committed_index() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["manifests", "--check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A valid manifest to break in the negative tests: mtls-certs rendered for two platforms.
fn good() -> String {
    let template = Template::load(&krew_dir().join("template.yaml")).unwrap();
    let archives =
        [("linux", "amd64", 'a'), ("darwin", "arm64", 'b')].map(|(os, arch, c)| ArchiveRef {
            os: os.into(),
            arch: arch.into(),
            sha256: c.to_string().repeat(64),
        });
    let rendered = template.render(VERSION, REPOSITORY, &archives).unwrap();
    let (file, text) = &rendered[0];
    assert_eq!(file, "mtls-certs.yaml");
    text.clone()
}

/// Asserts that `text` (read as `file`) is rejected with an error containing `needle`.
fn rejected(file: &str, text: &str, needle: &str) {
    match krew::validate(file, text) {
        Ok(_) => panic!("accepted, expected an error containing {needle:?}:\n{text}"),
        Err(errors) => assert!(
            errors.iter().any(|e| e.contains(needle)),
            "expected an error containing {needle:?}, got {errors:?}"
        ),
    }
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in:\n{text}");
    text.replacen(from, to, 1)
}

#[test]
fn the_unbroken_manifest_is_accepted() {
    krew::validate("mtls-certs.yaml", &good()).unwrap();
}

#[test]
fn uppercase_sha256_is_rejected() {
    let text = replace_once(&good(), &"a".repeat(64), &"A".repeat(64));
    rejected("mtls-certs.yaml", &text, "sha256");
}

#[test]
fn short_sha256_is_rejected() {
    let text = replace_once(&good(), &"a".repeat(64), &"a".repeat(63));
    rejected("mtls-certs.yaml", &text, "sha256");
}

#[test]
fn version_without_v_is_rejected() {
    let text = replace_once(
        &good(),
        &format!("version: v{VERSION}"),
        &format!("version: {VERSION}"),
    );
    rejected("mtls-certs.yaml", &text, "spec.version");
}

#[test]
fn version_that_is_not_semver_is_rejected() {
    for bad in ["v1.2", "v01.2.3", "v1.2.3-", "v1.2.3+", "vx.y.z"] {
        let text = replace_once(
            &good(),
            &format!("version: v{VERSION}"),
            &format!("version: {bad}"),
        );
        rejected("mtls-certs.yaml", &text, "spec.version");
    }
    for ok in ["v1.2.3-rc.1", "v0.0.1+build.5", "v10.20.30"] {
        assert!(krew::is_v_semver(ok), "{ok}");
    }
}

#[test]
fn duplicate_platform_is_rejected() {
    let text = replace_once(&good(), "os: darwin", "os: linux");
    let text = replace_once(&text, "arch: arm64", "arch: amd64");
    rejected("mtls-certs.yaml", &text, "overlap");
}

#[test]
fn overlapping_match_expressions_are_rejected() {
    // darwin/arm64 replaced by "every linux": overlaps the linux/amd64 entry.
    let good = good();
    let text = replace_once(
        &good,
        "matchLabels:\n        arch: arm64\n        os: darwin",
        "matchExpressions:\n        - key: os\n          operator: In\n          values: [linux]",
    );
    rejected("mtls-certs.yaml", &text, "overlap");
}

#[test]
fn multi_line_short_description_is_rejected() {
    let m = krew::validate("mtls-certs.yaml", &good()).unwrap();
    let short = m.spec.unwrap().short_description.unwrap();
    let text = replace_once(
        &good(),
        &format!("shortDescription: {short}"),
        &format!("shortDescription: \"{short}\\nsecond line\""),
    );
    rejected("mtls-certs.yaml", &text, "single line");
}

#[test]
fn name_different_from_file_name_is_rejected() {
    rejected("mtls-egress.yaml", &good(), "metadata.name");
    let text = replace_once(&good(), "name: mtls-certs", "name: mtls-other");
    rejected("mtls-certs.yaml", &text, "metadata.name");
}

#[test]
fn unsafe_plugin_names_are_rejected() {
    let text = replace_once(&good(), "name: mtls-certs", "name: mtls.certs");
    rejected("mtls.certs.yaml", &text, "not allowed");
    let text = replace_once(&good(), "name: mtls-certs", "name: nul");
    rejected("nul.yaml", &text, "not allowed");
}

#[test]
fn wrong_api_version_and_kind_are_rejected() {
    let text = replace_once(&good(), "v1alpha2", "v1alpha1");
    rejected("mtls-certs.yaml", &text, "apiVersion");
    let text = replace_once(&good(), "kind: Plugin", "kind: Plugins");
    rejected("mtls-certs.yaml", &text, "kind");
}

#[test]
fn selector_keys_other_than_os_and_arch_are_rejected() {
    let text = replace_once(&good(), "os: darwin", "os: darwin\n        distro: debian");
    rejected("mtls-certs.yaml", &text, "only os and arch");
}

#[test]
fn unsupported_platform_is_rejected() {
    let text = replace_once(&good(), "arch: arm64", "arch: riscv64");
    rejected("mtls-certs.yaml", &text, "no platform krew supports");
}

#[test]
fn uri_that_is_not_an_archive_is_rejected() {
    let text = replace_once(&good(), "linux_amd64.tar.gz", "linux_amd64.tar.xz");
    rejected("mtls-certs.yaml", &text, ".tar.gz or .zip");
}

#[test]
fn missing_bin_and_description_are_rejected() {
    let text = replace_once(&good(), "    bin: kubectl-mtls\n", "");
    rejected("mtls-certs.yaml", &text, ".bin is missing");
    let good = good();
    let start = good.find("  description: |").unwrap();
    let end = start + good[start..].find("  caveats:").unwrap();
    let text = format!("{}{}", &good[..start], &good[end..]);
    rejected("mtls-certs.yaml", &text, "spec.description is missing");
}

#[test]
fn windows_bin_without_exe_is_rejected() {
    let text = replace_once(&good(), "os: darwin", "os: windows");
    let text = replace_once(&text, "darwin_arm64.tar.gz", "windows_arm64.zip");
    rejected("mtls-certs.yaml", &text, ".exe");
}

#[test]
fn project_rules_catch_a_foreign_version_and_bin() {
    let m = krew::validate("mtls-certs.yaml", &good()).unwrap();
    assert!(krew::project_rules(&m, VERSION, REPOSITORY).is_empty());
    let errors = krew::project_rules(&m, "9.9.9", REPOSITORY);
    assert!(errors.iter().any(|e| e.contains("v9.9.9")), "{errors:?}");
    // The per-plugin executables of before the multi-call binary are not in the archive.
    for wrong in ["kubectl-mtls_certs", "kubectl-mtls-certs"] {
        let text = replace_once(&good(), "bin: kubectl-mtls\n", &format!("bin: {wrong}\n"));
        let m = krew::validate("mtls-certs.yaml", &text).unwrap();
        let errors = krew::project_rules(&m, VERSION, REPOSITORY);
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("must be \"{BIN}\""))),
            "{wrong}: {errors:?}"
        );
    }
}

#[test]
fn project_rules_reject_a_plugin_the_multi_call_binary_does_not_run() {
    let text = replace_once(&good(), "name: mtls-certs", "name: mtls-other");
    let m = krew::validate("mtls-other.yaml", &text).unwrap();
    let errors = krew::project_rules(&m, VERSION, REPOSITORY);
    assert!(
        errors.iter().any(|e| e.contains("kubectl-mtls_other")),
        "{errors:?}"
    );
}

#[test]
fn krew_link_names_follow_the_underscore_rule() {
    for p in PLUGINS {
        assert_eq!(krew::link_name(p.name), p.link);
    }
}

#[test]
fn every_index_add_in_the_docs_names_the_index_repository_dist_publishes() {
    // krew clones the URL and reads plugins/ at the root of the clone; dist writes exactly that
    // tree for the repository the template's `index` names, so that is the URL to give krew.
    let template = Template::load(&krew_dir().join("template.yaml")).unwrap();
    assert!(template.index.ends_with(".git"), "{}", template.index);
    assert_ne!(
        template.index.trim_end_matches(".git"),
        REPOSITORY,
        "the source repository has no plugins/ at its root"
    );
    let mut seen = 0;
    for doc in ["README.md", "krew/README.md", "CONTRIBUTING.md"] {
        let Ok(body) = std::fs::read_to_string(workspace_root().join(doc)) else {
            continue;
        };
        // The commands (in code blocks), not prose about them.
        for line in body
            .lines()
            .filter(|l| l.trim_start().starts_with("kubectl krew index add"))
        {
            let url = line
                .split_whitespace()
                .skip_while(|w| *w != "add")
                .nth(2)
                .unwrap_or_default();
            assert_eq!(url, template.index, "{doc}: {line}");
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "README.md and krew/README.md show `kubectl krew index add`"
    );
}
