//! [`KubeArgs`]: kubectl's global connection flags, and a `kube::Client` built from them the way
//! kubectl would build one.
//!
//! kubectl does not pass its own flags to plugins, so every plugin takes `--kubeconfig`,
//! `--context`, `--cluster`, `--user`, `-n/--namespace`, `--request-timeout`, `--as` and
//! `--as-group` itself, with kubectl's meaning:
//!
//! - `--kubeconfig PATH` names one file and wins over `KUBECONFIG`;
//! - otherwise `KUBECONFIG` is a list of files merged in order (files that do not exist are
//!   skipped), and without it `~/.kube/config` is read;
//! - only when no kubeconfig exists at all is the in-cluster service account used;
//! - the namespace is `-n`, else the context's namespace, else `default`.
//!
//! Nothing here contacts the cluster: building a client only reads files.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

use super::error::ClusterError;
use crate::error::one_line;

/// kubectl's global connection flags; flatten into every plugin's top-level command.
///
/// All flags are `global`, so they are accepted after any subcommand too.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// Path to the kubeconfig file to use (instead of $KUBECONFIG or ~/.kube/config)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The kubeconfig cluster to use (overrides the context's cluster)
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The kubeconfig user to use (overrides the context's user)
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// The namespace to use (default: the context's namespace, or the command's own default)
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// How long to wait for a single request, e.g. 30s, 1m, 1m30s (a plain number means seconds; 0 waits forever)
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_request_timeout)]
    pub request_timeout: Option<Duration>,

    /// User to impersonate for the requests
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,

    /// Group to impersonate for the requests (repeatable)
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,
}

impl KubeArgs {
    /// The client configuration these flags select: kubeconfig (merged, with context/cluster/user
    /// overrides), or the in-cluster service account when no kubeconfig exists; plus the request
    /// timeout and impersonation. `cluster_url` is the server to name in error messages.
    pub async fn config(&self) -> Result<Config, ClusterError> {
        self.load().await.map(|(config, _)| config)
    }

    /// The configuration plus a description of where it came from (for error messages).
    async fn load(&self) -> Result<(Config, String), ClusterError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        };
        let source = match &self.kubeconfig {
            Some(path) => Source::Flag(path.clone()),
            None => sources_from_env(
                std::env::var_os("KUBECONFIG").as_deref(),
                std::env::home_dir(),
            ),
        };
        let mut origin = source.describe();
        let mut config = match load_kubeconfig(&source)? {
            Some(kubeconfig) => {
                let contexts: Vec<String> =
                    kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| kubeconfig_error(e, &source, &contexts, self.context.is_some()))?
            }
            None => {
                let overridden =
                    self.context.is_some() || self.cluster.is_some() || self.user.is_some();
                match Config::incluster() {
                    Ok(config) if !overridden => {
                        origin = "in-cluster service account".into();
                        config
                    }
                    _ => {
                        return Err(ClusterError::NoKubeconfig {
                            looked: source.describe(),
                        });
                    }
                }
            }
        };
        if let Some(timeout) = self.request_timeout.filter(|t| !t.is_zero()) {
            config.connect_timeout = Some(timeout);
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
            // Count the read timeout from when the request is written, not from when a pooled
            // connection went idle.
            config.reset_reader_on_write = true;
        }
        if let Some(user) = &self.as_user {
            config.auth_info.impersonate = Some(user.clone());
        }
        if !self.as_group.is_empty() {
            config.auth_info.impersonate_groups = Some(self.as_group.clone());
        }
        tracing::debug!(server = %config.cluster_url, namespace = %config.default_namespace, from = %origin, "kube config loaded");
        Ok((config, origin))
    }

    /// The merged kubeconfig these flags name (`--kubeconfig`, else `KUBECONFIG`, else
    /// `~/.kube/config`), without selecting a context; `None` when no file exists.
    pub fn kubeconfig(&self) -> Result<Option<Kubeconfig>, ClusterError> {
        let source = match &self.kubeconfig {
            Some(path) => Source::Flag(path.clone()),
            None => sources_from_env(
                std::env::var_os("KUBECONFIG").as_deref(),
                std::env::home_dir(),
            ),
        };
        load_kubeconfig(&source)
    }

    /// A client for the selected cluster. Reads files only; sends no request.
    pub async fn client(&self) -> Result<Client, ClusterError> {
        let (config, origin) = self.load().await?;
        build_client(config, &origin)
    }

    /// A client plus the effective namespace: `-n` if given, else the context's namespace, else
    /// `default`. An invalid `-n` is refused before anything is read.
    pub async fn connect(&self) -> Result<(Client, String), ClusterError> {
        self.connect_inner(None).await
    }

    /// Like [`connect`](Self::connect), but without `-n` the namespace is `default_ns` (e.g.
    /// `istio-system`) rather than the context's namespace.
    pub async fn connect_with_default_namespace(
        &self,
        default_ns: &str,
    ) -> Result<(Client, String), ClusterError> {
        self.connect_inner(Some(default_ns)).await
    }

    async fn connect_inner(
        &self,
        default_ns: Option<&str>,
    ) -> Result<(Client, String), ClusterError> {
        if let Some(ns) = &self.namespace {
            validate_namespace(ns)?;
        }
        let (config, origin) = self.load().await?;
        let namespace = match (&self.namespace, default_ns) {
            (Some(ns), _) => ns.clone(),
            (None, Some(ns)) => ns.to_string(),
            (None, None) => config.default_namespace.clone(),
        };
        Ok((build_client(config, &origin)?, namespace))
    }
}

