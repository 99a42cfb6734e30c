//! Syscall faults on LSM hooks (open, read, write, unlink, mkdir, rename, truncate, mmap, fork,
//! listen, accept). The backend is chosen by trying, in order: BPF LSM on the hook, then fmod_ret
//! on security_<hook> (both through `trampoline`), then kprobes. Every link is fd-owned; the
//! scope (cgroup with descendants, process, comm) is checked in the program because these hooks
//! are global.

use super::{
    Entry, Hook, Validated,
    kernel_cache::KernelCache,
    kprobe,
    trampoline::{self, Kind, Trampoline},
};
use crate::{
    background,
    controls::Controls,
    error::{Error, Result, chain},
    fault::FaultCore,
    state::{Record, RuleKind},
};
use chaos_common::{
    maps::{SYS_CFG, SYS_STATS},
    syscall::{FileKey, SysRule},
};
use std::time::Duration;

#[derive(Debug)]
pub struct HookPlan {
    pub entry: &'static Entry,
    /// Offsets are filled from the kernel's BTF (`KernelCache`) when attaching.
    pub rule: SysRule,
    pub duration: Duration,
    pub controls: Controls,
    pub detail: String,
}

impl HookPlan {
    pub(super) fn new(v: Validated<'_>, paths: Vec<FileKey>) -> Self {
        let Validated {
            entry,
            spec,
            errno,
            scope,
            fault_id,
            detail,
        } = v;
        let rule = super::encode::sys_rule(entry, spec, errno, scope, &paths, fault_id);
        let mut detail = detail;
        if !spec.paths.is_empty() {
            let p: Vec<_> = spec.paths.iter().map(|p| p.display().to_string()).collect();
            detail.push_str(&format!(" under {}", p.join(", ")));
        }
        if super::encode::regular_only(entry, spec) {
            detail.push_str(" (regular files)");
        }
        Self {
            entry,
            rule,
            duration: spec.duration,
            controls: spec.controls.clone(),
            detail,
        }
    }

    fn hook(&self) -> (&'static str, &'static str) {
        match self.entry.hook {
            Hook::Lsm { hook, prog, .. } => (hook, prog),
            Hook::SockAddr { .. } => unreachable!("a HookPlan is only made for LSM entries"),
        }
    }
}

/// How a hook fault reached the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Lsm,
    FModRet,
    Kprobe,
}

impl Backend {
    /// The backend's short name in machine-readable output ("attached" lines): lsm, fmod_ret,
    /// kprobe.
    pub fn code(self) -> &'static str {
        match self {
            Backend::Lsm => "lsm",
            Backend::FModRet => "fmod_ret",
            Backend::Kprobe => "kprobe",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Lsm => "BPF LSM",
            Backend::FModRet => "fmod_ret on security_*",
            Backend::Kprobe => "kprobe + bpf_override_return on the syscall entry",
        })
    }
}

enum Link {
    /// BPF LSM or fmod_ret.
    Trampoline(Trampoline),
    Kprobe(kprobe::Kprobes),
}

pub struct HookFault {
    pub core: FaultCore<SysRule>,
    link: Option<Link>,
    program_ids: Vec<u32>,
    record: Record,
}

const LSM_LIST: &str = "/sys/kernel/security/lsm";

/// Whether the BPF LSM is among the kernel's active LSMs: compiled in is not enough, an LSM
/// program attaches but never runs unless `bpf` is in the list. securityfs is mounted if needed.
pub fn lsm_active() -> std::result::Result<(), String> {
    if !std::path::Path::new(LSM_LIST).exists() {
        let _ = crate::child::dies_with_parent(&mut std::process::Command::new("mount"))
            .args(["-t", "securityfs", "securityfs", "/sys/kernel/security"])
            // Its complaint would be noise: the read below says what is missing.
            .output();
    }
    let list = std::fs::read_to_string(LSM_LIST)
        .map_err(|e| format!("cannot read {LSM_LIST} ({e}) to learn whether BPF LSM is active"))?;
    if list.trim().split(',').any(|m| m == "bpf") {
        Ok(())
    } else {
        Err(format!(
            "'bpf' is not among the active LSMs ({}); boot with lsm={},bpf",
            list.trim(),
            list.trim()
        ))
    }
}

