//! One-click unsubscribe (退订): `GET /portal/unsubscribe/{token}` says what will stop and asks
//! to confirm; `POST` to the same address withdraws the consent (source `unsubscribe`).
//!
//! The POST is RFC 8058's one-click: mail clients send `List-Unsubscribe=One-Click` without
//! cookies, so there is no CSRF check — the signed token is the authority, and it can only
//! withdraw the one consent it names. The body is not required (clients differ in how they send
//! it). Withdrawing twice is a no-op. Pages are in both languages: the reader arrives from a
//! message, usually without a language cookie.

use super::{private, with_status};
use crate::auth::origin;
use crate::error::AppError;
use crate::i18n::Lang;
use crate::pages::{error_page, render, Ctx};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use lector_domain::messaging::{ChannelKind, ConsentSource, Purpose};
use lector_domain::Msg;
use lector_store::{Actor, StoreError};

#[derive(Template)]
#[template(path = "portal_unsubscribe.html")]
struct UnsubscribePage {
    ctx: Ctx,
    /// `confirm`, `already`, `done`, `invalid` (bad token) or `gone` (no such reader).
    state: &'static str,
    /// What stops, in each language.
    what: Msg,
    /// Why the link does not work (`invalid`).
    problem: Msg,
    action: String,
}

fn page(l: Lang, status: StatusCode, state: &'static str, what: Msg, problem: Msg, token: &str) -> Response {
    let page = UnsubscribePage {
        ctx: Ctx::anonymous(l, String::new(), "/portal"),
        state,
        what,
        problem,
        action: format!("/portal/unsubscribe/{token}"),
    };
    private(with_status(status, render(&page)), None, false)
}

fn what(purpose: Purpose, channel: ChannelKind) -> Msg {
    let (p, c) = (purpose.label(), channel.label());
    Msg::new(format!("通过“{}”发送的“{}”", c.zh, p.zh), format!("{} sent by {}", p.en, c.en))
}

/// The token's meaning, or the page that says why it has none.
async fn check(state: &AppState, l: Lang, token: &str) -> Result<(i64, Purpose, ChannelKind), Response> {
    match state.store.verify_unsubscribe_token(token).await {
        Ok(t) => Ok(t),
        Err(StoreError::Invalid(f)) => {
            let problem =
                f.0.first().map(|e| e.message.clone()).unwrap_or_else(|| Msg::new("退订链接无效", "the unsubscribe link is not valid"));
            Err(page(l, StatusCode::BAD_REQUEST, "invalid", Msg::new("", ""), problem, ""))
        }
        Err(e) => Err(error_page(e.into(), l)),
    }
}

fn gone(l: Lang) -> Response {
    page(l, StatusCode::NOT_FOUND, "gone", Msg::new("", ""), Msg::new("", ""), "")
}

pub async fn confirm(State(state): State<AppState>, headers: HeaderMap, Path(token): Path<String>) -> Response {
    let l = Lang::from_headers(&headers);
    let (reader_id, purpose, channel) = match check(&state, l, &token).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match state.store.consent_matrix(reader_id).await {
        Ok(m) if !m.granted(purpose, channel) => page(l, StatusCode::OK, "already", what(purpose, channel), Msg::new("", ""), &token),
        Ok(_) => page(l, StatusCode::OK, "confirm", what(purpose, channel), Msg::new("", ""), &token),
        Err(StoreError::NotFound) => gone(l),
        Err(e) => error_page(AppError::from(e), l),
    }
}

pub async fn unsubscribe(State(state): State<AppState>, extensions: Extensions, headers: HeaderMap, Path(token): Path<String>) -> Response {
    let l = Lang::from_headers(&headers);
    let (reader_id, purpose, channel) = match check(&state, l, &token).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let actor = Actor { user_id: None, name: "unsubscribe".into(), origin: origin(&extensions) };
    match state.store.set_consent(&actor, reader_id, purpose, channel, false, ConsentSource::Unsubscribe).await {
        Ok(_) => page(l, StatusCode::OK, "done", what(purpose, channel), Msg::new("", ""), &token),
        Err(StoreError::NotFound) => gone(l),
        Err(e) => error_page(AppError::from(e), l),
    }
}
