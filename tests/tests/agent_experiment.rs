//! `chaos --agent URL run FILE`: the agent runs an experiment on its node (its probes, its
//! faults) and streams its progress; the CLI prints it as it comes and writes the report here.
//! The experiment refuses the lab service's connects to its dependency while the home page is
//! probed; the service's own dependency page fails meanwhile. A bad file is refused before it
//! is sent, a file over the agent's limits by the agent; both exit 2 with nothing attached.

use chaos_tests::{
    agent::{Agent, token_file},
    lab::Lab,
    service::{DEP_HOST, DEP_PORT, SERVICE_ADDR},
};
use serde_json::Value;

const TOKEN: &str = "run-token-0123456789abcdef";

fn experiment(lab: &Lab, duration: &str) -> String {
    format!(
        r#"name: dependency refused (on the agent)
hypothesis: the home page stays up while the dependency refuses connections
target: {{ cgroup: "{cg}" }}
duration: {duration}
steady_state:
  interval: 300ms
  probes:
    - name: home
      http: {{ url: "http://{SERVICE_ADDR}/", status: 200 }}
      timeout: 5s
faults:
  - name: dep-refused
    start: 1s
    duration: 2s
    syscall: {{ name: connect, errno: ECONNREFUSED, dst: "{DEP_HOST}", dport: {DEP_PORT} }}
"#,
        cg = lab.cgroup()
    )
}

#[test]
fn an_agent_runs_an_experiment_and_streams_its_progress_and_report() {
    let lab = Lab::new("agrun");
    let svc = lab.http_service();
    let tokens = token_file("agrun", TOKEN);
    // The agent runs where the service is reachable (the server namespace), as a node's does.
    let mut cmd = lab.with_state(lab.in_server(chaos_tests::chaos_bin().to_str().expect("path")));
    cmd.stderr(std::process::Stdio::null());
    let agent = Agent::start(cmd, tokens.as_str(), TOKEN, &["--max-duration", "1m"]);
    let dir = std::env::temp_dir().join(format!("chaos-agrun-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let file = dir.join("e.yaml");
    let report = dir.join("report");
    let run = |text: &str| {
        std::fs::write(&file, text).expect("experiment file");
        lab.chaos_run(&[
            "--agent",
            &agent.base,
            "--token-file",
            tokens.as_str(),
            "run",
            file.to_str().expect("utf-8"),
            "--report",
            report.to_str().expect("utf-8"),
        ])
    };
    let users = lab.poll_dep();
    let (code, out, err) = run(&experiment(&lab, "4s"));
    let answers = users.stop();
    let failed = answers.iter().filter(|(_, status)| *status != 200).count();
    assert_eq!(code, 0, "{out}{err}");
    // The agent's progress, printed here as it came.
    assert!(
        err.contains("steady state met") && err.contains("fault 'dep-refused' attached"),
        "{err}"
    );
    let text = std::fs::read_to_string(report.join("report.json")).expect("report written here");
    let r: Value = serde_json::from_str(&text).expect("report JSON");
    assert_eq!(r["outcome"], "held", "{r}");
    let injected = r["faults"][0]["injected"].as_u64().expect("injected");
    println!(
        "the agent's run: {injected} injected; the service's /dep failed {failed} of {} times",
        answers.len()
    );
    assert!(injected >= 5, "{r}");
    // The dependency page polled ten times a second failed while the fault ran (2 s).
    assert!(failed >= 5, "{answers:?}");
    assert!(report.join("report.md").exists() && report.join("timeline.svg").exists());
    assert!(out.contains("hypothesis HELD"), "{out}");
    // A file that does not parse never leaves here; one over the agent's limits is refused
    // there. Neither attaches anything (lab.finish checks).
    let (code, _, err) = run("name: x\nduration: 1s\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing field"), "{err}");
    let (code, _, err) = run(&experiment(&lab, "2m"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--max-duration"), "{err}");
    // The agent listens in the server namespace: asked from there, it holds no fault.
    let (code, out, err) = lab.chaos_run(&[
        "--agent",
        &agent.base,
        "--token-file",
        tokens.as_str(),
        "status",
    ]);
    assert_eq!((code, out.trim()), (0, ""), "{err}");
    drop((agent, svc));
    let _ = std::fs::remove_dir_all(&dir);
    lab.finish();
}
