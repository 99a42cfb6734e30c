//! A target that vanishes mid-fault (its process exits, its cgroup or interface is deleted):
//! chaos notices within a fraction of a second, detaches what is left, reports
//! `ended: target_gone` naming it, and exits with status 3.

use chaos_tests::{assert_programs_gone, lab::Lab, repl::Repl, sh};
use serde_json::Value;
use std::{
    process::Command,
    time::{Duration, Instant},
};

/// How long chaos may take from the target vanishing to its exit: it looks every 250 ms;
/// the rest is slack for emulated guests.
const NOTICED_WITHIN: Duration = Duration::from_secs(3);

/// Waits for the run to end by itself; checks status 3 and a summary naming `what`.
fn ended_by_target_gone(fault: chaos_tests::Running, gone_at: Instant, what: &str) -> Value {
    let ids = fault.program_ids.clone();
    let (code, s) = fault.finish_with_status();
    let took = gone_at.elapsed();
    println!("{what}: chaos exited {took:?} after the target vanished: {s}");
    assert_eq!(code, 3, "{s}");
    assert_eq!(s["ended"]["by"], "target_gone", "{s}");
    let target = s["ended"]["target"].as_str().unwrap_or_default();
    assert!(target.contains(what), "names {what}: {s}");
    assert!(took < NOTICED_WITHIN, "noticed after {took:?}");
    assert_programs_gone(&ids);
    s
}

#[test]
fn a_process_that_exits_ends_its_fault() {
    let lab = Lab::new("tgpid");
    let mut victim = Repl::spawn(lab.inside("python3"));
    let pid = victim.pid();
    let fault = lab.start(&[
        "syscall",
        "connect",
        "--errno",
        "ECONNREFUSED",
        "--pid",
        &pid,
        "--duration",
        "60s",
    ]);
    assert_eq!(
        victim.call("connect 10.77.0.2 7001 tcp"),
        libc::ECONNREFUSED,
        "the fault reached the process"
    );
    drop(victim);
    let gone_at = Instant::now();
    ended_by_target_gone(fault, gone_at, "process");
    lab.finish();
}

#[test]
fn a_removed_cgroup_ends_its_fault() {
    let lab = Lab::new("tgcg");
    let sub = lab.sb.cgroup.join("sub");
    std::fs::create_dir(&sub).expect("mkdir sub-cgroup");
    let sub_path = sub.to_str().expect("utf-8").to_string();
    let fault = lab.start(&[
        "syscall",
        "connect",
        "--errno",
        "ECONNREFUSED",
        "--cgroup",
        &sub_path,
        "--duration",
        "60s",
    ]);
    std::fs::remove_dir(&sub).expect("rmdir sub-cgroup");
    let gone_at = Instant::now();
    ended_by_target_gone(fault, gone_at, "cgroup");
    lab.finish();
}

#[test]
fn a_deleted_interface_ends_its_fault() {
    let lab = Lab::new("tgif");
    // An interface of its own in the lab's server namespace, so the lab's veth stays.
    let (a, b) = (
        format!("tg{}a", std::process::id() % 100_000),
        "tgpeer0".to_string(),
    );
    let ns = lab.sb.server_ns.clone();
    let ip = |args: &[&str]| sh(Command::new("ip").args(["-n", &ns]).args(args));
    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    ip(&["link", "set", &a, "up"]);
    let fault = lab.start(&[
        "net",
        "drop",
        "--iface",
        &a,
        "--netns",
        &ns,
        "--duration",
        "60s",
    ]);
    ip(&["link", "del", &a]);
    let gone_at = Instant::now();
    ended_by_target_gone(fault, gone_at, "interface");
    lab.finish();
}

/// While the target is there, watching it changes nothing: the fault runs to its deadline.
#[test]
fn a_target_that_stays_lets_the_fault_run_to_its_deadline() {
    let lab = Lab::new("tgstay");
    let fault = lab.start(&[
        "net",
        "drop",
        "--iface",
        &lab.sb.server_if,
        "--netns",
        &lab.sb.server_ns,
        "--duration",
        "1s",
    ]);
    let (code, s) = fault.finish_with_status();
    assert_eq!(
        (code, &s["ended"]["by"]),
        (0, &Value::from("deadline")),
        "{s}"
    );
    lab.finish();
}

/// In an experiment too: the cgroup of `target:` removed while a fault acts ends the run at
/// once, rolls everything back, says which fault and what vanished, and exits 3.
#[test]
fn an_experiment_whose_target_vanishes_rolls_back_with_status_3() {
    let lab = Lab::new("tgexp");
    let sub = lab.sb.cgroup.join("sub");
    std::fs::create_dir(&sub).expect("mkdir sub-cgroup");
    let sub_path = sub.to_str().expect("utf-8").to_string();
    let dir = std::env::temp_dir().join(format!("chaos-tgexp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("experiment.yaml");
    let yaml = format!(
        r#"name: target gone
hypothesis: connections are refused for a minute
target:
  cgroup: {sub_path}
duration: 60s
steady_state:
  interval: 1s
  probes:
    - name: always
      command: ["true"]
faults:
  - name: refused
    start: 0s
    duration: 60s
    syscall:
      name: connect
      errno: ECONNREFUSED
recovery:
  timeout: 5s
"#
    );
    std::fs::write(&file, yaml).expect("write experiment");
    let report = dir.join("report");
    let child = lab
        .chaos_cmd()
        .args(["run", file.to_str().expect("utf-8")])
        .args(["--report", report.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chaos run");
    // Attached, seen from the kernel side: a program on the cgroup.
    let t = Instant::now();
    while !sh(Command::new("bpftool").args(["cgroup", "show", &sub_path])).contains("connect4") {
        assert!(t.elapsed().as_secs() < 60, "fault never attached");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir(&sub).expect("rmdir sub-cgroup");
    let gone_at = Instant::now();
    let out = child.wait_with_output().expect("chaos run ends");
    let took = gone_at.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(report.join("report.json")).expect("report.json"),
    )
    .expect("report JSON");
    println!(
        "chaos run exited {took:?} after the cgroup was removed: {}",
        r["reasons"]
    );
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(r["outcome"], "target_gone", "{r}");
    let reason = r["reasons"][0].as_str().unwrap_or_default();
    assert!(
        reason.contains("'refused'") && reason.contains("cgroup") && reason.contains("removed"),
        "{reason}"
    );
    assert!(took < NOTICED_WITHIN, "noticed after {took:?}");
    let ids: Vec<u64> = r["faults"][0]["program_ids"]
        .as_array()
        .expect("program ids")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(!ids.is_empty(), "{r}");
    assert_programs_gone(&ids);
    let _ = std::fs::remove_dir_all(&dir);
    lab.finish();
}
