//! Socket-address faults (cgroup_sock_addr): fail connect(), sendmsg()/sendto() with an address,
//! and bind() with a chosen errno.

use aya_ebpf::{
    bindings::bpf_sock_addr,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        generated::{bpf_get_current_cgroup_id, bpf_set_retval},
    },
    macros::{cgroup_sock_addr, map},
    maps::{Array, PerCpuArray},
    programs::SockAddrContext,
};
use chaos_common::{
    EVENT_CONNECT, EVENT_SYSCALL, PROTO_ANY, STAT_LEN, SockRule,
    filter::{FAMILY_V4, FAMILY_V6},
    syscall::OP_CONNECT,
};

use crate::{
    scope::in_scope,
    verdict::{Verdict, decide, emit},
};
use core::ptr::read_volatile;

#[map]
static CHAOS_SOCK_CFG: Array<SockRule> = Array::with_max_entries(1, 0);
#[map]
static CHAOS_SOCK_STAT: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_LEN, 0);

/// cgroup_sock_addr verdicts.
const ALLOW: i32 = 1;
const REJECT: i32 = 0;

/// The address in the call: the destination (connect, sendmsg) or the local address (bind).
/// The verifier only allows context loads at constant offsets from the unmodified context
/// pointer, so every field is read on its own, volatile, where the program starts.
#[inline(always)]
fn addr4(sa: *mut bpf_sock_addr) -> [u32; 4] {
    // SAFETY: sa is the context pointer, valid for the whole run.
    [unsafe { read_volatile(&raw const (*sa).user_ip4) }, 0, 0, 0]
}

#[inline(always)]
fn addr6(sa: *mut bpf_sock_addr) -> [u32; 4] {
    // SAFETY: as above.
    unsafe {
        [
            read_volatile(&raw const (*sa).user_ip6[0]),
            read_volatile(&raw const (*sa).user_ip6[1]),
            read_volatile(&raw const (*sa).user_ip6[2]),
            read_volatile(&raw const (*sa).user_ip6[3]),
        ]
    }
}

macro_rules! hook {
    ($name:ident, $attach:ident, $addr:ident, $family:expr) => {
        #[cgroup_sock_addr($attach)]
        pub fn $name(ctx: SockAddrContext) -> i32 {
            let sa = ctx.sock_addr;
            respond(sa, $family, $addr(sa))
        }
    };
}
hook!(chaos_connect4, connect4, addr4, FAMILY_V4);
hook!(chaos_connect6, connect6, addr6, FAMILY_V6);
hook!(chaos_sendmsg4, sendmsg4, addr4, FAMILY_V4);
hook!(chaos_sendmsg6, sendmsg6, addr6, FAMILY_V6);
hook!(chaos_bind4, bind4, addr4, FAMILY_V4);
hook!(chaos_bind6, bind6, addr6, FAMILY_V6);

#[inline(always)]
fn respond(sa: *mut bpf_sock_addr, family: u8, addr: [u32; 4]) -> i32 {
    // SAFETY: as above.
    let (port, protocol) = unsafe {
        (
            read_volatile(&raw const (*sa).user_port),
            read_volatile(&raw const (*sa).protocol),
        )
    };
    // user_port holds the port in network byte order in its low 16 bits.
    let port = u16::from_be(port as u16);
    let Some(errno) = try_decide(family, &addr, port, protocol) else {
        return ALLOW;
    };
    // Newer verifiers require a provable errno range [-4095, -1] for bpf_set_retval; the value
    // comes from a map, so bound it here (userspace only writes valid errnos anyway).
    if errno == 0 || errno > 4095 {
        return ALLOW;
    }
    // SAFETY: bpf_set_retval only sets the value the syscall returns once we reject.
    if unsafe { bpf_set_retval(-(errno as i32)) } != 0 {
        // Without a settable return value the caller would get EPERM, not the asked-for errno.
        return ALLOW;
    }
    REJECT
}

#[inline(always)]
fn try_decide(family: u8, addr: &[u32; 4], port: u16, protocol: u32) -> Option<u32> {
    let rule = CHAOS_SOCK_CFG.get(0)?;
    // SAFETY: no preconditions.
    if unsafe { bpf_ktime_get_ns() } >= rule.deadline_ns {
        return None;
    }
    let proto_ok = rule.protocol == PROTO_ANY || rule.protocol as u32 == protocol;
    if !(proto_ok && rule.dst.matches(family, addr) && rule.dport.contains(port)) {
        return None;
    }
    if !in_scope(&rule.scope, false) {
        return None;
    }
    let Verdict::Fault { dry_run } = decide(&CHAOS_SOCK_STAT, 0, rule.threshold, 0, rule.flags)
    else {
        return None;
    };
    emit(&CHAOS_SOCK_STAT, 0, rule.flags, rule.sample, |e| {
        // SAFETY: these helpers only read the current task.
        unsafe {
            e.cgroup_id = bpf_get_current_cgroup_id();
            e.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        }
        e.comm = bpf_get_current_comm().unwrap_or([0; 16]);
        e.fault_id = rule.fault_id;
        e.kind = if rule.op == OP_CONNECT {
            EVENT_CONNECT
        } else {
            EVENT_SYSCALL
        };
        e.action = rule.op;
        e.family = family;
        e.protocol = protocol as u8;
        e.dst = *addr;
        e.dport = port;
        e.errno = rule.errno;
    });
    if dry_run {
        return None;
    }
    Some(rule.errno)
}
