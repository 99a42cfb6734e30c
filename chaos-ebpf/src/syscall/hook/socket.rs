//! listen(2) and accept(2) faults, filtered by the socket's local port.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use chaos_common::syscall::{OP_ACCEPT, OP_LISTEN, SysRule};

use super::{arg, field, read, respond};

/// The local port of a `struct socket` (host order), 0 if unreadable.
#[inline(always)]
pub(super) fn local_port(r: &SysRule, socket: u64) -> u16 {
    field(socket, r.offsets.socket_sk)
        .and_then(|sk| read::<u16>(sk.wrapping_add(r.offsets.sk_num as u64)))
        .unwrap_or(0)
}

#[lsm(hook = "socket_listen")]
pub fn chaos_listen(ctx: LsmContext) -> i32 {
    let sock = arg(&ctx, 0);
    respond(OP_LISTEN, |r| {
        r.port.is_any() || r.port.contains(local_port(r, sock))
    })
}

#[lsm(hook = "socket_accept")]
pub fn chaos_accept(ctx: LsmContext) -> i32 {
    let sock = arg(&ctx, 0);
    respond(OP_ACCEPT, |r| {
        r.port.is_any() || r.port.contains(local_port(r, sock))
    })
}
