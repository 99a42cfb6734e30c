//! What the running kernel supports, learnt by trying (loading and briefly attaching tiny
//! programs in a throwaway network namespace and cgroup), never from version numbers.

pub use crate::support::{
    BPF_LSM, CGROUP_SOCK_ADDR, CLS_BPF, FQ, FaultSupport, Feature, KPROBE, Needs, OVERRIDE_RETURN,
    SEND_SIGNAL, SET_RETVAL, TCX, TRAMPOLINE,
};
use crate::{
    cgroup, ebpf,
    error::{Result, chain},
};
use aya::{
    Btf, Ebpf,
    programs::{
        CgroupAttachMode, CgroupSockAddr, FEntry, KProbe, LinkOrder, Lsm, SchedClassifier,
        TcAttachType, TracePoint,
        tc::{self, NlOptions, TcAttachOptions},
    },
};
use chaos_common::maps::{PROG_CONNECT4, PROG_TC_INGRESS};
use serde::Serialize;
use std::{fs, process::Command};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kernel: String,
    pub features: Vec<Feature>,
    pub faults: Vec<FaultSupport>,
}

/// Probes every feature (`chaos doctor`).
pub fn run() -> Result<Report> {
    run_for(Needs::ALL)
}

/// Probes only what `needs` names (`chaos run` checks its faults without the rest: no LSM,
/// trampoline or kprobe attempts and no kernel BTF for an experiment of network faults).
/// Features not probed are absent from the report, and the faults that need them show as
/// unavailable.
pub fn run_for(needs: Needs) -> Result<Report> {
    let mut features = Vec::new();
    let all = chaos_common::features::ALL;
    let mut obj = ebpf::load(ebpf::Programs::All, None, None, all)?;
    if needs.tc {
        let (tcx, cls) = in_scratch_netns(|| probe_tc(&mut obj));
        features.push(tcx);
        features.push(cls);
    }
    if needs.sock {
        features.extend(probe_cgroup_hooks(&mut obj));
    }
    if needs.hooks {
        let btf = Btf::from_sys_fs();
        features.push(probe_lsm(&mut obj, btf.as_ref().ok()));
        features.push(probe_fentry(&mut obj, btf.as_ref().ok()));
        features.push(probe_kprobe(&mut obj, "probe_kprobe", KPROBE, true));
        features.push(probe_kprobe(
            &mut obj,
            "probe_override",
            OVERRIDE_RETURN,
            false,
        ));
    }
    if needs.fq {
        features.push(in_scratch_netns(probe_fq));
    }
    if needs.crash {
        features.push(probe_send_signal(&mut obj));
    }
    let faults = faults(&features);
    Ok(Report {
        kernel: kernel_release(),
        features,
        faults,
    })
}

fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().into())
}

/// Which fault types this kernel can run, derived from the probed features: each family says
/// for its own faults.
pub fn faults(f: &[Feature]) -> Vec<FaultSupport> {
    let mut rows = crate::net::support(f);
    rows.extend(crate::syscall::support(f));
    rows.extend(crate::stress::support());
    rows
}

/// Runs `f` on a fresh thread in a new, empty network namespace that vanishes with the thread,
/// so probes never touch the host's interfaces.
fn in_scratch_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare only affects this new thread.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                tracing::warn!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
            }
            f()
        })
        .join()
        .expect("probe thread panicked")
    })
}

fn feature(name: &'static str, r: std::result::Result<String, String>) -> Feature {
    match r {
        Ok(detail) => Feature {
            name,
            available: true,
            detail,
        },
        Err(detail) => Feature {
            name,
            available: false,
            detail,
        },
    }
}

