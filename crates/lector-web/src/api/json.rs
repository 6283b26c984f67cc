//! JSON request bodies whose every failure is a JSON error.

use crate::error::AppError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::Json;
use lector_domain::Msg;
use serde::de::DeserializeOwned;

/// A 400 whose message says what is wrong with the request.
pub fn bad_request(zh: impl Into<String>, en: impl Into<String>) -> AppError {
    AppError::BadRequest(Msg::new(zh, en))
}

/// Like `axum::Json`, but a body that is not JSON, not of the expected shape (including an
/// unknown field), of the wrong content type or over the size limit yields a JSON error:
/// 400 `bad_request` naming the problem, 415 `unsupported_media_type`, 413 `payload_too_large`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> ApiJson<T> {
    /// Deserialises `bytes` with the same error mapping as the extractor.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AppError> {
        Json::<T>::from_bytes(bytes).map(|Json(v)| ApiJson(v)).map_err(rejection)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state).await.map(|Json(v)| ApiJson(v)).map_err(rejection)
    }
}

/// Maps axum's JSON rejection to the API's errors, keeping serde's message (which names the
/// field and the position).
pub fn rejection(r: JsonRejection) -> AppError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return AppError::TooLarge;
    }
    match r {
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
        JsonRejection::JsonDataError(e) => {
            let text = e.body_text();
            let detail = text.strip_prefix("Failed to deserialize the JSON body into the target type: ").unwrap_or(&text);
            bad_request(format!("请求内容的字段不符合要求：{detail}"), format!("the JSON body does not have the expected fields: {detail}"))
        }
        JsonRejection::JsonSyntaxError(e) => {
            let text = e.body_text();
            let detail = text.strip_prefix("Failed to parse the request body as JSON: ").unwrap_or(&text);
            bad_request(format!("请求内容不是有效的 JSON：{detail}"), format!("the body is not valid JSON: {detail}"))
        }
        other => {
            let text = other.body_text();
            bad_request(format!("无法读取请求内容：{text}"), format!("could not read the request body: {text}"))
        }
    }
}
