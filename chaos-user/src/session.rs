//! Running a fault in the foreground: wait for its deadline or a signal, then detach and report.
//! The kernel stops injecting at the deadline on its own; this only decides when to detach.

use crate::{
    ebpf::Counters,
    error::{Error, Result},
    net::NetFault,
    syscall::ConnectFault,
};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};

/// What every attached fault offers the runner.
pub trait Fault {
    fn counters(&self) -> Result<Counters>;
    fn program_ids(&self) -> Vec<u32>;
}

impl Fault for NetFault {
    fn counters(&self) -> Result<Counters> {
        NetFault::counters(self)
    }
    fn program_ids(&self) -> Vec<u32> {
        NetFault::program_ids(self)
    }
}

impl Fault for ConnectFault {
    fn counters(&self) -> Result<Counters> {
        ConnectFault::counters(self)
    }
    fn program_ids(&self) -> Vec<u32> {
        ConnectFault::program_ids(self)
    }
}

/// Signals that end a fault early. Created before attaching, so that a signal arriving while
/// attaching is not fatal (the default action would skip our cleanup).
pub struct Stop {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Stop {
    pub fn install() -> Result<Self> {
        let sig = |k| signal(k).map_err(|e| Error::io("installing signal handlers", e));
        Ok(Self {
            int: sig(SignalKind::interrupt())?,
            term: sig(SignalKind::terminate())?,
            hup: sig(SignalKind::hangup())?,
        })
    }

    /// Waits until `until` passes or a signal arrives.
    pub async fn wait(&mut self, until: Instant) -> Ended {
        tokio::select! {
            _ = tokio::time::sleep_until(until.into()) => Ended::Deadline,
            _ = self.int.recv() => Ended::Signal("SIGINT"),
            _ = self.term.recv() => Ended::Signal("SIGTERM"),
            _ = self.hup.recv() => Ended::Signal("SIGHUP"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "by", content = "signal")]
pub enum Ended {
    Deadline,
    Signal(&'static str),
}

/// The report printed when a fault ends.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub event: &'static str,
    pub fault: String,
    pub matched: u64,
    pub injected: u64,
    pub ended: Ended,
    pub elapsed_ms: u64,
    pub detach_ms: f64,
    pub program_ids: Vec<u32>,
}

/// Runs an attached fault until `duration` after `started` or a signal, then detaches it
/// (by dropping it) and returns the summary.
pub async fn run<F: Fault>(
    fault: F,
    name: String,
    started: Instant,
    duration: Duration,
    stop: &mut Stop,
) -> Result<Summary> {
    let ended = stop.wait(started + duration).await;
    let counters = fault.counters()?;
    let program_ids = fault.program_ids();
    let elapsed = started.elapsed();
    let t = Instant::now();
    drop(fault);
    let detach_ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(Summary {
        event: "summary",
        fault: name,
        matched: counters.matched,
        injected: counters.injected,
        ended,
        elapsed_ms: elapsed.as_millis() as u64,
        detach_ms,
        program_ids,
    })
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = if self.matched == 0 {
            0.0
        } else {
            self.injected as f64 * 100.0 / self.matched as f64
        };
        let why = match self.ended {
            Ended::Deadline => "duration over".to_string(),
            Ended::Signal(s) => format!("stopped by {s}"),
        };
        write!(
            f,
            "{}: {why} after {:.1}s; matched {}, injected {} ({pct:.1}%); detached in {:.1} ms",
            self.fault,
            self.elapsed_ms as f64 / 1e3,
            self.matched,
            self.injected,
            self.detach_ms
        )
    }
}
