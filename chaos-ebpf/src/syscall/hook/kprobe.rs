//! The last syscall backend: kprobes on the syscall entry points (`__x64_sys_*`), failing the
//! call with bpf_override_return before it runs. Only kernels with CONFIG_BPF_KPROBE_OVERRIDE
//! allow it (no distribution kernel does), and it sees the call before the kernel has looked
//! up any path, so userspace offers `--path` here only for calls on an open descriptor (read,
//! write, mmap), whose file is found through the task's descriptor table.

use aya_ebpf::{
    helpers::{bpf_get_current_task, generated::bpf_override_return},
    macros::kprobe,
    programs::ProbeContext,
};
use chaos_common::syscall::{OP_ACCEPT, OP_LISTEN, OP_MMAP, OP_READ, OP_WRITE, SysRule};

use super::{field, file::file_matches, read, respond, socket::local_port};

/// Offsets in the x86-64 `struct pt_regs` of the six syscall arguments (di, si, dx, r10, r8,
/// r9): an ABI, not a kernel-version detail.
const ARG_REGS: [u64; 6] = [112, 104, 96, 56, 72, 64];

/// Syscall argument `n`: the entry point's only argument is the caller's saved registers.
#[inline(always)]
fn sys_arg(ctx: &ProbeContext, n: usize) -> u64 {
    let regs: u64 = ctx.arg(0).unwrap_or(0);
    read::<u64>(regs.wrapping_add(ARG_REGS[n])).unwrap_or(0)
}

/// The open file of descriptor `fd` in the current task, 0 if there is none.
#[inline(always)]
pub(crate) fn fd_file(r: &SysRule, fd: u64) -> u64 {
    let o = &r.offsets;
    // SAFETY: no preconditions; the result is only read through `read`.
    let task = unsafe { bpf_get_current_task() };
    let Some(fdt) = field(task, o.task_files).and_then(|f| field(f, o.files_fdt)) else {
        return 0;
    };
    let max = read::<u32>(fdt.wrapping_add(o.fdt_max_fds as u64)).unwrap_or(0);
    if fd >= u64::from(max) {
        return 0;
    }
    field(fdt, o.fdt_fd)
        .and_then(|array| read::<u64>(array.wrapping_add(fd * 8)))
        .unwrap_or(0)
}

/// Fails the call with the rule's errno when `respond` says so.
#[inline(always)]
fn fail(ctx: &ProbeContext, retval: i32) -> u32 {
    if retval != 0 {
        // SAFETY: ctx.regs is the probe's register set, which the helper rewrites.
        unsafe { bpf_override_return(ctx.regs, retval as i64 as u64) };
    }
    0
}

/// Calls that take no descriptor (open, unlink, mkdir, rename, truncate, fork): scope, percent
/// and budget only.
#[kprobe]
pub fn chaos_kp_call(ctx: ProbeContext) -> u32 {
    let op = super::CHAOS_SYS_CFG.get(0).map_or(0, |r| r.op);
    fail(&ctx, respond(op, |r| r.n_paths == 0))
}

/// read(fd, ...) and write(fd, ...): filtered by the descriptor's file.
#[inline(always)]
fn on_fd(ctx: &ProbeContext, op: u8) -> u32 {
    let fd = sys_arg(ctx, 0);
    fail(ctx, respond(op, |r| file_matches(r, fd_file(r, fd))))
}

#[kprobe]
pub fn chaos_kp_read(ctx: ProbeContext) -> u32 {
    on_fd(&ctx, OP_READ)
}

#[kprobe]
pub fn chaos_kp_write(ctx: ProbeContext) -> u32 {
    on_fd(&ctx, OP_WRITE)
}

/// mmap(addr, len, prot, flags, fd, off): an anonymous mapping has no file.
#[kprobe]
pub fn chaos_kp_mmap(ctx: ProbeContext) -> u32 {
    const MAP_ANONYMOUS: u64 = 0x20;
    let (flags, fd) = (sys_arg(&ctx, 3), sys_arg(&ctx, 4));
    fail(
        &ctx,
        respond(OP_MMAP, |r| {
            let file = if flags & MAP_ANONYMOUS != 0 {
                0
            } else {
                fd_file(r, fd)
            };
            file_matches(r, file)
        }),
    )
}

/// The `struct socket` behind descriptor `fd`.
#[inline(always)]
fn fd_socket(r: &SysRule, fd: u64) -> u64 {
    field(fd_file(r, fd), r.offsets.file_private).unwrap_or(0)
}

/// listen(fd, ...) and accept(fd, ...): filtered by the socket's local port.
#[inline(always)]
fn on_socket(ctx: &ProbeContext, op: u8) -> u32 {
    let fd = sys_arg(ctx, 0);
    fail(
        ctx,
        respond(op, |r| {
            r.port.is_any() || r.port.contains(local_port(r, fd_socket(r, fd)))
        }),
    )
}

#[kprobe]
pub fn chaos_kp_listen(ctx: ProbeContext) -> u32 {
    on_socket(&ctx, OP_LISTEN)
}

#[kprobe]
pub fn chaos_kp_accept(ctx: ProbeContext) -> u32 {
    on_socket(&ctx, OP_ACCEPT)
}