fn probe_tc(obj: &mut Ebpf) -> (Feature, Feature) {
    let prog: Result<&mut SchedClassifier, String> = obj
        .program_mut(PROG_TC_INGRESS)
        .ok_or_else(|| "classifier missing from object".to_string())
        .and_then(|p| p.try_into().map_err(|e| chain(&e)));
    let prog = match prog.and_then(|p| {
        p.load()
            .map(|()| p)
            .map_err(|e| format!("load: {}", chain(&e)))
    }) {
        Ok(p) => p,
        Err(e) => return (feature(TCX, Err(e.clone())), feature(CLS_BPF, Err(e))),
    };
    let tcx = prog
        .attach_with_options(
            "lo",
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .map(|id| drop(prog.detach(id)))
        .map(|()| "attached a TCX link to lo in a scratch netns".to_string())
        .map_err(|e| format!("TCX attach refused: {} (Linux < 6.6?)", chain(&e)));
    let cls = tc::qdisc_add_clsact("lo")
        .map_err(|e| format!("adding clsact: {}", chain(&e)))
        .and_then(|()| {
            prog.attach_with_options(
                "lo",
                TcAttachType::Ingress,
                TcAttachOptions::Netlink(NlOptions::default()),
            )
            .map(|id| drop(prog.detach(id)))
            .map_err(|e| format!("cls_bpf attach refused: {}", chain(&e)))
        })
        .map(|()| "attached a cls_bpf filter to lo in a scratch netns".to_string());
    (feature(TCX, tcx), feature(CLS_BPF, cls))
}

fn probe_cgroup_hooks(obj: &mut Ebpf) -> Vec<Feature> {
    let prog: std::result::Result<&mut CgroupSockAddr, String> = obj
        .program_mut(PROG_CONNECT4)
        .ok_or_else(|| "connect4 program missing".to_string())
        .and_then(|p| p.try_into().map_err(|e| chain(&e)));
    let loaded = prog.and_then(|p| p.load().map(|()| p).map_err(|e| chain(&e)));
    let retval = match &loaded {
        Ok(_) => Ok("the verifier accepted a connect4 program calling it".to_string()),
        Err(e) if crate::syscall::set_retval_refused(e) => {
            Err("the verifier refused it (Linux < 5.18)".to_string())
        }
        Err(e) => Err(format!("could not load a program using it: {e}")),
    };
    let attach = loaded.and_then(|prog| {
        let mount = cgroup::v2_mount().map_err(|e| e.to_string())?;
        let dir = mount.join(format!("chaos-doctor-{}", std::process::id()));
        let mut try_attach = |dir: &std::path::Path, mode| {
            fs::File::open(dir)
                .map_err(|e| e.to_string())
                .and_then(|cg| {
                    prog.attach(&cg, mode)
                        .map(|id| drop(prog.detach(id)))
                        .map_err(|e| format!("attach refused: {}", chain(&e)))
                })
        };
        match fs::create_dir(&dir) {
            Ok(()) => {
                let r = try_attach(&dir, CgroupAttachMode::Single)
                    .map(|()| "attached connect4 to a scratch cgroup".to_string());
                if let Err(e) = fs::remove_dir(&dir) {
                    tracing::warn!("removing {}: {e}", dir.display());
                }
                r
            }
            // No scratch cgroup without CAP_DAC_OVERRIDE where the cgroup root is 0555 (the
            // agent's pod): our own cgroup, next to whatever is attached there (a cgroup link
            // is never exclusive). With no rule the program lets every connect through, and it
            // is gone before this returns.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let own = cgroup::Cgroup::of_pid(std::process::id()).map_err(|e| e.to_string())?;
                try_attach(&own.path, CgroupAttachMode::Single)
                    .map(|()| "attached connect4 to chaos's own cgroup (for a moment)".to_string())
            }
            Err(e) => Err(format!("creating {}: {e}", dir.display())),
        }
    });
    vec![
        feature(CGROUP_SOCK_ADDR, attach),
        feature(SET_RETVAL, retval),
    ]
}

fn probe_lsm(obj: &mut Ebpf, btf: Option<&Btf>) -> Feature {
    let r = (|| {
        let btf = btf.ok_or("no kernel BTF at /sys/kernel/btf/vmlinux")?;
        let p: &mut Lsm = obj
            .program_mut("probe_lsm")
            .ok_or("missing")?
            .try_into()
            .map_err(|e| chain(&e))?;
        p.load("file_open", btf)
            .map_err(|e| format!("load refused: {}", chain(&e)))?;
        // The program allows everything; attached for an instant to prove the hook is live.
        let id = p
            .attach()
            .map_err(|e| format!("attach refused: {}", chain(&e)))?;
        drop(p.detach(id));
        crate::syscall::lsm_active().map_err(|e| format!("loaded and attached, but {e}"))?;
        Ok::<_, String>("loaded and attached an lsm/file_open program".into())
    })();
    feature(BPF_LSM, r)
}

