//! `chaos stress cpu|memory`: worker processes that burn CPU or hold memory inside a target's
//! cgroups (v2, and the v1 controller hierarchies on hybrid hosts) for --duration, and a
//! summary of what they did: CPU time, peak memory, OOM kills. `stress-worker` (hidden) is what
//! each worker runs.

use crate::common::{self, out};
use chaos::{
    scalar::{ByteRate, Bytes, Pct},
    session::{Ended, Stop, Wake},
    stress::{self, CpuInput, MemoryInput, StressFaultSpec, StressPlan, StressSummary, Stressing},
    target::Target,
    units::{self, Percent},
};
use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub enum StressCommand {
    /// Burn CPU: --workers processes, each busy --load percent of one CPU.
    ///
    /// Examples:
    ///   chaos stress cpu --workers 2 --load 50 --cgroup system.slice/app.service --duration 1m
    ///   chaos stress cpu --pod shop/web-0 --container app --duration 30s
    Cpu(CpuArgs),
    /// Hold memory: --size bytes between the workers, every page written, at --rate (default
    /// all at once), until the end; the target's memory limit and OOM killer act on them.
    ///
    /// Examples:
    ///   chaos stress memory --size 256MiB --pid 4242 --duration 30s
    ///   chaos stress memory --size 1GiB --rate 64MiB/s --workers 2 --cgroup app --duration 2m
    Memory(MemoryArgs),
}

#[derive(Debug, clap::Args)]
pub struct CpuArgs {
    /// Worker processes, each on one CPU at most (default 1, at most 256).
    #[arg(long, value_name = "N")]
    workers: Option<u32>,
    /// Share of one CPU each worker keeps busy, in percent: above 0, up to 100 (default 100).
    #[arg(long, value_name = "P", value_parser = common::percent, allow_negative_numbers = true)]
    load: Option<Percent>,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// Memory held by all workers together, each its share: 64MiB, 1G, 512KiB (powers of 1024).
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
    size: Option<u64>,
    /// Allocation rate of all workers together, e.g. 16MiB/s (default: all at once).
    #[arg(long, value_name = "SIZE/s", value_parser = units::parse_byte_rate)]
    rate: Option<u64>,
    /// Worker processes (default 1, at most 256).
    #[arg(long, value_name = "N")]
    workers: Option<u32>,
    #[command(flatten)]
    target: TargetArgs,
}

// Whom and how long, as every stress takes it.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// How long the workers run: 30s, 5m (at most 24h without --force).
    #[arg(long, value_name = "D", value_parser = common::duration)]
    duration: Duration,
    /// The workers join this cgroup v2 (and the v1 cgroups of a process in it).
    #[arg(long, value_name = "PATH", conflicts_with = "pid")]
    cgroup: Option<String>,
    /// The workers join this process's cgroups (/proc/PID/cgroup: v2 and v1).
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    #[command(flatten)]
    pods: crate::pods::PodArgs,
    /// Print the plan (targets, cgroups, memory limits) and start nothing.
    #[arg(long)]
    dry_run: bool,
    /// Override the guards: the root cgroup, a cgroup holding PID 1 or chaos, over 24h.
    #[arg(long)]
    force: bool,
}

// `chaos stress-worker` (hidden): one worker, started by `chaos stress`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(subcommand)]
    work: WorkerKind,
    /// CLOCK_MONOTONIC deadline in ns; the worker ends by itself a second after it.
    #[arg(long, global = true, default_value_t = 0)]
    deadline_ns: u64,
    /// The id of the stress it belongs to (for `ps` and tests).
    #[arg(long, global = true, default_value = "")]
    fault: String,
}

#[derive(Debug, clap::Subcommand)]
enum WorkerKind {
    Cpu {
        #[arg(long)]
        load: f64,
    },
    Memory {
        #[arg(long)]
        bytes: u64,
        #[arg(long)]
        rate: Option<u64>,
    },
}

/// Runs one worker to its end (in the process `chaos stress` started).
pub fn worker(a: &WorkerArgs) -> ExitCode {
    let work = match a.work {
        WorkerKind::Cpu { load } => stress::worker::Work::Cpu { percent: load },
        WorkerKind::Memory { bytes, rate } => stress::worker::Work::Memory { bytes, rate },
    };
    ExitCode::from(stress::worker::run(work, a.deadline_ns))
}

