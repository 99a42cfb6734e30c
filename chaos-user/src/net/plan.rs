//! A checked spec made concrete on this system: its network namespace, interface and cgroup
//! looked up, the guards applied, and the encoded rule (`encode`) ready to attach.

use super::{
    AttachMode, Direction, NetSpec,
    encode::{Scope, encode},
};
use crate::{
    cgroup::Cgroup,
    controls::{self, Controls},
    error::{Error, Result},
    guards,
    netns::{self, Netns},
    target::Target,
};
use chaos_common::NetRule;
use ipnet::IpNet;
use std::time::Duration;

/// A validated packet fault, ready to attach.
#[derive(Debug)]
pub struct NetPlan {
    pub iface: String,
    pub netns: Option<Netns>,
    /// TC hooks to attach to `iface`.
    pub hooks: &'static [Direction],
    /// Also (or only) drop arriving packets with a cgroup_skb ingress program on `cgroup`.
    pub cgroup_ingress: bool,
    /// Hold arriving packets back through an ifb device (delay, reorder, rate at ingress).
    pub ifb: bool,
    pub cgroup: Option<Cgroup>,
    /// The rule without its deadline, which is set at attach time.
    pub rule: NetRule,
    /// Prefixes for the LPM tries when `rule.src` / `rule.dst` is a set.
    pub src_set: Vec<IpNet>,
    pub dst_set: Vec<IpNet>,
    /// dns: the name patterns (trie keys).
    pub dns_names: Vec<([u8; chaos_common::dns::NAME_MAX], u32)>,
    pub duration: Duration,
    pub attach: AttachMode,
    pub controls: Controls,
    /// One line for humans: what, where, how much.
    pub detail: String,
    /// "net drop", "net delay".
    pub fault: &'static str,
    pub action: super::Action,
}

impl NetSpec {
    /// Checks the spec (`check`), then what needs the system: the namespace, the interface,
    /// the cgroup and the guards; errors name the flag. Nothing is attached.
    pub fn validate(&self) -> Result<NetPlan> {
        self.check()?;
        let netns = self.netns.as_deref().map(Netns::resolve).transpose()?;
        if !self.iface.is_empty() {
            let found = netns::within(netns.as_ref(), || netns::ifindex(&self.iface))?;
            if found.is_none() {
                let why = match &self.netns {
                    Some(ns) => format!(
                        "no interface '{}' in network namespace {ns}; list them with \
                         `ip -n {ns} link`",
                        self.iface
                    ),
                    None => format!(
                        "no interface '{}' in the host's network namespace (`ip link`); one in \
                         another namespace needs --netns NAME (`ip netns list`)",
                        self.iface
                    ),
                };
                return Err(Error::input("--iface", why));
            }
            guards::check_iface(&self.iface, netns.as_ref(), self.controls.force)?;
        }
        let cgroup = self.target.as_ref().map(Target::resolve).transpose()?;
        if let Some(cg) = &cgroup {
            guards::check_cgroup(cg, "--cgroup/--pid", self.controls.force)?;
        }
        let scope = cgroup.as_ref().map_or(Scope::default(), |c| Scope {
            cgroup_id: c.id,
            cgroup_level: c.level,
        });
        let e = encode(self, scope, controls::new_fault_id());
        Ok(NetPlan {
            iface: self.iface.clone(),
            netns,
            hooks: e.hooks,
            cgroup_ingress: e.cgroup_ingress,
            ifb: e.ifb,
            cgroup,
            rule: e.rule,
            src_set: e.src_set,
            dst_set: e.dst_set,
            dns_names: e.dns_names,
            duration: self.duration,
            attach: self.attach,
            controls: self.controls.clone(),
            detail: self.describe(),
            fault: self.action.fault_name(),
            action: self.action,
        })
    }
}
