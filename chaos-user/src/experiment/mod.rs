//! Experiments (game days): `chaos run FILE`. A YAML file names a target, steady-state probes,
//! faults in phases and abort conditions (`spec`, checked into a `plan::Experiment`); the
//! runner checks steady state, injects, probes throughout, rolls back, measures the recovery,
//! and writes a report (JSON, Markdown, SVG timeline).

mod check;
mod faults;
pub mod junit;
pub mod metrics;
mod plan;
mod pod_faults;
mod probe;
mod progress;
mod pushgateway;
mod remote;
pub mod report;
mod runner;
pub mod scheduled;
mod single;
mod spec;
mod timeline;

pub use faults::{Ready, check_kernel, prepare};
pub use metrics::ExperimentMetrics;
pub use plan::{Experiment, parse};
pub use pushgateway::Pushgateway;
pub use remote::{Agents, prepare as prepare_remote};
pub use report::{Outcome, Report};
pub use runner::{Options, run};
pub use single::{FaultRequest, ready as ready_one};
pub use spec::{SelectorSpec, TargetSpec};

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Reads and checks an experiment file (no kernel involved).
pub fn load(path: &Path) -> Result<Experiment> {
    // A file that cannot be read is the user's to fix, like one that does not parse (exit 2):
    // status 1 of `chaos run` means the hypothesis did not hold.
    let text = std::fs::read_to_string(path).map_err(|e| Error::Invalid {
        at: path.display().to_string(),
        message: format!("cannot read the experiment file: {e}; give the path of a YAML file"),
    })?;
    parse(&text).map_err(|e| in_file(path, e))
}

/// An experiment file's text with `${VAR}` replaced from this environment (what `chaos --agent
/// URL run` sends: the variables are the caller's, not the agent's).
pub fn read_expanded(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Invalid {
        at: path.display().to_string(),
        message: format!("cannot read the experiment file: {e}; give the path of a YAML file"),
    })?;
    spec::expand_env(&text).map_err(|m| Error::Invalid {
        at: path.display().to_string(),
        message: m,
    })
}

/// An experiment's name as a file or directory name: lower-case ASCII letters and digits, any
/// other character a dash (`Dependency down!` is `dependency-down`).
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// An error about the experiment, prefixed with the file it is in.
pub fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Invalid { at, message } => Error::Invalid {
            at: match at.as_str() {
                plan::WHOLE_FILE => path.display().to_string(),
                _ => format!("{}: {at}", path.display()),
            },
            message,
        },
        other => other,
    }
}

/// Writes report.json, report.md and timeline.svg into `dir`; returns their paths.
pub fn write_report(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let json = serde_json::to_string_pretty(report).map_err(|source| Error::Json {
        context: "serializing the report".into(),
        source,
    })?;
    let files = [
        ("report.json", json),
        ("report.md", report.to_markdown()),
        ("timeline.svg", timeline::render(report)),
    ];
    files
        .into_iter()
        .map(|(name, body)| {
            let p = dir.join(name);
            std::fs::write(&p, body)
                .map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
            Ok(p)
        })
        .collect()
}
