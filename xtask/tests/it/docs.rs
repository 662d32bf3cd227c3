//! The generated regions of `docs/reference.md`: current on disk (CI fails on a stale file),
//! complete (every subcommand, flag and doctor rule), well-formed Markdown, and
//! `cargo xtask docs [--check]` works on a copy without touching the real file. Across all user
//! docs (README, docs/, CONTRIBUTING): every link reaches a heading and every example parses.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command as Process, Output};

use xtask::docs::{
    REFERENCE, TROUBLESHOOTING, anchor, plugins, readme_path, region, render_readme,
    replace_region, stale_regions,
};

fn readme() -> String {
    let path = readme_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents users read, relative to the workspace root.
const DOCS: [&str; 4] = [
    "README.md",
    "docs/reference.md",
    "docs/walkthrough.md",
    "CONTRIBUTING.md",
];

fn doc(path: &str) -> String {
    let path = xtask::dist::workspace_root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn xtask_docs(args: &[&str], readme: &Path) -> Output {
    Process::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("docs")
        .args(args)
        .arg("--readme")
        .arg(readme)
        // A narrow terminal must not change a byte of the output.
        .env("COLUMNS", "20")
        .output()
        .unwrap()
}

#[test]
fn the_readme_on_disk_is_current() {
    let stale = stale_regions(&readme()).unwrap();
    assert!(
        stale.is_empty(),
        "README.md is stale in: {}. Run `cargo xtask docs` and commit the result.",
        stale.join(", ")
    );
}

#[test]
fn check_fails_on_a_stale_copy_and_docs_repairs_it() {
    let current = readme();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("README.md");
    // Stale: the reference from an older release, one troubleshooting row renamed.
    let old_reference =
        "### kubectl mtls-certs\n\n| argument / option | description |\n|---|---|\n";
    let stale = replace_region(&current, REFERENCE, old_reference).unwrap();
    let rows = region(&stale, TROUBLESHOOTING).unwrap();
    let renamed = rows.replacen("| `credential-layout` |", "| `credential-layout-old` |", 1);
    assert_ne!(renamed, rows, "the rename must hit a row");
    let stale = replace_region(&stale, TROUBLESHOOTING, &renamed).unwrap();
    std::fs::write(&copy, &stale).unwrap();

    let out = xtask_docs(&["--check"], &copy);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(REFERENCE) && stderr.contains(TROUBLESHOOTING),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        stale,
        "--check wrote"
    );

    let out = xtask_docs(&[], &copy);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), current);
    let out = xtask_docs(&["--check"], &copy);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn text_outside_the_markers_is_kept_and_missing_markers_are_an_error() {
    let text = "# Title\n\nhand-written\n\n<!-- generated:reference begin -->\nold\n<!-- generated:reference end -->\n\nmiddle\n\n<!-- generated:troubleshooting begin -->\n<!-- generated:troubleshooting end -->\nend\n";
    let out = render_readme(text).unwrap();
    assert!(out.starts_with("# Title\n\nhand-written\n\n<!-- generated:reference begin -->\n"));
    assert!(out.contains(
        "<!-- generated:reference end -->\n\nmiddle\n\n<!-- generated:troubleshooting begin -->\n"
    ));
    assert!(out.ends_with("<!-- generated:troubleshooting end -->\nend\n"));
    assert!(!out.contains("\nold\n"));

    let no_troubleshooting = text.replace("<!-- generated:troubleshooting end -->\n", "");
    let err = render_readme(&no_troubleshooting).unwrap_err().to_string();
    assert!(err.contains("generated:troubleshooting end"), "{err}");
}

