//! `chaos agent` in operation: a real Prometheus server (Debian's, started here) scrapes the
//! agent with its bearer token and reports the injected count the API reports, and `promtool
//! check metrics` accepts the exposition; SIGKILL of the agent mid-fault removes the fault at
//! once (fd-owned cgroup links), and the next agent's start-up cleanup leaves nothing behind.

use chaos_tests::{
    TempPath,
    agent::Agent,
    clients::connect,
    have,
    lab::Lab,
    prometheus::{Prometheus, promtool_check},
};
use serde_json::Value;
use std::process::Stdio;

const TOKEN: &str = "ops-token-0123456789abcdef";

/// Starts the lab's agent, its stderr left out.
fn start(lab: &Lab, token_file: &str) -> Agent {
    let mut cmd = lab.chaos_cmd();
    cmd.stderr(Stdio::null());
    Agent::start(cmd, token_file, TOKEN, &[])
}

/// Starts a connect refusal to port 7001 in the lab's cgroup; its id.
fn refuse_connects(agent: &Agent, lab: &Lab) -> String {
    let fault = format!(
        r#"{{"name": "refused", "target": {{"cgroup": "{}"}}, "duration": "60s",
            "syscall": {{"name": "connect", "errno": "ECONNREFUSED", "dport": 7001}}}}"#,
        lab.cgroup()
    );
    let (code, body) = agent.call("POST", "/v1/faults", Some(&fault), Some(TOKEN));
    assert_eq!(code, 201, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    v["id"].as_str().expect("id").to_string()
}

fn token_file(tag: &str) -> TempPath {
    chaos_tests::agent::token_file(tag, TOKEN)
}

#[test]
fn prometheus_scrapes_the_agent_and_reports_what_the_api_does() {
    const TEST: &str = "prometheus_scrapes_the_agent_and_reports_what_the_api_does";
    if !have("prometheus", TEST) || !have("promtool", TEST) {
        return;
    }
    let lab = Lab::new("agprom");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let tokens = token_file("agprom");
    let agent = start(&lab, tokens.as_str());
    let id = refuse_connects(&agent, &lab);
    for _ in 0..5 {
        assert_eq!(
            connect(lab.inside("python3"), "10.77.0.2", 7001, "tcp"),
            libc::ECONNREFUSED
        );
    }
    let (_, now) = agent.call("GET", &format!("/v1/faults/{id}"), None, Some(TOKEN));
    let now: Value = serde_json::from_str(&now).expect("JSON");
    assert_eq!(now["injected"].as_u64(), Some(5), "{now}");
    let prom = Prometheus::start(&agent.addr, Some(tokens.as_str()), None);
    let query = format!("chaos_fault_injected_total{{id=\"{id}\"}}");
    assert_eq!(
        prom.wait_for(&query),
        5.0,
        "Prometheus reports what the API does"
    );
    assert_eq!(prom.value("up{job=\"chaos\"}"), Some(1.0));
    // promtool reads the exposition as Prometheus's own linter does.
    let (code, text) = agent.call("GET", "/metrics", None, Some(TOKEN));
    assert_eq!(code, 200);
    promtool_check(&text).unwrap_or_else(|e| panic!("promtool check metrics: {e}"));
    let (code, _) = agent.call("DELETE", &format!("/v1/faults/{id}"), None, Some(TOKEN));
    assert_eq!(code, 200);
    drop((prom, agent));
    lab.finish();
}

/// SIGKILL of the agent while its fault is active: connects work again at once (the cgroup
/// links were the agent's file descriptors); its fault's record is left, and the next agent
/// removes it as it starts.
#[test]
fn sigkill_of_the_agent_ends_its_faults_and_the_next_agent_cleans_up() {
    let lab = Lab::new("agkill");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let tokens = token_file("agkill");
    let agent = start(&lab, tokens.as_str());
    refuse_connects(&agent, &lab);
    assert_eq!(
        connect(lab.inside("python3"), "10.77.0.2", 7001, "tcp"),
        libc::ECONNREFUSED
    );
    drop(agent); // SIGKILL, then reaped
    assert_eq!(
        connect(lab.inside("python3"), "10.77.0.2", 7001, "tcp"),
        0,
        "the fault went with the agent"
    );
    let left = || {
        std::fs::read_dir(&lab.state_dir)
            .map(|d| d.flatten().count())
            .unwrap_or(0)
    };
    assert_eq!(left(), 1, "the killed agent's record is left for cleanup");
    let next = start(&lab, tokens.as_str());
    assert_eq!(left(), 0, "the next agent cleaned up as it started");
    assert_eq!(next.call("GET", "/v1/faults", None, Some(TOKEN)).0, 200);
    drop(next);
    lab.finish();
}
