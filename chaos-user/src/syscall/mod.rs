//! Syscall faults: a catalogue of syscalls (`catalogue`), each carried by cgroup sock_addr hooks
//! (`sock_addr`) or by an LSM hook loaded as BPF LSM or fmod_ret, whichever the kernel accepts
//! (`hook`). `SyscallSpec::validate` checks the input against the catalogue without touching
//! the kernel; `SyscallFault::attach` loads and attaches.

pub mod catalogue;
mod fmod_ret;
mod hook;
mod input;
pub mod kernel_btf;
pub(crate) mod kprobe;
mod paths;
mod sock_addr;
mod support;

pub use catalogue::{CATALOGUE, Entry, Filters, Hook};
pub use hook::{Backend, HookFault, HookPlan, lsm_active};
pub use input::SyscallFaultSpec;
pub use sock_addr::{SockFault, SockPlan, SockProtocol, set_retval_refused};
pub use support::support;

use crate::{
    cgroup::Cgroup,
    controls::{self, Controls},
    error::{Error, Result},
    guards,
    session::Fault,
    target::Target,
    units::Percent,
};
use chaos_common::{PortRange, syscall::Scope};
use ipnet::IpNet;
use std::{path::PathBuf, time::Duration};

/// What the user asked for, with the defaults applied (`SyscallFaultSpec::into_spec`).
#[derive(Debug, Clone)]
pub struct SyscallSpec {
    /// Catalogue name or alias.
    pub name: String,
    /// Name or number.
    pub errno: String,
    pub dst: Option<IpNet>,
    pub dport: Option<PortRange>,
    pub protocol: Option<SockProtocol>,
    pub paths: Vec<PathBuf>,
    pub all_files: bool,
    pub port: Option<PortRange>,
    pub comm: Option<String>,
    pub percent: Percent,
    pub target: Target,
    pub duration: Duration,
    pub controls: Controls,
}

/// What validation established, for the plan of either kind.
struct Validated<'a> {
    entry: &'static Entry,
    spec: &'a SyscallSpec,
    errno: i32,
    scope: Scope,
    threshold: u64,
    fault_id: u32,
    detail: String,
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
    pub fn name(&self) -> String {
        let entry = match self {
            Self::Sock(p) => p.entry,
            Self::Hook(p) => p.entry,
        };
        format!("syscall {}", entry.name)
    }
}

impl SyscallSpec {
    pub fn validate(&self) -> Result<SyscallPlan> {
        let entry = catalogue::find(&self.name).ok_or_else(|| {
            Error::input(
                "NAME",
                format!(
                    "unknown syscall '{}'; use one of {} (chaos syscall --list)",
                    self.name,
                    catalogue::names()
                ),
            )
        })?;
        let errno = crate::errno::parse(&self.errno, entry.errnos)
            .map_err(|m| Error::input("--errno", format!("{m} (for {})", entry.name)))?;
        self.check_filters(entry)?;
        crate::units::check_injects(self.percent, "--percent")?;
        guards::check_duration(self.duration, self.controls.force)?;
        let cgroup = self.target.resolve()?;
        guards::check_cgroup(&cgroup, "--cgroup/--pid", self.controls.force)?;
        let scope = self.scope(&cgroup)?;
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
            threshold: self.percent.threshold(),
            fault_id: controls::new_fault_id(),
            detail,
        };
        Ok(match entry.hook {
            Hook::SockAddr { .. } => SyscallPlan::Sock(SockPlan::new(v, cgroup)),
            Hook::Lsm { .. } => SyscallPlan::Hook(HookPlan::new(v, paths::resolve(&self.paths)?)),
        })
    }

    /// A filter the syscall has no use for is refused, not ignored.
    fn check_filters(&self, e: &Entry) -> Result<()> {
        let refuse = |flag: &'static str, what: &str| {
            Err(Error::input(
                flag,
                format!(
                    "{} faults cannot filter by {what}; {}",
                    e.name,
                    filters_hint(e)
                ),
            ))
        };
        let address = matches!(e.filters, Filters::Address);
        let path = matches!(e.filters, Filters::Path { .. });
        if !address && self.dst.is_some() {
            return refuse("--dst", "destination address");
        }
        if !address && self.dport.is_some() {
            return refuse("--dport", "destination port");
        }
        if !address && self.protocol.is_some() {
            return refuse("--protocol", "protocol");
        }
        if !path && !self.paths.is_empty() {
            return refuse("--path", "path");
        }
        if !matches!(e.filters, Filters::Path { rw: true }) && self.all_files {
            return refuse("--all-files", "file type");
        }
        if !matches!(e.filters, Filters::LocalPort) && self.port.is_some() {
            return refuse("--port", "local port");
        }
        if e.name == "sendmsg" && self.protocol == Some(SockProtocol::Tcp) {
            return Err(Error::input(
                "--protocol",
                "sendmsg faults apply to UDP datagrams sent with an address; use --protocol udp \
                 or leave it out (fail TCP with connect faults or net drop)",
            ));
        }
        if self.paths.len() > chaos_common::syscall::MAX_PATHS {
            return Err(Error::input(
                "--path",
                format!(
                    "at most {} paths per fault",
                    chaos_common::syscall::MAX_PATHS
                ),
            ));
        }
        Ok(())
    }

    fn scope(&self, cgroup: &Cgroup) -> Result<Scope> {
        let mut s = Scope::default();
        match self.target {
            Target::Pid(p) => s.tgid = p,
            Target::Cgroup(_) => {
                s.cgroup_id = cgroup.id;
                s.cgroup_level = cgroup.level;
            }
        }
        if let Some(c) = &self.comm {
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
}

fn filters_hint(e: &Entry) -> &'static str {
    match e.filters {
        Filters::Address => "it takes --dst, --dport and --protocol",
        Filters::Path { rw: true } => "it takes --path and --all-files",
        Filters::Path { rw: false } => "it takes --path",
        Filters::LocalPort => "it takes --port",
        Filters::None => "it takes only the scope (--cgroup/--pid, --comm)",
    }
}

/// An attached syscall fault of either kind.
// Both variants are large (the loaded object); one value per fault, so boxing saves nothing.
#[allow(clippy::large_enum_variant)]
pub enum SyscallFault {
    Sock(SockFault),
    Hook(HookFault),
}

impl SyscallFault {
    pub fn attach(plan: &SyscallPlan) -> Result<Self> {
        Ok(match plan {
            SyscallPlan::Sock(p) => Self::Sock(SockFault::attach(p)?),
            SyscallPlan::Hook(p) => Self::Hook(HookFault::attach(p)?),
        })
    }

    pub fn persist(self) -> Result<crate::state::Record> {
        match self {
            Self::Sock(f) => f.persist(),
            Self::Hook(f) => f.persist(),
        }
    }

    /// The backend's short name for machine-readable output: sock_addr, lsm, fmod_ret, kprobe.
    pub fn backend_code(&self) -> &'static str {
        match self {
            Self::Sock(_) => "sock_addr",
            Self::Hook(f) => f.backend().code(),
        }
    }

    /// How the fault reached the kernel, for the "attached" line.
    pub fn mechanism(&self) -> String {
        match self {
            Self::Sock(_) => "cgroup sock_addr hooks + bpf_set_retval".into(),
            Self::Hook(f) => f.backend().to_string(),
        }
    }

    fn inner(&self) -> &dyn Fault {
        match self {
            Self::Sock(f) => f,
            Self::Hook(f) => f,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Fault {
        match self {
            Self::Sock(f) => f,
            Self::Hook(f) => f,
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
}
