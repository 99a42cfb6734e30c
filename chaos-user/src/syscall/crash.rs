//! Crash faults (`chaos syscall NAME --signal SIG`): the process is signalled at the entry of
//! its matching call, by a program on the syscall's entry tracepoints (syscalls/sys_enter_*)
//! calling bpf_send_signal. Tracepoints load on kernels without BPF LSM, trampolines or
//! kprobes (this machine's), so crash faults run wherever tracepoints do.
//!
//! At entry the kernel has not looked up any path yet, so `--path` is matched only for calls on
//! a descriptor (write, read, fsync, fdatasync), against the descriptor's open file. What the
//! call does after the signal is the kernel's: a write with SIGKILL pending copies nothing
//! (generic_perform_write checks fatal_signal_pending first), other calls may complete, and the
//! process never returns from any of them. A caught signal (SIGSEGV with a handler) runs the
//! handler when the call returns.

use super::SyscallSpec;
use crate::{
    background,
    controls::Controls,
    ebpf,
    error::{Error, Result, chain},
    fault::FaultCore,
    state::{Record, RuleKind},
};
use aya::programs::{TracePoint, trace_point::TracePointLinkId};
use chaos_common::{
    maps::{PROG_CRASH_CALL, PROG_CRASH_FD, SYS_CFG, SYS_STATS},
    syscall::*,
};
use std::{path::Path, time::Duration};

/// A call a crash fault can stop at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashCall {
    pub name: &'static str,
    pub op: u8,
    /// The syscalls whose entry tracepoints carry it (the variants of the call).
    pub syscalls: &'static [&'static str],
    /// Its first argument is a descriptor, so `--path` can be matched.
    pub on_fd: bool,
    /// read/write: regular files only unless `--all-files` (as errno faults).
    pub rw: bool,
}

const fn call(name: &'static str, op: u8, syscalls: &'static [&'static str]) -> CrashCall {
    CrashCall {
        name,
        op,
        syscalls,
        on_fd: false,
        rw: false,
    }
}

const fn on_fd(
    name: &'static str,
    op: u8,
    syscalls: &'static [&'static str],
    rw: bool,
) -> CrashCall {
    CrashCall {
        name,
        op,
        syscalls,
        on_fd: true,
        rw,
    }
}

/// Every call `--signal` takes, with the syscalls (x86-64 names) that carry it.
pub const CRASH_CALLS: &[CrashCall] = &[
    on_fd(
        "write",
        OP_WRITE,
        &["write", "pwrite64", "writev", "pwritev", "pwritev2"],
        true,
    ),
    on_fd(
        "read",
        OP_READ,
        &["read", "pread64", "readv", "preadv", "preadv2"],
        true,
    ),
    on_fd("fsync", OP_FSYNC, &["fsync"], false),
    on_fd("fdatasync", OP_FDATASYNC, &["fdatasync"], false),
    call("open", OP_OPEN, &["open", "openat", "openat2", "creat"]),
    call("rename", OP_RENAME, &["rename", "renameat", "renameat2"]),
    call("unlink", OP_UNLINK, &["unlink", "unlinkat", "rmdir"]),
    call("mkdir", OP_MKDIR, &["mkdir", "mkdirat"]),
    call("truncate", OP_TRUNCATE, &["truncate", "ftruncate"]),
    call("mmap", OP_MMAP, &["mmap"]),
    call("connect", OP_CONNECT, &["connect"]),
    call("sendmsg", OP_SENDMSG, &["sendto", "sendmsg", "sendmmsg"]),
    call("bind", OP_BIND, &["bind"]),
    call("listen", OP_LISTEN, &["listen"]),
    call("accept", OP_ACCEPT, &["accept", "accept4"]),
    call("fork", OP_FORK, &["fork", "vfork", "clone", "clone3"]),
];

/// The call named `name` or one of its syscalls (`pwrite64`, `renameat2`).
pub fn find(name: &str) -> Option<&'static CrashCall> {
    CRASH_CALLS
        .iter()
        .find(|c| c.name == name || c.syscalls.contains(&name))
}

