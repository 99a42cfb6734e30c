//! `POST /v1/experiments`: the agent runs an experiment on its node (what `chaos --agent URL run
//! FILE` sends) and streams it back as it goes: NDJSON, one `{"event": "progress", "line"}`
//! per progress line, then `{"event": "report", "report"}` or `{"event": "error", "error"}`.
//! The body is the experiment file's text (YAML, variables already expanded by the client).
//! Checked as `chaos run` checks it before anything starts (400 with the reason); the agent's
//! limits apply (its --max-duration, --max-faults, guards unless --allow-force). Its faults are
//! the agent process's (fd-owned links, in-kernel deadlines): they end with it.

use super::api::{Shared, error};
use crate::{experiment, session::Stop};
use axum::{
    body::Body,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

pub async fn run(State(s): State<Arc<Shared>>, body: Body) -> Response {
    let text = match axum::body::to_bytes(body, 1 << 20)
        .await
        .map(|b| b.to_vec())
    {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    };
    let checked = check(&s, &text);
    let (exp, ready) = match checked {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, crate::error::chain(&e)),
    };
    let (out, rx) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let (lines, mut progress) = mpsc::unbounded_channel::<String>();
        // A thread and runtime of its own: the run's faults (kernel objects) are not Send, and
        // stay on the thread that attached them until they are dropped.
        let running = tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| crate::Error::io("starting the experiment's runtime", e))?;
            rt.block_on(async move {
                let mut stop = Stop::install()?;
                let opts = experiment::Options {
                    dry_run: false,
                    quiet: true,
                    metrics: None,
                    progress: Some(lines),
                };
                experiment::run(&exp, ready, &opts, &mut stop).await
            })
        });
        // Ends when the run drops its sender, i.e. once it is over.
        while let Some(line) = progress.recv().await {
            let _ = out.send(json!({"event": "progress", "line": line}));
        }
        let last = match running.await {
            Ok(Ok(report)) => json!({"event": "report", "report": report}),
            Ok(Err(e)) => json!({"event": "error", "error": crate::error::chain(&e)}),
            Err(e) => json!({"event": "error", "error": e.to_string()}),
        };
        let _ = out.send(last);
    });
    let stream = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        |v| Ok::<_, std::convert::Infallible>(format!("{v}\n")),
    );
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The experiment, checked against the agent's limits and this node, made ready.
fn check(
    s: &Shared,
    text: &str,
) -> crate::Result<(experiment::Experiment, Vec<experiment::Ready>)> {
    let exp = experiment::parse(text)?;
    if exp.duration > s.limits.max_duration {
        return Err(crate::Error::input(
            "duration",
            format!(
                "longer than this agent's limit of {:?} (chaos agent --max-duration)",
                s.limits.max_duration
            ),
        ));
    }
    if exp.faults.len() > s.limits.max_faults {
        return Err(crate::Error::input(
            "faults",
            format!(
                "{} faults, over this agent's limit of {} (chaos agent --max-faults)",
                exp.faults.len(),
                s.limits.max_faults
            ),
        ));
    }
    let ready = experiment::prepare(&exp, false, s.limits.allow_force)?;
    experiment::check_kernel(&ready)?;
    Ok((exp, ready))
}
