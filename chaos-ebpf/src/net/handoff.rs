//! Ingress delay on kernels whose bpf_redirect does not mark a packet as redirected, which the
//! ifb device then drops (Debian's 6.1 does so; 6.12 marks it). Where the classifier is a
//! cls_bpf filter, it marks the packet and passes it on; the next filter, this program without
//! direct action and with a mirred action, matches the mark, and mirred (which does mark the
//! packet as redirected) hands it to the ifb.

use aya_ebpf::{bindings::__sk_buff, macros::classifier, programs::TcContext};
use chaos_common::HANDOFF_MARK;

/// Marks the packet for the handoff filter. cb is the qdisc's scratch area: it lives from one
/// filter to the next and means nothing to the stack afterwards.
#[inline(always)]
pub fn mark(skb: *mut __sk_buff) {
    // SAFETY: cb is a readable and writable field of the TC context.
    unsafe { (*skb).cb[0] = HANDOFF_MARK }
}

/// Classid 1 (run the filter's action) for a marked packet, 0 (no match) for any other.
#[classifier]
pub fn chaos_tc_handoff(ctx: TcContext) -> i32 {
    let skb = ctx.skb.skb;
    // SAFETY: as in `mark`.
    unsafe {
        if (*skb).cb[0] != HANDOFF_MARK {
            return 0;
        }
        (*skb).cb[0] = 0;
    }
    1
}
