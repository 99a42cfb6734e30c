//! connect(2) faults: cgroup_sock_addr connect4/connect6 programs on the target cgroup (covering
//! its descendants) return the chosen errno via bpf_set_retval. Links are fd-owned.

use crate::{
    background,
    cgroup::Cgroup,
    cidr,
    controls::{self, Controls},
    ebpf,
    error::{Error, Result},
    fault::FaultCore,
    guards,
    state::Record,
    target::Target,
    units::Percent,
};
use aya::programs::{
    CgroupAttachMode, CgroupSockAddr, cgroup_sock_addr::CgroupSockAddrLinkId, links::FdLink,
};
use chaos_common::{
    Cidr, PROTO_ANY, PROTO_TCP, PROTO_UDP, PortRange, SockRule,
    maps::{PROG_CONNECT4, PROG_CONNECT6, SOCK_CFG, SOCK_STATS},
};
use ipnet::IpNet;
use std::{fs::File, time::Duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SockProtocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone)]
pub struct ConnectSpec {
    pub errno: i32,
    pub dst: Option<IpNet>,
    pub dport: Option<PortRange>,
    pub protocol: Option<SockProtocol>,
    pub percent: Percent,
    pub target: Target,
    pub duration: Duration,
    pub controls: Controls,
}

#[derive(Debug)]
pub struct ConnectPlan {
    pub cgroup: Cgroup,
    pub rule: SockRule,
    pub duration: Duration,
    pub controls: Controls,
    pub detail: String,
}

impl ConnectSpec {
    pub fn validate(&self) -> Result<ConnectPlan> {
        guards::check_duration(self.duration, self.controls.force)?;
        let cgroup = self.target.resolve()?;
        guards::check_cgroup(&cgroup, "--cgroup/--pid", self.controls.force)?;
        let rule = SockRule {
            deadline_ns: 0,
            threshold: self.percent.threshold(),
            dst: self.dst.as_ref().map_or(Cidr::ANY, cidr::to_kernel),
            dport: self.dport.unwrap_or(PortRange::ANY),
            errno: self.errno as u32,
            protocol: match self.protocol {
                None => PROTO_ANY,
                Some(SockProtocol::Tcp) => PROTO_TCP,
                Some(SockProtocol::Udp) => PROTO_UDP,
            },
            flags: self.controls.flags(),
            _pad: [0; 2],
            fault_id: controls::new_fault_id(),
            sample: self.controls.events_sample,
        };
        let dry = if self.controls.dry_run {
            "[dry run] "
        } else {
            ""
        };
        let detail = format!(
            "{dry}fail {} of matching connect() calls in {} with {}",
            self.percent,
            cgroup.path.display(),
            crate::errno::name(self.errno)
        );
        Ok(ConnectPlan {
            cgroup,
            rule,
            duration: self.duration,
            controls: self.controls.clone(),
            detail,
        })
    }
}

pub struct ConnectFault {
    pub core: FaultCore<SockRule>,
    program_ids: Vec<u32>,
    links: Vec<(&'static str, CgroupSockAddrLinkId)>,
    record: Record,
}

impl ConnectFault {
    pub fn attach(plan: &ConnectPlan) -> Result<Self> {
        let mut core = FaultCore::load(
            plan.rule,
            &plan.controls,
            plan.duration,
            SOCK_CFG,
            SOCK_STATS,
        )?;
        let record = Record::new(
            core.fault_id(),
            "syscall connect",
            plan.detail.clone(),
            core.deadline_ns(),
        );
        let mut links = Vec::new();
        let cg = File::open(&plan.cgroup.path)
            .map_err(|e| Error::io(format!("opening {}", plan.cgroup.path.display()), e))?;
        let mut program_ids = Vec::new();
        for name in [PROG_CONNECT4, PROG_CONNECT6] {
            let prog: &mut CgroupSockAddr = core
                .ebpf
                .program_mut(name)
                .ok_or(Error::ProgramNotFound(name))?
                .try_into()
                .map_err(|e| Error::program("sock_addr type", e))?;
            prog.load().map_err(|e| load_error(name, e))?;
            // A cgroup *link* always coexists with others (the kernel attaches links as
            // BPF_F_ALLOW_MULTI) and refuses explicit flags, so the mode must be Single (0).
            let link = prog.attach(&cg, CgroupAttachMode::Single).map_err(|e| {
                Error::program(
                    format!("attaching {name} to {}", plan.cgroup.path.display()),
                    e,
                )
            })?;
            links.push((name, link));
            program_ids.extend(core.ebpf.program(name).and_then(ebpf::program_id));
        }
        // Listed while it runs (chaos status, chaos stop); removed by Drop.
        record.save()?;
        Ok(Self {
            core,
            program_ids,
            links,
            record,
        })
    }

    /// Leaves the fault in the kernel after chaos exits: links and maps pinned, record saved.
    pub fn persist(mut self) -> Result<Record> {
        let dir = background::adopt(&mut self.record)?;
        for (i, (name, id)) in std::mem::take(&mut self.links).into_iter().enumerate() {
            let prog: &mut CgroupSockAddr = self
                .core
                .ebpf
                .program_mut(name)
                .ok_or(Error::ProgramNotFound(name))?
                .try_into()
                .map_err(|e| Error::program("sock_addr type", e))?;
            let link = prog
                .take_link(id)
                .map_err(|e| Error::program("taking a cgroup link", e))?;
            let fd: FdLink = link
                .try_into()
                .map_err(|e| Error::io("cgroup link", std::io::Error::other(format!("{e}"))))?;
            let path = dir.join(format!("link{i}"));
            fd.pin(&path).map_err(|e| {
                Error::io(
                    format!("pinning {}", path.display()),
                    std::io::Error::other(format!("{e}")),
                )
            })?;
        }
        background::pin_maps(&self.core.ebpf, &dir, SOCK_CFG, SOCK_STATS)?;
        Ok(self.record.clone())
    }

    pub fn program_ids(&self) -> Vec<u32> {
        self.program_ids.clone()
    }
}

impl Drop for ConnectFault {
    fn drop(&mut self) {
        // The links are fd-owned and go with the object; only the listing is ours to remove.
        if !self.record.background {
            self.record.delete();
        }
    }
}

/// Whether a verifier log (or an error containing it) refuses bpf_set_retval itself. Every log of
/// the connect programs mentions the helper, so only the refusal lines count.
pub fn set_retval_refused(text: &str) -> bool {
    [
        "unknown func bpf_set_retval",
        "cannot use helper bpf_set_retval",
    ]
    .iter()
    .any(|r| text.contains(r))
}

/// A verifier rejection of bpf_set_retval itself means a kernel before 5.18; anything else is
/// reported as it is (every log of this program mentions the helper, so match the refusal).
fn load_error(name: &str, e: aya::programs::ProgramError) -> Error {
    if set_retval_refused(&format!("{e:?}")) {
        return Error::Unsupported {
            feature: "bpf_set_retval in cgroup_sock_addr programs (Linux >= 5.18)",
            hint: "without it a refused connect can only return EPERM; run on Linux 5.18 or later"
                .into(),
        };
    }
    Error::program(format!("loading {name}"), e)
}
