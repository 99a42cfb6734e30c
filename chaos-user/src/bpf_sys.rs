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

/// The id of the program behind the link pinned at `path` (BPF_OBJ_GET, then the link's info).
pub fn pinned_link_prog_id(path: &std::path::Path) -> std::io::Result<u32> {
    use aya_obj::generated::bpf_link_info;
    use std::os::fd::{FromRawFd, OwnedFd};
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(std::io::Error::other)?;
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_4.pathname = c.as_ptr() as u64;
    let fd = sys_bpf(bpf_cmd::BPF_OBJ_GET, &mut attr)?;
    // SAFETY: the kernel just returned this fd to us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    Ok(obj_info::<bpf_link_info>(fd.as_fd())?.prog_id)
}

/// The kernel's description (`bpf_prog_info`, `bpf_link_info`) of the object behind `fd`
/// (BPF_OBJ_GET_INFO_BY_FD). `T` must be one of those plain-data info structs.
pub(crate) fn obj_info<T: Copy>(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<T> {
    // SAFETY: T is a bpf_*_info struct: plain data for which all-zero is valid.
    let mut info: T = unsafe { std::mem::zeroed() };
    let mut attr = zeroed_attr();
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = size_of::<T>() as u32;
    attr.info.info = &mut info as *mut T as u64;
    sys_bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info)
}

/// Whether a program with this id is still loaded (BPF_PROG_GET_FD_BY_ID).
pub fn prog_loaded(id: u32) -> bool {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_6.__bindgen_anon_1.prog_id = id;
    match sys_bpf(bpf_cmd::BPF_PROG_GET_FD_BY_ID, &mut attr) {
        Ok(fd) => {
            // SAFETY: the kernel just returned this fd to us; closed at once.
            unsafe { libc::close(fd as i32) };
            true
        }
        Err(e) => e.raw_os_error() != Some(libc::ENOENT),
    }
}
