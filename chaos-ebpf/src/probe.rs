//! Minimal programs that `chaos doctor` loads (never attaches for long) to learn what the running
//! kernel accepts: BPF LSM, BPF trampolines, kprobes, bpf_override_return and bpf_send_signal;
//! and the empty classifier the benchmark uses as its floor.

use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    helpers::generated::bpf_override_return,
    helpers::generated::bpf_send_signal,
    macros::{classifier, fentry, kprobe, lsm, tracepoint},
    programs::{FEntryContext, LsmContext, ProbeContext, TcContext, TracePointContext},
};

/// A classifier that does nothing: `cargo xtask bench net` measures BPF_PROG_TEST_RUN's own
/// cost per run with it, the floor under every classifier figure.
#[classifier]
pub fn probe_tc_empty(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

#[lsm(hook = "file_open")]
pub fn probe_lsm(_ctx: LsmContext) -> i32 {
    0
}

#[fentry(function = "security_file_open")]
pub fn probe_fentry(_ctx: FEntryContext) -> u32 {
    0
}

#[kprobe]
pub fn probe_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

/// The verifier refuses bpf_override_return unless the kernel has CONFIG_BPF_KPROBE_OVERRIDE.
#[kprobe]
pub fn probe_override(ctx: ProbeContext) -> u32 {
    // SAFETY: the helper only records the override; this program is loaded, never attached.
    unsafe { bpf_override_return(ctx.regs, 0) };
    0
}

/// Crash faults call bpf_send_signal from syscall tracepoints; the verifier refuses the helper
/// where the kernel lacks it. Attached only for the probe, to a syscall the probe never makes.
#[tracepoint]
pub fn probe_send_signal(_ctx: TracePointContext) -> u32 {
    // SAFETY: signal 0 delivers nothing (as kill(pid, 0)).
    unsafe { bpf_send_signal(0) };
    0
}
