//! Running a fault in the foreground: wait for its deadline or a signal, then detach and report.
//! The kernel stops injecting at the deadline on its own; this only decides when to detach.

pub use crate::fault::Fault;
use crate::{
    error::{Error, Result},
    events::EventSink,
};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};

/// Signals that end a fault early. Created before attaching, so that a signal arriving while
/// attaching is not fatal (the default action would skip our cleanup).
pub struct Stop {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

/// Why the wait ended.
pub enum Wake {
    End(Ended),
    /// SIGUSR1: switch a dry run to live.
    GoLive,
}

impl Stop {
    pub fn install() -> Result<Self> {
        crate::startup::watch_signals()?;
        let sig = |k| signal(k).map_err(|e| Error::io("installing signal handlers", e));
        Ok(Self {
            int: sig(SignalKind::interrupt())?,
            term: sig(SignalKind::terminate())?,
            hup: sig(SignalKind::hangup())?,
            usr1: sig(SignalKind::user_defined1())?,
        })
    }

    /// Waits until `until` passes or a signal arrives.
    pub async fn wait(&mut self, until: Instant) -> Wake {
        tokio::select! {
            _ = tokio::time::sleep_until(until.into()) => Wake::End(Ended::Deadline),
            _ = self.int.recv() => Wake::End(Ended::Signal { signal: "SIGINT" }),
            _ = self.term.recv() => Wake::End(Ended::Signal { signal: "SIGTERM" }),
            _ = self.hup.recv() => Wake::End(Ended::Signal { signal: "SIGHUP" }),
            _ = self.usr1.recv() => Wake::GoLive,
        }
    }
}

/// Why a fault ended, as the summary's `ended` object: `{"by": "deadline"}`,
/// `{"by": "signal", "signal": "SIGINT"}`, `{"by": "target_gone", "target": "...", "after_ms": N}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Ended {
    Deadline,
    Signal {
        signal: &'static str,
    },
    /// What the fault acted on vanished (crate::watch); what was left was detached.
    TargetGone {
        target: String,
        after_ms: u64,
    },
}

/// The report printed when a fault ends.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub event: &'static str,
    pub fault: String,
    pub fault_id: String,
    pub matched: u64,
    /// Faults injected; in dry-run mode, faults that would have been.
    pub injected: u64,
    pub dry_run: bool,
    pub over_budget: u64,
    /// Packets dropped by `--loss` on top of the main action.
    pub lost: u64,
    pub events_written: Option<u64>,
    pub events_lost: u64,
    pub ended: Ended,
    pub elapsed_ms: u64,
    pub detach_ms: f64,
    pub program_ids: Vec<u32>,
    /// A rule set's rules, each with what it did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleSummary {
    pub rule: String,
    pub matched: u64,
    pub injected: u64,
    pub lost: u64,
}

/// Runs an attached fault until `duration` after `started`, a signal, or one of `watched`
/// vanishing (looked at every `watch::EVERY`), writing its audit events meanwhile, then
/// detaches it (by dropping it) and returns the summary.
pub async fn run<F: Fault>(
    mut fault: F,
    name: String,
    started: Instant,
    duration: Duration,
    stop: &mut Stop,
    watched: &[crate::watch::Watched],
) -> Result<Summary> {
    // Running: a stop signal now ends the fault with its summary.
    crate::startup::undo_needed();
    let mut events = fault.take_events();
    let until = started + duration;
    let ended = loop {
        let tick = until.min(Instant::now() + crate::watch::EVERY);
        let wake = match events.as_mut() {
            Some(sink) => tokio::select! {
                wake = stop.wait(tick) => wake,
                res = sink.pump() => { res?; continue; }
            },
            None => stop.wait(tick).await,
        };
        match wake {
            Wake::End(Ended::Deadline) if Instant::now() < until => {
                let (parts_gone, none_left) = fault.detach_gone();
                for news in &parts_gone {
                    tracing::warn!("{name}: {news}");
                }
                let after_ms = started.elapsed().as_millis() as u64;
                if none_left {
                    let target = match parts_gone.as_slice() {
                        [] => "every target".to_string(),
                        last => last.join("; "),
                    };
                    break Ended::TargetGone { target, after_ms };
                }
                if let Some(target) = crate::watch::first_gone(watched) {
                    break Ended::TargetGone { target, after_ms };
                }
            }
            Wake::End(e) => break e,
            Wake::GoLive if fault.dry_run() => {
                fault.go_live()?;
                tracing::warn!("{name}: dry run switched to live (SIGUSR1)");
            }
            Wake::GoLive => {}
        }
    };
    // Over in the kernel now, not once every link is closed. A failed map update still leaves
    // the detach below, and the summary is still owed.
    if let Err(e) = fault.disarm() {
        tracing::warn!("{name}: {}", crate::error::chain(&e));
    }
    let counters = fault.counters()?;
    let rules = fault
        .rules()?
        .into_iter()
        .map(|(rule, c)| RuleSummary {
            rule,
            matched: c.matched,
            injected: c.injected,
            lost: c.lost,
        })
        .collect();
    let (program_ids, dry_run, id) = (fault.program_ids(), fault.dry_run(), fault.fault_id());
    let elapsed = started.elapsed();
    let t = Instant::now();
    drop(fault);
    // To the microsecond: what the clock can tell, without float noise in the JSON.
    let detach_ms = (t.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let events_written = events.map(EventSink::finish).transpose()?;
    Ok(Summary {
        event: "summary",
        fault: name,
        fault_id: format!("{id:08x}"),
        matched: counters.matched,
        injected: counters.injected,
        dry_run,
        over_budget: counters.over_budget,
        lost: counters.lost,
        events_written,
        events_lost: counters.events_lost,
        ended,
        elapsed_ms: elapsed.as_millis() as u64,
        detach_ms,
        program_ids,
        rules,
    })
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = if self.matched == 0 {
            0.0
        } else {
            self.injected as f64 * 100.0 / self.matched as f64
        };
        let why = match &self.ended {
            Ended::Deadline => "duration over".to_string(),
            Ended::Signal { signal } => format!("stopped by {signal}"),
            Ended::TargetGone { target, .. } => format!("target gone ({target})"),
        };
        let injected = if self.dry_run {
            "would have injected"
        } else {
            "injected"
        };
        write!(
            f,
            "{}: {why} after {:.1}s; matched {}, {injected} {} ({pct:.1}%); detached in {:.1} ms",
            self.fault,
            self.elapsed_ms as f64 / 1e3,
            self.matched,
            self.injected,
            self.detach_ms
        )?;
        if self.over_budget > 0 {
            write!(
                f,
                "; {} more matches after the budget was spent",
                self.over_budget
            )?;
        }
        if self.lost > 0 {
            write!(f, "; {} more dropped by --loss", self.lost)?;
        }
        if let Some(n) = self.events_written {
            write!(f, "; {n} events written, {} lost", self.events_lost)?;
        }
        for (i, r) in self.rules.iter().enumerate() {
            write!(
                f,
                "\n  rule {}: {}: matched {}, injected {}",
                i + 1,
                r.rule,
                r.matched,
                r.injected
            )?;
            if r.lost > 0 {
                write!(f, ", lost {}", r.lost)?;
            }
        }
        Ok(())
    }
}
