//! The TCX warm-up (chaos-user/src/net/tcx_warmup.rs): on a host where no TCX link exists, a
//! packet fault attaches a pass-through program at its hooks while its classifier is verified,
//! and that program is gone once the classifier is attached; the fault still drops what it
//! should; nothing is left afterwards.

use aya::programs::{links::LinkType, loaded_links, loaded_programs};
use chaos_tests::lab::Lab;
use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    time::{Duration, Instant},
};

fn tcx_links() -> usize {
    loaded_links()
        .flatten()
        .filter(|l| matches!(l.link_type(), Ok(LinkType::Tcx)))
        .count()
}

fn warmups_loaded() -> usize {
    loaded_programs()
        .flatten()
        .filter(|p| p.name_as_str() == Some("chaos_warmup"))
        .count()
}

#[test]
fn the_warmup_comes_and_goes_before_the_fault_runs() {
    if !chaos_tests::kernel_has("tcx", "the_warmup_comes_and_goes_before_the_fault_runs") {
        return;
    }
    let lab = Lab::new("warm");
    let before = tcx_links();
    let log = std::env::temp_dir().join(format!("chaos-warmup-{}.log", std::process::id()));
    let mut args = lab.at_server("drop", &["--percent", "100", "--protocol", "udp"]);
    args.extend(["--dport", "9", "--duration", "3s", "--json"]);
    let mut child = lab
        .chaos_cmd()
        .args(&args)
        .env("CHAOS_LOG", "chaos=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn chaos");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut attached = String::new();
    out.read_line(&mut attached).expect("attached line");
    assert!(attached.contains("\"attached\""), "{attached}");
    assert!(
        attached.contains("\"tcx\""),
        "not attached with TCX: {attached}"
    );
    // Closed right after the attach, on its own thread (each close waits out a grace period).
    let t0 = Instant::now();
    while warmups_loaded() > 0 && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        warmups_loaded(),
        0,
        "the warm-up program outlived the attach"
    );
    // The classifier itself is in force: one TCX link of chaos's on top of what was there.
    assert_eq!(tcx_links(), before + 1, "the fault's TCX link");
    let status = child.wait().expect("wait chaos");
    assert!(status.success(), "chaos exited with {status}");
    let stderr = std::fs::read_to_string(&log).expect("log");
    let _ = std::fs::remove_file(&log);
    if before == 0 {
        assert!(
            stderr.contains("TCX warm-up attached") && stderr.contains("TCX warm-up detached"),
            "no TCX link existed, so the warm-up must have run:\n{stderr}"
        );
    } else {
        eprintln!("{before} TCX link(s) existed: the warm-up was rightly skipped");
        assert!(stderr.contains("TCX warm-up skipped"), "{stderr}");
    }
    assert_eq!(tcx_links(), before, "a TCX link left behind");
    lab.finish();
}
