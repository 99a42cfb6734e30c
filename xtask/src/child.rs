//! The runner's children die with it: qemu and the background kernel build get a signal from
//! the kernel when the runner's thread that started them ends (PR_SET_PDEATHSIG), so neither a
//! SIGTERM, a SIGKILL nor a crash of `cargo xtask` leaves a guest or a build running.

use std::os::unix::process::CommandExt as _;

/// `cmd`, set to receive `signal` when the calling thread ends (exits at once if the runner is
/// already gone).
pub fn dies_with_parent(
    cmd: &mut std::process::Command,
    signal: i32,
) -> &mut std::process::Command {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: between fork and exec, only async-signal-safe calls (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        })
    }
}

/// In a process that leads its own process group (the background build): SIGTERM and SIGINT
/// kill the whole group, make and its compilers included, instead of this process alone.
pub fn group_dies_on_term() {
    extern "C" fn kill_group(_: libc::c_int) {
        // SAFETY: killpg is async-signal-safe; 0 is this process's own group.
        unsafe { libc::killpg(0, libc::SIGKILL) };
    }
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: installs a handler that only calls an async-signal-safe function.
        unsafe { libc::signal(sig, kill_group as *const () as libc::sighandler_t) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt as _;

    /// A guest started by a runner thread that ends is killed with it, not left running.
    #[test]
    fn a_child_dies_when_the_runner_thread_ends() {
        let mut child = std::thread::spawn(|| {
            let mut cmd = std::process::Command::new("sleep");
            dies_with_parent(&mut cmd, libc::SIGKILL)
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
