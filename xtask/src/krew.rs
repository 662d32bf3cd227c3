//! Krew plugin manifests: the types, krew's validation rules, and rendering the four manifests
//! from `krew/template.yaml`.
//!
//! The rules are krew's own (`internal/index/validation/validate.go` and
//! `cmd/validate-krew-manifest`, which krew-index CI runs on every manifest), reimplemented here
//! because krew cannot be fetched on the build machine. [`project_rules`] adds ours on top.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize, Serializer};

/// The only `apiVersion` krew accepts.
pub const API_VERSION: &str = "krew.googlecontainertools.github.com/v1alpha2";
/// The only `kind` krew accepts.
pub const KIND: &str = "Plugin";

/// Every manifest's `bin` (plus `.exe` on windows): the one multi-call executable in the
/// archive. krew links `kubectl-<name, '-' → '_'>` ([`link_name`]) to it, and the link name it is
/// started as selects the plugin.
pub const BIN: &str = "kubectl-mtls";

/// The `<os, arch>` pairs krew supports (`allPlatforms` in validate-krew-manifest); every
/// platform must select at least one, and no pair may be selected by two platforms.
pub const SUPPORTED_PLATFORMS: &[(&str, &str)] = &[
    ("windows", "386"),
    ("windows", "amd64"),
    ("windows", "arm64"),
    ("linux", "386"),
    ("linux", "amd64"),
    ("linux", "arm"),
    ("linux", "arm64"),
    ("linux", "ppc64le"),
    ("darwin", "386"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
];

/// Windows device names krew refuses as plugin names.
const WINDOWS_FORBIDDEN: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A krew plugin manifest. Every field is optional so that a broken manifest still parses and
/// the validator can say what is missing; unknown fields are ignored, as krew ignores them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Manifest {
    /// Must be [`API_VERSION`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Must be [`KIND`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Holds the plugin name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Everything else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<Spec>,
}

/// `metadata` of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// The plugin name; equals the file name without `.yaml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `spec` of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Spec {
    /// `v` + semantic version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Project page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// One line for `kubectl krew search`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_description: Option<String>,
    /// A few lines for `kubectl krew info`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "block_string"
    )]
    pub description: Option<String>,
    /// Shown after installation.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "block_string"
    )]
    pub caveats: Option<String>,
    /// One entry per `<os, arch>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<Platform>>,
}

/// One downloadable archive and the binary inside it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Platform {
    /// Which `<os, arch>` pairs this entry serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// Where the archive is downloaded from (`.tar.gz` or `.zip`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Lowercase hex SHA-256 of the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The executable inside the installed directory that krew links onto `PATH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin: Option<String>,
    /// File operations; absent means "extract everything".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileOperation>>,
}

/// A Kubernetes label selector over the labels `os` and `arch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Selector {
    /// Exact label values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Set-based requirements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<Requirement>>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In`/`NotIn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// One `files` entry: copy `from` (a glob) to `to`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileOperation {
    /// Source glob inside the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Destination inside the install directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// Multi-line strings as YAML literal blocks (`|`), the way people write krew manifests.
fn block_string<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(text) if text.contains('\n') => serde_saphyr::LitStr(text).serialize(s),
        Some(text) => s.serialize_str(text),
        None => s.serialize_none(),
    }
}

