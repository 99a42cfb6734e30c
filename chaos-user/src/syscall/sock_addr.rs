//! connect(2), sendmsg(2) and bind(2) faults: cgroup_sock_addr programs (IPv4 and IPv6) on the
//! target cgroup (covering its descendants) return the chosen errno via bpf_set_retval.
//! Links are fd-owned.

use super::{Entry, Hook, Validated};
use crate::{
    background,
    cgroup::Cgroup,
    controls::Controls,
    ebpf,
    error::{Error, Result},
    fault::FaultCore,
    state::{Record, RuleKind},
};
use aya::programs::{CgroupAttachMode, CgroupSockAddr, cgroup_sock_addr::CgroupSockAddrLinkId};
use chaos_common::{
    SockRule,
    maps::{SOCK_CFG, SOCK_STATS},
};
use std::{fs::File, time::Duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SockProtocol {
    Tcp,
    Udp,
}

#[derive(Debug)]
pub struct SockPlan {
    pub entry: &'static Entry,
    pub cgroup: Cgroup,
    pub rule: SockRule,
    pub duration: Duration,
    pub controls: Controls,
    pub detail: String,
}

impl SockPlan {
    pub(super) fn new(v: Validated<'_>, cgroup: Cgroup) -> Self {
        let Validated {
            entry,
            spec,
            errno,
            scope,
            fault_id,
            detail,
        } = v;
        let rule = super::encode::sock_rule(entry, spec, errno, scope, fault_id);
        Self {
            entry,
            cgroup,
            rule,
            duration: spec.duration,
            controls: spec.controls.clone(),
            detail,
        }
    }
}

pub struct SockFault {
    pub core: FaultCore<SockRule>,
    program_ids: Vec<u32>,
    links: Vec<(&'static str, CgroupSockAddrLinkId)>,
    record: Record,
}

impl SockFault {
    pub fn attach(plan: &SockPlan) -> Result<Self> {
        let mut core = FaultCore::load(
            plan.rule,
            &plan.controls,
            plan.duration,
            SOCK_CFG,
            SOCK_STATS,
        )?;
        let mut record = Record::new(
            core.fault_id(),
            &format!("syscall {}", plan.entry.name),
            RuleKind::Sock,
            plan.detail.clone(),
            core.deadline_ns(),
        );
        let mut links = Vec::new();
        let cg = File::open(&plan.cgroup.path)
            .map_err(|e| Error::io(format!("opening {}", plan.cgroup.path.display()), e))?;
        let mut program_ids = Vec::new();
        let Hook::SockAddr { v4, v6 } = plan.entry.hook else {
            unreachable!("a SockPlan is only made for sock_addr entries")
        };
        for name in [v4, v6] {
            let prog: &mut CgroupSockAddr = core
                .ebpf
                .program_mut(name)
                .ok_or(Error::ProgramNotFound(name))?
                .try_into()
                .map_err(|e| Error::program("sock_addr type", e))?;
            ebpf::load_once(|| prog.load())
                .map_err(|e| crate::startup::or_interrupted(|| load_error(name, e)))?;
            // A stop signal while starting: return, and dropping `core` detaches what is.
            crate::startup::check()?;
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
        // The duration counts from now, when the fault is in force.
        record.deadline_mono_ns = core.arm()?;
        crate::startup::check()?;
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
            background::pin_link(link, "a cgroup link", &dir.join(format!("link{i}")))?;
        }
        background::pin_maps(&self.core.ebpf, &dir, SOCK_CFG, SOCK_STATS)?;
        Ok(self.record.clone())
    }

    pub fn program_ids(&self) -> Vec<u32> {
        self.program_ids.clone()
    }
}

impl Drop for SockFault {
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

crate::fault::delegate_to_core!(SockFault);
