//! `cargo xtask docs`: the generated regions of `docs/reference.md`.
//!
//! Two regions of `docs/reference.md` (linked from the README) are written by code, never by hand, each between a pair of marker
//! comments (`<!-- generated:NAME begin -->` … `<!-- generated:NAME end -->`):
//!
//! - `reference`: the command reference of the four plugins, rendered from their clap definitions
//!   (`kubectl_mtls_{certs,egress,lockdown,probe}::Cli`), so it lists exactly the subcommands and flags
//!   the binaries accept;
//! - `troubleshooting`: one row per `doctor` rule, from [`kubectl_mtls_probe::doctor::RULE_TABLE`].
//!
//! Rendering is deterministic: commands and flags appear in clap's order, nothing depends on the
//! terminal (the text comes from the definitions, not from wrapped `--help` output), and the
//! output ends every line with `\n`. `cargo xtask docs --check` compares instead of writing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Arg, ArgAction, Command, CommandFactory};
use kubectl_mtls_probe::doctor::Rule;

/// The region with the command reference.
pub const REFERENCE: &str = "reference";
/// The region with the troubleshooting table.
pub const TROUBLESHOOTING: &str = "troubleshooting";

/// The document the regions live in (`docs/reference.md`; the README links to it, which keeps
/// the README short).
pub fn readme_path() -> PathBuf {
    crate::dist::workspace_root()
        .join("docs")
        .join("reference.md")
}

/// The four plugins' command trees, in the order the README presents them (the tutorial's:
/// certificates, routing, lockdown, proof).
pub fn plugins() -> Vec<Command> {
    vec![
        kubectl_mtls_certs::Cli::command(),
        kubectl_mtls_egress::Cli::command(),
        kubectl_mtls_lockdown::Cli::command(),
        kubectl_mtls_probe::Cli::command(),
    ]
}

/// Every generated region of the README: name and content.
pub fn regions() -> Vec<(&'static str, String)> {
    vec![
        (REFERENCE, reference(plugins())),
        (
            TROUBLESHOOTING,
            troubleshooting(kubectl_mtls_probe::doctor::RULE_TABLE),
        ),
    ]
}

/// `readme` with every generated region replaced by its current content.
pub fn render_readme(readme: &str) -> anyhow::Result<String> {
    let mut text = readme.to_string();
    for (name, content) in regions() {
        text = replace_region(&text, name, &content)?;
    }
    Ok(text)
}

/// The names of the regions whose content in `readme` differs from what [`render_readme`] writes
/// (empty: the README is current).
pub fn stale_regions(readme: &str) -> anyhow::Result<Vec<&'static str>> {
    let mut stale = Vec::new();
    for (name, content) in regions() {
        if region(readme, name)? != content {
            stale.push(name);
        }
    }
    Ok(stale)
}

/// Writes the rendered README to `path` (through a temporary file and a rename) when it differs;
/// returns whether it changed.
pub fn write_readme(path: &Path) -> anyhow::Result<bool> {
    let current =
        std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let rendered = render_readme(&current)?;
    if rendered == current {
        return Ok(false);
    }
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, &rendered).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(true)
}

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- generated:{name} begin -->"),
        format!("<!-- generated:{name} end -->"),
    )
}

/// The byte range of region `name`'s content: from after the begin marker's line to the start of
/// the end marker. Each marker must occur exactly once, begin before end.
fn region_range(text: &str, name: &str) -> anyhow::Result<std::ops::Range<usize>> {
    let (begin, end) = markers(name);
    let find_once = |marker: &str| -> anyhow::Result<usize> {
        let mut hits = text.match_indices(marker).map(|(i, _)| i);
        let Some(at) = hits.next() else {
            bail!("README has no `{marker}` line");
        };
        if hits.next().is_some() {
            bail!("README has `{marker}` more than once");
        }
        Ok(at)
    };
    let b = find_once(&begin)?;
    let e = find_once(&end)?;
    let start = text[b..]
        .find('\n')
        .map(|i| b + i + 1)
        .with_context(|| format!("`{begin}` must end its line"))?;
    if e < start {
        bail!("`{end}` must come after `{begin}`, on a line of its own");
    }
    Ok(start..e)
}

/// The current content of region `name` in `text`.
pub fn region<'a>(text: &'a str, name: &str) -> anyhow::Result<&'a str> {
    Ok(&text[region_range(text, name)?])
}

