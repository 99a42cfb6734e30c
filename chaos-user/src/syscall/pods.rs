//! A syscall fault on Kubernetes containers: one spec per container, scoped to its cgroup
//! (containers of one pod have cgroups of their own, so a sibling is spared).

use super::{SyscallFaultSpec, SyscallSpec};
use crate::{controls::Controls, k8s::Resolved, target::Target};
use std::time::Duration;

/// `(namespace/pod/container, spec)` for each chosen container.
pub fn specs_for(
    input: &SyscallFaultSpec,
    targets: &[Resolved],
    duration: Duration,
    controls: &Controls,
) -> Vec<(String, SyscallSpec)> {
    targets
        .iter()
        .map(|r| {
            let target = Target::Cgroup(r.cgroup.clone());
            let spec = input.clone().into_spec(target, duration, controls.clone());
            (r.label(), spec)
        })
        .collect()
}

/// The same fault on a container that replaced one (`k8s::follow`): scoped to its cgroup, for
/// the duration left.
pub fn attach_to(input: SyscallFaultSpec, controls: Controls) -> crate::k8s::AttachTo {
    Box::new(move |r: &Resolved, left: Duration| {
        let target = Target::Cgroup(r.cgroup.clone());
        let spec = input
            .clone()
            .into_spec(target.clone(), left, controls.clone());
        let fault = super::SyscallFault::attach(&spec.validate()?)?;
        let watched = vec![crate::watch::Watched::target(&target)?];
        Ok((Box::new(fault) as Box<dyn crate::fault::Fault>, watched))
    })
}