impl Selector {
    /// Whether the selector selects the labels `{os, arch}`; `Err` for a selector Kubernetes
    /// would not accept (unknown operator, wrong number of values).
    pub fn matches(&self, os: &str, arch: &str) -> Result<bool, String> {
        let label = |key: &str| match key {
            "os" => Some(os),
            "arch" => Some(arch),
            _ => None,
        };
        let mut selected = true;
        for (key, value) in self.match_labels.iter().flatten() {
            selected &= label(key) == Some(value.as_str());
        }
        for req in self.match_expressions.iter().flatten() {
            let values = req.values.as_deref().unwrap_or_default();
            let have = label(&req.key);
            let ok = match req.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!("operator {} needs values", req.operator));
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!("operator {} takes no values", req.operator));
                }
                "In" => have.is_some_and(|v| values.iter().any(|x| x == v)),
                "NotIn" => !have.is_some_and(|v| values.iter().any(|x| x == v)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                other => return Err(format!("unknown operator {other:?}")),
            };
            selected &= ok;
        }
        Ok(selected)
    }

    /// The supported `<os, arch>` pairs this selector selects.
    pub fn selected_platforms(&self) -> Vec<(&'static str, &'static str)> {
        SUPPORTED_PLATFORMS
            .iter()
            .copied()
            .filter(|(os, arch)| self.matches(os, arch) == Ok(true))
            .collect()
    }
}

/// Parses a manifest file's text and checks it with krew's rules; `file_name` is the file's name
/// (`mtls-certs.yaml`). Returns the manifest, or every violation found.
pub fn validate(file_name: &str, text: &str) -> Result<Manifest, Vec<String>> {
    let manifest: Manifest = serde_saphyr::from_str(text)
        .map_err(|e| vec![format!("{file_name}: not a plugin manifest: {e}")])?;
    let errors = krew_rules(file_name, &manifest);
    if errors.is_empty() {
        Ok(manifest)
    } else {
        Err(errors)
    }
}

