//! What the run sees while it goes: each probe sample (and the abort it may trip), and the
//! status line with the faults' counters every second.

use super::{Run, Stopped, secs};
use crate::experiment::{probe::Sample, report::AbortReport};

impl Run<'_> {
    /// Each second: the counters of the attached faults, and the status line.
    pub(super) fn tick(&mut self) {
        let at = self.now_s();
        for i in 0..self.slots.len() {
            if let Some(f) = self.slots[i].fault.take() {
                self.record_counters(i, f.as_ref(), at);
                self.slots[i].fault = Some(f);
            }
        }
        let active: Vec<&str> = self
            .slots
            .iter()
            .filter(|s| s.fault.is_some())
            .map(|s| s.rep.name.as_str())
            .collect();
        let injected: u64 = self.slots.iter().map(|s| s.rep.injected).sum();
        let left = self.exp.duration.as_secs_f64() - at;
        let probes: Vec<String> = self
            .exp
            .probes
            .iter()
            .zip(&self.states)
            .map(|(p, st)| {
                let s = match st.last_ok {
                    Some(true) => "ok",
                    Some(false) => "FAILING",
                    None => "…",
                };
                format!("{} {s}", p.name)
            })
            .collect();
        let phase = if active.is_empty() {
            "no fault active".to_string()
        } else {
            format!("active: {}", active.join(", "))
        };
        let text = format!(
            "{phase} | {:.0}s left | injected {injected} | {}",
            left.max(0.0),
            probes.join(", ")
        );
        self.progress.status(&text);
    }

    fn fault_active_at(&self, t: f64) -> bool {
        self.slots.iter().any(|s| {
            s.rep.attached_s.is_some_and(|a| a <= t) && s.rep.detached_s.is_none_or(|d| t < d)
        })
    }

    /// Records a sample; during injection (`check_abort`) returns the abort it trips.
    pub(super) fn observe(&mut self, s: Sample, check_abort: bool) -> Option<Stopped> {
        let t = secs(self.t0, s.at);
        let during = self.fault_active_at(t);
        let p = &self.exp.probes[s.probe];
        let st = &mut self.states[s.probe];
        // Log changes of state (not the first success).
        let changed = st.last_ok.unwrap_or(true) != s.ok;
        st.last_ok = Some(s.ok);
        st.consecutive = if s.ok { 0 } else { st.consecutive + 1 };
        if during {
            st.during += 1;
            st.failed_during += u32::from(!s.ok);
        }
        let st = st.clone();
        if changed {
            let what = if s.ok {
                "passes again".to_string()
            } else {
                format!("FAILED at {t:.2}s: {}", s.message)
            };
            self.progress.line(&format!("probe '{}' {what}", p.name));
        }
        self.samples.push((s.clone(), during));
        if !check_abort {
            return None;
        }
        let abort = self.exp.abort;
        let condition = if abort
            .consecutive_failures
            .is_some_and(|n| st.consecutive >= n)
        {
            Some(format!(
                "probe '{}' failed {} times in a row (abort.consecutive_failures)",
                p.name, st.consecutive
            ))
        } else if let Some((ratio, min)) = abort.failure_ratio
            && st.during >= min
            && f64::from(st.failed_during) > ratio * f64::from(st.during)
        {
            Some(format!(
                "probe '{}' failed {} of {} samples during faults, over {:.1}% \
                 (abort.failure_ratio)",
                p.name,
                st.failed_during,
                st.during,
                ratio * 100.0
            ))
        } else {
            None
        };
        condition.map(|condition| {
            Stopped::Abort(AbortReport {
                condition,
                probe: p.name.clone(),
                sample_t_s: t,
                tripped_s: self.now_s(),
                rolled_back_s: 0.0,
            })
        })
    }
}
