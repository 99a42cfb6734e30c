//! `chaos run --agents`: one experiment across two "nodes" (two containerd instances, each with
//! its own socket, state, pods and `chaos agent`), driven as a kubelet would through CRI. The
//! selected pods on both nodes are faulted, a pod outside the selector is spared, the report
//! says which node hit which pods, and nothing is left on either agent. An agent that cannot be
//! reached makes the run refuse (exit 2) before anything is injected.

use chaos_tests::{
    agent::{Agent, token_file},
    kubelet::{Counter, Network, Node, connector, node_for, run, wait_moving},
};
use serde_json::Value;
use std::path::PathBuf;

const TOKEN: &str = "nodes-token-0123456789abcdef";

/// An agent with state and pin directories of its own (two agents run on this one machine,
/// and each cleans up what a previous instance left when it starts), removed on drop.
struct NodeAgent {
    agent: Agent,
    dirs: [PathBuf; 2],
}

impl NodeAgent {
    fn start(tag: &str, node: &str, endpoint: Option<&std::path::Path>, token: &str) -> NodeAgent {
        let name = format!("chaos-agents-{tag}-{}", std::process::id());
        let dirs = [
            PathBuf::from("/run/chaos-test").join(&name),
            PathBuf::from("/sys/fs/bpf").join(&name),
        ];
        let mut cmd = std::process::Command::new(chaos_tests::chaos_bin());
        cmd.env("CHAOS_STATE_DIR", &dirs[0])
            .env("CHAOS_PIN_DIR", &dirs[1])
            .stderr(std::process::Stdio::null());
        let mut args = vec!["--node-name", node];
        let ep = endpoint.map(|e| e.display().to_string());
        if let Some(e) = &ep {
            args.extend(["--runtime-endpoint", e.as_str()]);
        }
        NodeAgent {
            agent: Agent::start(cmd, token, TOKEN, &args),
            dirs,
        }
    }

