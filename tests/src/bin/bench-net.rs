//! Benchmark (not a test): what the packet classifier costs.
//!
//! 1. Per packet, in the kernel (BPF_PROG_TEST_RUN, 10^6 repeats, a 64-byte TCP packet): the
//!    classifier with no rule, with a rule that misses, with 1,024 destination prefixes that
//!    miss (LPM trie), with a rule that hits (drop).
//! 2. TCP throughput through a veth pair between two namespaces (iperf3, one stream, TSO/GSO
//!    off on the sender so that every packet is a real packet): no program; an empty classifier
//!    on the same hook (what the hook itself costs); chaos attached with a rule that matches
//!    nothing; chaos dropping 1 %; and the incumbents' mechanism for the
//!    same 1 % (iptables-legacy `-m statistic --mode random`, what Chaos Mesh and ChaosBlade
//!    use). Interleaved rounds, medians, ratios to no program.
//!
//! Usage: bench-net [ROUNDS]  (CHAOS_BIN should point at a release build;
//! BENCH_NET_CLASSIFIER_ONLY=1 skips part 2)

use aya::programs::SchedClassifier;
use chaos::{bpf_sys::prog_test_run, ebpf, sandbox::Sandbox};
use chaos_common::{
    ACTION_DROP, Cidr, NetRule, PROTO_TCP, PortRange, THRESHOLD_ALWAYS,
    filter::FAMILY_SET,
    maps::{NET_CFG, NET_COUNT, PROG_TC_INGRESS},
};
use chaos_tests::chaos_bin;

/// The do-nothing classifier in the object (chaos-ebpf/src/probe.rs).
const EMPTY: &str = "probe_tc_empty";
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Ethernet + IPv4 + TCP (10.0.0.1:40000 -> 10.0.0.2:80, SYN), 64 bytes.
fn tcp_packet() -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    p[14] = 0x45;
    p[16..18].copy_from_slice(&50u16.to_be_bytes());
    p[22] = 64;
    p[23] = PROTO_TCP;
    p[26..30].copy_from_slice(&[10, 0, 0, 1]);
    p[30..34].copy_from_slice(&[10, 0, 0, 2]);
    p[34..36].copy_from_slice(&40000u16.to_be_bytes());
    p[36..38].copy_from_slice(&80u16.to_be_bytes());
    p[46] = 0x50;
    p[47] = 0x02;
    p
}

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
        loss: 0,
        redirect_ifindex: 0,
        _pad: 0,
    }
}

fn classifier_cost(rounds: usize) {
    let mut obj = ebpf::load(None, None).expect("load object");
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
    {
        let p: &mut SchedClassifier = obj
            .program_mut(PROG_TC_INGRESS)
            .expect("classifier")
            .try_into()
            .expect("type");
        p.load().expect("load classifier");
    }
    {
        let p: &mut SchedClassifier = obj
            .program_mut(EMPTY)
            .expect("empty classifier")
            .try_into()
            .expect("type");
        p.load().expect("load the empty classifier");
    }
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
            for slot in 0..(*n).max(1) {
                ebpf::set_config_at(&mut obj, NET_CFG, slot, *r).expect("config");
            }
            // "No rule" is the state before a fault starts: no slot in use.
            ebpf::set_config(&mut obj, NET_COUNT, *n).expect("count");
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

fn nsenter(ns: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"));
    c
}

fn ok(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn iperf(sb: &Sandbox, secs: u32) -> f64 {
    let out = nsenter(&sb.client_ns)
        .args(["iperf3", "-c", "10.77.0.2", "-t", &secs.to_string(), "-J"])
        .output()
        .expect("iperf3");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no throughput in iperf3 output: {v}"))
}

fn chaos_drop(sb: &Sandbox, extra: &[&str]) -> Child {
    let mut c = Command::new(chaos_bin())
        .args([
            "--json",
            "net",
            "drop",
            "--iface",
            &sb.server_if,
            "--netns",
            &sb.server_ns,
        ])
        .args(["--protocol", "tcp", "--duration", "10m"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("chaos");
    let mut line = String::new();
    BufReader::new(c.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("attached");
    assert!(line.contains("attached"), "{line}");
    c
}

fn stop(mut c: Child) {
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
    let _ = c.wait();
}

fn iptables(sb: &Sandbox, op: &str) {
    ok(nsenter(&sb.server_ns).args([
        "iptables-legacy",
        op,
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        "5201",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.01",
        "-j",
        "DROP",
    ]));
}

/// The empty classifier attached by TCX to the server's veth ingress (where chaos's rule goes):
/// what the hook itself costs, the floor for chaos's "matching nothing" row. Detached on drop.
fn empty_classifier(sb: &Sandbox) -> (aya::Ebpf, aya::programs::tc::SchedClassifierLink) {
    use aya::programs::{LinkOrder, TcAttachType, tc::TcAttachOptions};
    let mut obj = ebpf::load(None, None).expect("load object");
    let ns = chaos::netns::Netns::resolve(&sb.server_ns).expect("netns");
    let link = ns
        .enter(|| {
            let p: &mut SchedClassifier = obj
                .program_mut(EMPTY)
                .expect("empty classifier")
                .try_into()
                .expect("type");
            p.load().expect("load");
            let tcx = TcAttachOptions::TcxOrder(LinkOrder::default());
            let id = p
                .attach_with_options(&sb.server_if, TcAttachType::Ingress, tcx)
                .expect("attach by TCX");
            p.take_link(id).expect("link")
        })
        .expect("enter netns");
    (obj, link)
}

fn throughput(rounds: usize) {
    let sb = Sandbox::create("bnet").expect("sandbox");
    ok(nsenter(&sb.client_ns).args(["ethtool", "-K", &sb.client_if, "tso", "off", "gso", "off"]));
    let mut server = nsenter(&sb.server_ns)
        .args(["iperf3", "-s"])
        .stdout(Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let secs = 4;
    let names = [
        "no program",
        "empty classifier (the TCX hook)",
        "chaos, rule matching nothing",
        "chaos, drop 1%",
        "iptables-legacy statistic, drop 1%",
    ];
    let mut r = vec![Vec::new(); names.len()];
    for _ in 0..rounds {
        r[0].push(iperf(&sb, secs));
        let empty = empty_classifier(&sb);
        r[1].push(iperf(&sb, secs));
        drop(empty);
        let c = chaos_drop(&sb, &["--dport", "9"]);
        r[2].push(iperf(&sb, secs));
        stop(c);
        let c = chaos_drop(&sb, &["--dport", "5201", "--percent", "1"]);
        r[3].push(iperf(&sb, secs));
        stop(c);
        iptables(&sb, "-A");
        r[4].push(iperf(&sb, secs));
        iptables(&sb, "-D");
    }
    let _ = server.kill();
    let _ = server.wait();
    let base = median(&mut r[0].clone());
    println!(
        "TCP through veth, iperf3 one stream {secs}s, TSO/GSO off on the sender ({rounds} rounds, medians):"
    );
    for (name, mut v) in names.iter().zip(r) {
        let m = median(&mut v);
        println!("  {name:<36} {:7.2} Gbit/s  ratio {:.3}", m / 1e9, m / base);
    }
    drop(sb);
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    // Pairs are cheap (a tenth of a second): three times the rounds.
    classifier_cost(rounds * 3);
    // BENCH_NET_CLASSIFIER_ONLY=1: skip the minutes of iperf3 runs.
    if std::env::var_os("BENCH_NET_CLASSIFIER_ONLY").is_none() {
        throughput(rounds.min(5));
    }
}
