//! Packet parsing for the classifier and the cgroup_skb program: the fields rules match on.

use aya_ebpf::programs::{TcContext, sk_buff::SkBuff};
use chaos_common::{
    PROTO_TCP, PROTO_UDP,
    filter::{FAMILY_V4, FAMILY_V6},
};

const ETH_HLEN: usize = 14;
/// Where the IP header starts in a TC packet (after Ethernet).
pub const L3: usize = ETH_HLEN;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;

/// The fields of a packet that rules match on. `repr(C)` with no implicit padding: rule
/// functions get it by pointer, and the verifier checks every byte behind it is written.
#[repr(C)]
pub struct Flow {
    pub src: [u32; 4],
    pub dst: [u32; 4],
    /// Offset of the L4 header.
    pub l4: u32,
    pub sport: u16,
    pub dport: u16,
    pub family: u8,
    pub protocol: u8,
    pub _pad: u16,
}
const _: () = assert!(core::mem::size_of::<Flow>() == 44);
/// A `T` at `off` in the packet's linear data, read directly (bounds checked for the
/// verifier); None when the headers are not all in the linear part.
#[inline(always)]
fn at<T: Copy>(ctx: &SkBuff, off: usize) -> Option<T> {
    // SAFETY: data and data_end are readable fields of the context (what aya's data() reads).
    let (start, end) = unsafe { ((*ctx.skb).data as usize, (*ctx.skb).data_end as usize) };
    if start + off + core::mem::size_of::<T>() > end {
        return None;
    }
    // SAFETY: checked to lie within [data, data_end) just above.
    Some(unsafe { core::ptr::read_unaligned((start + off) as *const T) })
}

/// Direct packet access (no helper call per field) for the usual case of linear headers,
/// bpf_skb_load_bytes otherwise.
/// (cgroup_skb programs use the helper only: the verifier did not accept the same direct
/// reads there.)
#[inline(always)]
fn field<T: Copy>(ctx: &SkBuff, off: usize, direct: bool) -> Option<T> {
    if direct && let Some(v) = at(ctx, off) {
        return Some(v);
    }
    ctx.load::<T>(off).ok()
}

/// A TC packet: Ethernet, then IP.
#[inline(always)]
pub fn parse(ctx: &TcContext) -> Option<Flow> {
    if let Some(flow) = parse_v4_linear(&ctx.skb) {
        return Some(flow);
    }
    let ethertype = u16::from_be(field::<u16>(&ctx.skb, 12, true)?);
    parse_l3(&ctx.skb, ethertype, ETH_HLEN, true)
}

/// The common case in one bounds check: IPv4 without options, TCP/UDP ports in the linear
/// data. Anything else (IPv6, options, ICMP, short linear part) takes the general path.
#[inline(always)]
fn parse_v4_linear(ctx: &SkBuff) -> Option<Flow> {
    const L3: usize = ETH_HLEN;
    const L4: usize = L3 + 20;
    // SAFETY: data and data_end are readable fields of the context.
    let (start, end) = unsafe { ((*ctx.skb).data as usize, (*ctx.skb).data_end as usize) };
    if start + L4 + 4 > end {
        return None;
    }
    let b = start as *const u8;
    // SAFETY: every read below lies within [data, data + L4 + 4), checked against data_end.
    unsafe {
        let ethertype = u16::from_be(core::ptr::read_unaligned(b.add(12) as *const u16));
        let protocol = *b.add(L3 + 9);
        if ethertype != ETH_P_IP
            || *b.add(L3) != 0x45
            || (protocol != PROTO_TCP && protocol != PROTO_UDP)
        {
            return None;
        }
        let src = core::ptr::read_unaligned(b.add(L3 + 12) as *const u32);
        let dst = core::ptr::read_unaligned(b.add(L3 + 16) as *const u32);
        let ports = u32::from_be(core::ptr::read_unaligned(b.add(L4) as *const u32));
        Some(Flow {
            family: FAMILY_V4,
            protocol,
            src: [src, 0, 0, 0],
            dst: [dst, 0, 0, 0],
            sport: (ports >> 16) as u16,
            dport: ports as u16,
            l4: L4 as u32,
            _pad: 0,
        })
    }
}

/// The IP header at `l3` (of type `ethertype`) and the ports after it.
pub fn parse_l3(ctx: &SkBuff, ethertype: u16, l3: usize, direct: bool) -> Option<Flow> {
    let (family, protocol, src, dst, l4) = match ethertype {
        ETH_P_IP => {
            let vihl: u8 = field(ctx, l3, direct)?;
            let protocol: u8 = field(ctx, l3 + 9, direct)?;
            let src: u32 = field(ctx, l3 + 12, direct)?;
            let dst: u32 = field(ctx, l3 + 16, direct)?;
            let l4 = l3 + ((vihl & 0x0f) as usize) * 4;
            (FAMILY_V4, protocol, [src, 0, 0, 0], [dst, 0, 0, 0], l4)
        }
        ETH_P_IPV6 => {
            // Extension headers are not walked: such packets match on addresses only.
            let protocol: u8 = field(ctx, l3 + 6, direct)?;
            let src: [u32; 4] = field(ctx, l3 + 8, direct)?;
            let dst: [u32; 4] = field(ctx, l3 + 24, direct)?;
            (FAMILY_V6, protocol, src, dst, l3 + 40)
        }
        _ => return None,
    };
    let (sport, dport) = if protocol == PROTO_TCP || protocol == PROTO_UDP {
        let ports = u32::from_be(field::<u32>(ctx, l4, direct)?);
        ((ports >> 16) as u16, ports as u16)
    } else {
        (0, 0)
    };
    Some(Flow {
        family,
        protocol,
        src,
        dst,
        sport,
        dport,
        l4: l4 as u32,
        _pad: 0,
    })
}
