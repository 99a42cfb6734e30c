//! Packet faults at TC (TCX link or cls_bpf): parse, match the rule, roll the dice, act.

use aya_ebpf::{
    bindings::{
        __sk_buff, _bindgen_ty_28::BPF_SKB_TSTAMP_DELIVERY_MONO, BPF_F_INGRESS, TC_ACT_SHOT,
        TC_ACT_UNSPEC,
    },
    helpers::{
        bpf_get_prandom_u32, bpf_ktime_get_ns,
        generated::{
            bpf_redirect, bpf_skb_ancestor_cgroup_id, bpf_skb_cgroup_id, bpf_skb_set_tstamp,
        },
    },
    macros::{classifier, map},
    maps::{Array, LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::TcContext,
};
use chaos_common::{
    ACTION_CORRUPT, ACTION_DELAY, ACTION_DROP, ACTION_DUPLICATE, ACTION_RATE, ACTION_REORDER,
    ACTION_RESET, Cidr, DUP_MARK, EVENT_PACKET, Event, FLAG_DRY_RUN, MAX_RULES, NetRule,
    OPT_EGRESS, OPT_HANDOFF, OPT_INGRESS, OPT_NORMAL, OPT_PEER, PROTO_ANY, PROTO_ICMP,
    PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, STAT_LEN, STAT_LOSS, STAT_MATCHED,
    features::{self, CGROUP, CORRELATION, JITTER, LOSS, SETS},
    filter::{FAMILY_SET, HINT_WORDS, MAX_PREFIXES, hint_bit, lpm_data},
    roll,
};

mod cgroup_in;
mod corrupt;
mod dns;
mod handoff;
mod http;
mod parse;
mod rate;
mod reset;

use self::{
    corrupt::corrupt,
    parse::{Flow, parse},
    rate::pace,
    reset::reset,
};
use crate::{
    features::{on, slots},
    verdict::{Verdict, bump, decide, emit},
};

#[map]
pub static CHAOS_NET_CFG: Array<NetRule> = Array::with_max_entries(MAX_RULES, 0);
/// Prefix sets for rules with many CIDRs (aya adds BPF_F_NO_PREALLOC, which LPM tries need).
#[map]
pub static CHAOS_NET_SRC: LpmTrie<[u32; 5], u8> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);
#[map]
pub static CHAOS_NET_DST: LpmTrie<[u32; 5], u8> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);
/// First stage of those sets (see `filter::hint_bit`).
#[map]
pub static CHAOS_NET_HINT: Array<u64> = Array::with_max_entries(HINT_WORDS, 0);
#[map]
pub static CHAOS_NET_STATS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(STAT_LEN * MAX_RULES, 0);

/// "No verdict": let the next program (TCX) or filter (cls_bpf) decide.
const PASS: i32 = TC_ACT_UNSPEC;

#[classifier]
pub fn chaos_tc_in(ctx: TcContext) -> i32 {
    try_chaos_tc(&ctx, true, false).unwrap_or(PASS)
}

#[classifier]
pub fn chaos_tc_eg(ctx: TcContext) -> i32 {
    try_chaos_tc(&ctx, false, false).unwrap_or(PASS)
}

/// Delay of arriving packets: they are given a departure time and redirected to an ifb
/// device, whose fq holds them and which then delivers them as arriving on their own
/// interface. A program of its own because bpf_skb_set_tstamp (Linux 5.18) would keep the
/// others from loading on older kernels.
#[classifier]
pub fn chaos_tc_in_ifb(ctx: TcContext) -> i32 {
    try_chaos_tc(&ctx, true, true).unwrap_or(PASS)
}

/// A rule function's "no verdict, try the next rule".
const NEXT: i32 = i32::MIN;

#[inline(always)]
fn try_chaos_tc(ctx: &TcContext, ingress: bool, ifb: bool) -> Option<i32> {
    let skb: *mut __sk_buff = ctx.skb.skb;
    // A duplicate we sent is coming through again: clear our mark and let it go.
    // SAFETY: mark is a readable and writable field of the TC context.
    unsafe {
        let mark = (*skb).mark;
        if mark & DUP_MARK != 0 {
            (*skb).mark = mark & !DUP_MARK;
            return None;
        }
    }
    // No rule yet: nothing to parse.
    let n = CHAOS_NET_CFG.get(0)?.rules;
    if n == 0 {
        return None;
    }
    let flow = parse(ctx)?;
    let hook = if ingress { OPT_INGRESS } else { OPT_EGRESS };
    let loaded = slots();
    // Every rule in turn: each acts on the packet it matches (delay, duplicate and corrupt
    // combine); a drop or a redirect ends the walk.
    for slot in 0..MAX_RULES {
        if slot >= n || slot >= loaded {
            break;
        }
        let Some(rule) = CHAOS_NET_CFG.get(slot) else {
            break;
        };
        if !maybe(rule, &flow, hook) {
            continue;
        }
        let verdict = if ifb {
            chaos_rule_ifb(skb, slot, &flow)
        } else {
            chaos_rule(skb, slot, &flow, ingress as u32)
        };
        if verdict != NEXT {
            return Some(verdict);
        }
    }
    None
}

