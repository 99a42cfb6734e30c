//! A packet fault in force: the loaded object, its rule, one classifier per hook, and the
//! record of whatever the kernel would not remove by itself.

use super::{
    Direction, NetPlan,
    handoff::HandoffFilter,
    ifb::IfbGuard,
    qdisc::{self, FqGuard},
    tc::{self, AttachMode, TcAttachment, Where},
};
use crate::{
    background,
    ebpf::{self, Counters},
    error::{Error, Result},
    fault::FaultCore,
    state::{Record, RuleKind},
};
use aya::maps::{
    Array,
    lpm_trie::{Key, LpmTrie},
};
use aya::programs::{
    CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, SchedClassifier, cgroup_skb::CgroupSkbLinkId,
};
use chaos_common::{
    ACTION_DNS, ACTION_HTTP_ABORT, MAX_RULES, NetRule, OPT_EGRESS, OPT_HANDOFF, OPT_INGRESS,
    features,
    maps::{
        NET_CFG, NET_DST_SET, NET_SET_HINT, NET_SRC_SET, NET_STATS, PROG_CGROUP_INGRESS,
        PROG_TC_DNS, PROG_TC_EGRESS, PROG_TC_HANDOFF, PROG_TC_HTTP_EG, PROG_TC_HTTP_IN,
        PROG_TC_INGRESS, PROG_TC_INGRESS_IFB,
    },
    needs_fq,
};
use ipnet::IpNet;
use std::fs::File;

/// Writes one side (`dst` or source) of rule `slot`'s prefix set into its LPM trie and the
/// trie's first stage (before any program can read them).
pub fn fill_set(ebpf: &mut aya::Ebpf, dst: bool, slot: u32, set: &[IpNet]) -> Result<()> {
    if set.is_empty() {
        return Ok(());
    }
    let name = if dst { NET_DST_SET } else { NET_SRC_SET };
    let mut trie: LpmTrie<_, [u32; 5], u8> = ebpf
        .map_mut(name)
        .ok_or(Error::MapNotFound(name))?
        .try_into()
        .map_err(|e| Error::map(format!("opening {name}"), e))?;
    for net in set {
        let (len, data) = super::set_hint::trie_key(slot, net);
        trie.insert(&Key::new(len, data), 1, 0)
            .map_err(|e| Error::map(format!("adding {net} to {name}"), e))?;
    }
    let mut hint: Array<_, u64> = ebpf
        .map_mut(NET_SET_HINT)
        .ok_or(Error::MapNotFound(NET_SET_HINT))?
        .try_into()
        .map_err(|e| Error::map(format!("opening {NET_SET_HINT}"), e))?;
    for (index, bits) in super::set_hint::words(slot, dst, set) {
        let old = hint
            .get(&index, 0)
            .map_err(|e| Error::map(format!("reading {NET_SET_HINT}"), e))?;
        hint.set(index, old | bits, 0)
            .map_err(|e| Error::map(format!("writing {NET_SET_HINT}"), e))?;
    }
    Ok(())
}

/// A rule set shares one interface, namespace and attach mode, and one set of controls; a
/// cgroup's ingress (cgroup_skb) is for single drop rules.
fn check_set(plans: &[NetPlan]) -> Result<&NetPlan> {
    let first = plans
        .first()
        .ok_or_else(|| Error::input("--rule", "give at least one rule"))?;
    if plans.len() > MAX_RULES as usize {
        return Err(Error::input(
            "--rule",
            format!("at most {MAX_RULES} rules share one program; run another chaos for more"),
        ));
    }
    if plans
        .iter()
        .any(|p| p.iface != first.iface || p.attach != first.attach)
    {
        return Err(Error::input(
            "--rule",
            "the rules of a set share one interface and attach mode",
        ));
    }
    if plans.len() > 1
        && plans
            .iter()
            .any(|p| matches!(p.rule.action, ACTION_DNS | ACTION_HTTP_ABORT))
    {
        return Err(Error::input(
            "--rule",
            "DNS answers and HTTP aborts have programs of their own and cannot share a rule \
             set; run them as their own `chaos net dns` / `chaos net http-abort`",
        ));
    }
    if plans.len() > 1 && plans.iter().any(|p| p.cgroup_ingress) {
        return Err(Error::input(
            "--rule",
            "a rule scoped to a cgroup's arriving traffic (cgroup ingress) cannot share a rule \
             set; run it as its own `chaos net drop`",
        ));
    }
    Ok(first)
}

