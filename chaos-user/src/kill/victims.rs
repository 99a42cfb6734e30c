//! Whom a kill hits: a process (`--pid`), every process of a cgroup and its descendants
//! (`--cgroup`), or a container's init process (Kubernetes targets, as Chaos Mesh's
//! container-kill does), with the guards: never PID 1, chaos itself or its parent, nor a cgroup
//! holding them, unless `--force`.

use crate::{
    cgroup::Cgroup,
    error::{Error, Result},
    guards,
    k8s::Resolved,
    target::Target,
};
use std::{fs, path::Path};

/// One process to signal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Victim {
    pub pid: u32,
    /// As in /proc/PID/comm.
    pub comm: String,
    /// `namespace/pod/container`, the cgroup path, or `process PID`.
    pub target: String,
}

/// The processes of a `--cgroup` or `--pid` target, now. Errors (`Error::Input`) for PID 1,
/// chaos itself or its parent, and for a cgroup holding them (the blast-radius guards), unless
/// `force`.
pub fn of_target(t: &Target, force: bool) -> Result<Vec<Victim>> {
    match t {
        Target::Pid(pid) => {
            check_pid(*pid, "--pid", force)?;
            let comm = comm(*pid).ok_or_else(|| {
                Error::input(
                    "--pid",
                    format!("no process {pid}; give a running process's PID"),
                )
            })?;
            Ok(vec![Victim {
                pid: *pid,
                comm,
                target: format!("process {pid}"),
            }])
        }
        Target::Cgroup(_) => {
            let cg = t.resolve()?;
            guards::check_cgroup(&cg, "--cgroup", force)?;
            let label = cg.path.display().to_string();
            let mut out = Vec::new();
            for pid in procs(&cg)? {
                // Whatever the path looked like, never PID 1, chaos or its parent.
                check_pid(pid, "--cgroup", force)?;
                if let Some(comm) = comm(pid) {
                    out.push(Victim {
                        pid,
                        comm,
                        target: label.clone(),
                    });
                }
            }
            Ok(out)
        }
    }
}

/// A round's victims, each with the container it is the init process of: a `Local` target's
/// processes now, or the init processes of the containers `mode` chooses now (anew each round).
pub fn chosen(target: &super::KillTarget, force: bool) -> Result<Vec<(Victim, Option<Resolved>)>> {
    match target {
        super::KillTarget::Local(t) => Ok(of_target(t, force)?
            .into_iter()
            .map(|v| (v, None))
            .collect()),
        super::KillTarget::Pods(q) => {
            let all = q.resolve_blocking()?;
            q.mode
                .pick(all, crate::k8s::clock_seed())
                .into_iter()
                .map(|r| Ok((of_container(&r, force)?, Some(r))))
                .collect()
        }
    }
}

/// A container's init process; its cgroup passes the same guards.
pub fn of_container(r: &Resolved, force: bool) -> Result<Victim> {
    let cg = Cgroup::resolve(&r.cgroup)?;
    guards::check_cgroup(&cg, "--pod", force)?;
    check_pid(r.pid, "--pod", force)?;
    Ok(Victim {
        pid: r.pid,
        comm: comm(r.pid).unwrap_or_default(),
        target: r.label(),
    })
}

fn check_pid(pid: u32, flag: &'static str, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let own = std::process::id();
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() } as u32;
    let what = match pid {
        1 => "PID 1 (init: the whole node or container goes with it)",
        p if p == own => "chaos itself",
        p if p == parent => "the shell or program that started chaos",
        _ => return Ok(()),
    };
    Err(Error::input(
        flag,
        format!("refusing to kill {what}; pass --force if you mean it"),
    ))
}

/// Every pid in the cgroup and below it.
fn procs(cg: &Cgroup) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    walk(&cg.path, &mut out).map_err(|e| Error::io(format!("reading {}", cg.path.display()), e))?;
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<u32>) -> std::io::Result<()> {
    let procs = fs::read_to_string(dir.join("cgroup.procs"))?;
    out.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    for e in fs::read_dir(dir)?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), out)?;
        }
    }
    Ok(())
}

fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Sends `sig` through a pidfd, so that a pid reused between looking and killing is not hit:
/// the pidfd names the process that was looked at (pidfd_open + pidfd_send_signal, Linux 5.3).
/// `Ok(false)`: the process had already exited.
pub fn signal(v: &Victim, sig: i32) -> Result<bool> {
    // SAFETY: plain syscalls with integer arguments; the fd is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, v.pid as libc::c_int, 0) } as i32;
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(false);
        }
        return Err(Error::io(
            format!("opening process {} ({})", v.pid, v.comm),
            e,
        ));
    }
    // SAFETY: as above.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    match r {
        0.. => Ok(true),
        _ if err.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        _ => Err(Error::io(
            format!("signalling process {} ({})", v.pid, v.comm),
            err,
        )),
    }
}