/// Builds the client (TLS and auth setup; no request). Failures here come from the kubeconfig's
/// certificates, keys, auth plugin or proxy settings.
fn build_client(config: Config, origin: &str) -> Result<Client, ClusterError> {
    let auth = config.auth_info.clone();
    super::client::client(config).map_err(|e| {
        // rustls refuses what Go's TLS (kubectl) accepts: an X.509 v1 or v2 client certificate.
        // Its own message names webpki internals; the certificate itself says what is wrong.
        if let Some(version) = client_certificate_version(&auth).filter(|v| *v < 3) {
            return ClusterError::ClientCertificateVersion {
                file: origin.to_string(),
                version,
            };
        }
        ClusterError::Kubeconfig {
            file: origin.to_string(),
            reason: one_line(&e.to_string(), 300),
        }
    })
}

/// The X.509 version (1, 2 or 3) of the kubeconfig user's client certificate, from
/// `client-certificate-data` or the `client-certificate` file; `None` without one, or when it
/// cannot be read (the caller then reports the original error).
fn client_certificate_version(auth: &kube::config::AuthInfo) -> Option<u32> {
    let pem = match (&auth.client_certificate_data, &auth.client_certificate) {
        (Some(data), _) => decode_base64(data)?,
        (None, Some(path)) => std::fs::read(path).ok()?,
        (None, None) => return None,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.version().0 + 1)
}

/// Standard base64 (the encoding of a kubeconfig's `*-data` fields); whitespace is skipped.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0u8);
    for byte in text.bytes().filter(|b| !b.is_ascii_whitespace()) {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 1;
        if count == 4 {
            out.extend_from_slice(&bits.to_be_bytes()[1..]);
            (bits, count) = (0, 0);
        }
    }
    match count {
        0 => {}
        2 => out.push((bits >> 4) as u8),
        3 => out.extend_from_slice(&((bits >> 2) as u16).to_be_bytes()),
        _ => return None,
    }
    Some(out)
}

/// Parses a kubectl-style `--request-timeout`: `0`, a plain number of seconds (`30`), or Go
/// duration syntax (`30s`, `1m`, `1m30s`, `1.5h`, `500ms`). `0` means no timeout.
pub fn parse_request_timeout(value: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {value:?}: use a number with a unit, like 30s, 1m or 1m30s (a plain number means seconds, 0 means no timeout)"
        )
    };
    let text = value.trim();
    if text.is_empty() {
        return Err(invalid());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| invalid());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(digits);
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let number: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

