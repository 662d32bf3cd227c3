//! `-v` and `RUST_LOG`: request logging on stderr.
//!
//! A small [`tracing::Subscriber`] of our own rather than tracing-subscriber's formatter, which
//! added 142 KB to the release binary for what we use of it: a level per target and one line per
//! event. Lines read like kubectl's (klog's) own `-v` output, a level letter and the time first:
//! `D1202 21:09:00.123456 PATCH (server-side apply) object=secret/client-credential dry_run=true`.
//! Spans are not kept: our events carry their context as fields.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber, span};

/// Which events are logged: a default level and `target=level` directives, as in `RUST_LOG`
/// (`warn,kube_client=error,shared=debug`). The longest matching target wins; a target matches
/// itself and its modules (`shared` matches `shared::cluster::apply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directives {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Directives {
    /// Parses comma-separated directives; `None` when one of them is not `LEVEL` or
    /// `TARGET=LEVEL` (a module path) with a level of off, error, warn, info, debug or trace.
    pub(crate) fn parse(text: &str) -> Option<Directives> {
        let mut directives = Directives {
            default: LevelFilter::ERROR,
            targets: Vec::new(),
        };
        for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match directive.split_once('=') {
                Some((target, level)) if is_target(target) => directives
                    .targets
                    .push((target.to_string(), level.parse().ok()?)),
                Some(_) => return None,
                None => directives.default = directive.parse().ok()?,
            }
        }
        Some(directives)
    }

    fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .filter(|(prefix, _)| {
                target
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.default, |(_, level)| *level)
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.level_for(metadata.target())
    }

    fn max_level(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, level)| *level)
            .fold(self.default, LevelFilter::max)
    }
}

/// A module path such as `shared::cluster` (EnvFilter's span and field filters are not taken).
fn is_target(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'))
}

/// Logs the events [`Directives`] enable, one line each, to `sink`.
pub(crate) struct Log<W> {
    directives: Directives,
    sink: W,
}

impl<W: Fn(&[u8]) + Send + Sync + 'static> Log<W> {
    pub(crate) fn new(directives: Directives, sink: W) -> Self {
        Log { directives, sink }
    }
}

/// Installs [`Log`] writing to stderr for the rest of the process.
pub(crate) fn init(directives: Directives) {
    let log = Log::new(directives, |line: &[u8]| {
        // One write per line, so lines from concurrent requests do not interleave.
        let _ = std::io::stderr().lock().write_all(line);
    });
    let _ = tracing::subscriber::set_global_default(log);
}

impl<W: Fn(&[u8]) + Send + Sync + 'static> Subscriber for Log<W> {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.directives.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.directives.enabled(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.directives.max_level())
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let now = time::OffsetDateTime::now_utc();
        let mut line = Line(format!(
            "{}{:02}{:02} {:02}:{:02}:{:02}.{:06}",
            level_letter(*event.metadata().level()),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.microsecond(),
        ));
        event.record(&mut line);
        line.0.push('\n');
        (self.sink)(line.0.as_bytes());
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

fn level_letter(level: Level) -> char {
    match level {
        Level::ERROR => 'E',
        Level::WARN => 'W',
        Level::INFO => 'I',
        Level::DEBUG => 'D',
        Level::TRACE => 'T',
    }
}

/// One log line: the message, then ` name=value` for every other field.
struct Line(String);

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn directives_parse_like_rust_log_and_refuse_the_rest() {
        let d = Directives::parse("warn,kube_client=error,shared=debug").unwrap();
        assert_eq!(d.default, LevelFilter::WARN);
        assert_eq!(d.level_for("shared"), LevelFilter::DEBUG);
        assert_eq!(d.level_for("shared::cluster::apply"), LevelFilter::DEBUG);
        assert_eq!(d.level_for("shared_other"), LevelFilter::WARN);
        assert_eq!(d.level_for("kube_client::client"), LevelFilter::ERROR);
        assert_eq!(d.level_for("hyper"), LevelFilter::WARN);
        assert_eq!(d.max_level(), LevelFilter::DEBUG);
        let nested = Directives::parse("shared=off,shared::cluster=trace").unwrap();
        assert_eq!(
            nested.level_for("shared::cluster::apply"),
            LevelFilter::TRACE
        );
        assert_eq!(nested.level_for("shared::pki"), LevelFilter::OFF);
        assert_eq!(nested.level_for("other"), LevelFilter::ERROR);
        assert_eq!(
            Directives::parse("TRACE").unwrap().default,
            LevelFilter::TRACE
        );
        for bad in ["loud", "shared=loud", "=debug", "shared[span]=debug"] {
            assert_eq!(Directives::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn events_become_one_line_each_with_their_fields() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let log = Log::new(
            Directives::parse("warn,shared=debug").unwrap(),
            move |line: &[u8]| {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8(line.to_vec()).unwrap())
            },
        );
        tracing::subscriber::with_default(log, || {
            let object = "secret/client-credential";
            tracing::debug!(target: "shared::cluster::apply", object, dry_run = true, "PATCH (server-side apply)");
            tracing::trace!(target: "shared::cluster::apply", "not logged: trace");
            tracing::info!(target: "hyper", "not logged: info elsewhere");
            tracing::warn!(target: "hyper", namespace = ?Some("ns"), "kept");
        });
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let (header, rest) = lines[0].split_at(21);
        assert!(header.starts_with('D'), "{header}");
        assert_eq!(header.as_bytes()[5], b' ', "{header}");
        assert_eq!(
            rest,
            " PATCH (server-side apply) object=secret/client-credential dry_run=true\n"
        );
        assert!(lines[1].starts_with('W'), "{}", lines[1]);
        assert!(
            lines[1].ends_with(" kept namespace=Some(\"ns\")\n"),
            "{}",
            lines[1]
        );
    }
}
