//! A real Prometheus server (Debian's, scripts/setup.sh installs it) for the tests: it scrapes
//! one target every second, optionally with a bearer token file, optionally inside a network
//! namespace (where the target listens), in a scratch directory removed on drop.

use serde_json::Value;
use std::{
    io::Write,
    process::{Child, Command, Stdio},
};

pub struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    port: u16,
    netns: Option<String>,
}

/// A free port (bound, then released for the server to take), in the current namespace.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Prometheus {
    /// `program` run in `netns` (nsenter) or here.
    fn cmd(netns: Option<&str>, program: &str) -> Command {
        match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    pub fn start(target: &str, token_file: Option<&str>, netns: Option<&str>) -> Prometheus {
        let dir = std::env::temp_dir().join(format!(
            "chaos-prom-{}-{}",
            std::process::id(),
            target.replace([':', '.'], "-")
        ));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let config = dir.join("prometheus.yml");
        let auth = token_file.map_or(String::new(), |f| {
            format!("    authorization: {{credentials_file: {f}}}\n")
        });
        let mut f = std::fs::File::create(&config).expect("config");
        write!(
            f,
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: chaos\n{auth}    \
             static_configs:\n      - targets: ['{target}']\n"
        )
        .expect("write config");
        // A port free here is as good as any in a fresh namespace, whose loopback is empty.
        let port = free_port();
        let child = Self::cmd(netns, "prometheus")
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
        Prometheus {
            child,
            dir,
            port,
            netns: netns.map(str::to_string),
        }
    }

    fn get(&self, path: &str, query: Option<&str>) -> Option<Value> {
        let mut c = Self::cmd(self.netns.as_deref(), "curl");
        c.arg("-s");
        if let Some(q) = query {
            c.args(["--get", "--data-urlencode", &format!("query={q}")]);
        }
        let out = c
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The value of `query` (an instant vector's first sample), once Prometheus has one.
    pub fn value(&self, query: &str) -> Option<f64> {
        let v = self.get("/api/v1/query", Some(query))?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Its view of the scrape targets (health, last error), for failure messages.
    pub fn targets(&self) -> String {
        self.get("/api/v1/targets", None)
            .map(|v| v.to_string())
            .unwrap_or_default()
    }

    /// Polls `query` until it has a value (up to 60 s); panics with the targets' state.
    pub fn wait_for(&self, query: &str) -> f64 {
        let t = std::time::Instant::now();
        loop {
            if let Some(v) = self.value(query) {
                return v;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(60),
                "Prometheus never had {query}: {}",
                self.targets()
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `promtool check metrics` accepts `text` (its complaints otherwise).
pub fn promtool_check(text: &str) -> Result<(), String> {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool: {e}"))?;
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = check.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A real Prometheus Pushgateway (Debian's prometheus-pushgateway), optionally inside a network
/// namespace, on a free loopback port, without persistence; killed on drop.
pub struct Pushgateway {
    child: Child,
    pub port: u16,
    netns: Option<String>,
}

impl Pushgateway {
    /// Starts it and waits (up to 10 s) until it answers.
    pub fn start(netns: Option<&str>) -> Pushgateway {
        let port = free_port();
        let child = Prometheus::cmd(netns, "prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-pushgateway");
        let pg = Pushgateway {
            child,
            port,
            netns: netns.map(str::to_string),
        };
        let t = std::time::Instant::now();
        while !pg.metrics().contains("pushgateway_build_info") {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "the Pushgateway never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        pg
    }

    /// What it exposes now (the groups pushed to it and its own metrics), as Prometheus would
    /// scrape it.
    pub fn metrics(&self) -> String {
        let out = Prometheus::cmd(self.netns.as_deref(), "curl")
            .arg("-s")
            .arg(format!("http://127.0.0.1:{}/metrics", self.port))
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
