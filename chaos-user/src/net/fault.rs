//! A packet fault in force: the loaded object, its rule, and one classifier per hook.

use super::{
    NetPlan,
    tc::{self, AttachMode, TcAttachment},
};
use crate::{
    ebpf,
    error::{Error, Result},
    fault::FaultCore,
};
use aya::programs::SchedClassifier;
use chaos_common::{
    NetRule,
    maps::{NET_CFG, NET_STATS, PROG_TC},
};

pub struct NetFault {
    // Field order matters: attachments detach before the object (and its program) is dropped.
    attachments: Vec<TcAttachment>,
    pub core: FaultCore<NetRule>,
    program_id: Option<u32>,
}

impl NetFault {
    /// Loads, configures (with the in-kernel deadline) and attaches. On any error everything
    /// attached so far is detached again by Drop.
    pub fn attach(plan: &NetPlan) -> Result<Self> {
        let mut core =
            FaultCore::load(plan.rule, &plan.controls, plan.duration, NET_CFG, NET_STATS)?;
        let prog: &mut SchedClassifier = core
            .ebpf
            .program_mut(PROG_TC)
            .ok_or(Error::ProgramNotFound(PROG_TC))?
            .try_into()
            .map_err(|e| Error::program("classifier type", e))?;
        prog.load()
            .map_err(|e| Error::program(format!("loading {PROG_TC}"), e))?;
        let mut attachments = Vec::new();
        for &hook in plan.hooks {
            attachments.push(tc::attach(
                prog,
                &plan.iface,
                plan.netns.as_ref(),
                hook,
                plan.attach,
            )?);
        }
        let program_id = core.ebpf.program(PROG_TC).and_then(ebpf::program_id);
        Ok(Self {
            attachments,
            core,
            program_id,
        })
    }

    pub fn program_ids(&self) -> Vec<u32> {
        self.program_id.into_iter().collect()
    }

    /// How the classifier is attached (TCX or cls_bpf).
    pub fn mode(&self) -> AttachMode {
        self.attachments
            .first()
            .map_or(AttachMode::Auto, |a| a.mode)
    }
}

impl Drop for NetFault {
    fn drop(&mut self) {
        // Reverse order: the first cls_bpf attachment may own the clsact qdisc that later ones
        // share, and removing it first would take their filters along.
        while let Some(a) = self.attachments.pop() {
            drop(a);
        }
    }
}