/// The classifier for a hook: at ingress, the one that can redirect to an ifb when a rule
/// holds arriving packets back; for DNS answers and HTTP aborts, programs of their own.
pub fn classifier_for(hook: Direction, ifb: bool, action: u8) -> &'static str {
    match hook {
        Direction::Egress if action == ACTION_DNS => PROG_TC_DNS,
        Direction::Egress if action == ACTION_HTTP_ABORT => PROG_TC_HTTP_EG,
        _ if action == ACTION_HTTP_ABORT => PROG_TC_HTTP_IN,
        Direction::Egress => PROG_TC_EGRESS,
        _ if ifb => PROG_TC_INGRESS_IFB,
        _ => PROG_TC_INGRESS,
    }
}

/// How arriving packets reach the ifb: its ifindex, and whether through the handoff filter.
#[derive(Clone, Copy, Default)]
struct IfbRoute {
    ifindex: u32,
    handoff: bool,
}

impl IfbRoute {
    fn opts(self, p: &NetPlan) -> u8 {
        if p.ifb && self.handoff {
            OPT_HANDOFF
        } else {
            0
        }
    }
}

/// Starts turning on the TCX hooks the classifiers will use (`tcx_warmup`), where they attach
/// with TCX (not over cls_bpf, nor through an ifb, whose attach mode is decided later).
fn warm_up(plans: &[NetPlan]) -> Option<super::tcx_warmup::Warmup> {
    let p = &plans[0];
    let tcx = p.attach != AttachMode::ClsBpf && !plans.iter().any(|p| p.ifb);
    let hooks = hooks_of(plans);
    (tcx && !p.iface.is_empty() && !hooks.is_empty())
        .then(|| super::tcx_warmup::start(&p.iface, p.netns.as_ref(), &hooks))
}

/// The hooks the rules use, each once.
fn hooks_of(plans: &[NetPlan]) -> Vec<Direction> {
    let mut hooks: Vec<Direction> = Vec::new();
    for h in plans.iter().flat_map(|p| p.hooks.iter().copied()) {
        if !hooks.contains(&h) {
            hooks.push(h);
        }
    }
    hooks
}

/// In a rule set, each rule applies only at the hooks it asked for.
fn hook_bits(p: &NetPlan) -> u8 {
    match p.hooks {
        [Direction::Ingress] => OPT_INGRESS,
        [Direction::Egress] => OPT_EGRESS,
        _ => 0,
    }
}

pub struct NetFault {
    // Field order matters: attachments detach before the object (and its program) is dropped.
    attachments: Vec<TcAttachment>,
    /// Hands marked packets to the ifb (cls_bpf only; removed after the classifier).
    handoff: Option<HandoffFilter>,
    /// The ifb device that delays arriving packets (deleted after the classifier is gone).
    ifb: Option<IfbGuard>,
    /// The cgroup_skb ingress link (fd-owned), for drops scoped to a cgroup's arriving traffic.
    cgroup_link: Option<CgroupSkbLinkId>,
    /// Restores the default qdisc after the classifier is gone (delay only).
    fq: Option<FqGuard>,
    pub core: FaultCore<NetRule>,
    program_ids: Vec<u32>,
    record: Record,
    /// Rules in the rule set (slots 0..slots).
    slots: u32,
    /// What each rule of a set does, for its summary line.
    rule_details: Vec<String>,
}

impl NetFault {
    /// Loads, configures (with the in-kernel deadline) and attaches. On any error everything
    /// attached so far is detached again by Drop.
    pub fn attach(plan: &NetPlan) -> Result<Self> {
        Self::attach_set(std::slice::from_ref(plan))
    }

