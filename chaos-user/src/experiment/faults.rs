//! An experiment's faults: built into the same specs the `chaos net` and `chaos syscall`
//! commands build, validated against the system before anything runs, attached per phase.

use super::plan::{Experiment, PlannedFault};
use crate::{
    controls::Controls,
    error::{Error, Result},
    net::{NetFault, NetPlan},
    session::Fault,
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
    target: Target,
}

enum Plan {
    Net(Box<NetPlan>),
    Syscall(Box<SyscallPlan>),
}

impl Ready {
    /// Loads this fault's object and verifies its programs now, so that `attach` at the phase
    /// start only attaches (LSM programs, which need the kernel's BTF, still load then).
    pub fn preload(&self) -> Result<()> {
        crate::ebpf::preload(self.queues.0, self.queues.1, &self.programs())
    }

    fn programs(&self) -> Vec<&'static str> {
        use chaos_common::maps::PROG_CGROUP_INGRESS;
        match &self.plan {
            Plan::Net(p) => {
                let mut names: Vec<&'static str> = p
                    .hooks
                    .iter()
                    .map(|&h| crate::net::classifier_for(h, p.ifb))
                    .collect();
                if p.cgroup_ingress {
                    names.push(PROG_CGROUP_INGRESS);
                }
                names
            }
            Plan::Syscall(p) => match p.as_ref() {
                SyscallPlan::Sock(s) => match s.entry.hook {
                    crate::syscall::Hook::SockAddr { v4, v6 } => vec![v4, v6],
                    _ => Vec::new(),
                },
                SyscallPlan::Hook(_) => Vec::new(),
            },
        }
    }

    /// What `chaos doctor` must probe for this fault, as its family says.
    fn needs(&self) -> Needs {
        match &self.plan {
            Plan::Net(p) => crate::net::needs(p.action),
            Plan::Syscall(p) => p.needs(),
        }
    }

    /// What the fault acts on, as it is now (taken when it attaches): the run ends when one
    /// vanishes (crate::watch).
    pub fn watched(&self) -> Result<Vec<Watched>> {
        match &self.plan {
            Plan::Net(p) => p.watched(),
            Plan::Syscall(_) => Ok(vec![Watched::target(&self.target)?]),
        }
    }

    /// Loads and attaches; the kernel ends it at its own deadline, `duration` from now.
    pub fn attach(&self) -> Result<Box<dyn Fault>> {
        Ok(match &self.plan {
            Plan::Net(p) => Box::new(NetFault::attach(p)?),
            Plan::Syscall(p) => Box::new(SyscallFault::attach(p)?),
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
    exp.faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let at = || format!("faults[{i}] ({})", f.name);
            ready(f, &exp.target, &controls).map_err(|e| match e {
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
        if let Some(s) = support.iter().find(|s| s.fault == r.kind && !s.available) {
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

fn ready(f: &PlannedFault, target: &Target, controls: &Controls) -> Result<Ready> {
    let (kind, detail, queues, plan) = match (&f.spec.net, &f.spec.syscall) {
        (Some(n), None) => {
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
        (None, Some(s)) => {
            let spec = s
                .clone()
                .into_spec(target.clone(), f.duration, controls.clone());
            let p = spec.validate()?;
            let q = (spec.controls.max_faults, spec.controls.after);
            let name = p.name();
            (name, p.detail().to_string(), q, Plan::Syscall(Box::new(p)))
        }
        _ => unreachable!("plan::check demands exactly one of net/syscall"),
    };
    Ok(Ready {
        name: f.name.clone(),
        queues,
        start: f.start,
        duration: f.duration,
        kind,
        detail,
        plan,
        target: target.clone(),
    })
}
