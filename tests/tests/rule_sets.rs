//! One rule alone and the same rule among others in a set decide alike, in the kernel: the real
//! classifiers (egress and ingress) run on generated packets with BPF_PROG_TEST_RUN. For random
//! drop rules (protocols, port ranges, single prefixes and prefix sets of both families, hooks,
//! both-ways peers) and packets near their edges:
//! - a rule alone in slot 0 drops exactly what the reference model says (chaos-common's
//!   `Cidr::matches` and `PortRange::contains`, ipnet's `contains` for a prefix set);
//! - the set of them drops a packet exactly when one of its rules alone does.
//!
//! Cases: PROPTEST_CASES (default 48 on the host, 8 in an emulated guest, where each case's five
//! object loads take seconds). A failure prints the shrunk rules and packet.

use chaos::{bpf_sys::prog_test_run, cidr, ebpf, net::fill_set};
use chaos_common::{
    ACTION_DROP, Cidr, NetRule, OPT_EGRESS, OPT_INGRESS, OPT_PEER, PROTO_ANY, PROTO_ICMP,
    PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, PortRange, THRESHOLD_ALWAYS,
    filter::FAMILY_SET,
    maps::{NET_CFG, PROG_TC_EGRESS, PROG_TC_INGRESS},
};
use ipnet::IpNet;
use proptest::{prelude::*, test_runner::Config};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TC_ACT_SHOT: the classifier's verdict for a dropped packet.
const SHOT: u32 = 2;
const GRE: u8 = 47;

/// A drop rule as a user gives it: what the library encodes into `NetRule`.
#[derive(Debug, Clone)]
struct Rule {
    protocol: u8,
    sport: Option<(u16, u16)>,
    dport: Option<(u16, u16)>,
    src: Vec<IpNet>,
    dst: Vec<IpNet>,
    /// OPT_INGRESS, OPT_EGRESS or 0 (both hooks).
    hook: u8,
    peer: bool,
}

#[derive(Debug, Clone)]
struct Packet {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    sport: u16,
    dport: u16,
}

/// Addresses around which prefixes and packets are drawn, so that both land on each other's
/// edges: IPv4, IPv6, and an IPv4-mapped IPv6 address (which no IPv4 prefix may hold).
const BASES: [&str; 5] = [
    "10.0.0.0",
    "192.168.7.0",
    "fd00::",
    "fd00:0:0:1::",
    "::ffff:10.0.0.0",
];
const PORTS: [u16; 7] = [0, 1, 53, 80, 1024, 8080, 65535];

/// A base address with bit `flip` (counted from the top; 128: none) inverted.
fn address(base: usize, flip: u8) -> IpAddr {
    match BASES[base].parse::<IpAddr>().expect("base") {
        IpAddr::V4(a) => {
            let bits = u32::from(a)
                ^ 1u32
                    .checked_shl(31u32.wrapping_sub(u32::from(flip) % 33))
                    .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a)
                ^ 1u128
                    .checked_shl(127u32.wrapping_sub(u32::from(flip) % 129))
                    .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

fn prefix() -> impl Strategy<Value = IpNet> {
    (0..BASES.len(), any::<u8>(), 0u8..=128).prop_map(|(b, flip, len)| {
        let a = address(b, flip);
        let max = if a.is_ipv4() { 32 } else { 128 };
        IpNet::new(a, len % (max + 1))
            .expect("prefix length")
            .trunc()
    })
}

fn ports() -> impl Strategy<Value = Option<(u16, u16)>> {
    prop_oneof![
        Just(None),
        (0..PORTS.len(), 0..PORTS.len()).prop_map(|(a, b)| {
            let (a, b) = (PORTS[a], PORTS[b]);
            Some((a.min(b), a.max(b)))
        })
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        prop::sample::select(vec![PROTO_ANY, PROTO_TCP, PROTO_UDP, PROTO_ICMP, GRE]),
        ports(),
        ports(),
        prop::collection::vec(prefix(), 0..4),
        prop::collection::vec(prefix(), 0..4),
        prop::sample::select(vec![0, OPT_INGRESS, OPT_EGRESS]),
        any::<bool>(),
    )
        .prop_map(|(protocol, sport, dport, src, dst, hook, peer)| Rule {
            // Ports only with a protocol that has them, as the CLI demands.
            sport: sport.filter(|_| matches!(protocol, PROTO_TCP | PROTO_UDP)),
            dport: dport.filter(|_| matches!(protocol, PROTO_TCP | PROTO_UDP)),
            protocol,
            src,
            dst,
            hook,
            peer,
        })
}

fn packet() -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        (0usize..3, any::<u8>()),
        (0usize..3, any::<u8>()),
        prop::sample::select(vec![PROTO_TCP, PROTO_UDP, PROTO_ICMP, GRE]),
        (0..PORTS.len(), -1i32..=1),
        (0..PORTS.len(), -1i32..=1),
    )
        .prop_map(|(v6, (s, sf), (d, df), protocol, (sp, sd), (dp, dd))| {
            // IPv4 draws from the first two bases, IPv6 from the last three (one IPv4-mapped).
            let pick = |i: usize| if v6 { 2 + i } else { i % 2 };
            let port = |i: usize, d: i32| (i32::from(PORTS[i]) + d).clamp(0, 65535) as u16;
            Packet {
                src: address(pick(s), sf),
                dst: address(pick(d), df),
                protocol: match (v6, protocol) {
                    (true, PROTO_ICMP) => PROTO_ICMPV6,
                    (_, p) => p,
                },
                sport: port(sp, sd),
                dport: port(dp, dd),
            }
        })
}

