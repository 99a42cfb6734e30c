//! `chaos --agent URL ...`: the commands sent to a `chaos agent` instead of run here. A fault
//! command becomes the agent's fault request (the same spec an experiment file's fault entry
//! has) and returns once the agent has it in force, like --background; `status` lists the
//! agent's faults and `stop ID|--all` stops them.

use crate::common::{self, out};
use chaos::{
    Error, Result,
    agent_client::{Client, ClientConfig},
    experiment::{FaultRequest, SelectorSpec, TargetSpec},
    scalar::Dur,
    target::Target,
};
use serde_json::Value;
use std::{path::PathBuf, process::ExitCode, time::Duration};

// Where the agent is and how to talk to it (global flags).
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Send the command to a `chaos agent` (http://127.0.0.1:7070 or https://NODE:7070)
    /// instead of running it here: fault commands, run, schedule, status, stop.
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

impl RemoteArgs {
    /// The library's client settings from these flags.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            token_file: self.token_file.clone(),
            cacert: self.cacert.clone(),
            client_cert: self.client_cert.clone().zip(self.client_key.clone()),
            timeout: None,
        }
    }
}

/// The agent a command is sent to.
pub struct Remote(Client);

impl Remote {
    pub fn new(a: &RemoteArgs, url: &str) -> Result<Remote> {
        Client::new(&a.client_config(), url, "--agent").map(Remote)
    }

    pub fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<Value> {
        self.0.call(method, path, body, "--agent")
    }

    /// POSTs `body` and hands `each` every event of the streamed answer.
    pub fn stream(&self, path: &str, body: String, each: impl FnMut(Value)) -> Result<()> {
        self.0.stream(path, body, "--agent", each)
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
