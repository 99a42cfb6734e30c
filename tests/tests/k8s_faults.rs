//! Faults on Kubernetes targets against a real containerd driven as the kubelet would
//! (tests/src/kubelet.rs): a packet fault on a pod's own interface, or on one of its
//! containers; a selector with `--mode one` hitting exactly one of three replicas; a pod
//! deleted mid-fault ending it with `target gone`; a restarted container followed; a file fault resolved to the container's
//! cgroup and, where this kernel has no syscall hook, refused with the reason.

use chaos_tests::{
    Running, chaos,
    kubelet::{Counter, Network, Node, Pod, connector, node_for, run, wait_moving},
};
use std::time::Duration;

/// Starts `chaos ARGS --runtime-endpoint SOCK`, waits for its attached line.
fn start(node: &Node, args: &[&str]) -> Running {
    let ep = node.endpoint.to_string_lossy().into_owned();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--runtime-endpoint", &ep]);
    Running::start_via(std::process::Command::new(chaos_tests::chaos_bin()), &all)
}

/// At most this many connections of a faulted victim may still be counted during a fault: the
/// counter counts at accept(), which under load can lag the handshake done before the attach.
const LATE: u64 = 2;

/// Whether a victim with `got` connections during the fault was cut off, next to one spared
/// that made `spared`: at most LATE, or (on a loaded machine, where accepts lag by seconds) a
/// quarter of the spared one's. An unfaulted victim makes about as many as the spared.
fn is_cut(got: u64, spared: u64) -> bool {
    got <= LATE.max(spared / 4)
}

/// Connections each counter got while `fault` ran to its end, counted from 1 s after the
/// attach (connections under way then may still land).
fn during(fault: Running, counters: &[&Counter]) -> (Vec<u64>, serde_json::Value) {
    std::thread::sleep(Duration::from_millis(1000));
    let before: Vec<u64> = counters.iter().map(|c| c.now()).collect();
    let summary = fault.finish();
    let grown = counters
        .iter()
        .zip(before)
        .map(|(c, b)| c.now() - b)
        .collect();
    (grown, summary)
}

/// web-0 (app → a, sidecar → b) and web-1 (app → c), on the pod network.
fn two_pods(node: &mut Node) -> (Pod, [Counter; 3]) {
    let counters = [Counter::start(), Counter::start(), Counter::start()];
    let gw = format!("{}.1", node.subnet);
    let web0 = node.run_pod("shop", "web-0", &[("app", "web")], Network::Pod);
    run(node, &web0, "app", &connector(&gw, counters[0].port));
    run(node, &web0, "sidecar", &connector(&gw, counters[1].port));
    let web1 = node.run_pod("shop", "web-1", &[("app", "web")], Network::Pod);
    run(node, &web1, "app", &connector(&gw, counters[2].port));
    wait_moving(&counters.iter().collect::<Vec<_>>());
    (web0, counters)
}

#[test]
fn net_drop_on_a_pod_acts_on_its_own_interface_and_spares_other_pods() {
    let Some(mut node) =
        node_for("net_drop_on_a_pod_acts_on_its_own_interface_and_spares_other_pods")
    else {
        return;
    };
    let (web0, [a, b, c]) = two_pods(&mut node);
    let fault = start(
        &node,
        &["net", "drop", "--pod", &web0.arg(), "--duration", "4s"],
    );
    let ids = fault.program_ids.clone();
    let (grown, summary) = during(fault, &[&a, &b, &c]);
    println!("whole pod: connections (app, sidecar, other pod) {grown:?}; {summary}");
    assert!(
        is_cut(grown[0], grown[2]) && is_cut(grown[1], grown[2]),
        "the pod's containers cut off: {grown:?}"
    );
    assert!(grown[2] >= 10, "the other pod spared: {grown:?}");
    let rules = summary["rules"].as_array().expect("per-target counts");
    assert_eq!(rules.len(), 1, "one part for the pod: {summary}");
    assert_eq!(rules[0]["rule"], "shop/web-0");
    assert!(rules[0]["injected"].as_u64() >= Some(10), "{summary}");
    chaos_tests::assert_programs_gone(&ids);
    wait_moving(&[&a, &b]);
}

