//! The agent as Kubernetes runs it: the image `cargo xtask image` builds, imported into a real
//! containerd, run through CRI from the rendered DaemonSet's pod template (capabilities, host
//! paths, hostPID, hostNetwork, user, read-only root, limits) as a kubelet translates it. From
//! there it refuses a victim pod's connects over its HTTPS API with its token, and SIGTERM (pod
//! deletion) ends the fault; and drops its packets in the pod's network namespace. The same pod
//! without CAP_SYS_ADMIN is refused by the kernel (setns): the manifest's privileges are
//! enough, and that one is needed.

use chaos_tests::{
    TempPath,
    agent::self_signed,
    kubelet::{Counter, Network, Node, Placement, connector, node_for, run, wait_moving},
};
use serde_json::Value;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

const TOKEN: &str = "pod-agent-token-0123456789abcdef";
/// Where the DaemonSet serves (hostNetwork, --listen=0.0.0.0:7070).
const API: &str = "https://127.0.0.1:7070";

/// Capability numbers (linux/capability.h) of those deploy/daemonset.yaml adds.
const CAPS: &[(&str, u32)] = &[
    ("KILL", 5),
    ("NET_ADMIN", 12),
    ("SYS_PTRACE", 19),
    ("SYS_ADMIN", 21),
    ("SYS_RESOURCE", 24),
    ("PERFMON", 38),
    ("BPF", 39),
];

/// The capabilities this machine's bounding set lacks (runc cannot grant them), with why.
fn missing_here() -> Vec<(&'static str, String)> {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .expect("CapBnd");
    CAPS.iter()
        .filter(|(_, bit)| bnd & (1 << bit) == 0)
        .map(|(name, _)| {
            (
                *name,
                "this machine's bounding set lacks it, so runc cannot grant it (the manifest \
                 wants it for kernels before 5.11 only)"
                    .to_string(),
            )
        })
        .collect()
}

/// The image archive, built by the xtask binary from the chaos binary under test.
fn build_image(out: &Path) {
    let xtask = std::env::var_os("CHAOS_XTASK").map_or_else(
        || chaos_tests::chaos_bin().with_file_name("xtask"),
        PathBuf::from,
    );
    assert!(
        xtask.exists(),
        "{} not found: build it (cargo build -p xtask) or set CHAOS_XTASK",
        xtask.display()
    );
    let ok = Command::new(&xtask)
        .arg("image")
        .arg("--chaos-bin")
        .arg(chaos_tests::chaos_bin())
        .arg("--out")
        .arg(out)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cargo xtask image");
}

/// The files the pod's secrets and host paths come from.
struct Files {
    dir: PathBuf,
    ca: String,
}

impl Files {
    fn new() -> Files {
        let dir = std::env::temp_dir().join(format!("chaos-agent-pod-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["token", "tls", "state", "reports"] {
            std::fs::create_dir_all(dir.join(d)).expect("dirs");
        }
        std::fs::write(dir.join("token/token"), TOKEN).expect("token");
        let (crt, key) = (dir.join("tls/tls.crt"), dir.join("tls/tls.key"));
        self_signed(&crt.to_string_lossy(), &key.to_string_lossy());
        Files {
            ca: crt.to_string_lossy().into_owned(),
            dir,
        }
    }

    fn placement<'a>(&'a self, endpoint: &Path, without: Vec<(&'a str, String)>) -> Placement<'a> {
        Placement {
            node_name: "node-1",
            sources: HashMap::from([
                ("token", self.dir.join("token")),
                ("tls", self.dir.join("tls")),
                ("state", self.dir.join("state")),
                ("reports", self.dir.join("reports")),
                ("runtime", endpoint.to_path_buf()),
            ]),
            without,
        }
    }

    /// curl METHOD PATH [body] against the pod's API with the token: (status, JSON).
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-m", "10", "-w", "\n%{http_code}", "-X", method])
            .args(["--cacert", &self.ca])
            .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
            .arg(format!("{API}{path}"));
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data", b]);
        }
        let out = cmd.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let v = serde_json::from_str(body).unwrap_or(Value::String(body.into()));
        (code.trim().parse().unwrap_or(0), v)
    }

