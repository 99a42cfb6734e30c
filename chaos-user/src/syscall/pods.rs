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
