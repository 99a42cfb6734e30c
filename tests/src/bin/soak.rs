//! `cargo xtask soak [N]`: SIGKILL chaos at N random moments (default 100) while it loads,
//! attaches, injects or detaches, across the fault kinds this kernel runs (TCX and cls_bpf
//! classifiers, a rule set, a cgroup sock_addr fault, a background fault, and with fq the
//! delay qdisc and ifb ingress delay); after each kill `chaos cleanup` must leave nothing chaos
//! made: no program, link, filter, clsact or fq qdisc, ifb device, pin or state record.
//! Prints one line per leftover and closes with "N passed, M failed" (a kill that left
//! something is a failure).

use chaos_tests::{kernel_has, lab::Lab};
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// A fault command against the lab, by name.
fn scenario(lab: &Lab, which: usize, fq: bool) -> (&'static str, Vec<String>) {
    let (i, ns, cg) = (&lab.sb.server_if, &lab.sb.server_ns, lab.cgroup());
    let net = |action: &str, extra: &[&str]| {
        let mut v = vec![
            "net",
            action,
            "--iface",
            i,
            "--netns",
            ns,
            "--duration",
            "30s",
        ];
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let all: Vec<(&'static str, Vec<String>)> = vec![
        (
            "tcx drop",
            net("drop", &["--tc-attach", "tcx", "--direction", "both"]),
        ),
        (
            "cls_bpf drop",
            net("drop", &["--tc-attach", "cls-bpf", "--direction", "both"]),
        ),
        ("rule set", {
            let mut v = net("rules", &[]);
            let rules = [
                "--rule",
                "drop --dport 7000",
                "--rule",
                "duplicate --protocol udp",
            ];
            v.extend(rules.map(String::from));
            v
        }),
        (
            "cgroup connect",
            [
                "syscall",
                "connect",
                "--errno",
                "EPERM",
                "--cgroup",
                &cg,
                "--duration",
                "30s",
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "background drop",
            net("drop", &["--background", "--protocol", "icmp"]),
        ),
        (
            "fq delay",
            net("delay", &["--latency", "10ms", "--direction", "egress"]),
        ),
        (
            "ifb ingress delay",
            net("delay", &["--latency", "10ms", "--direction", "ingress"]),
        ),
    ];
    let n = if fq { all.len() } else { all.len() - 2 };
    all.into_iter().nth(which % n).expect("scenario")
}

/// What chaos left in the lab (and in the kernel) after cleanup: one line per leftover.
fn leftovers(lab: &Lab) -> Vec<String> {
    let mut left = Vec::new();
    let a = lab.attachments();
    for l in a
        .lines()
        .filter(|l| l.contains("chaos") || l.contains("clsact") || l.contains("qdisc fq "))
    {
        left.push(format!("attachment: {l}"));
    }
    let ifb = chaos_tests::sh(Command::new("ip").args([
        "-n",
        &lab.sb.server_ns,
        "-o",
        "link",
        "show",
        "type",
        "ifb",
    ]));
    if !ifb.trim().is_empty() {
        left.push(format!("ifb device: {}", ifb.trim()));
    }
    for dir in [&lab.state_dir, &lab.pin_dir] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            left.push(format!("left in {}: {}", dir.display(), e.path().display()));
        }
    }
    left
}

fn main() {
    let kills: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let fq = kernel_has("fq", "soak (fq delay and ifb ingress delay)");
    let lab = Lab::new("soak");
    let mut x: u64 = std::process::id() as u64 | 1;
    let mut random = move |below: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % below
    };
    let (mut passed, mut failed) = (0, 0);
    let started = Instant::now();
    for k in 0..kills {
        let (name, args) = scenario(&lab, random(100) as usize, fq);
        // A moment from just after exec to well into the fault; sometimes in the detach after
        // a SIGINT.
        let at = Duration::from_millis(random(400));
        let in_detach = random(4) == 0;
        let mut child = lab
            .chaos_cmd()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chaos");
        std::thread::sleep(at);
        if in_detach {
            // SAFETY: kill on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            std::thread::sleep(Duration::from_millis(random(15)));
        }
        let _ = child.kill();
        let _ = child.wait();
        let out = lab.run(&["cleanup"]);
        let mut left = leftovers(&lab);
        if out.0 != 0 {
            left.push(format!("chaos cleanup exited {}: {}", out.0, out.2.trim()));
        }
        let moment = if in_detach { "in the detach" } else { "" };
        if left.is_empty() {
            passed += 1;
        } else {
            failed += 1;
            println!("kill {k} ({name}, {at:?} {moment}): {}", left.join("; "));
        }
    }
    println!(
        "soak: {kills} SIGKILLs in {:.0} s (fq {}); after chaos cleanup nothing left in {passed}",
        started.elapsed().as_secs_f64(),
        if fq { "in" } else { "not on this kernel" }
    );
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        lab.finish();
    } else {
        // The lab's own cleanup runs when it drops; exit skips destructors.
        drop(lab);
        std::process::exit(1);
    }
}
