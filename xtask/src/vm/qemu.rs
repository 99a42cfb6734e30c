//! Booting a kernel + initramfs in qemu and reading the guest's status marker off the console.

use super::initramfs::STATUS_MARKER;
use anyhow::{Context, Result};
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// What a boot produced.
pub struct Boot {
    /// The guest's status: 0 when every test passed; -1 when it printed none (timed out,
    /// panicked).
    pub status: i32,
    pub console: Vec<String>,
}

/// Boots, echoes the console (unless `quiet`), and returns the guest's status and console.
/// One vCPU: with two, a guest oopsed once on an int3 in netif_rx_internal, i.e. in the middle of
/// the kernel live-patching a static branch (which TCX/qdisc changes toggle) while the other vCPU
/// ran that code; multi-threaded TCG does not reliably handle such cross-modifying code.
/// KVM only when asked for (CHAOS_VM_ACCEL=kvm): on these machines /dev/kvm exists but nested
/// virtualisation fails, so software emulation (TCG) is the default.
pub fn boot(
    vmlinuz: &Path,
    initrd: &Path,
    timeout: Duration,
    append: &str,
    quiet: bool,
) -> Result<Boot> {
    let kvm = std::env::var("CHAOS_VM_ACCEL").is_ok_and(|a| a == "kvm");
    let accel: &[&str] = if kvm {
        &["-accel", "kvm", "-cpu", "host"]
    } else {
        &["-accel", "tcg", "-cpu", "max"]
    };
    let mut qemu = Command::new("qemu-system-x86_64");
    // qemu dies with the runner (SIGTERM, SIGKILL, a crash); `timeout(1)` is not used because
    // it puts qemu in a process group of its own, out of reach of the signals sent to ours.
    let mut child = crate::child::dies_with_parent(&mut qemu, libc::SIGKILL)
        .args(["-nodefaults", "-no-user-config", "-no-reboot"])
        .args(accel)
        .args([
            "-m", "2048", "-smp", "1", "-display", "none", "-serial", "stdio",
        ])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init {append}"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
    let started = Instant::now();
    // The time limit: a watchdog kills qemu; the console then ends and the status is missing.
    let pid = child.id() as libc::pid_t;
    let (done, timed_out) = (
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    {
        let (done, timed_out) = (done.clone(), timed_out.clone());
        std::thread::spawn(move || {
            while started.elapsed() < timeout {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            timed_out.store(true, std::sync::atomic::Ordering::Relaxed);
            // SAFETY: kill on our own child, not reaped yet (wait comes after the console ends).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
    }
    let mut status = None;
    let mut console = Vec::new();
    for line in BufReader::new(child.stdout.take().context("console")?).lines() {
        let line = line.unwrap_or_default().replace('\r', "");
        if !quiet {
            println!("{line}");
        }
        if let Some(s) = line.strip_prefix(STATUS_MARKER) {
            status = s.trim().parse().ok();
        }
        console.push(line);
    }
    let exit = child.wait()?;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "vm: qemu exited {exit} after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // No status marker is a failure like any other: the tests it did not finish count as
    // failed (see tally), and the runs after it go ahead.
    let status = status.unwrap_or_else(|| {
        if timed_out.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!("vm: FAILED: the VM timed out after {}s", timeout.as_secs());
        } else {
            eprintln!("vm: FAILED: the guest printed no status (kernel panic or crash?)");
        }
        -1
    });
    Ok(Boot { status, console })
}
