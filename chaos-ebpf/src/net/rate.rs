//! Bandwidth limit by Earliest Departure Time (the model is Cilium's edt.h): each matching
//! packet departs one wire time after the previous one; packets due further ahead than the
//! horizon are dropped instead of queueing without end. fq releases them on time; no
//! tbf/netem queue limit is involved.

use aya_ebpf::{
    bindings::{__sk_buff, TC_ACT_SHOT},
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::Array,
    programs::TcContext,
};
use chaos_common::{MAX_RULES, NetRule};

use crate::net::depart_via_ifb;

/// Departure time of the last paced packet per rule slot (CLOCK_MONOTONIC ns). Shared by all
/// CPUs: updated without atomics, as Cilium does; a lost race shifts one packet by one wire time.
#[map]
static CHAOS_RATE_LAST: Array<u64> = Array::with_max_entries(MAX_RULES, 0);

/// Some(TC_ACT_SHOT) to drop, None to let the packet go (with a departure time set). With
/// `ifb` (arriving packets) a packet that must wait is redirected to the rule's ifb device.
#[inline(always)]
pub fn pace(ctx: &TcContext, slot: u32, rule: &NetRule, ifb: bool) -> Option<i32> {
    let last = CHAOS_RATE_LAST.get_ptr_mut(slot)?;
    let skb: *mut __sk_buff = ctx.skb.skb;
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let wire = (ctx.len() as u64 * rule.ns_per_byte_q16) >> 16;
    // SAFETY: tstamp is a field of the TC context; `last` points into the map value.
    unsafe {
        // An arriving packet's tstamp is its receive time, not a departure.
        let t = if !ifb && (*skb).tstamp > now {
            (*skb).tstamp
        } else {
            now
        };
        let next = *last + wire;
        if next <= t {
            *last = t;
            return None;
        }
        if next - now >= rule.horizon_ns {
            return Some(TC_ACT_SHOT);
        }
        *last = next;
        if ifb {
            return depart_via_ifb(skb, next, rule);
        }
        (*skb).tstamp = next;
    }
    None
}
