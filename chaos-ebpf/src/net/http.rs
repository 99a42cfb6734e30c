//! HTTP aborts (`chaos net http-abort`): the status code of a plaintext HTTP/1.x response is
//! rewritten in flight (" 200" becomes " 503": same length, so nothing else moves, and the four
//! bytes are two aligned words of the TCP checksum, fixed with one replace). A response is the
//! segment whose payload starts with "HTTP/1.": each is rolled once, whatever its size. TLS and
//! HTTP/2 never start so and pass untouched.
//!
//! At ingress the responses arrive for the client. Scoped to a cgroup, the client's connections
//! are learnt at egress, where a leaving packet carries its socket's cgroup (an arriving one has
//! no socket yet at TC ingress, and TC programs cannot ask a looked-up socket for its cgroup):
//! the egress program records each connection the cgroup opens to the server port, and the
//! ingress program aborts only responses on recorded connections. With --direction egress the
//! responses are aborted as they leave the server, matched by its cgroup like every leaving
//! packet.
//!
//! Programs of their own, attached instead of the classifier, as for DNS answers.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::{classifier, map},
    maps::HashMap,
    programs::TcContext,
};
use chaos_common::{NetRule, OPT_INGRESS, PROTO_TCP};

use super::{
    CHAOS_NET_CFG, PASS, acts, in_cgroup, matches_arriving, matches_leaving,
    parse::{Flow, parse},
};

/// One connection of the cgroup's to the server port, as its packets leave.
#[repr(C)]
pub struct Conn {
    client: [u32; 4],
    server: [u32; 4],
    client_port: u16,
    server_port: u16,
    family: u8,
    _pad: [u8; 3],
}

/// The cgroup's open connections (8,192 at once), forgotten when the client closes or resets
/// one. Every fault's object creates this map as it starts, so it is small and not
/// preallocated: a preallocated LRU map of 65,536 took 3.8 ms to create, a hash map of that
/// size 1.1 ms (its buckets), this one a few microseconds.
#[map]
static CHAOS_HTTP_CONNS: HashMap<Conn, u8> = HashMap::with_max_entries(8_192, BPF_F_NO_PREALLOC);

#[classifier]
pub fn chaos_tc_http_in(ctx: TcContext) -> i32 {
    abort(&ctx, true);
    PASS
}

#[classifier]
pub fn chaos_tc_http_eg(ctx: TcContext) -> i32 {
    if CHAOS_NET_CFG
        .get(0)
        .is_some_and(|r| r.opts & OPT_INGRESS != 0)
    {
        track(&ctx);
    } else {
        abort(&ctx, false);
    }
    PASS
}

/// Records a leaving segment's connection when the cgroup sends it to the server port (the
/// rule's `sport`: the port responses come from); a FIN or RST from the client forgets it.
#[inline(always)]
fn track(ctx: &TcContext) -> Option<()> {
    let rule = CHAOS_NET_CFG.get(0)?;
    let flow = parse(ctx)?;
    if flow.protocol != PROTO_TCP || !rule.sport.contains(flow.dport) || !in_cgroup(ctx, rule) {
        return None;
    }
    let c = Conn {
        client: flow.src,
        server: flow.dst,
        client_port: flow.sport,
        server_port: flow.dport,
        family: flow.family,
        _pad: [0; 3],
    };
    // The flags byte: FIN 0x01, RST 0x04.
    let flags: u8 = ctx.load(flow.l4 as usize + 13).ok()?;
    if flags & 0x05 != 0 {
        let _ = CHAOS_HTTP_CONNS.remove(&c);
    } else if CHAOS_HTTP_CONNS.get_ptr(&c).is_none() {
        let _ = CHAOS_HTTP_CONNS.insert(&c, &1, 0);
    }
    Some(())
}

#[inline(always)]
fn abort(ctx: &TcContext, ingress: bool) -> Option<()> {
    let rule = CHAOS_NET_CFG.get(0)?;
    if rule.rules == 0 {
        return None;
    }
    let flow = parse(ctx)?;
    if flow.protocol != PROTO_TCP {
        return None;
    }
    let matched = if ingress {
        rule.deadline_ns != 0 && matches_arriving(0, rule, &flow)
    } else {
        matches_leaving(ctx, rule, &flow)
    };
    if !matched {
        return None;
    }
    let l4 = flow.l4 as usize;
    let doff: u8 = ctx.load(l4 + 12).ok()?;
    let payload = l4 + ((doff >> 4) as usize) * 4;
    // "HTTP/1.x NNN": the first 12 bytes of a response.
    let head: [u8; 12] = ctx.load(payload).ok()?;
    if &head[..7] != b"HTTP/1." || head[8] != b' ' || !head[9..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    // SAFETY: no preconditions.
    if unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() } >= rule.deadline_ns {
        return None;
    }
    if ingress && !connection_in_cgroup(rule, &flow) {
        return None;
    }
    // The status asked for, as " NNN".
    let code = rule.http_status;
    let new = [
        b' ',
        b'0' + ((code / 100) % 10) as u8,
        b'0' + ((code / 10) % 10) as u8,
        b'0' + (code % 10) as u8,
    ];
    if head[8..] == new {
        return None;
    }
    if !acts(rule, &flow) {
        return None;
    }
    let old = u32::from_ne_bytes([head[8], head[9], head[10], head[11]]);
    let new = u32::from_ne_bytes(new);
    ctx.store(payload + 8, &new, 0).ok()?;
    ctx.l4_csum_replace(l4 + 16, old as u64, new as u64, 4)
        .ok()?;
    Some(())
}

/// Whether the arriving segment is for a connection the cgroup opened (any connection when
/// the rule has no cgroup).
#[inline(always)]
fn connection_in_cgroup(rule: &NetRule, flow: &Flow) -> bool {
    if rule.cgroup_id == 0 {
        return true;
    }
    let c = Conn {
        client: flow.dst,
        server: flow.src,
        client_port: flow.dport,
        server_port: flow.sport,
        family: flow.family,
        _pad: [0; 3],
    };
    CHAOS_HTTP_CONNS.get_ptr(&c).is_some()
}
