//! The agent's faults, held by one thread of their own (an actor): a fault's kernel objects are
//! owned by the process and detached when dropped, so they never leave this thread; the API
//! sends it commands. Faults end at their duration (the kernel ends them at their deadline
//! anyway), when asked, when their target vanishes, or all at once when the agent stops.

use super::metrics::Metrics;
use crate::{
    error::Result,
    experiment::{FaultRequest, Ready, ready_one},
    fault::Fault,
    watch::{Watched, first_gone},
};
use std::{
    collections::BTreeMap,
    sync::mpsc,
    time::{Duration, Instant, SystemTime},
};
use tokio::sync::oneshot;

/// What the API shows of a fault.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaultInfo {
    pub id: String,
    /// The node the agent runs on (`chaos agent --node-name`).
    pub node: String,
    pub name: String,
    /// "net drop", "syscall connect", "kill".
    pub fault: String,
    pub detail: String,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    pub left_ms: u64,
    pub matched: u64,
    pub injected: u64,
    /// "active", or why it ended ("duration over", "stopped", "target gone: ...").
    pub state: String,
}

pub enum Cmd {
    Start(Box<FaultRequest>, oneshot::Sender<Result<FaultInfo>>),
    List(oneshot::Sender<Vec<FaultInfo>>),
    /// One fault by id (None: every active one).
    Stop(Option<String>, oneshot::Sender<Vec<FaultInfo>>),
    /// Stop everything and end the thread.
    Shutdown(oneshot::Sender<usize>),
}

/// Where this agent runs: its node's name (reports say which node a fault ran on) and the
/// container runtime its pod targets are found through when a request names none.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    pub runtime_endpoint: Option<String>,
}

/// Limits on what the API may start.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_faults: usize,
    pub max_duration: Duration,
    /// Whether requests may override the blast-radius guards (`force`).
    pub allow_force: bool,
}

struct Held {
    info: FaultInfo,
    fault: Option<Box<dyn Fault>>,
    watched: Vec<Watched>,
    until: Instant,
}

/// Runs the actor until `Shutdown`; `ids` names faults in the order they started.
pub fn run(rx: mpsc::Receiver<Cmd>, limits: Limits, node: NodeInfo, metrics: Metrics) {
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut next = 1u64;
    loop {
        match rx.recv_timeout(crate::watch::EVERY) {
            Ok(Cmd::Start(req, reply)) => {
                let id = format!("f{next}");
                next += 1;
                let r = start(&id, *req, &limits, &node, &held, &metrics).map(|h| {
                    let info = h.info.clone();
                    held.insert(id, h);
                    info
                });
                let _ = reply.send(r);
            }
            Ok(Cmd::List(reply)) => {
                let _ = reply.send(held.values_mut().map(refresh).collect());
            }
            Ok(Cmd::Stop(which, reply)) => {
                let stopped = held
                    .iter_mut()
                    .filter(|(id, h)| h.fault.is_some() && which.as_ref().is_none_or(|w| w == *id))
                    .map(|(_, h)| end(h, "stopped".into()))
                    .collect();
                let _ = reply.send(stopped);
            }
            Ok(Cmd::Shutdown(reply)) => {
                let n = held
                    .values_mut()
                    .filter(|h| h.fault.is_some())
                    .map(|h| end(h, "agent stopping".into()))
                    .count();
                let _ = reply.send(n);
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        for h in held.values_mut().filter(|h| h.fault.is_some()) {
            let why = if Instant::now() >= h.until {
                Some("duration over".to_string())
            } else {
                first_gone(&h.watched).map(|w| format!("target gone: {w}"))
            };
            if let Some(why) = why {
                end(h, why);
            }
        }
        metrics.observe(held.values_mut().map(refresh).collect());
    }
}

fn start(
    id: &str,
    mut req: FaultRequest,
    limits: &Limits,
    node: &NodeInfo,
    held: &BTreeMap<String, Held>,
    metrics: &Metrics,
) -> Result<Held> {
    let active = held.values().filter(|h| h.fault.is_some()).count();
    if active >= limits.max_faults {
        return Err(crate::Error::input(
            "max faults",
            format!("{active} faults are active on this agent, its limit; stop one first"),
        ));
    }
    if req.duration.0 > limits.max_duration {
        return Err(crate::Error::input(
            "duration",
            format!(
                "longer than this agent's limit of {:?} (chaos agent --max-duration)",
                limits.max_duration
            ),
        ));
    }
    let name = req.name.clone().unwrap_or_else(|| id.to_string());
    let t = &mut req.target;
    if (t.pod.is_some() || t.namespace.is_some() || t.selector.is_some())
        && t.runtime_endpoint.is_none()
    {
        t.runtime_endpoint = node.runtime_endpoint.clone();
    }
    let ready: Ready = ready_one(req, false, limits.allow_force)?;
    let watched = ready.watched()?;
    let t = Instant::now();
    let fault = ready.attach()?;
    metrics.attached(t.elapsed());
    Ok(Held {
        info: FaultInfo {
            id: id.to_string(),
            node: node.name.clone(),
            name,
            fault: ready.kind.clone(),
            detail: ready.detail.clone(),
            started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            duration_ms: ready.duration.as_millis() as u64,
            left_ms: ready.duration.as_millis() as u64,
            matched: 0,
            injected: 0,
            state: "active".into(),
        },
        fault: Some(fault),
        watched,
        until: Instant::now() + ready.duration,
    })
}

/// The fault's counters and time left now; true when a fault on several targets has none left.
fn update(h: &mut Held, follow: bool) -> bool {
    let Some(f) = &mut h.fault else { return false };
    if let Ok(c) = f.counters() {
        h.info.matched = c.matched;
        h.info.injected = c.injected;
    }
    h.info.left_ms = h
        .until
        .saturating_duration_since(Instant::now())
        .as_millis() as u64;
    if !follow {
        return false;
    }
    let (news, none_left) = f.detach_gone();
    for n in news {
        tracing::warn!("{}: {n}", h.info.id);
    }
    none_left
}

/// The info with the fault's counters now (detaching the parts whose targets vanished).
fn refresh(h: &mut Held) -> FaultInfo {
    if update(h, true) {
        end(h, "target gone: every target".into());
    }
    h.info.clone()
}

/// Ends it in the kernel, then detaches (drops) it, keeping its last counters.
fn end(h: &mut Held, why: String) -> FaultInfo {
    if let Some(f) = &mut h.fault
        && let Err(e) = f.disarm()
    {
        tracing::warn!("{}", crate::error::chain(&e));
    }
    update(h, false);
    h.fault = None;
    h.info.left_ms = 0;
    h.info.state = why;
    h.info.clone()
}
