//! Dry run, fault budget and the audit stream, against real traffic and real clients.

use chaos_tests::{
    TempPath, assert_programs_gone,
    clients::{connect, ping},
    lab::{Lab, SERVER_V4},
    read_events,
    stats::binomial_999,
};
use std::{os::unix::fs::MetadataExt, time::Duration};

/// The program ids bpftool shows on the lab's interfaces.
fn attached_ids(lab: &Lab) -> Vec<String> {
    let a = lab.attachments();
    a.lines()
        .filter(|l| l.contains("chaos_tc"))
        .filter_map(|l| l.split(" id ").nth(1))
        .map(str::to_string)
        .collect()
}

/// Dry run: counts every match, drops nothing; SIGUSR1 makes the same attachment live.
#[test]
fn dry_run_counts_then_goes_live_without_reattaching() {
    let lab = Lab::new("dry");
    let dst = SERVER_V4.to_string();
    // --dst keeps IPv6 neighbour discovery (also ICMP) out of the exact counts.
    let fault = lab.drop_at_server(&[
        "--protocol",
        "icmp",
        "--dst",
        &dst,
        "--dry-run",
        "--duration",
        "60s",
    ]);
    let before = attached_ids(&lab);
    let shadow = ping(lab.outside("ping"), &dst, 40, "0.005");
    assert_eq!(shadow.lost(), 0, "dry run must not drop: {shadow:?}");
    fault.signal(libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(200));
    let live = ping(lab.outside("ping"), &dst, 40, "0.005");
    assert_eq!(live.received, 0, "live after SIGUSR1: {live:?}");
    assert_eq!(
        attached_ids(&lab),
        before,
        "the same program stays attached"
    );
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!(
        (s["matched"].as_u64(), s["injected"].as_u64()),
        (Some(80), Some(80)),
        "{s}"
    );
    assert_eq!(s["dry_run"], false, "{s}");
    assert_programs_gone(&ids);
    lab.finish();
}

/// A dry run and a live run on the same traffic see the same matches; the dry run's would-be
/// count follows the probability.
#[test]
fn dry_run_matches_like_a_live_run() {
    let lab = Lab::new("drym");
    let dst = SERVER_V4.to_string();
    let args = [
        "--protocol",
        "icmp",
        "--dst",
        &dst,
        "--percent",
        "30",
        "--duration",
        "60s",
    ];
    let dry = lab.drop_at_server(&[&args[..], &["--dry-run"]].concat());
    let p = ping(lab.outside("ping"), &dst, 500, "0.002");
    let d = dry.interrupt();
    assert_eq!(p.lost(), 0);
    let (lo, hi) = binomial_999(500, 0.3);
    assert!(
        (lo..=hi).contains(&d["injected"].as_u64().unwrap_or(0)),
        "{d}"
    );
    let live = lab.drop_at_server(&args);
    let p = ping(lab.outside("ping"), &dst, 500, "0.002");
    let l = live.interrupt();
    assert_eq!(d["matched"], 500, "{d}");
    assert_eq!(l["matched"], 500, "{l}");
    assert_eq!(l["injected"], p.lost(), "{l}");
    lab.finish();
}

#[test]
fn budget_is_exact_for_packets() {
    let lab = Lab::new("budp");
    let dst = SERVER_V4.to_string();
    let fault = lab.drop_at_server(&[
        "--protocol",
        "icmp",
        "--dst",
        &dst,
        "--max-faults",
        "7",
        "--duration",
        "60s",
    ]);
    let p = ping(lab.outside("ping"), &dst, 30, "0.01");
    let s = fault.interrupt();
    assert_eq!(p.lost(), 7, "{p:?}");
    assert_eq!(
        (s["injected"].as_u64(), s["over_budget"].as_u64()),
        (Some(7), Some(23)),
        "{s}"
    );
    lab.finish();
}

