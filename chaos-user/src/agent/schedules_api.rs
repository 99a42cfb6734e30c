//! The API of the agent's schedules (`schedules`): `POST /v1/schedules` with an experiment
//! file's text (its `schedule:` block required), `GET /v1/schedules`,
//! `POST /v1/schedules/NAME/pause|resume`, `DELETE /v1/schedules/NAME`.

use super::api::{Shared, error};
use axum::{
    body::Body,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::Value;
use std::sync::Arc;

type St = State<Arc<Shared>>;

/// 200 (201 for `created`) with the value, or the error's status: 404 for a name not held,
/// 400 for the rest of what the caller can fix.
fn answer(r: crate::Result<Value>, created: bool) -> Response {
    match r {
        Ok(v) if created => (StatusCode::CREATED, axum::Json(v)).into_response(),
        Ok(v) => axum::Json(v).into_response(),
        Err(e @ crate::Error::NoTarget { .. }) => {
            error(StatusCode::NOT_FOUND, crate::error::chain(&e))
        }
        Err(e) if e.exit_code() == 2 => error(StatusCode::BAD_REQUEST, crate::error::chain(&e)),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, crate::error::chain(&e)),
    }
}

pub async fn add(State(s): St, body: Body) -> Response {
    match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => answer(s.schedules.add_saved(&String::from_utf8_lossy(&b)), true),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    }
}

pub async fn list(State(s): St) -> Response {
    axum::Json(s.schedules.list()).into_response()
}

pub async fn pause(State(s): St, Path(name): Path<String>) -> Response {
    answer(s.schedules.pause(&name, true), false)
}

pub async fn resume(State(s): St, Path(name): Path<String>) -> Response {
    answer(s.schedules.pause(&name, false), false)
}

pub async fn delete(State(s): St, Path(name): Path<String>) -> Response {
    // A run going on finishes first: off the async threads.
    let r = tokio::task::spawn_blocking(move || s.schedules.delete(&name)).await;
    match r {
        Ok(r) => answer(r, false),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
