//! Attaching the classifier: a TCX link where the kernel has TCX (fd-owned, gone when chaos
//! exits, even on SIGKILL), else clsact + cls_bpf, which is kernel state chaos must remove.

use crate::{
    error::{Error, Result},
    netns::{self, Netns},
    state::{self, Record, TcEntry},
};
use aya::programs::{
    Link, LinkOrder, SchedClassifier, TcAttachType,
    tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle},
};
use std::path::Path;

use super::Direction;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachMode {
    /// TCX if the kernel has it (>= 6.6), else cls_bpf.
    #[default]
    Auto,
    /// TCX links only.
    Tcx,
    /// clsact qdisc + cls_bpf filter (older kernels).
    ClsBpf,
}

impl AttachMode {
    /// The attach mode's short name in machine-readable output ("attached" lines): tcx,
    /// cls_bpf (auto only before attaching).
    pub fn code(self) -> &'static str {
        match self {
            AttachMode::Auto => "auto",
            AttachMode::Tcx => "tcx",
            AttachMode::ClsBpf => "cls_bpf",
        }
    }
}

/// One classifier attached at one hook. Dropping it detaches, inside the right namespace.
pub struct TcAttachment {
    link: Option<SchedClassifierLink>,
    netns: Option<Netns>,
    iface: String,
    /// Set when chaos added the clsact qdisc and so must remove it (once empty).
    clsact_added: bool,
    pub mode: AttachMode,
}

/// What attaching needs to know besides the program: where, and the fault's record.
pub struct Where<'a> {
    pub iface: &'a str,
    pub netns: Option<&'a Netns>,
    pub hook: Direction,
    pub mode: AttachMode,
    /// cls_bpf filters are written here before they are created.
    pub record: &'a mut Record,
    /// Unique per fault: the filter handle.
    pub handle: u32,
}

fn attach_type(d: Direction) -> TcAttachType {
    match d {
        Direction::Egress => TcAttachType::Egress,
        _ => TcAttachType::Ingress,
    }
}

pub fn attach(prog: &mut SchedClassifier, w: Where<'_>) -> Result<TcAttachment> {
    // Our own handle on the namespace: detaching must happen there too.
    let own_ns = w.netns.map(Netns::try_clone).transpose()?;
    let iface = w.iface.to_string();
    let netns = w.netns;
    let (link, clsact_added, mode) = netns::within(netns, || attach_here(prog, w))??;
    Ok(TcAttachment {
        link: Some(link),
        netns: own_ns,
        iface,
        clsact_added,
        mode,
    })
}

fn attach_here(
    prog: &mut SchedClassifier,
    w: Where<'_>,
) -> Result<(SchedClassifierLink, bool, AttachMode)> {
    let (iface, ty) = (w.iface, attach_type(w.hook));
    if w.mode != AttachMode::ClsBpf {
        let tcx = TcAttachOptions::TcxOrder(LinkOrder::default());
        match prog.attach_with_options(iface, ty, tcx) {
            Ok(id) => {
                let link = prog
                    .take_link(id)
                    .map_err(|e| Error::program("taking TCX link", e))?;
                return Ok((link, false, AttachMode::Tcx));
            }
            Err(e) if w.mode == AttachMode::Tcx => {
                return Err(Error::Unsupported {
                    feature: "TCX links (Linux >= 6.6)",
                    hint: format!("attaching to {iface} failed ({e}); use --tc-attach cls-bpf"),
                });
            }
            Err(e) => tracing::info!("TCX attach failed ({e}); falling back to cls_bpf"),
        }
    }
    // Recorded before anything is created: a crash from here on leaves a record to clean up.
    let (netns_path, netns_ino) = Netns::identity(w.netns);
    w.record.tc.push(TcEntry {
        netns: netns_path,
        netns_ino,
        iface: iface.to_string(),
        ingress: w.hook != Direction::Egress,
        priority: state::TC_PRIORITY,
        handle: w.handle,
        clsact_added: true,
    });
    w.record.save()?;
    let clsact_added = match add_clsact(iface) {
        Ok(added) => added,
        Err(e) => {
            return Err(Error::Unsupported {
                feature: "the clsact qdisc",
                hint: format!("adding it to {iface} failed ({e}); load sch_ingress/sch_clsact"),
            });
        }
    };
    if !clsact_added {
        // Someone's clsact (or one of ours for an earlier filter): a cleanup must keep it.
        w.record.clsact_was_there()?;
    }
    let opts = NlOptions {
        priority: state::TC_PRIORITY,
        handle: TcHandle::from(w.handle),
        classid: None,
    };
    let attached = prog
        .attach_with_options(iface, ty, TcAttachOptions::Netlink(opts))
        .and_then(|id| prog.take_link(id))
        .map_err(|e| Error::program(format!("attaching cls_bpf filter to {iface}"), e));
    match attached {
        Ok(link) => Ok((link, clsact_added, AttachMode::ClsBpf)),
        Err(e) => {
            if clsact_added {
                remove_clsact(iface);
            }
            Err(e)
        }
    }
}