/// `text` with region `name`'s content replaced by `content` (which ends in a newline); the
/// markers and everything outside them stay as they are.
pub fn replace_region(text: &str, name: &str, content: &str) -> anyhow::Result<String> {
    let range = region_range(text, name)?;
    let mut out = String::with_capacity(text.len() + content.len());
    out.push_str(&text[..range.start]);
    out.push_str(content);
    out.push_str(&text[range.end..]);
    Ok(out)
}

const NOTICE: &str =
    "<!-- Written by `cargo xtask docs`; edit the code it is generated from, not this text. -->\n";

// ---------------------------------------------------------------------------------------------
// The command reference

/// The command reference of `plugins`: an index, the global options (once when every plugin has
/// the same), then per plugin its summary and one section per subcommand with usage, arguments,
/// options and the examples from its help.
pub fn reference(plugins: Vec<Command>) -> String {
    let plugins: Vec<Command> = plugins.into_iter().map(built).collect();
    let mut out = String::from(NOTICE);
    out.push('\n');
    let globals: Vec<String> = plugins.iter().map(|p| options_table(p, false)).collect();
    let shared_globals = globals.windows(2).all(|w| w[0] == w[1]);

    for p in &plugins {
        let name = display_name(p);
        let _ = write!(out, "- [{name}](#{})", anchor(&name));
        let subs: Vec<String> = visible_subcommands(p)
            .map(|sc| {
                let full = display_name(sc);
                format!("[{}](#{})", sc.get_name(), anchor(&full))
            })
            .collect();
        if !subs.is_empty() {
            let _ = write!(out, ": {}", subs.join(" · "));
        }
        out.push('\n');
    }
    out.push('\n');

    if shared_globals && let Some(table) = globals.first() {
        out.push_str("### Global options\n\n");
        out.push_str(
            "Every plugin and every subcommand accepts these, anywhere after the plugin name \
             (kubectl passes none of its own flags to a plugin).\n\n",
        );
        out.push_str(table);
        out.push('\n');
    }

    for (p, globals) in plugins.iter().zip(&globals) {
        let name = display_name(p);
        let _ = writeln!(out, "### {name}\n");
        if let Some(about) = about(p) {
            let _ = writeln!(out, "{}\n", paragraph(&about));
        }
        let subs: Vec<&Command> = visible_subcommands(p).collect();
        if !subs.is_empty() {
            out.push_str("| command | what it does |\n|---|---|\n");
            for sc in &subs {
                let full = display_name(sc);
                let _ = writeln!(
                    out,
                    "| [`{}`](#{}) | {} |",
                    sc.get_name(),
                    anchor(&full),
                    cell(&short_about(sc).unwrap_or_default())
                );
            }
            out.push('\n');
        }
        if !shared_globals {
            out.push_str("Global options:\n\n");
            out.push_str(globals);
            out.push('\n');
        }
        if let Some(after) = after_help(p) {
            out.push_str(&code_block(&after));
            out.push('\n');
        }
        for sc in subs {
            subcommand(&mut out, sc);
        }
    }
    trim_end_to_one_newline(out)
}

/// A subcommand's section, then its own subcommands'.
fn subcommand(out: &mut String, cmd: &Command) {
    let name = display_name(cmd);
    let _ = writeln!(out, "#### {name}\n");
    if let Some(about) = about(cmd) {
        let _ = writeln!(out, "{}\n", paragraph(&about));
    }
    out.push_str(&code_block(&usage(cmd)));
    out.push('\n');
    let table = options_table(cmd, true);
    if !table.is_empty() {
        out.push_str(&table);
        out.push('\n');
    }
    if let Some(after) = after_help(cmd) {
        out.push_str(&code_block(&after));
        out.push('\n');
    }
    for sc in visible_subcommands(cmd) {
        subcommand(out, sc);
    }
}

/// `cmd` built: bin names of nested commands set, global flags propagated, and help rendered at
/// no terminal width (clap then keeps the source's line breaks), whatever `COLUMNS` says.
fn built(cmd: Command) -> Command {
    let mut cmd = cmd.term_width(0);
    cmd.build();
    cmd
}

/// What a user types: `kubectl mtls-certs gen` (clap's bin name, set by [`built`]).
fn display_name(cmd: &Command) -> String {
    cmd.get_bin_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|sc| !sc.is_hide_set() && sc.get_name() != "help")
}

fn about(cmd: &Command) -> Option<String> {
    cmd.get_long_about()
        .or(cmd.get_about())
        .map(|s| s.to_string().trim().to_string())
        .filter(|s| !s.is_empty())
}

fn short_about(cmd: &Command) -> Option<String> {
    cmd.get_about()
        .or(cmd.get_long_about())
        .map(|s| s.to_string().trim().to_string())
}

