//! Crash faults: a tracepoint on the entry of each chosen syscall (syscalls/sys_enter_*) sends
//! the rule's signal to the caller with bpf_send_signal. Tracepoints load where BPF LSM,
//! trampolines and kprobes do not, and a signal needs no return-value override. The scope,
//! `--after`, `--times`, the percentage and events are the errno faults' (`hook::fired`).

use aya_ebpf::{
    helpers::generated::bpf_send_signal, macros::tracepoint, programs::TracePointContext,
};
use chaos_common::{EVENT_CRASH, syscall::SysRule};

use super::hook::{CHAOS_SYS_CFG, file::file_matches, fired, kprobe::fd_file};

/// Where a syscall's first argument sits in its sys_enter record (after the common header and
/// the syscall number, `struct trace_event_raw_sys_enter`): an ABI of the tracepoint.
const ARG0: usize = 16;

#[inline(always)]
fn crash(matches: impl FnOnce(&SysRule) -> bool) -> u32 {
    let op = CHAOS_SYS_CFG.get(0).map_or(0, |r| r.op);
    if let Some(rule) = fired(op, EVENT_CRASH, matches) {
        // SAFETY: the helper signals the current task only; it fails (and nothing happens) for
        // kernel threads and init.
        unsafe { bpf_send_signal(rule.signal) };
    }
    0
}

/// Calls on a descriptor (write, read, fsync, fdatasync): `--path` is matched against the
/// descriptor's open file, as the kprobe backend of errno faults does.
#[tracepoint]
pub fn chaos_crash_fd(ctx: TracePointContext) -> u32 {
    // SAFETY: ARG0 is inside every sys_enter record; the read is checked by the kernel.
    let fd = unsafe { ctx.read_at::<u64>(ARG0) }.unwrap_or(u64::MAX);
    crash(|r| file_matches(r, fd_file(r, fd)))
}

/// Calls that name a path or an address (open, rename, unlink, connect, ...): at entry the
/// kernel has not looked the path up, so only the scope applies.
#[tracepoint]
pub fn chaos_crash_call(_ctx: TracePointContext) -> u32 {
    crash(|r| r.n_paths == 0)
}