    /// Several rules on one interface in one program per hook: rule i in slot i of the rule
    /// set, each with its own counters; the first plan's controls and duration apply to all.
    /// In order: the prefix sets, the qdiscs and ifb (each recorded before it is made), the
    /// programs loaded (verified), every rule written once, then the attachments.
    pub fn attach_set(plans: &[NetPlan]) -> Result<Self> {
        let plan = check_set(plans)?;
        // Closed (dropped) once the classifiers are attached, or on an error.
        let _warmup = warm_up(plans);
        // The program parts every rule of the set needs, and no other: the verifier skips
        // the rest (a one-rule drop verifies without delay, rate, sets, events, ...).
        let features = plans.iter().fold(0, |f, p| f | features::needs(&p.rule))
            | features::slots(plans.len() as u32);
        let maps = (NET_CFG, NET_STATS);
        let core = FaultCore::open(plan.rule, &plan.controls, plan.duration, maps, features)?;
        let mut fault = Self::new(core, plans);
        for (slot, p) in (0u32..).zip(plans) {
            fill_set(&mut fault.core.ebpf, false, slot, &p.src_set)?;
            fill_set(&mut fault.core.ebpf, true, slot, &p.dst_set)?;
        }
        if let super::Action::Dns { rcode } = plan.action {
            super::dns::fill(&mut fault.core.ebpf, &plan.dns_names, rcode)?;
        }
        // fq first (recorded before it is installed), so the classifier never sets departure
        // times that nothing honours.
        let fq_needed = plans
            .iter()
            .any(|p| needs_fq(p.rule.action) && p.hooks.contains(&Direction::Egress));
        if fq_needed {
            fault.fq = qdisc::ensure_fq(&plan.iface, plan.netns.as_ref(), &mut fault.record)?;
        }
        let ifb = plans.iter().any(|p| p.ifb);
        let (mode, route) = fault.route_to_ifb(plans, ifb)?;
        let hooks = fault.load_programs(plans, ifb)?;
        fault.write_rules(plans, route)?;
        let handle = fault.core.fault_id().max(1);
        for hook in hooks {
            // A stop signal while starting: Drop undoes what is attached so far.
            crate::startup::check()?;
            let name = classifier_for(hook, ifb, plans[0].rule.action);
            let prog = classifier(&mut fault.core.ebpf, name)?;
            let w = Where {
                iface: &plan.iface,
                netns: plan.netns.as_ref(),
                hook,
                mode,
                record: &mut fault.record,
                handle,
            };
            fault.attachments.push(tc::attach(prog, w)?);
        }
        fault.attach_cgroup_ingress(plan)?;
        crate::startup::check()?;
        // Every running fault is listed (chaos status, chaos stop); cls_bpf and fq were written
        // down before they were created, the rest is recorded now.
        fault.record.deadline_mono_ns = fault.core.deadline_ns();
        fault.record.save()?;
        Ok(fault)
    }

    /// The fault before anything is attached: its record, and no attachment for Drop to undo.
    fn new(core: FaultCore<NetRule>, plans: &[NetPlan]) -> Self {
        let (fault_name, detail) = if plans.len() > 1 {
            let each: Vec<&str> = plans.iter().map(|p| p.detail.as_str()).collect();
            ("net rules", each.join("; "))
        } else {
            (plans[0].fault, plans[0].detail.clone())
        };
        let record = Record::new(
            core.fault_id(),
            fault_name,
            RuleKind::Net,
            detail,
            core.deadline_ns(),
        );
        Self {
            attachments: Vec::new(),
            handoff: None,
            ifb: None,
            cgroup_link: None,
            fq: None,
            core,
            program_ids: Vec::new(),
            record,
            slots: plans.len() as u32,
            rule_details: plans.iter().map(|p| p.detail.clone()).collect(),
        }
    }

    /// When a rule holds arriving packets back: the ifb device, how the classifiers attach
    /// (the ifb decides between TCX and cls_bpf) and, over cls_bpf, the handoff filter.
    fn route_to_ifb(&mut self, plans: &[NetPlan], ifb: bool) -> Result<(AttachMode, IfbRoute)> {
        let plan = &plans[0];
        if !ifb {
            return Ok((plan.attach, IfbRoute::default()));
        }
        let id = self.core.fault_id();
        let ifb = IfbGuard::create(id, plan.netns.as_ref(), &mut self.record)?;
        let (ifb_name, ifindex) = (ifb.name.clone(), ifb.ifindex);
        self.ifb = Some(ifb);
        let prog = loaded(&mut self.core.ebpf, PROG_TC_INGRESS_IFB)?;
        let mode = tc::resolve_mode(prog, plan.attach, &ifb_name, plan.netns.as_ref())?;
        let route = IfbRoute {
            ifindex,
            handoff: mode == AttachMode::ClsBpf,
        };
        if route.handoff {
            let prog = loaded(&mut self.core.ebpf, PROG_TC_HANDOFF)?;
            self.handoff = Some(HandoffFilter::create(
                prog,
                &plan.iface,
                &ifb_name,
                plan.netns.as_ref(),
                &mut self.record,
                id.max(1) ^ 0x8000_0000,
            )?);
        }
        Ok((mode, route))
    }