/// Ethernet + IP + 20 bytes of layer 4 (the ports first), as a NIC would hand it over.
fn frame(p: &Packet) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    let l4_len = 20u16;
    match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(20 + l4_len).to_be_bytes());
            ip[8] = 64;
            ip[9] = p.protocol;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            f.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&l4_len.to_be_bytes());
            ip[6] = p.protocol;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            f.extend_from_slice(&ip);
        }
        _ => unreachable!("one family per packet"),
    }
    let mut l4 = [0u8; 20];
    l4[0..2].copy_from_slice(&p.sport.to_be_bytes());
    l4[2..4].copy_from_slice(&p.dport.to_be_bytes());
    f.extend_from_slice(&l4);
    f
}

/// Whether `r` alone drops `p` at `hook`, from its definition.
fn model(r: &Rule, p: &Packet, hook: u8) -> bool {
    if r.hook != 0 && r.hook != hook {
        return false;
    }
    let swap = hook == OPT_INGRESS && r.peer;
    let (src, dst, sport, dport) = if swap {
        (p.dst, p.src, p.dport, p.sport)
    } else {
        (p.src, p.dst, p.sport, p.dport)
    };
    let has_ports = matches!(p.protocol, PROTO_TCP | PROTO_UDP);
    let port_ok = |range: Option<(u16, u16)>, port: u16| {
        range.is_none_or(|(lo, hi)| has_ports && PortRange { lo, hi }.contains(port))
    };
    let addr_ok = |set: &[IpNet], ip: IpAddr| match set {
        [] => true,
        [one] => {
            let (family, words) = cidr::packet_words(ip);
            cidr::to_kernel(one).matches(family, &words)
        }
        many => many.iter().any(|n| n.contains(&ip)),
    };
    let proto_ok = match r.protocol {
        PROTO_ANY => true,
        PROTO_ICMP => matches!(p.protocol, PROTO_ICMP | PROTO_ICMPV6),
        x => p.protocol == x,
    };
    proto_ok
        && port_ok(r.sport, sport)
        && port_ok(r.dport, dport)
        && addr_ok(&r.src, src)
        && addr_ok(&r.dst, dst)
}

