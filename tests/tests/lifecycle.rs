//! Faults that outlive a command: background faults with status/stop/live, and the leftovers
//! of a SIGKILLed chaos (cls_bpf), which stay inert after the deadline until cleaned up.

use chaos_tests::{
    Running, chaos_via,
    clients::{connect, ping},
    lab::{Lab, SERVER_V4},
};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Runs `chaos ARGS` with the lab's state dirs; returns stdout, asserting success.
fn chaos_ok(lab: &Lab, args: &[&str]) -> String {
    let (code, out, err) = chaos_via(lab.chaos_cmd(), args);
    assert_eq!(code, 0, "chaos {args:?}: {err}");
    out
}

fn status(lab: &Lab) -> Vec<Value> {
    let out = chaos_ok(lab, &["status", "--json"]);
    serde_json::from_str::<Value>(&out)
        .expect("status JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn background(lab: &Lab, args: &[&str]) -> String {
    let out = chaos_ok(lab, &[args, &["--background", "--json"]].concat());
    let v: Value = serde_json::from_str(out.trim()).expect("background line");
    assert_eq!(v["event"], "background", "{v}");
    v["id"].as_str().expect("id").to_string()
}

/// A background `syscall connect` refusing with ECONNREFUSED in cgroup `cg` for 60 s, with
/// `extra` flags; returns its id.
fn background_refusal(lab: &Lab, cg: &str, extra: &[&str]) -> String {
    let flags = [
        "syscall",
        "connect",
        "--errno",
        "ECONNREFUSED",
        "--cgroup",
        cg,
    ];
    background(lab, &[&flags[..], extra, &["--duration", "60s"]].concat())
}

#[test]
fn background_fault_outlives_chaos_and_stops_on_demand() {
    let lab = Lab::new("bgn");
    let dst = SERVER_V4.to_string();
    let id = background(
        &lab,
        &lab.at_server(
            "drop",
            &["--protocol", "icmp", "--dst", &dst, "--duration", "60s"],
        ),
    );
    // chaos has exited; the fault is still there.
    assert_eq!(ping(lab.outside("ping"), &dst, 10, "0.01").received, 0);
    let st = status(&lab);
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(
        (st[0]["id"].as_str(), st[0]["state"].as_str()),
        (Some(id.as_str()), Some("active"))
    );
    assert_eq!(st[0]["counters"]["injected"], 10, "{st:?}");
    chaos_ok(&lab, &["stop", &id]);
    assert_eq!(
        ping(lab.outside("ping"), &dst, 10, "0.01").lost(),
        0,
        "after stop"
    );
    assert!(status(&lab).is_empty());
    lab.finish();
}

#[test]
fn expired_background_fault_is_inert_and_listed_until_stopped() {
    let lab = Lab::new("bgx");
    let dst = SERVER_V4.to_string();
    background(
        &lab,
        &lab.at_server("drop", &["--protocol", "icmp", "--duration", "1s"]),
    );
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(
        ping(lab.outside("ping"), &dst, 10, "0.01").lost(),
        0,
        "past its deadline"
    );
    let st = status(&lab);
    assert_eq!(st[0]["state"], "expired", "{st:?}");
    assert!(
        lab.attachments().contains("chaos_tc"),
        "still pinned until stopped"
    );
    chaos_ok(&lab, &["stop", "--all"]);
    lab.finish();
}

/// A background dry run counts; `chaos live` makes it inject; cleanup removes it.
#[test]
fn background_connect_dry_run_goes_live_and_cleans_up() {
    let lab = Lab::new("bgc");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let dst = SERVER_V4.to_string();
    let cg = lab.cgroup();
    let id = background_refusal(&lab, &cg, &["--dry-run"]);
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7001, "tcp"),
        0,
        "dry run"
    );
    assert_eq!(status(&lab)[0]["counters"]["injected"], 1);
    chaos_ok(&lab, &["live", &id]);
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7001, "tcp"),
        libc::ECONNREFUSED,
        "live"
    );
    chaos_ok(&lab, &["cleanup"]);
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7001, "tcp"),
        0,
        "after cleanup"
    );
    lab.finish();
}

