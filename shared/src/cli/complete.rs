//! kubectl's own completion of plugins (kubectl ≥ 1.26).
//!
//! For `kubectl mtls-certs gen --<TAB>`, kubectl looks up `kubectl_complete-mtls_certs` on `PATH`
//! and runs it with the words typed after the plugin name, the last one being the word under the
//! cursor (`""` for a new word). It reads cobra's `__complete` answer from stdout: one candidate
//! per line (`value` or `value<TAB>description`), then `:<directive>`, cobra's
//! `ShellCompDirective` bits ([`directive`]). Every plugin executable answers that way when it is
//! started under such a name (the multi-call binary too), or with `__complete` as its first
//! argument, as cobra programs do.
//!
//! [`plan`] decides from the clap definition alone what the current word is — a subcommand, a
//! flag, a flag's value, a positional — and [`answer`] adds what must be read: contexts, clusters
//! and users from the kubeconfig the typed flags name, namespaces from the cluster when it
//! answers within [`NAMESPACE_TIMEOUT`] (nothing otherwise, never an error on the terminal).

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::ValueHint;
use clap::{Arg, Command};

use crate::cluster::KubeArgs;

/// kubectl runs `kubectl_complete-<plugin>` for a plugin's completions (`kubectl-mtls_certs` →
/// `kubectl_complete-mtls_certs`).
pub const COMPLETE_PREFIX: &str = "kubectl_complete-";

/// The hidden first argument that asks for completions, as in cobra programs.
pub const COMPLETE_ARG: &str = "__complete";

/// How long namespace completion waits for the cluster before it offers nothing.
pub const NAMESPACE_TIMEOUT: Duration = Duration::from_secs(2);

/// Cobra's `ShellCompDirective` bits, printed as `:<sum>` after the candidates.
pub mod directive {
    /// Default: the shell may fall back to file names.
    pub const DEFAULT: u32 = 0;
    /// Completion failed; the shell offers nothing.
    pub const ERROR: u32 = 1;
    /// No space after the completed word.
    pub const NO_SPACE: u32 = 2;
    /// Never fall back to file names.
    pub const NO_FILE_COMP: u32 = 4;
    /// Only directories.
    pub const FILTER_DIRS: u32 = 16;
}

/// The completion executable's name for a plugin executable: `kubectl-mtls_certs` →
/// `kubectl_complete-mtls_certs`.
pub fn completion_name(bin_name: &str) -> String {
    format!(
        "{COMPLETE_PREFIX}{}",
        bin_name.strip_prefix("kubectl-").unwrap_or(bin_name)
    )
}

/// One candidate: the text to insert and an optional one-line description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Inserted as typed.
    pub value: String,
    /// Shown beside it by shells that show descriptions.
    pub help: Option<String>,
}

/// Names a kubeconfig holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeconfigNames {
    /// `contexts[].name`.
    Contexts,
    /// `clusters[].name`.
    Clusters,
    /// `users[].name`.
    Users,
}

/// What the word under the cursor wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// These candidates (already filtered by what is typed), with this directive.
    Fixed(Vec<Candidate>, u32),
    /// File names, which the shell completes (with [`directive::FILTER_DIRS`]: directories).
    Files(u32),
    /// Names from the kubeconfig; each candidate is `prefix` + name.
    Kubeconfig(KubeconfigNames),
    /// Namespaces of the cluster; each candidate is `prefix` + name.
    Namespaces,
}

/// The pure half of a completion: what is wanted, what is typed, and the connection flags typed
/// so far (to read the right kubeconfig and cluster).
#[derive(Debug, Clone)]
pub struct Plan {
    /// What the current word wants.
    pub want: Want,
    /// Put before every dynamic candidate (`--context=` when completing `--context=pr`).
    pub prefix: String,
    /// The part of the value typed so far (candidates must start with it).
    pub typed: String,
    /// `--kubeconfig`, `--context`, `--cluster`, `--user` as typed on the line.
    pub kube: KubeArgs,
}

/// Whether `arg`'s value may come as the next word (`--context prod`), not only after `=`.
fn takes_separate_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
        && !arg.is_require_equals_set()
        && arg.get_num_args().is_none_or(|n| n.min_values() > 0)
}

fn find_long<'a>(cmd: &'a Command, name: &str) -> Option<&'a Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