/// Krew's rules for a parsed manifest read from `file_name`: `ValidatePlugin`, the supported and
/// non-overlapping platform checks of validate-krew-manifest, the single-line short description,
/// the archive kinds krew can unpack, and `.exe` binaries on Windows.
pub fn krew_rules(file_name: &str, m: &Manifest) -> Vec<String> {
    let mut errors = Vec::new();
    let mut fail = |msg: String| errors.push(msg);

    let Some(stem) = file_name.strip_suffix(".yaml") else {
        fail(format!("{file_name}: manifest file name must end in .yaml"));
        return errors;
    };
    if m.api_version.as_deref() != Some(API_VERSION) {
        fail(format!(
            "apiVersion is {:?}, must be {API_VERSION:?}",
            m.api_version
        ));
    }
    if m.kind.as_deref() != Some(KIND) {
        fail(format!("kind is {:?}, must be {KIND:?}", m.kind));
    }
    if !is_safe_plugin_name(stem) {
        fail(format!(
            "plugin name {stem:?} (from the file name) is not allowed, must match ^[\\w-]+$"
        ));
    }
    let name = m.metadata.as_ref().and_then(|md| md.name.as_deref());
    if name != Some(stem) {
        fail(format!(
            "metadata.name is {name:?}, must equal the file name {stem:?}"
        ));
    }
    let spec = m.spec.clone().unwrap_or_default();
    match spec.short_description.as_deref() {
        None | Some("") => fail("spec.shortDescription is missing".into()),
        Some(s) if s.contains(['\n', '\r']) => {
            fail("spec.shortDescription must be a single line".into())
        }
        Some(_) => {}
    }
    if spec
        .description
        .as_deref()
        .is_none_or(|d| d.trim().is_empty())
    {
        fail("spec.description is missing".into());
    }
    match spec.version.as_deref() {
        None | Some("") => fail("spec.version is missing".into()),
        Some(v) if !is_v_semver(v) => fail(format!(
            "spec.version {v:?} is not a semantic version with a leading \"v\""
        )),
        Some(_) => {}
    }
    let platforms = spec.platforms.unwrap_or_default();
    if platforms.is_empty() {
        fail("spec.platforms is empty".into());
    }
    for (i, p) in platforms.iter().enumerate() {
        let at = format!("spec.platforms[{i}]");
        match p.uri.as_deref() {
            None | Some("") => fail(format!("{at}.uri is missing")),
            Some(u) if !(u.ends_with(".tar.gz") || u.ends_with(".zip")) => {
                fail(format!("{at}.uri {u:?} must end in .tar.gz or .zip"))
            }
            Some(_) => {}
        }
        match p.sha256.as_deref() {
            None | Some("") => fail(format!("{at}.sha256 is missing")),
            Some(s) if !is_lower_hex_sha256(s) => {
                fail(format!("{at}.sha256 {s:?} must match ^[a-f0-9]{{64}}$"))
            }
            Some(_) => {}
        }
        if p.bin.as_deref().is_none_or(str::is_empty) {
            fail(format!("{at}.bin is missing"));
        }
        if let Some(files) = &p.files {
            if files.is_empty() {
                fail(format!("{at}.files must be absent or non-empty"));
            }
            for f in files {
                if f.from.as_deref().is_none_or(str::is_empty)
                    || f.to.as_deref().is_none_or(str::is_empty)
                {
                    fail(format!("{at}.files entries need both from and to"));
                }
            }
        }
        let Some(sel) = &p.selector else {
            fail(format!("{at}.selector is missing"));
            continue;
        };
        if sel.match_labels.is_none() && sel.match_expressions.as_ref().is_none_or(Vec::is_empty) {
            fail(format!("{at}.selector is empty"));
            continue;
        }
        if sel.match_labels.as_ref().is_some_and(BTreeMap::is_empty) {
            fail(format!("{at}.selector.matchLabels is given but empty"));
        }
        if sel.match_expressions.as_ref().is_some_and(Vec::is_empty) {
            fail(format!("{at}.selector.matchExpressions is given but empty"));
        }
        let keys = sel
            .match_labels
            .iter()
            .flat_map(|m| m.keys())
            .chain(sel.match_expressions.iter().flatten().map(|r| &r.key));
        for key in keys {
            if key != "os" && key != "arch" {
                fail(format!(
                    "{at}.selector uses key {key:?}; only os and arch are supported"
                ));
            }
        }
        if let Err(e) = sel.matches("linux", "amd64") {
            fail(format!("{at}.selector is invalid: {e}"));
            continue;
        }
        let selected = sel.selected_platforms();
        if selected.is_empty() {
            fail(format!("{at}.selector matches no platform krew supports"));
        }
        let windows = selected.iter().any(|(os, _)| *os == "windows");
        if windows && !p.bin.as_deref().unwrap_or_default().ends_with(".exe") {
            fail(format!("{at}.bin must end in .exe on windows"));
        }
    }
    for (os, arch) in SUPPORTED_PLATFORMS {
        let hits: Vec<usize> = platforms
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.selector
                    .as_ref()
                    .is_some_and(|s| s.matches(os, arch) == Ok(true))
            })
            .map(|(i, _)| i)
            .collect();
        if hits.len() > 1 {
            fail(format!(
                "spec.platforms {hits:?} overlap: each selects {os}/{arch}"
            ));
        }
    }
    errors
}

/// This project's rules on top of krew's: the version is the workspace's, every `bin` is the
/// multi-call executable [`BIN`], the plugin is one that executable runs (its link name is
/// one it dispatches on), the homepage is the repository.
pub fn project_rules(m: &Manifest, version: &str, repository: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let name = m
        .metadata
        .as_ref()
        .and_then(|md| md.name.as_deref())
        .unwrap_or_default();
    let spec = m.spec.clone().unwrap_or_default();
    let want = format!("v{version}");
    if spec.version.as_deref() != Some(want.as_str()) {
        errors.push(format!(
            "spec.version is {:?}, the workspace version is {want:?}",
            spec.version
        ));
    }
    if spec.homepage.as_deref() != Some(repository) {
        errors.push(format!(
            "spec.homepage is {:?}, must be the repository {repository:?}",
            spec.homepage
        ));
    }
    let link = link_name(name);
    if !crate::dist::PLUGINS.iter().any(|p| p.link == link) {
        errors.push(format!(
            "{BIN} does not run a plugin linked as {link:?}: it knows {:?}",
            crate::dist::PLUGINS.map(|p| p.link)
        ));
    }
    for (i, p) in spec.platforms.iter().flatten().enumerate() {
        let windows = p.selector.as_ref().is_some_and(|s| {
            s.selected_platforms()
                .iter()
                .any(|(os, _)| *os == "windows")
        });
        let want = if windows {
            format!("{BIN}.exe")
        } else {
            BIN.to_string()
        };
        if p.bin.as_deref() != Some(want.as_str()) {
            errors.push(format!(
                "spec.platforms[{i}].bin is {:?}, must be {want:?}",
                p.bin
            ));
        }
    }
    errors
}