/// chaos's object with `rules` in slots 0.., its two classifiers loaded.
fn loaded(rules: &[Rule]) -> aya::Ebpf {
    let mut obj = ebpf::load(ebpf::Programs::All, None, None, chaos_common::features::ALL)
        .expect("load the object");
    let n = rules.len() as u32;
    let side = |set: &[IpNet]| match set {
        [] => Cidr::ANY,
        [one] => cidr::to_kernel(one),
        _ => Cidr {
            family: FAMILY_SET,
            ..Cidr::ANY
        },
    };
    let range = |r: Option<(u16, u16)>| r.map_or(PortRange::ANY, |(lo, hi)| PortRange { lo, hi });
    for (slot, r) in rules.iter().enumerate().rev() {
        let slot = slot as u32;
        if r.src.len() > 1 {
            fill_set(&mut obj, false, slot, &r.src).expect("source set");
        }
        if r.dst.len() > 1 {
            fill_set(&mut obj, true, slot, &r.dst).expect("destination set");
        }
        let k = NetRule {
            deadline_ns: u64::MAX,
            threshold: THRESHOLD_ALWAYS,
            action: ACTION_DROP,
            protocol: r.protocol,
            sport: range(r.sport),
            dport: range(r.dport),
            src: side(&r.src),
            dst: side(&r.dst),
            opts: r.hook | if r.peer { OPT_PEER } else { 0 },
            fault_id: 1,
            rules: n,
            ..zeroed_rule()
        };
        ebpf::set_config_at(&mut obj, NET_CFG, slot, k).expect("rule");
    }
    for name in [PROG_TC_EGRESS, PROG_TC_INGRESS] {
        let p: &mut aya::programs::SchedClassifier = obj
            .program_mut(name)
            .expect("classifier")
            .try_into()
            .expect("type");
        p.load().expect("load the classifier");
    }
    obj
}

/// An all-zero rule (no deadline, no action), as the map holds before a fault starts.
fn zeroed_rule() -> NetRule {
    // SAFETY: NetRule is #[repr(C)] plain data for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// Whether the classifier for `hook` of `obj` drops `frame`.
fn drops(obj: &aya::Ebpf, hook: u8, frame: &[u8]) -> bool {
    let name = if hook == OPT_INGRESS {
        PROG_TC_INGRESS
    } else {
        PROG_TC_EGRESS
    };
    let p: &aya::programs::SchedClassifier = obj
        .program(name)
        .expect("classifier")
        .try_into()
        .expect("type");
    let (verdict, _) = prog_test_run(p.fd().expect("fd"), frame, 1).expect("BPF_PROG_TEST_RUN");
    verdict == SHOT
}

#[test]
fn a_rule_decides_alone_as_in_a_set() {
    let in_guest = std::env::var("CHAOS_EXPECT").is_ok_and(|e| e != "host");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(if in_guest { 8 } else { 48 });
    let mut runner = proptest::test_runner::TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let (dropped, total) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let strategy = (
        prop::collection::vec(rule(), 1..=4),
        prop::collection::vec(packet(), 48),
    );
    let result = runner.run(&strategy, |(rules, packets)| {
        let set = loaded(&rules);
        let alone: Vec<aya::Ebpf> = rules
            .iter()
            .map(|r| loaded(std::slice::from_ref(r)))
            .collect();
        for p in &packets {
            let f = frame(p);
            for hook in [OPT_EGRESS, OPT_INGRESS] {
                let mut any = false;
                for (r, obj) in rules.iter().zip(&alone) {
                    let kernel = drops(obj, hook, &f);
                    prop_assert_eq!(
                        kernel,
                        model(r, p, hook),
                        "rule alone {:?}, packet {:?}, hook {}",
                        r,
                        p,
                        hook
                    );
                    any |= kernel;
                }
                let in_set = drops(&set, hook, &f);
                prop_assert_eq!(
                    in_set,
                    any,
                    "set {:?}, packet {:?}, hook {}",
                    &rules,
                    p,
                    hook
                );
                total.set(total.get() + 1);
                dropped.set(dropped.get() + u32::from(in_set));
            }
        }
        Ok(())
    });
    let (dropped, total) = (dropped.get(), total.get());
    println!("{cases} rule sets, {total} packet checks, {dropped} dropped by the set");
    if let Err(e) = result {
        panic!("{e}");
    }
    // A generator that never (or always) drops would prove nothing (about 7 % drop here).
    assert!(
        dropped * 100 >= total && dropped < total * 19 / 20,
        "{dropped} of {total} dropped"
    );
}
