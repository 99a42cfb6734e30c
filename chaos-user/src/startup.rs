//! Start-up without work the fault does not need, and cut short by a signal.
//!
//! - `loader()`: an aya loader that has not read the kernel's BTF.
//! - `exit_at_once_on_stop()`: SIGINT, SIGTERM or SIGHUP exits at once while all chaos holds
//!   is fd-owned; after `undo_needed()` (a state record, a qdisc), `watch_signals()` /
//!   `check()`: the signal ends the set-up at the next step, which undoes what it made.
//! - `load()`: a program load that a stop signal cuts short. The verifier gives up with EAGAIN
//!   when a signal is pending, and aya then loads again with a verifier log; that retry is cut
//!   short too, so chaos exits within milliseconds of the signal, not after the verifier's
//!   walk (tens of ms here, seconds in an emulated guest). `or_interrupted()` then reports the
//!   load as interrupted, not refused.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

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

/// What a stop signal does (`exit_at_once_on_stop`, `undo_needed`).
static MODE: AtomicU8 = AtomicU8::new(NOTE);
/// The signal is only noted (`check` reports it).
const NOTE: u8 = 0;
/// Nothing outlives the process yet: the signal's handler exits at once.
const EXIT: u8 = 1;
/// The handler is exiting the process.
const EXITING: u8 = 2;

/// The lines a stop signal's immediate exit prints (the same as `Error::Interrupted`'s), made
/// before any signal can come: the handler only writes them.
static EXIT_LINES: std::sync::OnceLock<[Vec<u8>; 3]> = std::sync::OnceLock::new();

/// Notes SIGINT, SIGTERM and SIGHUP for `check` (next to tokio's handlers, which the session
/// waits on once the fault is attached). Idempotent.
pub fn watch_signals() -> Result<()> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        EXIT_LINES.get_or_init(|| {
            STOP_SIGNALS.map(|sig| {
                let e = Error::Interrupted(crate::signal::name(sig));
                format!("chaos: {e}\n").into_bytes()
            })
        });
        for (i, sig) in STOP_SIGNALS.into_iter().enumerate() {
            // SAFETY: the action stores to atomics and may write(2) and _exit(2), which are
            // async-signal-safe; the line it writes was made above.
            let r = unsafe {
                signal_hook_registry::register(sig, move || {
                    STOP_SIGNAL.store(sig, Ordering::SeqCst);
                    if MODE
                        .compare_exchange(EXIT, EXITING, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        if let Some(line) = EXIT_LINES.get().map(|l| &l[i]) {
                            libc::write(2, line.as_ptr().cast(), line.len());
                        }
                        libc::_exit(130);
                    }
                })
            };
            if let Err(e) = r {
                result = Err(Error::io("installing signal handlers", e));
            }
        }
    });
    result
}

/// From now until something is made that outlives the process (`undo_needed`), a stop signal
/// ends chaos at once, wherever start-up is (parsing the object, creating maps, verifying):
/// exit status 130, the `Error::Interrupted` line on stderr. Until then everything chaos holds
/// is fd-owned (maps, programs, TCX and cgroup links) and goes with the process. For fault
/// commands run here, called first thing.
pub fn exit_at_once_on_stop() -> Result<()> {
    watch_signals()?;
    let _ = MODE.compare_exchange(NOTE, EXIT, Ordering::SeqCst, Ordering::SeqCst);
    Ok(())
}

/// Called before making what outlives the process (a state record first: a qdisc, an ifb, a
/// pin) and when the fault runs: from now on a stop signal is only noted, and the steps
/// undo what they made. Should the handler be exiting already, this waits for the exit, so
/// that nothing is half made.
pub fn undo_needed() {
    let from_exit = MODE.compare_exchange(EXIT, NOTE, Ordering::SeqCst, Ordering::SeqCst);
    if from_exit == Err(EXITING) {
        loop {
            std::thread::park();
        }
    }
}

/// Err(Interrupted) once a stop signal arrived: the caller drops what it attached so far.
pub fn check() -> Result<()> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => Ok(()),
        sig => Err(Error::Interrupted(crate::signal::name(sig))),
    }
}

/// The error for a set-up step that failed: `Interrupted` when a stop signal came (the step was
/// cut short on purpose), else `e()`.
pub fn or_interrupted(e: impl FnOnce() -> Error) -> Error {
    check().err().unwrap_or_else(e)
}

/// Runs `f` (a program load) on this thread, which a stop signal interrupts: while `f` runs, a
/// helper thread re-sends the signal to this thread every 200 µs once one came, so that each
/// verification aya starts (the load, then its retry with a log) ends at once with EAGAIN.
/// SIGUSR1 (a dry run going live) waits until `f` returns.
pub fn load<T>(f: impl FnOnce() -> T) -> T {
    use std::sync::{Arc, atomic::AtomicBool};
    let done = Arc::new(AtomicBool::new(false));
    // SAFETY: pthread_self has no preconditions.
    let loader = unsafe { libc::pthread_self() } as usize;
    let watching = done.clone();
    let poker = std::thread::Builder::new()
        .name("load-interrupt".into())
        .spawn(move || {
            while !watching.load(Ordering::SeqCst) {
                let sig = STOP_SIGNAL.load(Ordering::SeqCst);
                if sig != 0 {
                    // SAFETY: the loading thread is alive: it joins this thread before it
                    // returns. The signal's handler only stores to an atomic.
                    unsafe { libc::pthread_kill(loader as libc::pthread_t, sig) };
                }
                std::thread::park_timeout(std::time::Duration::from_micros(200));
            }
        });
    let started = std::time::Instant::now();
    tracing::debug!("program load started");
    let r = with_blocked(&[libc::SIGUSR1], f);
    done.store(true, Ordering::SeqCst);
    let took = started.elapsed();
    match check() {
        Err(e) => tracing::debug!("program load ended after {took:?}: cut short ({e})"),
        Ok(()) => tracing::debug!("program load ended after {took:?}"),
    }
    if let Ok(poker) = poker {
        poker.thread().unpark();
        let _ = poker.join();
    }
    r
}

/// Runs `f` with `signals` blocked on this thread; one that came meanwhile is handled when it
/// returns.
fn with_blocked<T>(signals: &[libc::c_int], f: impl FnOnce() -> T) -> T {
    // SAFETY: sigset operations on a local set; pthread_sigmask changes this thread's mask
    // only, and it is restored below.
    let old = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in signals {
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
