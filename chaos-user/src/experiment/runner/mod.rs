//! Runs an experiment: steady state first, then the fault phases with probes throughout, abort
//! at once when a condition trips, always roll back, then measure the recovery.

use super::{
    faults::Ready,
    plan::Experiment,
    probe::{self, Sample},
    progress::Progress,
    report::{AbortReport, FaultReport, InjectionPoint, PartReport, RecoveryReport, Report},
};
use crate::{
    error::{Error, Result},
    session::{Ended, Fault, Stop, Wake},
    watch::Watched,
};
use std::time::{Duration, Instant, SystemTime};

mod observe;
mod verdict;
use tokio::sync::mpsc;

pub struct Options {
    pub dry_run: bool,
    /// No live progress (e.g. --json on a terminal).
    pub quiet: bool,
    /// Kept up to date for Prometheus (`chaos run --metrics-addr`).
    pub metrics: Option<super::ExperimentMetrics>,
    /// Progress lines go here instead of stderr (the agent streams them to its client).
    pub progress: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

struct Slot {
    ready: Ready,
    fault: Option<Box<dyn Fault>>,
    /// What the attached fault acts on, as it was when it attached.
    watched: Vec<Watched>,
    rep: FaultReport,
}

impl Slot {
    /// A fault not yet attached, with its report's plan filled in.
    fn new(r: Ready) -> Self {
        Slot {
            rep: FaultReport {
                name: r.name.clone(),
                kind: r.kind.clone(),
                detail: r.detail.clone(),
                planned_start_s: r.start.as_secs_f64(),
                planned_end_s: (r.start + r.duration).as_secs_f64(),
                attached_s: None,
                detached_s: None,
                matched: 0,
                injected: 0,
                program_ids: Vec::new(),
                error: None,
                parts: Vec::new(),
            },
            ready: r,
            fault: None,
            watched: Vec::new(),
        }
    }
}

#[derive(Default, Clone)]
struct ProbeState {
    consecutive: u32,
    during: u32,
    failed_during: u32,
    last_ok: Option<bool>,
}

enum Stopped {
    Abort(AbortReport),
    Interrupted(&'static str),
    Error(String),
    /// A fault's target vanished: "fault 'NAME': WHAT".
    TargetGone(String),
}

/// Everything the run observed, turned into the report at the end.
struct Run<'a> {
    exp: &'a Experiment,
    t0: Instant,
    slots: Vec<Slot>,
    states: Vec<ProbeState>,
    /// (sample, sent while a fault was attached)
    samples: Vec<(Sample, bool)>,
    injections: Vec<InjectionPoint>,
    /// When the last fault was detached: the recovery is measured from there.
    last_detach: Option<Instant>,
    progress: Progress,
    metrics: Option<super::ExperimentMetrics>,
}

/// Seconds from `t0` to `i`, negative before it.
fn secs(t0: Instant, i: Instant) -> f64 {
    if i >= t0 {
        (i - t0).as_secs_f64()
    } else {
        -(t0 - i).as_secs_f64()
    }
}

/// Loads every fault's object and programs now, so that each phase starts on time (in the
/// order the phases take them), then refuses to inject into a system that is already
/// unhealthy: every probe must pass once. Returns those first samples.
async fn preload_and_check(exp: &Experiment, ready: &[Ready]) -> Result<Vec<Sample>> {
    let mut by_start: Vec<&Ready> = ready.iter().collect();
    by_start.sort_by_key(|r| r.start);
    for r in by_start {
        r.preload()?;
    }
    let mut before = Vec::new();
    for (i, p) in exp.probes.iter().enumerate() {
        let s = probe::sample(i, p).await;
        if !s.ok {
            return Err(Error::Unhealthy(format!(
                "steady state not met before injection: probe '{}' ({}) failed: {}; nothing \
                 was injected",
                p.name,
                p.kind.describe(),
                s.message
            )));
        }
        before.push(s);
    }
    Ok(before)
}

pub async fn run(
    exp: &Experiment,
    ready: Vec<Ready>,
    opts: &Options,
    stop: &mut Stop,
) -> Result<Report> {
    let mut progress = Progress::new(exp.duration, opts.quiet, opts.progress.clone());
    let before = preload_and_check(exp, &ready).await?;
    progress.line(&format!(
        "steady state met ({} probes); injecting{}",
        before.len(),
        if opts.dry_run {
            " in dry-run mode (nothing is faulted)"
        } else {
            ""
        }
    ));
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    progress.start();
    let t0 = Instant::now();
    let slots = ready.into_iter().map(Slot::new).collect();
    let mut run = Run {
        exp,
        t0,
        slots,
        states: vec![ProbeState::default(); exp.probes.len()],
        samples: Vec::new(),
        injections: Vec::new(),
        last_detach: None,
        progress,
        metrics: opts.metrics.clone(),
    };
    if let Some(m) = &opts.metrics {
        m.running(&exp.name);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let probing = probe::spawn_all(&exp.probes, tx);
    let stopped = run.inject(&mut rx, stop).await;
    for i in 0..run.slots.len() {
        run.detach(i);
    }
    let rolled_back = run.last_detach.unwrap_or_else(Instant::now);
    let abort = run.abort_report(&stopped, rolled_back);
    run.progress.line("rolled back; measuring the recovery");
    let recovered_at = run.recover(&mut rx, stop, rolled_back).await;
    drop(probing);
    run.progress.finish();
    let recovery = RecoveryReport {
        recovered: recovered_at.is_some(),
        time_to_recover_s: recovered_at
            .map(|t| t.saturating_duration_since(rolled_back).as_secs_f64()),
        timeout_s: exp.recovery_timeout.as_secs_f64(),
    };
    let before = before
        .iter()
        .map(|s| run.sample_report(s))
        .collect::<Vec<_>>();
    let report = run.report(
        stopped,
        abort,
        before,
        recovery,
        rolled_back,
        started_at,
        opts.dry_run,
    );
    if let Some(m) = &opts.metrics {
        m.finished(&report);
    }
    Ok(report)
}

impl Run<'_> {
    /// The abort's report, with the time every fault was detached, printed as it happens.
    fn abort_report(
        &mut self,
        stopped: &Option<Stopped>,
        rolled_back: Instant,
    ) -> Option<AbortReport> {
        let Some(Stopped::Abort(a)) = stopped else {
            return None;
        };
        let mut a = a.clone();
        a.rolled_back_s = secs(self.t0, rolled_back);
        self.progress.line(&format!(
            "ABORT: {}; every fault detached {:.0} ms after it tripped",
            a.condition,
            (a.rolled_back_s - a.tripped_s) * 1e3
        ));
        Some(a)
    }

    fn now_s(&self) -> f64 {
        secs(self.t0, Instant::now())
    }

    /// The injection part: attach and detach on schedule, probe, watch the abort conditions.
    async fn inject(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Sample>,
        stop: &mut Stop,
    ) -> Option<Stopped> {
        let end = self.t0 + self.exp.duration;
        let far = end + Duration::from_secs(24 * 3600);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut look = tokio::time::interval(crate::watch::EVERY);
        loop {
            if let Some(s) = self.due_events() {
                return Some(s);
            }
            let now = Instant::now();
            if now >= end && self.slots.iter().all(|s| s.fault.is_none()) {
                return None;
            }
            let next = self.next_event().unwrap_or(end).min(end);
            tokio::select! {
                Some(s) = rx.recv() => {
                    if let Some(stop) = self.observe(s, true) {
                        return Some(stop);
                    }
                }
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = tick.tick() => self.tick(),
                _ = look.tick() => {
                    if let Some(gone) = self.target_gone() {
                        return Some(gone);
                    }
                }
                wake = stop.wait(far) => {
                    if let Wake::End(Ended::Signal { signal }) = wake {
                        return Some(Stopped::Interrupted(signal));
                    }
                }
            }
        }
    }

    /// Attaches the faults whose start has come and detaches those whose end has.
    fn due_events(&mut self) -> Option<Stopped> {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let (start, end) = {
                let r = &self.slots[i].ready;
                (self.t0 + r.start, self.t0 + r.start + r.duration)
            };
            let slot = &self.slots[i];
            if slot.fault.is_some() && now >= end {
                self.detach(i);
            } else if slot.rep.attached_s.is_none()
                && slot.rep.error.is_none()
                && now >= start
                && let Err(e) = self.attach(i)
            {
                return Some(Stopped::Error(e));
            }
        }
        None
    }

