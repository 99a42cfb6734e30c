//! `chaos status`, `chaos stop`, `chaos live`, `chaos cleanup`: faults that outlive a command.

use crate::common::{self, out};
use chaos::{Error, background};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Fault id (from `chaos status` or `--background`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<String>,
    /// Stop every fault.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    /// Id of a background fault started with --dry-run.
    id: String,
}

pub fn status(json: bool) -> chaos::Result<ExitCode> {
    let faults = background::status();
    if json {
        common::print_json(&faults);
        return Ok(ExitCode::SUCCESS);
    }
    if faults.is_empty() {
        out!("no faults");
    }
    for f in faults {
        let counters = f
            .counters
            .map(|c| format!("matched {}, injected {}", c.matched, c.injected))
            .unwrap_or_else(|| format!("owner pid {}", f.owner_pid));
        out!(
            "{}  {:<8}  {:>7.1}s left  {}: {}  ({counters})",
            f.id,
            f.state,
            f.remaining_ms as f64 / 1e3,
            f.fault,
            f.detail
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn stop(a: StopArgs) -> chaos::Result<ExitCode> {
    if a.all {
        let (stopped, failed) = background::stop_all();
        out!("stopped {stopped} fault(s)");
        return match failed {
            0 => Ok(ExitCode::SUCCESS),
            n => Err(Error::io(
                "stop --all",
                std::io::Error::other(format!("{n} failure(s); see the warnings above")),
            )),
        };
    }
    let id = a.id.expect("clap requires an id without --all");
    background::stop(&id)?;
    out!("stopped {id}");
    Ok(ExitCode::SUCCESS)
}

pub fn live(a: LiveArgs) -> chaos::Result<ExitCode> {
    background::go_live(&a.id)?;
    out!("{} is live", a.id);
    Ok(ExitCode::SUCCESS)
}

pub fn cleanup() -> chaos::Result<ExitCode> {
    let (removed, failed) = background::cleanup();
    out!("removed {removed} fault(s)");
    if failed > 0 {
        return Err(Error::io(
            "cleanup",
            std::io::Error::other(format!(
                "{failed} part(s) could not be removed; see the warnings above"
            )),
        ));
    }
    Ok(ExitCode::SUCCESS)
}
