//! Turning the kernel's TCX hooks on while the classifier is still being verified.
//!
//! Packets run TCX programs only once a static key is on, and the kernel turns it on after the
//! first TCX attachment on the host has waited out an RCU grace period (kernel/bpf/tcx.c:
//! `tcx_entry_sync()` then `tcx_skeys_inc()`; 6-15 ms on a 2-vCPU machine). On a node where no
//! TCX program is attached, a drop was in force only that long after its own attach. So a
//! pass-through program (`return TC_ACT_UNSPEC`: the next program decides) is attached at the
//! fault's hooks as soon as chaos starts, on a thread of its own; when the classifier attaches,
//! the key is on and it is in force at once. The warm-up link is fd-owned (gone with chaos,
//! also on SIGKILL) and closed as soon as the classifier is attached.
//!
//! Where a TCX link exists already (any interface, any namespace: Cilium's, another chaos's),
//! the key is on and there is no warm-up: its attach holds the RTNL lock for a grace period,
//! which would only hold the classifier's attach back.

use super::Direction;
use crate::{
    bpf_sys::{sys_bpf, zeroed_attr},
    netns::{self, Netns},
};
use aya_obj::generated::{bpf_attach_type, bpf_cmd, bpf_prog_type};
use std::{
    os::fd::{FromRawFd, OwnedFd},
    sync::mpsc,
};

/// The warm-up in progress: dropping it closes its links (on its own thread: each close waits
/// out a grace period too).
pub struct Warmup {
    done: Option<mpsc::Sender<()>>,
}

/// Starts attaching the pass-through program at `hooks` of `iface` (in `netns`). Failures are
/// only logged: without the warm-up the fault starts as it did before, a little later.
pub fn start(iface: &str, netns: Option<&Netns>, hooks: &[Direction]) -> Warmup {
    let (done, wait) = mpsc::channel::<()>();
    let netns = netns.and_then(|n| n.try_clone().ok());
    let (iface, hooks) = (iface.to_string(), hooks.to_vec());
    let spawned = std::thread::Builder::new()
        .name("tcx-warmup".into())
        .spawn(move || {
            if tcx_in_use() {
                tracing::debug!("TCX warm-up skipped: a TCX link exists, the hook is on");
                return;
            }
            let links = netns::within(netns.as_ref(), || attach_all(&iface, &hooks));
            match links {
                Ok(Ok(links)) => {
                    tracing::debug!("TCX warm-up attached at {hooks:?} of {iface}");
                    // Held until the classifier is attached (or chaos gives up).
                    let _ = wait.recv();
                    drop(links);
                    tracing::debug!("TCX warm-up detached");
                }
                Ok(Err(e)) => tracing::debug!("TCX warm-up on {iface}: {e}"),
                Err(e) => tracing::debug!("TCX warm-up on {iface}: {e}"),
            }
        });
    if let Err(e) = spawned {
        tracing::debug!("TCX warm-up thread: {e}");
    }
    Warmup { done: Some(done) }
}

impl Drop for Warmup {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// Attaches the pass-through program at `hooks` of `iface` (in `netns`) and returns its
/// descriptors, program first: the links last until they are dropped. What the warm-up does,
/// for `bench-lifecycle`, which times it (the kernel's part of a first TCX attach: one RCU
/// grace period) and holds one to start chaos on a host where the TCX hook is on.
///
/// Errors: the namespace cannot be entered, no interface `iface`, or a refused bpf() call.
pub fn hold(
    iface: &str,
    netns: Option<&Netns>,
    hooks: &[Direction],
) -> std::io::Result<Vec<OwnedFd>> {
    netns::within(netns, || attach_all(iface, hooks))
        .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// Whether some TCX link exists on this host (the kernel's static key is then on).
pub fn tcx_in_use() -> bool {
    use aya::programs::{links::LinkType, loaded_links};
    loaded_links()
        .flatten()
        .any(|l| matches!(l.link_type(), Ok(LinkType::Tcx)))
}

fn attach_all(iface: &str, hooks: &[Direction]) -> std::io::Result<Vec<OwnedFd>> {
    let ifindex = crate::netns::ifindex(iface).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no interface {iface}"),
        )
    })?;
    let prog = load_pass()?;
    let mut links = vec![prog];
    for &hook in hooks {
        let ty = match hook {
            Direction::Egress => bpf_attach_type::BPF_TCX_EGRESS,
            _ => bpf_attach_type::BPF_TCX_INGRESS,
        };
        let mut attr = zeroed_attr();
        attr.link_create.__bindgen_anon_1.prog_fd = fd_of(&links[0]);
        attr.link_create.__bindgen_anon_2.target_ifindex = ifindex;
        attr.link_create.attach_type = ty as u32;
        let fd = sys_bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)?;
        // SAFETY: the kernel just returned this fd to us.
        links.push(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
    Ok(links)
}

/// `r0 = TC_ACT_UNSPEC (-1); exit`, a SCHED_CLS program (two instructions, verified at once).
fn load_pass() -> std::io::Result<OwnedFd> {
    // mov64 r0, -1 (BPF_ALU64 | BPF_MOV | BPF_K); exit (BPF_JMP | BPF_EXIT).
    let insns: [u64; 2] = [0xffff_ffff_0000_00b7, 0x0000_0000_0000_0095];
    let license = c"GPL";
    let mut attr = zeroed_attr();
    // SAFETY: writing the prog-load member of a zeroed union.
    let a = unsafe { &mut attr.__bindgen_anon_3 };
    a.prog_type = bpf_prog_type::BPF_PROG_TYPE_SCHED_CLS as u32;
    a.insns = insns.as_ptr() as u64;
    a.insn_cnt = insns.len() as u32;
    a.license = license.as_ptr() as u64;
    for (d, s) in a.prog_name.iter_mut().zip(b"chaos_warmup") {
        *d = *s as libc::c_char;
    }
    let fd = sys_bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn fd_of(fd: &OwnedFd) -> u32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd() as u32
}
