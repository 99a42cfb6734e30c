//! `chaos --agent URL ...`: the commands sent to a `chaos agent` instead of run here. A fault
//! command becomes the agent's fault request (the same spec an experiment file's fault entry
//! has) and returns once the agent has it in force, like --background; `status` lists the
//! agent's faults and `stop ID|--all` stops them.

use crate::common::{self, out};
use chaos::{
    Error, Result,
    experiment::{FaultRequest, SelectorSpec, TargetSpec},
    scalar::Dur,
    target::Target,
};
use serde_json::Value;
use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

/// Where the agent is and how to talk to it (global flags).
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Send the command to a `chaos agent` (http://127.0.0.1:7070 or https://NODE:7070)
    /// instead of running it here: fault commands, status, stop.
    #[arg(long, global = true, value_name = "URL")]
    pub agent: Option<String>,
    /// The agent's bearer token, from a file (for `chaos agent`: the token it requires).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust this CA (PEM) for the agent's HTTPS certificate.
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Present this client certificate chain (PEM) to an agent that requires one (mTLS).
    #[arg(long, global = true, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// The client certificate chain and key from PEM files; errors name the flag.
fn client_cert(cert: &std::path::Path, key: &std::path::Path) -> Result<ureq::tls::ClientCert> {
    let read = |flag: &'static str, p: &std::path::Path| {
        std::fs::read(p).map_err(|e| Error::input(flag, format!("{}: {e}", p.display())))
    };
    let pem = read("--client-cert", cert)?;
    let chain: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if chain.is_empty() {
        return Err(Error::input(
            "--client-cert",
            format!("{} holds no PEM certificate", cert.display()),
        ));
    }
    let key = ureq::tls::PrivateKey::from_pem(&read("--client-key", key)?)
        .map_err(|e| Error::input("--client-key", format!("{}: {e}", key.display())))?;
    Ok(ureq::tls::ClientCert::new_with_certs(&chain, key))
}

pub struct Remote {
    base: String,
    token: String,
    http: ureq::Agent,
}

