//! `chaos net drop` against real traffic between two namespaces.

use chaos_tests::{
    assert_programs_gone,
    clients::{ping, udp_exchange},
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

/// --correlation: the same overall rate, in bursts. Lost datagrams are read off the sequence
/// numbers a real UDP receiver got.
#[test]
fn correlated_drops_come_in_bursts() {
    let lab = Lab::new("ndcor");
    const N: u32 = 2000;
    let run = |extra: &[&str]| -> (f64, f64, serde_json::Value) {
        let base = lab.at_server(
            "drop",
            &[
                "--protocol",
                "udp",
                "--dport",
                "9000",
                "--percent",
                "30",
                "--duration",
                "60s",
            ],
        );
        let fault = lab.start(&[&base[..], extra].concat());
        let got: std::collections::HashSet<u32> =
            udp_exchange(&lab.sb.server_ns, lab.outside("python3"), N)
                .into_iter()
                .collect();
        let s = fault.interrupt();
        let lost: Vec<bool> = (0..N).map(|i| !got.contains(&i)).collect();
        let losses = lost.iter().filter(|&&l| l).count();
        let bursts = lost.windows(2).filter(|w| w[1] && !w[0]).count() + lost[0] as usize;
        assert_eq!(
            s["injected"], losses as u64,
            "kernel count equals what the receiver lost: {s}"
        );
        let (rate, burst) = (
            losses as f64 / N as f64,
            losses as f64 / bursts.max(1) as f64,
        );
        println!("drop 30% {extra:?}: loss rate {rate:.3}, mean burst {burst:.2}");
        (rate, burst, s)
    };
    let (rate, burst, _) = run(&[]);
    assert!(
        (0.25..=0.35).contains(&rate) && burst < 2.2,
        "independent: rate {rate}, mean burst {burst}"
    );
    // rho 0.8, p 0.3: mean burst 1 / (0.2 * 0.7) = 7.1 datagrams.
    let (rate, burst, s) = run(&["--correlation", "80"]);
    assert!((0.2..=0.4).contains(&rate), "correlated rate {rate}: {s}");
    assert!(
        (4.5..=10.0).contains(&burst),
        "correlated mean burst {burst}: {s}"
    );
    lab.finish();
}