/// Checks that `namespace` is a valid namespace name: an RFC 1123 label.
pub fn validate_namespace(namespace: &str) -> Result<(), ClusterError> {
    let fail = |reason: &str| {
        Err(ClusterError::InvalidNamespace {
            value: one_line(namespace, 80),
            reason: reason.to_string(),
        })
    };
    if namespace.is_empty() {
        return fail("it is empty");
    }
    if namespace.len() > 63 {
        return fail("it is longer than 63 characters");
    }
    if let Some(c) = namespace
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return fail(&format!("it contains {c:?}"));
    }
    if namespace.starts_with('-') || namespace.ends_with('-') {
        return fail("it starts or ends with '-'");
    }
    Ok(())
}

/// Where the kubeconfig comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// `--kubeconfig PATH`: exactly this file, which must exist.
    Flag(PathBuf),
    /// `KUBECONFIG`: these files, merged in order; missing ones are skipped.
    Env(Vec<PathBuf>),
    /// `~/.kube/config` (None when there is no home directory).
    Default(Option<PathBuf>),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Flag(path) => path.display().to_string(),
            Source::Env(paths) => {
                let joined = std::env::join_paths(paths)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| {
                        paths
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(":")
                    });
                format!("KUBECONFIG={joined}")
            }
            Source::Default(Some(path)) => path.display().to_string(),
            Source::Default(None) => "~/.kube/config (no home directory)".into(),
        }
    }
}

