//! The experiment report: one serializable record (written as JSON), rendered as Markdown for
//! people and as an SVG timeline (`svg`).

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every probe stayed within its tolerance and the system recovered.
    Held,
    NotHeld,
    /// An abort condition tripped; everything was rolled back at once.
    Aborted,
    /// Stopped by a signal: the hypothesis was not tested to the end.
    Interrupted,
    /// A fault could not be attached; everything was rolled back.
    Error,
    /// What a fault acted on vanished mid-run (its process exited; its cgroup, interface or
    /// network namespace was deleted): everything was rolled back (crate::watch).
    TargetGone,
}

impl Outcome {
    /// 0 when the hypothesis held, 1 when it did not, 2 when the run could not tell, 3 when a
    /// target vanished (README, "Exit status").
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Held => 0,
            Self::NotHeld | Self::Aborted => 1,
            Self::Interrupted | Self::Error => 2,
            Self::TargetGone => 3,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub experiment: String,
    pub hypothesis: String,
    pub description: Option<String>,
    pub target: String,
    pub dry_run: bool,
    pub started_at: String,
    pub planned_duration_s: f64,
    pub outcome: Outcome,
    pub hypothesis_held: bool,
    /// Why the hypothesis did not hold, or why the run ended early.
    pub reasons: Vec<String>,
    pub steady_state_before: Vec<SampleReport>,
    pub probes: Vec<ProbeReport>,
    pub faults: Vec<FaultReport>,
    pub abort: Option<AbortReport>,
    /// When the last fault was detached (its planned end, or the abort), in seconds since
    /// injection began; the recovery is measured from there.
    pub rolled_back_s: f64,
    pub recovery: RecoveryReport,
    pub ended_s: f64,
    /// Every probe sample, in the order they were sent.
    pub timeline: Vec<SampleReport>,
    /// Cumulative faults injected (or, in a dry run, that would have been), sampled each second.
    pub injections: Vec<InjectionPoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleReport {
    pub probe: String,
    /// Seconds since injection began (negative: the steady-state check before it).
    pub t_s: f64,
    pub ok: bool,
    pub latency_ms: f64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    pub name: String,
    pub check: String,
    pub interval_s: f64,
    pub tolerance_pct: f64,
    pub samples: u32,
    pub failures: u32,
    pub samples_during_faults: u32,
    pub failures_during_faults: u32,
    pub failure_pct_during_faults: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_max_ms: f64,
    pub first_failure: Option<SampleReport>,
    pub within_tolerance: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultReport {
    pub name: String,
    pub kind: String,
    pub detail: String,
    pub planned_start_s: f64,
    pub planned_end_s: f64,
    /// When attaching began (the fault can act from then on) and when it was gone: the window
    /// holds every moment the fault was in force.
    pub attached_s: Option<f64>,
    pub detached_s: Option<f64>,
    pub matched: u64,
    pub injected: u64,
    pub program_ids: Vec<u32>,
    pub error: Option<String>,
    /// A fault on several targets: each target's counts; a kill: each process it killed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartReport {
    pub name: String,
    pub matched: u64,
    pub injected: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbortReport {
    pub condition: String,
    pub probe: String,
    /// When the sample that tripped it was sent, and when it came back.
    pub sample_t_s: f64,
    pub tripped_s: f64,
    pub rolled_back_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryReport {
    pub recovered: bool,
    /// From the rollback until every probe had passed again.
    pub time_to_recover_s: Option<f64>,
    pub timeout_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InjectionPoint {
    pub fault: String,
    pub t_s: f64,
    pub injected: u64,
}

impl Report {
    /// The report as Markdown (report.md): verdict, faults table, probes table, rollback.
    pub fn to_markdown(&self) -> String {
        let mut m = String::new();
        self.md_head(&mut m);
        self.md_faults(&mut m);
        self.md_probes(&mut m);
        self.md_rollback(&mut m);
        let _ = writeln!(m, "\n![timeline](timeline.svg)");
        m
    }

    fn md_head(&self, m: &mut String) {
        let verdict = match self.outcome {
            Outcome::Held => "**held**",
            Outcome::NotHeld => "**did not hold**",
            Outcome::Aborted => "**did not hold** (aborted)",
            Outcome::Interrupted => "not tested to the end (interrupted)",
            Outcome::Error => "not tested (error)",
            Outcome::TargetGone => "not tested to the end (a target vanished)",
        };
        let _ = writeln!(m, "# Experiment: {}\n", self.experiment);
        let dry = if self.dry_run {
            " — **dry run**: nothing was injected; counts are what would have been"
        } else {
            ""
        };
        let _ = writeln!(
            m,
            "Started {}, target {}{dry}.\n",
            self.started_at, self.target
        );
        if let Some(d) = &self.description {
            let _ = writeln!(m, "{d}\n");
        }
        let _ = writeln!(m, "Hypothesis: {}\n\nResult: {verdict}.\n", self.hypothesis);
        for r in &self.reasons {
            let _ = writeln!(m, "- {r}");
        }
        if !self.reasons.is_empty() {
            m.push('\n');
        }
    }

    fn md_faults(&self, m: &mut String) {
        let _ = writeln!(m, "## Faults\n");
        let _ = writeln!(
            m,
            "| fault | what | planned | attached | detached | matched | injected |\n|---|---|---|---|---|---|---|"
        );
        for f in &self.faults {
            let t = |v: Option<f64>| v.map_or("—".into(), |s| format!("{s:.1}s"));
            let _ = writeln!(
                m,
                "| {} | {}: {}{} | {:.1}s–{:.1}s | {} | {} | {} | {} |",
                f.name,
                f.kind,
                f.detail.replace('|', "\\|"),
                f.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" (error: {e})")),
                f.planned_start_s,
                f.planned_end_s,
                t(f.attached_s),
                t(f.detached_s),
                f.matched,
                f.injected
            );
        }
    }

    fn md_probes(&self, m: &mut String) {
        let _ = writeln!(m, "\n## Probes\n");
        let _ = writeln!(
            m,
            "| probe | check | samples | failed during faults | tolerance | p50 | p95 | max | first failure |\n|---|---|---|---|---|---|---|---|---|"
        );
        for p in &self.probes {
            let first = p.first_failure.as_ref().map_or("—".into(), |s| {
                format!("{:.1}s: {}", s.t_s, s.message.replace('|', "\\|"))
            });
            let _ = writeln!(
                m,
                "| {} | {} | {} | {}/{} ({:.1}%){} | {:.1}% | {:.1} ms | {:.1} ms | {:.1} ms | {first} |",
                p.name,
                p.check.replace('|', "\\|"),
                p.samples,
                p.failures_during_faults,
                p.samples_during_faults,
                p.failure_pct_during_faults,
                if p.within_tolerance { "" } else { " **over**" },
                p.tolerance_pct,
                p.latency_p50_ms,
                p.latency_p95_ms,
                p.latency_max_ms
            );
        }
    }

    fn md_rollback(&self, m: &mut String) {
        let _ = writeln!(m, "\n## Rollback and recovery\n");
        if let Some(a) = &self.abort {
            let _ = writeln!(
                m,
                "Aborted at {:.2}s: {} (probe {}, sample sent at {:.2}s); every fault detached at {:.2}s.\n",
                a.tripped_s, a.condition, a.probe, a.sample_t_s, a.rolled_back_s
            );
        }
        let _ = writeln!(m, "Last fault detached at {:.2}s.", self.rolled_back_s);
        match self.recovery.time_to_recover_s {
            Some(s) => {
                let _ = writeln!(m, "Every probe passed again {s:.2}s after that.");
            }
            None => {
                let _ = writeln!(
                    m,
                    "Not every probe passed again within {:.0}s of the rollback.",
                    self.recovery.timeout_s
                );
            }
        }
    }
}

/// The p-th percentile (0..=100) of sorted values; 0 for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