/// Whether the rule might match: a few compares inline, so that most misses cost no call
/// (a BPF-to-BPF call and return cost about 17 ns here: 8 missing rules took 212 ns over an
/// empty classifier with the call per rule, 80 ns with the checks inline). Only as many as
/// keep the verifier's walk of the 8 slots short: protocol and prefixes are left to the rule
/// function (all of quick_ok inline took 30,815 verified instructions instead of 3,708).
/// A necessary condition only: "any" is the range 0-65535, and a packet without ports has 0
/// in both, which only a range holding 0 lets through (the full check then decides).
#[inline(always)]
fn maybe(rule: &NetRule, flow: &Flow, hook: u8) -> bool {
    let at_hook = rule.opts & (OPT_INGRESS | OPT_EGRESS);
    let span =
        |r: &chaos_common::PortRange, p: u16| p.wrapping_sub(r.lo) <= r.hi.wrapping_sub(r.lo);
    let (sport, dport) = ports(flow, hook == OPT_INGRESS && rule.opts & OPT_PEER != 0);
    rule.deadline_ns != 0
        && (at_hook == 0 || at_hook == hook)
        && span(&rule.dport, dport)
        && span(&rule.sport, sport)
}

/// A packet's source and destination as a rule sees them.
pub struct Ends {
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub sport: u16,
    pub dport: u16,
}

/// `flow`'s ends, swapped for a rule that names its peer (OPT_PEER) seeing an arriving packet,
/// whose peer is its source. Selected with masks, not a branch: the verifier then walks one
/// path instead of two for every check after it (a branch took the cgroup_skb program from
/// 2,671 to 4,754 verified instructions).
#[inline(always)]
pub fn ends(flow: &Flow, swap: bool) -> Ends {
    let m = (swap as u32).wrapping_neg();
    let pick = |keep: u32, other: u32| (keep & !m) | (other & m);
    let mut src = [0u32; 4];
    let mut dst = [0u32; 4];
    for i in 0..4 {
        src[i] = pick(flow.src[i], flow.dst[i]);
        dst[i] = pick(flow.dst[i], flow.src[i]);
    }
    let (sport, dport) = ports(flow, swap);
    Ends {
        src,
        dst,
        sport,
        dport,
    }
}

/// The (source, destination) ports of `ends`, alone (the inline checks need only these).
#[inline(always)]
fn ports(flow: &Flow, swap: bool) -> (u16, u16) {
    let m = (swap as u32).wrapping_neg();
    let (sp, dp) = (u32::from(flow.sport), u32::from(flow.dport));
    (((sp & !m) | (dp & m)) as u16, ((dp & !m) | (sp & m)) as u16)
}

/// One rule of the set applied to a packet: its verdict, or NEXT. A global function (exported,
/// never inlined): the verifier checks it once, for any slot, instead of once per slot and per
/// path into that slot (eight inlined slots took 683,289 verified instructions, 1.7 s).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn chaos_rule(
    skb: *mut __sk_buff,
    slot: u32,
    flow: *const Flow,
    ingress: u32,
) -> i32 {
    // SAFETY: the caller's flow on its stack; the verifier requires the null check.
    let Some(flow) = (unsafe { flow.as_ref() }) else {
        return NEXT;
    };
    rule_at(&TcContext::new(skb), slot, flow, ingress != 0, false).unwrap_or(NEXT)
}

/// `chaos_rule` for the ingress classifier that delays through an ifb: a function of its own
/// so that only that program calls bpf_skb_set_tstamp (Linux 5.18).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn chaos_rule_ifb(skb: *mut __sk_buff, slot: u32, flow: *const Flow) -> i32 {
    // SAFETY: as in chaos_rule.
    let Some(flow) = (unsafe { flow.as_ref() }) else {
        return NEXT;
    };
    rule_at(&TcContext::new(skb), slot, flow, true, true).unwrap_or(NEXT)
}

