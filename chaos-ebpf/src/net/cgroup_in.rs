//! Packet drops at a cgroup's ingress (cgroup_skb): packets delivered to sockets of the target
//! cgroup and its descendants, matched by the same rule as the TC classifier. At TC ingress a
//! packet has no socket yet, so this is the only place a cgroup can scope arriving traffic.
//! cgroup_skb programs can only pass or drop: other actions are refused by userspace.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::cgroup_skb, programs::SkBuffContext};
use chaos_common::ACTION_DROP;

use super::{CHAOS_NET_CFG, CHAOS_NET_STATS, matches_arriving, packet_event, parse::parse_l3};
use crate::verdict::{Verdict, decide, emit};

const DROP: i32 = 0;
const PASS: i32 = 1;

#[cgroup_skb(ingress)]
pub fn chaos_cg_in(ctx: SkBuffContext) -> i32 {
    cgroup_ingress(&ctx).unwrap_or(PASS)
}

fn cgroup_ingress(ctx: &SkBuffContext) -> Option<i32> {
    let rule = CHAOS_NET_CFG.get(0)?;
    if rule.deadline_ns == 0 || rule.action != ACTION_DROP {
        return None;
    }
    // cgroup_skb data starts at the IP header; the ethertype is in skb->protocol.
    // SAFETY: protocol is a readable field of the context.
    let ethertype = u16::from_be(unsafe { (*ctx.skb.skb).protocol } as u16);
    let flow = parse_l3(&ctx.skb, ethertype, 0, false)?;
    if !matches_arriving(0, rule, &flow) {
        return None;
    }
    // SAFETY: no preconditions.
    if unsafe { bpf_ktime_get_ns() } >= rule.deadline_ns {
        return None;
    }
    let Verdict::Fault { dry_run } = decide(
        &CHAOS_NET_STATS,
        0,
        rule.threshold,
        rule.correlation,
        rule.flags,
    ) else {
        return None;
    };
    emit(&CHAOS_NET_STATS, 0, rule.flags, rule.sample, |e| {
        packet_event(e, rule, &flow)
    });
    if dry_run { None } else { Some(DROP) }
}
