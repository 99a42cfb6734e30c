//! `chaos net drop` against real traffic between two namespaces.

use chaos_tests::{
    assert_programs_gone,
    clients::ping,
    lab::{Lab, SERVER_V4},
    stats::binomial_999,
};

/// 30 % of echo requests dropped at the server's ingress: ping's loss is inside the binomial
/// 99.9 % interval, equals what the kernel counted, and is 0 again once chaos has ended.
#[test]
fn drop_thirty_percent_then_nothing_after() {
    let lab = Lab::new("nd30");
    let dst = SERVER_V4.to_string();
    let fault = lab.drop_at_server(&[
        "--direction",
        "ingress",
        "--protocol",
        "icmp",
        "--dst",
        &dst,
        "--percent",
        "30",
        "--duration",
        "60s",
    ]);
    let p = ping(lab.outside("ping"), &dst, 1000, "0.002");
    let ids = fault.program_ids.clone();
    let summary = fault.interrupt();
    let (lo, hi) = binomial_999(p.transmitted, 0.3);
    assert!(
        (lo..=hi).contains(&p.lost()),
        "lost {} of {}, expected {lo}..={hi}",
        p.lost(),
        p.transmitted
    );
    assert_eq!(summary["matched"], p.transmitted, "{summary}");
    assert_eq!(
        summary["injected"],
        p.lost(),
        "kernel count equals what ping lost: {summary}"
    );
    assert_programs_gone(&ids);
    let after = ping(lab.outside("ping"), &dst, 200, "0.002");
    assert_eq!(after.lost(), 0, "loss after chaos ended");
    lab.finish();
}

/// 100 %: everything matching is lost, and the run ends by itself at its deadline.
#[test]
fn drop_everything_until_the_deadline() {
    let lab = Lab::new("nd100");
    let dst = SERVER_V4.to_string();
    let fault = lab.drop_at_server(&["--protocol", "icmp", "--duration", "3s"]);
    let p = ping(lab.outside("ping"), &dst, 100, "0.005");
    assert_eq!(p.received, 0, "{p:?}");
    let ids = fault.program_ids.clone();
    let summary = fault.finish();
    assert_eq!(summary["ended"]["by"], "deadline", "{summary}");
    assert!(summary["injected"].as_u64() >= Some(100), "{summary}");
    assert_programs_gone(&ids);
    assert_eq!(ping(lab.outside("ping"), &dst, 50, "0.005").lost(), 0);
    lab.finish();
}

/// The legacy path, on both hooks: clsact + cls_bpf filters are visible on ingress and egress
/// while the fault runs, and all of it is removed afterwards.
#[test]
fn cls_bpf_fallback_is_removed_on_exit() {
    let lab = Lab::new("ndcls");
    let dst = SERVER_V4.to_string();
    let fault = lab.drop_at_server(&[
        "--tc-attach",
        "cls-bpf",
        "--direction",
        "both",
        "--protocol",
        "icmp",
        "--duration",
        "60s",
    ]);
    let during = lab.attachments();
    assert!(during.contains("clsact"), "no clsact:\n{during}");
    // bpftool and tc each show one line per hook.
    let lines = during.lines().filter(|l| l.contains("chaos_tc")).count();
    assert_eq!(lines, 4, "filters on ingress and egress:\n{during}");
    assert_eq!(ping(lab.outside("ping"), &dst, 50, "0.005").received, 0);
    let ids = fault.program_ids.clone();
    fault.interrupt();
    assert_programs_gone(&ids);
    assert_eq!(ping(lab.outside("ping"), &dst, 50, "0.005").lost(), 0);
    lab.finish();
}
