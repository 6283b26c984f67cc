//! The error policy: every failure a user can cause maps to a status, a stable code and a
//! message in both languages; internal failures are logged and shown as a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lector_domain::{FieldErrors, Msg};
use lector_store::StoreError;
use serde_json::json;

#[derive(Debug)]
pub enum AppError {
    /// 401: no or invalid credentials.
    Unauthorized,
    /// 403: signed in, but the role does not allow it. Says nothing about the record.
    Forbidden,
    NotFound,
    /// 409: duplicate key or stale version.
    Conflict(Msg),
    /// 422: the input is wrong; each problem names its field.
    Invalid(FieldErrors),
    /// 400: the request itself is malformed (bad JSON, unknown field, bad CSRF token).
    BadRequest(Msg),
    /// 413
    TooLarge,
    /// 415: a body that is not declared as JSON.
    UnsupportedMediaType,
    /// 429: too many attempts (locked sign-in).
    TooMany(Msg),
    /// 500: logged with its cause; the user sees a generic message.
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Conflict(m) => AppError::Conflict(m),
            StoreError::Invalid(f) => AppError::Invalid(f),
            e => AppError::Internal(e.to_string()),
        }
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients can rely on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthorized => "unauthorized",
            AppError::Forbidden => "forbidden",
            AppError::NotFound => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::Invalid(_) => "invalid_input",
            AppError::BadRequest(_) => "bad_request",
            AppError::TooLarge => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::TooMany(_) => "too_many_attempts",
            AppError::Internal(_) => "internal",
        }
    }

    pub fn message(&self) -> Msg {
        match self {
            AppError::Unauthorized => Msg::new("请先登录或提供有效的访问令牌", "sign in or provide a valid bearer token"),
            AppError::Forbidden => Msg::new("你的角色无权执行此操作", "your role does not allow this"),
            AppError::NotFound => Msg::new("找不到该页面或记录", "no such page or record"),
            AppError::Conflict(m) | AppError::BadRequest(m) | AppError::TooMany(m) => m.clone(),
            AppError::Invalid(f) => Msg::new(format!("有 {} 处输入需要修改", f.0.len()), format!("{} field(s) need correcting", f.0.len())),
            AppError::TooLarge => Msg::new("请求内容过大（上限 1 MiB）", "the request body is too large (limit 1 MiB)"),
            AppError::UnsupportedMediaType => Msg::new(
                "请以 JSON 格式发送请求内容，并设置 Content-Type: application/json",
                "send the body as JSON with the header Content-Type: application/json",
            ),
            AppError::Internal(_) => Msg::new("服务器内部错误，已记录，请稍后再试", "internal error; it has been logged, try again later"),
        }
    }

    fn log(&self) {
        if let AppError::Internal(cause) = self {
            tracing::error!(%cause, "internal error");
        }
    }
}

/// API errors are JSON: `{"error": {"code", "message", "message_zh", "fields": [...]}}`.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let msg = self.message();
        let fields: Vec<_> = match &self {
            AppError::Invalid(f) => {
                f.0.iter().map(|e| json!({"field": e.field, "message": e.message.en, "message_zh": e.message.zh})).collect()
            }
            _ => Vec::new(),
        };
        let body = json!({"error": {"code": self.code(), "message": msg.en, "message_zh": msg.zh, "fields": fields}});
        (self.status(), Json(body)).into_response()
    }
}
