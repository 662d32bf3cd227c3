//! Stage 4 of `connect`: the proof. `direct` (this workstation → the target, with our client
//! certificate) when the host resolves from here, else skipped with the reason; then `check` on
//! the client cluster (a request through its egress gateway).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use kube::Client;

use kubectl_mtls_probe::check::{self, CheckRequest};
use kubectl_mtls_probe::direct::{self, DirectRequest};
use kubectl_mtls_probe::report::{self, Check};
use shared::error::Error;
use shared::gateway::GatewayWorkload;
use shared::names::DnsName;
use shared::pki::CredentialFiles;

/// How often `direct` is tried: the ingress gateway picks up a new credential and Gateway within
/// seconds, so the first attempt right after the apply may still fail.
const DIRECT_ATTEMPTS: u32 = 4;
/// The pause between two attempts.
const DIRECT_RETRY: Duration = Duration::from_secs(5);
/// How often `check` is tried (each attempt starts its own probe pods).
const CHECK_ATTEMPTS: u32 = 3;
/// The pause between two `check` attempts.
const CHECK_RETRY: Duration = Duration::from_secs(10);

/// What both probes need.
#[derive(Debug, Clone)]
pub struct ProbeInputs {
    /// The target host.
    pub host: DnsName,
    /// The target's HTTPS port.
    pub port: u16,
    /// The bundle directory (client.crt, client.key, ca.crt).
    pub certs: PathBuf,
    /// The client namespace, where `check` runs its request from.
    pub namespace: String,
    /// The client cluster's egress gateway, whose replicas' logs `check` reads.
    pub egress_gateway: GatewayWorkload,
}

/// The outcome of one probe.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeResult {
    /// `direct` or `check`.
    pub probe: &'static str,
    /// Its checks (one skipped check when it did not run).
    pub checks: Vec<Check>,
}

impl ProbeResult {
    /// The names of the failed checks.
    pub fn failed(&self) -> Vec<&'static str> {
        report::failed_names(&self.checks)
    }
}

/// Runs `direct`, then `check`.
pub async fn run(
    client: &Client,
    inputs: &ProbeInputs,
    progress: &mut dyn Write,
) -> Result<Vec<ProbeResult>, Error> {
    let direct = run_direct(inputs, progress).await?;
    let check = run_check(client, inputs, progress).await?;
    Ok(vec![
        ProbeResult {
            probe: "direct",
            checks: direct,
        },
        ProbeResult {
            probe: "check",
            checks: check,
        },
    ])
}

async fn run_direct(inputs: &ProbeInputs, progress: &mut dyn Write) -> Result<Vec<Check>, Error> {
    let certs = &inputs.certs;
    if let Some(why) = shared::resolve::unresolvable(inputs.host.as_str(), inputs.port).await {
        let detail = format!(
            "skipped: {why}; once it does (or with the ingress gateway's address), run `kubectl mtls-probe direct --host {} --connect IP --cert {} --key {} --ca {}`",
            inputs.host,
            certs.join("client.crt").display(),
            certs.join("client.key").display(),
            certs.join("ca.crt").display(),
        );
        writeln!(progress, "      direct: {detail}")?;
        return Ok(vec![Check::skipped("direct", detail)]);
    }
    let files = CredentialFiles {
        cert: &certs.join("client.crt"),
        key: &certs.join("client.key"),
        ca: &certs.join("ca.crt"),
    };
    let request = DirectRequest::from_files(inputs.host.clone(), inputs.port, files)?;
    let mut attempt = 1;
    loop {
        writeln!(
            progress,
            "      direct: this workstation -> {}:{} (attempt {attempt}/{DIRECT_ATTEMPTS})",
            inputs.host, inputs.port
        )?;
        let report = direct::probe(&request).await;
        if report.ok || attempt == DIRECT_ATTEMPTS {
            return Ok(report.checks);
        }
        let failed = report::failed_names(&report.checks);
        writeln!(
            progress,
            "      direct: {} failed; the ingress gateway may still be loading the credential, retrying in {DIRECT_RETRY:?}",
            failed.join(", ")
        )?;
        tokio::time::sleep(DIRECT_RETRY).await;
        attempt += 1;
    }
}

/// `kubectl mtls-probe check` on the client cluster: a request from the client namespace through
/// the egress gateway, matched against our client certificate (and, after `--lockdown`, the proof
/// that nothing else leaves). Tried up to [`CHECK_ATTEMPTS`] times: Istio pushes new routes to the
/// sidecars within seconds of the apply, so the first request may still miss them.
async fn run_check(
    client: &Client,
    inputs: &ProbeInputs,
    progress: &mut dyn Write,
) -> Result<Vec<Check>, Error> {
    let request = CheckRequest::new(inputs.host.clone(), &inputs.namespace)
        .with_client_cert(&inputs.certs.join("client.crt"))?;
    let request = CheckRequest {
        port: inputs.port,
        gateway_namespace: inputs.egress_gateway.namespace.clone(),
        gateway_selector: inputs.egress_gateway.selector.to_string(),
        ..request
    };
    let mut attempt = 1;
    loop {
        writeln!(
            progress,
            "      check: namespace {} -> egress gateway -> {} (attempt {attempt}/{CHECK_ATTEMPTS})",
            inputs.namespace, inputs.host
        )?;
        let report = check::execute(client, &request, &mut Indented::new(progress)).await?;
        if report.ok || attempt == CHECK_ATTEMPTS {
            return Ok(report.checks);
        }
        let failed = report::failed_names(&report.checks);
        writeln!(
            progress,
            "      check: {} failed; Istio may still be pushing the new routes, retrying in {CHECK_RETRY:?}",
            failed.join(", ")
        )?;
        tokio::time::sleep(CHECK_RETRY).await;
        attempt += 1;
    }
}

/// Writes through to `inner` with every line indented like connect's own stage details.
struct Indented<'a> {
    inner: &'a mut dyn Write,
    at_line_start: bool,
}

impl<'a> Indented<'a> {
    fn new(inner: &'a mut dyn Write) -> Self {
        Self {
            inner,
            at_line_start: true,
        }
    }
}

impl Write for Indented<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for line in buf.split_inclusive(|b| *b == b'\n') {
            if self.at_line_start {
                self.inner.write_all(b"      ")?;
            }
            self.inner.write_all(line)?;
            self.at_line_start = line.ends_with(b"\n");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indented_prefixes_every_line_once() {
        let mut out = Vec::new();
        let mut w = Indented::new(&mut out);
        write!(w, "creating pod/a").unwrap();
        writeln!(w, " in ns").unwrap();
        w.write_all(b"one\ntwo\n").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "      creating pod/a in ns\n      one\n      two\n"
        );
    }
}
