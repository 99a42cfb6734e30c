//! Who a fault applies to: a cgroup v2 (and its descendants) or the cgroup of a process.

use crate::{cgroup::Cgroup, error::Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Cgroup(String),
    Pid(u32),
}

impl Target {
    pub fn from_args(cgroup: Option<String>, pid: Option<u32>) -> Option<Self> {
        cgroup.map(Target::Cgroup).or(pid.map(Target::Pid))
    }

    pub fn resolve(&self) -> Result<Cgroup> {
        match self {
            Target::Cgroup(p) => Cgroup::resolve(p),
            Target::Pid(pid) => Cgroup::of_pid(*pid),
        }
    }
}
