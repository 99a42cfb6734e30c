//! Child processes die with chaos: whatever chaos starts (tc, probe commands, the demo's
//! workloads) gets SIGKILL from the kernel when chaos's thread that started it ends, SIGKILL of
//! chaos included (PR_SET_PDEATHSIG, prctl(2)).

use std::os::unix::process::CommandExt as _;

/// Runs in the child between fork and exec: asks for SIGKILL when the parent goes, and exits
/// at once if the parent (`parent`, its pid before the fork) is already gone.
fn tie_to(parent: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid only read or set flags of this process; both
    // are async-signal-safe.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
    Ok(())
}

/// `cmd`, set to die with the calling thread (see the module doc).
pub fn dies_with_parent(cmd: &mut std::process::Command) -> &mut std::process::Command {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only makes async-signal-safe calls (tie_to).
    unsafe { cmd.pre_exec(move || tie_to(parent)) }
}

/// The same for tokio's command.
pub fn tokio_dies_with_parent(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: as above.
    unsafe { cmd.pre_exec(move || tie_to(parent)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt as _;

    /// The child of a thread that ends is killed by the kernel, not left running.
    #[test]
    fn a_child_dies_when_its_thread_ends() {
        let mut child = std::thread::spawn(|| {
            dies_with_parent(&mut std::process::Command::new("sleep"))
                .arg("30")
                .spawn()
                .expect("sleep")
        })
        .join()
        .expect("thread");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("sleep still runs after its thread ended");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }
}