    /// Until the agent answers /v1/faults (it cleaned up and listens), or panics with its log.
    fn wait_ready(&self, node: &Node, uid: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.call("GET", "/v1/faults", None).0 != 200 {
            if Instant::now() > deadline {
                let log = node.dir.join("logs").join(uid).join("agent-0.log");
                panic!(
                    "the agent pod never answered: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `chaos doctor` run inside the container (what it can do there), for a failure's message.
fn doctor_in(node: &Node, container: &str) -> String {
    let out = Command::new("ctr")
        .arg("-a")
        .arg(&node.endpoint)
        .args([
            "-n",
            "k8s.io",
            "tasks",
            "exec",
            "--exec-id",
            "doctor",
            container,
        ])
        .args(["/usr/local/bin/chaos", "doctor"])
        .output()
        .expect("ctr");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// How many connections arrive in `d`.
fn arrivals(c: &Counter, d: Duration) -> u64 {
    let before = c.now();
    std::thread::sleep(d);
    c.now() - before
}

#[test]
fn the_daemonset_pod_template_runs_the_agent_with_enough_privilege_and_no_more() {
    const TEST: &str =
        "the_daemonset_pod_template_runs_the_agent_with_enough_privilege_and_no_more";
    let Some(mut node) = node_for(TEST) else {
        return;
    };
    if !chaos_tests::have("openssl", TEST) {
        return;
    }
    let image = TempPath::new("agent-image.tar");
    build_image(&image.0);
    node.import(&image.0);
    let ds = chaos_tests::deploy::daemonset();
    let template = &ds["spec"]["template"];
    let files = Files::new();
    std::fs::create_dir_all("/sys/kernel/tracing").expect("tracefs mount point");
    let victim = Counter::start();
    let gw = format!("{}.1", node.subnet);
    let web = node.run_pod("shop", "web-0", &[("app", "web")], Network::Pod);
    run(&mut node, &web, "app", &connector(&gw, victim.port));
    wait_moving(&[&victim]);
    let connect = r#"{"target": {"pod": "shop/web-0"}, "duration": "60s",
                      "syscall": {"name": "connect", "errno": "ECONNREFUSED"}}"#;
    // In the pod's network namespace: setns, which only CAP_SYS_ADMIN allows.
    let drop = r#"{"target": {"pod": "shop/web-0"}, "duration": "60s", "net": {"action": "drop"}}"#;

    // As the manifest says (less what this machine cannot grant at all).
    let at = files.placement(&node.endpoint.clone(), missing_here());
    let labels = &template["metadata"]["labels"];
    let (agent, ids) = node.run_template("chaos-system", "agent-a", labels, &template["spec"], &at);
    files.wait_ready(&node, &agent.uid);
    for (what, fault) in [("connect refusal", connect), ("packet drop", drop)] {
        let (code, started) = files.call("POST", "/v1/faults", Some(fault));
        assert_eq!(
            code,
            201,
            "the manifest's privileges are enough for a {what}: {started}\nchaos doctor in \
             the pod: {}",
            doctor_in(&node, &ids[0])
        );
        assert_eq!(started["node"], "node-1", "NODE_NAME from spec.nodeName");
        let hit = arrivals(&victim, Duration::from_secs(1));
        assert!(
            hit <= 1,
            "{what}: the victim's connects fail: {hit} arrived"
        );
        if what == "connect refusal" {
            let id = started["id"].as_str().expect("id");
            assert_eq!(
                files.call("DELETE", &format!("/v1/faults/{id}"), None).0,
                200
            );
            wait_moving(&[&victim]);
        }
    }
    // Pod deletion as the kubelet does it: SIGTERM, SIGKILL after the grace period; the agent
    // detaches everything and exits 0 well within it.
    let grace = template["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("a grace period");
    let t = Instant::now();
    node.stop_container_within(&ids[0], grace);
    let (state, code) = node.container_state(&ids[0]);
    println!(
        "agent stopped in {:?}: state {state}, exit {code}",
        t.elapsed()
    );
    assert_eq!((state, code), (2, 0), "exited by itself, status 0");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    node.delete_pod(&agent);
    wait_moving(&[&victim]);
    let again = arrivals(&victim, Duration::from_secs(1));
    assert!(again >= 5, "the fault ended with the pod: {again} a second");
    let left: Vec<_> = std::fs::read_dir(files.dir.join("state"))
        .expect("state dir")
        .flatten()
        .collect();
    assert!(left.is_empty(), "nothing recorded for cleanup: {left:?}");

    // One capability less: with CAP_SYS_ADMIN (which also stands in for BPF, PERFMON and, for
    // loading programs, NET_ADMIN) taken away, the pod's network namespace is out of reach.
    let mut without = missing_here();
    without.push(("SYS_ADMIN", "taken away by the test".into()));
    let at = files.placement(&node.endpoint.clone(), without);
    let (agent, _) = node.run_template("chaos-system", "agent-b", labels, &template["spec"], &at);
    files.wait_ready(&node, &agent.uid);
    let (code, refusal) = files.call("POST", "/v1/faults", Some(drop));
    println!("without CAP_SYS_ADMIN: {code} {refusal}");
    assert!((400..500).contains(&code), "refused: {code} {refusal}");
    let message = refusal["error"].as_str().unwrap_or("");
    assert!(
        message.contains("Operation not permitted") || message.contains("EPERM"),
        "the kernel's refusal is in the answer: {message}"
    );
    let (_, list) = files.call("GET", "/v1/faults", None);
    assert_eq!(list, serde_json::json!([]), "nothing was started");
    assert!(
        arrivals(&victim, Duration::from_secs(1)) >= 5,
        "the victim was never touched"
    );
    node.delete_pod(&agent);
}