/// The names `--signal` takes, for errors and `chaos syscall list`.
pub fn names() -> String {
    CRASH_CALLS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl SyscallSpec {
    /// The call and the signal of a crash fault; errors name the flag (`NAME`, `--signal`,
    /// `--errno` given too, a filter the call cannot use at its entry).
    pub fn check_crash(&self, signal: &str) -> Result<(&'static CrashCall, i32)> {
        let c = find(&self.name).ok_or_else(|| {
            Error::input(
                "NAME",
                format!(
                    "'{}' is not a call --signal can stop at; use one of {}",
                    self.name,
                    names()
                ),
            )
        })?;
        let sig = crate::signal::parse(signal).map_err(|m| Error::input("--signal", m))?;
        if self.errno.is_some() {
            return Err(Error::input(
                "--errno",
                "a crash fault signals the process instead of failing the call; give --signal \
                 or --errno, not both",
            ));
        }
        let refuse = |flag: &'static str, why: String| Err(Error::input(flag, why));
        if self.dst.is_some() || self.dport.is_some() || self.protocol.is_some() {
            return refuse(
                "--dst/--dport/--protocol",
                format!(
                    "crash faults see {}() at its entry, before its address is read; scope it \
                     with --cgroup/--pid and --comm",
                    c.name
                ),
            );
        }
        if self.port.is_some() {
            return refuse("--port", "crash faults do not filter by local port".into());
        }
        if !c.on_fd && !self.paths.is_empty() {
            return refuse(
                "--path",
                format!(
                    "at the entry of {}() the kernel has not looked its path up yet; crash \
                     faults match --path only for calls on a descriptor: write, read, fsync, \
                     fdatasync",
                    c.name
                ),
            );
        }
        if !c.rw && self.all_files {
            return refuse(
                "--all-files",
                format!("{}() crash faults apply to every file already", c.name),
            );
        }
        if self.paths.len() > MAX_PATHS {
            return refuse("--path", format!("at most {MAX_PATHS} paths per fault"));
        }
        crate::units::check_injects(self.percent, "--percent")?;
        crate::guards::check_duration(self.duration, self.controls.force)?;
        Ok((c, sig))
    }
}

#[derive(Debug)]
pub struct CrashPlan {
    pub call: &'static CrashCall,
    /// Offsets are filled from the kernel's BTF when attaching (descriptor calls only).
    pub rule: SysRule,
    pub duration: Duration,
    pub controls: Controls,
    pub detail: String,
}

impl CrashPlan {
    pub(super) fn new(
        spec: &SyscallSpec,
        call: &'static CrashCall,
        rule: SysRule,
        mut detail: String,
    ) -> Self {
        if !spec.paths.is_empty() {
            let p: Vec<_> = spec.paths.iter().map(|p| p.display().to_string()).collect();
            detail.push_str(&format!(" on files under {}", p.join(", ")));
        }
        if rule.file_types == FILES_REGULAR {
            detail.push_str(" (regular files)");
        }
        Self {
            call,
            rule,
            duration: spec.duration,
            controls: spec.controls.clone(),
            detail,
        }
    }

    fn program(&self) -> &'static str {
        if self.call.on_fd {
            PROG_CRASH_FD
        } else {
            PROG_CRASH_CALL
        }
    }
}

pub struct CrashFault {
    pub core: FaultCore<SysRule>,
    prog: &'static str,
    links: Vec<TracePointLinkId>,
    program_ids: Vec<u32>,
    /// The tracepoints attached (sys_enter_NAME), for the "attached" line.
    pub tracepoints: Vec<&'static str>,
    record: Record,
}

/// tracefs, where the syscall tracepoints are listed; mounted if absent (VM guests, minimal
/// hosts), as `mount -t tracefs nodev /sys/kernel/tracing` would.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

fn tracefs() -> std::result::Result<&'static str, String> {
    let listed = |d: &str| Path::new(d).join("events/syscalls").is_dir();
    if let Some(d) = TRACEFS.iter().find(|d| listed(d)) {
        return Ok(d);
    }
    let _ = crate::child::dies_with_parent(&mut std::process::Command::new("mount"))
        .args(["-t", "tracefs", "nodev", TRACEFS[0]])
        .output();
    if listed(TRACEFS[0]) {
        return Ok(TRACEFS[0]);
    }
    Err(format!(
        "no syscall tracepoints in {} (CONFIG_FTRACE_SYSCALLS off, or tracefs cannot be mounted)",
        TRACEFS.join(" or ")
    ))
}

/// The syscalls of `call` that have an entry tracepoint here (`open` is absent on arm64, for
/// instance); at least one.
fn tracepoints(call: &CrashCall) -> std::result::Result<Vec<&'static str>, String> {
    let dir = Path::new(tracefs()?).join("events/syscalls");
    let there: Vec<_> = call
        .syscalls
        .iter()
        .copied()
        .filter(|s| dir.join(format!("sys_enter_{s}")).is_dir())
        .collect();
    if there.is_empty() {
        return Err(format!(
            "none of {} has an entry tracepoint in {}",
            call.syscalls.join(", "),
            dir.display()
        ));
    }
    Ok(there)
}