#[inline(always)]
fn rule_at(ctx: &TcContext, slot: u32, flow: &Flow, ingress: bool, ifb: bool) -> Option<i32> {
    let rule = CHAOS_NET_CFG.get(slot)?;
    let hook = if ingress { OPT_INGRESS } else { OPT_EGRESS };
    let at_hook = rule.opts & (OPT_INGRESS | OPT_EGRESS);
    if rule.deadline_ns == 0 || (at_hook != 0 && at_hook != hook) {
        return None;
    }
    let e = ends(flow, ingress && rule.opts & OPT_PEER != 0);
    if !quick_ok(slot, rule, flow, &e) || !matches_rest(ctx, slot, rule, flow, &e) {
        return None;
    }
    // The clock is read only once a rule matches (it is the costliest step of a miss).
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    if unsafe { bpf_ktime_get_ns() } >= rule.deadline_ns {
        return None;
    }
    apply(ctx, slot, rule, flow, ingress, ifb)
}

/// One matching rule's fault. Some(verdict) ends the walk (drop, redirect).
#[inline(always)]
fn apply(
    ctx: &TcContext,
    slot: u32,
    rule: &NetRule,
    flow: &Flow,
    ingress: bool,
    ifb: bool,
) -> Option<i32> {
    let base = slot * STAT_LEN;
    // Extra loss, rolled on its own before the action: a lost packet is matched, not acted on.
    if on(LOSS) && rule.loss > 0 && rule.flags & FLAG_DRY_RUN == 0 {
        // SAFETY: no preconditions.
        if roll(rule.loss, unsafe { bpf_get_prandom_u32() }) {
            bump(&CHAOS_NET_STATS, base + STAT_MATCHED);
            bump(&CHAOS_NET_STATS, base + STAT_LOSS);
            return Some(TC_ACT_SHOT);
        }
    }
    // For delay and reorder the correlation is that of successive delays (netem's meaning).
    let delaying = is(rule, ACTION_DELAY) || is(rule, ACTION_REORDER);
    let verdict = decide(
        &CHAOS_NET_STATS,
        slot,
        rule.threshold,
        if delaying { 0 } else { rule.correlation },
        rule.flags,
    );
    // Reorder faults the packets it lets through undelayed: all the others are delayed.
    let reorder = is(rule, ACTION_REORDER);
    let Verdict::Fault { dry_run } = verdict else {
        if reorder {
            return delay(ctx, slot, rule, ifb);
        }
        return None;
    };
    emit(&CHAOS_NET_STATS, slot, rule.flags, rule.sample, |e| {
        packet_event(e, rule, flow);
        // SAFETY: the context's skb; the helper returns 0 for packets without a socket.
        e.cgroup_id = unsafe { bpf_skb_cgroup_id(ctx.skb.skb.cast()) };
    });
    if dry_run {
        if reorder {
            return delay(ctx, slot, rule, ifb);
        }
        return None;
    }
    // Each action only where this load keeps it: the verifier walks no other.
    if is(rule, ACTION_DROP) {
        Some(TC_ACT_SHOT)
    } else if is(rule, ACTION_DELAY) {
        delay(ctx, slot, rule, ifb)
    } else if is(rule, ACTION_DUPLICATE) {
        duplicate(ctx, ingress);
        None
    } else if is(rule, ACTION_RATE) {
        pace(ctx, slot, rule, ifb)
    } else if is(rule, ACTION_CORRUPT) {
        corrupt(ctx, rule.opts, flow.protocol, flow.l4 as usize);
        None
    } else if is(rule, ACTION_RESET) {
        reset(ctx, flow.protocol, flow.l4 as usize);
        None
    } else {
        None
    }
}

/// Whether the rule's action is `action` and this load keeps that action.
#[inline(always)]
fn is(rule: &NetRule, action: u8) -> bool {
    on(features::action(action)) && rule.action == action
}

/// Sends a clone of the packet through the same device and direction; the clone carries
/// DUP_MARK so that it is not faulted (nor cloned again) when it passes this hook.
fn duplicate(ctx: &TcContext, ingress: bool) {
    let skb: *mut __sk_buff = ctx.skb.skb;
    let flags = if ingress { BPF_F_INGRESS as u64 } else { 0 };
    // SAFETY: mark and ifindex are fields of the TC context; the mark is restored on the
    // original after cloning.
    unsafe {
        let mark = (*skb).mark;
        (*skb).mark = mark | DUP_MARK;
        let _ = ctx.clone_redirect((*skb).ifindex, flags);
        (*skb).mark = mark;
    }
}