/// `chaos stop` ends a background fault in the kernel before it unpins anything: a pinned fault
/// that is disarmed (what stop does first) stays pinned and refuses nothing more.
#[test]
fn background_fault_is_disarmed_before_it_is_unpinned() {
    let lab = Lab::new("bgd");
    let _srv = lab.tcp_server(&["10.77.0.2:7002"]);
    let dst = SERVER_V4.to_string();
    let cg = lab.cgroup();
    let id = background_refusal(&lab, &cg, &[]);
    let refused = || connect(lab.inside("python3"), &dst, 7002, "tcp");
    assert_eq!(refused(), libc::ECONNREFUSED, "in force");
    chaos::background::disarm_pinned(&lab.pin_dir.join(&id), chaos::state::RuleKind::Sock)
        .expect("disarm the pinned fault");
    assert_eq!(refused(), 0, "disarmed");
    let st = status(&lab);
    assert_eq!(st.len(), 1, "still pinned and listed: {st:?}");
    assert_eq!(st[0]["counters"]["injected"], 1, "{st:?}");
    let mut cmd = lab.chaos_cmd();
    cmd.env("CHAOS_LOG", "debug");
    let (code, _, err) = chaos_via(cmd, &["stop", &id]);
    assert_eq!(code, 0, "{err}");
    let disarmed = err.find(&format!("fault {id}: disarmed in the kernel"));
    assert!(disarmed.is_some(), "stop disarms first: {err}");
    assert!(status(&lab).is_empty());
    lab.finish();
}

#[test]
fn background_cls_bpf_fault_stops_cleanly() {
    let lab = Lab::new("bgcls");
    let dst = SERVER_V4.to_string();
    let id = background(
        &lab,
        &lab.at_server(
            "drop",
            &[
                "--tc-attach",
                "cls-bpf",
                "--direction",
                "both",
                "--protocol",
                "icmp",
                "--duration",
                "60s",
            ],
        ),
    );
    assert_eq!(ping(lab.outside("ping"), &dst, 10, "0.01").received, 0);
    chaos_ok(&lab, &["stop", &id]);
    assert_eq!(ping(lab.outside("ping"), &dst, 10, "0.01").lost(), 0);
    lab.finish();
}

/// SIGKILL leaves a cls_bpf filter behind (the kernel does not tie it to a process); it stops
/// injecting at its deadline, and `chaos cleanup` removes it and the clsact qdisc.
#[test]
fn sigkilled_cls_bpf_fault_is_inert_after_deadline_and_cleaned_up() {
    let lab = Lab::new("kcls");
    let dst = SERVER_V4.to_string();
    let args = lab.at_server(
        "drop",
        &[
            "--tc-attach",
            "cls-bpf",
            "--protocol",
            "icmp",
            "--duration",
            "3s",
        ],
    );
    let fault = Running::start_via(lab.chaos_cmd(), &args);
    // The deadline was set before "attached" was printed: at most 3 s from here.
    let attached = Instant::now();
    fault.kill();
    assert!(
        lab.attachments().contains("chaos_tc"),
        "the filter outlives SIGKILL"
    );
    assert_eq!(
        ping(lab.outside("ping"), &dst, 5, "0.01").received,
        0,
        "still injecting before the deadline"
    );
    if let Some(d) = (attached + Duration::from_millis(3300)).checked_duration_since(Instant::now())
    {
        std::thread::sleep(d);
    }
    assert_eq!(
        ping(lab.outside("ping"), &dst, 10, "0.01").lost(),
        0,
        "inert after the deadline"
    );
    assert_eq!(status(&lab)[0]["state"], "orphaned");
    chaos_ok(&lab, &["cleanup"]);
    lab.finish();
}

