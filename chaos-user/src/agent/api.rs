//! The agent's HTTP API (JSON, versioned under /v1) and its bearer-token check: every request
//! but the health checks needs `Authorization: Bearer TOKEN`; one without gets 401 and changes
//! nothing. Every request is logged as one JSON line (method, path, status, whether it was
//! authenticated, the client's address), never with the token.

use super::{
    metrics::Metrics,
    registry::{Cmd, FaultInfo},
};
use crate::experiment::FaultRequest;
use axum::{
    Router,
    body::Body,
    extract::{Path, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

pub struct Shared {
    pub tx: Mutex<mpsc::Sender<Cmd>>,
    pub token: String,
    pub metrics: Metrics,
    /// For experiments, which the fault thread does not hold (`experiments`).
    pub limits: super::Limits,
    pub schedules: Arc<super::schedules::Schedules>,
}

type St = State<Arc<Shared>>;

/// The client's address, for the request log (over TCP or TLS alike).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, super::tls::TlsListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, super::tls::TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    let v1 = Router::new()
        .route("/v1/faults", get(list).post(start).delete(stop_all))
        .route("/v1/faults/{id}", get(one).delete(stop_one))
        .route("/v1/experiments", post(super::experiments::run))
        .route(
            "/v1/schedules",
            get(super::schedules_api::list).post(super::schedules_api::add),
        )
        .route("/v1/schedules/{name}", delete(super::schedules_api::delete))
        .route(
            "/v1/schedules/{name}/pause",
            post(super::schedules_api::pause),
        )
        .route(
            "/v1/schedules/{name}/resume",
            post(super::schedules_api::resume),
        )
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .merge(v1)
        .layer(middleware::from_fn_with_state(shared.clone(), log))
        .with_state(shared)
}

/// Equal tokens compare in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(s): St, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if same(t.trim().as_bytes(), s.token.as_bytes()) => next.run(req).await,
        _ => error(
            StatusCode::UNAUTHORIZED,
            "give the agent's token: Authorization: Bearer TOKEN (chaos --agent ... --token-file F)",
        ),
    }
}

async fn log(State(s): St, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    let authenticated = req.headers().contains_key(header::AUTHORIZATION);
    // Who: the client's address (one token is shared; mTLS names the client at the handshake).
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<Peer>>()
        .map(|c| c.0.0.to_string());
    let resp = next.run(req).await;
    let code = resp.status().as_u16();
    s.metrics.request(code);
    let line = serde_json::json!({
        "event": "request", "peer": peer, "method": method, "path": path, "status": code,
        "authorization_given": authenticated,
    });
    eprintln!("{line}");
    resp
}

pub fn error(code: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    (code, axum::Json(body)).into_response()
}

/// Sends a command to the fault thread and waits for its answer.
async fn ask<T>(s: &Shared, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T, Response> {
    let (tx, rx) = oneshot::channel();
    let sent =
        s.tx.lock()
            .map(|t| t.send(make(tx)).is_ok())
            .unwrap_or(false);
    match (sent, rx.await) {
        (true, Ok(v)) => Ok(v),
        _ => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is stopping",
        )),
    }
}

async fn list(State(s): St) -> Response {
    match ask(&s, Cmd::List).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => r,
    }
}

async fn one(State(s): St, Path(id): Path<String>) -> Response {
    match ask(&s, Cmd::List).await {
        Ok(v) => match v.into_iter().find(|f| f.id == id) {
            Some(f) => axum::Json(f).into_response(),
            None => error(
                StatusCode::NOT_FOUND,
                format!("no fault {id} on this agent"),
            ),
        },
        Err(r) => r,
    }
}

async fn stop_one(State(s): St, Path(id): Path<String>) -> Response {
    match ask(&s, |tx| Cmd::Stop(Some(id.clone()), tx)).await {
        Ok(v) => match v.into_iter().next() {
            Some(f) => axum::Json(f).into_response(),
            None => error(StatusCode::NOT_FOUND, format!("no active fault {id}")),
        },
        Err(r) => r,
    }
}

async fn stop_all(State(s): St) -> Response {
    match ask(&s, |tx| Cmd::Stop(None, tx)).await {
        Ok(v) => axum::Json::<Vec<FaultInfo>>(v).into_response(),
        Err(r) => r,
    }
}

async fn start(State(s): St, body: Body) -> Response {
    let bytes = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    };
    let req: FaultRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "{e}; send {{\"target\": {{...}}, \"duration\": \"30s\", \"net\"|\"syscall\"|\"kill\": {{...}}}}"
                ),
            );
        }
    };
    match ask(&s, |tx| Cmd::Start(Box::new(req), tx)).await {
        Ok(Ok(info)) => (StatusCode::CREATED, axum::Json(info)).into_response(),
        Ok(Err(e)) => {
            let code = match e.exit_code() {
                // Nothing to do on this node: `chaos run --agents` tells it from a bad request.
                _ if matches!(e, crate::Error::NoTarget { .. }) => StatusCode::NOT_FOUND,
                2 => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            error(code, crate::error::chain(&e))
        }
        Err(r) => r,
    }
}

/// OpenMetrics or the classic text format, as the scraper asks (`crate::exposition::negotiate`).
async fn metrics(State(s): St, headers: axum::http::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    // The agent's own families, then its schedules' (one exposition, one # EOF).
    let own = s.metrics.encode();
    let open = format!(
        "{}{}",
        own.strip_suffix("# EOF\n").unwrap_or(&own),
        s.schedules.metrics.encode()
    );
    let (kind, body) = crate::exposition::negotiate(accept, open);
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_whole() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"abcd"));
        assert!(!super::same(b"", b"a"));
    }
}