/// The manifest's `bin` on `os`: [`BIN`], with `.exe` on windows.
pub fn bin_for(os: &str) -> String {
    if os == "windows" {
        format!("{BIN}.exe")
    } else {
        BIN.to_string()
    }
}

/// The link krew creates for plugin `name` (and the executable name kubectl runs for it):
/// `mtls-certs` → `kubectl-mtls_certs`.
pub fn link_name(plugin: &str) -> String {
    format!("kubectl-{}", plugin.replace('-', "_"))
}

/// `^[\w-]+$` (Go's ASCII `\w`) and not a Windows device name.
fn is_safe_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !WINDOWS_FORBIDDEN
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name))
}

fn is_lower_hex_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `v` followed by a semantic version 2.0.0 (krew parses versions with a `v` prefix, strictly).
pub fn is_v_semver(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let (rest, build) = match rest.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (rest, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let numeric = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let ident =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| numeric(p))
        && pre.is_none_or(|p| {
            p.split('.')
                .all(|id| ident(id) && (!id.bytes().all(|b| b.is_ascii_digit()) || numeric(id)))
        })
        && build.is_none_or(|b| b.split('.').all(ident))
}

/// `krew/template.yaml`: what the four manifests share and what each says about itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Template {
    /// `spec.homepage`; `{repository}` is replaced.
    pub homepage: String,
    /// The archive URL; `{repository}`, `{version}`, `{os}`, `{arch}` are replaced.
    pub archive: String,
    /// The git URL of the published index repository (`plugins/*.yaml` at its root), the one
    /// `kubectl krew index add mtls URL` takes.
    pub index: String,
    /// Caveats every plugin shows; `{name}` is replaced.
    #[serde(default)]
    pub caveats: Option<String>,
    /// One entry per plugin, in order.
    pub plugins: Vec<PluginTemplate>,
}

/// One plugin's entry in the template.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginTemplate {
    /// Plugin name (`mtls-certs`).
    pub name: String,
    /// `spec.shortDescription`.
    pub short_description: String,
    /// `spec.description`.
    pub description: String,
    /// Printed after the shared caveats.
    #[serde(default)]
    pub caveats: Option<String>,
}

/// A built archive, as the manifests see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArchiveRef {
    /// krew `os` label.
    pub os: String,
    /// krew `arch` label.
    pub arch: String,
    /// Lowercase hex SHA-256 of the archive.
    pub sha256: String,
}

/// The file name of the archive for one platform: `kubectl-mtls_v0.1.0_linux_amd64.tar.gz`.
pub fn archive_file_name(version: &str, os: &str, arch: &str) -> String {
    format!("kubectl-mtls_v{version}_{os}_{arch}.tar.gz")
}

/// First lines of every rendered manifest.
pub const GENERATED_HEADER: &str =
    "# Generated by `cargo xtask dist` from krew/template.yaml; do not edit by hand.\n";

