//! `chaos agent`: the node's long-running fault holder, driven over HTTP with a bearer token.

use chaos::{
    agent::{self, AgentConfig, Limits},
    session::Stop,
};
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

// Example: chaos agent --listen 0.0.0.0:7070 --token-file /var/run/secrets/chaos/token
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Address and port to serve the API on; port 0 picks a free one, printed on start. Other
    /// than a loopback address only with TLS (a token must not cross the network in clear).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM), read again when it changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by this CA (PEM) and valid now (mTLS), on top of
    /// the token; a client without one is refused at the handshake.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// At most this many faults active at once; more are refused (HTTP 400).
    #[arg(long, value_name = "N", default_value = "16")]
    max_faults: usize,
    /// The longest duration a request may ask for.
    #[arg(long, value_name = "D", default_value = "1h", value_parser = crate::common::duration)]
    max_duration: Duration,
    /// Let requests override the blast-radius guards (root cgroup, the default-route
    /// interface, ...); off by default: a request cannot do what `--force` would allow.
    #[arg(long)]
    allow_force: bool,
    /// This node's name, in every fault's status and in `chaos run --agents` reports (on
    /// Kubernetes: the NODE_NAME the DaemonSet sets from spec.nodeName; default: the host name).
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// The container runtime's CRI socket for requests on pods that name none (the kubelet's
    /// --container-runtime-endpoint; default: containerd's or CRI-O's usual path).
    #[arg(long, value_name = "PATH")]
    runtime_endpoint: Option<String>,
    /// Hold the schedules of these experiment files (every *.yaml with a schedule: block) from
    /// the start; an agent restarted mid-schedule reports the ticks it missed, not replaying
    /// them. More come over the API (chaos --agent URL schedule add FILE).
    #[arg(long, value_name = "DIR")]
    schedules: Option<PathBuf>,
    /// Where scheduled runs write their reports (a directory per schedule).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/chaos/reports")]
    reports_dir: PathBuf,
}

/// `token_file`: the global --token-file, the token every API request must carry.
pub async fn run(a: AgentArgs, token_file: Option<PathBuf>) -> chaos::Result<ExitCode> {
    let token_file = token_file.ok_or_else(|| {
        chaos::Error::input(
            "--token-file",
            "give the file holding the token every request must carry (at least 16 bytes)",
        )
    })?;
    let tls = a
        .tls_cert
        .clone()
        .zip(a.tls_key.clone())
        .map(|(cert, key)| agent::TlsFiles {
            cert,
            key,
            client_ca: a.client_ca.clone(),
        });
    if tls.is_none() && !a.listen.ip().is_loopback() {
        // The token would cross the network in clear text.
        return Err(chaos::Error::input(
            "--listen",
            format!(
                "{} is not a loopback address: serve HTTPS there with --tls-cert and \
                 --tls-key, or listen on 127.0.0.1",
                a.listen
            ),
        ));
    }
    let cfg = AgentConfig {
        listen: a.listen,
        token: agent::read_token(&token_file)?,
        tls,
        limits: Limits {
            max_faults: a.max_faults,
            max_duration: a.max_duration,
            allow_force: a.allow_force,
        },
        schedules: a.schedules,
        reports: a.reports_dir,
        node: agent::NodeInfo {
            name: a
                .node_name
                .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
                .unwrap_or_else(host_name),
            runtime_endpoint: a.runtime_endpoint,
        },
    };
    let mut stop = Stop::install()?;
    agent::serve(cfg, &mut stop, |addr| {
        crate::common::print_json(&serde_json::json!({"event": "listening", "addr": addr}));
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// The host name a kubelet registers its node as by default.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown".into(), |h| h.trim().to_string())
}
