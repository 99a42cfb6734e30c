//! `chaos run --metrics-addr`: the experiment's metrics over HTTP for Prometheus, served on the
//! runtime while the run goes on (no token: bind it to loopback or a trusted network).

use axum::{Router, http::header, response::IntoResponse, routing::get};
use chaos::experiment::ExperimentMetrics;

/// Starts serving `/metrics` on `addr`; the metrics the runner updates. Errors: the address
/// cannot be bound (named by --metrics-addr, exit 2).
pub async fn serve(addr: std::net::SocketAddr) -> chaos::Result<ExperimentMetrics> {
    let metrics = ExperimentMetrics::new();
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        chaos::Error::input("--metrics-addr", format!("cannot listen on {addr}: {e}"))
    })?;
    let m = metrics.clone();
    let app = Router::new().route(
        "/metrics",
        get(move |headers: axum::http::HeaderMap| {
            let m = m.clone();
            async move {
                let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
                let (kind, body) = chaos::exposition::negotiate(accept, m.encode());
                ([(header::CONTENT_TYPE, kind)], body).into_response()
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("metrics server: {e}");
        }
    });
    Ok(metrics)
}