fn after_help(cmd: &Command) -> Option<String> {
    cmd.get_after_long_help()
        .or(cmd.get_after_help())
        .map(|s| s.to_string().trim_end().to_string())
        .filter(|s| !s.trim().is_empty())
}

/// The usage line without clap's `Usage: ` title.
fn usage(cmd: &Command) -> String {
    let text = cmd.clone().render_usage().to_string();
    let text = text.trim();
    text.strip_prefix("Usage:")
        .map(str::trim_start)
        .unwrap_or(text)
        .to_string()
}

fn is_builtin(arg: &Arg) -> bool {
    matches!(
        arg.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
    )
}

/// The table of `cmd`'s arguments and options in clap's order (positionals first, then options
/// by help heading in order of first appearance). With `skip_global`, flags inherited from the
/// plugin (documented once, under global options) are left out. Empty when there is nothing to
/// show.
fn options_table(cmd: &Command, skip_global: bool) -> String {
    let args: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !is_builtin(a))
        .filter(|a| !(skip_global && a.is_global_set()))
        .collect();
    let mut ordered: Vec<&Arg> = args.iter().copied().filter(|a| a.is_positional()).collect();
    let mut headings: Vec<Option<&str>> = vec![None];
    for a in &args {
        if !a.is_positional() && !headings.contains(&a.get_help_heading()) {
            headings.push(a.get_help_heading());
        }
    }
    for h in headings {
        ordered.extend(
            args.iter()
                .copied()
                .filter(|a| !a.is_positional() && a.get_help_heading() == h),
        );
    }
    if ordered.is_empty() {
        return String::new();
    }
    let mut out = String::from("| argument / option | description |\n|---|---|\n");
    for a in ordered {
        let _ = writeln!(out, "| {} | {} |", code(&flag(a)), arg_description(a));
    }
    out
}

/// `-o, --output <OUTPUT>`, `--dry-run[=<DRY_RUN>]`, `-v, --verbose...`, `<SIDE>`, as clap's help
/// spells them.
fn flag(arg: &Arg) -> String {
    let base = arg.to_string();
    match (arg.get_short(), arg.get_long()) {
        (Some(short), Some(_)) => format!("-{short}, {base}"),
        _ => base,
    }
}

/// The help text, then the accepted values with their meaning, the default, the environment
/// variable, and whether it is required — one table cell.
fn arg_description(arg: &Arg) -> String {
    let mut parts = Vec::new();
    if let Some(help) = arg.get_long_help().or(arg.get_help()) {
        let help = help.to_string();
        if !help.trim().is_empty() {
            parts.push(cell(help.trim()));
        }
    }
    if !arg.is_hide_possible_values_set() && arg.get_action().takes_values() {
        let values: Vec<_> = arg
            .get_possible_values()
            .into_iter()
            .filter(|v| !v.is_hide_set())
            .collect();
        if values.iter().any(|v| v.get_help().is_some()) {
            // One line per value, with its meaning.
            let lines: Vec<String> = values
                .iter()
                .map(|v| {
                    let help = v.get_help().map(|h| cell(&h.to_string()));
                    format!("{} — {}", code(v.get_name()), help.unwrap_or_default())
                })
                .collect();
            parts.push(format!("Values:<br>{}", lines.join("<br>")));
        } else if !values.is_empty() {
            let names: Vec<String> = values.iter().map(|v| code(v.get_name())).collect();
            parts.push(format!("Values: {}", names.join(", ")));
        }
    }
    if !arg.is_hide_default_value_set() && arg.get_action().takes_values() {
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| code(&v.to_string_lossy()))
            .collect();
        if !defaults.is_empty() {
            parts.push(format!("Default: {}", defaults.join(", ")));
        }
    }
    if arg.is_required_set() {
        parts.push("Required".to_string());
    }
    parts.join("<br>")
}

// ---------------------------------------------------------------------------------------------
// The troubleshooting table