/// The previous jitter draw on this CPU per rule slot, for correlated delays.
#[map]
static CHAOS_JITTER: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_RULES, 0);

/// Earliest Departure Time: the packet may not leave before now + delay (+- jitter). Only the
/// fq qdisc honours it; userspace makes sure fq is the egress qdisc.
/// With `ifb`, the packet arrived: its tstamp is its receive time, not a departure, so the
/// departure is set from now as a CLOCK_MONOTONIC delivery time (which survives the redirect)
/// and the packet goes to the ifb device.
fn delay(ctx: &TcContext, slot: u32, rule: &NetRule, ifb: bool) -> Option<i32> {
    let skb: *mut __sk_buff = ctx.skb.skb;
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let d = delay_ns(slot, rule);
    if ifb {
        return depart_via_ifb(skb, now + d, rule);
    }
    // SAFETY: tstamp is a writable field of the TC context. A departure time already set (TCP
    // pacing) is kept as the base so the delay adds to it.
    unsafe {
        let base = if (*skb).tstamp > now {
            (*skb).tstamp
        } else {
            now
        };
        (*skb).tstamp = base + d;
    }
    None
}

/// An arriving packet leaves at `t` (CLOCK_MONOTONIC) through the rule's ifb device, whose fq
/// holds it until then. A delivery-time stamp survives the redirect (a plain receive timestamp
/// is cleared on the way).
#[inline(always)]
pub fn depart_via_ifb(skb: *mut __sk_buff, t: u64, rule: &NetRule) -> Option<i32> {
    // SAFETY: the context's skb; the helper validates the type.
    unsafe {
        bpf_skb_set_tstamp(skb, t, BPF_SKB_TSTAMP_DELIVERY_MONO);
        if rule.opts & OPT_HANDOFF != 0 {
            handoff::mark(skb);
            return Some(PASS);
        }
        Some(bpf_redirect(rule.redirect_ifindex, 0) as i32)
    }
}

/// The delay for one packet. The jitter is drawn as an unsigned offset `u` around `center`
/// (signed division is not in every kernel's BPF instruction set): uniform in [0, 2j], or
/// approximately normal with standard deviation j (the sum of 8 random bytes: mean 1020,
/// standard deviation 209, tails at +-4.9 sd). With a correlation c, u is blended with the
/// previous draw, as netem does: (1 - c) u + c last.
#[inline(always)]
fn delay_ns(slot: u32, rule: &NetRule) -> u64 {
    let j = rule.jitter_ns;
    if !on(JITTER) || j == 0 || j > rule.delay_ns {
        return rule.delay_ns;
    }
    // SAFETY: no preconditions.
    let r1 = unsafe { bpf_get_prandom_u32() } as u64;
    let (mut u, center) = if rule.opts & OPT_NORMAL != 0 {
        // SAFETY: no preconditions.
        let r2 = unsafe { bpf_get_prandom_u32() } as u64;
        let bytes = |r: u64| (r & 0xff) + ((r >> 8) & 0xff) + ((r >> 16) & 0xff) + (r >> 24);
        ((bytes(r1) + bytes(r2)) * j / 209, 1020 * j / 209)
    } else {
        ((r1 * (2 * j + 1)) >> 32, j)
    };
    if on(CORRELATION)
        && rule.correlation > 0
        && let Some(last) = CHAOS_JITTER.get_ptr_mut(slot)
    {
        // Per mille, so that the products stay within 64 bits for delays up to 10 s.
        let c = (rule.correlation * 1000) >> 32;
        // SAFETY: this CPU's slot; programs do not migrate while running.
        unsafe {
            if *last != 0 {
                u = (u * (1000 - c) + *last * c) / 1000;
            }
            *last = u;
        }
    }
    (rule.delay_ns + u).saturating_sub(center)
}

/// The audit event of a packet fault.
#[inline(always)]
pub fn packet_event(e: &mut Event, rule: &NetRule, flow: &Flow) {
    e.fault_id = rule.fault_id;
    e.kind = EVENT_PACKET;
    e.action = rule.action;
    e.family = flow.family;
    e.protocol = flow.protocol;
    e.src = flow.src;
    e.dst = flow.dst;
    e.sport = flow.sport;
    e.dport = flow.dport;
}

/// What is left once `quick_ok` passed: the trie lookups and the cgroup. A function of its
/// own (a BPF subprogram): inlined into the rule loop it made the verifier walk every
/// combination of every slot's branches.
fn matches_rest(ctx: &TcContext, slot: u32, rule: &NetRule, flow: &Flow, e: &Ends) -> bool {
    in_set(slot, &rule.src, &CHAOS_NET_SRC, flow.family, &e.src)
        && in_set(slot, &rule.dst, &CHAOS_NET_DST, flow.family, &e.dst)
        && in_cgroup(ctx, rule)
}

