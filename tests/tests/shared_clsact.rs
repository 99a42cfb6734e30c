//! The clsact qdisc that several cls_bpf faults share belongs to chaos as long as any of them is
//! attached, whichever added it: the last one to leave removes it, on every exit path; a clsact
//! that was there before chaos stays.

use chaos_tests::{
    Running,
    clients::connect,
    kernel_has,
    lab::{Lab, SERVER_V4},
    sh,
};
use std::process::Command;

/// A cls_bpf drop of TCP to `port` at the server's ingress.
fn drop_port(lab: &Lab, port: &str) -> Running {
    lab.drop_at_server(&[
        "--tc-attach",
        "cls-bpf",
        "--protocol",
        "tcp",
        "--dport",
        port,
        "--duration",
        "60s",
    ])
}

fn qdiscs(lab: &Lab) -> String {
    let (ns, dev) = (&lab.sb.server_ns, &lab.sb.server_if);
    sh(Command::new("tc").args(["-n", ns, "qdisc", "show", "dev", dev]))
}

/// Whether a TCP connect to `port` of the server gets through (7000/7001 listen).
fn reaches(lab: &Lab, port: u16) -> bool {
    connect(lab.outside("python3"), &SERVER_V4.to_string(), port, "tcp") == 0
}

#[test]
fn two_cls_bpf_faults_leave_no_clsact_whichever_stops_first() {
    if !kernel_has(
        "cls_bpf",
        "two_cls_bpf_faults_leave_no_clsact_whichever_stops_first",
    ) {
        return;
    }
    let lab = Lab::new("clsab");
    let _srv = lab.tcp_server(&["10.77.0.2:7000", "10.77.0.2:7001"]);
    // The first adds clsact, the second finds it; the first stops first.
    let (first, second) = (drop_port(&lab, "7000"), drop_port(&lab, "7001"));
    assert!(
        !reaches(&lab, 7000) && !reaches(&lab, 7001),
        "both faults act"
    );
    first.interrupt();
    assert!(reaches(&lab, 7000), "the first fault is gone");
    assert!(!reaches(&lab, 7001), "the second still acts");
    assert!(
        qdiscs(&lab).contains("clsact"),
        "the second still needs clsact"
    );
    second.interrupt();
    assert!(reaches(&lab, 7001), "the second fault is gone");
    lab.assert_nothing_attached();

    // Both SIGKILLed: `chaos cleanup` removes the filters and the qdisc.
    let (first, second) = (drop_port(&lab, "7000"), drop_port(&lab, "7001"));
    second.kill();
    first.kill();
    let (code, out, err) = lab.run(&["cleanup"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(reaches(&lab, 7000) && reaches(&lab, 7001), "cleaned up");
    lab.finish();
}

#[test]
fn a_clsact_that_was_there_before_stays() {
    if !kernel_has("cls_bpf", "a_clsact_that_was_there_before_stays") {
        return;
    }
    let lab = Lab::new("clspre");
    let _srv = lab.tcp_server(&["10.77.0.2:7000", "10.77.0.2:7001"]);
    let (ns, dev) = (&lab.sb.server_ns, &lab.sb.server_if);
    sh(Command::new("tc").args(["-n", ns, "qdisc", "add", "dev", dev, "clsact"]));
    let (first, second) = (drop_port(&lab, "7000"), drop_port(&lab, "7001"));
    assert!(
        !reaches(&lab, 7000) && !reaches(&lab, 7001),
        "both faults act"
    );
    first.interrupt();
    second.interrupt();
    assert!(reaches(&lab, 7000) && reaches(&lab, 7001));
    assert!(
        qdiscs(&lab).contains("clsact"),
        "the operator's clsact stays"
    );
    sh(Command::new("tc").args(["-n", ns, "qdisc", "del", "dev", dev, "clsact"]));
    lab.finish();
}
