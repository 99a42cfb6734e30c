//! Prometheus exposition of the agent (prometheus-client, the Prometheus project's own Rust
//! client): `chaos_faults_active`, `chaos_fault_matched_total` and `chaos_fault_injected_total`
//! by fault id and kind, `chaos_attach_duration_seconds`, `chaos_api_requests_total` by status.

use super::registry::FaultInfo;
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
    time::Duration,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    id: String,
    fault: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

/// Shared by the API (requests) and the fault thread (everything else); cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    active: Gauge,
    matched: Family<FaultLabels, Counter>,
    injected: Family<FaultLabels, Counter>,
    attach: Histogram,
    requests: Family<CodeLabels, Counter>,
    /// The counters last exported per fault id, to add only what is new.
    seen: Arc<Mutex<HashMap<String, (u64, u64)>>>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let active = Gauge::default();
        let matched = Family::<FaultLabels, Counter>::default();
        let injected = Family::<FaultLabels, Counter>::default();
        // 1 ms to 16 s: a TCX attach takes tens of ms, an LSM one under emulation seconds.
        let attach = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let requests = Family::<CodeLabels, Counter>::default();
        registry.register("chaos_faults_active", "Faults in force", active.clone());
        registry.register(
            "chaos_fault_matched",
            "Packets or calls that matched a fault's filters",
            matched.clone(),
        );
        registry.register(
            "chaos_fault_injected",
            "Faults injected (packets or calls faulted, processes killed)",
            injected.clone(),
        );
        registry.register(
            "chaos_attach_duration_seconds",
            "From the request to the fault in force",
            attach.clone(),
        );
        registry.register(
            "chaos_api_requests",
            "API requests by HTTP status",
            requests.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            active,
            matched,
            injected,
            attach,
            requests,
            seen: Arc::default(),
        }
    }

    pub fn attached(&self, took: Duration) {
        self.attach.observe(took.as_secs_f64());
    }

    pub fn request(&self, code: u16) {
        let labels = CodeLabels {
            code: code.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// The faults as they are now: the active count, and what each counted since last time.
    pub fn observe(&self, faults: Vec<FaultInfo>) {
        let active = faults.iter().filter(|f| f.state == "active").count();
        self.active.set(active as i64);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for f in faults {
            let labels = FaultLabels {
                id: f.id.clone(),
                fault: f.fault.clone(),
            };
            let (m0, i0) = seen.get(&f.id).copied().unwrap_or_default();
            self.matched
                .get_or_create(&labels)
                .inc_by(f.matched.saturating_sub(m0));
            self.injected
                .get_or_create(&labels)
                .inc_by(f.injected.saturating_sub(i0));
            seen.insert(f.id, (f.matched.max(m0), f.injected.max(i0)));
        }
    }

    /// The text exposition format (`/metrics`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
