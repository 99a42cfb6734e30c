//! `chaos net delay --direction ingress`: arriving packets held back through an ifb device with
//! fq. This machine's kernel has no fq: there the test checks the clear refusal and that no
//! ifb is left; in the Debian VMs (cargo xtask vm) it measures the added latency.

use chaos_tests::{
    Running,
    clients::ping,
    kernel_has,
    lab::{Lab, SERVER_V4},
    sh,
};
use std::process::Command;

fn rtt(p: &chaos_tests::clients::Ping) -> [f64; 4] {
    p.rtt.unwrap_or_else(|| panic!("no RTT: {p:?}"))
}

/// Delay of arriving packets (--direction ingress): through an ifb device with fq, created in
/// the interface's namespace for the fault and deleted after it (and by `chaos cleanup` after a
/// SIGKILL). The interface's own qdisc is not touched. With TCX the classifier redirects to the
/// ifb; with cls_bpf (what kernels before 6.6 get) it hands packets to a mirred filter, because
/// some of those kernels (Debian's 6.1) drop what bpf_redirect sends to an ifb. Both are run.
#[test]
fn ingress_delay_through_ifb() {
    let lab = Lab::new("dlyi");
    let before = lab.server_qdiscs();
    let dst = SERVER_V4.to_string();
    let base = lab.at_server(
        "delay",
        &[
            "--direction",
            "ingress",
            "--protocol",
            "icmp",
            "--latency",
            "100ms",
        ],
    );
    if !kernel_has("fq", "ingress_delay_through_ifb") {
        let (code, out, err) = chaos_tests::chaos_via(
            lab.chaos_cmd(),
            &[&base[..], &["--duration", "5s"]].concat(),
        );
        assert_eq!(code, 1, "{out} {err}");
        assert!(err.contains("fq"), "{err}");
        assert!(
            !lab.server_links().contains(": chaos"),
            "ifb left: {}",
            lab.server_links()
        );
        lab.finish();
        return;
    }
    let ingress_filters = || {
        let (ns, dev) = (&lab.sb.server_ns, &lab.sb.server_if);
        sh(Command::new("tc").args(["-n", ns, "filter", "show", "dev", dev, "ingress"]))
    };
    let healthy = rtt(&ping(lab.outside("ping"), &dst, 20, "0.05"));
    for mode in ["auto", "cls-bpf"] {
        let args = [&base[..], &["--tc-attach", mode, "--duration", "60s"]].concat();
        let fault = Running::start_via(lab.chaos_cmd(), &args);
        assert!(
            lab.server_links().contains(": chaos"),
            "ifb created: {}",
            lab.server_links()
        );
        if mode == "cls-bpf" {
            let filters = ingress_filters();
            assert!(filters.contains("mirred"), "handoff filter: {filters}");
        }
        let delayed = rtt(&ping(lab.outside("ping"), &dst, 20, "0.05"));
        let s = fault.interrupt();
        let added = delayed[1] - healthy[1];
        println!("ingress delay 100ms ({mode}): RTT {healthy:?} -> {delayed:?} (+{added:.1} ms)");
        assert!((90.0..=110.0).contains(&added), "added {added:.1} ms, {s}");
        assert!(s["injected"].as_u64() >= Some(20), "{s}");
        assert!(
            !lab.server_links().contains(": chaos"),
            "ifb deleted: {}",
            lab.server_links()
        );
        // Also says that no clsact (and so no filter) is left.
        assert_eq!(
            lab.server_qdiscs(),
            before,
            "the interface's qdiscs as they were"
        );

        sigkill_then_cleanup(&lab, &args, &before);
        if mode == "cls-bpf" {
            their_clsact_survives_cleanup(&lab, &args);
        }
    }
    lab.finish();
}

/// SIGKILL: the ifb (and cls_bpf filters) outlive chaos; `chaos cleanup` deletes them.
fn sigkill_then_cleanup(lab: &Lab, args: &[&str], before: &str) {
    Running::start_via(lab.chaos_cmd(), args).kill();
    assert!(
        lab.server_links().contains(": chaos"),
        "ifb outlives SIGKILL"
    );
    let (code, _, err) = chaos_tests::chaos_via(lab.chaos_cmd(), &["cleanup"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !lab.server_links().contains(": chaos"),
        "cleanup deleted it: {}",
        lab.server_links()
    );
    assert_eq!(lab.server_qdiscs(), before, "cleanup restored the qdiscs");
}

/// A clsact that was there before (someone else's) survives a cleanup after a crash.
fn their_clsact_survives_cleanup(lab: &Lab, args: &[&str]) {
    let ingress_filters = || {
        let (ns, dev) = (&lab.sb.server_ns, &lab.sb.server_if);
        sh(Command::new("tc").args(["-n", ns, "filter", "show", "dev", dev, "ingress"]))
    };
    let tc_clsact = |verb: &str| {
        let ns = &lab.sb.server_ns;
        let dev = &lab.sb.server_if;
        sh(Command::new("tc").args(["-n", ns, "qdisc", verb, "dev", dev, "clsact"]))
    };
    tc_clsact("add");
    let theirs = lab.server_qdiscs();
    Running::start_via(lab.chaos_cmd(), args).kill();
    let (code, _, err) = chaos_tests::chaos_via(lab.chaos_cmd(), &["cleanup"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lab.server_qdiscs(), theirs, "their clsact kept");
    assert_eq!(ingress_filters().trim(), "", "our filters removed");
    tc_clsact("del");
}