    /// Loads (verifies) the classifier of every hook the rules use, and the cgroup_skb program
    /// for a cgroup's arriving traffic; returns the hooks, each once.
    fn load_programs(&mut self, plans: &[NetPlan], ifb: bool) -> Result<Vec<Direction>> {
        let hooks = hooks_of(plans);
        for &hook in &hooks {
            let name = classifier_for(hook, ifb, plans[0].rule.action);
            loaded(&mut self.core.ebpf, name)?;
            let id = self.core.ebpf.program(name).and_then(ebpf::program_id);
            self.program_ids.extend(id);
        }
        if plans[0].cgroup_ingress {
            let prog = cgroup_skb(&mut self.core.ebpf)?;
            ebpf::load_once(|| prog.load()).map_err(|e| {
                let e = || Error::program(format!("loading {PROG_CGROUP_INGRESS}"), e);
                crate::startup::or_interrupted(e)
            })?;
            let id = self
                .core
                .ebpf
                .program(PROG_CGROUP_INGRESS)
                .and_then(ebpf::program_id);
            self.program_ids.extend(id);
        }
        Ok(hooks)
    }

    /// Writes every rule of the set once, with one deadline (`duration` from now: the programs
    /// are verified, only attaching is left) and the way to the ifb. Slot 0 carries the rule
    /// count, which makes the set visible to the classifiers.
    fn write_rules(&mut self, plans: &[NetPlan], route: IfbRoute) -> Result<()> {
        let several = plans.len() > 1;
        let rule = |p: &NetPlan| NetRule {
            opts: p.rule.opts | if several { hook_bits(p) } else { 0 } | route.opts(p),
            redirect_ifindex: if p.ifb { route.ifindex } else { 0 },
            ..p.rule
        };
        self.core.set_rule(NetRule {
            rules: plans.len() as u32,
            ..rule(&plans[0])
        });
        // Nothing is attached yet: the order of the writes does not matter.
        let deadline = self.core.arm()?;
        for (slot, p) in (0u32..).zip(plans).skip(1) {
            let r = NetRule {
                deadline_ns: deadline,
                ..rule(p)
            };
            self.core.write_at(slot, r)?;
        }
        Ok(())
    }

    /// The cgroup_skb ingress link (fd-owned) for drops scoped to a cgroup's arriving traffic.
    fn attach_cgroup_ingress(&mut self, plan: &NetPlan) -> Result<()> {
        let (true, Some(cg)) = (plan.cgroup_ingress, &plan.cgroup) else {
            return Ok(());
        };
        let prog = cgroup_skb(&mut self.core.ebpf)?;
        let dir = File::open(&cg.path)
            .map_err(|e| Error::io(format!("opening {}", cg.path.display()), e))?;
        // A link coexists with other programs on the cgroup; explicit flags are refused.
        let id = prog
            .attach(&dir, CgroupSkbAttachType::Ingress, CgroupAttachMode::Single)
            .map_err(|e| {
                Error::program(format!("attaching to {} ingress", cg.path.display()), e)
            })?;
        self.cgroup_link = Some(id);
        Ok(())
    }

    /// Each rule of the set with its counters, in slot order.
    pub fn rule_counters(&self) -> Result<Vec<(String, Counters)>> {
        (0..self.slots)
            .map(|slot| {
                let c = ebpf::slot_counters(&self.core.ebpf, NET_STATS, slot)?;
                Ok((self.rule_details[slot as usize].clone(), c))
            })
            .collect()
    }

