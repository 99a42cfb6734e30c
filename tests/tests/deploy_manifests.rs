//! deploy/: what `kubectl kustomize deploy/` renders (offline) is the agent's DaemonSet with
//! least privilege: not privileged, every capability dropped but the ones its comments justify,
//! a read-only root filesystem, resource limits, the host paths it uses and no others, a grace
//! period that covers detaching; with the namespace, account (no API token), token Secret and
//! headless Service. Its command line is one the real `chaos` accepts.

use chaos_tests::{
    deploy::{deploy_dir, rendered},
    have,
};
use serde_json::Value;
use std::{collections::BTreeSet, process::Command};

#[test]
fn deploy_renders_a_least_privilege_daemonset() {
    let test = "deploy_renders_a_least_privilege_daemonset";
    if std::env::var_os("CHAOS_EXAMPLES").is_some() {
        // In a VM guest: no source tree (and no kubectl).
        chaos_tests::expect::skip(test, "no deploy/ in the VM guest", true);
        return;
    }
    if !have("kubectl", test) {
        return;
    }
    let objs = rendered();
    let kinds: BTreeSet<&str> = objs.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "DaemonSet",
            "Namespace",
            "Secret",
            "Service",
            "ServiceAccount"
        ]
        .into_iter()
        .collect(),
        "{objs:?}"
    );
    let by = |k: &str| objs.iter().find(|o| o["kind"] == k).expect(k);
    assert_eq!(by("Service")["spec"]["clusterIP"], "None", "headless");
    assert_eq!(by("ServiceAccount")["automountServiceAccountToken"], false);
    let ds = by("DaemonSet");
    assert_eq!(ds["metadata"]["namespace"], "chaos-system");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(pod["terminationGracePeriodSeconds"].as_u64() >= Some(10));
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let caps: Vec<&str> = sc["capabilities"]["add"]
        .as_array()
        .expect("capabilities")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let allowed = [
        "BPF",
        "PERFMON",
        "NET_ADMIN",
        "SYS_ADMIN",
        "SYS_PTRACE",
        "KILL",
        "SYS_RESOURCE",
    ];
    assert!(caps.iter().all(|c| allowed.contains(c)), "{caps:?}");
    // Each capability added has its reason in a comment right above it.
    let source = std::fs::read_to_string(deploy_dir().join("daemonset.yaml")).expect("source");
    let lines: Vec<&str> = source.lines().collect();
    for cap in &caps {
        let at = lines
            .iter()
            .position(|l| l.trim() == format!("- {cap}"))
            .unwrap_or_else(|| panic!("{cap} not listed on a line of its own"));
        assert!(
            lines[at - 1].trim().starts_with('#'),
            "{cap} has no comment saying why"
        );
    }
    for limit in ["cpu", "memory"] {
        assert!(c["resources"]["limits"][limit].is_string(), "limit {limit}");
    }
    // Host paths: exactly the ones the agent uses.
    let host: BTreeSet<&str> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    assert_eq!(
        host,
        [
            "/run/chaos",
            "/run/containerd/containerd.sock",
            "/sys/fs/bpf",
            "/sys/fs/cgroup",
            "/sys/kernel/tracing",
            "/var/lib/chaos/reports",
        ]
        .into_iter()
        .collect()
    );
    // Reports name the node: NODE_NAME from the pod's spec.nodeName (downward API).
    let node_name = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .expect("NODE_NAME in env");
    assert_eq!(
        node_name["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName",
        "{node_name}"
    );
    // The command line parses with the real binary: `--help` after it is answered by the
    // agent's own help, not refused.
    let mut args: Vec<String> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    assert_eq!(args[0], "agent");
    args.push("--help".into());
    let out = Command::new(chaos_tests::chaos_bin())
        .args(&args)
        .output()
        .expect("chaos");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--client-ca"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
