//! A `chaos agent` started by a test, talked to with curl (a client of its own, not ours):
//! the address comes from the agent's first stdout line; it is killed on drop.

use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

pub struct Agent {
    child: Child,
    /// `http://127.0.0.1:PORT` (or https).
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The token `json` sends.
    token: String,
    /// curl's extra arguments (the CA to trust for HTTPS, a client certificate).
    curl: Vec<String>,
}

impl Agent {
    /// Runs `cmd` (chaos, with the test's state directories) as `chaos agent --listen
    /// 127.0.0.1:0 --token-file FILE ARGS...`; stderr as `cmd` has it (inherited by default).
    pub fn start(cmd: Command, token_file: &str, token: &str, args: &[&str]) -> Agent {
        Agent::start_with(cmd, token_file, token, args, "http", Vec::new())
    }

    /// As `start`, for HTTPS (`scheme`) with curl's `curl` arguments.
    pub fn start_with(
        mut cmd: Command,
        token_file: &str,
        token: &str,
        args: &[&str],
        scheme: &str,
        curl: Vec<String>,
    ) -> Agent {
        cmd.args([
            "agent",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            token_file,
        ])
        .args(args);
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("chaos agent");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let addr = v["addr"].as_str().expect("addr").to_string();
        Agent {
            child,
            base: format!("{scheme}://{addr}"),
            addr,
            token: token.to_string(),
            curl,
        }
    }

    /// curl METHOD PATH [JSON body] with `token`: (HTTP status, body).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String) {
        self.call_as(&self.curl, method, path, body, token)
    }

    /// `call` as another client: curl with `curl` instead of the agent's own arguments (another
    /// client certificate, none). Status 0: refused before HTTP (at the TLS handshake).
    pub fn call_as(
        &self,
        curl: &[String],
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-w", "\n%{http_code}", "-X", method])
            .args(curl)
            .arg(format!("{}{path}", self.base));
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data", b]);
        }
        let out = cmd.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (code.trim().parse().expect("status"), body.to_string())
    }

    /// `call` with the agent's token, the answer as JSON (a string when it is not).
    pub fn json(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (code, text) = self.call(method, path, body, Some(&self.token));
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM; exit status and everything it logged (stderr must have been piped).
    pub fn stop(mut self) -> (i32, String) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        // Read while it exits: a full pipe would hold it up.
        let reader = self.child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut log = String::new();
                let _ = std::io::Read::read_to_string(&mut e, &mut log);
                log
            })
        });
        let status = self.child.wait().expect("wait agent");
        let log = reader
            .map(|r| r.join().unwrap_or_default())
            .unwrap_or_default();
        (status.code().unwrap_or(-1), log)
    }
}

/// The token in a file of the test's own (`tag`): tests run in parallel in one process.
pub fn token_file(tag: &str, token: &str) -> crate::TempPath {
    let f = crate::TempPath::new(&format!("{tag}-token"));
    std::fs::write(f.as_str(), format!("{token}\n")).expect("token file");
    f
}

/// A self-signed certificate for 127.0.0.1 (P-256, one day) and its key, with openssl.
pub fn self_signed(cert: &str, key: &str) {
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=chaos-agent"])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            key,
            "-out",
            cert,
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "openssl req");
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