    /// The agent's faults that are still active.
    fn active(&self) -> Vec<Value> {
        let (code, list) = self.agent.json("GET", "/v1/faults", None);
        assert_eq!(code, 200, "{list}");
        list.as_array()
            .expect("a list")
            .iter()
            .filter(|f| f["state"] == "active")
            .cloned()
            .collect()
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn experiment(dir: &std::path::Path, control_port: u16) -> String {
    let file = dir.join("experiment.yaml");
    std::fs::write(
        &file,
        format!(
            r#"name: web cannot reach its backend on any node
hypothesis: the database pods keep connecting while every web pod is refused
target:
  namespace: shop
  selector: {{ app: web }}
duration: 3s
steady_state:
  probes:
    - name: backend
      tcp: 127.0.0.1:{control_port}
faults:
  - name: refused
    start: 1s
    duration: 1s
    syscall: {{ name: connect, errno: ECONNREFUSED }}
"#
        ),
    )
    .expect("experiment file");
    file.to_string_lossy().into_owned()
}

struct Scratch(PathBuf, &'static str);

impl Scratch {
    fn new(tag: &'static str) -> Scratch {
        let p = std::env::temp_dir().join(format!("chaos-agents-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch");
        Scratch(p, tag)
    }

    fn tag(&self) -> &'static str {
        self.1
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn an_experiment_across_two_nodes_faults_the_selected_pods_on_both_and_spares_the_rest() {
    let Some(mut east) = node_for(
        "an_experiment_across_two_nodes_faults_the_selected_pods_on_both_and_spares_the_rest",
    ) else {
        return;
    };
    let mut west = Node::start("w");
    let (web_east, web_west, db) = (Counter::start(), Counter::start(), Counter::start());
    let gw = |n: &Node| format!("{}.1", n.subnet);
    let (ge, gwest) = (gw(&east), gw(&west));
    let pod = east.run_pod("shop", "web-east", &[("app", "web")], Network::Pod);
    run(&mut east, &pod, "app", &connector(&ge, web_east.port));
    let pod = west.run_pod("shop", "web-west", &[("app", "web")], Network::Pod);
    run(&mut west, &pod, "app", &connector(&gwest, web_west.port));
    let pod = east.run_pod("shop", "db-east", &[("app", "db")], Network::Pod);
    run(&mut east, &pod, "app", &connector(&ge, db.port));
    wait_moving(&[&web_east, &web_west, &db]);
    let s = Scratch::new("two");
    let token = token_file(&format!("agents-{}", s.tag()), TOKEN);
    let a = NodeAgent::start("east", "node-east", Some(&east.endpoint), token.as_str());
    let b = NodeAgent::start("west", "node-west", Some(&west.endpoint), token.as_str());
    let file = experiment(&s.0, db.port);
    let report = s.0.join("report");
    let agents = format!("{},{}", a.agent.base, b.agent.base);
    let before = [web_east.now(), web_west.now(), db.now()];
    let (code, out, err) = chaos_tests::chaos(&[
        "run",
        &file,
        "--agents",
        &agents,
        "--token-file",
        token.as_str(),
        "--report",
        &report.to_string_lossy(),
    ]);
    let after = [web_east.now(), web_west.now(), db.now()];
    let got: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(code, 0, "the hypothesis holds\n{out}\n{err}");
    let text = std::fs::read_to_string(report.join("report.json")).expect("report");
    let r: Value = serde_json::from_str(&text).expect("report JSON");
    let fault = &r["faults"][0];
    println!("connections (web-east, web-west, db): {got:?}; {fault}");
    let parts = fault["parts"].as_array().expect("one part per node");
    assert_eq!(parts.len(), 2, "both nodes had a web pod: {fault}");
    for (node, pod) in [
        ("node-east", "shop/web-east"),
        ("node-west", "shop/web-west"),
    ] {
        let part = parts
            .iter()
            .find(|p| {
                p["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("node {node}: "))
            })
            .unwrap_or_else(|| panic!("no part for {node}: {fault}"));
        let name = part["name"].as_str().unwrap_or("");
        assert!(name.contains(pod) && !name.contains("db-east"), "{name}");
        // Ten connects a second for the one second the fault ran.
        assert!(part["injected"].as_u64() >= Some(5), "{part}");
    }
    // Over the 3 s run each web pod lost about a second of its ten a second; the db none.
    assert!(got[2] >= 25, "the db pod was spared: {got:?}");
    for (i, web) in got[..2].iter().enumerate() {
        assert!(*web + 5 <= got[2], "web pod {i} was refused: {got:?}");
    }
    assert!(
        a.active().is_empty() && b.active().is_empty(),
        "nothing left"
    );
}

#[test]
fn an_unreachable_agent_refuses_the_run_before_anything_is_injected() {
    chaos_tests::require_root();
    let s = Scratch::new("lost");
    let token = token_file(&format!("agents-{}", s.tag()), TOKEN);
    let a = NodeAgent::start("up", "node-up", None, token.as_str());
    let file = experiment(&s.0, 9);
    // Port 9 (discard) on loopback: nothing listens.
    let agents = format!("{},http://127.0.0.1:9", a.agent.base);
    let (code, out, err) = chaos_tests::chaos(&[
        "run",
        &file,
        "--agents",
        &agents,
        "--token-file",
        token.as_str(),
        "--report",
        &s.0.join("report").to_string_lossy(),
    ]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("--agents")
            && err.contains("127.0.0.1:9")
            && err.contains("nothing was injected"),
        "{err}"
    );
    let (_, list) = a.agent.json("GET", "/v1/faults", None);
    assert_eq!(
        list,
        serde_json::json!([]),
        "the reachable agent got nothing"
    );
    // A bad agent address is the user's to fix, named.
    let (code, _, err) = chaos_tests::chaos(&[
        "run",
        &file,
        "--agents",
        "127.0.0.1:7070",
        "--token-file",
        token.as_str(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--agents") && err.contains("http(s)://HOST:PORT"),
        "{err}"
    );
}

/// An agent SIGKILLed mid-run: its fault goes with it (fd-owned links), the run goes on with
/// the other node and says which node was lost; nothing is left on the survivor.
#[test]
fn an_agent_lost_mid_run_is_reported_and_the_run_goes_on() {
    let lab = chaos_tests::lab::Lab::new("aglost");
    let s = Scratch::new("midrun");
    let token = token_file(&format!("agents-{}", s.tag()), TOKEN);
    let a = NodeAgent::start("stay", "node-stay", None, token.as_str());
    let b = NodeAgent::start("gone", "node-gone", None, token.as_str());
    let file = s.0.join("experiment.yaml");
    std::fs::write(
        &file,
        format!(
            r#"name: connects refused on two nodes
hypothesis: the surviving agent keeps answering
target: {{ cgroup: "{cg}" }}
duration: 8s
steady_state:
  probes:
    - name: agent
      tcp: {addr}
faults:
  - name: refused
    syscall: {{ name: connect, errno: ECONNREFUSED, dport: 7001 }}
"#,
            cg = lab.cgroup(),
            addr = a.agent.addr
        ),
    )
    .expect("experiment file");
    let report = s.0.join("report");
    let run = std::process::Command::new(chaos_tests::chaos_bin())
        .args([
            "run",
            &file.to_string_lossy(),
            "--token-file",
            token.as_str(),
        ])
        .args(["--agents", &format!("{},{}", a.agent.base, b.agent.base)])
        .args(["--report", &report.to_string_lossy()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chaos run");
    // Until both agents hold the fault (seconds under emulation), then the second node goes
    // away.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while b.active().is_empty() || a.active().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fault never reached both"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(b);
    let out = run.wait_with_output().expect("wait run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("node node-gone: agent") && err.contains("lost"),
        "{err}"
    );
    let text = std::fs::read_to_string(report.join("report.json")).expect("report");
    let r: Value = serde_json::from_str(&text).expect("report JSON");
    let parts = r["faults"][0]["parts"].as_array().expect("parts").clone();
    let gone = parts
        .iter()
        .find(|p| {
            p["name"]
                .as_str()
                .unwrap_or("")
                .starts_with("node node-gone: ")
        })
        .unwrap_or_else(|| panic!("{parts:?}"));
    assert!(
        gone["name"]
            .as_str()
            .unwrap_or("")
            .contains("in-kernel deadline"),
        "{gone}"
    );
    assert!(
        a.active().is_empty(),
        "the survivor's fault was deleted at the end"
    );
    drop(a);
    lab.finish();
}