/// The next fault command removes a crashed chaos's leftovers by itself.
#[test]
fn next_fault_command_reaps_leftovers() {
    let lab = Lab::new("reap");
    let args = lab.at_server("drop", &["--tc-attach", "cls-bpf", "--duration", "60s"]);
    Running::start_via(lab.chaos_cmd(), &args).kill();
    assert!(lab.attachments().contains("chaos_tc"));
    let cg = lab.cgroup();
    // Any fault command; this one matches nothing.
    let other = [
        "syscall",
        "connect",
        "--errno",
        "EPERM",
        "--cgroup",
        &cg,
        "--dst",
        "192.0.2.1/32",
        "--duration",
        "100ms",
    ];
    chaos_ok(&lab, &other);
    lab.finish();
}

/// `stop --all` ends every fault: the background one is removed, and running foreground ones
/// (cls_bpf, or fd-owned cgroup links) are asked to stop (SIGTERM) and detach themselves.
#[test]
fn stop_all_ends_foreground_and_background_faults() {
    let lab = Lab::new("stopall");
    let dst = SERVER_V4.to_string();
    background(
        &lab,
        &lab.at_server("drop", &["--protocol", "icmp", "--duration", "60s"]),
    );
    let (cifc, cns) = (lab.sb.client_if.clone(), lab.sb.client_ns.clone());
    let args = [
        "net",
        "drop",
        "--iface",
        &cifc,
        "--netns",
        &cns,
        "--tc-attach",
        "cls-bpf",
        "--protocol",
        "udp",
        "--duration",
        "60s",
    ];
    let foreground = Running::start_via(lab.chaos_cmd(), &args);
    let cg = lab.cgroup();
    let connect = [
        "syscall",
        "connect",
        "--errno",
        "EPERM",
        "--cgroup",
        &cg,
        "--duration",
        "60s",
    ];
    let fd_owned = Running::start_via(lab.chaos_cmd(), &connect);
    let listed = status(&lab);
    assert_eq!(listed.len(), 3, "every running fault is listed: {listed:?}");
    chaos_ok(&lab, &["stop", "--all"]);
    for f in [foreground, fd_owned] {
        let s = f.finish();
        assert_eq!(s["ended"]["signal"], "SIGTERM", "{s}");
    }
    assert_eq!(
        ping(lab.outside("ping"), &dst, 10, "0.01").lost(),
        0,
        "background fault removed"
    );
    lab.finish();
}

/// A background write fault (pinned LSM or fmod_ret link): dry run counts, `live` makes dd fail
/// with ENOSPC, `stop` removes it and its pins.
#[test]
fn lsm_background_write_goes_live_and_stops() {
    if !chaos_tests::kernel_runs("syscall write", "lsm_background_write_goes_live_and_stops") {
        return;
    }
    let lab = Lab::new("bgw");
    let dir = std::env::temp_dir().join(format!("chaos-bgw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (d, cg) = (dir.to_string_lossy().into_owned(), lab.cgroup());
    let id = background(
        &lab,
        &[
            "syscall",
            "write",
            "--errno",
            "ENOSPC",
            "--path",
            &d,
            "--cgroup",
            &cg,
            "--dry-run",
            "--duration",
            "120s",
        ],
    );
    let dd = |lab: &Lab| {
        lab.inside("dd")
            .args(["if=/dev/zero", &format!("of={d}/f"), "bs=4k", "count=1"])
            // Its record counts and ENOSPC message would split the test's line on the console.
            .stderr(std::process::Stdio::null())
            .status()
            .expect("dd")
            .success()
    };
    assert!(dd(&lab), "dry run");
    assert_eq!(status(&lab)[0]["counters"]["injected"], 1);
    chaos_ok(&lab, &["live", &id]);
    assert!(!dd(&lab), "live");
    chaos_ok(&lab, &["stop", &id]);
    assert!(dd(&lab), "after stop");
    let _ = std::fs::remove_dir_all(&dir);
    lab.finish();
}
