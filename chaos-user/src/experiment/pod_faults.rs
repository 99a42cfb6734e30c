//! An experiment's faults on Kubernetes targets (`target: {pod: ..}` or `{namespace: ..,
//! selector: ..}`): the containers are resolved through CRI and `mode` chooses among them once
//! for the whole experiment; each fault then has a part per pod or container (as `chaos net`
//! and `chaos syscall` do with --pod), attached together as one fault. A kill chooses anew at
//! each of its rounds.

use super::{
    faults::{Plan, Ready, kill_detail},
    plan::{ExpTarget, PlannedFault},
};
use crate::{
    controls::Controls,
    error::Result,
    k8s::{Query, Resolved},
    kill::KillTarget,
    multi::{MultiFault, Part},
    net::NetFault,
    syscall::SyscallFault,
    watch::Watched,
};

/// The containers the experiment's faults act on, `mode` applied.
pub fn choose(q: &Query) -> Result<Vec<Resolved>> {
    let seed = crate::k8s::clock_seed();
    Ok(q.mode.pick(q.resolve_blocking()?, seed))
}

pub fn ready(
    f: &PlannedFault,
    target: &ExpTarget,
    chosen: &[Resolved],
    controls: &Controls,
) -> Result<Ready> {
    let ExpTarget::Pods(q) = target else {
        unreachable!("only pod targets come here")
    };
    let queues = (controls.max_faults, None);
    let made = if let Some(s) = &f.spec.stress {
        let spec = s.clone().into_spec(f.duration, controls.force)?;
        let targets = chosen
            .iter()
            .map(|r| (r.label(), crate::target::Target::Pid(r.pid)))
            .collect();
        let plan = crate::stress::plan(spec, targets, "--pod")?;
        (
            plan.spec.kind().to_string(),
            plan.detail(),
            queues,
            Plan::Stress(plan),
        )
    } else if let Some(k) = &f.spec.kill {
        let spec = k.clone().into_spec(f.duration, controls.force)?;
        let detail = kill_detail(&spec, &format!("{target} (chosen at each round)"));
        (
            "kill".to_string(),
            detail,
            queues,
            Plan::Kill(spec, KillTarget::Pods(q.clone())),
        )
    } else if let Some(n) = &f.spec.net {
        let mut plans = Vec::new();
        for p in crate::net::pods::specs_for(n, chosen, f.duration, controls)? {
            plans.push((p.label, p.spec.validate()?));
        }
        let (kind, detail) = describe(plans.iter().map(|(l, p)| (l, p.fault, p.detail.as_str())));
        let queues = (plans[0].1.controls.max_faults, plans[0].1.controls.after);
        (kind, detail, queues, Plan::NetParts(plans))
    } else {
        let s = f
            .spec
            .syscall
            .as_ref()
            .expect("plan::check demands one kind");
        let mut plans = Vec::new();
        for (label, spec) in crate::syscall::pods::specs_for(s, chosen, f.duration, controls) {
            plans.push((label, spec.validate()?, spec.target.clone()));
        }
        let names: Vec<String> = plans.iter().map(|(_, p, _)| p.name()).collect();
        let (_, detail) = describe(plans.iter().map(|(l, p, _)| (l, "", p.detail())));
        let c = plans[0].1.controls();
        let (q0, q1) = (c.max_faults, c.after);
        (
            names[0].clone(),
            detail,
            (q0, q1),
            Plan::SyscallParts(plans),
        )
    };
    Ok(Ready::new(f, target, controls, made))
}

/// The kind of the first part, and "LABEL: detail; ..." for the report.
fn describe<'a>(
    parts: impl Iterator<Item = (&'a String, &'static str, &'a str)>,
) -> (String, String) {
    let mut kind = String::new();
    let mut details = Vec::new();
    for (label, k, detail) in parts {
        if kind.is_empty() {
            kind = k.to_string();
        }
        details.push(format!("{label}: {detail}"));
    }
    (kind, details.join("; "))
}

/// Every part attached (a failure detaches those already attached, by drop).
pub fn attach(plan: &Plan) -> Result<MultiFault> {
    let mut parts = Vec::new();
    match plan {
        Plan::NetParts(v) => {
            for (label, p) in v {
                let watched = p.watched()?;
                parts.push(Part::new(
                    label.clone(),
                    Box::new(NetFault::attach(p)?),
                    watched,
                ));
            }
        }
        Plan::SyscallParts(v) => {
            for (label, p, t) in v {
                let watched = vec![Watched::target(t)?];
                parts.push(Part::new(
                    label.clone(),
                    Box::new(SyscallFault::attach(p)?),
                    watched,
                ));
            }
        }
        _ => unreachable!("only parts come here"),
    }
    Ok(MultiFault::new(parts))
}
