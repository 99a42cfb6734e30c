//! `chaos agent`: one long-running process per node that holds the node's faults and takes
//! requests over HTTP (`api`), with a bearer token read from a file (a Kubernetes Secret
//! mounted into the pod). Its faults are owned by the process (fd-owned links, in-kernel
//! deadlines): SIGKILL removes them; SIGTERM detaches them all before exiting. On start it
//! removes what a previous instance left (`chaos cleanup`).

mod api;
mod experiments;
mod metrics;
mod registry;
mod schedules;
mod schedules_api;
mod tls;

pub use crate::agent_client::read_token;
pub use registry::{FaultInfo, Limits, NodeInfo};
pub use tls::TlsFiles;

use crate::{
    error::{Error, Result},
    session::{Stop, Wake},
};
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

/// How the agent runs.
pub struct AgentConfig {
    pub listen: SocketAddr,
    /// The bearer token (the file's content, trimmed).
    pub token: String,
    /// HTTPS: the certificate chain and key, PEM files read again when they change, and the
    /// CA of the client certificates required (mTLS).
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
    pub node: NodeInfo,
    /// Experiment files with a `schedule:` block to hold from the start (`--schedules DIR`).
    pub schedules: Option<std::path::PathBuf>,
    /// Where the schedules' runs write their reports, a directory per schedule.
    pub reports: std::path::PathBuf,
}

/// Serves until a stop signal, then detaches every fault. `ready` gets the bound address
/// (for `--listen 127.0.0.1:0`) once requests are taken.
pub async fn serve(
    cfg: AgentConfig,
    stop: &mut Stop,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let (removed, failed) = crate::background::cleanup();
    if removed + failed > 0 {
        tracing::warn!("removed {removed} fault(s) a previous chaos left ({failed} failed)");
    }
    let metrics = metrics::Metrics::new();
    let (tx, rx) = mpsc::channel();
    let thread = {
        let (limits, node, m) = (cfg.limits.clone(), cfg.node.clone(), metrics.clone());
        std::thread::spawn(move || registry::run(rx, limits, node, m))
    };
    let schedules = Arc::new(schedules::Schedules::new(
        cfg.reports.clone(),
        cfg.limits.clone(),
    ));
    if let Some(dir) = &cfg.schedules {
        let n = schedules.load_dir(dir)?;
        tracing::info!("holding {n} schedule(s) from {}", dir.display());
    }
    let n = schedules.load_saved()?;
    if n > 0 {
        tracing::info!("holding again {n} schedule(s) added over the API before a restart");
    }
    let shared = Arc::new(api::Shared {
        tx: Mutex::new(tx.clone()),
        token: cfg.token,
        metrics,
        limits: cfg.limits.clone(),
        schedules: schedules.clone(),
    });
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| Error::io(format!("listening on {}", cfg.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    let app = api::router(shared);
    match cfg.tls {
        Some(files) => {
            let tls = tls::TlsListener::new(listener, files)?;
            ready(addr);
            tokio::select! {
                r = axum::serve(tls, app.into_make_service_with_connect_info::<api::Peer>()) => r.map_err(|e| Error::io("serving the API", e))?,
                () = until_signal(stop) => {}
            }
        }
        None => {
            ready(addr);
            tokio::select! {
                r = axum::serve(listener, app.into_make_service_with_connect_info::<api::Peer>()) => r.map_err(|e| Error::io("serving the API", e))?,
                () = until_signal(stop) => {}
            }
        }
    }
    // Schedules end first (their runs roll back), keeping their marks for the next agent.
    let _ = tokio::task::spawn_blocking(move || schedules.shutdown()).await;
    let (reply, stopped) = tokio::sync::oneshot::channel();
    if tx.send(registry::Cmd::Shutdown(reply)).is_ok() {
        let n = stopped.await.unwrap_or(0);
        tracing::info!("detached {n} fault(s)");
    }
    let _ = thread.join();
    Ok(())
}

async fn until_signal(stop: &mut Stop) {
    loop {
        if let Wake::End(crate::session::Ended::Signal { .. }) =
            stop.wait(Instant::now() + Duration::from_secs(3600)).await
        {
            return;
        }
    }
}