/// The section of the reference under the heading for `name` (up to the next heading).
fn section<'a>(reference: &'a str, name: &str) -> &'a str {
    let heading = format!("\n#### {name}\n");
    let plugin_heading = format!("\n### {name}\n");
    let start = reference
        .find(&heading)
        .or_else(|| reference.find(&plugin_heading))
        .unwrap_or_else(|| panic!("no heading for {name}"));
    let rest = &reference[start + 1..];
    let end = rest[1..].find("\n#").map(|i| i + 2).unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn every_subcommand_and_flag_of_every_plugin_is_in_the_reference() {
    let text = readme();
    let reference = region(&text, REFERENCE).unwrap();
    let mut seen = 0;
    for mut plugin in plugins() {
        plugin.build();
        let mut stack: Vec<clap::Command> = vec![plugin.clone()];
        while let Some(cmd) = stack.pop() {
            let name = cmd.get_bin_name().unwrap().to_string();
            let body = section(reference, &name);
            for arg in cmd.get_arguments() {
                if arg.is_hide_set() || arg.is_global_set() || arg.get_id() == "help" {
                    continue;
                }
                if arg.get_id() == "version" {
                    continue;
                }
                // A positional is `<VALUE>`, or `[VALUE]` when it is optional.
                let spellings = match arg.get_long() {
                    Some(long) => vec![format!("--{long}")],
                    None => {
                        let value = arg.get_value_names().map(|v| v[0].to_string());
                        let value = value.unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
                        let value = value.replace('|', "\\|");
                        vec![format!("<{value}>"), format!("[{value}]")]
                    }
                };
                assert!(
                    spellings
                        .iter()
                        .any(|spelled| body.contains(&format!("`{spelled}"))
                            || body.contains(&format!(", {spelled}"))),
                    "{name}: {} missing from its section:\n{body}",
                    spellings[0]
                );
                seen += 1;
            }
            stack.extend(
                cmd.get_subcommands()
                    .filter(|sc| !sc.is_hide_set() && sc.get_name() != "help")
                    .cloned(),
            );
        }
        // The plugin's global flags are documented once, in the shared table.
        for arg in plugin.get_arguments().filter(|a| a.is_global_set()) {
            let long = arg.get_long().unwrap();
            assert!(
                section(reference, "Global options").contains(&format!("--{long}")),
                "global --{long}"
            );
        }
    }
    assert!(seen > 50, "only {seen} flags checked");
}

#[test]
fn every_doctor_rule_is_a_row_of_the_troubleshooting_table() {
    let text = readme();
    let table = region(&text, TROUBLESHOOTING).unwrap();
    for rule in kubectl_mtls_probe::doctor::RULE_TABLE {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", rule.id)))
            .unwrap_or_else(|| panic!("no row for {}", rule.id));
        // What it means and the fix, word for word once the Markdown escapes are undone.
        let plain = unescape(row);
        assert!(plain.contains(rule.description), "{plain}");
        assert!(plain.contains(rule.fix), "{plain}");
    }
}

/// Drops the backslash of every Markdown escape (`\|`, `\<`, `\_`, …).
fn unescape(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut chars = markdown.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(char::is_ascii_punctuation) {
            continue;
        }
        out.push(c);
    }
    out
}

/// Cells of a table row: split at `|` not escaped by a backslash.
fn cells(row: &str) -> usize {
    let bytes = row.as_bytes();
    (0..bytes.len())
        .filter(|&i| bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\'))
        .count()
        - 1
}

#[test]
fn every_table_row_has_as_many_cells_as_its_header() {
    let text = readme();
    let mut header: Option<usize> = None;
    let mut in_fence = false;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('|') {
            header = None;
            continue;
        }
        match header {
            None => header = Some(cells(line)),
            Some(width) => assert_eq!(cells(line), width, "README.md:{}: {line}", n + 1),
        }
    }
}

/// Heading anchors as GitHub makes them (a repeated heading gets `-1`, `-2`, …).
fn anchors(text: &str) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let base = anchor(&title.replace('`', "").to_lowercase());
        let mut candidate = base.clone();
        let mut i = 0;
        while !found.insert(candidate.clone()) {
            i += 1;
            candidate = format!("{base}-{i}");
        }
    }
    found
}

