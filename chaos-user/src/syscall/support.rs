//! Which syscall faults this kernel can run, from the probed features (`chaos doctor`), in the
//! order `hook.rs` tries the backends: BPF LSM, then fmod_ret, then kprobe + override.

use super::{CATALOGUE, Entry, Hook, catalogue::KP_CALL};
use crate::support::{
    BPF_LSM, CGROUP_SOCK_ADDR, FaultSupport, Feature, KPROBE, Needs, OVERRIDE_RETURN, SEND_SIGNAL,
    SET_RETVAL, TRAMPOLINE, has, reason,
};

/// What `chaos doctor` must probe for a fault of this syscall: the cgroup sock_addr hooks, or
/// the LSM-hook backends (BPF LSM, fmod_ret, kprobe) with the kernel's BTF.
pub fn needs(entry: &Entry) -> Needs {
    match entry.hook {
        Hook::SockAddr { .. } => Needs {
            sock: true,
            ..Needs::default()
        },
        Hook::Lsm { .. } => Needs {
            hooks: true,
            ..Needs::default()
        },
    }
}

/// The `chaos doctor` row of every crash fault (one mechanism for every call).
pub const CRASH_ROW: &str = "syscall crash (--signal)";

/// What a crash fault needs probed: syscall tracepoints with bpf_send_signal.
pub fn crash_needs() -> Needs {
    Needs {
        crash: true,
        ..Needs::default()
    }
}

/// One row per syscall of the catalogue, and one for crash faults.
pub fn support(f: &[Feature]) -> Vec<FaultSupport> {
    let sock_addr = match (has(f, CGROUP_SOCK_ADDR), has(f, SET_RETVAL)) {
        (true, true) => (
            true,
            "cgroup_sock_addr hooks (IPv4, IPv6) + bpf_set_retval".to_string(),
        ),
        (true, false) => (
            false,
            "bpf_set_retval missing (Linux < 5.18): only EPERM could be returned".to_string(),
        ),
        _ => (
            false,
            "cgroup_sock_addr programs cannot be attached".to_string(),
        ),
    };
    CATALOGUE
        .iter()
        .map(|e| {
            let (available, detail) = match e.hook {
                Hook::SockAddr { .. } => sock_addr.clone(),
                Hook::Lsm { hook, kprobe, .. } => lsm_backend(f, hook, kprobe == KP_CALL),
            };
            FaultSupport {
                fault: e.full_name,
                available,
                detail,
            }
        })
        .chain(std::iter::once(FaultSupport {
            fault: CRASH_ROW,
            available: has(f, SEND_SIGNAL),
            detail: if has(f, SEND_SIGNAL) {
                "bpf_send_signal on syscall entry tracepoints (write, read, fsync, fdatasync \
                 with --path; open, rename, connect, ... by scope)"
                    .into()
            } else {
                reason(f, SEND_SIGNAL).into()
            },
        }))
        .collect()
}

/// Which backend an LSM-hook syscall gets here, and why the ones before it are out.
/// `no_path`: at syscall entry the call's path is not looked up yet (no --path with kprobes).
fn lsm_backend(f: &[Feature], hook: &str, no_path: bool) -> (bool, String) {
    if has(f, BPF_LSM) {
        (true, format!("BPF LSM on {hook}"))
    } else if has(f, TRAMPOLINE) {
        (
            true,
            format!(
                "fmod_ret on security_{hook} (BPF LSM out: {})",
                reason(f, BPF_LSM)
            ),
        )
    } else if has(f, KPROBE) && has(f, OVERRIDE_RETURN) {
        (
            true,
            format!(
                "kprobe + bpf_override_return on the syscall entry{} (BPF LSM out: {}; \
                 fmod_ret out: {})",
                if no_path { ", without --path" } else { "" },
                reason(f, BPF_LSM),
                reason(f, TRAMPOLINE)
            ),
        )
    } else {
        let kprobe = if has(f, KPROBE) {
            reason(f, OVERRIDE_RETURN)
        } else {
            reason(f, KPROBE)
        };
        (
            false,
            format!(
                "BPF LSM out: {}; fmod_ret out: {}; kprobe + bpf_override_return out: {kprobe}. \
                 Kernels with BPF LSM active (Debian 6.1/6.12/7.3) run it",
                reason(f, BPF_LSM),
                reason(f, TRAMPOLINE)
            ),
        )
    }
}

#[cfg(test)]
mod needs_tests {
    use super::*;
    use crate::syscall::catalogue::find;

    /// `chaos run` probes what its faults need and nothing else.
    #[test]
    fn needs_follow_the_hook() {
        for name in ["connect", "sendmsg", "bind"] {
            let n = needs(find(name).expect("in the catalogue"));
            assert!(n.sock && !n.hooks && !n.tc, "{name}");
        }
        for name in ["write", "open", "listen", "fork"] {
            let n = needs(find(name).expect("in the catalogue"));
            assert!(n.hooks && !n.sock && !n.tc, "{name}");
        }
    }
}
