//! API: consent. CONTRACT STUB — filled in by its helper.

use crate::AppState;
use axum::Router;
use utoipa::OpenApi;

pub fn routes() -> Router<AppState> {
    Router::new()
}

/// This module's part of the OpenAPI document (merged into [`super::ApiDoc`]).
#[derive(OpenApi)]
#[openapi()]
pub struct Doc;