#[test]
fn every_link_in_the_docs_points_at_a_heading_or_a_file() {
    let root = xtask::dist::workspace_root();
    let mut links = 0;
    for file in DOCS {
        let text = doc(file);
        let dir = Path::new(file).parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let target = &target[..target.find(')').unwrap()];
            if target.starts_with("http") {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target, None),
            };
            let body = if path.is_empty() {
                text.clone()
            } else {
                let resolved = root.join(dir).join(path);
                assert!(resolved.exists(), "{file}: link to {target}: no such file");
                if !path.ends_with(".md") {
                    continue;
                }
                std::fs::read_to_string(resolved).unwrap()
            };
            if let Some(fragment) = fragment {
                assert!(
                    anchors(&body).contains(fragment),
                    "{file}: link to {target}: no such heading"
                );
            }
            links += 1;
        }
    }
    assert!(links > 30, "only {links} links");
}

/// The words of one shell command line as the README writes them: `"$VAR"` expanded to the
/// walkthrough's values, optional `[--flag]` unwrapped, a comment, redirection or pipe ends it.
fn words(line: &str) -> Vec<String> {
    let line = line
        .replace("\"$DOMAIN\"", "httpbin.example.com")
        .replace("\"$CLIENT\"", "client.example.com")
        .replace("\"$NAMESPACE\"", "mtls-demo");
    let mut out = Vec::new();
    for word in line.split_whitespace() {
        if word.starts_with('#') || word.starts_with('>') || word == "|" {
            break;
        }
        let word = word.trim_start_matches('[').trim_end_matches(']');
        out.push(word.trim_matches('"').to_string());
    }
    out
}

fn parses(plugin: &str, args: &[String]) -> Result<(), String> {
    use clap::Parser as _;
    let argv = std::iter::once(format!("kubectl-{}", plugin.replace('-', "_")))
        .chain(args.iter().cloned());
    let result = match plugin {
        "mtls-certs" => kubectl_mtls_certs::Cli::try_parse_from(argv).map(drop),
        "mtls-egress" => kubectl_mtls_egress::Cli::try_parse_from(argv).map(drop),
        "mtls-lockdown" => kubectl_mtls_lockdown::Cli::try_parse_from(argv).map(drop),
        "mtls-probe" => kubectl_mtls_probe::Cli::try_parse_from(argv).map(drop),
        other => return Err(format!("unknown plugin {other}")),
    };
    result.map_err(|e| e.to_string())
}

#[test]
fn every_command_in_the_docs_examples_parses() {
    let mut checked = 0;
    for file in DOCS {
        checked += commands_parse(file, &doc(file));
    }
    assert!(checked > 25, "only {checked} commands checked");
}

/// Checks every `kubectl mtls-…` command in the `sh` blocks of `text`; returns how many.
fn commands_parse(file: &str, text: &str) -> usize {
    let mut in_sh = false;
    let mut pending = String::new();
    let mut checked = 0;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        pending.push_str(line.trim_end_matches('\\'));
        pending.push(' ');
        if line.ends_with('\\') {
            continue;
        }
        let command = std::mem::take(&mut pending);
        let w = words(&command);
        if w.first().map(String::as_str) != Some("kubectl") {
            continue;
        }
        let Some(plugin) = w.get(1).filter(|p| p.starts_with("mtls-")) else {
            continue;
        };
        if let Err(e) = parses(plugin, &w[2..]) {
            panic!("{file}:{}: {}\n{e}", n + 1, command.trim());
        }
        checked += 1;
    }
    checked
}

#[test]
fn the_symptom_table_names_only_real_rules() {
    let text = readme();
    let ids: HashSet<&str> = kubectl_mtls_probe::doctor::RULE_TABLE
        .iter()
        .map(|r| r.id)
        .collect();
    let start = text
        .find("| symptom | usual cause | rules |")
        .expect("symptom table");
    let mut named = 0;
    for row in text[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
    {
        let rules = row.trim_end_matches('|').rsplit('|').next().unwrap();
        for span in rules.split('`').skip(1).step_by(2) {
            if span.contains(' ') {
                continue; // a command, not a rule id
            }
            assert!(ids.contains(span), "{span}: no such doctor rule");
            named += 1;
        }
    }
    assert!(named > 5, "only {named} rules named");
}
