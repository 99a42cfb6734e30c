//! `chaos agent`: a fault started, read, measured and stopped over its HTTP API with curl as the
//! client; requests without the token refused with nothing changed; the guards and limits
//! refused; SIGTERM detaches what is active. The fault is a connect refusal in the lab's cgroup,
//! checked with real connects inside it and outside it.

use chaos_tests::{
    TempPath,
    agent::{Agent, self_signed},
    clients::connect,
    lab::{Lab, SERVER_V4},
};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

const TOKEN: &str = "test-token-0123456789abcdef";

/// The lab's agent, limited (5 minutes, 2 faults), its log kept for `stop`.
fn agent(lab: &Lab, token_file: &str, extra: &[&str], scheme: &str, curl: Vec<String>) -> Agent {
    let mut cmd = lab.chaos_cmd();
    cmd.stderr(Stdio::piped());
    let mut args = vec!["--max-duration", "5m", "--max-faults", "2"];
    args.extend_from_slice(extra);
    Agent::start_with(cmd, token_file, TOKEN, &args, scheme, curl)
}

/// The lab, its agent and the fault request the checks send.
struct Case<'a> {
    lab: &'a Lab,
    agent: &'a Agent,
    token_file: &'a TempPath,
    dst: String,
    cg: String,
    fault: String,
}

