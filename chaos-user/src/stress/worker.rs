//! A worker process: the chaos binary run again (`/proc/self/exe stress-worker ...`, a hidden
//! subcommand), so that nothing is forked from inside the tokio runtime but a plain exec.
//! Between fork and exec the child asks for SIGKILL when chaos's spawning thread goes
//! (PR_SET_PDEATHSIG, `child::dies_with_parent`) and writes itself into the target's
//! `cgroup.procs` files: it runs, and allocates, only inside the target's cgroups.
//!
//! The worker also ends by itself a second after the deadline it is given (CLOCK_MONOTONIC
//! nanoseconds), should chaos be stopped (SIGSTOP) rather than killed.

use crate::error::{Error, Result};
use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt as _, process::CommandExt as _},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The hidden subcommand's name (`chaos stress-worker`); tests look for it in /proc.
pub const SUBCOMMAND: &str = "stress-worker";

/// A worker ends by itself this long after its deadline (chaos kills it at the deadline).
const GRACE_NS: u64 = 1_000_000_000;

/// What one worker does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Work {
    /// Busy `percent` of each 100 ms period, counted in the worker's own CPU time.
    Cpu { percent: f64 },
    /// Holds `bytes`, touched at `rate` bytes per second (None: at once).
    Memory { bytes: u64, rate: Option<u64> },
}

/// The worker's command line after the binary: `stress-worker cpu --load 50 --deadline-ns N
/// --fault ID` (the binary's clap definition parses it; a unit test there holds them equal).
pub fn argv(work: Work, deadline_ns: u64, fault_id: &str) -> Vec<String> {
    let mut v = vec![SUBCOMMAND.to_string()];
    match work {
        Work::Cpu { percent } => v.extend(["cpu".into(), "--load".into(), percent.to_string()]),
        Work::Memory { bytes, rate } => {
            v.extend(["memory".into(), "--bytes".into(), bytes.to_string()]);
            if let Some(r) = rate {
                v.extend(["--rate".into(), r.to_string()]);
            }
        }
    }
    v.extend([
        "--deadline-ns".into(),
        deadline_ns.to_string(),
        "--fault".into(),
        fault_id.to_string(),
    ]);
    v
}

/// Starts a worker placed in `procs` (cgroup.procs files, written with "0": the writer itself)
/// before its exec; returns its pid. Errors: a cgroup refused it (the message lists them), or
/// the fork or exec failed.
pub fn spawn(argv: &[String], procs: &[PathBuf]) -> Result<u32> {
    let files: Vec<CString> = procs
        .iter()
        .map(|p| CString::new(p.as_os_str().as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::io("a cgroup path with a NUL byte", std::io::Error::other(e)))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    crate::child::dies_with_parent(&mut cmd);
    // SAFETY: the closure only calls open, write and close (async-signal-safe) on paths made
    // before the fork; it allocates nothing.
    unsafe { cmd.pre_exec(move || join(&files)) };
    let child = cmd.spawn().map_err(|e| {
        let list: Vec<String> = procs.iter().map(|p| p.display().to_string()).collect();
        Error::io(
            format!("starting a stress worker in {}", list.join(", ")),
            e,
        )
    })?;
    // Reaped with wait4 by the supervisor (for its rusage), not through `Child`.
    Ok(child.id())
}

/// In the child before exec: moves the calling process into each cgroup.
fn join(files: &[CString]) -> std::io::Result<()> {
    for f in files {
        // SAFETY: a NUL-terminated path; the fd is closed below.
        let fd = unsafe { libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: one byte from a static buffer to our fd.
        let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
        let err = std::io::Error::last_os_error();
        // SAFETY: our fd.
        unsafe { libc::close(fd) };
        if n != 1 {
            return Err(err);
        }
    }
    Ok(())
}

/// The worker's body (`chaos stress-worker`): works until `deadline_ns` (+1 s) and returns its
/// exit status (0; 3 when the memory could not be mapped).
pub fn run(work: Work, deadline_ns: u64) -> u8 {
    // SAFETY: PR_SET_NAME with a NUL-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"chaos-stress".as_ptr()) };
    let until = deadline_ns.saturating_add(GRACE_NS);
    match work {
        Work::Cpu { percent } => {
            burn(percent, until);
            0
        }
        Work::Memory { bytes, rate } => hold(bytes, rate, until),
    }
}

fn now_ns() -> u64 {
    crate::ebpf::monotonic_ns()
}

/// This thread's CPU time in ns.
fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The duty cycle: in each 100 ms period, spin until this thread has had `percent` of it in
/// CPU time (or the period is over), sleep the rest. Counting CPU time rather than wall time
/// keeps the share right on a busy machine (a preempted spin does not count).
fn burn(percent: f64, until: u64) {
    const PERIOD: Duration = Duration::from_millis(100);
    let budget = (PERIOD.as_nanos() as f64 * percent / 100.0) as u64;
    let mut x = 0u64;
    while now_ns() < until {
        let start = Instant::now();
        let cpu0 = cpu_ns();
        while cpu_ns() - cpu0 < budget && start.elapsed() < PERIOD {
            for i in 0..20_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
        }
        if let Some(rest) = PERIOD.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// Maps `bytes`, writes every page (at `rate` bytes per second, else at once), then holds it
/// until `until`.
fn hold(bytes: u64, rate: Option<u64>, until: u64) -> u8 {
    let len = bytes as usize;
    // SAFETY: a fresh private anonymous mapping; used only within its length below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        eprintln!(
            "chaos stress-worker: mapping {bytes} bytes: {}",
            std::io::Error::last_os_error()
        );
        return 3;
    }
    let base = p.cast::<u8>();
    // SAFETY: sysconf has no preconditions.
    let page = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as usize;
    let start = Instant::now();
    let mut touched = 0usize;
    while touched < len && now_ns() < until {
        let allowed = rate.map_or(len, |r| {
            ((r as f64 * start.elapsed().as_secs_f64()) as usize).min(len)
        });
        while touched < allowed {
            // SAFETY: touched < len, inside the mapping.
            unsafe { std::ptr::write_volatile(base.add(touched), 0xa5) };
            touched += page;
        }
        if touched < len {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    while now_ns() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_names_the_work() {
        assert_eq!(
            argv(Work::Cpu { percent: 50.0 }, 7, "ab"),
            [
                "stress-worker",
                "cpu",
                "--load",
                "50",
                "--deadline-ns",
                "7",
                "--fault",
                "ab"
            ]
        );
        let m = argv(
            Work::Memory {
                bytes: 4096,
                rate: Some(1024),
            },
            7,
            "ab",
        );
        assert_eq!(m[1..6], ["memory", "--bytes", "4096", "--rate", "1024"]);
    }

    /// A short burn at 30 % uses about that share of the thread's time (wide band: the test
    /// machine may be busy).
    #[test]
    fn burn_keeps_its_duty_cycle() {
        let (t0, c0) = (Instant::now(), cpu_ns());
        burn(30.0, now_ns() + 500_000_000);
        let share = (cpu_ns() - c0) as f64 / t0.elapsed().as_nanos() as f64;
        assert!((0.1..0.5).contains(&share), "share {share}");
    }

    #[test]
    fn hold_touches_and_returns_at_the_deadline() {
        let t0 = Instant::now();
        assert_eq!(hold(1 << 20, Some(8 << 20), now_ns() + 200_000_000), 0);
        assert!(t0.elapsed() >= Duration::from_millis(190));
    }
}
