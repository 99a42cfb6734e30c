//! A game day on Kubernetes targets: an experiment whose target is a selector with
//! `mode: one` kills a random replica every interval (`kill:` fault) while a probe checks that
//! the service (any replica) stays up; and one whose connect fault is scoped to one container
//! of a pod. Against a real containerd driven as the kubelet would (tests/src/kubelet.rs).

use chaos_tests::kubelet::{Network, node_for};
use serde_json::Value;

const EXITED: i32 = 2;

struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("chaos-k8s-exp-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch");
        Scratch(p)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
    fn report(&self) -> Value {
        let text = std::fs::read_to_string(self.0.join("report/report.json")).expect("report");
        serde_json::from_str(&text).expect("report JSON")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn an_experiment_kills_a_random_replica_each_round_and_the_service_stays_up() {
    let Some(mut node) =
        node_for("an_experiment_kills_a_random_replica_each_round_and_the_service_stays_up")
    else {
        return;
    };
    let (mut ids, mut ips) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let pod = node.run_pod("shop", &format!("api-{i}"), &[("app", "api")], Network::Pod);
        ids.push(node.run_container(&pod, "app", &["httpd", "-f", "-p", "8080", "-h", "/"]));
        ips.push(pod.ip.clone().expect("pod IP"));
    }
    // The service is up while any replica accepts a connection.
    let any = ips
        .iter()
        .map(|ip| format!("timeout 1 bash -c '</dev/tcp/{ip}/8080'"))
        .collect::<Vec<_>>()
        .join(" || ");
    let s = Scratch::new("monkey");
    let file = s.path("experiment.yaml");
    std::fs::write(
        &file,
        format!(
            r#"name: chaos monkey
hypothesis: the api answers while replicas are killed one at a time
target:
  namespace: shop
  selector: {{ app: api }}
  mode: one
  runtime_endpoint: {ep}
duration: 3s
steady_state:
  interval: 200ms
  probes:
    - name: api
      command: [bash, -c, "{any}"]
      timeout: 3s
faults:
  - name: monkey
    kill: {{ signal: SIGKILL, every: 2s }}
recovery:
  timeout: 5s
"#,
            ep = node.endpoint.display()
        ),
    )
    .expect("experiment file");
    let (code, out, err) = chaos_tests::chaos(&["run", &file, "--report", &s.path("report")]);
    assert_eq!(code, 0, "the hypothesis holds\n{out}\n{err}");
    let r = s.report();
    assert_eq!(r["outcome"], "held", "{r}");
    let fault = &r["faults"][0];
    println!("monkey: {fault}");
    assert_eq!(fault["injected"], 2, "killed at 0 s and 2 s: {fault}");
    let parts: Vec<&str> = fault["parts"]
        .as_array()
        .expect("each kill in the report")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(parts.len(), 2, "{fault}");
    assert!(
        parts[0].contains("round 1") && parts[1].contains("round 2"),
        "{parts:?}"
    );
    assert!(
        parts
            .iter()
            .all(|p| p.starts_with("killed pid") && p.contains("shop/api-"))
    );
    assert!(
        r["target"].as_str().unwrap_or("").contains("mode one"),
        "{r}"
    );
    let exited = ids
        .iter()
        .filter(|id| node.container_state(id).0 == EXITED)
        .count();
    assert_eq!(exited, 2, "two replicas killed, one left serving");
}

#[test]
fn an_experiment_on_one_container_faults_it_and_spares_its_sibling() {
    use chaos_tests::kubelet::{Counter, connector, run, wait_moving};
    let Some(mut node) =
        node_for("an_experiment_on_one_container_faults_it_and_spares_its_sibling")
    else {
        return;
    };
    let (a, b) = (Counter::start(), Counter::start());
    let gw = format!("{}.1", node.subnet);
    let web0 = node.run_pod("shop", "web-0", &[], Network::Pod);
    run(&mut node, &web0, "app", &connector(&gw, a.port));
    run(&mut node, &web0, "sidecar", &connector(&gw, b.port));
    wait_moving(&[&a, &b]);
    let s = Scratch::new("one");
    let file = s.path("experiment.yaml");
    std::fs::write(
        &file,
        format!(
            r#"name: app cannot connect
hypothesis: the node's listener stays reachable while the app container cannot connect
target: {{ pod: shop/web-0, container: app, runtime_endpoint: {ep} }}
duration: 3s
steady_state:
  probes:
    - name: listener
      tcp: 127.0.0.1:{port}
faults:
  - name: refused
    start: 1s
    duration: 1s
    syscall: {{ name: connect, errno: ECONNREFUSED }}
"#,
            ep = node.endpoint.display(),
            port = b.port
        ),
    )
    .expect("experiment file");
    let (a0, b0) = (a.now(), b.now());
    let (code, out, err) = chaos_tests::chaos(&["run", &file, "--report", &s.path("report")]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (app, sidecar) = (a.now() - a0, b.now() - b0);
    let r = s.report();
    let fault = &r["faults"][0];
    println!("one container: app {app}, sidecar {sidecar} connections; {fault}");
    // About 10 a second each; the app lost the second the fault ran, the sidecar nothing.
    assert!(sidecar >= app + 5, "app {app}, sidecar {sidecar}");
    assert_eq!(fault["parts"][0]["name"], "shop/web-0/app", "{fault}");
    assert!(fault["injected"].as_u64() >= Some(5), "{fault}");
    assert!(
        fault["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("shop/web-0/app: "),
        "the chosen container is in the report: {fault}"
    );
}
