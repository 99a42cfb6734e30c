//! Benchmark (not a test): what the packet classifier costs.
//!
//! 1. Per packet, in the kernel (BPF_PROG_TEST_RUN, 10^6 repeats, a 64-byte TCP packet): the
//!    classifier with no rule, with a rule that misses, with 8 rules that miss, with 1,024
//!    destination prefixes that miss, with a rule that hits (drop). `classifier.rs`.
//! 2. TCP throughput through a veth pair between two namespaces (iperf3, one stream, TSO/GSO
//!    off on the sender so that every packet is a real packet): no program; an empty classifier
//!    on the same hook (what the hook itself costs); chaos's classifier with a rule that
//!    matches nothing; chaos dropping 1 %; and the incumbents' mechanism for the same 1 %
//!    (iptables-legacy `-m statistic --mode random`, what Chaos Mesh and ChaosBlade use).
//!    `throughput.rs`.
//!
//! Every figure is a median of pairs measured side by side with the baseline, as ratios and
//! differences: the machines are noisy.
//!
//! Usage: bench-net [ROUNDS]  (BENCH_NET_CLASSIFIER_ONLY=1 skips part 2)

mod classifier;
mod throughput;

use chaos_common::{
    ACTION_DROP, Cidr, NetRule, PROTO_TCP, PortRange, THRESHOLD_ALWAYS, maps::NET_CFG,
};

/// The do-nothing classifier in the object (chaos-ebpf/src/probe.rs).
const EMPTY: &str = "probe_tc_empty";

/// Program `name` of `obj`, a TC classifier.
fn classifier<'a>(obj: &'a mut aya::Ebpf, name: &str) -> &'a mut aya::programs::SchedClassifier {
    obj.program_mut(name)
        .expect("classifier")
        .try_into()
        .expect("type")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A drop rule for TCP to `dport`, always, with no deadline.
fn rule(dport: u16) -> NetRule {
    NetRule {
        deadline_ns: u64::MAX,
        cgroup_id: 0,
        threshold: THRESHOLD_ALWAYS,
        src: Cidr::ANY,
        dst: Cidr::ANY,
        sport: PortRange::ANY,
        dport: PortRange {
            lo: dport,
            hi: dport,
        },
        cgroup_level: 0,
        protocol: PROTO_TCP,
        action: ACTION_DROP,
        flags: 0,
        opts: 0,
        fault_id: 1,
        sample: 0,
        delay_ns: 0,
        jitter_ns: 0,
        correlation: 0,
        ns_per_byte_q16: 0,
        horizon_ns: 0,
        http_status: 0,
        _pad: 0,
        loss: 0,
        redirect_ifindex: 0,
        rules: 1,
    }
}

/// Writes `rule` into the first `n` slots (none: slot 0 says the set is empty).
fn configure(obj: &mut aya::Ebpf, rule: NetRule, n: u32) {
    for slot in (1..n).rev().chain([0]) {
        let r = NetRule { rules: n, ..rule };
        chaos::ebpf::set_config_at(obj, NET_CFG, slot, r).expect("config");
    }
}

/// chaos's object with `rule` in slot 0, or no rule.
fn loaded_with(rule: Option<NetRule>) -> aya::Ebpf {
    let mut obj = chaos::ebpf::load(
        chaos::ebpf::Programs::All,
        None,
        None,
        chaos_common::features::ALL,
    )
    .expect("load object");
    configure(
        &mut obj,
        rule.unwrap_or(crate::rule(9)),
        rule.is_some() as u32,
    );
    obj
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    // Pairs are cheap (a tenth of a second): three times the rounds.
    classifier::cost(rounds * 3);
    // BENCH_NET_CLASSIFIER_ONLY=1: skip the throughput part.
    if std::env::var_os("BENCH_NET_CLASSIFIER_ONLY").is_none() {
        throughput::run(rounds * 4);
    }
}
