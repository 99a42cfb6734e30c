//! `chaos kill`: signal a target's processes (a container's init process), once or every
//! interval, and report what was killed and whether the runtime ran it again.

use crate::common::{self, out};
use chaos::{
    kill::{self, KillEvent, KillFaultSpec, KillTarget},
    scalar::{Dur, Text},
    session::Stop,
    target::Target,
};
use std::{process::ExitCode, time::Duration};

// Examples:
//   chaos kill --pod shop/payments-0 --container app
//   chaos kill --selector app=payments --namespace shop --mode one --every 30s --duration 10m
//   chaos kill --cgroup system.slice/myapp.service --signal SIGTERM
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal by name or number (SIGKILL, TERM, 15, ...). Default: SIGKILL.
    #[arg(long, value_name = "SIGNAL")]
    signal: Option<String>,
    /// Kill again at this interval (a new random choice each time with --mode), until
    /// --duration ends. Default: once.
    #[arg(long, value_name = "D", value_parser = common::duration, requires = "duration")]
    every: Option<Duration>,
    /// How long the rounds go on (with --every).
    #[arg(long, value_name = "D", value_parser = common::duration)]
    duration: Option<Duration>,
    /// How long to watch a killed container for the runtime to run it again (default 30s, at
    /// most --every).
    #[arg(long, value_name = "D", value_parser = common::duration)]
    recovery_timeout: Option<Duration>,
    /// Every process of this cgroup v2 and below.
    #[arg(long, value_name = "PATH", conflicts_with = "pid")]
    cgroup: Option<String>,
    /// This process.
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    #[command(flatten)]
    pods: crate::pods::PodArgs,
    /// Override the guards: PID 1, chaos itself and its parent, a cgroup holding them.
    #[arg(long)]
    force: bool,
}

pub async fn run(
    a: KillArgs,
    json: bool,
    remote: Option<&crate::remote::Remote>,
) -> chaos::Result<ExitCode> {
    let input = KillFaultSpec {
        signal: a.signal.map(Text),
        every: a.every.map(Dur),
        recovery_timeout: a.recovery_timeout.map(Dur),
    };
    if a.duration.is_some() && a.every.is_none() {
        return Err(chaos::Error::input(
            "--duration",
            "a kill without --every is one round: give --every D with --duration, or leave \
             --duration out",
        ));
    }
    let once = a.recovery_timeout.unwrap_or(kill::DEFAULT_RECOVERY_TIMEOUT);
    if let Some(r) = remote {
        let local = Target::from_args(a.cgroup.clone(), a.pid);
        let target = crate::remote::target_spec(local, &a.pods)?;
        let controls = chaos::controls::Controls {
            force: a.force,
            ..Default::default()
        };
        let mut req = crate::remote::request(target, a.duration.unwrap_or(once), &controls)?;
        req.kill = Some(input);
        return r.start(&req, json);
    }
    let spec = input.into_spec(a.duration.unwrap_or(once), a.force)?;
    let q = a.pods.query();
    let target = if q.is_set() {
        q.check()?;
        KillTarget::Pods(q)
    } else {
        KillTarget::Local(Target::from_args(a.cgroup, a.pid).ok_or_else(|| {
            chaos::Error::input(
                "--cgroup/--pid",
                "say whom to kill: --cgroup PATH, --pid PID, or --pod/--selector",
            )
        })?)
    };
    let mut stop = Stop::install()?;
    let summary = kill::run(&spec, &target, &mut stop, |e| print(e, json)).await?;
    if json {
        common::print_json(&summary);
    } else {
        let why = match &summary.ended {
            chaos::session::Ended::Signal { signal } => format!("stopped by {signal}"),
            _ => "done".to_string(),
        };
        let recovery = match summary.recovered + summary.not_recovered {
            0 => String::new(),
            _ => format!(
                ", running again {}, not {}",
                summary.recovered, summary.not_recovered
            ),
        };
        out!(
            "kill: {} round(s), killed {}{recovery}; {why} after {:.1}s",
            summary.rounds,
            summary.killed,
            summary.elapsed_ms as f64 / 1e3
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print(e: &KillEvent, json: bool) {
    if json {
        return common::print_json(e);
    }
    match e {
        KillEvent::Killed {
            round,
            pid,
            comm,
            target,
            signal,
            at_ms,
        } => out!(
            "round {round}: {signal} to pid {pid} ({comm}) of {target} at {:.1}s",
            *at_ms as f64 / 1e3
        ),
        KillEvent::Recovered {
            target,
            after_ms,
            pid,
            ..
        } => out!(
            "{target}: running again {:.2}s after the kill (pid {pid})",
            *after_ms as f64 / 1e3
        ),
        KillEvent::NotRecovered { target, why, .. } => out!("{target}: {why}"),
    }
}
