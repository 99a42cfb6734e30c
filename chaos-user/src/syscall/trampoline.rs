//! Programs attached through a BPF trampoline on a kernel function named by BTF id: BPF LSM on
//! `bpf_lsm_<hook>` and fmod_ret on `security_<hook>` (which aya 0.14 does not load:
//! "BPF_MODIFY_RETURN: not supported yet"). Loading them here rather than through aya needs
//! only the function's id, which `KernelCache` keeps per kernel build, where aya's LSM loader
//! parses all of the kernel's BTF at every start. The program's instructions are relocated
//! against the maps of the already loaded object (so it shares their config and counters),
//! loaded with BPF_PROG_LOAD, and attached with BPF_RAW_TRACEPOINT_OPEN, which returns an
//! fd-owned link: it vanishes with the process.

use crate::{
    bpf_sys::{sys_bpf, zeroed_attr},
    ebpf::CALLS,
};
use aya_obj::generated::{
    bpf_attach_type::{self, BPF_LSM_MAC, BPF_MODIFY_RETURN},
    bpf_cmd, bpf_prog_info,
    bpf_prog_type::{self, BPF_PROG_TYPE_LSM, BPF_PROG_TYPE_TRACING},
};
use std::{
    collections::HashSet,
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    path::Path,
};

/// How a program hooks its kernel function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// BPF LSM on `bpf_lsm_<hook>`: needs `bpf` among the active LSMs.
    Lsm,
    /// fmod_ret on `security_<hook>`: needs the function on the error-injection list.
    FModRet,
}

impl Kind {
    fn types(self) -> (bpf_prog_type, bpf_attach_type) {
        match self {
            Kind::Lsm => (BPF_PROG_TYPE_LSM, BPF_LSM_MAC),
            Kind::FModRet => (BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN),
        }
    }

    /// The name in messages: "lsm" or "fmod_ret".
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lsm => "lsm",
            Kind::FModRet => "fmod_ret",
        }
    }
}

pub struct Trampoline {
    /// Kept so the program outlives a failed attach for the error path; the link holds it too.
    _prog: OwnedFd,
    link: OwnedFd,
    pub program_id: u32,
    pub kind: Kind,
}

/// Loads program `prog` of the embedded object as `kind` on the kernel function with BTF id
/// `func_id`, sharing the maps of the loaded object (`map_fd` gives their fds), and attaches it.
/// Errors: why, in words (the verifier log's last lines for a refused load).
pub fn attach(
    map_fd: impl Fn(&str) -> Option<RawFd>,
    prog: &str,
    kind: Kind,
    func_id: u32,
) -> Result<Trampoline, String> {
    let mut obj = aya_obj::Object::parse(CALLS).map_err(|e| format!("parsing the object: {e}"))?;
    let mut maps = Vec::new();
    for (name, m) in &obj.maps {
        let fd = map_fd(name).ok_or_else(|| format!("map {name} is not loaded"))?;
        maps.push((name.clone(), fd, m.clone()));
    }
    let text: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
    obj.relocate_maps(maps.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)), &text)
        .map_err(|e| format!("relocating maps: {e}"))?;
    obj.relocate_calls(&text)
        .map_err(|e| format!("relocating calls: {e}"))?;
    let p = obj
        .programs
        .get(prog)
        .ok_or_else(|| format!("program {prog} not in the object"))?;
    let insns = &obj.functions[&p.function_key()].instructions;
    let license = CString::new("GPL").expect("no NUL");

    let load = |log: &mut Vec<u8>| {
        let mut attr = zeroed_attr();
        // SAFETY: writing the prog-load member of a zeroed union.
        let a = unsafe { &mut attr.__bindgen_anon_3 };
        let (prog_type, attach_type) = kind.types();
        a.prog_type = prog_type as u32;
        a.expected_attach_type = attach_type as u32;
        a.attach_btf_id = func_id;
        a.insns = insns.as_ptr() as u64;
        a.insn_cnt = insns.len() as u32;
        a.license = license.as_ptr() as u64;
        for (d, s) in a.prog_name.iter_mut().zip(prog.bytes().take(15)) {
            *d = s as libc::c_char;
        }
        if !log.is_empty() {
            a.log_level = 1;
            a.log_buf = log.as_mut_ptr() as u64;
            a.log_size = log.len() as u32;
        }
        sys_bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)
    };
    let fd = match crate::startup::load(|| load(&mut Vec::new())) {
        Ok(fd) => fd,
        // Interrupted, not refused: loading again with a log would only take longer.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => {
            return Err(format!("BPF_PROG_LOAD ({}) interrupted: {e}", kind.name()));
        }
        Err(e) => {
            // Again with a log, to say why.
            let mut log = vec![0u8; 1 << 20];
            let _ = load(&mut log);
            let text = String::from_utf8_lossy(&log);
            let tail: Vec<_> = text.trim_end_matches('\0').lines().rev().take(3).collect();
            return Err(format!(
                "BPF_PROG_LOAD ({}) refused: {e}{}",
                kind.name(),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                    )
                }
            ));
        }
    };
    // SAFETY: the kernel just returned this fd to us.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };

    let mut attr = zeroed_attr();
    attr.raw_tracepoint.prog_fd = prog_fd.as_raw_fd() as u32;
    let link = sys_bpf(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr)
        .map_err(|e| format!("attaching {}: {e}", kind.name()))?;
    // SAFETY: as above.
    let link = unsafe { OwnedFd::from_raw_fd(link as RawFd) };
    let program_id = crate::bpf_sys::obj_info::<bpf_prog_info>(std::os::fd::AsFd::as_fd(&prog_fd))
        .map_or(0, |i| i.id);
    Ok(Trampoline {
        _prog: prog_fd,
        link,
        program_id,
        kind,
    })
}

impl Trampoline {
    /// Pins the link so the fault outlives chaos (--background).
    pub fn pin(&self, path: &Path) -> std::io::Result<()> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| std::io::Error::other("NUL in pin path"))?;
        let mut attr = zeroed_attr();
        attr.__bindgen_anon_4.pathname = c.as_ptr() as u64;
        attr.__bindgen_anon_4.bpf_fd = self.link.as_raw_fd() as u32;
        sys_bpf(bpf_cmd::BPF_OBJ_PIN, &mut attr).map(drop)
    }
}
