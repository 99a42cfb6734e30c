//! Syscall faults on LSM hooks. Each program is loaded either as BPF LSM (attached to the hook)
//! or as fmod_ret on the kernel's security_<hook> function: both see the hook's arguments and
//! fail the call by returning -errno. The trampoline stops at the first program that returns
//! non-zero, so an earlier denial always stands and the previous value need not be read
//! (its index differs between the hook and security_<hook> for mmap_file and inode_rename).
//! Where neither loads, kprobes on the syscall entry points (`kprobe` module) share the rule,
//! the scope and the verdict.
//!
//! Kernel structs are read with bpf_probe_read_kernel at offsets userspace looked up in the
//! running kernel's BTF and put in the rule (no CO-RE from rustc).

pub(crate) mod file;
pub(crate) mod kprobe;
mod socket;
mod task;

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated::bpf_get_current_cgroup_id,
    },
    macros::map,
    maps::{Array, PerCpuArray},
    programs::LsmContext,
};
use chaos_common::{EVENT_SYSCALL, STAT_LEN, syscall::SysRule};

use crate::{
    scope::in_scope,
    verdict::{Verdict, decide, emit},
};

#[map]
pub(crate) static CHAOS_SYS_CFG: Array<SysRule> = Array::with_max_entries(1, 0);
#[map]
static CHAOS_SYS_STAT: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_LEN, 0);

/// Reads a `T` at a kernel address; None for NULL or an unreadable address.
#[inline(always)]
pub(crate) fn read<T>(addr: u64) -> Option<T> {
    if addr == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address and fails instead of faulting.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

/// Reads the pointer-sized field at `off` of the struct at `base`.
#[inline(always)]
pub(crate) fn field(base: u64, off: u32) -> Option<u64> {
    read::<u64>(base.wrapping_add(off as u64))
}

/// Argument `n` of the hook (pointers come as addresses; they are only read through `read`).
#[inline(always)]
fn arg(ctx: &LsmContext, n: usize) -> u64 {
    ctx.arg::<u64>(n)
}

/// The common part of every hook: deadline, operation, scope and the hook's own filter
/// (`matches`), then the shared verdict. Returns what the hook returns.
#[inline(always)]
pub(crate) fn respond(op: u8, matches: impl FnOnce(&SysRule) -> bool) -> i32 {
    let Some(rule) = fired(op, EVENT_SYSCALL, matches) else {
        return 0;
    };
    // The verifier wants a provable return range of [-4095, 0] for LSM programs: clamp the
    // value itself (a range check could be compiled into a test on a copy), read volatile so
    // the compiler cannot fold the clamp into anything else.
    // SAFETY: rule points into the map value, valid while the program runs.
    let r = unsafe { core::ptr::read_volatile(&rule.retval) } as i64;
    r.clamp(-4095, 0) as i32
}

/// The rule when this call is to be faulted (counted, rolled, charged, its event emitted as
/// `kind`); None to let it run, also in dry-run mode.
#[inline(always)]
pub(crate) fn fired(
    op: u8,
    kind: u8,
    matches: impl FnOnce(&SysRule) -> bool,
) -> Option<&'static SysRule> {
    let rule = CHAOS_SYS_CFG.get(0)?;
    // Scope before the clock: every call on the node runs this, and a call outside the target
    // then pays one helper (its cgroup), not two.
    if rule.op != op || !in_scope(&rule.scope, true) {
        return None;
    }
    // SAFETY: no preconditions.
    if unsafe { bpf_ktime_get_ns() } >= rule.deadline_ns || !matches(rule) {
        return None;
    }
    let Verdict::Fault { dry_run } = decide(&CHAOS_SYS_STAT, 0, rule.threshold, 0, rule.flags)
    else {
        return None;
    };
    emit(&CHAOS_SYS_STAT, 0, rule.flags, rule.sample, |e| {
        // SAFETY: these helpers only read the current task.
        unsafe {
            e.cgroup_id = bpf_get_current_cgroup_id();
            e.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        }
        e.comm = bpf_get_current_comm().unwrap_or([0; 16]);
        e.fault_id = rule.fault_id;
        e.kind = kind;
        e.action = op;
        e.errno = if kind == EVENT_SYSCALL {
            rule.errno
        } else {
            rule.signal
        };
    });
    (!dry_run).then_some(rule)
}
