//! The two ends of every mutating command: print the plan (`--dry-run=client`) or send it
//! (`--dry-run=none|server`) and print kubectl-style results.

use std::io::Write;

use super::{ApplyArgs, ApplyOutput, DryRun};
use crate::cluster::{ApplyMode, DEFAULT_MAX_IN_FLIGHT, apply_limited};
use crate::error::Error;
use crate::plan::{Plan, render_json_list, render_yaml};

/// Prints a plan for `--dry-run=client`: YAML by default (a stream `kubectl apply -f -` reads),
/// a JSON `List` with `-o json`, result lines with `-o table`, names with `-o name`.
pub fn print_plan(
    plan: &Plan,
    output: Option<ApplyOutput>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    match output.unwrap_or(ApplyOutput::Yaml) {
        ApplyOutput::Json => write!(out, "{}", plan.to_json())?,
        ApplyOutput::Yaml => write!(out, "{}", plan.to_yaml())?,
        ApplyOutput::Table => {
            for o in plan.objects() {
                writeln!(out, "{} created (dry run)", o.display_name())?;
            }
        }
        ApplyOutput::Name => {
            for o in plan.objects() {
                writeln!(out, "{}", o.display_name())?;
            }
        }
    }
    Ok(())
}

/// Sends a plan by server-side apply (`--dry-run=server` only validates) and prints one line per
/// object, the returned objects with `-o yaml|json` (without `managedFields`), or their names with
/// `-o name`.
pub async fn apply_and_print(
    client: &kube::Client,
    plan: &Plan,
    flags: &ApplyArgs,
    out: &mut dyn Write,
) -> Result<(), Error> {
    apply_and_print_limited(client, plan, flags, DEFAULT_MAX_IN_FLIGHT, out).await
}

/// [`apply_and_print`] with at most `max_in_flight` requests in flight (`--max-in-flight`).
pub async fn apply_and_print_limited(
    client: &kube::Client,
    plan: &Plan,
    flags: &ApplyArgs,
    max_in_flight: usize,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let force_conflicts = flags.force_conflicts;
    let mode = match flags.dry_run {
        DryRun::Server => ApplyMode::DryRunServer { force_conflicts },
        DryRun::None | DryRun::Client => ApplyMode::Apply { force_conflicts },
    };
    let applied = apply_limited(client, plan, mode, &flags.field_manager, max_in_flight).await?;
    // The objects as printed are copies: made only for the formats that print them.
    let objects = || -> Vec<_> { applied.iter().map(|a| a.object_for_output()).collect() };
    match flags.output {
        Some(ApplyOutput::Yaml) => write!(out, "{}", render_yaml(&objects()))?,
        Some(ApplyOutput::Json) => write!(out, "{}", render_json_list(&objects()))?,
        Some(ApplyOutput::Name) => {
            for a in &applied {
                writeln!(out, "{}", a.display_name)?;
            }
        }
        Some(ApplyOutput::Table) | None => {
            for a in &applied {
                writeln!(out, "{a}")?;
            }
        }
    }
    Ok(())
}
