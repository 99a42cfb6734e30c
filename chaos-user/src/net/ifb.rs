//! Delay of arriving packets: an ifb device with fq, in the interface's namespace, for the
//! duration of the fault. The ingress classifier gives each matching packet a departure time and
//! redirects it there; fq holds it until then and ifb delivers it as arriving on the original
//! interface (the kernel skips the ingress hook for it, so it is not classified twice). The
//! device is written down before it is created, so `chaos cleanup` removes it after a crash.

use crate::{
    error::{Error, Result},
    netns::{self, Netns},
    state::{IfbEntry, Record},
    tc_cmd::{delete_link, ip},
};

/// The ifb device of one fault; deleted on drop.
pub struct IfbGuard {
    pub name: String,
    pub ifindex: u32,
    netns: Option<Netns>,
}

impl IfbGuard {
    /// Creates `chaos<id>` in `netns`, up, with fq as its root qdisc.
    pub fn create(fault_id: u32, netns: Option<&Netns>, record: &mut Record) -> Result<Self> {
        let name = format!("chaos{fault_id:08x}");
        let (netns_path, netns_ino) = Netns::identity(netns);
        record.ifbs.push(IfbEntry {
            netns: netns_path,
            netns_ino,
            name: name.clone(),
        });
        record.save()?;
        let guard = IfbGuard {
            name: name.clone(),
            ifindex: 0,
            netns: netns.map(Netns::try_clone).transpose()?,
        };
        let made = netns::within(netns, || {
            ip(&["link", "add", &name, "type", "ifb"]).map_err(|e| Error::Unsupported {
                feature: "the ifb device (CONFIG_IFB), which delay of arriving packets needs",
                hint: format!(
                    "`ip link add {name} type ifb` failed: {e}; load the ifb module, or delay \
                         the traffic at the sender's egress instead (--direction egress on the \
                         peer)"
                ),
            })?;
            ip(&["link", "set", &name, "up"]).map_err(|e| Error::tool("setting the ifb up", e))?;
            crate::tc_cmd::tc(&["qdisc", "replace", "dev", &name, "root", "fq"]).map_err(|e| {
                Error::Unsupported {
                    feature: "the fq qdisc (sch_fq), which delay needs to honour departure times",
                    hint: format!("tc refused fq on {name}: {e}; see `chaos doctor`"),
                }
            })?;
            netns::ifindex(&name)
                .ok_or_else(|| Error::tool(format!("the new ifb {name}"), "it has no ifindex"))
        })?;
        let mut guard = guard;
        guard.ifindex = made?;
        Ok(guard)
    }
}

impl Drop for IfbGuard {
    fn drop(&mut self) {
        let name = self.name.clone();
        match netns::within(self.netns.as_ref(), || delete_link(&name)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("deleting {name}: {e}"),
            Err(e) => tracing::warn!("deleting {name}: {e}"),
        }
    }
}
