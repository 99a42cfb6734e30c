//! `chaos agent` in operation: a real Prometheus server (Debian's, started here) scrapes the
//! agent with its bearer token and reports the injected count the API reports, and `promtool
//! check metrics` accepts the exposition; SIGKILL of the agent mid-fault removes the fault at
//! once (fd-owned cgroup links), and the next agent's start-up cleanup leaves nothing behind.

use chaos_tests::{TempPath, clients::connect, expect, lab::Lab};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const TOKEN: &str = "ops-token-0123456789abcdef";

/// A running agent on loopback (address from its first stdout line); killed on drop.
struct Agent {
    child: Child,
    addr: String,
}

impl Agent {
    fn start(lab: &Lab, token_file: &str) -> Agent {
        let mut child = lab
            .chaos_cmd()
            .args([
                "agent",
                "--listen",
                "127.0.0.1:0",
                "--token-file",
                token_file,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chaos agent");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let addr = v["addr"].as_str().expect("addr").to_string();
        Agent { child, addr }
    }

    /// curl with the token: (HTTP status, body).
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-w", "\n%{http_code}", "-X", method])
            .arg(format!("http://{}{path}", self.addr))
            .args(["-H", &format!("Authorization: Bearer {TOKEN}")]);
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data", b]);
        }
        let out = cmd.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (code.trim().parse().expect("status"), body.to_string())
    }

    /// Starts a connect refusal to port 7001 in the lab's cgroup; its id.
    fn refuse_connects(&self, lab: &Lab) -> String {
        let fault = format!(
            r#"{{"name": "refused", "target": {{"cgroup": "{}"}}, "duration": "60s",
                "syscall": {{"name": "connect", "errno": "ECONNREFUSED", "dport": 7001}}}}"#,
            lab.cgroup()
        );
        let (code, body) = self.call("POST", "/v1/faults", Some(&fault));
        assert_eq!(code, 201, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        v["id"].as_str().expect("id").to_string()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_file() -> TempPath {
    let f = TempPath::new("ops-token");
    std::fs::write(f.as_str(), format!("{TOKEN}\n")).expect("token file");
    f
}

/// Whether `tool` is installed; if not, skips (allowed only outside the host run) with why.
fn have(tool: &str, test: &str) -> bool {
    let there = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !there {
        let why =
            format!("{tool} is not installed here (scripts/setup.sh installs it on the host)");
        expect::skip(test, &why, expect::host() != Some(true));
    }
    there
}

/// A free loopback port (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Prometheus scraping the agent every second with its token, in a scratch directory.
struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl Prometheus {
    fn start(target: &str, token_file: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("chaos-prom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let config = dir.join("prometheus.yml");
        let mut f = std::fs::File::create(&config).expect("config");
        write!(
            f,
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: chaos\n    \
             authorization: {{credentials_file: {token_file}}}\n    static_configs:\n      \
             - targets: ['{target}']\n"
        )
        .expect("write config");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus");
        Prometheus { child, dir, port }
    }

    /// The value of `query` (an instant vector with one sample), once Prometheus has one.
    fn value(&self, query: &str) -> Option<f64> {
        let out = Command::new("curl")
            .args(["-s", "--get", "--data-urlencode", &format!("query={query}")])
            .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Prometheus {
    /// Its view of the scrape targets (health, last error), for failure messages.
    fn targets(&self) -> String {
        Command::new("curl")
            .args([
                "-s",
                &format!("http://127.0.0.1:{}/api/v1/targets", self.port),
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn prometheus_scrapes_the_agent_and_reports_what_the_api_does() {
    const TEST: &str = "prometheus_scrapes_the_agent_and_reports_what_the_api_does";
    if !have("prometheus", TEST) || !have("promtool", TEST) {
        return;
    }
    let lab = Lab::new("agprom");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let tokens = token_file();
    let agent = Agent::start(&lab, tokens.as_str());
    let id = agent.refuse_connects(&lab);
    for _ in 0..5 {
        assert_eq!(
            connect(lab.inside("python3"), "10.77.0.2", 7001, "tcp"),
            libc::ECONNREFUSED
        );
    }
    let (_, now) = agent.call("GET", &format!("/v1/faults/{id}"), None);
    let now: Value = serde_json::from_str(&now).expect("JSON");
    assert_eq!(now["injected"].as_u64(), Some(5), "{now}");
    let prom = Prometheus::start(&agent.addr, tokens.as_str());
    let query = format!("chaos_fault_injected_total{{id=\"{id}\"}}");
    let t = Instant::now();
    let seen = loop {
        if let Some(v) = prom.value(&query) {
            break v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "Prometheus never scraped {query}: {}",
            prom.targets()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(seen, 5.0, "Prometheus reports what the API does");
    assert_eq!(prom.value("up{job=\"chaos\"}"), Some(1.0));
    // promtool reads the exposition as Prometheus's own linter does.
    let (code, text) = agent.call("GET", "/metrics", None);
    assert_eq!(code, 200);
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("to promtool");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _) = agent.call("DELETE", &format!("/v1/faults/{id}"), None);
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
    let tokens = token_file();
    let agent = Agent::start(&lab, tokens.as_str());
    agent.refuse_connects(&lab);
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
    let next = Agent::start(&lab, tokens.as_str());
    assert_eq!(left(), 0, "the next agent cleaned up as it started");
    assert_eq!(next.call("GET", "/v1/faults", None).0, 200);
    drop(next);
    lab.finish();
}
