//! The net family without root: `NetSpec::check` names the flag of every input error, and
//! `encode` writes each action and filter where the kernel side (chaos-ebpf/src/net/mod.rs) reads
//! it.

use super::{Action, Direction, Distribution, NetSpec, Protocol, Scope, encode};
use crate::{controls::Controls, target::Target, units::Percent};
use chaos_common::{
    ACTION_CORRUPT, ACTION_DELAY, ACTION_DNS, ACTION_DROP, ACTION_DUPLICATE, ACTION_RATE,
    ACTION_REORDER, ACTION_RESET, FLAG_DRY_RUN, OPT_KEEP_CSUM, OPT_NORMAL, OPT_PEER, PROTO_ANY,
    PROTO_ICMP, PROTO_TCP, PROTO_UDP, PortRange, THRESHOLD_ALWAYS,
    filter::{FAMILY_ANY, FAMILY_SET, FAMILY_V4, FAMILY_V6},
};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

fn delay(latency_ms: u64, jitter_ms: u64) -> Action {
    Action::Delay {
        latency: MS * latency_ms as u32,
        jitter: MS * jitter_ms as u32,
        distribution: Distribution::Uniform,
        reorder: false,
    }
}

/// `chaos net ACTION --iface eth0 --duration 30s` with every default, as the CLI builds it.
fn spec(action: Action) -> NetSpec {
    NetSpec {
        action,
        iface: "eth0".into(),
        netns: None,
        direction: action.default_direction(false),
        percent: Percent::ALL,
        correlation: None,
        loss: None,
        protocol: None,
        src: Vec::new(),
        dst: Vec::new(),
        sport: None,
        dport: None,
        target: None,
        duration: Duration::from_secs(30),
        attach: super::AttachMode::Auto,
        controls: Controls {
            events_sample: 1,
            ..Controls::default()
        },
        names: Vec::new(),
    }
}

fn pct(p: f64) -> Percent {
    p.to_string().parse().expect("percent")
}

fn nets(s: &[&str]) -> Vec<ipnet::IpNet> {
    s.iter().map(|n| n.parse().expect("cidr")).collect()
}

#[test]
fn defaults_put_drop_at_ingress_and_delay_rate_or_a_cgroup_at_egress() {
    let rate = Action::Rate {
        bits_per_sec: 8_000_000,
        horizon: Duration::from_secs(1),
    };
    assert_eq!(Action::Drop.default_direction(false), Direction::Ingress);
    assert_eq!(
        Action::Duplicate.default_direction(false),
        Direction::Ingress
    );
    assert_eq!(delay(10, 0).default_direction(false), Direction::Egress);
    assert_eq!(rate.default_direction(false), Direction::Egress);
    assert_eq!(Action::Drop.default_direction(true), Direction::Egress);
}

#[test]
fn check_names_the_flag_of_each_input_error() {
    type Edit = fn(&mut NetSpec);
    let cases: &[(&str, Edit)] = &[
        ("--correlation", |s| s.correlation = Some(Percent::ALL)),
        ("--iface", |s| s.iface.clear()),
        ("--loss", |s| s.loss = Some(pct(5.0))),
        ("--percent", |s| s.percent = pct(0.0)),
        ("--sport/--dport", |s| {
            s.protocol = Some(Protocol::Icmp);
            s.dport = Some(PortRange { lo: 53, hi: 53 });
        }),
        ("--duration", |s| {
            s.duration = Duration::from_secs(48 * 3600)
        }),
        ("--latency", |s| s.action = delay(0, 0)),
        ("--protocol", |s| s.action = Action::Reset),
        ("--protocol", |s| {
            s.action = Action::Reset;
            s.protocol = Some(Protocol::Udp);
        }),
        ("--latency", |s| s.action = delay(11_000, 0)),
        ("--jitter", |s| s.action = delay(10, 20)),
        ("--jitter", |s| {
            s.action = Action::Delay {
                latency: MS * 10,
                jitter: Duration::ZERO,
                distribution: Distribution::Normal,
                reorder: false,
            }
        }),
        ("--rate", |s| {
            s.action = Action::Rate {
                bits_per_sec: 100,
                horizon: Duration::from_secs(1),
            }
        }),
        ("--horizon", |s| {
            s.action = Action::Rate {
                bits_per_sec: 8_000_000,
                horizon: Duration::from_secs(11),
            }
        }),
        ("--percent", |s| {
            s.action = Action::Rate {
                bits_per_sec: 8_000_000,
                horizon: Duration::from_secs(1),
            };
            s.percent = pct(50.0);
        }),
        ("--direction", |s| {
            // Delay scoped to a cgroup at ingress: no socket there yet.
            s.action = delay(10, 0);
            s.target = Some(Target::Cgroup("x".into()));
            s.direction = Direction::Ingress;
        }),
        ("--dst", |s| {
            s.dst = vec!["10.0.0.0/8".parse().expect("cidr"); 16_385];
        }),
        ("--direction", |s| {
            // DNS queries are answered as they leave.
            s.action = Action::Dns { rcode: 3 };
            s.direction = Direction::Ingress;
        }),
        ("--name", |s| {
            s.action = Action::Dns { rcode: 3 };
            s.direction = Direction::Egress;
            s.names = vec!["bad..name".into()];
        }),
    ];
    for (flag, edit) in cases {
        let mut s = spec(Action::Drop);
        edit(&mut s);
        match s.check() {
            Err(crate::Error::Input { flag: f, .. }) => assert_eq!(f, *flag, "{s:?}"),
            other => panic!("{flag}: expected an input error, got {other:?} for {s:?}"),
        }
    }
    spec(Action::Drop).check().expect("the defaults pass");
}

