//! A kill as a fault of an experiment phase: attached at the phase start, it kills at once and
//! then every `every` on a thread of its own until the phase ends (it is dropped), counting
//! what it signalled (`matched`) and killed (`injected`), so that the report's fault table and
//! the probes show it like any other fault.

use super::{KillSpec, KillTarget, victims};
use crate::{ebpf::Counters, error::Result, events::EventSink, fault::Fault};
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

pub struct KillFault {
    stop: Arc<AtomicBool>,
    found: Arc<AtomicU64>,
    killed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    /// The first error of a later round.
    first: Arc<Mutex<Option<String>>>,
    /// "killed pid N (comm) of TARGET at round R", for the report.
    log: Arc<Mutex<Vec<String>>>,
    dry_run: bool,
}

impl KillFault {
    /// Kills once now (errors of this first round are returned: no process, a guard), then
    /// goes on every `spec.every` until dropped or `spec.duration` is over. A `dry_run` finds
    /// and counts the victims (`matched`) and signals none.
    pub fn attach(spec: &KillSpec, target: KillTarget, dry_run: bool) -> Result<Self> {
        let found = Arc::new(AtomicU64::new(0));
        let killed = Arc::new(AtomicU64::new(0));
        let spec = KillSpec {
            signal: if dry_run { 0 } else { spec.signal },
            ..spec.clone()
        };
        let spec = &spec;
        let log = Arc::new(Mutex::new(Vec::new()));
        let count = Tally {
            found: found.clone(),
            killed: killed.clone(),
            log: log.clone(),
        };
        round(spec, &target, &count, 1)?;
        let stop = Arc::new(AtomicBool::new(false));
        let first = Arc::new(Mutex::new(None));
        let thread = spec.every.map(|every| {
            let (spec, stop, first) = (spec.clone(), stop.clone(), first.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut next = started + every;
                let mut n = 1;
                while next < started + spec.duration {
                    n += 1;
                    while Instant::now() < next {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if let Err(e) = round(&spec, &target, &count, n) {
                        tracing::warn!("kill round failed: {e}");
                        first
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e.to_string());
                    }
                    next += every;
                }
            })
        });
        Ok(KillFault {
            stop,
            found,
            killed,
            thread,
            first,
            log,
            dry_run,
        })
    }
}

/// Where rounds count.
struct Tally {
    found: Arc<AtomicU64>,
    killed: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<String>>>,
}

/// One round (`n`): the victims now, each signalled.
fn round(spec: &KillSpec, target: &KillTarget, t: &Tally, n: u32) -> Result<()> {
    let victims = victims::chosen(target, spec.force)?;
    for (v, _) in victims {
        t.found.fetch_add(1, Ordering::Relaxed);
        // Signal 0 (dry run) checks the process exists and sends nothing.
        let what = format!("pid {} ({}) of {} at round {n}", v.pid, v.comm, v.target);
        if spec.signal == 0 {
            t.log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("would kill {what}"));
            continue;
        }
        if victims::signal(&v, spec.signal)? {
            t.killed.fetch_add(1, Ordering::Relaxed);
            t.log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("killed {what}"));
        }
    }
    Ok(())
}

impl Drop for KillFault {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Fault for KillFault {
    fn counters(&self) -> Result<Counters> {
        Ok(Counters {
            matched: self.found.load(Ordering::Relaxed),
            injected: self.killed.load(Ordering::Relaxed),
            ..Counters::default()
        })
    }
    fn program_ids(&self) -> Vec<u32> {
        Vec::new()
    }
    fn dry_run(&self) -> bool {
        false
    }
    /// A dry-run kill stays dry: killing is not a switch in a map.
    fn go_live(&mut self) -> Result<()> {
        Ok(())
    }
    fn take_events(&mut self) -> Option<EventSink> {
        None
    }
    fn fault_id(&self) -> u32 {
        0
    }
    /// Each process killed (and a later round that failed), for the report's breakdown.
    fn rules(&self) -> Result<Vec<(String, Counters)>> {
        let one = Counters {
            matched: 1,
            injected: u64::from(!self.dry_run),
            ..Counters::default()
        };
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(String, Counters)> = log.iter().map(|l| (l.clone(), one)).collect();
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        out.extend(
            first
                .iter()
                .map(|e| (format!("a round failed: {e}"), Counters::default())),
        );
        Ok(out)
    }
}
