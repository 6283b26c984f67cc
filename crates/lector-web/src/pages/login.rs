//! Signing in and out.

use super::{render, see_other, Ctx};
use crate::auth::{constant_time_eq, cookie, origin, Staff, SESSION_COOKIE};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lector_domain::Msg;
use lector_store::auth::{Login, LOCKOUT_MINUTES};
use rand::RngCore;
use serde::Deserialize;

/// Before a session exists, the sign-in form is protected by a double-submit cookie.
const LOGIN_CSRF_COOKIE: &str = "lector_login_csrf";

pub fn routes() -> axum::Router<AppState> {
    Router::new().route("/login", get(login_form).post(login)).route("/logout", post(logout))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    ctx: Ctx,
    error: Option<String>,
    username: String,
    next: String,
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

fn safe_next(next: Option<String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//")).unwrap_or_else(|| "/".into())
}

fn login_page(l: Lang, error: Option<String>, username: String, next: String, status: StatusCode) -> Response {
    let mut token = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut token);
    let token = hex::encode(token);
    let page = LoginPage { ctx: Ctx::anonymous(l, token.clone(), "/login"), error, username, next };
    (status, [(SET_COOKIE, format!("{LOGIN_CSRF_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict"))], render(&page)).into_response()
}

async fn login_form(headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let l = Lang::from_headers(&headers);
    login_page(l, None, String::new(), safe_next(q.next), StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

async fn login(State(state): State<AppState>, extensions: Extensions, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let l = Lang::from_headers(&headers);
    let next = safe_next(f.next);
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), f.csrf.as_bytes()) {
        let m = Msg::new("登录表单已过期，请重试", "the sign-in form expired; please try again");
        return login_page(l, Some(l.msg(&m)), f.username, next, StatusCode::BAD_REQUEST);
    }
    match state.store.login(&f.username, &f.password, &origin(&extensions)).await {
        Ok(Login::Ok(user)) => match state.store.create_session(user.id).await {
            Ok((token, _csrf)) => {
                let secure = if state.secure_cookies { "; Secure" } else { "" };
                (
                    StatusCode::SEE_OTHER,
                    [(LOCATION, next), (SET_COOKIE, format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax{secure}"))],
                )
                    .into_response()
            }
            Err(e) => super::error_page(e.into(), l),
        },
        Ok(Login::BadCredentials) => {
            let m = Msg::new("用户名或密码不正确", "wrong user name or password");
            login_page(l, Some(l.msg(&m)), f.username, next, StatusCode::UNAUTHORIZED)
        }
        Ok(Login::Locked { until }) => {
            let m = Msg::new(
                format!("登录失败次数过多，账号已锁定 {LOCKOUT_MINUTES} 分钟（至 {until} UTC）"),
                format!("too many failed attempts: the account is locked for {LOCKOUT_MINUTES} minutes (until {until} UTC)"),
            );
            login_page(l, Some(l.msg(&m)), f.username, next, StatusCode::TOO_MANY_REQUESTS)
        }
        Err(e) => super::error_page(AppError::from(e), l),
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

async fn logout(State(state): State<AppState>, staff: Staff, headers: HeaderMap, Form(f): Form<CsrfOnly>) -> Response {
    if let Err(e) = staff.check_csrf(f.csrf.as_deref()) {
        return e.into_response();
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = state.store.end_session(&token).await {
            return super::error_page(e.into(), staff.lang);
        }
    }
    let mut resp = see_other("/login");
    if let Ok(v) = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0").parse() {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    resp
}
