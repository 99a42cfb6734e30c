//! The supervisor of a stress: on a thread of its own (the workers' PR_SET_PDEATHSIG is tied
//! to it, and it lives until every worker is reaped) it writes the state record, starts the
//! workers in the target's cgroups (listing each in the record), reaps those that end (their
//! rusage: CPU time, peak RSS), kills the rest at the deadline or when asked to stop, and tells
//! OOM kills apart: a worker ended by SIGKILL that chaos did not send while its target's
//! `oom_kill` counter rose.

use super::{
    Load, StressSpec,
    cgroups::Placement,
    worker::{self, Work},
};
use crate::{
    error::{Error, Result},
    session::Ended,
    state::{Record, RuleKind, WorkerEntry},
    target::Target,
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// A stress checked against the system: its spec and the cgroups of each target.
#[derive(Debug, Clone)]
pub struct StressPlan {
    pub spec: StressSpec,
    pub placements: Vec<Placement>,
}

/// Resolves each target (`label`, target) to its cgroups, with the guards (errors name
/// `flag`): the root cgroup, one holding PID 1 or chaos, unless `spec.force`.
pub fn plan(
    spec: StressSpec,
    targets: Vec<(String, Target)>,
    flag: &'static str,
) -> Result<StressPlan> {
    if targets.is_empty() {
        return Err(Error::input(
            flag,
            "no target to stress; give --cgroup PATH, --pid PID or --pod/--selector",
        ));
    }
    if let Load::Memory { bytes, .. } = spec.load
        && !spec.force
        && let Some(total) = mem_total()
        && bytes.saturating_mul(targets.len() as u64) > total
    {
        return Err(Error::input(
            "--size",
            format!(
                "{} on {} target(s) is more than this machine's memory ({}): where no cgroup \
                 limit stops the workers the whole node runs out; give less, or --force",
                crate::units::format_size(bytes),
                targets.len(),
                crate::units::format_size(total)
            ),
        ));
    }
    let placements = targets
        .into_iter()
        .map(|(label, t)| Placement::of_target(&t, label, flag, spec.force))
        .collect::<Result<Vec<_>>>()?;
    Ok(StressPlan { spec, placements })
}

/// MemTotal from /proc/meminfo, in bytes.
fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

impl StressPlan {
    /// "64MiB in 1 worker, all at once in process 42 (cgroup v2 ...; v1 memory ...)".
    pub fn detail(&self) -> String {
        let whom: Vec<String> = self
            .placements
            .iter()
            .map(|p| format!("{} ({})", p.label, p.describe()))
            .collect();
        format!("{} in {}", self.spec.describe(), whom.join("; "))
    }

    /// The work of worker `i` of `n` on one target: its share of the memory and rate.
    fn work(&self, i: u32) -> Work {
        match self.spec.load {
            Load::Cpu { percent, .. } => Work::Cpu { percent },
            Load::Memory {
                workers,
                bytes,
                rate,
            } => {
                let n = u64::from(workers);
                let share = bytes / n + u64::from(u64::from(i) < bytes % n);
                Work::Memory {
                    bytes: share,
                    rate: rate.map(|r| (r / n).max(1)),
                }
            }
        }
    }
}

/// How a stress ended, as the summary's `ended`: `{"by": "deadline"}`, `{"by": "signal",
/// "signal": "SIGINT"}`, or `{"by": "workers_gone"}` (every worker ended before the deadline,
/// e.g. OOM-killed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum StressEnd {
    Deadline,
    Signal {
        signal: &'static str,
    },
    WorkersGone,
    /// The target process exited (every target's, with several): its workers were stopped
    /// then, `after_ms` from the start.
    TargetGone {
        target: String,
        after_ms: u64,
    },
}

/// What a stress did (one JSON line with `--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StressSummary {
    pub event: &'static str,
    /// "stress cpu" or "stress memory".
    pub fault: &'static str,
    pub fault_id: String,
    /// Targets stressed.
    pub matched: u64,
    /// Workers started (as `workers_started`).
    pub injected: u64,
    pub workers_started: u32,
    /// Workers killed by the OOM killer: ended by a SIGKILL chaos did not send while their
    /// target's oom_kill counter rose.
    pub oom_killed: u32,
    /// How much the targets' oom_kill counters rose (their own processes' kills too).
    pub oom_kills_in_cgroups: u64,
    /// Workers that ended early otherwise (an exit status, another signal).
    pub workers_failed: u32,
    /// Workers still running at the end (then killed by chaos).
    pub workers_at_end: u32,
    /// User + system CPU time of all workers, in milliseconds.
    pub cpu_time_ms: u64,
    /// The sum of the workers' peak resident sizes (ru_maxrss), in bytes.
    pub peak_memory_bytes: u64,
    pub ended: StressEnd,
    pub elapsed_ms: u64,
}