    /// Leaves dry-run mode for every rule of the set (one map update each).
    pub fn go_live(&mut self) -> Result<()> {
        self.core.go_live()?;
        for slot in 1..self.slots {
            let cfg: aya::maps::Array<_, NetRule> = self
                .core
                .ebpf
                .map(NET_CFG)
                .ok_or(Error::MapNotFound(NET_CFG))?
                .try_into()
                .map_err(|e| Error::map(format!("opening {NET_CFG}"), e))?;
            let mut rule = cfg
                .get(&slot, 0)
                .map_err(|e| Error::map(format!("reading {NET_CFG}"), e))?;
            rule.flags &= !chaos_common::FLAG_DRY_RUN;
            self.core.write_at(slot, rule)?;
        }
        Ok(())
    }

    /// What all the rules of the set counted.
    pub fn total_counters(&self) -> Result<Counters> {
        let rules = self.rule_counters()?;
        Ok(rules
            .iter()
            .fold(Counters::default(), |a, (_, c)| Counters {
                matched: a.matched + c.matched,
                injected: a.injected + c.injected,
                over_budget: a.over_budget + c.over_budget,
                events_lost: a.events_lost + c.events_lost,
                lost: a.lost + c.lost,
            }))
    }

    /// A rule set's rules with their counters; empty for a single rule.
    pub fn rules_breakdown(&self) -> Result<Vec<(String, Counters)>> {
        let rules = self.rule_counters()?;
        Ok(if rules.len() > 1 { rules } else { Vec::new() })
    }

    pub fn program_ids(&self) -> Vec<u32> {
        self.program_ids.clone()
    }

    /// How the classifier is attached (TCX or cls_bpf).
    pub fn mode(&self) -> AttachMode {
        self.attachments
            .first()
            .map_or(AttachMode::Auto, |a| a.mode)
    }

    /// Leaves the fault in the kernel after chaos exits: links and maps pinned, record saved.
    pub fn persist(mut self) -> Result<Record> {
        let dir = background::adopt(&mut self.record)?;
        for (i, a) in std::mem::take(&mut self.attachments)
            .into_iter()
            .enumerate()
        {
            a.persist(&dir.join(format!("link{i}")))?;
        }
        if let Some(id) = self.cgroup_link.take() {
            let link = cgroup_skb(&mut self.core.ebpf)?
                .take_link(id)
                .map_err(|e| Error::program("taking the cgroup link", e))?;
            background::pin_link(link, "the cgroup link", &dir.join("link-cgroup"))?;
        }
        // The record lists the qdisc, the ifb and the handoff filter: `chaos stop`/`cleanup`
        // remove them.
        if let Some(h) = self.handoff.take() {
            h.persist();
        }
        std::mem::forget(self.fq.take());
        std::mem::forget(self.ifb.take());
        background::pin_maps(&self.core.ebpf, &dir, NET_CFG, NET_STATS)?;
        Ok(self.record.clone())
    }
}

impl Drop for NetFault {
    fn drop(&mut self) {
        // Reverse order: the first cls_bpf attachment may own the clsact qdisc that later ones
        // share, and removing it first would take their filters along.
        while let Some(a) = self.attachments.pop() {
            drop(a);
        }
        // It may own the clsact qdisc the classifier used.
        drop(self.handoff.take());
        drop(self.ifb.take());
        drop(self.fq.take());
        if !self.record.background {
            self.record.delete();
        }
    }
}

fn cgroup_skb(ebpf: &mut aya::Ebpf) -> Result<&mut CgroupSkb> {
    ebpf::program_as(ebpf, PROG_CGROUP_INGRESS, "cgroup_skb type")
}

/// A classifier of the object, loaded into the kernel (once).
fn loaded<'a>(ebpf: &'a mut aya::Ebpf, name: &'static str) -> Result<&'a mut SchedClassifier> {
    let prog = classifier(ebpf, name)?;
    ebpf::load_once(|| prog.load()).map_err(|e| {
        crate::startup::or_interrupted(|| Error::program(format!("loading {name}"), e))
    })?;
    Ok(prog)
}

fn classifier<'a>(ebpf: &'a mut aya::Ebpf, name: &'static str) -> Result<&'a mut SchedClassifier> {
    ebpf::program_as(ebpf, name, "classifier type")
}

crate::fault::delegate_to_core!(
    NetFault,
    NetFault::total_counters,
    NetFault::rules_breakdown,
    NetFault::go_live
);