impl Template {
    /// Reads and parses a template file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Template> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_saphyr::from_str(&text).with_context(|| format!("{}: bad template", path.display()))
    }

    /// Renders every plugin's manifest for `archives` (sorted by os/arch in the output).
    /// Returns `(file name, text)` pairs; every result passes [`krew_rules`] and
    /// [`project_rules`], or this fails.
    pub fn render(
        &self,
        version: &str,
        repository: &str,
        archives: &[ArchiveRef],
    ) -> anyhow::Result<Vec<(String, String)>> {
        if archives.is_empty() {
            bail!("no archives to render manifests for");
        }
        let mut archives = archives.to_vec();
        archives.sort();
        let mut out = Vec::new();
        for p in &self.plugins {
            let fill = |s: &str| {
                s.replace("{repository}", repository)
                    .replace("{version}", version)
                    .replace("{name}", &p.name)
            };
            let mut platforms = Vec::new();
            for a in &archives {
                let uri = fill(&self.archive)
                    .replace("{os}", &a.os)
                    .replace("{arch}", &a.arch);
                let file = archive_file_name(version, &a.os, &a.arch);
                if !uri.ends_with(&format!("/{file}")) {
                    bail!("template archive URL {uri} does not end in /{file}");
                }
                platforms.push(Platform {
                    selector: Some(Selector {
                        match_labels: Some(BTreeMap::from([
                            ("os".to_string(), a.os.clone()),
                            ("arch".to_string(), a.arch.clone()),
                        ])),
                        match_expressions: None,
                    }),
                    uri: Some(uri),
                    sha256: Some(a.sha256.clone()),
                    bin: Some(bin_for(&a.os)),
                    files: None,
                });
            }
            let caveats = [self.caveats.as_deref(), p.caveats.as_deref()]
                .into_iter()
                .flatten()
                .map(|c| fill(c).trim_end().to_string())
                .collect::<Vec<_>>()
                .join("\n");
            let manifest = Manifest {
                api_version: Some(API_VERSION.into()),
                kind: Some(KIND.into()),
                metadata: Some(Metadata {
                    name: Some(p.name.clone()),
                }),
                spec: Some(Spec {
                    version: Some(format!("v{version}")),
                    homepage: Some(fill(&self.homepage)),
                    short_description: Some(fill(&p.short_description)),
                    description: Some(format!("{}\n", fill(&p.description).trim_end())),
                    caveats: (!caveats.is_empty()).then(|| format!("{caveats}\n")),
                    platforms: Some(platforms),
                }),
            };
            let file_name = format!("{}.yaml", p.name);
            let text = format!(
                "{GENERATED_HEADER}{}",
                // Block scalars only where we ask for them (descriptions), never folded URLs.
                serde_saphyr::to_string_with_options(
                    &manifest,
                    serde_saphyr::ser_options! { prefer_block_scalars: false },
                )
                .context("cannot serialize a manifest")?
            );
            let mut errors = match validate(&file_name, &text) {
                Ok(parsed) => project_rules(&parsed, version, repository),
                Err(errors) => errors,
            };
            if let Ok(parsed) = validate(&file_name, &text)
                && parsed != manifest
            {
                errors.push("the rendered YAML does not read back as what was rendered".into());
            }
            if !errors.is_empty() {
                bail!(
                    "rendered {file_name} is invalid:\n  {}",
                    errors.join("\n  ")
                );
            }
            out.push((file_name, text));
        }
        Ok(out)
    }
}

/// The archives a committed manifest points at (from its `matchLabels` selectors).
pub fn archives_of(m: &Manifest) -> Vec<ArchiveRef> {
    let mut out = Vec::new();
    for p in m.spec.iter().flat_map(|s| s.platforms.iter().flatten()) {
        let labels = p.selector.as_ref().and_then(|s| s.match_labels.as_ref());
        if let (Some(labels), Some(sha)) = (labels, &p.sha256)
            && let (Some(os), Some(arch)) = (labels.get("os"), labels.get("arch"))
        {
            out.push(ArchiveRef {
                os: os.clone(),
                arch: arch.clone(),
                sha256: sha.clone(),
            });
        }
    }
    out
}
