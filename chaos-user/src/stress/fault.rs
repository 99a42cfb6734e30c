//! A stress as a fault of an experiment phase: the workers start at the phase start and are
//! killed when it ends (the fault is dropped); the report counts targets (`matched`) and
//! workers started (`injected`), and lists what the workers did.

use super::{StressPlan, Stressing};
use crate::{ebpf::Counters, error::Result, events::EventSink, fault::Fault};
pub struct StressFault {
    /// None in a dry run (nothing is started) or once finished.
    running: Option<Stressing>,
    plan: StressPlan,
}

impl StressFault {
    /// Starts the workers now, unless `dry_run` (then nothing runs and the report says what
    /// would have). Errors: as `Stressing::start`.
    pub fn attach(plan: &StressPlan, dry_run: bool) -> Result<Self> {
        let running = if dry_run {
            None
        } else {
            Some(Stressing::start(plan)?)
        };
        Ok(Self {
            running,
            plan: plan.clone(),
        })
    }
}

impl Fault for StressFault {
    fn counters(&self) -> Result<Counters> {
        let workers = self.running.as_ref().map_or(0, |s| s.pids.len() as u64);
        Ok(Counters {
            matched: self.plan.placements.len() as u64,
            injected: workers,
            ..Counters::default()
        })
    }
    fn program_ids(&self) -> Vec<u32> {
        Vec::new()
    }
    fn dry_run(&self) -> bool {
        self.running.is_none()
    }
    /// A dry-run stress stays dry: starting workers is not a switch in a map.
    fn go_live(&mut self) -> Result<()> {
        Ok(())
    }
    fn take_events(&mut self) -> Option<EventSink> {
        None
    }
    fn fault_id(&self) -> u32 {
        0
    }
    /// What the workers do (and, for a dry run, would have done), one line per target, and
    /// the workers still running.
    fn rules(&self) -> Result<Vec<(String, Counters)>> {
        let verb = if self.running.is_some() {
            "workers"
        } else {
            "would start workers"
        };
        let mut out: Vec<(String, Counters)> = self
            .plan
            .placements
            .iter()
            .map(|p| {
                (
                    format!(
                        "{verb}: {} in {} ({}; {})",
                        self.plan.spec.describe(),
                        p.label,
                        p.describe(),
                        p.memory_limit()
                    ),
                    Counters {
                        matched: 1,
                        injected: u64::from(self.running.is_some())
                            * u64::from(self.plan.spec.workers()),
                        ..Counters::default()
                    },
                )
            })
            .collect();
        if let Some(s) = &self.running {
            let (killed, rise) = s.killed_so_far();
            out.push((
                format!(
                    "{} of {} workers running; {killed} killed by SIGKILL not from chaos \
                     (oom_kill +{rise} in the targets' cgroups)",
                    s.running(),
                    s.pids.len()
                ),
                Counters::default(),
            ));
        }
        Ok(out)
    }
}

impl Drop for StressFault {
    fn drop(&mut self) {
        if let Some(s) = self.running.take() {
            match s.finish(None) {
                Ok(sum) => tracing::info!(
                    "{}: {} workers, {} OOM-killed, {} ms CPU, peak {} bytes",
                    sum.fault,
                    sum.workers_started,
                    sum.oom_killed,
                    sum.cpu_time_ms,
                    sum.peak_memory_bytes
                ),
                Err(e) => tracing::warn!("stopping the stress: {}", crate::error::chain(&e)),
            }
        }
    }
}