fn probe_fentry(obj: &mut Ebpf, btf: Option<&Btf>) -> Feature {
    let r = (|| {
        let btf = btf.ok_or("no kernel BTF at /sys/kernel/btf/vmlinux")?;
        let p: &mut FEntry = obj
            .program_mut("probe_fentry")
            .ok_or("missing")?
            .try_into()
            .map_err(|e| chain(&e))?;
        p.load("security_file_open", btf)
            .map_err(|e| format!("fentry load refused: {}", chain(&e)))?;
        let id = p
            .attach()
            .map_err(|e| format!("fentry attach refused: {}", chain(&e)))?;
        drop(p.detach(id));
        Ok::<_, String>(
            "loaded and attached an fentry program (fmod_ret uses the same trampolines)".into(),
        )
    })();
    feature(TRAMPOLINE, r)
}

fn probe_kprobe(obj: &mut Ebpf, prog: &str, name: &'static str, attach: bool) -> Feature {
    let r = (|| {
        let p: &mut KProbe = obj
            .program_mut(prog)
            .ok_or("missing")?
            .try_into()
            .map_err(|e| chain(&e))?;
        p.load()
            .map_err(|e| format!("load refused: {}", chain(&e)))?;
        if attach {
            let id = p
                // The function the backend probes: security_* functions may start at a static
                // call or jump label, where the kernel refuses kprobes.
                .attach("__x64_sys_write", 0)
                .map_err(|e| format!("attach refused: {} (CONFIG_KPROBES off?)", chain(&e)))?;
            drop(p.detach(id));
            return Ok("attached a kprobe to __x64_sys_write".into());
        }
        // Accepted is not enough: the change must also take effect where chaos probes.
        crate::syscall::kprobe::override_takes_effect(&["__x64_sys_write".into()])?;
        Ok::<_, String>("the verifier accepted a program calling it".into())
    })();
    feature(name, r)
}

/// Loads a tracepoint program calling bpf_send_signal (with signal 0, which delivers nothing)
/// and attaches it for a moment to syscalls/sys_enter_fdatasync.
fn probe_send_signal(obj: &mut Ebpf) -> Feature {
    let r = (|| {
        let p: &mut TracePoint = obj
            .program_mut("probe_send_signal")
            .ok_or("missing")?
            .try_into()
            .map_err(|e| chain(&e))?;
        p.load()
            .map_err(|e| format!("load refused: {}", chain(&e)))?;
        let id = p.attach("syscalls", "sys_enter_fdatasync").map_err(|e| {
            format!(
                "attach refused: {} (CONFIG_FTRACE_SYSCALLS off, or no tracefs?)",
                chain(&e)
            )
        })?;
        drop(p.detach(id));
        Ok::<_, String>(
            "loaded a program calling bpf_send_signal, attached it to syscalls/sys_enter_fdatasync"
                .into(),
        )
    })();
    feature(SEND_SIGNAL, r)
}

fn probe_fq() -> Feature {
    let out = crate::child::dies_with_parent(&mut Command::new("tc"))
        .args(["qdisc", "add", "dev", "lo", "root", "fq"])
        .output();
    let r = match out {
        Ok(o) if o.status.success() => Ok("added an fq qdisc to lo in a scratch netns".into()),
        Ok(o) => Err(format!(
            "tc refused fq: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run tc: {e}")),
    };
    feature(FQ, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An experiment probes what its faults need together, and nothing else.
    #[test]
    fn needs_add_up() {
        let tc = Needs {
            tc: true,
            ..Needs::default()
        };
        let hooks = Needs {
            hooks: true,
            ..Needs::default()
        };
        let both = tc.union(hooks);
        assert!(both.tc && both.hooks && !both.fq && !both.sock);
        assert_eq!(Needs::default().union(Needs::default()), Needs::default());
        assert_eq!(Needs::ALL.union(tc), Needs::ALL);
    }
}
