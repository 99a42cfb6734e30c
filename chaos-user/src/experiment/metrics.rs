//! Prometheus metrics of an experiment (the seeds' game-day dashboards), served by `chaos run
//! --metrics-addr`: `chaos_experiment_status{experiment, status}` (a state set: 1 for the
//! current status, 0 for the others), `chaos_blast_radius{experiment}` (targets a fault
//! reached), `chaos_recovery_time_seconds` (histogram, from the rollback until every probe
//! passed again) and `chaos_fault_injected_total{experiment, fault}`. prometheus-client, as
//! for the agent.

use super::report::Report;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// The states `chaos_experiment_status` takes: running, then the outcome's name.
pub const STATUSES: &[&str] = &[
    "running",
    "held",
    "not_held",
    "aborted",
    "interrupted",
    "error",
    "target_gone",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    experiment: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExperimentLabels {
    experiment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    experiment: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    experiment: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    experiment: String,
    fault: String,
}

/// Cheap to clone; shared by the runner (which updates it) and the HTTP server (which reads).
#[derive(Clone)]
pub struct ExperimentMetrics {
    registry: Arc<Registry>,
    status: Family<StatusLabels, Gauge>,
    blast: Family<ExperimentLabels, Gauge>,
    recovery: Histogram,
    injected: Family<FaultLabels, Counter>,
    /// `chaos schedule run`: runs by outcome, skipped ticks by reason.
    runs: Family<RunLabels, Counter>,
    skips: Family<SkipLabels, Counter>,
    /// What was last exported per fault, to add only what is new.
    seen: Arc<Mutex<HashMap<String, u64>>>,
}

impl ExperimentMetrics {
    pub fn new() -> Self {
        Self::with_fault_counts(true)
    }

    /// Without `chaos_fault_injected_total` in the exposition: the agent's schedules, whose
    /// agent exports its own per-fault counts under that name (one family per name).
    pub fn for_agent() -> Self {
        Self::with_fault_counts(false)
    }

    fn with_fault_counts(fault_counts: bool) -> Self {
        let mut registry = Registry::default();
        let status = Family::<StatusLabels, Gauge>::default();
        let blast = Family::<ExperimentLabels, Gauge>::default();
        // 0.25 s to about 17 min: services recover in seconds to minutes.
        let recovery = Histogram::new(exponential_buckets(0.25, 2.0, 13));
        let injected = Family::<FaultLabels, Counter>::default();
        registry.register(
            "chaos_experiment_status",
            "1 for the experiment's current status (running, then its outcome)",
            status.clone(),
        );
        registry.register(
            "chaos_blast_radius",
            "Targets a fault reached (a process, container or cgroup with injections)",
            blast.clone(),
        );
        registry.register(
            "chaos_recovery_time_seconds",
            "From the rollback until every probe passed again",
            recovery.clone(),
        );
        if fault_counts {
            registry.register(
                "chaos_fault_injected",
                "Faults injected by an experiment's fault",
                injected.clone(),
            );
        }
        let runs = Family::<RunLabels, Counter>::default();
        let skips = Family::<SkipLabels, Counter>::default();
        registry.register(
            "chaos_schedule_runs",
            "Scheduled runs of an experiment, by outcome",
            runs.clone(),
        );
        registry.register(
            "chaos_schedule_skips",
            "Scheduled ticks not run, by reason (blackout, not_drawn, busy, paused, unhealthy, missed)",
            skips.clone(),
        );
        ExperimentMetrics {
            registry: Arc::new(registry),
            status,
            blast,
            recovery,
            injected,
            runs,
            skips,
            seen: Arc::default(),
        }
    }

    fn set_status(&self, experiment: &str, now: &str) {
        for s in STATUSES {
            let labels = StatusLabels {
                experiment: experiment.to_string(),
                status: (*s).to_string(),
            };
            self.status.get_or_create(&labels).set(i64::from(*s == now));
        }
    }

    /// Injection began (a scheduled run's fault counts start again from zero).
    pub fn running(&self, experiment: &str) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.set_status(experiment, "running");
    }

    /// A scheduled run ended with `outcome`.
    pub fn scheduled_run(&self, experiment: &str, outcome: &str) {
        let labels = RunLabels {
            experiment: experiment.to_string(),
            outcome: outcome.to_string(),
        };
        self.runs.get_or_create(&labels).inc();
    }

    /// A scheduled tick was not run, for `reason`.
    pub fn skipped(&self, experiment: &str, reason: &str) {
        let labels = SkipLabels {
            experiment: experiment.to_string(),
            reason: reason.to_string(),
        };
        self.skips.get_or_create(&labels).inc();
    }

    /// A fault's cumulative count of injections, as sampled.
    pub fn injected(&self, experiment: &str, fault: &str, total: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let before = seen.get(fault).copied().unwrap_or(0);
        let labels = FaultLabels {
            experiment: experiment.to_string(),
            fault: fault.to_string(),
        };
        self.injected
            .get_or_create(&labels)
            .inc_by(total.saturating_sub(before));
        seen.insert(fault.to_string(), total.max(before));
    }

    /// The run is over: its outcome, its blast radius, its recovery time, final counts.
    pub fn finished(&self, r: &Report) {
        for f in &r.faults {
            self.injected(&r.experiment, &f.name, f.injected);
        }
        let labels = ExperimentLabels {
            experiment: r.experiment.clone(),
        };
        self.blast
            .get_or_create(&labels)
            .set(blast_radius(r) as i64);
        if let Some(t) = r.recovery.time_to_recover_s {
            self.recovery.observe(t);
        }
        let outcome = serde_json::to_value(r.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.set_status(&r.experiment, &outcome);
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for ExperimentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Targets reached: each part (pod, container, killed process) with injections, or the fault's
/// own target when it has no parts.
pub fn blast_radius(r: &Report) -> usize {
    r.faults
        .iter()
        .map(|f| {
            if f.parts.is_empty() {
                usize::from(f.injected > 0)
            } else {
                f.parts.iter().filter(|p| p.injected > 0).count()
            }
        })
        .sum()
}
