//! SIGINT while chaos starts: it exits within 100 ms, nothing stays attached (asked of the
//! kernel through tc, bpftool and the cgroup) and no state record is left. Whether the signal
//! lands before the fault is attached or just after, the outcome must be the same; one that
//! lands while the verifier walks a program cuts that walk short.

use chaos_tests::lab::Lab;
use std::{
    io::{BufRead, BufReader},
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

/// How chaos ended after a SIGINT sent as a program load started.
struct Ending {
    /// From the SIGINT to the log line saying the load ended (None: chaos exited first).
    load_ended: Option<Duration>,
    exited: Duration,
    log: String,
}

/// Starts chaos with `args` and its debug log, sends SIGINT as soon as the log says a program
/// load started, and checks the ending: exit 130 saying it was interrupted, the load not run
/// to its end, nothing attached.
fn sigint_as_a_load_starts(lab: &Lab, what: &str, args: &[&str]) -> Ending {
    let mut child = lab
        .chaos_cmd()
        .args(args)
        .env("CHAOS_LOG", "chaos=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chaos");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut log = String::new();
    let mut sent: Option<Instant> = None;
    let mut load_ended = None;
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).expect("stderr") == 0 {
            break;
        }
        log.push_str(&line);
        assert!(!line.contains("Ctrl-C stops it"), "attached:\n{log}");
        match sent {
            None if line.contains("program load started") => {
                // SAFETY: kill on our own child's pid.
                assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
                sent = Some(Instant::now());
            }
            Some(at) if line.contains("program load ended") => {
                assert!(
                    line.contains("cut short"),
                    "the load ran to its end: {line}"
                );
                load_ended = Some(at.elapsed());
            }
            _ => {}
        }
    }
    let status = child.wait().expect("wait chaos");
    let sent = sent.unwrap_or_else(|| panic!("no program load in the log:\n{log}"));
    let exited = sent.elapsed();
    eprintln!(
        "{what}: SIGINT as a program load started: {status}, load ended after {load_ended:?}, \
         exited after {exited:?}"
    );
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(log.contains("interrupted by SIGINT"), "{log}");
    lab.assert_nothing_attached();
    Ending {
        load_ended,
        exited,
        log,
    }
}

/// The DNS classifier is the longest walk of the packet programs (about 42,000 instructions:
/// 60 ms here, seconds in an emulated guest). While chaos holds nothing but descriptors, a
/// SIGINT as its load starts ends chaos at once.
#[test]
fn sigint_during_a_program_load_exits_at_once() {
    let lab = Lab::new("intload");
    let args = lab.at_server("dns", &["--rcode", "NXDOMAIN", "--duration", "60s"]);
    let end = sigint_as_a_load_starts(&lab, "net dns", &args);
    assert_eq!(
        end.load_ended, None,
        "exited at once, not after:\n{}",
        end.log
    );
    assert!(
        end.exited <= EXIT_WITHIN,
        "exited {:?} after:\n{}",
        end.exited,
        end.log
    );
    lab.finish();
}

/// A delay installs fq (recorded first) before its classifier is verified: a SIGINT then cuts
/// the verifier's walk short, and chaos removes fq and its record before it exits. fq is in the
/// emulated guests only (TCG, tens of times slower than this host), where the cut came 37-161 ms
/// after the signal (the kernel checks for one between verifier steps, not in the steps around
/// the walk) and removing fq (running `tc`) alone takes about 100 ms: the cut is held to
/// 500 ms and the exit to a second there.
#[test]
fn sigint_during_a_load_after_fq_cuts_it_short_and_removes_fq() {
    let test = "sigint_during_a_load_after_fq_cuts_it_short_and_removes_fq";
    let lab = Lab::new("intfq");
    if !chaos_tests::kernel_has("fq", test) {
        lab.finish();
        return;
    }
    let before = lab.server_qdiscs();
    let args = lab.at_server(
        "delay",
        &[
            "--latency",
            "50ms",
            "--direction",
            "egress",
            "--duration",
            "60s",
        ],
    );
    let end = sigint_as_a_load_starts(&lab, "net delay", &args);
    let cut = end
        .load_ended
        .unwrap_or_else(|| panic!("no cut:\n{}", end.log));
    assert!(
        cut <= Duration::from_millis(500) && end.log.contains("cut short"),
        "load cut {cut:?} after:\n{}",
        end.log
    );
    assert!(
        end.exited <= Duration::from_secs(1),
        "{:?}:\n{}",
        end.exited,
        end.log
    );
    assert_eq!(lab.server_qdiscs(), before, "fq removed");
    lab.finish();
}
