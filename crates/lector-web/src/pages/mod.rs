//! Server-rendered HTML pages.

use crate::error::AppError;
use crate::i18n::Lang;
use crate::AppState;
use axum::response::{Html, IntoResponse, Response};
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}

pub fn error_page(err: AppError, lang: Lang) -> Response {
    (err.status(), Html(lang.msg(&err.message()))).into_response()
}
