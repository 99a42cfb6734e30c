//! The few bpf(2) commands aya 0.14 does not wrap: fmod_ret loading and attaching (syscall
//! faults) and BPF_PROG_TEST_RUN (the classifier benchmark).

use aya_obj::generated::{bpf_attr, bpf_cmd};
use std::os::fd::{AsFd, AsRawFd};

pub(crate) fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<i64> {
    // SAFETY: attr is a valid, fully initialised bpf_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub(crate) fn zeroed_attr() -> bpf_attr {
    // SAFETY: bpf_attr is plain data for which all-zero is the documented "unset".
    unsafe { std::mem::zeroed() }
}

/// Runs a loaded program `repeat` times on `packet` in the kernel (BPF_PROG_TEST_RUN); returns
/// its return value and the kernel's mean time per run in ns.
pub fn prog_test_run(prog: impl AsFd, packet: &[u8], repeat: u32) -> std::io::Result<(u32, u32)> {
    let mut attr = zeroed_attr();
    attr.test.prog_fd = prog.as_fd().as_raw_fd() as u32;
    attr.test.data_in = packet.as_ptr() as u64;
    attr.test.data_size_in = packet.len() as u32;
    attr.test.repeat = repeat;
    sys_bpf(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr)?;
    // SAFETY: reading back the member the kernel filled in.
    let t = unsafe { attr.test };
    Ok((t.retval, t.duration))
}
