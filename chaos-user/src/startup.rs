//! Start-up without work the fault does not need, and cut short by a signal.
//!
//! - `loader()`: an aya loader that has not read the kernel's BTF.
//! - `watch_signals()` / `check()`: SIGINT, SIGTERM or SIGHUP while a fault is being set up
//!   ends the set-up at the next step, before anything further is attached.
//! - `no_interrupt()`: a BPF_PROG_LOAD that a signal interrupts fails with EAGAIN, and aya then
//!   loads again with a verifier log (a full, slower verification per retry), so program loads
//!   run with those signals held back; they are handled as soon as the load returns.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicI32, Ordering};

/// An aya loader with no kernel BTF. aya 0.14's `EbpfLoader::new()` always reads and parses
/// /sys/kernel/btf/vmlinux (75-80 ms here under strace), and `btf(None)` only drops the result.
/// Our programs need no CO-RE relocation, so the loader is made on a throwaway thread whose
/// root directory is one where that path does not exist: the parse fails at once, and the
/// thread's private root ends with it. Should that fail, the loader is made the usual way.
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

/// On this thread only: a root directory of its own (/sys/kernel/btf), in which
/// /sys/kernel/btf/vmlinux does not resolve. unshare(CLONE_FS) copies just the root, working
/// directory and umask, where a private mount namespace (what this did before) copied every
/// mount of the host.
fn hide_kernel_btf() -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: plain syscalls with a valid NUL-terminated path; unshare(CLONE_FS) makes this
    // thread's filesystem state its own (pthreads share it otherwise), so chroot changes
    // nothing for the other threads.
    unsafe {
        check(libc::unshare(libc::CLONE_FS))?;
        check(libc::chroot(c"/sys/kernel/btf".as_ptr()))
    }
}

/// The signal that asked to stop during set-up (0: none).
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Notes SIGINT, SIGTERM and SIGHUP for `check` (next to tokio's handlers, which the session
/// waits on once the fault is attached). Idempotent.
pub fn watch_signals() -> Result<()> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        for sig in STOP_SIGNALS {
            // SAFETY: the action only stores to an atomic, which is async-signal-safe.
            let r = unsafe {
                signal_hook_registry::register(sig, move || {
                    STOP_SIGNAL.store(sig, Ordering::SeqCst);
                })
            };
            if let Err(e) = r {
                result = Err(Error::io("installing signal handlers", e));
            }
        }
    });
    result
}

/// Err(Interrupted) once a stop signal arrived: the caller drops what it attached so far.
pub fn check() -> Result<()> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => Ok(()),
        libc::SIGINT => Err(Error::Interrupted("SIGINT")),
        libc::SIGTERM => Err(Error::Interrupted("SIGTERM")),
        _ => Err(Error::Interrupted("SIGHUP")),
    }
}

/// Runs `f` (a program load) with the stop signals and SIGUSR1 blocked on this thread; one
/// that came meanwhile is handled when it returns.
pub fn no_interrupt<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: sigset operations on a local set; pthread_sigmask changes this thread's mask
    // only, and it is restored below.
    let old = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in STOP_SIGNALS.into_iter().chain([libc::SIGUSR1]) {
            libc::sigaddset(&mut set, sig);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        old
    };
    let r = f();
    // SAFETY: restores the mask saved above; a signal that came meanwhile is handled now.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    r
}
