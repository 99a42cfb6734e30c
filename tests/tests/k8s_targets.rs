//! Kubernetes pods and containers as targets, resolved on the node through CRI against a real
//! containerd that the test runs and drives as the kubelet would (tests/src/kubelet.rs): what
//! `chaos targets` reports, bad targets refused with exit 2 and nothing attached, and faults
//! on one container that spare its sibling and the other pods.

use chaos_tests::{
    Running, chaos,
    kubelet::{Counter, Network, Node, connector, node_for, run, wait_moving},
};
use serde_json::Value;
use std::{os::unix::fs::MetadataExt, time::Duration};

const SLEEP: &[&str] = &["sleep", "1000000"];

fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn targets(node: &Node, args: &[&str]) -> Vec<Value> {
    let ep = node.endpoint.to_string_lossy().into_owned();
    let mut all = vec!["--json", "targets", "--runtime-endpoint", &ep];
    all.extend_from_slice(args);
    let (code, out, err) = chaos(&all);
    assert_eq!(code, 0, "chaos {all:?}: {err}");
    lines(&out)
}

#[test]
fn targets_resolve_pods_containers_pids_cgroups_and_netns() {
    let Some(mut node) = node_for("targets_resolve_pods_containers_pids_cgroups_and_netns") else {
        return;
    };
    let web0 = node.run_pod(
        "shop",
        "web-0",
        &[("app", "web"), ("tier", "front")],
        Network::Pod,
    );
    let app = node.run_container(&web0, "app", SLEEP);
    let sidecar = node.run_container(&web0, "sidecar", SLEEP);
    let web1 = node.run_pod("shop", "web-1", &[("app", "web")], Network::Pod);
    node.run_container(&web1, "app", SLEEP);
    let db = node.run_pod("shop", "db-0", &[("app", "db")], Network::Pod);
    node.run_container(&db, "db", SLEEP);

    let pod = targets(&node, &["--pod", "shop/web-0"]);
    assert_eq!(pod.len(), 2, "{pod:?}");
    for (t, id) in pod.iter().zip([&app, &sidecar]) {
        let pid = node.pid(id) as u64;
        assert_eq!(t["pid"], pid, "{t}");
        assert_eq!(t["container_id"], id.as_str(), "{t}");
        let cgroup = t["cgroup"].as_str().expect("cgroup");
        assert_eq!(
            cgroup,
            format!("/kubepods/besteffort/pod{}/{id}", web0.uid),
            "the cgroupfs driver's layout"
        );
        let ino = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .expect("netns")
            .ino();
        assert_eq!(t["netns_inode"], ino, "{t}");
        assert_eq!(t["interfaces"], "eth0", "the pod's CNI interface: {t}");
        assert_eq!(t["chosen"], true);
    }
    assert_eq!(
        pod[0]["netns_inode"], pod[1]["netns_inode"],
        "one pod, one netns"
    );
    assert_ne!(
        pod[0]["cgroup"], pod[1]["cgroup"],
        "one cgroup per container"
    );

    let one = targets(&node, &["--pod", "shop/web-0", "--container", "sidecar"]);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["container"], "sidecar");

    let web = targets(&node, &["--selector", "app=web", "--namespace", "shop"]);
    let pods: Vec<&str> = web
        .iter()
        .map(|t| t["pod"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(pods, ["web-0", "web-0", "web-1"], "{web:?}");
    let set = targets(
        &node,
        &[
            "--selector",
            "app in (web,db),tier!=front",
            "--namespace",
            "shop",
        ],
    );
    let pods: Vec<&str> = set
        .iter()
        .map(|t| t["pod"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(pods, ["db-0", "web-1"], "{set:?}");

    for _ in 0..5 {
        let picked = targets(
            &node,
            &[
                "--selector",
                "app=web",
                "--namespace",
                "shop",
                "--mode",
                "one",
            ],
        );
        let chosen = picked.iter().filter(|t| t["chosen"] == true).count();
        assert_eq!((picked.len(), chosen), (3, 1), "{picked:?}");
    }
}

#[test]
fn bad_targets_exit_2_naming_what_was_looked_for_and_attach_nothing() {
    let Some(mut node) =
        node_for("bad_targets_exit_2_naming_what_was_looked_for_and_attach_nothing")
    else {
        return;
    };
    let web0 = node.run_pod("shop", "web-0", &[("app", "web")], Network::Pod);
    node.run_container(&web0, "app", SLEEP);
    let ep = node.endpoint.to_string_lossy().into_owned();
    let sock = ["--runtime-endpoint", ep.as_str()];
    let fault = [
        "syscall",
        "connect",
        "--errno",
        "ECONNREFUSED",
        "--duration",
        "5s",
    ];
    let cases: &[(&[&str], &str, &[&str])] = &[
        (
            &["--pod", "shop/nope"],
            "--pod",
            &["shop/nope", "web-0", &ep],
        ),
        (
            &["--pod", "nowhere/web-0"],
            "--pod",
            &["nowhere/web-0", "no pods of namespace nowhere"],
        ),
        (
            &["--pod", "shop/web-0", "--container", "db"],
            "--container",
            &["'db'", "app"],
        ),
        (
            &["--selector", "app=nothing", "--namespace", "shop"],
            "--selector",
            &["shop", &ep],
        ),
        (&["--pod", "web-0"], "--pod", &["NAMESPACE/NAME"]),
    ];
    for (args, flag, words) in cases {
        let mut all: Vec<&str> = fault.to_vec();
        all.extend_from_slice(args);
        all.extend_from_slice(&sock);
        let (code, out, err) = chaos(&all);
        assert_eq!(code, 2, "{all:?}: {out} {err}");
        assert!(err.contains(flag), "{all:?} names {flag}: {err}");
        for w in *words {
            assert!(err.contains(w), "{all:?} says {w}: {err}");
        }
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // No runtime socket at all.
    let mut all: Vec<&str> = fault.to_vec();
    all.extend_from_slice(&[
        "--pod",
        "shop/web-0",
        "--runtime-endpoint",
        "/nonexistent.sock",
    ]);
    let (code, _, err) = chaos(&all);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--runtime-endpoint") && err.contains("/nonexistent.sock"),
        "{err}"
    );
    // Nothing was attached by any of them.
    let (code, out, err) = chaos(&["--json", "status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("syscall connect"),
        "no fault left by a refused command: {out}"
    );
}

#[test]
fn connect_fault_on_one_container_spares_its_sibling_and_other_pods() {
    let Some(mut node) =
        node_for("connect_fault_on_one_container_spares_its_sibling_and_other_pods")
    else {
        return;
    };
    let (a, b, c) = (Counter::start(), Counter::start(), Counter::start());
    let web0 = node.run_pod("shop", "web-0", &[("app", "web")], Network::Pod);
    let gw = format!("{}.1", node.subnet);
    run(&mut node, &web0, "app", &connector(&gw, a.port));
    run(&mut node, &web0, "sidecar", &connector(&gw, b.port));
    let web1 = node.run_pod("shop", "web-1", &[("app", "web")], Network::Pod);
    run(&mut node, &web1, "app", &connector(&gw, c.port));
    wait_moving(&[&a, &b, &c]);

    let ep = node.endpoint.to_string_lossy().into_owned();
    let fault = Running::start_via(
        std::process::Command::new(chaos_tests::chaos_bin()),
        &[
            "syscall",
            "connect",
            "--errno",
            "ECONNREFUSED",
            "--pod",
            "shop/web-0",
            "--container",
            "app",
            "--runtime-endpoint",
            &ep,
            "--duration",
            "3s",
        ],
    );
    assert_eq!(fault.backend, "sock_addr");
    let ids = fault.program_ids.clone();
    // Connections already under way when it attached may still land.
    std::thread::sleep(Duration::from_millis(300));
    let before = [a.now(), b.now(), c.now()];
    let summary = fault.finish();
    let after = [a.now(), b.now(), c.now()];
    let grown: Vec<u64> = after.iter().zip(before).map(|(x, y)| x - y).collect();
    println!("connections during the fault (app, sidecar, other pod): {grown:?}; {summary}");
    // Accepts lag on a loaded machine: a handful late, against the sibling's dozens.
    assert!(
        grown[0] <= 2.max(grown[1] / 4),
        "the faulted container could not connect: {grown:?}"
    );
    assert!(
        grown[1] >= 10 && grown[2] >= 10,
        "sibling and other pod spared: {grown:?}"
    );
    let rules = summary["rules"].as_array().expect("per-target counts");
    assert_eq!(rules.len(), 1, "{summary}");
    assert_eq!(rules[0]["rule"], "shop/web-0/app");
    assert!(summary["injected"].as_u64() >= Some(10), "{summary}");
    chaos_tests::assert_programs_gone(&ids);
    // And the container connects again.
    wait_moving(&[&a]);
}