/// kubectl's rule: a non-empty `KUBECONFIG` list replaces `~/.kube/config`.
fn sources_from_env(kubeconfig_env: Option<&OsStr>, home: Option<PathBuf>) -> Source {
    let paths: Vec<PathBuf> = kubeconfig_env
        .map(|value| {
            std::env::split_paths(value)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    if paths.is_empty() {
        Source::Default(home.map(|h| h.join(".kube").join("config")))
    } else {
        Source::Env(paths)
    }
}

/// Reads and merges the kubeconfig; `None` when no file exists at all (in-cluster fallback).
fn load_kubeconfig(source: &Source) -> Result<Option<Kubeconfig>, ClusterError> {
    let read = |path: &Path| {
        Kubeconfig::read_from(path).map_err(|e| ClusterError::Kubeconfig {
            file: path.display().to_string(),
            reason: read_reason(e),
        })
    };
    match source {
        Source::Flag(path) => read(path).map(Some),
        Source::Default(Some(path)) if path.exists() => read(path).map(Some),
        Source::Default(_) => Ok(None),
        Source::Env(paths) => {
            let mut merged: Option<Kubeconfig> = None;
            for path in paths.iter().filter(|p| p.exists()) {
                let next = read(path)?;
                merged = Some(match merged {
                    None => next,
                    Some(m) => m.merge(next).map_err(|e| ClusterError::Kubeconfig {
                        file: source.describe(),
                        reason: e.to_string(),
                    })?,
                });
            }
            Ok(merged)
        }
    }
}

fn read_reason(e: KubeconfigError) -> String {
    match e {
        KubeconfigError::ReadConfig(io, _) => one_line(&io.to_string(), 200),
        other => one_line(&other.to_string(), 300),
    }
}

fn kubeconfig_error(
    e: KubeconfigError,
    source: &Source,
    contexts: &[String],
    context_from_flag: bool,
) -> ClusterError {
    let file = source.describe();
    match e {
        KubeconfigError::LoadContext(context) => {
            let available = if contexts.is_empty() {
                "none".to_string()
            } else {
                one_line(&contexts.join(", "), 200)
            };
            ClusterError::ContextNotFound {
                context: one_line(&context, 100),
                file,
                available,
                from_flag: context_from_flag,
            }
        }
        KubeconfigError::CurrentContextNotSet => ClusterError::Kubeconfig {
            file,
            reason: "no current-context is set".into(),
        },
        KubeconfigError::LoadClusterOfContext(cluster) => ClusterError::Kubeconfig {
            file,
            reason: format!("cluster {cluster:?} is not defined"),
        },
        other => ClusterError::Kubeconfig {
            file,
            reason: one_line(&other.to_string(), 300),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_env_list_replaces_the_default_file() {
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(
            sources_from_env(None, home.clone()),
            Source::Default(Some(PathBuf::from("/home/u/.kube/config")))
        );
        assert_eq!(
            sources_from_env(Some(OsStr::new("")), home.clone()),
            Source::Default(Some(PathBuf::from("/home/u/.kube/config")))
        );
        let joined = std::env::join_paths(["/a", "", "/b"]).unwrap();
        assert_eq!(
            sources_from_env(Some(&joined), home),
            Source::Env(vec![PathBuf::from("/a"), PathBuf::from("/b")])
        );
    }

    #[test]
    fn base64_of_kubeconfig_data_fields() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64("Zm9v\nYmFy").unwrap(), b"foobar");
        assert!(decode_base64("Zm9v!").is_none());
        assert!(decode_base64("Z").is_none());
    }

    /// A client certificate made with `openssl x509 -req` without extensions (OpenSSL 3.0.22):
    /// X.509 version 1, which kubectl accepts and rustls refuses. Public data only.
    const V1_CLIENT_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIB3TCBxgIUGizbI4ztw9/KdazhTIHoFkhg5FcwDQYJKoZIhvcNAQELBQAwEjEQ
MA4GA1UEAwwHa2FwaS1jYTAeFw0yNjEyMDIxNzE3MTFaFw0yNjEyMDMxNzE3MTFa
MBAxDjAMBgNVBAMMBWFsaWNlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfZ4R
jq/oKwFFaJPgUkWEnBHbXVsQSJgG60wbi8gAFyZUbbb7vScfNnKLhAk2Kxn3rI2v
bV5Tb3Q82jbYHI3gbjANBgkqhkiG9w0BAQsFAAOCAQEAExsLTvXxYZdlSZbwBh7b
KL2C636Y0QZX+0oB33Xf5Jkm/KJfAGj08saERxjp5W3MquF/ocqQh879IaBlKCSw
PjS1/LQFN2EWjDC4FbCflak+g3TlQ9YwYr9EW8NM1DbrKvadCePYftagWv9bCLSh
8+FjO8tP4KIepywbOgZh7skZJVG5NpJ/xt/a26p42Qz+cetKgCfGaPGb1q2kvPoe
+D5Zq9KJhfwR17EmvrAEcBvjxozudGepynff+Gtqs8t+4F6tPeuz/+ycu5Lv8PLf
68YfYru4vihkgpUkvMj5U6Ud0hV2t2IyGl+gYyf4ghT64pBDbmkSnhiQFE1tCk00
rA==
-----END CERTIFICATE-----\n";

    #[test]
    fn the_client_certificate_version_is_read_from_data_or_file() {
        let data = kube::config::AuthInfo {
            client_certificate_data: Some(test_base64(V1_CLIENT_CERT.as_bytes())),
            ..Default::default()
        };
        assert_eq!(client_certificate_version(&data), Some(1));
        let dir = std::env::temp_dir().join(format!("kubectl-mtls-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.crt");
        std::fs::write(&file, V1_CLIENT_CERT).unwrap();
        let from_file = kube::config::AuthInfo {
            client_certificate: Some(file.display().to_string()),
            ..Default::default()
        };
        assert_eq!(client_certificate_version(&from_file), Some(1));
        std::fs::remove_dir_all(&dir).unwrap();
        let v3 = rcgen::CertificateParams::new(vec!["client.example.com".into()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let v3 = kube::config::AuthInfo {
            client_certificate_data: Some(test_base64(v3.pem().as_bytes())),
            ..Default::default()
        };
        assert_eq!(client_certificate_version(&v3), Some(3));
        assert_eq!(client_certificate_version(&Default::default()), None);
    }

    /// Standard base64 for the tests (the decoder is what is tested).
    fn test_base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn missing_files_mean_no_kubeconfig_but_a_missing_flag_file_is_an_error() {
        let dir = std::env::temp_dir().join("kubectl-mtls-no-such-dir");
        let missing = dir.join("config");
        assert!(
            load_kubeconfig(&Source::Env(vec![missing.clone()]))
                .unwrap()
                .is_none()
        );
        assert!(
            load_kubeconfig(&Source::Default(Some(missing.clone())))
                .unwrap()
                .is_none()
        );
        let err = load_kubeconfig(&Source::Flag(missing.clone())).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot load kubeconfig {}: ", missing.display())),
            "{err}"
        );
        assert_eq!(err.exit_code(), 3);
    }
}