fn program<'a>(core: &'a mut FaultCore<SysRule>, name: &'static str) -> Result<&'a mut TracePoint> {
    ebpf::program_as(&mut core.ebpf, name, "tracepoint program type")
}

impl CrashFault {
    pub fn attach(plan: &CrashPlan) -> Result<Self> {
        let mut rule = plan.rule;
        if plan.call.on_fd {
            // The program walks the task's descriptor table to the file: only these calls read
            // kernel structs, and only they pay for the kernel's BTF.
            rule.offsets = super::kernel_cache::KernelCache::default().offsets()?;
        }
        let unsupported = |why: String| Error::Unsupported {
            feature: "syscall tracepoints with bpf_send_signal (crash faults)",
            hint: format!(
                "{why}; a kernel with CONFIG_FTRACE_SYSCALLS (every distribution kernel) runs them"
            ),
        };
        let points = tracepoints(plan.call).map_err(unsupported)?;
        let maps = (SYS_CFG, SYS_STATS);
        let parts = crate::fault::call_parts(&rule);
        let mut core = FaultCore::open(rule, &plan.controls, plan.duration, maps, parts)?;
        let mut record = Record::new(
            core.fault_id(),
            &format!("syscall {}", plan.call.name),
            RuleKind::Sys,
            plan.detail.clone(),
            core.deadline_ns(),
        );
        let prog = plan.program();
        let p = program(&mut core, prog)?;
        ebpf::load_once(|| p.load()).map_err(|e| {
            crate::startup::or_interrupted(|| unsupported(format!("load refused: {}", chain(&e))))
        })?;
        let mut links = Vec::new();
        for s in &points {
            match p.attach("syscalls", &format!("sys_enter_{s}")) {
                Ok(id) => links.push(id),
                Err(e) => {
                    // A fault is all of its tracepoints or none.
                    for id in links {
                        let _ = p.detach(id);
                    }
                    return Err(unsupported(format!(
                        "attaching to syscalls/sys_enter_{s} refused: {}",
                        chain(&e)
                    )));
                }
            }
        }
        let program_ids = core
            .ebpf
            .program(prog)
            .and_then(ebpf::program_id)
            .into_iter()
            .collect();
        // The duration counts from now, when every tracepoint is in force.
        record.deadline_mono_ns = core.arm()?;
        crate::startup::check()?;
        record.save()?;
        Ok(Self {
            core,
            prog,
            links,
            program_ids,
            tracepoints: points,
            record,
        })
    }

    pub fn program_ids(&self) -> Vec<u32> {
        self.program_ids.clone()
    }

    /// Leaves the fault in the kernel after chaos exits: links and maps pinned, record saved.
    pub fn persist(mut self) -> Result<Record> {
        let dir = background::adopt(&mut self.record)?;
        let links = std::mem::take(&mut self.links);
        let p = program(&mut self.core, self.prog)?;
        for (i, id) in links.into_iter().enumerate() {
            let link = p
                .take_link(id)
                .map_err(|e| Error::program("taking a tracepoint link", e))?;
            background::pin_link(
                link,
                "a tracepoint link (a kernel attaching tracepoints without BPF links cannot pin \
                 it: run the fault in the foreground)",
                &dir.join(format!("link{i}")),
            )?;
        }
        background::pin_maps(&self.core.ebpf, &dir, SYS_CFG, SYS_STATS)?;
        Ok(self.record.clone())
    }
}

impl Drop for CrashFault {
    fn drop(&mut self) {
        // The links are fd-owned and go with the object, one after the other; closing each
        // waits for RCU grace periods, so they are closed side by side instead.
        let links = std::mem::take(&mut self.links);
        if let Ok(p) = program(&mut self.core, self.prog) {
            let taken: Vec<_> = links
                .into_iter()
                .filter_map(|id| p.take_link(id).ok())
                .collect();
            std::thread::scope(|s| {
                for link in taken {
                    s.spawn(move || drop(link));
                }
            });
        }
        // Only the listing is ours to remove.
        if !self.record.background {
            self.record.delete();
        }
    }
}

crate::fault::delegate_to_core!(CrashFault);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_by_name_or_variant() {
        assert_eq!(find("write").map(|c| c.op), Some(OP_WRITE));
        assert_eq!(find("pwrite64").map(|c| c.name), Some("write"));
        assert_eq!(find("renameat2").map(|c| c.name), Some("rename"));
        assert!(find("fsync").is_some_and(|c| c.on_fd && !c.rw));
        assert!(find("open").is_some_and(|c| !c.on_fd));
        assert!(find("frobnicate").is_none());
        // Every op has a name in events.
        for c in CRASH_CALLS {
            assert_eq!(op_name(c.op), Some(c.name), "{}", c.name);
        }
    }
}
