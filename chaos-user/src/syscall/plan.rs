//! `SyscallSpec::validate`: the spec looked up on this system (the target's cgroup, the files
//! of `--path`) and encoded, as the plan of one of the two kinds; nothing is attached.

use super::{CrashPlan, Hook, HookPlan, SockPlan, SyscallSpec, encode, paths};
use crate::{controls, error::Result, guards, target::Target};
use chaos_common::syscall::Scope;

/// What validation established, for the plan of either kind.
pub(super) struct Validated<'a> {
    pub entry: &'static super::Entry,
    pub spec: &'a SyscallSpec,
    pub errno: i32,
    pub scope: Scope,
    pub fault_id: u32,
    pub detail: String,
}

pub enum SyscallPlan {
    Sock(SockPlan),
    Hook(HookPlan),
    Crash(CrashPlan),
}

impl SyscallPlan {
    /// The program parts its object is loaded with (`FaultCore::load`).
    pub fn features(&self) -> u32 {
        use crate::fault::call_parts;
        match self {
            Self::Sock(p) => call_parts(&p.rule),
            Self::Hook(p) => call_parts(&p.rule),
            Self::Crash(p) => call_parts(&p.rule),
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Self::Sock(p) => &p.detail,
            Self::Hook(p) => &p.detail,
            Self::Crash(p) => &p.detail,
        }
    }
    /// What `chaos doctor` must probe for this fault.
    pub fn needs(&self) -> crate::support::Needs {
        match self {
            Self::Sock(p) => super::needs(p.entry),
            Self::Hook(p) => super::needs(p.entry),
            Self::Crash(_) => super::support::crash_needs(),
        }
    }

    pub fn name(&self) -> String {
        let name = match self {
            Self::Sock(p) => p.entry.name,
            Self::Hook(p) => p.entry.name,
            Self::Crash(p) => p.call.name,
        };
        format!("syscall {name}")
    }

    /// The `chaos doctor` row saying whether this kernel runs the fault.
    pub fn doctor_row(&self) -> String {
        match self {
            Self::Crash(_) => super::support::CRASH_ROW.into(),
            _ => self.name(),
        }
    }

    /// `--times` and `--after` as the kernel queues hold them.
    pub fn controls(&self) -> &crate::controls::Controls {
        match self {
            Self::Sock(p) => &p.controls,
            Self::Hook(p) => &p.controls,
            Self::Crash(p) => &p.controls,
        }
    }
}

impl SyscallSpec {
    /// The spec looked up on this system (target cgroup, files), nothing attached. Errors: the
    /// spec's own (`check`), a target that does not exist, the blast-radius guards.
    pub fn validate(&self) -> Result<SyscallPlan> {
        if let Some(signal) = &self.signal {
            return self.validate_crash(signal);
        }
        let (entry, errno) = self.check()?;
        let cgroup = self.target.resolve()?;
        guards::check_cgroup(&cgroup, "--cgroup/--pid", self.controls.force)?;
        let scope = encode::scope(self, &cgroup)?;
        let detail = format!(
            "{}fail {} of matching {}() calls in {} with {}",
            self.dry_mark(),
            self.percent,
            entry.name,
            self.who(&cgroup),
            crate::errno::name(errno)
        );
        let v = Validated {
            entry,
            spec: self,
            errno,
            scope,
            fault_id: controls::new_fault_id(),
            detail,
        };
        Ok(match entry.hook {
            Hook::SockAddr { .. } => SyscallPlan::Sock(SockPlan::new(v, cgroup)),
            Hook::Lsm { .. } => SyscallPlan::Hook(HookPlan::new(v, paths::resolve(&self.paths)?)),
        })
    }

    /// `validate` for a crash fault (`--signal`).
    fn validate_crash(&self, signal: &str) -> Result<SyscallPlan> {
        let (call, sig) = self.check_crash(signal)?;
        let cgroup = self.target.resolve()?;
        guards::check_cgroup(&cgroup, "--cgroup/--pid", self.controls.force)?;
        let scope = encode::scope(self, &cgroup)?;
        let after = self
            .controls
            .after
            .map_or(String::new(), |n| format!(" after {n} passed"));
        let detail = format!(
            "{}send {} to {} of processes at matching {}() calls{after} in {}",
            self.dry_mark(),
            crate::signal::name(sig),
            self.percent,
            call.name,
            self.who(&cgroup),
        );
        let keys = paths::resolve(&self.paths)?;
        let rule = encode::crash_rule(call, self, sig, scope, &keys, controls::new_fault_id());
        Ok(SyscallPlan::Crash(CrashPlan::new(self, call, rule, detail)))
    }

    fn dry_mark(&self) -> &'static str {
        if self.controls.dry_run {
            "[dry run] "
        } else {
            ""
        }
    }

    /// The target as the detail line names it, with `--comm`.
    fn who(&self, cgroup: &crate::cgroup::Cgroup) -> String {
        let who = match &self.target {
            Target::Pid(p) => format!("process {p}"),
            Target::Cgroup(_) => cgroup.path.display().to_string(),
        };
        match &self.comm {
            Some(c) => format!("{who} (comm {c})"),
            None => who,
        }
    }
}
