//! One fault outside an experiment (what `chaos agent` is asked for): an experiment file's
//! fault entry with its own target and duration, checked and made ready exactly as the faults of
//! an experiment are.

use super::{
    check,
    faults::{Ready, prepare},
    plan::{Abort, Experiment},
    spec::{FaultEntry, TargetSpec},
};
use crate::{
    error::Result, kill::KillFaultSpec, net::NetFaultSpec, scalar::Dur, syscall::SyscallFaultSpec,
};
use std::time::Duration;

/// `{target: {...}, duration: 30s, net|syscall|kill: {...}}` (name optional), as JSON or YAML.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    pub name: Option<String>,
    pub target: TargetSpec,
    pub duration: Dur,
    pub net: Option<NetFaultSpec>,
    pub syscall: Option<SyscallFaultSpec>,
    pub kill: Option<KillFaultSpec>,
}

/// Checks the request (errors name the field: `target`, `faults[0] (NAME)...`) and the system
/// (interfaces, cgroups, pods through CRI, guards unless `force`); nothing is attached.
pub fn ready(req: FaultRequest, dry_run: bool, force: bool) -> Result<Ready> {
    let duration = req.duration.0;
    let target_spec = req.target.clone();
    let target = check::target(req.target)?;
    let entry = FaultEntry {
        name: req.name,
        start: None,
        duration: None,
        net: req.net,
        syscall: req.syscall,
        kill: req.kill,
        stress: None,
    };
    let faults = check::faults(vec![entry], duration)?;
    let exp = Experiment {
        name: String::new(),
        hypothesis: String::new(),
        description: None,
        target,
        target_spec,
        duration,
        probes: Vec::new(),
        faults,
        abort: Abort {
            consecutive_failures: None,
            failure_ratio: None,
        },
        recovery_timeout: Duration::ZERO,
        schedule: None,
    };
    let mut ready = prepare(&exp, dry_run, force)?;
    super::check_kernel(&ready)?;
    Ok(ready.remove(0))
}
