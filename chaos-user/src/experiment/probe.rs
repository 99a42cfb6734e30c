//! Steady-state probes: an HTTP GET, a TCP connect, a command. Each runs on its own interval in
//! its own task and reports every sample to the runner.

use super::plan::{Probe, ProbeKind};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct Sample {
    pub probe: usize,
    /// When the probe was sent.
    pub at: Instant,
    pub ok: bool,
    pub latency: Duration,
    /// Why it failed, or what it saw ("200", "connected").
    pub message: String,
}

/// Runs `probe` once.
pub async fn sample(index: usize, probe: &Probe) -> Sample {
    let at = Instant::now();
    let result = tokio::time::timeout(probe.timeout, check(&probe.kind, probe.timeout)).await;
    let latency = at.elapsed();
    let (ok, message) = match result {
        Ok(Ok(seen)) => (true, seen),
        Ok(Err(why)) => (false, why),
        Err(_) => (false, format!("no answer within {:?}", probe.timeout)),
    };
    let (ok, message) = match &probe.kind {
        ProbeKind::Http {
            max_latency: Some(max),
            ..
        } if ok && latency > *max => (
            false,
            format!("{message} but took {latency:.0?} (max {max:?})"),
        ),
        _ => (ok, message),
    };
    Sample {
        probe: index,
        at,
        ok,
        latency,
        message,
    }
}

async fn check(kind: &ProbeKind, timeout: Duration) -> Result<String, String> {
    match kind {
        ProbeKind::Http { url, status, .. } => {
            let (url, want) = (url.clone(), *status);
            tokio::task::spawn_blocking(move || http_get(&url, want, timeout))
                .await
                .map_err(|e| format!("probe task failed: {e}"))?
        }
        ProbeKind::Tcp { addr } => tokio::net::TcpStream::connect(addr.as_str())
            .await
            .map(|_| "connected".to_string())
            .map_err(|e| format!("connect {addr}: {e}")),
        ProbeKind::Command { argv } => {
            let mut cmd = tokio::process::Command::new(&argv[0]);
            let out = crate::child::tokio_dies_with_parent(&mut cmd)
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
            if out.status.success() {
                return Ok("exit 0".into());
            }
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(format!("{}: {}", out.status, last.trim()))
        }
    }
}

fn http_get(url: &str, want: u16, timeout: Duration) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    // Read the body: the answer is complete only when it has arrived.
    let _ = resp.body_mut().read_to_vec();
    let got = resp.status().as_u16();
    if got == want {
        Ok(got.to_string())
    } else {
        Err(format!("status {got} (expected {want})"))
    }
}

/// Starts one task per probe, each sampling on its interval until the returned guard drops.
pub fn spawn_all(probes: &[Probe], tx: mpsc::UnboundedSender<Sample>) -> Probing {
    let tasks = probes
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, p)| {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(p.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if tx.send(sample(i, &p).await).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    Probing(tasks)
}

/// The probe tasks; aborted on drop.
pub struct Probing(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Probing {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