fn find_short(cmd: &Command, c: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(c))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// Decides what the last of `words` (the word under the cursor) wants, from `cmd` (the plugin's
/// whole clap command) and the words before it. Pure: reads nothing.
pub fn plan(mut cmd: Command, words: &[String]) -> Plan {
    cmd.build();
    let (typed, before) = match words.split_last() {
        Some((last, before)) => (last.as_str(), before),
        None => ("", &[][..]),
    };
    let mut at: &Command = &cmd;
    let mut pending: Option<&Arg> = None;
    let mut positionals = 0usize;
    let mut escaped = false;
    let mut kube = KubeArgs::default();
    let mut record = |arg: &Arg, value: &str| match arg.get_id().as_str() {
        "kubeconfig" => kube.kubeconfig = Some(PathBuf::from(value)),
        "context" => kube.context = Some(value.to_string()),
        "cluster" => kube.cluster = Some(value.to_string()),
        "user" => kube.user = Some(value.to_string()),
        _ => {}
    };
    for word in before {
        if let Some(arg) = pending.take() {
            record(arg, word);
            continue;
        }
        if escaped {
            positionals += 1;
            continue;
        }
        if word == "--" {
            escaped = true;
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if let Some(arg) = find_long(at, name) {
                match value {
                    Some(v) => record(arg, v),
                    None if takes_separate_value(arg) => pending = Some(arg),
                    None => {}
                }
            }
            continue;
        }
        if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (i, c) in shorts.char_indices() {
                let Some(arg) = find_short(at, c) else {
                    continue;
                };
                if arg.get_action().takes_values() {
                    let rest = &shorts[i + c.len_utf8()..];
                    let rest = rest.strip_prefix('=').unwrap_or(rest);
                    if !rest.is_empty() {
                        record(arg, rest);
                    } else if takes_separate_value(arg) {
                        pending = Some(arg);
                    }
                    break;
                }
            }
            continue;
        }
        if positionals == 0
            && let Some(sub) = at.find_subcommand(word)
        {
            at = sub;
            continue;
        }
        positionals += 1;
    }

    let plan = |want: Want, prefix: &str, typed: &str| Plan {
        want,
        prefix: prefix.to_string(),
        typed: typed.to_string(),
        kube: kube.clone(),
    };
    if let Some(arg) = pending {
        return plan(values(arg, typed), "", typed);
    }
    if !escaped && typed.starts_with('-') {
        if let Some((name, value)) = typed
            .strip_prefix("--")
            .and_then(|long| long.split_once('='))
        {
            return match find_long(at, name) {
                Some(arg) => {
                    let prefix = format!("--{name}=");
                    let want = match values(arg, value) {
                        Want::Fixed(cands, d) => Want::Fixed(
                            cands
                                .into_iter()
                                .map(|c| Candidate {
                                    value: format!("{prefix}{}", c.value),
                                    help: c.help,
                                })
                                .collect(),
                            d,
                        ),
                        other => other,
                    };
                    plan(want, &prefix, value)
                }
                None => plan(Want::Fixed(Vec::new(), directive::NO_FILE_COMP), "", typed),
            };
        }
        return plan(
            Want::Fixed(flags(at, typed), directive::NO_FILE_COMP),
            "",
            typed,
        );
    }
    let subcommands: Vec<Candidate> = at
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name().starts_with(typed))
        .map(|s| Candidate {
            value: s.get_name().to_string(),
            help: s.get_about().map(|a| first_line(&a.to_string())),
        })
        .collect();
    if positionals == 0 && at.has_subcommands() {
        return plan(Want::Fixed(subcommands, directive::NO_FILE_COMP), "", typed);
    }
    match at.get_positionals().nth(positionals) {
        Some(arg) => plan(values(arg, typed), "", typed),
        None => plan(Want::Fixed(Vec::new(), directive::NO_FILE_COMP), "", typed),
    }
}

/// The flags of `cmd` (its own and the global ones) starting with `typed`: `--long` names, and
/// `-s` short names too when only a single dash is typed.
fn flags(cmd: &Command, typed: &str) -> Vec<Candidate> {
    let mut out = Vec::new();
    let single_dash = !typed.starts_with("--");
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let help = arg.get_help().map(|h| first_line(&h.to_string()));
        if let Some(long) = arg.get_long() {
            let value = if arg.is_require_equals_set() {
                format!("--{long}=")
            } else {
                format!("--{long}")
            };
            if value.starts_with(typed) {
                out.push(Candidate {
                    value,
                    help: help.clone(),
                });
            }
        }
        if single_dash && let Some(short) = arg.get_short() {
            let value = format!("-{short}");
            if value.starts_with(typed) {
                out.push(Candidate { value, help });
            }
        }
    }
    out
}