/// How one worker ended.
#[derive(Debug, Clone, Copy, Default)]
struct Ended1 {
    /// Killed by SIGKILL chaos did not send.
    sigkilled: bool,
    /// Exited, or killed by another signal, before chaos killed it.
    failed: bool,
    /// Still running when chaos stopped it.
    at_end: bool,
    cpu_ns: u64,
    maxrss_bytes: u64,
}

struct Worker {
    pid: u32,
    target: usize,
    end: Option<Ended1>,
}

/// What the supervisor returns once every worker is reaped.
struct Outcome {
    workers: Vec<Worker>,
    /// Every target's process exited: the last one, and when.
    gone: Option<(String, u64)>,
    /// Per target: the rise of its oom_kill counter.
    oom_rise: Vec<u64>,
}

/// A running stress. Dropping it stops the workers (SIGKILL) and waits for them.
pub struct Stressing {
    stop: Arc<AtomicBool>,
    running: Arc<AtomicU32>,
    /// Workers ended by a SIGKILL chaos did not send, so far.
    sigkilled: Arc<AtomicU32>,
    /// The targets and their oom_kill counters before the start.
    placements: Vec<(Placement, u64)>,
    thread: Option<JoinHandle<Outcome>>,
    pub fault_id: String,
    /// The workers' pids, in start order.
    pub pids: Vec<u32>,
    fault: &'static str,
    targets: u64,
    started: Instant,
}

