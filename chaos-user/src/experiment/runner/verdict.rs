//! The end of a run: what each probe saw, the outcome and its reasons, as the report.

use super::{Run, Stopped, secs};
use crate::experiment::{
    probe::Sample,
    report::{AbortReport, Outcome, ProbeReport, RecoveryReport, Report, SampleReport, percentile},
};
use std::time::Instant;

impl Run<'_> {
    pub(super) fn sample_report(&self, s: &Sample) -> SampleReport {
        SampleReport {
            probe: self.exp.probes[s.probe].name.clone(),
            t_s: secs(self.t0, s.at),
            ok: s.ok,
            latency_ms: s.latency.as_secs_f64() * 1e3,
            message: s.message.clone(),
        }
    }

    fn probe_report(&self, i: usize, until: f64) -> ProbeReport {
        let p = &self.exp.probes[i];
        let mine: Vec<&(Sample, bool)> = self
            .samples
            .iter()
            .filter(|(s, _)| s.probe == i && secs(self.t0, s.at) <= until)
            .collect();
        let mut lat: Vec<f64> = mine
            .iter()
            .map(|(s, _)| s.latency.as_secs_f64() * 1e3)
            .collect();
        lat.sort_by(f64::total_cmp);
        let during = mine.iter().filter(|(_, d)| *d).count() as u32;
        let failed_during = mine.iter().filter(|(s, d)| *d && !s.ok).count() as u32;
        let pct = if during == 0 {
            0.0
        } else {
            f64::from(failed_during) * 100.0 / f64::from(during)
        };
        ProbeReport {
            name: p.name.clone(),
            check: p.kind.describe(),
            interval_s: p.interval.as_secs_f64(),
            tolerance_pct: p.tolerance * 100.0,
            samples: mine.len() as u32,
            failures: mine.iter().filter(|(s, _)| !s.ok).count() as u32,
            samples_during_faults: during,
            failures_during_faults: failed_during,
            failure_pct_during_faults: pct,
            latency_p50_ms: percentile(&lat, 50.0),
            latency_p95_ms: percentile(&lat, 95.0),
            latency_max_ms: lat.last().copied().unwrap_or(0.0),
            first_failure: mine
                .iter()
                .find(|(s, _)| !s.ok)
                .map(|(s, _)| self.sample_report(s)),
            within_tolerance: f64::from(failed_during) <= p.tolerance * f64::from(during),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn report(
        &self,
        stopped: Option<Stopped>,
        abort: Option<AbortReport>,
        before: Vec<SampleReport>,
        recovery: RecoveryReport,
        rolled_back: Instant,
        started_at: String,
        dry_run: bool,
    ) -> Report {
        let rolled_back_s = secs(self.t0, rolled_back);
        let probes: Vec<ProbeReport> = (0..self.exp.probes.len())
            .map(|i| self.probe_report(i, rolled_back_s))
            .collect();
        let mut reasons = Vec::new();
        for p in probes.iter().filter(|p| !p.within_tolerance) {
            let first = p.first_failure.as_ref().map_or(String::new(), |s| {
                format!("; first failure at {:.1}s: {}", s.t_s, s.message)
            });
            reasons.push(format!(
                "probe '{}' failed {} of {} samples during faults ({:.1}%, tolerance {:.1}%){first}",
                p.name,
                p.failures_during_faults,
                p.samples_during_faults,
                p.failure_pct_during_faults,
                p.tolerance_pct
            ));
        }
        if !recovery.recovered {
            reasons.push(format!(
                "the system did not recover: not every probe passed within {:.0}s of the rollback",
                recovery.timeout_s
            ));
        }
        let outcome = match &stopped {
            Some(Stopped::Abort(_)) => Outcome::Aborted,
            Some(Stopped::Interrupted(_)) => Outcome::Interrupted,
            Some(Stopped::Error(_)) => Outcome::Error,
            Some(Stopped::TargetGone(_)) => Outcome::TargetGone,
            None if reasons.is_empty() => Outcome::Held,
            None => Outcome::NotHeld,
        };
        match stopped {
            Some(Stopped::Abort(a)) => reasons.insert(0, format!("aborted: {}", a.condition)),
            Some(Stopped::Interrupted(sig)) => {
                reasons.insert(
                    0,
                    format!("interrupted by {sig}; everything was rolled back"),
                );
            }
            Some(Stopped::Error(e)) => {
                reasons.insert(0, format!("{e}; everything was rolled back"));
            }
            Some(Stopped::TargetGone(what)) => {
                reasons.insert(0, format!("{what}; everything was rolled back"));
            }
            None => {}
        }
        let mut timeline = before.clone();
        timeline.extend(self.samples.iter().map(|(s, _)| self.sample_report(s)));
        Report {
            experiment: self.exp.name.clone(),
            hypothesis: self.exp.hypothesis.clone(),
            description: self.exp.description.clone(),
            target: self.exp.target.to_string(),
            dry_run,
            started_at,
            planned_duration_s: self.exp.duration.as_secs_f64(),
            hypothesis_held: outcome == Outcome::Held,
            outcome,
            reasons,
            steady_state_before: before,
            probes,
            faults: self.slots.iter().map(|s| s.rep.clone()).collect(),
            abort,
            rolled_back_s,
            recovery,
            ended_s: self.now_s(),
            timeline,
            injections: self.injections.clone(),
        }
    }
}