#[test]
fn each_action_has_its_code_and_options() {
    let cases = [
        (Action::Drop, ACTION_DROP, 0),
        (Action::Duplicate, ACTION_DUPLICATE, 0),
        (Action::Reset, ACTION_RESET, 0),
        (Action::Dns { rcode: 2 }, ACTION_DNS, 0),
        (
            Action::Corrupt {
                keep_checksum: true,
            },
            ACTION_CORRUPT,
            OPT_KEEP_CSUM,
        ),
        (
            Action::Corrupt {
                keep_checksum: false,
            },
            ACTION_CORRUPT,
            0,
        ),
        (delay(100, 20), ACTION_DELAY, 0),
        (
            Action::Delay {
                latency: MS * 100,
                jitter: MS * 20,
                distribution: Distribution::Normal,
                reorder: false,
            },
            ACTION_DELAY,
            OPT_NORMAL,
        ),
        (
            Action::Delay {
                latency: MS * 50,
                jitter: Duration::ZERO,
                distribution: Distribution::Uniform,
                reorder: true,
            },
            ACTION_REORDER,
            0,
        ),
    ];
    for (action, code, opts) in cases {
        let r = encode(&spec(action), Scope::default(), 7).rule;
        assert_eq!((r.action, r.opts), (code, opts), "{action:?}");
        assert_eq!(r.threshold, THRESHOLD_ALWAYS);
        assert_eq!((r.fault_id, r.deadline_ns, r.rules), (7, 0, 0));
    }
    let r = encode(&spec(delay(100, 20)), Scope::default(), 1).rule;
    assert_eq!((r.delay_ns, r.jitter_ns), (100_000_000, 20_000_000));
    // 8 Mbit/s is 1,000 ns per byte, in 16.16 fixed point.
    let rate = Action::Rate {
        bits_per_sec: 8_000_000,
        horizon: MS * 250,
    };
    let r = encode(&spec(rate), Scope::default(), 1).rule;
    assert_eq!(
        (r.action, r.ns_per_byte_q16, r.horizon_ns),
        (ACTION_RATE, 1000 << 16, 250_000_000)
    );
}

#[test]
fn filters_land_where_the_classifier_reads_them() {
    let mut s = spec(Action::Drop);
    s.protocol = Some(Protocol::Udp);
    s.dport = Some(PortRange { lo: 53, hi: 53 });
    s.sport = Some(PortRange {
        lo: 1024,
        hi: 65535,
    });
    s.dst = nets(&["10.1.0.0/16"]);
    s.src = nets(&["fd00::/8", "10.0.0.0/8"]);
    let e = encode(&s, Scope::default(), 1);
    let r = e.rule;
    assert_eq!(r.protocol, PROTO_UDP);
    assert_eq!(
        (r.dport.lo, r.dport.hi, r.sport.lo, r.sport.hi),
        (53, 53, 1024, 65535)
    );
    // One prefix inline, in network byte order; several in the tries.
    assert_eq!(r.dst.family, FAMILY_V4);
    assert_eq!(r.dst.addr[0], u32::from_ne_bytes([10, 1, 0, 0]));
    assert_eq!(r.dst.mask[0], u32::from_ne_bytes([255, 255, 0, 0]));
    assert!(e.dst_set.is_empty());
    assert_eq!(r.src.family, FAMILY_SET);
    assert_eq!(e.src_set, nets(&["fd00::/8", "10.0.0.0/8"]));
    let mut v6 = spec(Action::Drop);
    v6.dst = nets(&["2001:db8::/32"]);
    assert_eq!(encode(&v6, Scope::default(), 1).rule.dst.family, FAMILY_V6);
    let any = encode(&spec(Action::Drop), Scope::default(), 1).rule;
    assert_eq!(
        (any.protocol, any.src.family, any.dst.family),
        (PROTO_ANY, FAMILY_ANY, FAMILY_ANY)
    );
    assert_eq!((any.sport, any.dport), (PortRange::ANY, PortRange::ANY));
    for (p, code) in [(Protocol::Tcp, PROTO_TCP), (Protocol::Icmp, PROTO_ICMP)] {
        let mut s = spec(Action::Drop);
        s.protocol = Some(p);
        assert_eq!(encode(&s, Scope::default(), 1).rule.protocol, code);
    }
}