/// What a value of `arg` can be, `typed` being what is typed of it so far.
fn values(arg: &Arg, typed: &str) -> Want {
    let id = arg.get_id().as_str();
    match id {
        "context" => return Want::Kubeconfig(KubeconfigNames::Contexts),
        "cluster" => return Want::Kubeconfig(KubeconfigNames::Clusters),
        "user" => return Want::Kubeconfig(KubeconfigNames::Users),
        "namespace" => return Want::Namespaces,
        _ if id.ends_with("_context") => return Want::Kubeconfig(KubeconfigNames::Contexts),
        _ if id.ends_with("_namespace") => return Want::Namespaces,
        _ => {}
    }
    let possible: Vec<Candidate> = arg
        .get_possible_values()
        .into_iter()
        .filter(|v| !v.is_hide_set() && v.get_name().starts_with(typed))
        .map(|v| Candidate {
            value: v.get_name().to_string(),
            help: v.get_help().map(|h| first_line(&h.to_string())),
        })
        .collect();
    if !possible.is_empty() {
        return Want::Fixed(possible, directive::NO_FILE_COMP);
    }
    match arg.get_value_hint() {
        ValueHint::DirPath => Want::Files(directive::FILTER_DIRS),
        ValueHint::FilePath | ValueHint::AnyPath | ValueHint::ExecutablePath => {
            Want::Files(directive::DEFAULT)
        }
        _ => Want::Fixed(Vec::new(), directive::NO_FILE_COMP),
    }
}

/// Resolves a [`Plan`]: reads the kubeconfig or lists namespaces when the plan asks for them
/// (failures give no candidates). Returns the candidates and the directive.
pub async fn answer(plan: &Plan) -> (Vec<Candidate>, u32) {
    let names: Vec<(String, Option<String>)> = match &plan.want {
        Want::Fixed(candidates, directive) => return (candidates.clone(), *directive),
        Want::Files(directive) => return (Vec::new(), *directive),
        Want::Kubeconfig(which) => match plan.kube.kubeconfig() {
            Ok(Some(config)) => match which {
                KubeconfigNames::Contexts => config
                    .contexts
                    .iter()
                    .map(|c| {
                        let help = c
                            .context
                            .as_ref()
                            .map(|ctx| format!("cluster {}", ctx.cluster));
                        (c.name.clone(), help)
                    })
                    .collect(),
                KubeconfigNames::Clusters => config
                    .clusters
                    .iter()
                    .map(|c| (c.name.clone(), None))
                    .collect(),
                KubeconfigNames::Users => config
                    .auth_infos
                    .iter()
                    .map(|u| (u.name.clone(), None))
                    .collect(),
            },
            _ => Vec::new(),
        },
        Want::Namespaces => tokio::time::timeout(NAMESPACE_TIMEOUT, namespaces(&plan.kube))
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .map(|n| (n, None))
            .collect(),
    };
    let candidates = names
        .into_iter()
        .filter(|(name, _)| name.starts_with(&plan.typed))
        .map(|(name, help)| Candidate {
            value: format!("{}{name}", plan.prefix),
            help,
        })
        .collect();
    (candidates, directive::NO_FILE_COMP)
}

async fn namespaces(kube: &KubeArgs) -> Option<Vec<String>> {
    use k8s_openapi::api::core::v1::Namespace;
    let client = kube.client().await.ok()?;
    let list = kube::Api::<Namespace>::all(client)
        .list_metadata(&kube::api::ListParams::default())
        .await
        .ok()?;
    Some(
        list.items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect(),
    )
}

/// Writes cobra's answer: a line per candidate (`value<TAB>description`), then `:<directive>`.
pub fn write_answer(
    out: &mut dyn Write,
    candidates: &[Candidate],
    directive: u32,
) -> io::Result<()> {
    for c in candidates {
        match c.help.as_deref().filter(|h| !h.is_empty()) {
            Some(help) => writeln!(out, "{}\t{help}", c.value)?,
            None => writeln!(out, "{}", c.value)?,
        }
    }
    writeln!(out, ":{directive}")
}

/// The words to complete when this process was started for completion: as
/// `kubectl_complete-<plugin>` (every argument), or with `__complete` first (the rest).
pub fn request(args: &[OsString]) -> Option<Vec<String>> {
    let invoked = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let words = |from: usize| {
        args.iter()
            .skip(from)
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    };
    if invoked.starts_with(COMPLETE_PREFIX) {
        Some(words(1))
    } else if args.get(1).is_some_and(|a| a == COMPLETE_ARG) {
        Some(words(2))
    } else {
        None
    }
}

