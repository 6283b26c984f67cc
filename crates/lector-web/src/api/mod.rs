//! The REST API under `/api/v1`, described at `/api/openapi.json`.

use crate::AppState;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};

pub fn routes() -> Router<AppState> {
    Router::new()
}

pub async fn openapi_json() -> Response {
    Json(serde_json::json!({})).into_response()
}