/// Resolves `Auto` to the mode attaching will take, by attaching `prog` with TCX to `spare` (an
/// interface of chaos's own that no packet reaches through that hook) and detaching again.
pub fn resolve_mode(
    prog: &mut SchedClassifier,
    mode: AttachMode,
    spare: &str,
    netns: Option<&Netns>,
) -> Result<AttachMode> {
    if mode != AttachMode::Auto {
        return Ok(mode);
    }
    let tcx = TcAttachOptions::TcxOrder(LinkOrder::default());
    let works = netns::within(netns, || {
        prog.attach_with_options(spare, TcAttachType::Ingress, tcx)
            .and_then(|id| prog.detach(id))
            .is_ok()
    })?;
    Ok(if works {
        AttachMode::Tcx
    } else {
        AttachMode::ClsBpf
    })
}

impl TcAttachment {
    fn detach_now(&mut self) {
        let Some(link) = self.link.take() else { return };
        let (iface, clsact) = (self.iface.clone(), self.clsact_added);
        let done = netns::within(self.netns.as_ref(), move || {
            if let Err(e) = link.detach() {
                tracing::warn!(
                    "detaching the classifier from {iface} failed ({}); it stops acting at the \
                     fault's deadline, and `chaos cleanup` removes what is left",
                    crate::error::chain(&e)
                );
            }
            if clsact {
                remove_clsact(&iface);
            }
        });
        if let Err(e) = done {
            tracing::warn!(
                "detaching the classifier from {} failed ({e}); it stops acting at the fault's \
                 deadline, and `chaos cleanup` removes what is left",
                self.iface
            );
        }
    }
}

impl TcAttachment {
    /// Leaves the classifier attached after chaos exits: a TCX link is pinned at `pin`; a
    /// cls_bpf filter stays by itself (it is in the fault's record).
    pub fn persist(mut self, pin: &Path) -> Result<()> {
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        if self.mode == AttachMode::Tcx {
            crate::background::pin_link(link, "the TCX link", pin)?;
        } else {
            // Dropping an NlLink detaches it; forgetting it leaves the filter in place.
            std::mem::forget(link);
        }
        Ok(())
    }
}

impl Drop for TcAttachment {
    fn drop(&mut self) {
        self.detach_now();
    }
}

/// Adds the clsact qdisc to `iface` (current namespace), marked as chaos's before it is
/// created (state::clsact_mark); whether chaos owns it: added now, or added by another chaos
/// fault still marked (false: it was there before chaos, and stays).
pub(super) fn add_clsact(iface: &str) -> std::result::Result<bool, String> {
    let mark = state::clsact_mark(iface);
    if mark.exists() {
        return match tc::qdisc_add_clsact(iface) {
            Ok(()) => Ok(true),
            Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(true),
            Err(e) => Err(e.to_string()),
        };
    }
    let write = mark
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&mark, iface));
    write.map_err(|e| format!("recording {}: {e}", mark.display()))?;
    let added = match tc::qdisc_add_clsact(iface) {
        Ok(()) => return Ok(true),
        Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e.to_string()),
    };
    // Not ours after all: someone's clsact, or none.
    if let Err(e) = std::fs::remove_file(&mark) {
        tracing::warn!("removing {}: {e}", mark.display());
    }
    added
}

/// Removes the clsact qdisc chaos added, once no filter (ours or anyone's) is left on it.
pub(super) fn remove_clsact(iface: &str) {
    if let Err(e) = state::remove_clsact_if_empty(iface) {
        tracing::warn!("removing clsact from {iface}: {e}");
    }
}
