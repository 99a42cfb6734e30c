//! CPU and memory stress (issue 19): worker processes that burn CPU (a duty cycle of one CPU
//! each) or hold memory (allocated at a rate, every page written) inside the target's own
//! cgroups, so that the container's limits, throttling and OOM killer act on them as on its own
//! processes.
//!
//! - `input`: the spec as written (`chaos stress cpu|memory` flags, an experiment's `stress:`);
//!   `into_spec` applies the defaults and refuses bad input, naming the flag.
//! - `cgroups`: where the workers go (the target's cgroup v2 and, on hybrid hosts, its v1
//!   controller hierarchies) and the OOM-kill counters to watch.
//! - `worker`: what a worker process does (the hidden `chaos stress-worker` subcommand), and
//!   how one is started: placed in the cgroups between fork and exec, tied to chaos with
//!   PR_SET_PDEATHSIG.
//! - `run`: the supervisor: state record first, workers, deadline, kill, the summary.
//! - `fault`: the same as a fault of an experiment phase.

mod cgroups;
mod fault;
mod input;
mod run;
pub mod worker;

pub use cgroups::{Placement, support};
pub use fault::StressFault;
pub use input::{CpuInput, MemoryInput, StressFaultSpec};
pub use run::{StressEnd, StressPlan, StressSummary, Stressing, plan};

use std::time::Duration;

/// At most this many workers per target (each is a process).
pub const MAX_WORKERS: u32 = 256;

/// What the workers do, defaults applied (`StressFaultSpec::into_spec`).
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// `workers` processes, each busy `percent` of the time on one CPU (0 < percent <= 100).
    Cpu { workers: u32, percent: f64 },
    /// `workers` processes holding `bytes` between them, each its share, allocated at
    /// `rate` bytes per second between them (None: all at once).
    Memory {
        workers: u32,
        bytes: u64,
        rate: Option<u64>,
    },
}

/// A stress with its defaults applied and its input checked.
#[derive(Debug, Clone, PartialEq)]
pub struct StressSpec {
    pub load: Load,
    pub duration: Duration,
    /// Overrides the guards (root cgroup, cgroup of PID 1 or chaos, durations over 24 h).
    pub force: bool,
}

impl StressSpec {
    /// "stress cpu" or "stress memory": the fault's name in summaries, reports and doctor.
    pub fn kind(&self) -> &'static str {
        match self.load {
            Load::Cpu { .. } => "stress cpu",
            Load::Memory { .. } => "stress memory",
        }
    }

    pub fn workers(&self) -> u32 {
        match self.load {
            Load::Cpu { workers, .. } | Load::Memory { workers, .. } => workers,
        }
    }

    /// "2 workers at 50% of a CPU each", "64MiB in 1 worker at 16MiB/s".
    pub fn describe(&self) -> String {
        let w = |n: u32| format!("{n} worker{}", if n == 1 { "" } else { "s" });
        match self.load {
            Load::Cpu { workers, percent } => {
                format!("{} at {percent}% of a CPU each", w(workers))
            }
            Load::Memory {
                workers,
                bytes,
                rate,
            } => format!(
                "{} in {}, {}",
                crate::units::format_size(bytes),
                w(workers),
                rate.map_or("all at once".to_string(), |r| format!(
                    "at {}/s",
                    crate::units::format_size(r)
                ))
            ),
        }
    }
}
