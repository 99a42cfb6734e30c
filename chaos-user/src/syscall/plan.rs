//! `SyscallSpec::validate`: the spec looked up on this system (the target's cgroup, the files
//! of `--path`) and encoded, as the plan of one of the two kinds; nothing is attached.

use super::{Hook, HookPlan, SockPlan, SyscallSpec, encode, paths};
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
}

impl SyscallPlan {
    pub fn detail(&self) -> &str {
        match self {
            Self::Sock(p) => &p.detail,
            Self::Hook(p) => &p.detail,
        }
    }
    /// What `chaos doctor` must probe for this fault.
    pub fn needs(&self) -> crate::support::Needs {
        super::needs(self.entry())
    }

    fn entry(&self) -> &'static super::Entry {
        match self {
            Self::Sock(p) => p.entry,
            Self::Hook(p) => p.entry,
        }
    }

    pub fn name(&self) -> String {
        format!("syscall {}", self.entry().name)
    }
}

impl SyscallSpec {
    /// The spec looked up on this system (target cgroup, files), nothing attached. Errors: the
    /// spec's own (`check`), a target that does not exist, the blast-radius guards.
    pub fn validate(&self) -> Result<SyscallPlan> {
        let (entry, errno) = self.check()?;
        let cgroup = self.target.resolve()?;
        guards::check_cgroup(&cgroup, "--cgroup/--pid", self.controls.force)?;
        let scope = encode::scope(self, &cgroup)?;
        let dry = if self.controls.dry_run {
            "[dry run] "
        } else {
            ""
        };
        let who = match &self.target {
            Target::Pid(p) => format!("process {p}"),
            Target::Cgroup(_) => cgroup.path.display().to_string(),
        };
        let comm = self
            .comm
            .as_ref()
            .map_or(String::new(), |c| format!(" (comm {c})"));
        let detail = format!(
            "{dry}fail {} of matching {}() calls in {who}{comm} with {}",
            self.percent,
            entry.name,
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
}