impl Remote {
    pub fn new(a: &RemoteArgs, url: &str) -> Result<Remote> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::input(
                "--agent",
                format!("'{url}' is not a URL: give http://HOST:PORT or https://HOST:PORT"),
            ));
        }
        let file = a.token_file.as_ref().ok_or_else(|| {
            Error::input(
                "--token-file",
                "the agent needs its token: --token-file FILE",
            )
        })?;
        let token = chaos::agent::read_token(file)?;
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &a.cacert {
            let pem = std::fs::read(ca)
                .map_err(|e| Error::input("--cacert", format!("{}: {e}", ca.display())))?;
            let cert = ureq::tls::Certificate::from_pem(&pem)
                .map_err(|e| Error::input("--cacert", format!("{}: {e}", ca.display())))?;
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])));
        }
        if let (Some(c), Some(k)) = (&a.client_cert, &a.client_key) {
            tls = tls.client_cert(Some(client_cert(c, k)?));
        }
        let http = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Remote {
            base: url.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// METHOD PATH with an optional JSON body: the status and the JSON answer. A status of 400
    /// is the user's to fix (exit 2); others not 2xx are failures.
    fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let resp = match (method, body) {
            ("POST", Some(b)) => self
                .http
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b),
            ("DELETE", _) => self.http.delete(&url).header("Authorization", &auth).call(),
            _ => self.http.get(&url).header("Authorization", &auth).call(),
        };
        let mut resp = resp.map_err(|e| {
            let text = e.to_string();
            let hint = if text.contains("UnknownIssuer") || text.contains("CaUsedAsEndEntity") {
                "; trust the agent's CA with --cacert FILE"
            } else if text.contains("InvalidContentType") || text.contains("invalid HTTP version") {
                "; check http:// or https:// against how the agent serves (--tls-cert)"
            } else {
                ""
            };
            Error::Tool {
                context: format!("{method} {url}"),
                message: format!("{text}{hint}"),
            }
        })?;
        let code = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        match code {
            200..=299 => Ok(v),
            401 => Err(Error::input(
                "--token-file",
                "the agent refused this token (401): give the file of the token it was started with",
            )),
            400 | 404 => Err(Error::input(
                "--agent",
                format!(
                    "the agent refused ({code}): {}",
                    v["error"].as_str().unwrap_or("")
                ),
            )),
            _ => Err(Error::Tool {
                context: format!("{method} {url}"),
                message: format!("status {code}: {}", v["error"].as_str().unwrap_or("")),
            }),
        }
    }

    /// Starts the fault on the agent; prints its id (and the fault as JSON with --json).
    pub fn start(&self, req: &FaultRequest, json: bool) -> Result<ExitCode> {
        let body = serde_json::to_string(req).map_err(|source| Error::Json {
            context: "writing the fault request".into(),
            source,
        })?;
        let v = self.call("POST", "/v1/faults", Some(body))?;
        if json {
            common::print_json(&v);
        } else {
            out!("{}", v["id"].as_str().unwrap_or(""));
            eprintln!(
                "chaos: {} on the agent: {}; see `chaos --agent ... status`",
                v["fault"].as_str().unwrap_or(""),
                v["detail"].as_str().unwrap_or("")
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn status(&self, json: bool) -> Result<ExitCode> {
        let v = self.call("GET", "/v1/faults", None)?;
        for f in v.as_array().into_iter().flatten() {
            if json {
                common::print_json(f);
            } else {
                out!(
                    "{} {} [{}] matched {} injected {}, {} ms left: {}",
                    f["id"].as_str().unwrap_or(""),
                    f["fault"].as_str().unwrap_or(""),
                    f["state"].as_str().unwrap_or(""),
                    f["matched"],
                    f["injected"],
                    f["left_ms"],
                    f["detail"].as_str().unwrap_or("")
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn stop(&self, id: Option<&str>, json: bool) -> Result<ExitCode> {
        let path = id.map_or("/v1/faults".to_string(), |i| format!("/v1/faults/{i}"));
        let v = self.call("DELETE", &path, None)?;
        let stopped = match v {
            Value::Array(a) => a,
            one => vec![one],
        };
        for f in &stopped {
            if json {
                common::print_json(f);
            } else {
                out!("stopped {}", f["id"].as_str().unwrap_or(""));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The target of a command as the agent's request takes it.
pub fn target_spec(local: Option<Target>, pods: &crate::pods::PodArgs) -> Result<TargetSpec> {
    let q = pods.query();
    if q.is_set() {
        q.check()?;
        return Ok(TargetSpec {
            pod: q.pod,
            container: q.container,
            namespace: q.namespace,
            selector: q.selector.map(|s| SelectorSpec::Text(s.to_string())),
            mode: Some(q.mode.to_string()),
            runtime_endpoint: pods.runtime_endpoint.clone(),
            ..TargetSpec::default()
        });
    }
    match local {
        Some(Target::Cgroup(c)) => Ok(TargetSpec {
            cgroup: Some(c),
            ..TargetSpec::default()
        }),
        Some(Target::Pid(p)) => Ok(TargetSpec {
            pid: Some(p),
            ..TargetSpec::default()
        }),
        None => Err(Error::input(
            "--cgroup/--pid",
            "the agent needs a target: --cgroup, --pid, --pod or --selector",
        )),
    }
}

/// A request with nothing the agent would ignore: the run controls stay local for now.
pub fn request(
    target: TargetSpec,
    duration: Duration,
    controls: &chaos::controls::Controls,
) -> Result<FaultRequest> {
    let local_only = [
        ("--dry-run", controls.dry_run),
        ("--max-faults", controls.max_faults.is_some()),
        ("--events", controls.events.is_some()),
        ("--force", controls.force),
    ];
    if let Some((flag, _)) = local_only.iter().find(|(_, set)| *set) {
        return Err(Error::input(
            flag,
            "is not passed to an agent yet: run the command on the node, or leave it out",
        ));
    }
    Ok(FaultRequest {
        name: None,
        target,
        duration: Dur(duration),
        net: None,
        syscall: None,
        kill: None,
    })
}
