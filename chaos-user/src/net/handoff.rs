//! Ingress delay over cls_bpf: the handoff filter (see chaos-ebpf's `handoff` module). Some
//! kernels (Debian's 6.1) leave a packet that bpf_redirect sends to an ifb unmarked as
//! redirected, and the ifb drops it; mirred marks it. So where the classifier is a cls_bpf
//! filter it only marks the packet, and this second filter, without direct action and with a
//! mirred action, redirects what is marked. aya attaches direct-action filters only, so
//! iproute2's `tc` creates this one from the program, pinned for the moment it takes.
//! It goes in at the classifier's priority just before the classifier: cls_bpf runs the filters
//! of one priority newest first, so the classifier then runs first and this one right after it.

use super::tc::{add_clsact, remove_clsact};
use crate::{
    background,
    error::{Error, Result},
    netns::{self, Netns},
    state::{self, Record, TcEntry},
    tc_cmd::tc,
};
use aya::programs::SchedClassifier;

/// The handoff filter of one fault; deleted on drop (after the classifier).
pub struct HandoffFilter {
    /// Removal enters the recorded namespace by itself.
    entry: Option<TcEntry>,
}

impl HandoffFilter {
    /// Adds the filter on `iface`'s ingress redirecting marked packets to `ifb`. `prog` is the
    /// loaded handoff program; `handle` must differ from the classifier's.
    pub fn create(
        prog: &mut SchedClassifier,
        iface: &str,
        ifb: &str,
        netns: Option<&Netns>,
        record: &mut Record,
        handle: u32,
    ) -> Result<Self> {
        let (netns_path, netns_ino) = Netns::identity(netns);
        let mut entry = TcEntry {
            netns: netns_path,
            netns_ino,
            iface: iface.to_string(),
            ingress: true,
            priority: state::TC_PRIORITY,
            handle,
            clsact_added: true,
        };
        // Written down first: a crash from here on leaves a record to clean up.
        record.tc.push(entry.clone());
        record.save()?;
        let dir = background::pin_dir(record)?;
        let pin = dir.join("handoff");
        prog.pin(&pin).map_err(|e| {
            Error::pin(
                format!("pinning the handoff program at {}", pin.display()),
                e,
            )
        })?;
        let added = netns::within(netns, || {
            let clsact_added =
                add_clsact(iface).map_err(|e| format!("adding the clsact qdisc: {e}"))?;
            let (pref, handle) = (entry.priority.to_string(), format!("{handle:#x}"));
            let pin = pin.to_string_lossy();
            let args = [
                "filter",
                "add",
                "dev",
                iface,
                "ingress",
                "pref",
                &pref,
                "handle",
                &handle,
                "bpf",
                "object-pinned",
                &pin,
                "action",
                "mirred",
                "egress",
                "redirect",
                "dev",
                ifb,
            ];
            match tc(&args) {
                Ok(_) => Ok(clsact_added),
                Err(e) => {
                    if clsact_added {
                        remove_clsact(iface);
                    }
                    Err(e)
                }
            }
        });
        // The filter holds the program now; the pin has done its job.
        let _ = std::fs::remove_file(&pin);
        let _ = std::fs::remove_dir(&dir);
        let clsact_added = added?.map_err(|e| Error::Unsupported {
            feature: "a cls_bpf filter with a mirred action (act_mirred), which delay of \
                      arriving packets needs without TCX",
            hint: format!("`tc filter add ... bpf ... action mirred` on {iface} failed: {e}"),
        })?;
        entry.clsact_added = clsact_added;
        let filter = Self { entry: Some(entry) };
        // If saving fails, the filter is removed on drop.
        if !clsact_added {
            record.clsact_was_there()?;
        }
        Ok(filter)
    }

    /// Leaves the filter in place (a background fault; its record lists it).
    pub fn persist(mut self) {
        self.entry = None;
    }
}

impl Drop for HandoffFilter {
    fn drop(&mut self) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        if let Err(e) = state::remove_tc(&entry) {
            tracing::warn!("removing the handoff filter: {}", crate::error::chain(&e));
        }
    }
}
