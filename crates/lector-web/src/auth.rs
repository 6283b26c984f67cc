//! Who is asking: staff sessions for pages, bearer tokens for the API, and the permission check
//! every handler makes before it touches data.

use crate::error::AppError;
use crate::i18n::Lang;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use lector_domain::role::Permission;
use lector_domain::Msg;
use lector_store::auth::User;
use lector_store::Actor;

pub const SESSION_COOKIE: &str = "lector_session";

/// Reads one cookie from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The client address as seen by this server, for the audit log.
pub fn origin(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "local".to_string())
}

/// A signed-in staff member using the HTML pages.
#[derive(Debug, Clone)]
pub struct Staff {
    pub user: User,
    /// The session's CSRF token; every form carries it and every POST is checked against it.
    pub csrf: String,
    pub lang: Lang,
    pub origin: String,
    /// Counts the page header shows (loaded for page views only, not for form posts).
    pub badges: Badges,
}

/// The counts beside the header links.
#[derive(Debug, Clone, Default)]
pub struct Badges {
    /// Unread notifications.
    pub unread: i64,
    /// Open follow-up tasks assigned to the user (0 without `TrackingView`).
    pub open_tasks: i64,
    /// The header's case count (see `pages::cases::badge_count`).
    pub open_cases: i64,
}

impl Badges {
    /// Loads the counts; a failure is logged and shows as zero rather than breaking the page.
    pub async fn load(state: &AppState, user: &User) -> Badges {
        let unread = state.store.unread_notifications(user.id).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "counting unread notifications failed");
            0
        });
        let open_tasks = if user.role.can(Permission::TrackingView) {
            let q = lector_store::tracking::TaskQuery {
                assignee: Some(user.username.clone()),
                status: Some(lector_domain::tracking::TaskStatus::Open),
                page: 1,
                per_page: 1,
                ..Default::default()
            };
            match state.store.tasks(&q).await {
                Ok(p) => p.total,
                Err(e) => {
                    tracing::warn!(error = %e, "counting open tasks failed");
                    0
                }
            }
        } else {
            0
        };
        let open_cases = crate::pages::cases::badge_count(state, user).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "counting cases failed");
            0
        });
        Badges { unread, open_tasks, open_cases }
    }
}

impl Staff {
    pub fn actor(&self) -> Actor {
        Actor::user(self.user.id, &self.user.username, &self.origin)
    }

    pub fn can(&self, p: Permission) -> bool {
        self.user.role.can(p)
    }

    pub fn require(&self, p: Permission) -> Result<(), PageError> {
        if self.can(p) {
            Ok(())
        } else {
            Err(PageError(AppError::Forbidden, self.lang))
        }
    }

    /// Checks the CSRF token a form sent.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), PageError> {
        if sent.is_some_and(|s| constant_time_eq(s.as_bytes(), self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(PageError(
                AppError::BadRequest(Msg::new(
                    "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试",
                    "the form has expired or did not come from Lector (CSRF check failed); reload the page and try again",
                )),
                self.lang,
            ))
        }
    }
}

/// Whether `user` may change a follow-up task's status: its assignee, its creator or an
/// administrator (on top of `TrackingView`).
pub fn may_change_task(user: &User, task: &lector_store::tracking::Task) -> bool {
    user.role == lector_domain::role::Role::Admin || task.assignee == user.username || task.created_by == user.username
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error on an HTML page, rendered in the user's language. A missing session redirects to
/// the sign-in page instead.
#[derive(Debug)]
pub struct PageError(pub AppError, pub Lang);

impl<E: Into<AppError>> From<(E, Lang)> for PageError {
    fn from((e, l): (E, Lang)) -> Self {
        PageError(e.into(), l)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        crate::pages::error_page(self.0, self.1)
    }
}

/// Rejection when there is no valid session: go and sign in, then come back.
pub struct SignInFirst(String);

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        let next = urlencode(&self.0);
        Redirect::to(&format!("/login?next={next}")).into_response()
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let lang = Lang::from_headers(&parts.headers);
        let back = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(SignInFirst(back).into_response());
        };
        match state.store.session_user(&token).await {
            Ok(Some((user, csrf))) => {
                let badges = if parts.method == axum::http::Method::GET { Badges::load(state, &user).await } else { Badges::default() };
                Ok(Staff { user, csrf, lang, origin: origin(&parts.extensions), badges })
            }
            Ok(None) => Err(SignInFirst(back).into_response()),
            Err(e) => Err(PageError(e.into(), lang).into_response()),
        }
    }
}

/// A program (or person) calling the REST API with `Authorization: Bearer lec_…`.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub user: User,
    pub origin: String,
}

impl ApiUser {
    pub fn actor(&self) -> Actor {
        Actor::user(self.user.id, &self.user.username, &self.origin)
    }

    pub fn require(&self, p: Permission) -> Result<(), AppError> {
        if self.user.role.can(p) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let Some(secret) = header.strip_prefix("Bearer ").map(str::trim).filter(|s| !s.is_empty()) else {
            return Err(AppError::Unauthorized);
        };
        match state.store.token_user(secret).await? {
            Some(user) => Ok(ApiUser { user, origin: origin(&parts.extensions) }),
            None => Err(AppError::Unauthorized),
        }
    }
}