impl HookFault {
    pub fn attach(plan: &HookPlan) -> Result<Self> {
        let (hook, prog) = plan.hook();
        let mut rule = plan.rule;
        let mut kernel = KernelCache::default();
        rule.offsets = kernel.offsets()?;
        let mut core = FaultCore::load(rule, &plan.controls, plan.duration, SYS_CFG, SYS_STATS)?;
        let mut record = Record::new(
            core.fault_id(),
            &format!("syscall {}", plan.entry.name),
            RuleKind::Sys,
            plan.detail.clone(),
            core.deadline_ns(),
        );
        let mut on = |kind, func: &str| {
            kernel
                .func_id(func)
                .map_err(|e| chain(&e))
                .and_then(|id| trampoline::attach(|m| core.map_fd(m), prog, kind, id))
        };
        let lsm = lsm_active().and_then(|()| on(Kind::Lsm, &format!("bpf_lsm_{hook}")));
        let (link, program_ids) = match lsm {
            Ok(t) => {
                let id = t.program_id;
                (Link::Trampoline(t), vec![id])
            }
            Err(lsm_why) => {
                // A stop signal cut the load short: no fallback, nothing is attached.
                crate::startup::check()?;
                tracing::info!("BPF LSM not usable for {hook}: {lsm_why}; trying fmod_ret");
                let security_fn = format!("security_{hook}");
                match on(Kind::FModRet, &security_fn) {
                    Ok(f) => {
                        let id = f.program_id;
                        (Link::Trampoline(f), vec![id])
                    }
                    Err(fmod_why) => {
                        crate::startup::check()?;
                        tracing::info!(
                            "fmod_ret not usable for {hook}: {fmod_why}; trying kprobes"
                        );
                        let with_paths = plan.rule.n_paths > 0;
                        match kprobe::attach(&mut core, plan.entry, with_paths) {
                            Ok(k) => {
                                let ids = k.program_id.into_iter().collect();
                                (Link::Kprobe(k), ids)
                            }
                            Err(kprobe_why) => {
                                crate::startup::check()?;
                                return Err(Error::Unsupported {
                                    feature: "BPF LSM, fmod_ret (BPF trampolines) or kprobe + \
                                              bpf_override_return for file and process \
                                              syscall faults",
                                    hint: format!(
                                        "BPF LSM: {lsm_why}; fmod_ret on {security_fn}: \
                                         {fmod_why}; kprobe: {kprobe_why}. On this kernel \
                                         connect, sendmsg and bind faults work (cgroup hooks); \
                                         for {} use a kernel with BPF LSM active \
                                         (lsm=...,bpf, the default on Debian's 6.1, 6.12 and \
                                         7.3 kernels), with BPF trampolines allowed, or with \
                                         CONFIG_BPF_KPROBE_OVERRIDE",
                                        plan.entry.name
                                    ),
                                });
                            }
                        }
                    }
                }
            }
        };
        // The duration counts from now, when the fault is in force (a first start on a kernel
        // parses its BTF, seconds on a slow machine).
        record.deadline_mono_ns = core.arm()?;
        crate::startup::check()?;
        record.save()?;
        Ok(Self {
            core,
            link: Some(link),
            program_ids,
            record,
        })
    }

    pub fn backend(&self) -> Backend {
        match self.link {
            Some(Link::Trampoline(Trampoline {
                kind: Kind::FModRet,
                ..
            })) => Backend::FModRet,
            Some(Link::Kprobe(_)) => Backend::Kprobe,
            _ => Backend::Lsm,
        }
    }

    pub fn program_ids(&self) -> Vec<u32> {
        self.program_ids.clone()
    }

    /// Leaves the fault in the kernel after chaos exits: link and maps pinned, record saved.
    pub fn persist(mut self) -> Result<Record> {
        let dir = background::adopt(&mut self.record)?;
        let path = dir.join("link0");
        let what = format!("pinning {}", path.display());
        match self.link.take() {
            Some(Link::Trampoline(t)) => t.pin(&path).map_err(|e| Error::io(what, e))?,
            Some(Link::Kprobe(k)) => k.pin(&mut self.core, &dir)?,
            None => {}
        }
        background::pin_maps(&self.core.ebpf, &dir, SYS_CFG, SYS_STATS)?;
        Ok(self.record.clone())
    }
}

impl Drop for HookFault {
    fn drop(&mut self) {
        // The links are fd-owned and go with the object; only the listing is ours to remove.
        if !self.record.background {
            self.record.delete();
        }
    }
}

crate::fault::delegate_to_core!(HookFault);
