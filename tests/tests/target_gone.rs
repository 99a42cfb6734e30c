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
