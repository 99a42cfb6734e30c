//! A packet fault on Kubernetes pods: each pod's own interface, found inside its network
//! namespace (not by the name eth0). A pod whose every running container was chosen is faulted
//! on its interface as a whole; otherwise each chosen container is scoped by its cgroup on that
//! interface (containers of a pod share the namespace, not the cgroup). A pod on the node's
//! network (hostNetwork) has no interface of its own: `--iface` names the node's, and its
//! containers are scoped by cgroup.

use super::{NetFaultSpec, NetSpec};
use crate::{
    controls::Controls,
    error::{Error, Result},
    k8s::Resolved,
    target::Target,
};
use std::time::Duration;

/// One part of a packet fault on Kubernetes targets.
pub struct PodPart<'a> {
    /// `namespace/pod` or `namespace/pod/container`.
    pub label: String,
    pub spec: NetSpec,
    /// The spec as written with the pod's namespace and interface filled in, to fault a
    /// restarted container the same way (`attach_to`).
    pub input: NetFaultSpec,
    /// The container, for a part scoped to one (which follows it across restarts).
    pub container: Option<&'a Resolved>,
}

/// A part for each pod or container; errors name the pod and what to give.
pub fn specs_for<'a>(
    input: &NetFaultSpec,
    targets: &'a [Resolved],
    duration: Duration,
    controls: &Controls,
) -> Result<Vec<PodPart<'a>>> {
    let mut out = Vec::new();
    let mut pods: Vec<Vec<&Resolved>> = Vec::new();
    for r in targets {
        match pods.iter_mut().find(|p| p[0].netns_inode == r.netns_inode) {
            Some(p) => p.push(r),
            None => pods.push(vec![r]),
        }
    }
    for pod in pods {
        let first = pod[0];
        let host = first.host_network();
        let mut f = input.clone();
        if host {
            if f.iface.is_none() {
                return Err(Error::input(
                    "--iface",
                    format!(
                        "pod {} uses the node's network (hostNetwork): give the node's \
                         interface with --iface; the fault is then scoped to its containers' \
                         cgroups",
                        first.pod_label()
                    ),
                ));
            }
        } else {
            f.netns = Some(first.netns.to_string_lossy().into_owned());
            f.iface = Some(match f.iface.take() {
                Some(i) => i,
                None => pod_interface(first)?,
            });
        }
        let whole_pod = !host && pod.len() == first.siblings;
        if whole_pod {
            out.push(PodPart {
                label: first.pod_label(),
                spec: f.clone().into_spec(None, duration, controls.clone())?,
                input: f,
                container: None,
            });
            continue;
        }
        for r in pod {
            let target = Some(Target::Cgroup(r.cgroup.clone()));
            out.push(PodPart {
                label: r.label(),
                spec: f.clone().into_spec(target, duration, controls.clone())?,
                input: f.clone(),
                container: Some(r),
            });
        }
    }
    Ok(out)
}

/// The one interface but `lo` in the pod's network namespace.
fn pod_interface(r: &Resolved) -> Result<String> {
    let found = crate::netns::interfaces_in(&r.netns)?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::input(
            "--pod",
            format!(
                "pod {} has no interface but lo in its network namespace ({})",
                r.pod_label(),
                r.netns.display()
            ),
        )),
        many => Err(Error::input(
            "--iface",
            format!(
                "pod {} has several interfaces ({}); name one with --iface",
                r.pod_label(),
                many.join(", ")
            ),
        )),
    }
}

/// The same fault on a container that replaced one (`k8s::follow`): on the same interface,
/// scoped to the new container's cgroup, for the duration left.
pub fn attach_to(input: NetFaultSpec, controls: Controls) -> crate::k8s::AttachTo {
    Box::new(move |r: &Resolved, left: Duration| {
        let target = Some(Target::Cgroup(r.cgroup.clone()));
        let mut input = input.clone();
        if input.netns.is_some() {
            input.netns = Some(r.netns.to_string_lossy().into_owned());
        }
        let plan = input
            .into_spec(target, left, controls.clone())?
            .validate()?;
        let watched = plan.watched()?;
        let fault = super::NetFault::attach(&plan)?;
        Ok((Box::new(fault) as Box<dyn crate::fault::Fault>, watched))
    })
}
