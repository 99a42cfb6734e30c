//! The classifier's cost per packet, in the kernel, with BPF_PROG_TEST_RUN.

use crate::{EMPTY, classifier, configure, median, rule};
use aya::programs::SchedClassifier;
use chaos::{bpf_sys::prog_test_run, ebpf};
use chaos_common::{Cidr, NetRule, PROTO_TCP, filter::FAMILY_SET, maps::PROG_TC_INGRESS};

/// A TCP SYN to port 80.
fn tcp_packet() -> Vec<u8> {
    chaos_tests::frames::ipv4(PROTO_TCP, 80)
}

pub fn cost(rounds: usize) {
    let mut obj = ebpf::load(ebpf::Programs::All, None, None, chaos_common::features::ALL)
        .expect("load object");
    let packet = tcp_packet();
    // The same packet to 172.16.0.200: it shares 24 bits with a prefix of the set, so the trie
    // is walked deep, and no /25 holds it (the worst case of a miss).
    let mut near = tcp_packet();
    near[30..34].copy_from_slice(&[172, 16, 0, 200]);
    // "No rule": a config whose deadline has passed, as the map holds before a fault starts.
    let none = NetRule {
        deadline_ns: 0,
        ..rule(80)
    };
    // 1,024 destination prefixes (an LPM trie), none of them the packets' addresses.
    let prefixes: Vec<ipnet::IpNet> = (0..1024)
        .map(|i| {
            format!("172.{}.{}.0/25", 16 + i / 256, i % 256)
                .parse()
                .expect("cidr")
        })
        .collect();
    chaos::net::fill_set(&mut obj, true, 0, &prefixes).expect("fill the trie");
    let many = NetRule {
        dst: Cidr {
            family: FAMILY_SET,
            ..Cidr::ANY
        },
        ..rule(80)
    };
    // (name, rule, packet, rules in the set: the rule repeated in that many slots)
    let cases: [(&str, NetRule, &[u8], u32); 6] = [
        ("no rule", none, &packet, 0),
        ("one rule, miss (dport 9999)", rule(9999), &packet, 1),
        ("8 rules, all miss", rule(9999), &packet, 8),
        ("1,024 dst prefixes, miss", many, &packet, 1),
        ("  same, miss in the trie", many, &near, 1),
        ("one rule, hit (drop)", rule(80), &packet, 1),
    ];
    classifier(&mut obj, PROG_TC_INGRESS)
        .load()
        .expect("load classifier");
    classifier(&mut obj, EMPTY)
        .load()
        .expect("load the empty classifier");
    let run = |obj: &aya::Ebpf, name: &str, packet: &[u8]| {
        let p: &SchedClassifier = obj
            .program(name)
            .expect("classifier")
            .try_into()
            .expect("type");
        let (_, ns) = prog_test_run(p.fd().expect("fd"), packet, 1_000_000).expect("test run");
        ns as f64
    };
    // Each case right after the empty classifier, and its cost taken as the difference of
    // the pair: the machine's slow drifts (other tenants) cancel, what remains is the median.
    let mut floor = Vec::new();
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut over: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (i, (_, r, p, n)) in cases.iter().enumerate() {
            // "No rule" is the state before a fault starts: no slot in use.
            configure(&mut obj, *r, *n);
            let f = run(&obj, EMPTY, p);
            let c = run(&obj, PROG_TC_INGRESS, p);
            floor.push(f);
            results[i].push(c);
            over[i].push(c - f);
        }
    }
    println!(
        "classifier, BPF_PROG_TEST_RUN x 10^6, 64-byte TCP packet ({rounds} rounds of pairs, \
         medians):"
    );
    println!(
        "  {:<30} {:6.1} ns/packet (BPF_PROG_TEST_RUN's own cost per run)",
        "empty classifier",
        median(&mut floor)
    );
    for ((name, _, _, _), (mut r, mut o)) in cases.iter().zip(results.into_iter().zip(over)) {
        println!(
            "  {name:<30} {:6.1} ns/packet, {:5.1} ns over the empty classifier",
            median(&mut r),
            median(&mut o)
        );
    }
}