/// Answers a completion request for `cmd` on stdout; exit 0 (kubectl ignores the output of a
/// completion executable that fails).
pub fn main(cmd: Command, words: &[String]) -> ExitCode {
    let plan = plan(cmd, words);
    let (candidates, directive) = match &plan.want {
        Want::Fixed(candidates, directive) => (candidates.clone(), *directive),
        Want::Files(directive) => (Vec::new(), *directive),
        Want::Kubeconfig(_) | Want::Namespaces => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(answer(&plan)),
                Err(_) => (Vec::new(), directive::ERROR),
            }
        }
    };
    let mut stdout = io::stdout().lock();
    match write_answer(&mut stdout, &candidates, directive).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Parser)]
    #[command(name = "kubectl-demo")]
    struct Demo {
        #[command(subcommand)]
        cmd: Cmd,
        #[command(flatten)]
        global: crate::cli::GlobalArgs,
    }

    #[derive(Subcommand)]
    enum Cmd {
        /// Make things
        Make {
            /// Key kind
            #[arg(long, value_enum)]
            kind: Option<crate::cli::OutputFormat>,
            /// Into this directory
            #[arg(long)]
            out: Option<PathBuf>,
            #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "x")]
            dry: Option<String>,
            /// Target context
            #[arg(long)]
            target_context: Option<String>,
            name: Option<String>,
        },
        /// Look
        #[command(hide = true)]
        Secret,
    }

    fn run(words: &[&str]) -> Plan {
        use clap::CommandFactory as _;
        plan(
            Demo::command(),
            &words.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        )
    }

    fn values(p: &Plan) -> Vec<String> {
        match &p.want {
            Want::Fixed(c, _) => c.iter().map(|c| c.value.clone()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subcommands_at_the_top_without_hidden_ones_and_no_files() {
        let p = run(&[""]);
        assert_eq!(values(&p), ["make", "help"]);
        assert!(matches!(p.want, Want::Fixed(_, directive::NO_FILE_COMP)));
        assert_eq!(values(&run(&["ma"])), ["make"]);
    }

    #[test]
    fn flags_of_the_subcommand_include_the_global_ones() {
        let v = values(&run(&["make", "--"]));
        for f in [
            "--kind",
            "--out",
            "--dry=",
            "--context",
            "--namespace",
            "--help",
        ] {
            assert!(v.contains(&f.to_string()), "{f} in {v:?}");
        }
        assert_eq!(values(&run(&["make", "--k"])), ["--kind", "--kubeconfig"]);
        assert!(values(&run(&["make", "-"])).contains(&"-n".to_string()));
    }

    #[test]
    fn values_by_kind_of_flag() {
        assert_eq!(values(&run(&["make", "--kind", "j"])), ["json"]);
        assert_eq!(values(&run(&["make", "--kind=y"])), ["--kind=yaml"]);
        assert_eq!(
            run(&["make", "--out", ""]).want,
            Want::Files(directive::DEFAULT)
        );
        assert_eq!(
            run(&["make", "--context", ""]).want,
            Want::Kubeconfig(KubeconfigNames::Contexts)
        );
        assert_eq!(
            run(&["make", "--target-context", ""]).want,
            Want::Kubeconfig(KubeconfigNames::Contexts)
        );
        assert_eq!(run(&["make", "-n", ""]).want, Want::Namespaces);
        let p = run(&["make", "--namespace=is"]);
        assert_eq!(
            (p.want, p.prefix.as_str(), p.typed.as_str()),
            (Want::Namespaces, "--namespace=", "is")
        );
    }

    #[test]
    fn words_before_are_parsed_for_values_and_connection_flags() {
        // `--dry` takes its value only after '=', so `make` is not its value.
        let p = run(&[
            "--kubeconfig",
            "/k",
            "--context=prod",
            "make",
            "--dry",
            "-n",
            "",
        ]);
        assert_eq!(p.want, Want::Namespaces);
        assert_eq!(p.kube.kubeconfig.as_deref(), Some(Path::new("/k")));
        assert_eq!(p.kube.context.as_deref(), Some("prod"));
        // A flag's value is not a subcommand: after `-n make`, subcommands are still offered.
        assert_eq!(values(&run(&["-n", "make", "m"])), ["make"]);
        // The positional of `make` is a plain string: nothing to offer, no files.
        assert_eq!(
            run(&["make", "--kind", "json", ""]).want,
            Want::Fixed(Vec::new(), directive::NO_FILE_COMP)
        );
    }

    #[test]
    fn answer_is_candidates_then_the_directive() {
        let mut out = Vec::new();
        let c = [
            Candidate {
                value: "gen".into(),
                help: Some("Generate".into()),
            },
            Candidate {
                value: "x".into(),
                help: None,
            },
        ];
        write_answer(&mut out, &c, 4).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "gen\tGenerate\nx\n:4\n");
    }

    #[test]
    fn requests_by_name_or_by_argument() {
        let os = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            request(&os(&["/p/kubectl_complete-mtls_certs", "gen", ""])),
            Some(vec!["gen".to_string(), String::new()])
        );
        assert_eq!(
            request(&os(&["kubectl-mtls_certs", "__complete", "g"])),
            Some(vec!["g".to_string()])
        );
        assert_eq!(request(&os(&["kubectl-mtls_certs", "gen"])), None);
        assert_eq!(
            completion_name("kubectl-mtls_certs"),
            "kubectl_complete-mtls_certs"
        );
    }
}
