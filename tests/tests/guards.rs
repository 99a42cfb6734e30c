//! Blast-radius guards: each refuses without --force (exit 2, says why, nothing attached) and
//! lets the fault run with it.

use chaos_tests::{Running, chaos_bin, chaos_via, lab::Lab, sh};
use std::process::Command;

/// A filter that matches nothing real (TEST-NET-1, port 1), for faults on shared targets.
const HARMLESS: [&str; 4] = ["--dst", "192.0.2.1/32", "--dport", "1"];

fn assert_refused((code, out, err): (i32, String, String), why: &str) {
    assert_eq!(code, 2, "stdout {out} stderr {err}");
    assert!(err.contains(why) && err.contains("--force"), "{err}");
}

#[test]
fn root_cgroup_needs_force() {
    let lab = Lab::new("groot");
    let base = [
        "syscall",
        "connect",
        "--errno",
        "EPERM",
        "--cgroup",
        "/",
        "--duration",
        "2s",
    ];
    assert_refused(lab.run(&[&base[..], &HARMLESS[..]].concat()), "root cgroup");
    lab.assert_nothing_attached();
    let forced = lab.start(&[&base[..], &HARMLESS[..], &["--force"]].concat());
    let s = forced.interrupt();
    assert_eq!(s["matched"], 0, "{s}");
    lab.finish();
}

#[test]
fn chaos_own_cgroup_needs_force() {
    let lab = Lab::new("gown");
    let cg = lab.cgroup();
    let args = [
        "syscall",
        "connect",
        "--errno",
        "EPERM",
        "--cgroup",
        &cg,
        "--duration",
        "2s",
    ];
    let args = [&args[..], &HARMLESS[..]].concat();
    let bin = chaos_bin();
    let bin = bin.to_str().expect("path");
    // chaos itself runs inside the target cgroup.
    assert_refused(
        chaos_via(lab.with_state(lab.inside(bin)), &args),
        "contains chaos itself",
    );
    lab.assert_nothing_attached();
    let forced = Running::start_via(
        lab.with_state(lab.inside(bin)),
        &[&args[..], &["--force"]].concat(),
    );
    forced.interrupt();
    lab.finish();
}

#[test]
fn default_route_interface_needs_force() {
    let lab = Lab::new("gdef");
    sh(Command::new("ip").args([
        "-n",
        &lab.sb.client_ns,
        "route",
        "add",
        "default",
        "via",
        "10.77.0.2",
    ]));
    let args = [
        "net",
        "drop",
        "--iface",
        &lab.sb.client_if,
        "--netns",
        &lab.sb.client_ns,
        "--duration",
        "2s",
    ];
    assert_refused(lab.run(&args), "default route");
    lab.assert_nothing_attached();
    lab.start(&[&args[..], &HARMLESS[..], &["--force"]].concat())
        .interrupt();
    // An experiment's fault meets the same guard, and `chaos run --force` overrides it.
    let file = std::env::temp_dir().join(format!("chaos-gdef-{}.yaml", std::process::id()));
    let yaml = format!(
        "name: main interface\nhypothesis: none\ntarget: {{cgroup: {}}}\nduration: 2s\nsteady_state: {{probes: [{{name: ok, command: [\"true\"]}}]}}\nfaults:\n  \
         - name: cut\n    start: 0s\n    duration: 1s\n    net: {{action: drop, iface: {}, netns: \
         {}}}\n",
        lab.cgroup(),
        lab.sb.client_if,
        lab.sb.client_ns
    );
    std::fs::write(&file, yaml).expect("experiment file");
    let path = file.to_str().expect("utf-8");
    let (code, out, err) = lab.run(&["run", "--check", path]);
    assert_eq!(code, 2, "{out} {err}");
    assert!(
        err.contains("default route") && err.contains("--force"),
        "{err}"
    );
    let (code, out, err) = lab.run(&["run", "--check", "--force", path]);
    assert_eq!(code, 0, "chaos run --force: {out} {err}");
    let _ = std::fs::remove_file(&file);
    lab.assert_nothing_attached();
    lab.finish();
}

#[test]
fn ssh_interface_needs_force() {
    let lab = Lab::new("gssh");
    // As if the operator were logged in over SSH from the server side of the lab.
    let with_ssh = || {
        let mut c = lab.chaos_cmd();
        c.env("SSH_CONNECTION", "10.77.0.2 50022 10.77.0.1 22");
        c
    };
    let args = [
        "net",
        "drop",
        "--iface",
        &lab.sb.client_if,
        "--netns",
        &lab.sb.client_ns,
        "--duration",
        "2s",
    ];
    assert_refused(chaos_via(with_ssh(), &args), "SSH connection");
    lab.assert_nothing_attached();
    Running::start_via(
        with_ssh(),
        &[&args[..], &HARMLESS[..], &["--force"]].concat(),
    )
    .interrupt();
    lab.finish();
}

#[test]
fn long_durations_need_force() {
    let lab = Lab::new("glong");
    let args = lab.at_server("drop", &["--duration", "25h"]);
    assert_refused(lab.run(&args), "longer than 24h");
    lab.assert_nothing_attached();
    let s = lab.start(&[&args[..], &["--force"]].concat()).interrupt();
    assert_eq!(s["ended"]["by"], "signal", "{s}");
    lab.finish();
}