#[test]
fn budget_is_exact_for_connect() {
    let lab = Lab::new("budc");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let fault = lab.fail_connect(&[
        "--errno",
        "ECONNREFUSED",
        "--max-faults",
        "3",
        "--duration",
        "60s",
    ]);
    let refused = (0..10)
        .filter(|_| {
            connect(lab.inside("python3"), &SERVER_V4.to_string(), 7001, "tcp")
                == libc::ECONNREFUSED
        })
        .count();
    let s = fault.interrupt();
    assert_eq!(refused, 3);
    assert_eq!(s["injected"], 3, "{s}");
    lab.finish();
}

/// Every refused connect() is one event naming the process, its cgroup, the address and the
/// errno; the count equals the kernel's.
#[test]
fn connect_events_name_the_victim() {
    let lab = Lab::new("evc");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let file = TempPath::new("evc.jsonl");
    let fault = lab.fail_connect(&[
        "--errno",
        "ECONNREFUSED",
        "--events",
        file.as_str(),
        "--duration",
        "60s",
    ]);
    for _ in 0..4 {
        assert_eq!(
            connect(lab.inside("python3"), &SERVER_V4.to_string(), 7001, "tcp"),
            libc::ECONNREFUSED
        );
    }
    let s = fault.interrupt();
    let events = read_events(&file.0);
    let cgroup_id = std::fs::metadata(&lab.sb.cgroup).expect("cgroup").ino();
    assert_eq!(
        events.len() as u64,
        s["injected"].as_u64().unwrap_or(0),
        "{s}"
    );
    assert_eq!(s["events_written"], 4, "{s}");
    for e in &events {
        assert_eq!(e["comm"], "python3", "{e}");
        assert_eq!(e["errno"], "ECONNREFUSED", "{e}");
        assert_eq!(
            (e["dst"].as_str(), e["dport"].as_u64()),
            (Some("10.77.0.2"), Some(7001)),
            "{e}"
        );
        assert_eq!(e["cgroup_id"], cgroup_id, "{e}");
        assert!(e["pid"].as_u64() > Some(1), "{e}");
        assert_eq!(e["fault_id"], s["fault_id"], "{e}");
    }
    lab.finish();
}

/// Packet events: one per drop with the 5-tuple; sampling keeps about 1 in N.
#[test]
fn packet_events_and_sampling() {
    let lab = Lab::new("evp");
    let dst = SERVER_V4.to_string();
    let all = TempPath::new("evp-all.jsonl");
    let fault = lab.drop_at_server(&[
        "--protocol",
        "icmp",
        "--dst",
        &dst,
        "--percent",
        "30",
        "--events",
        all.as_str(),
        "--duration",
        "60s",
    ]);
    let p = ping(lab.outside("ping"), &dst, 300, "0.002");
    let s = fault.interrupt();
    let injected = s["injected"].as_u64().expect("injected count");
    // The victim's side first: ping missed exactly what chaos dropped, about 30 % of 300.
    assert_eq!(p.lost(), injected, "ping {p:?}, chaos {s}");
    let (lo, hi) = binomial_999(300, 0.3);
    assert!((lo..=hi).contains(&injected), "{injected} of 300 dropped");
    let events = read_events(&all.0);
    assert_eq!(events.len() as u64, injected, "{s}");
    assert!(
        events
            .iter()
            .all(|e| e["dst"] == "10.77.0.2" && e["src"] == "10.77.0.1" && e["protocol"] == 1)
    );

    let sampled = TempPath::new("evp-sampled.jsonl");
    let args = [
        "--protocol",
        "icmp",
        "--dst",
        &dst,
        "--events",
        sampled.as_str(),
        "--events-sample",
        "10",
        "--duration",
        "60s",
    ];
    let fault = lab.drop_at_server(&args);
    let p = ping(lab.outside("ping"), &dst, 1000, "0.002");
    let s = fault.interrupt();
    assert_eq!(
        (p.received, s["injected"].as_u64()),
        (0, Some(1000)),
        "{p:?} {s}"
    );
    let n = read_events(&sampled.0).len() as u64;
    let (lo, hi) = binomial_999(1000, 0.1);
    assert!(
        (lo..=hi).contains(&n),
        "{n} events for {s}, expected {lo}..={hi}"
    );
    assert_eq!(
        ping(lab.outside("ping"), &dst, 20, "0.01").lost(),
        0,
        "recovered"
    );
    lab.finish();
}
