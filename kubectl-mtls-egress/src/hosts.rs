//! The hosts of one run: `--host` (repeatable) and `--hosts-file` (one host per line), as
//! `enable`, `disable` and `status` take them. A host given twice, an invalid one (named with
//! its file and line) or an unreadable file is an error before any request is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use shared::error::Error;
use shared::names::DnsName;
use shared::plan::Plan;

/// Whether a host may be a wildcard (`*.example.com`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wildcards {
    /// One exact host each (what `enable` routes).
    Refused,
    /// Wildcards too (what `disable` and `status` look up by label).
    Allowed,
}

/// The hosts of `--host` (`flags`, in order) followed by those of `--hosts-file` (`file`): blank
/// lines and lines starting with `#` are skipped, each line is trimmed. Empty only when neither
/// was given; a file without a host is an error.
pub fn parse_hosts(
    flags: &[String],
    file: Option<&Path>,
    wildcards: Wildcards,
) -> Result<Vec<DnsName>, Error> {
    let mut names: Vec<(String, String)> = flags
        .iter()
        .map(|h| (h.clone(), "--host".to_string()))
        .collect();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "--hosts-file {}: {e}; give a readable file with one host per line",
                path.display()
            ))
        })?;
        let before = names.len();
        names.extend(
            text.lines()
                .enumerate()
                .map(|(i, line)| (i + 1, line.trim()))
                .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
                .map(|(n, line)| (line.to_string(), format!("{}:{n}", path.display()))),
        );
        if names.len() == before {
            return Err(Error::Usage(format!(
                "--hosts-file {}: no host in it; give one host per line",
                path.display()
            )));
        }
    }
    let mut seen = BTreeSet::new();
    let mut hosts = Vec::with_capacity(names.len());
    for (name, from) in names {
        let parsed = match wildcards {
            Wildcards::Refused => DnsName::parse_exact(&name),
            Wildcards::Allowed => DnsName::parse(&name),
        };
        let host = parsed.map_err(|e| match from.as_str() {
            "--host" => Error::from(e),
            file_line => Error::Usage(format!("{file_line}: {e}")),
        })?;
        if !seen.insert(host.to_string()) {
            return Err(Error::Usage(format!(
                "{from}: host {host} is given twice; give each host once"
            )));
        }
        hosts.push(host);
    }
    Ok(hosts)
}

/// [`parse_hosts`] for a command that needs at least one host.
pub fn required_hosts(
    flags: &[String],
    file: Option<&Path>,
    wildcards: Wildcards,
) -> Result<Vec<DnsName>, Error> {
    let hosts = parse_hosts(flags, file, wildcards)?;
    if hosts.is_empty() {
        return Err(Error::Usage(
            "no host: give --host HOST (repeatable) or --hosts-file FILE".into(),
        ));
    }
    Ok(hosts)
}

/// One plan for several hosts (`plans`: each host's, in order): each host's objects in order, an
/// object several hosts share (the Kyma Istio CR, the gateway's access-log Telemetry, a namespace
/// label) once. Two hosts that would write the same object differently (hosts whose names differ
/// only in `.` and `-` share object names) are an error naming both (`verb`: the command).
pub fn combined_plan<'a>(
    plans: impl IntoIterator<Item = (&'a DnsName, Plan)>,
    verb: &str,
) -> Result<Plan, Error> {
    let mut plan = Plan::new();
    let mut planned: BTreeMap<(String, String, Option<String>, String), usize> = BTreeMap::new();
    let mut owners: Vec<&DnsName> = Vec::new();
    for (host, own) in plans {
        for object in own.objects() {
            let key = (
                object.resource.api_version.clone(),
                object.resource.kind.clone(),
                object.namespace.clone(),
                object.name.clone(),
            );
            match planned.get(&key) {
                Some(&index) if plan.objects()[index].body == object.body => {}
                Some(&index) => {
                    return Err(Error::Usage(format!(
                        "hosts {} and {host} would both write {} differently: {verb} them in separate runs (or namespaces)",
                        owners[index],
                        object.display_name()
                    )));
                }
                None => {
                    planned.insert(key, plan.objects().len());
                    owners.push(host);
                    plan.extend([object.clone()]);
                }
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(hosts: &[&str]) -> Vec<String> {
        hosts.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn flags_then_file_lines_in_order_comments_and_blanks_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts.txt");
        std::fs::write(&file, "# partners\n\n  b.example.com \nc.example.com\n").unwrap();
        let hosts =
            parse_hosts(&flags(&["A.example.com"]), Some(&file), Wildcards::Refused).unwrap();
        let hosts: Vec<String> = hosts.iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["a.example.com", "b.example.com", "c.example.com"]);
        assert!(
            parse_hosts(&[], None, Wildcards::Refused)
                .unwrap()
                .is_empty()
        );
        let err = required_hosts(&[], None, Wildcards::Refused).unwrap_err();
        assert!(err.to_string().starts_with("no host: "), "{err}");
    }

    #[test]
    fn a_bad_line_twice_given_host_empty_or_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts.txt");
        std::fs::write(&file, "a.example.com\n\n*.example.com\n").unwrap();
        let err = parse_hosts(&[], Some(&file), Wildcards::Refused).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}:3: ", file.display())),
            "{err}"
        );
        // disable and status look wildcards up by label.
        assert_eq!(
            parse_hosts(&[], Some(&file), Wildcards::Allowed)
                .unwrap()
                .len(),
            2
        );
        let err =
            parse_hosts(&flags(&["a.example.com"]), Some(&file), Wildcards::Allowed).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}:1: host a.example.com is given twice; give each host once",
                file.display()
            )
        );
        std::fs::write(&file, "# nothing\n\n").unwrap();
        let err = parse_hosts(&[], Some(&file), Wildcards::Allowed).unwrap_err();
        assert!(err.to_string().contains("no host in it"), "{err}");
        let missing = dir.path().join("missing.txt");
        let err = parse_hosts(&[], Some(&missing), Wildcards::Allowed).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("--hosts-file {}: ", missing.display())),
            "{err}"
        );
        assert_eq!(err.exit_code(), 2);
    }
}
