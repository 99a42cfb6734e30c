//! Schedules held by `chaos agent`: loaded from `--schedules DIR`, listed with their next ticks
//! and counts, paused (ticks skipped as "paused") and resumed over the API; one added over the
//! API too; an agent SIGKILLed mid-schedule and started again holds both again, reports the
//! ticks it missed instead of replaying them; once deleted, nothing is left (lab.finish: no
//! attachment, no state).

use chaos_tests::{
    agent::{Agent, token_file},
    lab::Lab,
};
use serde_json::Value;
use std::time::{Duration, Instant};

const TOKEN: &str = "sched-token-0123456789abcdef";

fn experiment(lab: &Lab, name: &str) -> String {
    format!(
        r#"name: {name}
hypothesis: the listener stays reachable
target: {{ cgroup: "{cg}" }}
duration: 1s
steady_state:
  probes:
    - name: listener
      tcp: 10.77.0.2:7001
faults:
  - name: refused
    syscall: {{ name: connect, errno: ECONNREFUSED, dport: 7002 }}
recovery:
  timeout: 5s
schedule:
  cron: "@every 2s"
"#,
        cg = lab.cgroup()
    )
}

struct Env<'a> {
    lab: &'a Lab,
    tokens: String,
    args: Vec<String>,
}

impl Env<'_> {
    /// An agent in the server namespace (where the probe's listener is), holding the schedules.
    fn agent(&self) -> Agent {
        let bin = chaos_tests::chaos_bin();
        let mut cmd = self
            .lab
            .with_state(self.lab.in_server(bin.to_str().expect("path")));
        cmd.stderr(std::process::Stdio::null());
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Agent::start(cmd, &self.tokens, TOKEN, &args)
    }

    /// `chaos --agent URL --json schedule ARGS` from the server namespace: its JSON answer.
    fn schedule(&self, agent: &Agent, args: &[&str]) -> Value {
        let mut all = vec![
            "--agent",
            &agent.base,
            "--token-file",
            &self.tokens,
            "--json",
            "schedule",
        ];
        all.extend_from_slice(args);
        let (code, out, err) = self.lab.chaos_run(&all);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// The first schedule's entry in the agent's list (the one from `--schedules`).
    fn entry(&self, agent: &Agent) -> Value {
        let list = self.schedule(agent, &["list"]);
        let all = list.as_array().cloned().unwrap_or_default();
        all.into_iter()
            .find(|s| s["name"] == "refusal every two seconds")
            .unwrap_or(Value::Null)
    }

    /// Polls the list until `ok` holds (up to `secs`); the entry then.
    fn until(&self, agent: &Agent, secs: u64, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let e = self.entry(agent);
            if ok(&e) {
                return e;
            }
            assert!(Instant::now() < end, "{what}: {e}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn runs(e: &Value) -> u64 {
    e["summary"]["runs"].as_u64().unwrap_or(0)
}

#[test]
fn the_agent_holds_pauses_resumes_and_after_a_restart_reports_missed_ticks() {
    const TEST: &str = "the_agent_holds_pauses_resumes_and_after_a_restart_reports_missed_ticks";
    let why = "schedules keep wall-clock time, which TCG emulation stretches past a tick; no kernel feature is involved (the host run has it)";
    if !chaos_tests::host_only(TEST, why) {
        return;
    }
    let lab = Lab::new("agsched");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let dir = std::env::temp_dir().join(format!("chaos-agsched-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("schedules")).expect("scratch");
    std::fs::write(
        dir.join("schedules/refusal.yaml"),
        experiment(&lab, "refusal every two seconds"),
    )
    .expect("file");
    // A second one comes over the API, from a file of the client's.
    std::fs::write(
        dir.join("added.yaml"),
        experiment(&lab, "added over the api"),
    )
    .expect("file");
    let tokens = token_file("agsched", TOKEN);
    let env = Env {
        lab: &lab,
        tokens: tokens.as_str().to_string(),
        args: vec![
            "--schedules".into(),
            dir.join("schedules").display().to_string(),
            "--reports-dir".into(),
            dir.join("reports").display().to_string(),
        ],
    };
    let agent = env.agent();
    let e = env.until(&agent, 20, "two runs", |e| runs(e) >= 2);
    println!("held: {e}");
    assert_eq!(e["summary"]["outcomes"]["held"], runs(&e), "{e}");
    let next: Vec<&str> = e["next"]
        .as_array()
        .expect("next")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(next.len(), 3, "{e}");
    let name = "refusal every two seconds";
    assert_eq!(env.schedule(&agent, &["pause", name])["paused"], true);
    // A run started before the pause may still end; then ticks are skipped as paused.
    let paused = env.until(&agent, 10, "skipped as paused", |e| {
        e["summary"]["skipped"]["paused"].as_u64() >= Some(2)
    });
    let before = runs(&paused);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(runs(&env.entry(&agent)), before, "no run while paused");
    assert_eq!(env.schedule(&agent, &["resume", name])["paused"], false);
    let e = env.until(&agent, 10, "runs again", |e| runs(e) > before);
    // The agent's /metrics has the schedule's runs and skips, as the list does.
    let out = lab
        .in_server("curl")
        .args(["-s", "-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg(format!("{}/metrics", agent.base))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let sample = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
    };
    let held = format!("chaos_schedule_runs_total{{experiment=\"{name}\",outcome=\"held\"}}");
    assert!(sample(&held) >= Some(runs(&e)), "{held} in {text}");
    let paused = format!("chaos_schedule_skips_total{{experiment=\"{name}\",reason=\"paused\"}}");
    assert!(sample(&paused) >= Some(2), "{paused} in {text}");
    assert!(
        text.contains("chaos_faults_active"),
        "the agent's own families too: {text}"
    );
    let added = dir.join("added.yaml");
    let v = env.schedule(&agent, &["add", added.to_str().expect("utf-8")]);
    assert_eq!(v["name"], "added over the api", "{v}");
    assert_eq!(
        env.schedule(&agent, &["list"]).as_array().map(Vec::len),
        Some(2)
    );
    // The node's agent dies; seven seconds later the next one starts.
    drop(agent);
    std::thread::sleep(Duration::from_secs(7));
    let agent = env.agent();
    let e = env.until(&agent, 10, "the missed ticks reported", |e| {
        e["summary"]["missed"].as_u64() >= Some(2)
    });
    println!("after the restart: {e}");
    assert!(runs(&e) <= 1, "no burst of the missed ticks: {e}");
    let list = env.schedule(&agent, &["list"]);
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["added over the api", name],
        "the API's schedule is held again"
    );
    assert_eq!(
        env.schedule(&agent, &["delete", "added over the api"])["deleted"],
        true
    );
    assert_eq!(env.schedule(&agent, &["delete", name])["deleted"], true);
    assert_eq!(env.schedule(&agent, &["list"]), serde_json::json!([]));
    let reports = std::fs::read_dir(dir.join("reports/refusal-every-two-seconds"))
        .expect("reports")
        .count();
    assert!(reports >= 3, "a report per run: {reports}");
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
    lab.finish();
}
