//! An experiment's faults: built into the same specs the `chaos net` and `chaos syscall`
//! commands build, validated against the system before anything runs, attached per phase.

use super::plan::{ExpTarget, Experiment, PlannedFault};
use crate::{
    controls::Controls,
    error::{Error, Result},
    kill::{KillFault, KillSpec, KillTarget},
    net::{NetFault, NetPlan},
    session::Fault,
    stress::{StressFault, StressPlan},
    support::Needs,
    syscall::{SyscallFault, SyscallPlan},
    target::Target,
    watch::Watched,
};
use std::time::Duration;

/// A fault checked against this system, ready to attach at its start offset.
pub struct Ready {
    pub name: String,
    /// The object's budget and skip queues (`ebpf::load` arguments), for preloading.
    queues: (Option<u32>, Option<u32>),
    pub start: Duration,
    pub duration: Duration,
    /// "net delay", "syscall connect".
    pub kind: String,
    pub detail: String,
    plan: Plan,
    /// The experiment's target (`target:`), which syscall faults act on.
    target: ExpTarget,
    /// Dry-run mode (a kill then finds its victims and signals none).
    dry_run: bool,
}

pub(super) enum Plan {
    Net(Box<NetPlan>),
    Syscall(Box<SyscallPlan>),
    /// On Kubernetes targets: a plan per pod or container, by label (`pod_faults`).
    NetParts(Vec<(String, NetPlan)>),
    SyscallParts(Vec<(String, SyscallPlan, Target)>),
    Kill(KillSpec, KillTarget),
    /// Worker processes in the targets' cgroups (one target, or each chosen container).
    Stress(StressPlan),
    /// Sent to `chaos agent`s, which resolve the target on their nodes (`chaos run --agents`).
    Remote(
        Box<super::single::FaultRequest>,
        std::sync::Arc<super::remote::Agents>,
    ),
}

impl Ready {
    /// Loads this fault's object and verifies its programs now, so that `attach` at the phase
    /// start only attaches (LSM programs, which need the kernel's BTF, still load then).
    pub fn preload(&self) -> Result<()> {
        let (budget, skip) = self.queues;
        let (programs, features) = self.object();
        crate::ebpf::preload((programs, budget, skip, features), &self.programs())
    }

    /// The object and program parts the fault's attach will load (`ebpf::load`).
    fn object(&self) -> (crate::ebpf::Programs, u32) {
        use crate::ebpf::Programs;
        use chaos_common::features::{ALL, needs, slots};
        match &self.plan {
            Plan::Net(p) => (Programs::Packets, needs(&p.rule) | slots(1)),
            Plan::NetParts(v) => {
                let f = v.iter().fold(slots(1), |f, (_, p)| f | needs(&p.rule));
                (Programs::Packets, f)
            }
            Plan::Syscall(p) => (Programs::Calls, p.features()),
            Plan::SyscallParts(v) => (
                Programs::Calls,
                v.first().map_or(ALL, |(_, p, _)| p.features()),
            ),
            _ => (Programs::All, ALL),
        }
    }

