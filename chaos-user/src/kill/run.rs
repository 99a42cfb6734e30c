//! The kill loop: each round chooses the victims anew (a random replica each time under
//! `--mode one`, as Chaos Monkey does), signals them, and for containers waits for the runtime
//! to run them again; rounds repeat every `every` until `duration`, or a stop signal.

use super::{
    recovery::{self, Seen},
    victims,
};
use crate::{
    error::{Error, Result},
    k8s::{Query, Resolved},
    session::{Ended, Stop, Wake},
    signal,
    target::Target,
};
use std::time::{Duration, Instant};

/// A kill with its defaults applied (`KillFaultSpec::into_spec`).
#[derive(Debug, Clone)]
pub struct KillSpec {
    pub signal: i32,
    /// None: one round.
    pub every: Option<Duration>,
    pub duration: Duration,
    pub force: bool,
    /// How long to watch a killed container for its restart (at most `every`).
    pub recovery_timeout: Duration,
}

/// Whom to kill.
#[derive(Debug, Clone)]
pub enum KillTarget {
    /// `--cgroup` (every process in it and below) or `--pid`.
    Local(Target),
    /// Kubernetes containers (their init processes), chosen anew each round.
    Pods(Query),
}

/// What happened, as it happens (one JSON line each with `--json`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum KillEvent {
    Killed {
        round: u32,
        pid: u32,
        comm: String,
        target: String,
        signal: &'static str,
        /// From the start of the run.
        at_ms: u64,
    },
    /// The runtime runs the container again: `after_ms` from the kill (the time to recover).
    Recovered {
        target: String,
        after_ms: u64,
        pid: u32,
        container_id: String,
    },
    NotRecovered {
        target: String,
        waited_ms: u64,
        why: String,
    },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KillSummary {
    pub event: &'static str,
    pub fault: &'static str,
    pub rounds: u32,
    pub killed: u32,
    pub recovered: u32,
    pub not_recovered: u32,
    pub ended: Ended,
    pub elapsed_ms: u64,
}

/// Runs the rounds; `report` gets every event as it happens. Errors: the first round's
/// (a target with no process, a guard), and the runtime's.
pub async fn run(
    spec: &KillSpec,
    target: &KillTarget,
    stop: &mut Stop,
    mut report: impl FnMut(&KillEvent),
) -> Result<KillSummary> {
    let started = Instant::now();
    let until = started + spec.duration;
    let mut s = KillSummary {
        event: "summary",
        fault: "kill",
        rounds: 0,
        killed: 0,
        recovered: 0,
        not_recovered: 0,
        ended: Ended::Deadline,
        elapsed_ms: 0,
    };
    loop {
        s.rounds += 1;
        let chosen = choose(target, spec.force, s.rounds == 1)?;
        let mut killed = Vec::new();
        for (v, container) in chosen {
            if !victims::signal(&v, spec.signal)? {
                continue; // it exited between the listing and the kill
            }
            s.killed += 1;
            report(&KillEvent::Killed {
                round: s.rounds,
                pid: v.pid,
                comm: v.comm.clone(),
                target: v.target.clone(),
                signal: signal::name(spec.signal),
                at_ms: started.elapsed().as_millis() as u64,
            });
            killed.extend(container.map(|c| (c, Instant::now())));
        }
        if let KillTarget::Pods(q) = target
            && !killed.is_empty()
        {
            let stopped = watch_recovery(q, killed, spec, stop, &mut s, &mut report).await?;
            if let Some(e) = stopped {
                s.ended = e;
                break;
            }
        }
        let next = match spec.every {
            Some(every) => started + every * s.rounds,
            None => break,
        };
        if next >= until {
            match stop.wait(until).await {
                Wake::End(Ended::Deadline) | Wake::GoLive => {}
                Wake::End(e) => s.ended = e,
            }
            break;
        }
        if let Wake::End(e @ Ended::Signal { .. }) = stop.wait(next).await {
            s.ended = e;
            break;
        }
    }
    s.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(s)
}

/// This round's victims, with the container each one is the init process of.
fn choose(
    target: &KillTarget,
    force: bool,
    first: bool,
) -> Result<Vec<(victims::Victim, Option<Resolved>)>> {
    let found = victims::chosen(target, force)?;
    if first && found.is_empty() {
        return Err(Error::input(
            "--cgroup",
            "the target has no process to kill; check it with `chaos targets` or \
             /sys/fs/cgroup/.../cgroup.procs",
        ));
    }
    Ok(found)
}

/// Polls the runtime (every 100 ms) until each killed container runs again, its pod is gone,
/// or `recovery_timeout`; a stop signal ends the wait (returned).
async fn watch_recovery(
    q: &Query,
    mut waiting: Vec<(Resolved, Instant)>,
    spec: &KillSpec,
    stop: &mut Stop,
    s: &mut KillSummary,
    report: &mut impl FnMut(&KillEvent),
) -> Result<Option<Ended>> {
    let endpoint = q.endpoint.as_deref();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for (c, at) in waiting {
            let waited_ms = at.elapsed().as_millis() as u64;
            let event = match recovery::look(&c, endpoint).await? {
                Seen::Again(n) => KillEvent::Recovered {
                    target: c.label(),
                    after_ms: waited_ms,
                    pid: n.pid,
                    container_id: n.container_id,
                },
                Seen::PodGone => KillEvent::NotRecovered {
                    target: c.label(),
                    waited_ms,
                    why: "the pod was deleted".into(),
                },
                Seen::Down if at.elapsed() >= spec.recovery_timeout => KillEvent::NotRecovered {
                    target: c.label(),
                    waited_ms,
                    why: format!(
                        "not running again within {:?} (no restart policy, or a back-off)",
                        spec.recovery_timeout
                    ),
                },
                Seen::Down => {
                    still.push((c, at));
                    continue;
                }
            };
            match &event {
                KillEvent::Recovered { .. } => s.recovered += 1,
                _ => s.not_recovered += 1,
            }
            report(&event);
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if let Wake::End(e @ Ended::Signal { .. }) =
            stop.wait(Instant::now() + Duration::from_millis(100)).await
        {
            return Ok(Some(e));
        }
    }
    Ok(None)
}
