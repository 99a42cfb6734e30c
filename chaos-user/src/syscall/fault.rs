//! An attached syscall fault of either kind, as one `Fault`.

use super::{CrashFault, HookFault, SockFault, SyscallPlan};
use crate::{error::Result, session::Fault};

/// An attached syscall fault of either kind.
// Both variants are large (the loaded object); one value per fault, so boxing saves nothing.
#[allow(clippy::large_enum_variant)]
pub enum SyscallFault {
    Sock(SockFault),
    Hook(HookFault),
    Crash(CrashFault),
}

impl SyscallFault {
    pub fn attach(plan: &SyscallPlan) -> Result<Self> {
        Ok(match plan {
            SyscallPlan::Sock(p) => Self::Sock(SockFault::attach(p)?),
            SyscallPlan::Hook(p) => Self::Hook(HookFault::attach(p)?),
            SyscallPlan::Crash(p) => Self::Crash(CrashFault::attach(p)?),
        })
    }

    pub fn persist(self) -> Result<crate::state::Record> {
        match self {
            Self::Sock(f) => f.persist(),
            Self::Hook(f) => f.persist(),
            Self::Crash(f) => f.persist(),
        }
    }

    /// The backend's short name for machine-readable output: sock_addr, lsm, fmod_ret,
    /// kprobe, tracepoint.
    pub fn backend_code(&self) -> &'static str {
        match self {
            Self::Sock(_) => "sock_addr",
            Self::Hook(f) => f.backend().code(),
            Self::Crash(_) => "tracepoint",
        }
    }

    /// How the fault reached the kernel, for the "attached" line.
    pub fn mechanism(&self) -> String {
        match self {
            Self::Sock(_) => "cgroup sock_addr hooks + bpf_set_retval".into(),
            Self::Hook(f) => f.backend().to_string(),
            Self::Crash(f) => format!(
                "bpf_send_signal on tracepoints syscalls/sys_enter_{{{}}}",
                f.tracepoints.join(",")
            ),
        }
    }

    fn inner(&self) -> &dyn Fault {
        match self {
            Self::Sock(f) => f,
            Self::Hook(f) => f,
            Self::Crash(f) => f,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Fault {
        match self {
            Self::Sock(f) => f,
            Self::Hook(f) => f,
            Self::Crash(f) => f,
        }
    }
}

impl Fault for SyscallFault {
    fn counters(&self) -> Result<crate::ebpf::Counters> {
        self.inner().counters()
    }
    fn program_ids(&self) -> Vec<u32> {
        self.inner().program_ids()
    }
    fn dry_run(&self) -> bool {
        self.inner().dry_run()
    }
    fn go_live(&mut self) -> Result<()> {
        self.inner_mut().go_live()
    }
    fn take_events(&mut self) -> Option<crate::events::EventSink> {
        self.inner_mut().take_events()
    }
    fn fault_id(&self) -> u32 {
        self.inner().fault_id()
    }
    fn disarm(&mut self) -> Result<()> {
        self.inner_mut().disarm()
    }
}
