//! Attaching the classifier: a TCX link where the kernel has TCX (fd-owned, gone when chaos
//! exits, even on SIGKILL), else clsact + cls_bpf, which is kernel state chaos must remove.

use crate::{
    error::{Error, Result},
    netns::{self, Netns},
};
use aya::programs::{
    Link, LinkOrder, SchedClassifier, TcAttachType,
    tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions},
};
use std::process::Command;

use super::Direction;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachMode {
    /// TCX if the kernel has it (>= 6.6), else cls_bpf.
    Auto,
    /// TCX links only.
    Tcx,
    /// clsact qdisc + cls_bpf filter (older kernels).
    ClsBpf,
}

/// One classifier attached at one hook. Dropping it detaches, inside the right namespace.
pub struct TcAttachment {
    link: Option<SchedClassifierLink>,
    netns: Option<Netns>,
    iface: String,
    /// Set when chaos added the clsact qdisc and so must remove it.
    clsact_added: bool,
    pub mode: AttachMode,
}

fn attach_type(d: Direction) -> TcAttachType {
    match d {
        Direction::Egress => TcAttachType::Egress,
        _ => TcAttachType::Ingress,
    }
}

pub fn attach(
    prog: &mut SchedClassifier,
    iface: &str,
    netns: Option<&Netns>,
    hook: Direction,
    mode: AttachMode,
) -> Result<TcAttachment> {
    // Our own handle on the namespace: detaching must happen there too.
    let own_ns = netns.map(Netns::try_clone).transpose()?;
    let (link, clsact_added, mode) =
        netns::within(netns, || attach_here(prog, iface, hook, mode))??;
    Ok(TcAttachment {
        link: Some(link),
        netns: own_ns,
        iface: iface.to_string(),
        clsact_added,
        mode,
    })
}

fn attach_here(
    prog: &mut SchedClassifier,
    iface: &str,
    hook: Direction,
    mode: AttachMode,
) -> Result<(SchedClassifierLink, bool, AttachMode)> {
    let ty = attach_type(hook);
    if mode != AttachMode::ClsBpf {
        let tcx = TcAttachOptions::TcxOrder(LinkOrder::default());
        match prog.attach_with_options(iface, ty, tcx) {
            Ok(id) => {
                let link = prog
                    .take_link(id)
                    .map_err(|e| Error::program("taking TCX link", e))?;
                return Ok((link, false, AttachMode::Tcx));
            }
            Err(e) if mode == AttachMode::Tcx => {
                return Err(Error::Unsupported {
                    feature: "TCX links (Linux >= 6.6)",
                    hint: format!("attaching to {iface} failed ({e}); use --tc-attach cls-bpf"),
                });
            }
            Err(e) => tracing::info!("TCX attach failed ({e}); falling back to cls_bpf"),
        }
    }
    let clsact_added = match tc::qdisc_add_clsact(iface) {
        Ok(()) => true,
        Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => false,
        Err(e) => {
            return Err(Error::Unsupported {
                feature: "the clsact qdisc",
                hint: format!("adding it to {iface} failed ({e}); load sch_ingress/sch_clsact"),
            });
        }
    };
    let nl = TcAttachOptions::Netlink(NlOptions::default());
    let attached = prog
        .attach_with_options(iface, ty, nl)
        .and_then(|id| prog.take_link(id))
        .map_err(|e| Error::program(format!("attaching cls_bpf filter to {iface}"), e));
    match attached {
        Ok(link) => Ok((link, clsact_added, AttachMode::ClsBpf)),
        Err(e) => {
            if clsact_added {
                del_clsact(iface);
            }
            Err(e)
        }
    }
}

impl TcAttachment {
    fn detach_now(&mut self) {
        let Some(link) = self.link.take() else { return };
        let (iface, clsact) = (self.iface.clone(), self.clsact_added);
        let done = netns::within(self.netns.as_ref(), move || {
            if let Err(e) = link.detach() {
                tracing::warn!("detaching classifier from {iface}: {e}");
            }
            if clsact {
                del_clsact(&iface);
            }
        });
        if let Err(e) = done {
            tracing::warn!("detaching classifier from {}: {e}", self.iface);
        }
    }
}

impl Drop for TcAttachment {
    fn drop(&mut self) {
        self.detach_now();
    }
}

/// Removes the clsact qdisc chaos added (and with it any filter left on it).
fn del_clsact(iface: &str) {
    // aya has no qdisc-delete call; iproute2 is a prerequisite. The child inherits this thread's
    // network namespace.
    match Command::new("tc")
        .args(["qdisc", "del", "dev", iface, "clsact"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => tracing::warn!(
            "removing clsact from {iface}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => tracing::warn!("removing clsact from {iface}: cannot run tc: {e}"),
    }
}
