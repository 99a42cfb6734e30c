//! What the kernel offers (features, probed by `doctor`) and what a fault family can do with
//! it (`FaultSupport`): the shared vocabulary between `doctor`, which probes, and the families,
//! which each say what their faults need (`net::support`, `syscall::support`).

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Feature {
    pub name: &'static str,
    pub available: bool,
    /// How it was probed and what the kernel said.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FaultSupport {
    pub fault: &'static str,
    pub available: bool,
    /// The mechanism used here, or why the fault is not available.
    pub detail: String,
}

pub const TCX: &str = "tcx";
pub const CLS_BPF: &str = "cls_bpf";
pub const CGROUP_SOCK_ADDR: &str = "cgroup_sock_addr";
pub const SET_RETVAL: &str = "bpf_set_retval";
pub const BPF_LSM: &str = "bpf_lsm";
pub const TRAMPOLINE: &str = "trampoline";
pub const KPROBE: &str = "kprobe";
pub const OVERRIDE_RETURN: &str = "bpf_override_return";
pub const FQ: &str = "fq";
/// A tracepoint on syscall entry whose program calls bpf_send_signal (crash faults).
pub const SEND_SIGNAL: &str = "send_signal";

/// Whether `name` was probed and is available.
pub fn has(features: &[Feature], name: &str) -> bool {
    features.iter().any(|f| f.name == name && f.available)
}

/// What the probe of `name` found (why it is out), or "not probed".
pub fn reason<'a>(features: &'a [Feature], name: &str) -> &'a str {
    features
        .iter()
        .find(|x| x.name == name)
        .map_or("not probed", |x| x.detail.as_str())
}

/// A row of the fault table.
pub fn row(fault: &'static str, (available, detail): (bool, String)) -> FaultSupport {
    FaultSupport {
        fault,
        available,
        detail,
    }
}

/// Which groups of features to probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// TCX and cls_bpf (every network fault).
    pub tc: bool,
    /// The fq qdisc (delay, reorder, rate).
    pub fq: bool,
    /// cgroup sock_addr hooks and bpf_set_retval (connect, sendmsg, bind).
    pub sock: bool,
    /// BPF LSM, trampolines and kprobes, with the kernel's BTF (every other syscall).
    pub hooks: bool,
    /// Syscall tracepoints with bpf_send_signal (crash faults).
    pub crash: bool,
}

impl Needs {
    pub const ALL: Needs = Needs {
        tc: true,
        fq: true,
        sock: true,
        hooks: true,
        crash: true,
    };

    /// Both sets of probes: what an experiment of several faults needs (each family says what
    /// one of its faults needs: `net::needs`, `syscall::needs`).
    pub fn union(self, o: Needs) -> Needs {
        Needs {
            tc: self.tc || o.tc,
            fq: self.fq || o.fq,
            sock: self.sock || o.sock,
            hooks: self.hooks || o.hooks,
            crash: self.crash || o.crash,
        }
    }
}