    fn next_event(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| {
                let r = &s.ready;
                if s.fault.is_some() {
                    Some(self.t0 + r.start + r.duration)
                } else if s.rep.attached_s.is_none() && s.rep.error.is_none() {
                    Some(self.t0 + r.start)
                } else {
                    None
                }
            })
            .min()
    }

    /// The first attached fault whose target vanished, if any. A fault on several targets
    /// detaches (or follows) its own parts and counts as gone when none is left.
    fn target_gone(&mut self) -> Option<Stopped> {
        let at = self.now_s();
        let mut lines = Vec::new();
        let mut gone = None;
        for s in self.slots.iter_mut() {
            let Some(f) = s.fault.as_mut() else { continue };
            let (news, none_left) = f.detach_gone();
            lines.extend(news.iter().map(|n| format!("fault '{}': {n}", s.rep.name)));
            let what = match none_left {
                true => Some(news.join("; ")),
                false => crate::watch::first_gone(&s.watched),
            };
            if let Some(what) = what {
                gone.get_or_insert_with(|| {
                    Stopped::TargetGone(format!(
                        "fault '{}': {what} (noticed at {at:.1}s)",
                        s.rep.name
                    ))
                });
            }
        }
        for l in lines {
            self.progress.line(&l);
        }
        gone
    }

    fn attach(&mut self, i: usize) -> std::result::Result<(), String> {
        // The window opens when attaching begins: the first link acts before the call returns
        // (a VM run saw a failure it caused 23 ms before), which a window opened on return missed.
        let at = self.now_s();
        let ready = &self.slots[i].ready;
        match ready.watched().and_then(|w| Ok((w, ready.attach()?))) {
            Ok((watched, f)) => {
                let slot = &mut self.slots[i];
                slot.watched = watched;
                slot.rep.program_ids = f.program_ids();
                slot.rep.attached_s = Some(at);
                slot.fault = Some(f);
                let line = format!("fault '{}' attached: {}", slot.rep.name, slot.rep.detail);
                self.progress.line(&line);
                Ok(())
            }
            Err(e) => {
                let why = crate::error::chain(&e);
                let slot = &mut self.slots[i];
                slot.rep.error = Some(why.clone());
                let line = format!("fault '{}' could not be attached: {why}", slot.rep.name);
                self.progress.line(&line);
                Err(format!("fault '{}': {why}", slot.rep.name))
            }
        }
    }

    /// Reads the final counters and detaches (drops) fault `i`, if attached.
    fn detach(&mut self, i: usize) {
        let Some(mut fault) = self.slots[i].fault.take() else {
            return;
        };
        if let Err(e) = fault.disarm() {
            tracing::warn!(
                "fault '{}': {}",
                self.slots[i].rep.name,
                crate::error::chain(&e)
            );
        }
        let at = self.now_s();
        self.record_counters(i, fault.as_ref(), at);
        if let Ok(rules) = fault.rules() {
            self.slots[i].rep.parts = rules
                .into_iter()
                .map(|(name, c)| PartReport {
                    name,
                    matched: c.matched,
                    injected: c.injected,
                })
                .collect();
        }
        drop(fault);
        let now = Instant::now();
        self.last_detach = Some(now);
        let at = secs(self.t0, now);
        let slot = &mut self.slots[i];
        slot.rep.detached_s = Some(at);
        let line = format!(
            "fault '{}' detached ({} injected)",
            slot.rep.name, slot.rep.injected
        );
        self.progress.line(&line);
    }

    fn record_counters(&mut self, i: usize, fault: &dyn Fault, at: f64) {
        if let Ok(c) = fault.counters() {
            let rep = &mut self.slots[i].rep;
            rep.matched = c.matched;
            rep.injected = c.injected;
            self.injections.push(InjectionPoint {
                fault: rep.name.clone(),
                t_s: at,
                injected: c.injected,
            });
            if let Some(m) = &self.metrics {
                m.injected(&self.exp.name, &rep.name, c.injected);
            }
        }
    }

    /// After the rollback: probes go on until each has passed once, or the timeout. Returns
    /// when the last one passed.
    async fn recover(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Sample>,
        stop: &mut Stop,
        rolled_back: Instant,
    ) -> Option<Instant> {
        let deadline = rolled_back + self.exp.recovery_timeout;
        let mut passed: Vec<Option<Instant>> = vec![None; self.exp.probes.len()];
        // Samples sent after the last fault ended, while the experiment went on, count.
        for (s, _) in &self.samples {
            if s.ok && s.at >= rolled_back && passed[s.probe].is_none() {
                passed[s.probe] = Some(s.at + s.latency);
            }
        }
        while passed.iter().any(Option::is_none) {
            tokio::select! {
                Some(s) = rx.recv() => {
                    let (i, done) = (s.probe, s.at + s.latency);
                    if s.ok && s.at >= rolled_back && passed[i].is_none() {
                        passed[i] = Some(done);
                    }
                    self.observe(s, false);
                }
                _ = tokio::time::sleep_until(deadline.into()) => return None,
                wake = stop.wait(deadline) => {
                    if matches!(wake, Wake::End(_)) {
                        return None;
                    }
                }
            }
        }
        passed.into_iter().flatten().max()
    }
}