impl Case<'_> {
    fn refusals(&self) {
        // Without the token, or with a wrong one: 401 and nothing started.
        assert_eq!(self.agent.call("GET", "/v1/faults", None, None).0, 401);
        assert_eq!(
            self.agent
                .call(
                    "POST",
                    "/v1/faults",
                    Some(&self.fault),
                    Some("wrong-token-0000000")
                )
                .0,
            401
        );
        assert_eq!(self.agent.call("GET", "/metrics", None, None).0, 401);
        assert_eq!(
            self.agent.call("GET", "/healthz", None, None),
            (200, "ok\n".into())
        );
        assert_eq!(
            connect(self.lab.inside("python3"), &self.dst, 7001, "tcp"),
            0,
            "nothing was started"
        );
    }

    /// Starts the fault over the API and checks it acts; its id.
    fn api_fault(&self) -> String {
        let (code, started) = self.agent.json("POST", "/v1/faults", Some(&self.fault));
        assert_eq!(code, 201, "{started}");
        let id = started["id"].as_str().expect("id").to_string();
        assert_eq!(started["fault"], "syscall connect");
        for _ in 0..3 {
            assert_eq!(
                connect(self.lab.inside("python3"), &self.dst, 7001, "tcp"),
                libc::ECONNREFUSED
            );
        }
        // A local `chaos stop` of the agent's fault would signal the agent itself: refused.
        let (_, local, _) = self.lab.run(&["--json", "status"]);
        let local: Value = serde_json::from_str(local.trim()).expect("status JSON");
        let record = local[0]["id"]
            .as_str()
            .expect("the agent's fault has a record");
        let (code, _, err) = self.lab.run(&["stop", record]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("held by `chaos agent`"), "{err}");
        assert_eq!(
            self.agent.call("GET", "/healthz", None, None).0,
            200,
            "the agent lives on"
        );
        assert_eq!(
            connect(self.lab.outside("python3"), &self.dst, 7001, "tcp"),
            0,
            "outside spared"
        );
        let (_, now) = self.agent.json("GET", &format!("/v1/faults/{id}"), None);
        assert_eq!(
            (now["state"].as_str(), now["injected"].as_u64()),
            (Some("active"), Some(3)),
            "{now}"
        );
        assert!(now["left_ms"].as_u64() > Some(50_000), "{now}");
        id
    }

    fn metrics(&self, id: &str) {
        // The exposition counts what the API reports (the fault thread updates it 4 times a second).
        std::thread::sleep(std::time::Duration::from_millis(400));
        let (code, text) = self.agent.call("GET", "/metrics", None, Some(TOKEN));
        assert_eq!(code, 200);
        let line = format!("chaos_fault_injected_total{{id=\"{id}\",fault=\"syscall connect\"}} 3");
        assert!(text.contains(&line), "{line} in:\n{text}");
        assert!(text.contains("chaos_faults_active 1"), "{text}");
        assert!(
            text.contains("chaos_api_requests_total{code=\"401\"} 3"),
            "{text}"
        );
    }

    fn guards(&self) {
        // Guards and limits: refused with the reason, nothing started.
        let root = self.fault.replace(&self.cg, "/");
        let (code, refused) = self.agent.json("POST", "/v1/faults", Some(&root));
        assert_eq!(code, 400, "{refused}");
        assert!(
            refused["error"]
                .as_str()
                .unwrap_or("")
                .contains("root cgroup"),
            "{refused}"
        );
        let long = self.fault.replace("\"60s\"", "\"2h\"");
        let (code, refused) = self.agent.json("POST", "/v1/faults", Some(&long));
        assert_eq!(code, 400, "{refused}");
        let (code, bad) = self
            .agent
            .json("POST", "/v1/faults", Some("{\"target\": {}}"));
        assert_eq!(code, 400, "{bad}");
    }

    fn stop(&self, id: &str) {
        // Stop it: connects work again and its programs are gone.
        let (code, stopped) = self.agent.json("DELETE", &format!("/v1/faults/{id}"), None);
        assert_eq!(
            (code, stopped["state"].as_str()),
            (200, Some("stopped")),
            "{stopped}"
        );
        assert_eq!(
            connect(self.lab.inside("python3"), &self.dst, 7001, "tcp"),
            0
        );
        assert_eq!(
            self.agent
                .json("DELETE", &format!("/v1/faults/{id}"), None)
                .0,
            404
        );
    }

    fn cli(&self) {
        // The CLI sends the same command to the agent instead of running it here.
        let remote = |args: &[&str]| {
            let mut all = vec![
                "--agent",
                self.agent.base.as_str(),
                "--token-file",
                self.token_file.as_str(),
            ];
            all.extend_from_slice(args);
            self.lab.run(&all)
        };
        let (code, out, err) = remote(&[
            "--json",
            "syscall",
            "connect",
            "--errno",
            "ECONNREFUSED",
            "--dport",
            "7001",
            "--cgroup",
            &self.cg,
            "--duration",
            "60s",
        ]);
        assert_eq!(code, 0, "{err}");
        let sent: Value = serde_json::from_str(out.trim()).expect("the agent's answer");
        let cli_id = sent["id"].as_str().expect("id").to_string();
        assert_eq!(
            connect(self.lab.inside("python3"), &self.dst, 7001, "tcp"),
            libc::ECONNREFUSED
        );
        let (code, out, _) = remote(&["--json", "status"]);
        assert_eq!(code, 0);
        assert!(
            out.contains(&cli_id) && out.contains("\"injected\":1"),
            "{out}"
        );
        let (code, _, err) = remote(&[
            "syscall",
            "connect",
            "--errno",
            "EPERM",
            "--cgroup",
            &self.cg,
            "--duration",
            "5s",
            "--dry-run",
        ]);
        assert_eq!(code, 2, "local-only flags are refused, not dropped: {err}");
        assert!(err.contains("--dry-run"), "{err}");
        let (code, out, err) = remote(&["stop", &cli_id]);
        assert_eq!(
            (code, out.trim()),
            (0, format!("stopped {cli_id}").as_str()),
            "{err}"
        );
        assert_eq!(
            connect(self.lab.inside("python3"), &self.dst, 7001, "tcp"),
            0
        );
        let (code, _, err) = remote(&["doctor"]);
        assert_eq!(code, 2, "{err}");
    }
}

