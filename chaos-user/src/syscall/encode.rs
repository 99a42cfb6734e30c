//! A checked syscall spec as the kernel's rules (`SockRule` for the cgroup sock_addr hooks,
//! `SysRule` for the LSM hooks), with no system access: the lookups (cgroup, files) are
//! passed in. The programs in chaos-ebpf/src/syscall read these bytes.

use super::{Entry, Filters, SockProtocol, SyscallSpec, crash::CrashCall};
use crate::{
    cgroup::Cgroup,
    cidr,
    error::{Error, Result},
    target::Target,
};
use chaos_common::{
    Cidr, PROTO_ANY, PROTO_TCP, PROTO_UDP, PortRange, SockRule,
    syscall::{FILES_ANY, FILES_REGULAR, FileKey, MAX_PATHS, Scope, SysRule},
};

/// Whom a rule applies to: a process (tgid) or a cgroup and its descendants (id and level of
/// `cgroup`), and a command name if `--comm` is given. Errors: a comm that is not 1-15 bytes
/// without NUL (`/proc/PID/comm`'s limit), named by `--comm`.
pub fn scope(spec: &SyscallSpec, cgroup: &Cgroup) -> Result<Scope> {
    let mut s = Scope::default();
    match spec.target {
        Target::Pid(p) => s.tgid = p,
        Target::Cgroup(_) => {
            s.cgroup_id = cgroup.id;
            s.cgroup_level = cgroup.level;
        }
    }
    if let Some(c) = &spec.comm {
        let b = c.as_bytes();
        if b.is_empty() || b.len() > 15 || b.contains(&0) {
            return Err(Error::input(
                "--comm",
                format!(
                    "'{c}' is not a command name; use 1-15 bytes as in /proc/PID/comm \
                     (the kernel truncates longer names)"
                ),
            ));
        }
        s.comm[..b.len()].copy_from_slice(b);
    }
    Ok(s)
}

/// The rule of a connect/sendmsg/bind fault. Its programs are attached to the cgroup itself,
/// which covers its descendants, so the scope's cgroup is cleared. Deadline 0: set at attach.
pub fn sock_rule(
    entry: &Entry,
    spec: &SyscallSpec,
    errno: i32,
    scope: Scope,
    fault_id: u32,
) -> SockRule {
    SockRule {
        deadline_ns: 0,
        threshold: spec.percent.threshold(),
        scope: Scope {
            cgroup_id: 0,
            cgroup_level: 0,
            ..scope
        },
        dst: spec.dst.as_ref().map_or(Cidr::ANY, cidr::to_kernel),
        dport: spec.dport.unwrap_or(PortRange::ANY),
        errno: errno as u32,
        protocol: match spec.protocol {
            None => PROTO_ANY,
            Some(SockProtocol::Tcp) => PROTO_TCP,
            Some(SockProtocol::Udp) => PROTO_UDP,
        },
        flags: spec.controls.flags(),
        op: entry.op,
        _pad: 0,
        fault_id,
        sample: spec.controls.events_sample,
    }
}

/// The rule of an LSM-hook fault on the files `paths` (at most `MAX_PATHS`; the spec's check
/// refuses more). read/write faults hit regular files only unless `all_files`. The BTF offsets
/// and the deadline are filled at attach.
pub fn sys_rule(
    entry: &Entry,
    spec: &SyscallSpec,
    errno: i32,
    scope: Scope,
    paths: &[FileKey],
    fault_id: u32,
) -> SysRule {
    SysRule {
        errno: errno as u32,
        port: spec.port.unwrap_or(PortRange::ANY),
        retval: -errno,
        ..file_rule(
            spec,
            scope,
            paths,
            fault_id,
            entry.op,
            regular_only(entry, spec),
        )
    }
}

/// The rule of a crash fault: the errno fault's scope, percentage, queues and files, with the
/// signal to send instead of an errno (`retval` 0: tracepoints cannot fail the call).
pub fn crash_rule(
    call: &CrashCall,
    spec: &SyscallSpec,
    signal: i32,
    scope: Scope,
    paths: &[FileKey],
    fault_id: u32,
) -> SysRule {
    let regular = call.rw && !spec.all_files;
    SysRule {
        signal: signal as u32,
        ..file_rule(spec, scope, paths, fault_id, call.op, regular)
    }
}

/// What both rules share: scope, percentage, queues, events, the files and their type; no
/// errno, port or signal.
fn file_rule(
    spec: &SyscallSpec,
    scope: Scope,
    paths: &[FileKey],
    fault_id: u32,
    op: u8,
    regular: bool,
) -> SysRule {
    let mut keys = [FileKey::default(); MAX_PATHS];
    keys[..paths.len()].copy_from_slice(paths);
    SysRule {
        deadline_ns: 0,
        threshold: spec.percent.threshold(),
        scope,
        paths: keys,
        offsets: Default::default(),
        errno: 0,
        fault_id,
        sample: spec.controls.events_sample,
        port: PortRange::ANY,
        op,
        flags: spec.controls.flags(),
        n_paths: paths.len() as u8,
        file_types: if regular { FILES_REGULAR } else { FILES_ANY },
        retval: 0,
        signal: 0,
    }
}

/// read/write faults spare pipes, sockets and ttys unless `--all-files`.
pub fn regular_only(entry: &Entry, spec: &SyscallSpec) -> bool {
    matches!(entry.filters, Filters::Path { rw: true }) && !spec.all_files
}

#[cfg(test)]
mod tests;
