//! Packet corruption: flip one random bit of the L4 payload, and either fix the L4 checksum
//! (the application reads wrong bytes) or leave it wrong and make receivers check it.

use aya_ebpf::{
    bindings::{__sk_buff, BPF_CSUM_LEVEL_RESET, BPF_F_MARK_MANGLED_0, BPF_F_RECOMPUTE_CSUM},
    helpers::{bpf_get_prandom_u32, generated::bpf_csum_level},
    programs::TcContext,
};
use chaos_common::{OPT_KEEP_CSUM, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};

/// `l4`: offset of the L4 header; `protocol`: its IP protocol number.
#[inline(always)]
pub fn corrupt(ctx: &TcContext, opts: u8, protocol: u8, l4: usize) -> Option<()> {
    let (hdr, csum_at, mangled) = match protocol {
        PROTO_TCP => {
            let doff: u8 = ctx.load(l4 + 12).ok()?;
            (((doff >> 4) as usize) * 4, 16, 0)
        }
        // A zero UDP checksum means "none"; the flag keeps a fixed checksum from becoming 0.
        PROTO_UDP => (8, 6, BPF_F_MARK_MANGLED_0 as u64),
        PROTO_ICMP | PROTO_ICMPV6 => (8, 2, 0),
        _ => return None,
    };
    let payload = l4 + hdr;
    let len = ctx.len() as usize;
    // One aligned 16-bit word of the payload (aligned relative to the L4 header, which starts at
    // an even offset), so that the checksum update is a plain word replacement.
    if len < payload + 2 || len > 0xffff {
        return None;
    }
    // SAFETY: no preconditions.
    let r = unsafe { bpf_get_prandom_u32() } as usize;
    let words = (len - payload) / 2;
    // checked_rem: a division the compiler cannot prove safe would pull in a panic path,
    // which the verifier refuses.
    let off = payload + 2 * (r & 0xffff).checked_rem(words)?;
    let old: u16 = ctx.load(off).ok()?;
    let new = old ^ (1u16 << ((r >> 16) & 15));
    let csum = l4 + csum_at;
    if opts & OPT_KEEP_CSUM != 0 {
        ctx.store(off, &new, 0).ok()?;
        ctx.l4_csum_replace(csum, old as u64, new as u64, 2 | mangled)
            .ok()?;
    } else {
        // A checksum-complete skb (a NIC's ingress) gets its sum updated, so the mismatch shows.
        ctx.store(off, &new, BPF_F_RECOMPUTE_CSUM as u64).ok()?;
        let skb: *mut __sk_buff = ctx.skb.skb;
        // "Checksum already verified" (veth, NIC offload) no longer holds: have it verified.
        // SAFETY: the context's skb; the helper only changes its checksum state.
        unsafe { bpf_csum_level(skb, BPF_CSUM_LEVEL_RESET as u64) };
    }
    Some(())
}
