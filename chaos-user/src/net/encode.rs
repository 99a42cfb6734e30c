//! A checked `NetSpec` as the kernel reads it: the `#[repr(C)]` rule (chaos-common's
//! `NetRule`), the hooks it attaches to and the prefixes of its sets. Pure: no system access,
//! so every action and filter is pinned down by unit tests without root.

use super::{Action, Direction, Distribution, NetSpec, Protocol};
use crate::{cidr, units::Percent};
use chaos_common::{
    ACTION_CORRUPT, ACTION_DELAY, ACTION_DNS, ACTION_DROP, ACTION_DUPLICATE, ACTION_RATE,
    ACTION_REORDER, ACTION_RESET, Cidr, NetRule, OPT_KEEP_CSUM, OPT_NORMAL, OPT_PEER, PROTO_ANY,
    PROTO_ICMP, PROTO_TCP, PROTO_UDP, PortRange, filter::FAMILY_SET,
};
use ipnet::IpNet;

/// What the system lookups found that the rule carries: the scoping cgroup's id and level
/// (0, 0: not scoped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scope {
    pub cgroup_id: u64,
    pub cgroup_level: u32,
}

/// The kernel's view of one packet fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The rule, without its deadline and slot count (set when it is written, at attach).
    pub rule: NetRule,
    /// TC hooks to attach to the interface.
    pub hooks: &'static [Direction],
    /// Also (or only) a cgroup_skb ingress program on the cgroup drops arriving packets.
    pub cgroup_ingress: bool,
    /// Arriving packets are held back through an ifb device (delay, reorder, rate at ingress).
    pub ifb: bool,
    /// The prefixes of `rule.src` / `rule.dst` when it is a set (more than one: an LPM trie).
    pub src_set: Vec<IpNet>,
    pub dst_set: Vec<IpNet>,
    /// dns: the name patterns as trie keys, each answered with the action's RCODE.
    pub dns_names: Vec<([u8; chaos_common::dns::NAME_MAX], u32)>,
}

/// Encodes a spec that passed `NetSpec::check`; `fault_id` names it in events.
pub fn encode(spec: &NetSpec, scope: Scope, fault_id: u32) -> Encoded {
    let cgroup_ingress = spec.cgroup_ingress();
    // With a cgroup, ingress is the cgroup_skb program, not a TC hook.
    let hooks = match (cgroup_ingress, spec.direction) {
        (true, Direction::Both) => &[Direction::Egress][..],
        (true, _) => &[][..],
        (false, d) => d.hooks(),
    };
    let delaying = matches!(spec.action, Action::Delay { .. } | Action::Rate { .. });
    let set = |v: &[IpNet]| if v.len() > 1 { v.to_vec() } else { Vec::new() };
    Encoded {
        rule: rule(spec, scope, fault_id),
        hooks,
        cgroup_ingress,
        ifb: delaying && hooks.contains(&Direction::Ingress),
        src_set: set(&spec.src),
        dst_set: set(&spec.dst),
        // Checked by `NetSpec::check`: only valid patterns reach here.
        dns_names: match spec.action {
            Action::Dns { .. } => super::dns::keys(&spec.names).unwrap_or_default(),
            _ => Vec::new(),
        },
    }
}

/// One prefix is compared inline; several are looked up in an LPM trie.
fn side(set: &[IpNet]) -> Cidr {
    match set {
        [] => Cidr::ANY,
        [one] => cidr::to_kernel(one),
        _ => Cidr {
            family: FAMILY_SET,
            ..Cidr::ANY
        },
    }
}

fn rule(spec: &NetSpec, scope: Scope, fault_id: u32) -> NetRule {
    let (delay_ns, jitter_ns) = match spec.action {
        Action::Delay {
            latency, jitter, ..
        } => (latency.as_nanos() as u64, jitter.as_nanos() as u64),
        _ => (0, 0),
    };
    let (ns_per_byte_q16, horizon_ns) = match spec.action {
        // 8e9 ns per byte at 1 bit/s, scaled by 2^16.
        Action::Rate {
            bits_per_sec,
            horizon,
        } => (
            ((8_000_000_000u128 << 16) / u128::from(bits_per_sec.max(1))) as u64,
            horizon.as_nanos() as u64,
        ),
        _ => (0, 0),
    };
    let opts = match spec.action {
        Action::Corrupt {
            keep_checksum: true,
        } => OPT_KEEP_CSUM,
        Action::Delay {
            distribution: Distribution::Normal,
            ..
        } => OPT_NORMAL,
        _ => 0,
    };
    NetRule {
        deadline_ns: 0,
        cgroup_id: scope.cgroup_id,
        threshold: spec.percent.threshold(),
        src: side(&spec.src),
        dst: side(&spec.dst),
        sport: spec.sport.unwrap_or(PortRange::ANY),
        // DNS answers default to the DNS port.
        dport: spec.dport.unwrap_or(match spec.action {
            Action::Dns { .. } => PortRange { lo: 53, hi: 53 },
            _ => PortRange::ANY,
        }),
        cgroup_level: scope.cgroup_level,
        protocol: protocol_code(spec.protocol),
        action: action_code(spec.action),
        flags: spec.controls.flags(),
        opts: opts | peer(spec.direction),
        fault_id,
        sample: spec.controls.events_sample,
        delay_ns,
        jitter_ns,
        correlation: spec.correlation.map_or(0, Percent::threshold),
        ns_per_byte_q16,
        horizon_ns,
        loss: spec.loss.map_or(0, Percent::threshold),
        redirect_ifindex: 0,
        rules: 0,
    }
}

/// The kernel's `PROTO_*` code of a protocol filter.
fn protocol_code(p: Option<Protocol>) -> u8 {
    match p {
        None => PROTO_ANY,
        Some(Protocol::Tcp) => PROTO_TCP,
        Some(Protocol::Udp) => PROTO_UDP,
        Some(Protocol::Icmp) => PROTO_ICMP,
    }
}

/// The kernel's `ACTION_*` code of an action.
pub fn action_code(a: Action) -> u8 {
    match a {
        Action::Drop => ACTION_DROP,
        Action::Delay { reorder: false, .. } => ACTION_DELAY,
        Action::Delay { reorder: true, .. } => ACTION_REORDER,
        Action::Duplicate => ACTION_DUPLICATE,
        Action::Corrupt { .. } => ACTION_CORRUPT,
        Action::Rate { .. } => ACTION_RATE,
        Action::Reset => ACTION_RESET,
        Action::Dns { .. } => ACTION_DNS,
    }
}

/// `--direction both` describes one conversation: the rule's destination is the peer going
/// out and its source coming in (the kernel swaps an arriving packet's ends, OPT_PEER), so
/// `--dst 10.0.0.2 --dport 5432` cuts both halves of the talk with 10.0.0.2:5432.
fn peer(direction: Direction) -> u8 {
    if direction == Direction::Both {
        OPT_PEER
    } else {
        0
    }
}