/// One row per `doctor` rule: its id (as `doctor` prints it), what it means, and the fix.
pub fn troubleshooting(rules: &[Rule]) -> String {
    let mut out = String::from(NOTICE);
    out.push('\n');
    out.push_str("| rule | what is wrong | fix |\n|---|---|---|\n");
    for r in rules {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            code(r.id),
            cell(r.description),
            cell(r.fix)
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Markdown

/// GitHub's heading anchor: lower case, punctuation other than `-` and `_` dropped, spaces to `-`.
pub fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// `text` as a code span, safe inside a table cell: a fence longer than any backtick run in it,
/// and `|` escaped (GitHub splits table cells before it parses code spans).
pub fn code(text: &str) -> String {
    let longest = longest_backtick_run(text);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{}{pad}{fence}", text.replace('|', "\\|"))
}

/// A fenced `text` block around `text`, with a fence no line of it can close.
pub fn code_block(text: &str) -> String {
    let fence = "`".repeat(3.max(longest_backtick_run(text) + 1));
    format!("{fence}text\n{text}\n{fence}\n")
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Help text as Markdown for a table cell: `code spans` kept, everything else escaped, line
/// breaks as `<br>`.
pub fn cell(text: &str) -> String {
    inline(text).replace('\n', "<br>")
}

/// Help text as a Markdown paragraph: `code spans` kept, everything else escaped, line breaks
/// kept as hard breaks.
pub fn paragraph(text: &str) -> String {
    inline(text)
        .replace("\n\n", "\u{0}")
        .replace('\n', "<br>\n")
        .replace('\u{0}', "\n\n")
}

/// Escapes Markdown in plain text, leaving matched single-backtick code spans as they are
/// (with `|` escaped for tables). Unmatched backticks are escaped.
fn inline(text: &str) -> String {
    let pieces: Vec<&str> = text.split('`').collect();
    let balanced = pieces.len() % 2 == 1;
    let mut out = String::with_capacity(text.len() + 8);
    for (i, piece) in pieces.iter().enumerate() {
        let is_code = balanced && i % 2 == 1;
        if i > 0 && !balanced {
            out.push_str("\\`");
        }
        if is_code {
            out.push('`');
            out.push_str(&piece.replace('|', "\\|"));
            out.push('`');
        } else {
            escape_text(piece, &mut out);
        }
    }
    out
}

fn escape_text(text: &str, out: &mut String) {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let word = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        match c {
            '\\' | '[' | ']' | '<' | '>' | '|' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            // Inside a word (`kubectl-mtls_certs`, `2*3`) these cannot start emphasis.
            '*' | '_' if !(word(i.checked_sub(1)) && word(Some(i + 1))) => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            c => out.push(c),
        }
    }
}

fn trim_end_to_one_newline(mut s: String) -> String {
    let trimmed = s.trim_end().len();
    s.truncate(trimmed);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_github() {
        assert_eq!(anchor("kubectl mtls-certs gen"), "kubectl-mtls-certs-gen");
        assert_eq!(anchor("Global options"), "global-options");
        assert_eq!(anchor("a `b`: c"), "a-b-c");
    }

    #[test]
    fn text_is_escaped_and_code_spans_are_kept() {
        assert_eq!(
            cell("instead of <dir>/server.crt, `a|b` or a|b"),
            "instead of \\<dir\\>/server.crt, `a\\|b` or a\\|b"
        );
        assert_eq!(
            cell("kubectl-mtls_certs and _x_ and *"),
            "kubectl-mtls_certs and \\_x\\_ and \\*"
        );
        assert_eq!(cell("one `unmatched"), "one \\`unmatched");
        assert_eq!(cell("line 1\nline 2"), "line 1<br>line 2");
        assert_eq!(paragraph("p1\n\np2\nl2"), "p1\n\np2<br>\nl2");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("x|y"), "`x\\|y`");
        assert!(code_block("```\nx").starts_with("````text\n"));
    }

    #[test]
    fn a_region_is_replaced_between_its_markers_only() {
        let text = "intro\n<!-- generated:x begin -->\nold\n<!-- generated:x end -->\noutro\n";
        let new = replace_region(text, "x", "new 1\nnew 2\n").unwrap();
        assert_eq!(
            new,
            "intro\n<!-- generated:x begin -->\nnew 1\nnew 2\n<!-- generated:x end -->\noutro\n"
        );
        assert_eq!(region(&new, "x").unwrap(), "new 1\nnew 2\n");
        assert_eq!(replace_region(&new, "x", "new 1\nnew 2\n").unwrap(), new);
    }

    #[test]
    fn broken_markers_are_refused() {
        let missing = "<!-- generated:x begin -->\n";
        assert!(replace_region(missing, "x", "").is_err());
        let twice =
            "<!-- generated:x begin -->\n<!-- generated:x end -->\n<!-- generated:x end -->\n";
        assert!(replace_region(twice, "x", "").is_err());
        let reversed = "<!-- generated:x end -->\n<!-- generated:x begin -->\n";
        assert!(replace_region(reversed, "x", "").is_err());
    }
}
