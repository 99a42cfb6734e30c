//! Start-up without work the fault does not need.
//!
//! - `loader()`: an aya loader that has not read the kernel's BTF.

/// An aya loader with no kernel BTF. aya 0.14's `EbpfLoader::new()` always reads and parses
/// /sys/kernel/btf/vmlinux (75-80 ms here under strace), and `btf(None)` only drops the result.
/// Our programs need no CO-RE relocation, so the loader is made on a throwaway thread in a
/// private mount namespace where that path is an empty file: the parse fails at once and the
/// namespace ends with the thread. Should that fail, the loader is made the usual way.
pub fn loader() -> aya::EbpfLoader<'static> {
    let made = std::thread::spawn(|| {
        if let Err(e) = hide_kernel_btf() {
            tracing::debug!("kernel BTF not hidden from the loader ({e}): parsing it");
        }
        let mut loader = aya::EbpfLoader::new();
        loader.btf(None);
        loader
    })
    .join();
    made.unwrap_or_else(|_| {
        let mut loader = aya::EbpfLoader::new();
        loader.btf(None);
        loader
    })
}

/// On this thread only: a mount namespace of its own where /sys/kernel/btf/vmlinux is
/// /dev/null. Mounts are made private first so that nothing propagates to the host.
fn hide_kernel_btf() -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: plain syscalls with valid NUL-terminated paths; unshare(CLONE_NEWNS) affects this
    // thread only (it also unshares the thread's fs state, which pthreads share otherwise).
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            c"/dev/null".as_ptr(),
            c"/sys/kernel/btf/vmlinux".as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ))
    }
}
