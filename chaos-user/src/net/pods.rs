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

/// `(target label, spec)` for each pod or container; errors name the pod and what to give.
pub fn specs_for(
    input: &NetFaultSpec,
    targets: &[Resolved],
    duration: Duration,
    controls: &Controls,
) -> Result<Vec<(String, NetSpec)>> {
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
            let spec = f.into_spec(None, duration, controls.clone())?;
            out.push((first.pod_label(), spec));
            continue;
        }
        for r in pod {
            let target = Some(Target::Cgroup(r.cgroup.clone()));
            let spec = f.clone().into_spec(target, duration, controls.clone())?;
            out.push((r.label(), spec));
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