impl Stressing {
    /// Writes the state record, then starts every worker; returns once all run. Errors: the
    /// record cannot be written, a worker cannot start or join a cgroup (those started are
    /// killed and the record removed).
    pub fn start(plan: &StressPlan) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicU32::new(0));
        let sigkilled = Arc::new(AtomicU32::new(0));
        let placements: Vec<(Placement, u64)> = plan
            .placements
            .iter()
            .map(|p| (p.clone(), p.oom_kills()))
            .collect();
        let (tx, rx) = mpsc::channel();
        let p = plan.clone();
        let oom_before: Vec<u64> = placements.iter().map(|(_, n)| *n).collect();
        let counts = Counts {
            running: running.clone(),
            sigkilled: sigkilled.clone(),
        };
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("stress".into())
            .spawn(move || supervise(&p, &s, &counts, oom_before, &tx))
            .map_err(|e| Error::io("starting the stress supervisor thread", e))?;
        match rx.recv() {
            Ok(Ok((fault_id, pids))) => Ok(Self {
                stop,
                running,
                sigkilled,
                placements,
                thread: Some(thread),
                fault_id,
                pids,
                fault: plan.spec.kind(),
                targets: plan.placements.len() as u64,
                started: Instant::now(),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(Error::io(
                "the stress supervisor",
                std::io::Error::other("ended before starting the workers"),
            )),
        }
    }

    /// Workers still running.
    pub fn running(&self) -> u32 {
        self.running.load(Ordering::Relaxed)
    }

    /// Workers ended by a SIGKILL chaos did not send so far, and how much the targets'
    /// oom_kill counters rose since the start: OOM kills as they happen.
    pub fn killed_so_far(&self) -> (u32, u64) {
        let rise = self
            .placements
            .iter()
            .map(|(p, before)| p.oom_kills().saturating_sub(*before))
            .sum();
        (self.sigkilled.load(Ordering::Relaxed), rise)
    }

    /// Whether the supervisor is done: the deadline passed or every worker ended.
    pub fn is_over(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops what still runs and reports; `by` is the signal that ended the wait, if any.
    pub fn finish(mut self, by: Option<Ended>) -> Result<StressSummary> {
        self.stop.store(true, Ordering::Relaxed);
        let out = self
            .thread
            .take()
            .map(|t| t.join())
            .transpose()
            .map_err(|_| {
                Error::io(
                    "the stress supervisor",
                    std::io::Error::other("panicked; its workers died with it"),
                )
            })?;
        let out = out.unwrap_or(Outcome {
            workers: Vec::new(),
            gone: None,
            oom_rise: Vec::new(),
        });
        Ok(self.summary(&out, by))
    }

    fn summary(&self, out: &Outcome, by: Option<Ended>) -> StressSummary {
        let ends: Vec<(usize, Ended1)> = out
            .workers
            .iter()
            .map(|w| (w.target, w.end.unwrap_or_default()))
            .collect();
        let count = |f: fn(&Ended1) -> bool| ends.iter().filter(|(_, e)| f(e)).count() as u32;
        let oom_killed = (0..out.oom_rise.len())
            .map(|t| {
                let killed = ends.iter().filter(|(i, e)| *i == t && e.sigkilled).count() as u64;
                killed.min(out.oom_rise[t]) as u32
            })
            .sum();
        let at_end = count(|e| e.at_end);
        let ended = match by {
            Some(Ended::Signal { signal }) => StressEnd::Signal { signal },
            _ if out.gone.is_some() => {
                let (target, after_ms) = out.gone.clone().unwrap_or_default();
                StressEnd::TargetGone { target, after_ms }
            }
            _ if at_end == 0 && !ends.is_empty() => StressEnd::WorkersGone,
            _ => StressEnd::Deadline,
        };
        StressSummary {
            event: "summary",
            fault: self.fault,
            fault_id: self.fault_id.clone(),
            matched: self.targets,
            injected: ends.len() as u64,
            workers_started: ends.len() as u32,
            oom_killed,
            oom_kills_in_cgroups: out.oom_rise.iter().sum(),
            workers_failed: count(|e| e.failed),
            workers_at_end: at_end,
            cpu_time_ms: ends.iter().map(|(_, e)| e.cpu_ns).sum::<u64>() / 1_000_000,
            peak_memory_bytes: ends.iter().map(|(_, e)| e.maxrss_bytes).sum(),
            ended,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
        }
    }
}

impl Drop for Stressing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Started = Result<(String, Vec<u32>)>;

/// What the supervisor keeps current for the owner.
struct Counts {
    running: Arc<AtomicU32>,
    sigkilled: Arc<AtomicU32>,
}

fn supervise(
    plan: &StressPlan,
    stop: &AtomicBool,
    counts: &Counts,
    oom_before: Vec<u64>,
    tx: &mpsc::Sender<Started>,
) -> Outcome {
    let running = &counts.running;
    let id = crate::controls::new_fault_id();
    let deadline_ns = crate::ebpf::monotonic_ns() + plan.spec.duration.as_nanos() as u64;
    let until = Instant::now() + plan.spec.duration;
    let mut record = Record::new(
        id,
        plan.spec.kind(),
        RuleKind::default(),
        plan.detail(),
        deadline_ns,
    );
    let mut workers = Vec::new();
    if let Err(e) = start_all(plan, &mut record, deadline_ns, &mut workers) {
        let _ = tx.send(Err(e));
        stop_all(workers.iter_mut().collect());
        record.delete();
        return Outcome {
            workers: Vec::new(),
            gone: None,
            oom_rise: Vec::new(),
        };
    }
    running.store(workers.len() as u32, Ordering::Relaxed);
    let _ = tx.send(Ok((
        record.id.clone(),
        workers.iter().map(|w| w.pid).collect(),
    )));
    let started = Instant::now();
    let mut gone = vec![false; plan.placements.len()];
    let mut last_gone = None;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        for (t, p) in plan.placements.iter().enumerate() {
            if !gone[t] && p.process.as_ref().is_some_and(|w| !w.alive()) {
                gone[t] = true;
                last_gone = Some((p.label.clone(), started.elapsed().as_millis() as u64));
                let mine: Vec<&mut Worker> = workers.iter_mut().filter(|w| w.target == t).collect();
                stop_all(mine);
            }
        }
        if gone.iter().all(|g| *g) {
            break;
        }
        let left = reap(&mut workers);
        running.store(left, Ordering::Relaxed);
        counts
            .sigkilled
            .store(sigkilled(&workers), Ordering::Relaxed);
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Ends seen now are the workers' own, before chaos's SIGKILL.
    reap(&mut workers);
    counts
        .sigkilled
        .store(sigkilled(&workers), Ordering::Relaxed);
    stop_all(workers.iter_mut().collect());
    running.store(0, Ordering::Relaxed);
    let oom_rise = plan
        .placements
        .iter()
        .zip(oom_before)
        .map(|(p, before)| p.oom_kills().saturating_sub(before))
        .collect();
    record.delete();
    let gone = (!gone.is_empty() && gone.iter().all(|g| *g))
        .then_some(last_gone)
        .flatten();
    Outcome {
        workers,
        gone,
        oom_rise,
    }
}

/// The record first (empty), then each worker, the record updated after each start.
fn start_all(
    plan: &StressPlan,
    record: &mut Record,
    deadline_ns: u64,
    workers: &mut Vec<Worker>,
) -> Result<()> {
    record.save()?;
    for (t, p) in plan.placements.iter().enumerate() {
        let procs = p.procs_files();
        for i in 0..plan.spec.workers() {
            let argv = worker::argv(plan.work(i), deadline_ns, &record.id);
            let pid = worker::spawn(&argv, &procs)?;
            workers.push(Worker {
                pid,
                target: t,
                end: None,
            });
            record.workers.extend(WorkerEntry::of(pid));
            record.save()?;
        }
    }
    Ok(())
}

/// Reaps the workers that ended; returns how many still run.
fn reap(workers: &mut [Worker]) -> u32 {
    let mut left = 0;
    for w in workers.iter_mut().filter(|w| w.end.is_none()) {
        match wait(w.pid, false) {
            Some(e) => w.end = Some(e),
            None => left += 1,
        }
    }
    left
}

fn sigkilled(workers: &[Worker]) -> u32 {
    workers
        .iter()
        .filter(|w| w.end.is_some_and(|e| e.sigkilled))
        .count() as u32
}

/// SIGKILL to every worker (of those given) still running, then reaps them (marked `at_end`).
fn stop_all(mut workers: Vec<&mut Worker>) {
    for w in workers.iter().filter(|w| w.end.is_none()) {
        // SAFETY: our own unreaped child: its pid cannot have been reused.
        unsafe { libc::kill(w.pid as i32, libc::SIGKILL) };
    }
    for w in workers.iter_mut().filter(|w| w.end.is_none()) {
        let e = wait(w.pid, true).unwrap_or_default();
        w.end = Some(Ended1 {
            sigkilled: false,
            failed: false,
            at_end: true,
            ..e
        });
    }
}

/// wait4 on one worker: how it ended, with its rusage; None while it runs (or if it cannot be
/// waited for).
fn wait(pid: u32, block: bool) -> Option<Ended1> {
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: wait4 on our own child, writing into our locals.
    let r = unsafe { libc::wait4(pid as i32, &mut status, flags, &mut ru) };
    if r <= 0 {
        if r < 0 {
            tracing::warn!(
                "waiting for stress worker {pid}: {}",
                std::io::Error::last_os_error()
            );
            return Some(Ended1::default());
        }
        return None;
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    let sigkilled = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL;
    Some(Ended1 {
        sigkilled,
        failed: !sigkilled,
        at_end: false,
        cpu_ns: tv(ru.ru_utime) + tv(ru.ru_stime),
        maxrss_bytes: ru.ru_maxrss as u64 * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(load: Load) -> StressPlan {
        StressPlan {
            spec: StressSpec {
                load,
                duration: Duration::from_secs(1),
                force: false,
            },
            placements: Vec::new(),
        }
    }

    #[test]
    fn memory_and_rate_are_shared_between_workers() {
        let p = plan_of(Load::Memory {
            workers: 3,
            bytes: 10 * 4096 + 2,
            rate: Some(3000),
        });
        let shares: Vec<Work> = (0..3).map(|i| p.work(i)).collect();
        let total: u64 = shares
            .iter()
            .map(|w| match w {
                Work::Memory { bytes, .. } => *bytes,
                Work::Cpu { .. } => 0,
            })
            .sum();
        assert_eq!(total, 10 * 4096 + 2);
        assert_eq!(
            shares[2],
            Work::Memory {
                bytes: 13_654, // 40962 / 3
                rate: Some(1000)
            }
        );
        let cpu = plan_of(Load::Cpu {
            workers: 2,
            percent: 50.0,
        });
        assert_eq!(cpu.work(1), Work::Cpu { percent: 50.0 });
    }
}