#[test]
fn agent_starts_reads_measures_and_stops_a_fault_over_http() {
    let lab = Lab::new("agt");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let token_file = TempPath::new("agent-token");
    std::fs::write(token_file.as_str(), format!("{TOKEN}\n")).expect("token file");
    // Without TLS the token would cross the network in clear: only loopback is served.
    let listen = [
        "agent",
        "--listen",
        "0.0.0.0:0",
        "--token-file",
        token_file.as_str(),
    ];
    let (code, _, err) = lab.run(&listen);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--listen") && err.contains("loopback"),
        "{err}"
    );
    let agent = agent(&lab, token_file.as_str(), &[], "http", Vec::new());
    let cg = lab.cgroup();
    let fault = format!(
        r#"{{"name": "refused", "target": {{"cgroup": "{cg}"}}, "duration": "60s",
            "syscall": {{"name": "connect", "errno": "ECONNREFUSED", "dport": 7001}}}}"#
    );
    let case = Case {
        lab: &lab,
        agent: &agent,
        token_file: &token_file,
        dst: SERVER_V4.to_string(),
        cg,
        fault,
    };
    case.refusals();
    let id = case.api_fault();
    case.metrics(&id);
    case.guards();
    case.stop(&id);
    case.cli();
    let (dst, fault) = (case.dst.clone(), case.fault.clone());
    // SIGTERM with a fault active: detached before the agent exits.
    let (code, again) = agent.json("POST", "/v1/faults", Some(&fault));
    assert_eq!(code, 201, "{again}");
    let (_, list) = agent.json("GET", "/v1/faults", None);
    assert_eq!(list.as_array().map(Vec::len), Some(3), "{list}");
    let (status, log) = agent.stop();
    assert_eq!(status, 0, "{log}");
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7001, "tcp"),
        0,
        "detached on SIGTERM"
    );
    assert!(!log.contains(TOKEN), "the token never reaches the log");
    let requests = log
        .lines()
        .filter(|l| l.contains("\"event\":\"request\""))
        .count();
    assert_eq!(requests, 18, "every request logged, once: {log}");
    assert!(
        log.lines()
            .filter(|l| l.contains("\"event\":\"request\""))
            .all(|l| l.contains("\"peer\":\"127.0.0.1:")),
        "each names who sent it: {log}"
    );
    lab.finish();
}

#[test]
fn agent_serves_https_and_reloads_a_rotated_certificate() {
    let test = "agent_serves_https_and_reloads_a_rotated_certificate";
    // openssl makes the test's certificates.
    if !chaos_tests::have("openssl", test) {
        return;
    }
    let lab = Lab::new("agts");
    let token_file = TempPath::new("agent-tls-token");
    std::fs::write(token_file.as_str(), TOKEN).expect("token file");
    let (cert, key) = (
        TempPath::new("agent-cert.pem"),
        TempPath::new("agent-key.pem"),
    );
    let (cert2, key2) = (
        TempPath::new("agent-cert2.pem"),
        TempPath::new("agent-key2.pem"),
    );
    self_signed(cert.as_str(), key.as_str());
    self_signed(cert2.as_str(), key2.as_str());
    let trust = |c: &TempPath| vec!["--cacert".to_string(), c.as_str().to_string()];
    let tls = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
    let agent = agent(&lab, token_file.as_str(), &tls, "https", trust(&cert));
    assert_eq!(
        agent.call("GET", "/healthz", None, None),
        (200, "ok\n".into())
    );
    assert_eq!(agent.call("GET", "/v1/faults", None, Some(TOKEN)).0, 200);
    // A client that does not trust the certificate gets no answer (curl: status 000).
    assert_eq!(agent.call_as(&[], "GET", "/healthz", None, None).0, 0);
    // Rotate the files: the next connection is served with the new certificate.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(key2.as_str(), key.as_str()).expect("rotate key");
    std::fs::copy(cert2.as_str(), cert.as_str()).expect("rotate cert");
    assert_eq!(
        agent.call_as(&trust(&cert2), "GET", "/healthz", None, None),
        (200, "ok\n".into())
    );
    let (status, log) = agent.stop();
    assert_eq!(status, 0, "{log}");
    // With TLS, other addresses than loopback may be served.
    let any = [
        "--listen",
        "0.0.0.0:0",
        "--tls-cert",
        cert.as_str(),
        "--tls-key",
        key.as_str(),
    ];
    let mut all = vec!["agent", "--token-file", token_file.as_str()];
    all.extend_from_slice(&any);
    let mut child = lab
        .chaos_cmd()
        .args(&all)
        .stdout(Stdio::piped())
        .spawn()
        .expect("agent");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    assert!(
        line.contains("\"listening\"") && line.contains("0.0.0.0:"),
        "{line}"
    );
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().expect("wait").success());
    lab.finish();
}

/// openssl with `args`; panics naming them on failure.
fn openssl(args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "openssl {args:?}");
}

