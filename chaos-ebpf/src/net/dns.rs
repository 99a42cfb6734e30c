//! DNS answers (`chaos net dns`): a query for a matching name leaving the target becomes its
//! own answer, with the fault's RCODE, and is turned back to the sender (redirected to the
//! ingress of the interface it was leaving by): the resolver never sees it, other names and
//! other clients are untouched. A query already holds what an answer without records needs
//! (the header and the question), so only the header's flags change; the ends of the packet
//! are swapped, which leaves the IP and UDP/TCP checksums' sums as they were. Over TCP the
//! answer also takes the sequence numbers the client expects (the server's next, and an
//! acknowledgement of the query) and the timestamps swapped.
//!
//! A program of its own, attached instead of the classifier: the name walk is the costliest
//! match chaos has, and no other fault should pay for it in verification.

use aya_ebpf::{
    bindings::{__sk_buff, BPF_F_INGRESS, BPF_F_MARK_MANGLED_0},
    helpers::generated::{bpf_redirect, bpf_skb_load_bytes},
    macros::{classifier, map},
    maps::{LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::TcContext,
};
use chaos_common::{
    PROTO_TCP, PROTO_UDP,
    dns::{FLAG_QR, FLAG_RA, KEEP_FROM_QUERY, MAX_NAMES, NAME_MAX, OPCODE_MASK, lower},
    filter::FAMILY_V4,
};

use super::{
    CHAOS_NET_CFG, PASS, acts, matches_leaving,
    parse::{Flow, L3, parse},
};

/// Patterns (see chaos_common::dns), the value being the RCODE to answer with.
#[map]
static CHAOS_DNS_NAMES: LpmTrie<[u8; NAME_MAX], u8> = LpmTrie::with_max_entries(MAX_NAMES, 0);

/// The query's name as read from the packet, and the key built from it (too large for the
/// stack together).
#[repr(C)]
pub struct Scratch {
    wire: [u8; NAME_MAX],
    key: Key<[u8; NAME_MAX]>,
}
#[map]
static CHAOS_DNS_BUF: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

const ETH_ALEN: usize = 6;

#[classifier]
pub fn chaos_tc_dns(ctx: TcContext) -> i32 {
    answer(&ctx).unwrap_or(PASS)
}

#[inline(always)]
fn answer(ctx: &TcContext) -> Option<i32> {
    let rule = CHAOS_NET_CFG.get(0)?;
    if rule.rules == 0 {
        return None;
    }
    let flow = parse(ctx)?;
    if !matches_leaving(ctx, rule, &flow) {
        return None;
    }
    let l4 = flow.l4 as usize;
    // The DNS message: after the UDP header, or after the TCP header and the length prefix.
    let msg = match flow.protocol {
        PROTO_UDP => l4 + 8,
        PROTO_TCP => {
            let doff: u8 = ctx.load(l4 + 12).ok()?;
            l4 + ((doff >> 4) as usize) * 4 + 2
        }
        _ => return None,
    };
    let flags = u16::from_be(ctx.load::<u16>(msg + 2).ok()?);
    let qdcount = u16::from_be(ctx.load::<u16>(msg + 4).ok()?);
    if flags & (FLAG_QR | OPCODE_MASK) != 0 || qdcount != 1 {
        return None;
    }
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    if unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() } >= rule.deadline_ns {
        return None;
    }
    let rcode = *CHAOS_DNS_NAMES.get(name_key(ctx, msg + 12)?)?;
    if !acts(rule, &flow) {
        return None;
    }
    let new = (flags & KEEP_FROM_QUERY) | FLAG_QR | FLAG_RA | u16::from(rcode & 0x0f);
    turn_back(ctx, &flow, msg, flags, new)
}

/// The trie key of the question's name at `off` (wire format: length-prefixed labels): the
/// name reversed and lower-cased, with a NUL after it. None for a name longer than NAME_MAX,
/// a compressed name (not in queries) or one cut short.
#[inline(always)]
fn name_key(ctx: &TcContext, off: usize) -> Option<&'static Key<[u8; NAME_MAX]>> {
    const M: usize = NAME_MAX - 1;
    let s = CHAOS_DNS_BUF.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch value; programs do not migrate while running.
    let s = unsafe { &mut *s };
    // As much of the name as the packet holds, 1 to NAME_MAX bytes: the mask and the + 1 let
    // the verifier see the length can be neither 0 nor more than the buffer.
    let avail = (ctx.len() as usize).checked_sub(off)?;
    if avail == 0 {
        return None;
    }
    let got = ((avail.min(NAME_MAX) - 1) & M) + 1;
    // SAFETY: the helper copies `got` (<= NAME_MAX) bytes into this CPU's scratch buffer.
    let r = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const _,
            off as u32,
            s.wire.as_mut_ptr().cast(),
            got as u32,
        )
    };
    if r != 0 {
        return None;
    }
    // The end of the name: hop from length byte to length byte.
    let mut end = 0usize;
    for _ in 0..NAME_MAX / 2 {
        let len = s.wire[end & M] as usize;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        end += len + 1;
        if end >= got {
            return None;
        }
    }
    if end < 2 || s.wire[end & M] != 0 {
        return None;
    }
    // The dotted name is wire[1..end], each later length byte read as a dot: n = end - 1
    // bytes, its byte d (wire index d + 1) going to key[n - 1 - d] = key[end - 1 - w].
    let mut next = 0usize;
    for w in 0..NAME_MAX {
        if w >= end {
            break;
        }
        let c = s.wire[w & M];
        let ch = if w == next {
            next = w + c as usize + 1;
            b'.'
        } else {
            lower(c)
        };
        if w > 0 {
            s.key.data[(end - 1 - w) & M] = ch;
        }
    }
    s.key.data[(end - 1) & M] = 0;
    s.key.prefix_len = (NAME_MAX * 8) as u32;
    Some(&s.key)
}