pub async fn run(cmd: StressCommand, json: bool) -> chaos::Result<ExitCode> {
    let (input, t) = match cmd {
        StressCommand::Cpu(a) => (
            StressFaultSpec {
                cpu: Some(CpuInput {
                    workers: a.workers,
                    load: a.load.map(Pct),
                }),
                memory: None,
            },
            a.target,
        ),
        StressCommand::Memory(a) => (
            StressFaultSpec {
                cpu: None,
                memory: Some(MemoryInput {
                    size: a.size.map(Bytes),
                    rate: a.rate.map(ByteRate),
                    workers: a.workers,
                }),
            },
            a.target,
        ),
    };
    let spec = input.into_spec(t.duration, t.force)?;
    let q = t.pods.query();
    let (targets, flag) = if q.is_set() {
        let chosen = t.pods.resolve(json).await?.unwrap_or_default();
        let targets = chosen
            .iter()
            .map(|r| (r.label(), Target::Pid(r.pid)))
            .collect();
        (targets, "--pod")
    } else {
        q.check()?;
        match Target::from_args(t.cgroup, t.pid) {
            Some(Target::Cgroup(c)) => (vec![(c.clone(), Target::Cgroup(c))], "--cgroup"),
            Some(Target::Pid(p)) => (vec![(format!("process {p}"), Target::Pid(p))], "--pid"),
            None => {
                return Err(chaos::Error::input(
                    "--cgroup/--pid",
                    "say what to stress: --cgroup PATH, --pid PID, or --pod/--selector",
                ));
            }
        }
    };
    let plan = stress::plan(spec, targets, flag)?;
    if t.dry_run {
        print_plan(&plan, json);
        return Ok(ExitCode::SUCCESS);
    }
    chaos::state::reap_stale();
    let mut stop = Stop::install()?;
    let running = Stressing::start(&plan)?;
    Attached {
        event: "attached",
        fault: plan.spec.kind(),
        fault_id: &running.fault_id,
        detail: plan.detail(),
        backend: "workers",
        program_ids: Vec::new(),
        duration_ms: plan.spec.duration.as_millis() as u64,
        workers: &running.pids,
        memory: plan.placements.iter().map(|p| p.memory_limit()).collect(),
    }
    .print(json);
    let by = loop {
        if running.is_over() {
            break None;
        }
        if let Wake::End(e @ Ended::Signal { .. }) =
            stop.wait(Instant::now() + Duration::from_millis(100)).await
        {
            break Some(e);
        }
    };
    let summary = running.finish(by)?;
    print_summary(&summary, json);
    // README, "Exit status": 3 when the target vanished.
    Ok(match summary.ended {
        stress::StressEnd::TargetGone { .. } => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    })
}

/// The line printed once the workers run: JSON on stdout, else on stderr.
#[derive(serde::Serialize)]
struct Attached<'a> {
    event: &'static str,
    fault: &'static str,
    fault_id: &'a str,
    detail: String,
    /// No program: processes.
    backend: &'static str,
    program_ids: Vec<u32>,
    duration_ms: u64,
    /// The workers' pids.
    workers: &'a [u32],
    /// Per target: where its memory limit comes from.
    memory: Vec<String>,
}

impl Attached<'_> {
    fn print(&self, json: bool) {
        if json {
            return common::print_json(self);
        }
        eprintln!(
            "chaos: {} {}: {} for {:.1}s (workers {:?}); Ctrl-C stops it early",
            self.fault,
            self.fault_id,
            self.detail,
            self.duration_ms as f64 / 1e3,
            self.workers
        );
    }
}

fn print_plan(plan: &StressPlan, json: bool) {
    if json {
        #[derive(serde::Serialize)]
        struct Plan<'a> {
            event: &'static str,
            fault: &'static str,
            detail: String,
            workers_per_target: u32,
            duration_ms: u64,
            targets: &'a [stress::Placement],
            memory: Vec<String>,
        }
        return common::print_json(&Plan {
            event: "plan",
            fault: plan.spec.kind(),
            detail: plan.detail(),
            workers_per_target: plan.spec.workers(),
            duration_ms: plan.spec.duration.as_millis() as u64,
            targets: &plan.placements,
            memory: plan.placements.iter().map(|p| p.memory_limit()).collect(),
        });
    }
    out!(
        "{} (dry run, nothing started): {} for {:.1}s",
        plan.spec.kind(),
        plan.detail(),
        plan.spec.duration.as_secs_f64()
    );
    for p in &plan.placements {
        out!("  {}: memory: {}", p.label, p.memory_limit());
    }
}

fn print_summary(s: &StressSummary, json: bool) {
    if json {
        return common::print_json(s);
    }
    let why = match &s.ended {
        stress::StressEnd::Deadline => "at its deadline".to_string(),
        stress::StressEnd::Signal { signal } => format!("stopped by {signal}"),
        stress::StressEnd::WorkersGone => "every worker had ended".to_string(),
        stress::StressEnd::TargetGone { target, after_ms } => format!(
            "when {target} exited ({:.1}s in; its workers were stopped)",
            *after_ms as f64 / 1e3
        ),
    };
    out!(
        "{}: {} worker(s) started, {} OOM-killed (oom_kill +{} in the targets' cgroups), {} \
         failed; CPU {:.1}s, peak memory {}; ended {why} after {:.1}s",
        s.fault,
        s.workers_started,
        s.oom_killed,
        s.oom_kills_in_cgroups,
        s.workers_failed,
        s.cpu_time_ms as f64 / 1e3,
        units::format_size(s.peak_memory_bytes.max(1)),
        s.elapsed_ms as f64 / 1e3
    );
}

#[cfg(test)]
mod tests {
    use crate::Cli;
    use clap::Parser as _;

    /// The command line the library gives a worker is one this binary parses.
    #[test]
    fn worker_argv_parses() {
        for work in [
            chaos::stress::worker::Work::Cpu { percent: 12.5 },
            chaos::stress::worker::Work::Memory {
                bytes: 1 << 20,
                rate: Some(4096),
            },
        ] {
            let mut argv = vec!["chaos".to_string()];
            argv.extend(chaos::stress::worker::argv(work, 42, "abcd"));
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("{argv:?}: {e}");
            }
        }
    }
}
