//! SIGINT while chaos starts: it exits within 100 ms, nothing stays attached (asked of the
//! kernel through tc, bpftool and the cgroup) and no state record is left. Whether the signal
//! lands before the fault is attached or just after, the outcome must be the same.

use chaos_tests::lab::Lab;
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const EXIT_WITHIN: Duration = Duration::from_millis(100);

/// Starts `args`, sends SIGINT `after` later, and returns how long chaos took to exit and how
/// it ended (for the log).
fn interrupt_after(mut cmd: Command, args: &[&str], after: Duration) -> (Duration, String) {
    let mut child = cmd
        .args(args)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chaos");
    std::thread::sleep(after);
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait chaos") {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "chaos still running 30 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let took = sent.elapsed();
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Three acceptable endings: killed before the handlers were installed, stopped while
    // starting (130), or attached and then ended by the signal with its summary (0).
    let how = match status.code() {
        None => "killed by SIGINT before start-up".to_string(),
        Some(130) => {
            assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
            assert!(!stdout.contains("\"attached\""), "{stdout}");
            "interrupted while starting".to_string()
        }
        Some(0) => {
            assert!(stdout.contains("\"signal\":\"SIGINT\""), "{stdout}");
            "attached, then ended by SIGINT".to_string()
        }
        Some(c) => panic!("chaos exited {c} after SIGINT: {stderr}"),
    };
    (took, how)
}

fn check(lab: &Lab, what: &str, args: &[&str]) {
    for after_ms in [50, 300] {
        let after = Duration::from_millis(after_ms);
        let (took, how) = interrupt_after(lab.chaos_cmd(), args, after);
        eprintln!("{what}: SIGINT {after_ms} ms after start: {how}, exited in {took:?}");
        assert!(
            took <= EXIT_WITHIN,
            "{what}: exited {took:?} after a SIGINT {after_ms} ms into start-up ({how})"
        );
        lab.assert_nothing_attached();
    }
}

#[test]
fn net_drop_interrupted_while_starting() {
    let lab = Lab::new("intnet");
    let args = lab.at_server("drop", &["--percent", "100", "--duration", "60s"]);
    check(&lab, "net drop", &args);
    // Lab::finish also checks that the state and pin directories are empty.
    lab.finish();
}

#[test]
fn syscall_connect_interrupted_while_starting() {
    let lab = Lab::new("intconn");
    let cgroup = lab.cgroup();
    let args = [
        "syscall",
        "connect",
        "--errno",
        "ECONNREFUSED",
        "--cgroup",
        &cgroup,
        "--duration",
        "60s",
    ];
    check(&lab, "syscall connect", &args);
    lab.finish();
}
