//! The fq qdisc that delay needs: EDT departure times are only honoured by fq. chaos installs
//! it when the egress root qdisc is the kernel's default (recorded first, so a crash leaves a
//! record), and restores the default afterwards. A configured root qdisc is never replaced.
//! Several delay faults on one interface share the fq chaos installed: each lists it in its
//! record, and the last one in force restores the default (state::fq_in_use).

use crate::{
    error::{Error, Result},
    netns::{self, Netns},
    state::{self, QdiscEntry, Record},
    tc_cmd::tc,
};

/// The root qdisc's kind and handle, e.g. ("noqueue", "0:"), and the parents of mq's children.
fn root_of(iface: &str) -> std::result::Result<(String, String, Vec<String>), String> {
    let text = tc(&["qdisc", "show", "dev", iface])?;
    let mut root = None;
    let mut children = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "qdisc KIND HANDLE root ..." or "qdisc KIND HANDLE parent P ..."
        match (f.get(1), f.get(2), f.get(3), f.get(4)) {
            (Some(kind), Some(handle), Some(&"root"), _) => {
                root = Some((kind.to_string(), handle.to_string()))
            }
            (Some(_), Some(_), Some(&"parent"), Some(p)) => children.push(p.to_string()),
            _ => {}
        }
    }
    let (kind, handle) = root.unwrap_or_else(|| ("noqueue".into(), "0:".into()));
    Ok((kind, handle, children))
}

/// Installs fq on `iface` unless it is there already. Returns what to restore, if anything.
pub fn ensure_fq(
    iface: &str,
    netns: Option<&Netns>,
    record: &mut Record,
) -> Result<Option<FqGuard>> {
    let unsupported = |why: String| Error::Unsupported {
        feature: "the fq qdisc (sch_fq), which delay needs to honour departure times",
        hint: format!(
            "{why}; load sch_fq or run on a kernel that has it (Debian's do: see `chaos doctor`)"
        ),
    };
    let (netns_path, netns_ino) = Netns::identity(netns);
    let entry = QdiscEntry {
        netns: netns_path,
        netns_ino,
        iface: iface.to_string(),
    };
    let lock = state::qdisc_lock()?;
    let (kind, handle, children) =
        netns::within(netns, || root_of(iface))?.map_err(|e| Error::tool("reading qdiscs", e))?;
    if kind == "fq" || (kind == "mq" && !children.is_empty() && fq_children(iface, netns)?) {
        if !state::fq_in_use(&entry, &record.id) {
            return Ok(None); // the operator's fq: used as it is, never removed
        }
        // Installed by another chaos fault still in force: owned together from now on.
        record.qdiscs.push(entry.clone());
        record.save()?;
        return Ok(Some(FqGuard {
            entry,
            owner: record.id.clone(),
            netns: netns.map(Netns::try_clone).transpose()?,
        }));
    }
    if handle != "0:" {
        return Err(Error::input(
            "--iface",
            format!(
                "{iface} has a configured root qdisc ({kind} {handle}); delay needs fq there and chaos \
                 does not replace qdiscs it cannot restore exactly: remove it or pick another interface"
            ),
        ));
    }
    record.qdiscs.push(entry.clone());
    record.save()?;
    let guard = FqGuard {
        entry,
        owner: record.id.clone(),
        netns: netns.map(Netns::try_clone).transpose()?,
    };
    let installed = netns::within(netns, || {
        if kind == "mq" {
            // Multi-queue devices keep mq; each transmit queue gets its own fq.
            children.iter().try_for_each(|p| {
                tc(&["qdisc", "replace", "dev", iface, "parent", p, "fq"]).map(|_| ())
            })
        } else {
            tc(&["qdisc", "replace", "dev", iface, "root", "fq"]).map(|_| ())
        }
    })?;
    match installed {
        Ok(()) => Ok(Some(guard)),
        Err(e) => {
            drop(lock); // the guard takes it again
            drop(guard); // puts the default back if anything was changed
            Err(unsupported(format!("tc refused fq on {iface}: {e}")))
        }
    }
}

fn fq_children(iface: &str, netns: Option<&Netns>) -> Result<bool> {
    let text = netns::within(netns, || tc(&["qdisc", "show", "dev", iface]))?.unwrap_or_default();
    Ok(text
        .lines()
        .filter(|l| l.contains(" parent "))
        .all(|l| l.starts_with("qdisc fq ")))
}

/// Restores the kernel's default root qdisc on drop, unless another fault in force still uses
/// the fq.
pub struct FqGuard {
    entry: QdiscEntry,
    /// The id of the record that lists `entry` (not counted as another user).
    owner: String,
    netns: Option<Netns>,
}

impl Drop for FqGuard {
    fn drop(&mut self) {
        if let Err(e) = state::release_fq(&self.entry, &self.owner, self.netns.as_ref()) {
            tracing::warn!("{}", crate::error::chain(&e));
        }
    }
}