    fn programs(&self) -> Vec<&'static str> {
        use chaos_common::maps::PROG_CGROUP_INGRESS;
        // The parts of a fault on pods share one object: preloading the first's is enough.
        let (net, sys) = match &self.plan {
            Plan::Net(p) => (Some(p.as_ref()), None),
            Plan::NetParts(v) => (v.first().map(|(_, p)| p), None),
            Plan::Syscall(p) => (None, Some(p.as_ref())),
            Plan::SyscallParts(v) => (None, v.first().map(|(_, p, _)| p)),
            Plan::Kill(..) | Plan::Stress(_) | Plan::Remote(..) => (None, None),
        };
        match (net, sys) {
            (Some(p), _) => {
                let mut names: Vec<&'static str> = p
                    .hooks
                    .iter()
                    .map(|&h| crate::net::classifier_for(h, p.ifb, p.rule.action))
                    .collect();
                if p.cgroup_ingress {
                    names.push(PROG_CGROUP_INGRESS);
                }
                names
            }
            (None, Some(p)) => match p {
                SyscallPlan::Sock(s) => match s.entry.hook {
                    crate::syscall::Hook::SockAddr { v4, v6 } => vec![v4, v6],
                    _ => Vec::new(),
                },
                SyscallPlan::Hook(_) | SyscallPlan::Crash(_) => Vec::new(),
            },
            (None, None) => Vec::new(),
        }
    }

    /// The `chaos doctor` row for this fault (its kind, but one row for every crash fault).
    fn doctor_row(&self) -> String {
        match &self.plan {
            Plan::Syscall(p) => p.doctor_row(),
            Plan::SyscallParts(v) => v
                .first()
                .map_or(self.kind.clone(), |(_, p, _)| p.doctor_row()),
            _ => self.kind.clone(),
        }
    }

    /// What `chaos doctor` must probe for this fault, as its family says.
    fn needs(&self) -> Needs {
        match &self.plan {
            Plan::Net(p) => crate::net::needs(p.action),
            Plan::NetParts(v) => v
                .first()
                .map_or_else(Needs::default, |(_, p)| crate::net::needs(p.action)),
            Plan::Syscall(p) => p.needs(),
            Plan::SyscallParts(v) => v.first().map_or_else(Needs::default, |(_, p, _)| p.needs()),
            Plan::Kill(..) | Plan::Stress(_) | Plan::Remote(..) => Needs::default(),
        }
    }

    /// What the fault acts on, as it is now (taken when it attaches): the run ends when one
    /// vanishes (crate::watch).
    pub fn watched(&self) -> Result<Vec<Watched>> {
        match (&self.plan, &self.target) {
            (Plan::Net(p), _) => p.watched(),
            (Plan::Syscall(_), ExpTarget::Local(t)) => Ok(vec![Watched::target(t)?]),
            // A fault on several targets watches each part itself (Fault::detach_gone); a
            // kill acts on what is there at each round.
            _ => Ok(Vec::new()),
        }
    }

    /// Loads and attaches; the kernel ends it at its own deadline, `duration` from now.
    pub fn attach(&self) -> Result<Box<dyn Fault>> {
        Ok(match &self.plan {
            Plan::Net(p) => Box::new(NetFault::attach(p)?),
            Plan::Syscall(p) => Box::new(SyscallFault::attach(p)?),
            Plan::NetParts(_) | Plan::SyscallParts(_) => {
                Box::new(super::pod_faults::attach(&self.plan)?)
            }
            Plan::Kill(spec, target) => {
                Box::new(KillFault::attach(spec, target.clone(), self.dry_run)?)
            }
            Plan::Stress(p) => Box::new(StressFault::attach(p, self.dry_run)?),
            Plan::Remote(req, agents) => Box::new(super::remote::RemoteFault::attach(req, agents)?),
        })
    }
}

/// Validates every fault (interfaces, cgroups, filters, guards) before any is attached;
/// `force` overrides the blast-radius guards as `--force` does for a single fault.
pub fn prepare(exp: &Experiment, dry_run: bool, force: bool) -> Result<Vec<Ready>> {
    let controls = Controls {
        dry_run,
        force,
        events_sample: 1,
        ..Controls::default()
    };
    // Kubernetes targets are resolved (and `mode` chosen) once for the whole experiment.
    let chosen = match &exp.target {
        ExpTarget::Pods(q) => Some(super::pod_faults::choose(q)?),
        ExpTarget::Local(_) => None,
    };
    exp.faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let at = || format!("faults[{i}] ({})", f.name);
            let r = match &chosen {
                Some(c) => super::pod_faults::ready(f, &exp.target, c, &controls),
                None => ready(f, &exp.target, &controls),
            };
            r.map_err(|e| match e {
                // Name the fault; the flag in the message is its field name with dashes.
                Error::Input { flag, message } => Error::Invalid {
                    at: at(),
                    message: format!("{}: {message}", yaml_key(flag)),
                },
                Error::Invalid { at: field, message } => Error::Invalid {
                    at: format!("{}.{field}", at()),
                    message,
                },
                other => other,
            })
        })
        .collect()
}