/// The query, now an answer with flags `new` (`old` before), goes back to its sender: the
/// Ethernet, IP and port pairs swapped (sums unchanged), the flags' change folded into the L4
/// checksum, and for TCP the sequence numbers and timestamps of a reply.
#[inline(always)]
fn turn_back(ctx: &TcContext, flow: &Flow, msg: usize, old: u16, new: u16) -> Option<i32> {
    let l4 = flow.l4 as usize;
    let macs: [u8; 2 * ETH_ALEN] = ctx.load(0).ok()?;
    let mut swapped = [0u8; 2 * ETH_ALEN];
    swapped[..ETH_ALEN].copy_from_slice(&macs[ETH_ALEN..]);
    swapped[ETH_ALEN..].copy_from_slice(&macs[..ETH_ALEN]);
    ctx.store(0, &swapped, 0).ok()?;
    if flow.family == FAMILY_V4 {
        ctx.store(L3 + 12, &flow.dst[0], 0).ok()?;
        ctx.store(L3 + 16, &flow.src[0], 0).ok()?;
    } else {
        ctx.store(L3 + 8, &flow.dst, 0).ok()?;
        ctx.store(L3 + 24, &flow.src, 0).ok()?;
    }
    ctx.store(l4, &flow.dport.to_be(), 0).ok()?;
    ctx.store(l4 + 2, &flow.sport.to_be(), 0).ok()?;
    let (old, new) = (old.to_be(), new.to_be());
    ctx.store(msg + 2, &new, 0).ok()?;
    if flow.protocol == PROTO_UDP {
        // An IPv4 datagram sent without a checksum (0) keeps none.
        ctx.l4_csum_replace(
            l4 + 6,
            old as u64,
            new as u64,
            2 | BPF_F_MARK_MANGLED_0 as u64,
        )
        .ok()?;
    } else {
        tcp_reply(ctx, l4, msg)?;
        ctx.l4_csum_replace(l4 + 16, old as u64, new as u64, 2)
            .ok()?;
    }
    let skb: *mut __sk_buff = ctx.skb.skb;
    // SAFETY: ifindex is a readable field of the TC context; the helper checks the device.
    Some(unsafe { bpf_redirect((*skb).ifindex, BPF_F_INGRESS as u64) } as i32)
}

/// The client's segment as the server's reply: its sequence number is the one the client
/// acknowledged, its acknowledgement covers the query (the client sends nothing again), and the
/// timestamps are swapped (TSval the server's last, which the client's PAWS check accepts).
#[inline(always)]
fn tcp_reply(ctx: &TcContext, l4: usize, msg: usize) -> Option<()> {
    let seq: u32 = ctx.load(l4 + 4).ok()?;
    let ack: u32 = ctx.load(l4 + 8).ok()?;
    // The payload: from the length prefix to the end of the segment.
    let len = (ctx.len() as usize).checked_sub(msg - 2)? as u32;
    let acked = (u32::from_be(seq).wrapping_add(len)).to_be();
    ctx.store(l4 + 4, &ack, 0).ok()?;
    ctx.store(l4 + 8, &acked, 0).ok()?;
    // {seq, ack} became {ack, seq + len}: the sum changed as if seq alone had.
    ctx.l4_csum_replace(l4 + 16, seq as u64, acked as u64, 4)
        .ok()?;
    // Linux puts the timestamp option first: NOP, NOP, kind 8, length 10.
    let ts_head: u32 = ctx.load(l4 + 20).ok()?;
    if ts_head == u32::from_ne_bytes([1, 1, 8, 10]) && msg >= l4 + 32 + 2 {
        let ts: [u32; 2] = ctx.load(l4 + 24).ok()?;
        ctx.store(l4 + 24, &[ts[1], ts[0]], 0).ok()?;
    }
    Some(())
}