#[test]
fn directions_and_cgroups_choose_the_hooks() {
    let scoped = |direction| NetSpec {
        target: Some(Target::Cgroup("app".into())),
        direction,
        ..spec(Action::Drop)
    };
    let plain = |direction| NetSpec {
        direction,
        ..spec(Action::Drop)
    };
    let cases = [
        (plain(Direction::Ingress), &[Direction::Ingress][..], false),
        (plain(Direction::Egress), &[Direction::Egress][..], false),
        (
            plain(Direction::Both),
            &[Direction::Ingress, Direction::Egress][..],
            false,
        ),
        // Arriving packets of a cgroup: a cgroup_skb program, no TC hook.
        (scoped(Direction::Ingress), &[][..], true),
        (scoped(Direction::Both), &[Direction::Egress][..], true),
        (scoped(Direction::Egress), &[Direction::Egress][..], false),
    ];
    for (s, hooks, cgroup_ingress) in cases {
        let e = encode(&s, Scope::default(), 1);
        assert_eq!(
            (e.hooks, e.cgroup_ingress),
            (hooks, cgroup_ingress),
            "{s:?}"
        );
        // Both ways: one conversation, the peer swapped in for arriving packets.
        let peer = s.direction == Direction::Both;
        assert_eq!(e.rule.opts & OPT_PEER != 0, peer, "{s:?}");
    }
    // Delay of arriving packets goes through an ifb; at egress it does not.
    let mut d = spec(delay(10, 0));
    assert!(!encode(&d, Scope::default(), 1).ifb);
    d.direction = Direction::Ingress;
    assert!(encode(&d, Scope::default(), 1).ifb);
}

#[test]
fn scope_probabilities_and_controls_are_carried() {
    let mut s = spec(delay(10, 5));
    s.percent = pct(30.0);
    s.loss = Some(pct(5.0));
    s.correlation = Some(pct(25.0));
    s.controls.dry_run = true;
    s.controls.events_sample = 10;
    let scope = Scope {
        cgroup_id: 4242,
        cgroup_level: 3,
    };
    let r = encode(&s, scope, 1).rule;
    assert_eq!((r.cgroup_id, r.cgroup_level), (4242, 3));
    assert_eq!(r.threshold, pct(30.0).threshold());
    assert_eq!(r.loss, pct(5.0).threshold());
    assert_eq!(r.correlation, pct(25.0).threshold());
    assert_eq!(r.flags & FLAG_DRY_RUN, FLAG_DRY_RUN);
    assert_eq!(r.sample, 10);
}

#[test]
fn the_description_names_the_filters() {
    let mut s = spec(Action::Drop);
    s.percent = pct(30.0);
    assert_eq!(s.describe(), "drop 30% of packets on eth0 (ingress)");
    s.protocol = Some(Protocol::Udp);
    s.dport = Some(PortRange { lo: 53, hi: 53 });
    s.dst = nets(&["10.0.0.0/8", "192.168.0.0/16"]);
    s.target = Some(Target::Cgroup("app".into()));
    assert_eq!(
        s.describe(),
        "drop 30% of packets (udp, dst one of 2 prefixes, dport 53, cgroup app) on eth0 (ingress)"
    );
}

/// DNS answers leave by default, on port 53 unless told otherwise, with every name's key.
#[test]
fn dns_defaults_to_port_53_at_egress_with_its_names() {
    let mut s = spec(Action::Dns { rcode: 3 });
    assert_eq!(s.direction, Direction::Egress);
    s.names = vec!["*.shop.test".into(), "db.other.test".into()];
    s.check().expect("valid");
    let e = encode(&s, Scope::default(), 1);
    assert_eq!(e.rule.dport, PortRange { lo: 53, hi: 53 });
    assert_eq!(e.rule.protocol, PROTO_ANY, "UDP and TCP");
    assert_eq!(e.hooks, &[Direction::Egress]);
    assert_eq!(e.dns_names.len(), 2);
    assert_eq!(
        (&e.dns_names[0].0[..10], e.dns_names[0].1),
        (&b"tset.pohs."[..], 80)
    );
}