/// A key and a certificate for `cn` signed by `ca` (or self-signed without one), valid from
/// now for `days` (-1: expired yesterday), with the v3 extensions `ext` (signed ones), in
/// `dir`: (cert, key) paths.
fn issue(
    dir: &std::path::Path,
    cn: &str,
    ca: Option<&str>,
    days: &str,
    ext: &str,
) -> (String, String) {
    let p = |e: &str| dir.join(format!("{cn}.{e}")).to_string_lossy().into_owned();
    let (cert, key, csr) = (p("pem"), p("key"), p("csr"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let subj = format!("/CN={cn}");
    match ca {
        None => {
            let mut a = vec!["req", "-x509"];
            a.extend(ec);
            a.extend([
                "-days", days, "-subj", &subj, "-keyout", &key, "-out", &cert,
            ]);
            openssl(&a);
        }
        Some(ca) => {
            let mut a = vec!["req"];
            a.extend(ec);
            a.extend(["-subj", &subj, "-keyout", &key, "-out", &csr]);
            openssl(&a);
            let ca_key = ca.replace(".pem", ".key");
            // Extensions make it a v3 certificate, the only version WebPKI accepts.
            let ext_file = p("ext");
            std::fs::write(&ext_file, format!("basicConstraints=CA:FALSE\n{ext}\n"))
                .expect("extensions file");
            openssl(&[
                "x509", "-req", "-in", &csr, "-CA", ca, "-CAkey", &ca_key, "-days", days,
                "-extfile", &ext_file, "-out", &cert,
            ]);
        }
    }
    (cert, key)
}

/// --client-ca: a client certificate from that CA gets in (with the token, also through the
/// CLI's --client-cert); none, a self-signed one or an expired one is refused at the handshake
/// and changes nothing.
#[test]
fn agent_with_a_client_ca_refuses_clients_without_its_certificate() {
    let test = "agent_with_a_client_ca_refuses_clients_without_its_certificate";
    // openssl makes the test's certificates.
    if !chaos_tests::have("openssl", test) {
        return;
    }
    let lab = Lab::new("agmtls");
    let dir = std::env::temp_dir().join(format!("chaos-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cert dir");
    let token_file = TempPath::new("agent-mtls-token");
    std::fs::write(token_file.as_str(), TOKEN).expect("token file");
    let client = "extendedKeyUsage=clientAuth";
    let (ca, _) = issue(&dir, "ca", None, "1", "");
    let (server_cert, server_key) = issue(
        &dir,
        "server",
        Some(&ca),
        "1",
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1",
    );
    let good = issue(&dir, "client", Some(&ca), "1", client);
    let expired = issue(&dir, "expired", Some(&ca), "-1", client);
    let stranger = issue(&dir, "stranger", None, "1", client);
    let tls = [
        "--tls-cert",
        &server_cert,
        "--tls-key",
        &server_key,
        "--client-ca",
        &ca,
    ];
    let with = |c: &(String, String)| {
        vec![
            "--cacert".to_string(),
            ca.clone(),
            "--cert".to_string(),
            c.0.clone(),
            "--key".to_string(),
            c.1.clone(),
        ]
    };
    let agent = agent(&lab, token_file.as_str(), &tls, "https", with(&good));
    assert_eq!(
        agent.call("GET", "/v1/faults", None, Some(TOKEN)),
        (200, "[]".into())
    );
    let cg = lab.cgroup();
    let fault = format!(
        r#"{{"target": {{"cgroup": "{cg}"}}, "duration": "60s",
            "syscall": {{"name": "connect", "errno": "ECONNREFUSED", "dport": 7001}}}}"#
    );
    for (who, curl) in [
        ("no client certificate", vec!["--cacert".into(), ca.clone()]),
        ("a self-signed one", with(&stranger)),
        ("an expired one", with(&expired)),
    ] {
        assert_eq!(
            agent
                .call_as(&curl, "POST", "/v1/faults", Some(&fault), Some(TOKEN))
                .0,
            0,
            "{who}: refused at the handshake"
        );
    }
    assert_eq!(
        agent.call("GET", "/v1/faults", None, Some(TOKEN)),
        (200, "[]".into()),
        "nothing was started"
    );
    // The CLI presents its certificate with --client-cert/--client-key.
    let (code, out, err) = lab.run(&[
        "--agent",
        &agent.base,
        "--token-file",
        token_file.as_str(),
        "--cacert",
        &ca,
        "--client-cert",
        &good.0,
        "--client-key",
        &good.1,
        "status",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (status, log) = agent.stop();
    assert_eq!(status, 0, "{log}");
    let _ = std::fs::remove_dir_all(&dir);
    lab.finish();
}