/// Refuses, before anything is injected, an experiment with a fault this kernel cannot run
/// (as `chaos doctor` finds it), naming the missing mechanism and what would work.
pub fn check_kernel(ready: &[Ready]) -> Result<()> {
    let needs = ready
        .iter()
        .fold(Needs::default(), |n, r| n.union(r.needs()));
    let support = crate::doctor::run_for(needs)?.faults;
    for (i, r) in ready.iter().enumerate() {
        let row = r.doctor_row();
        if let Some(s) = support.iter().find(|s| s.fault == row && !s.available) {
            return Err(Error::Invalid {
                at: format!("faults[{i}] ({})", r.name),
                message: format!(
                    "this kernel cannot run {}: {}; nothing was injected",
                    r.kind, s.detail
                ),
            });
        }
    }
    Ok(())
}

/// The experiment file's key for a CLI flag named in an error.
fn yaml_key(flag: &str) -> String {
    match flag {
        "--cgroup/--pid" => "target".into(),
        f => f.trim_start_matches("--").replace('-', "_"),
    }
}

fn ready(f: &PlannedFault, exp_target: &ExpTarget, controls: &Controls) -> Result<Ready> {
    let ExpTarget::Local(target) = exp_target else {
        unreachable!("pod targets are made ready by pod_faults")
    };
    if let Some(s) = &f.spec.stress {
        let spec = s.clone().into_spec(f.duration, controls.force)?;
        let (label, flag) = match target {
            Target::Cgroup(c) => (c.clone(), "--cgroup"),
            Target::Pid(p) => (format!("process {p}"), "--pid"),
        };
        let plan = crate::stress::plan(spec, vec![(label, target.clone())], flag)?;
        let made = (
            plan.spec.kind().to_string(),
            plan.detail(),
            (None, None),
            Plan::Stress(plan),
        );
        return Ok(Ready::new(f, exp_target, controls, made));
    }
    let (kind, detail, queues, plan) = match (&f.spec.net, &f.spec.syscall, &f.spec.kill) {
        (_, _, Some(k)) => {
            let spec = k.clone().into_spec(f.duration, controls.force)?;
            let whom = match target {
                Target::Cgroup(c) => format!("the processes of cgroup {c}"),
                Target::Pid(p) => format!("process {p}"),
            };
            let detail = kill_detail(&spec, &whom);
            let plan = Plan::Kill(spec, KillTarget::Local(target.clone()));
            ("kill".to_string(), detail, (None, None), plan)
        }
        (Some(n), None, None) => {
            let spec = n
                .clone()
                .into_spec(Some(target.clone()), f.duration, controls.clone())?;
            let p = spec.validate()?;
            let q = (spec.controls.max_faults, spec.controls.after);
            (
                p.fault.to_string(),
                p.detail.clone(),
                q,
                Plan::Net(Box::new(p)),
            )
        }
        (None, Some(s), None) => {
            let spec = s
                .clone()
                .into_spec(target.clone(), f.duration, controls.clone());
            let p = spec.validate()?;
            let q = (spec.controls.max_faults, spec.controls.after);
            let name = p.name();
            (name, p.detail().to_string(), q, Plan::Syscall(Box::new(p)))
        }
        _ => unreachable!("plan::check demands exactly one of net/syscall/kill/stress"),
    };
    Ok(Ready::new(
        f,
        exp_target,
        controls,
        (kind, detail, queues, plan),
    ))
}

/// "SIGKILL every 30s to ..." for the report.
pub(super) fn kill_detail(spec: &KillSpec, whom: &str) -> String {
    let every = spec
        .every
        .map_or("once".to_string(), |e| format!("every {e:?}"));
    format!("{} {every} to {whom}", crate::signal::name(spec.signal))
}

impl Ready {
    /// `made`: kind, detail, kernel queues and plan.
    pub(super) fn new(
        f: &PlannedFault,
        target: &ExpTarget,
        controls: &Controls,
        made: (String, String, (Option<u32>, Option<u32>), Plan),
    ) -> Ready {
        let (kind, detail, queues, plan) = made;
        Ready {
            name: f.name.clone(),
            queues,
            start: f.start,
            duration: f.duration,
            kind,
            detail,
            plan,
            target: target.clone(),
            dry_run: controls.dry_run,
        }
    }
}
