//! TCP reset (Toxiproxy's reset_peer): a matching segment becomes an RST in flight. Its
//! sequence number is the one the receiver expects next (in-order traffic), so the receiver
//! accepts the reset at once (RFC 793, RFC 5961's exact-match case) and its application gets
//! ECONNRESET; the payload is left in place, which a reset's receiver ignores. Only the flags
//! word changes, and the TCP checksum with it.

use aya_ebpf::programs::TcContext;
use chaos_common::PROTO_TCP;

/// The flags byte (offset 13 of the TCP header): RST, and ACK.
const RST: u16 = 0x04;
const ACK: u16 = 0x10;

/// `l4`: offset of the TCP header. None (nothing changed) for other protocols or a segment
/// that is already a reset.
#[inline(always)]
pub fn reset(ctx: &TcContext, protocol: u8, l4: usize) -> Option<()> {
    if protocol != PROTO_TCP {
        return None;
    }
    // Bytes 12-13 as the packet holds them: byte 12 (data offset) in the low half, byte 13
    // (flags) in the high half of this little-endian load.
    let old: u16 = ctx.load(l4 + 12).ok()?;
    let flags = old >> 8;
    if flags & RST != 0 {
        return None;
    }
    // ACK stays when it was set, so that the receiver checks the reset like the segment was.
    let new = (old & 0x00ff) | (((flags & ACK) | RST) << 8);
    ctx.store(l4 + 12, &new, 0).ok()?;
    ctx.l4_csum_replace(l4 + 16, old as u64, new as u64, 2)
        .ok()?;
    Some(())
}