/// For the single-rule programs of their own (DNS answers, HTTP aborts): a matching packet is
/// counted, rolled and charged, its event emitted; true when the action is to be taken (not a
/// dry run).
#[inline(always)]
pub fn acts(rule: &NetRule, flow: &Flow) -> bool {
    let Verdict::Fault { dry_run } = decide(&CHAOS_NET_STATS, 0, rule.threshold, 0, rule.flags)
    else {
        return false;
    };
    emit(&CHAOS_NET_STATS, 0, rule.flags, rule.sample, |e| {
        packet_event(e, rule, flow);
    });
    !dry_run
}

/// Whether slot 0's rule, in force, matches a leaving packet: protocol, ports, addresses and
/// cgroup (the DNS program, which has one rule and its own action).
#[inline(always)]
pub fn matches_leaving(ctx: &TcContext, rule: &NetRule, flow: &Flow) -> bool {
    let e = ends(flow, false);
    rule.deadline_ns != 0 && quick_ok(0, rule, flow, &e) && matches_rest(ctx, 0, rule, flow, &e)
}

/// Protocol, ports and addresses of an arriving packet (the cgroup is checked by the
/// attachment).
pub fn matches_arriving(slot: u32, rule: &NetRule, flow: &Flow) -> bool {
    let e = ends(flow, rule.opts & OPT_PEER != 0);
    quick_ok(slot, rule, flow, &e)
        && in_set(slot, &rule.src, &CHAOS_NET_SRC, flow.family, &e.src)
        && in_set(slot, &rule.dst, &CHAOS_NET_DST, flow.family, &e.dst)
}

/// Protocol, ports, single prefixes and the prefix sets' first stage: compares and array
/// reads, checked inline so that most misses cost no call.
#[inline(always)]
fn quick_ok(slot: u32, rule: &NetRule, flow: &Flow, e: &Ends) -> bool {
    let proto_ok = match rule.protocol {
        PROTO_ANY => true,
        PROTO_ICMP => flow.protocol == PROTO_ICMP || flow.protocol == PROTO_ICMPV6,
        p => flow.protocol == p,
    };
    let has_ports = flow.protocol == PROTO_TCP || flow.protocol == PROTO_UDP;
    proto_ok
        && (rule.sport.is_any() || (has_ports && rule.sport.contains(e.sport)))
        && (rule.dport.is_any() || (has_ports && rule.dport.contains(e.dport)))
        && addr_quick(slot, false, &rule.src, flow.family, &e.src)
        && addr_quick(slot, true, &rule.dst, flow.family, &e.dst)
}

/// A single prefix decides here; a set passes when its hint bit is set (see
/// `filter::hint_bit`), and `in_set` then asks the trie. Without the sets loaded, a set
/// matches nothing.
#[inline(always)]
fn addr_quick(slot: u32, dst: bool, c: &Cidr, family: u8, addr: &[u32; 4]) -> bool {
    if c.family != FAMILY_SET {
        return c.matches(family, addr);
    }
    if !on(SETS) {
        return false;
    }
    let bit = hint_bit(slot, dst, family, addr[0]);
    matches!(CHAOS_NET_HINT.get(bit >> 6), Some(word) if *word & (1 << (bit & 63)) != 0)
}

/// Several prefixes: a lookup in the LPM trie, not a scan. True for a single prefix (decided
/// by `addr_quick`).
#[inline(always)]
fn in_set(slot: u32, c: &Cidr, set: &LpmTrie<[u32; 5], u8>, family: u8, addr: &[u32; 4]) -> bool {
    c.family != FAMILY_SET
        || (on(SETS)
            && set
                .get(Key::new(160, lpm_data(slot, family, addr)))
                .is_some())
}

pub fn in_cgroup(ctx: &TcContext, rule: &NetRule) -> bool {
    if rule.cgroup_id == 0 {
        return true;
    }
    // Without the cgroup filter loaded, a rule with a cgroup matches nothing.
    if !on(CGROUP) {
        return false;
    }
    let skb: *mut __sk_buff = ctx.skb.skb;
    // SAFETY: skb is the program's context pointer; the helper handles packets without a socket
    // (it returns 0, which never equals a real cgroup id).
    let id = unsafe { bpf_skb_ancestor_cgroup_id(skb.cast(), rule.cgroup_level as i32) };
    id == rule.cgroup_id
}