#[test]
fn net_drop_on_one_container_spares_its_sibling() {
    let Some(mut node) = node_for("net_drop_on_one_container_spares_its_sibling") else {
        return;
    };
    let (web0, [a, b, c]) = two_pods(&mut node);
    let args = [
        "net",
        "drop",
        "--pod",
        &web0.arg(),
        "--container",
        "app",
        "--duration",
        "4s",
    ];
    let fault = start(&node, &args);
    let (grown, summary) = during(fault, &[&a, &b, &c]);
    println!("one container: connections (app, sidecar, other pod) {grown:?}; {summary}");
    assert!(is_cut(grown[0], grown[1]), "app cut off: {grown:?}");
    assert!(
        grown[1] >= 10 && grown[2] >= 10,
        "sibling and other pod spared: {grown:?}"
    );
    assert_eq!(summary["rules"][0]["rule"], "shop/web-0/app", "{summary}");
}

#[test]
fn selector_with_mode_one_or_fixed_two_faults_that_many_replicas() {
    let Some(mut node) = node_for("selector_with_mode_one_or_fixed_two_faults_that_many_replicas")
    else {
        return;
    };
    let gw = format!("{}.1", node.subnet);
    let counters = [Counter::start(), Counter::start(), Counter::start()];
    for (i, c) in counters.iter().enumerate() {
        let pod = node.run_pod("shop", &format!("api-{i}"), &[("app", "api")], Network::Pod);
        run(&mut node, &pod, "app", &connector(&gw, c.port));
    }
    let refs: Vec<&Counter> = counters.iter().collect();
    wait_moving(&refs);
    let args = [
        "syscall",
        "connect",
        "--errno",
        "ECONNREFUSED",
        "--selector",
        "app=api",
        "--namespace",
        "shop",
        "--mode",
        "one",
        "--duration",
        "4s",
    ];
    let (grown, summary) = during(start(&node, &args), &refs);
    println!("mode one: connections per replica {grown:?}; {summary}");
    let most = *grown.iter().max().expect("three");
    let cut: Vec<usize> = (0..3).filter(|&i| is_cut(grown[i], most)).collect();
    assert_eq!(cut.len(), 1, "exactly one replica faulted: {grown:?}");
    assert!(grown.iter().filter(|&&g| g >= 10).count() == 2, "{grown:?}");
    let rules = summary["rules"].as_array().expect("per-target counts");
    assert_eq!(rules.len(), 1, "{summary}");
    assert_eq!(
        rules[0]["rule"],
        format!("shop/api-{}/app", cut[0]),
        "the one it names"
    );
    // fixed:2 faults two replicas, each counted on its own in the one summary.
    wait_moving(&refs);
    let two = args.map(|a| if a == "one" { "fixed:2" } else { a });
    let (grown, summary) = during(start(&node, &two), &refs);
    println!("mode fixed:2: connections per replica {grown:?}; {summary}");
    let most = *grown.iter().max().expect("three");
    let cut: Vec<String> = (0..3)
        .filter(|&i| is_cut(grown[i], most))
        .map(|i| format!("shop/api-{i}/app"))
        .collect();
    assert_eq!(cut.len(), 2, "exactly two replicas faulted: {grown:?}");
    let named: Vec<&str> = summary["rules"]
        .as_array()
        .expect("per-target counts")
        .iter()
        .map(|r| r["rule"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(named, cut, "{summary}");
    assert!(
        summary["rules"][1]["injected"].as_u64() >= Some(10),
        "{summary}"
    );
}

#[test]
fn a_pod_deleted_mid_fault_ends_it_with_target_gone() {
    let Some(mut node) = node_for("a_pod_deleted_mid_fault_ends_it_with_target_gone") else {
        return;
    };
    for (i, family) in ["syscall", "net"].into_iter().enumerate() {
        let pod = node.run_pod("shop", &format!("web-{i}"), &[], Network::Pod);
        run(&mut node, &pod, "app", &["sleep".into(), "1000000".into()]);
        let arg = pod.arg();
        let args: Vec<&str> = match family {
            "syscall" => vec!["syscall", "connect", "--errno", "EPERM"],
            _ => vec!["net", "drop"],
        }
        .into_iter()
        .chain(["--pod", &arg, "--duration", "60s"])
        .collect();
        let fault = start(&node, &args);
        let ids = fault.program_ids.clone();
        let t = std::time::Instant::now();
        node.delete_pod(&pod);
        let (code, summary) = fault.finish_with_status();
        println!("{} after deletion ({:?}): {summary}", args[0], t.elapsed());
        assert_eq!(code, 3, "target gone: {summary}");
        assert_eq!(summary["ended"]["by"], "target_gone", "{summary}");
        assert!(
            summary["ended"]["target"]
                .as_str()
                .unwrap_or("")
                .contains(&arg),
            "names the pod: {summary}"
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        chaos_tests::assert_programs_gone(&ids);
    }
}

#[test]
fn a_file_fault_on_a_container_resolves_its_cgroup() {
    let Some(mut node) = node_for("a_file_fault_on_a_container_resolves_its_cgroup") else {
        return;
    };
    let web0 = node.run_pod("shop", "web-0", &[], Network::Pod);
    let id = run(&mut node, &web0, "app", &["sleep".into(), "1000000".into()]);
    let ep = node.endpoint.to_string_lossy().into_owned();
    let args = [
        "syscall",
        "write",
        "--errno",
        "EIO",
        "--pod",
        "shop/web-0",
        "--runtime-endpoint",
        &ep,
        "--duration",
        "2s",
    ];
    if chaos_tests::doctor_lists("syscall write") {
        // This kernel runs file faults: the write fault reaches the container's cgroup.
        let fault = Running::start_via(std::process::Command::new(chaos_tests::chaos_bin()), &args);
        let s = fault.finish();
        assert_eq!(s["rules"][0]["rule"], "shop/web-0/app", "{s}");
        return;
    }
    let (code, out, err) = chaos(&args);
    println!("{out}{err}");
    assert_eq!(code, 1, "refused on this kernel: {err}");
    assert!(
        out.contains("targets:   shop/web-0/app"),
        "resolved to the container first: {out}"
    );
    for needle in ["BPF LSM:", "fmod_ret", "kprobe:"] {
        assert!(err.contains(needle), "names {needle:?}: {err}");
    }
    let pid = node.pid(&id);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    assert!(
        cgroup.contains(&format!("pod{}/{id}", web0.uid)),
        "{cgroup}"
    );
}

#[test]
fn a_restarted_container_is_followed_within_a_second() {
    let Some(mut node) = node_for("a_restarted_container_is_followed_within_a_second") else {
        return;
    };
    let (a, b) = (Counter::start(), Counter::start());
    let gw = format!("{}.1", node.subnet);
    let web0 = node.run_pod("shop", "web-0", &[], Network::Pod);
    let app = run(&mut node, &web0, "app", &connector(&gw, a.port));
    run(&mut node, &web0, "sidecar", &connector(&gw, b.port));
    wait_moving(&[&a, &b]);
    for family in ["syscall", "net"] {
        let args: Vec<&str> = match family {
            "syscall" => vec!["syscall", "connect", "--errno", "ECONNREFUSED"],
            _ => vec!["net", "drop"],
        }
        .into_iter()
        .chain([
            "--pod",
            "shop/web-0",
            "--container",
            "app",
            "--duration",
            "30s",
        ])
        .collect();
        let fault = start(&node, &args);
        std::thread::sleep(Duration::from_millis(500));
        let blocked = a.now();
        std::thread::sleep(Duration::from_secs(1));
        assert!(
            a.now() - blocked <= LATE,
            "{family}: faulted before the restart"
        );
        // The container exits; the kubelet starts attempt N+1 of it (new id, pid, cgroup).
        let old = if family == "syscall" {
            app.clone()
        } else {
            node.latest("app")
        };
        node.stop_container(&old);
        let attempt = if family == "syscall" { 1 } else { 2 };
        let cmd = connector(&gw, a.port);
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        node.start_attempt(&web0, "app", &cmd, attempt);
        // Within a second of the new container starting, the fault is on it.
        std::thread::sleep(Duration::from_millis(1000));
        let after = a.now();
        let b_before = b.now();
        std::thread::sleep(Duration::from_secs(2));
        let (grown, sibling) = (a.now() - after, b.now() - b_before);
        let summary = fault.interrupt();
        println!(
            "{family}: restarted container connected {grown} times, sibling {sibling}; {summary}"
        );
        assert!(
            is_cut(grown, sibling),
            "{family}: the fault followed the new container: {grown}"
        );
        assert!(sibling >= 10, "{family}: sibling spared: {sibling}");
        let rule = summary["rules"][0]["rule"].as_str().unwrap_or_default();
        assert!(rule.contains("followed 1 restart"), "{family}: {summary}");
        assert!(summary["injected"].as_u64() >= Some(5), "{summary}");
    }
}

#[test]
fn udp_sendmsg_fault_on_one_container_spares_its_sibling() {
    use chaos_tests::kubelet::{UdpCounter, udp_sender};
    let Some(mut node) = node_for("udp_sendmsg_fault_on_one_container_spares_its_sibling") else {
        return;
    };
    let (a, b) = (UdpCounter::start(), UdpCounter::start());
    let gw = format!("{}.1", node.subnet);
    let web0 = node.run_pod("shop", "web-0", &[], Network::Pod);
    run(&mut node, &web0, "app", &udp_sender(&gw, a.port));
    run(&mut node, &web0, "sidecar", &udp_sender(&gw, b.port));
    let moving = |c: &UdpCounter| {
        let n = c.now();
        std::thread::sleep(Duration::from_millis(1500));
        c.now() > n + 3
    };
    assert!(moving(&a) && moving(&b), "both send datagrams");
    let args = [
        "syscall",
        "sendmsg",
        "--errno",
        "EPERM",
        "--pod",
        "shop/web-0",
        "--container",
        "app",
        "--protocol",
        "udp",
        "--duration",
        "4s",
    ];
    let fault = start(&node, &args);
    std::thread::sleep(Duration::from_millis(300));
    let (a0, b0) = (a.now(), b.now());
    let summary = fault.finish();
    let (ga, gb) = (a.now() - a0, b.now() - b0);
    println!("udp: datagrams during the fault app {ga}, sidecar {gb}; {summary}");
    assert!(is_cut(ga, gb), "app's datagrams refused: {ga}");
    assert!(gb >= 10, "sidecar's arrive: {gb}");
    assert!(summary["injected"].as_u64() >= Some(10), "{summary}");
}

#[test]
fn a_host_network_pod_is_scoped_by_cgroup_on_the_node_interface() {
    let Some(mut node) = node_for("a_host_network_pod_is_scoped_by_cgroup_on_the_node_interface")
    else {
        return;
    };
    let (a, c) = (Counter::start(), Counter::start());
    let host = node.run_pod("shop", "agent-0", &[], Network::Host);
    run(&mut node, &host, "app", &connector("127.0.0.1", a.port));
    let other = node.run_pod("shop", "agent-1", &[], Network::Host);
    run(&mut node, &other, "app", &connector("127.0.0.1", c.port));
    wait_moving(&[&a, &c]);
    // No interface of its own: the node's must be named.
    let ep = node.endpoint.to_string_lossy().into_owned();
    let (code, _, err) = chaos(&[
        "net",
        "drop",
        "--pod",
        "shop/agent-0",
        "--duration",
        "2s",
        "--runtime-endpoint",
        &ep,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--iface") && err.contains("hostNetwork"),
        "{err}"
    );
    // Scoped by its cgroup on lo, the node's loopback: its connections fail, the other pod's
    // (same interface, other cgroup) do not.
    let args = [
        "net",
        "drop",
        "--pod",
        "shop/agent-0",
        "--iface",
        "lo",
        "--duration",
        "4s",
    ];
    let (grown, summary) = during(start(&node, &args), &[&a, &c]);
    println!("host network: connections (agent-0, agent-1) {grown:?}; {summary}");
    assert!(is_cut(grown[0], grown[1]) && grown[1] >= 10, "{grown:?}");
    assert_eq!(summary["rules"][0]["rule"], "shop/agent-0/app", "{summary}");
}
