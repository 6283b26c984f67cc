//! Pages: segments. CONTRACT STUB — filled in by its helper.

use crate::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}
