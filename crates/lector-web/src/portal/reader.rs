//! Signed-in readers on the portal: sign-in with a one-time code, "my page" (their cases and the
//! messages the library sent them) and their preferences (consent per purpose and channel, and
//! the language the library writes to them in).
//!
//! Sign-in: the reader gives their card number and an email or mobile the library has on file;
//! the page answers the same whatever matched, so it tells nobody who is a reader. The code goes
//! out as the `portal_code` triggered message. Requests and tries are limited per client address
//! here ([`CODE_REQUESTS_PER_ADDRESS`], [`CODE_TRIES_PER_ADDRESS`] per [`super::SUBMIT_WINDOW`]) and per
//! reader in the store. The session cookie `lector_reader` is HttpOnly and SameSite=Lax; every form
//! of a signed-in reader carries the session's CSRF token (derived from the session token).

use super::{csrf_ok, csrf_token, message_page, plain_status, private, too_many, with_status, PortalForm, PortalGuard};
use crate::auth::{constant_time_eq, cookie, origin, urlencode};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::pages::{error_page, local_time, render, see_other, Ctx};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use lector_domain::contact::ContactKind;
use lector_domain::messaging::{ChannelKind, ConsentSource, Purpose, Trigger};
use lector_domain::Msg;
use lector_store::cases::CaseQuery;
use lector_store::consent::ConsentChange;
use lector_store::portal_auth::{reader_actor, session_csrf, CodeCheck, CodeRequest, PortalReader, CODE_MINUTES, SESSION_HOURS};
use lector_store::triggers::TriggerOutcome;
use lector_store::StoreError;
use serde::Deserialize;
use std::sync::Arc;

/// The reader's session cookie.
pub const READER_COOKIE: &str = "lector_reader";
/// Sign-in codes one client address may ask for per [`super::SUBMIT_WINDOW`] (a campus shares few addresses).
pub const CODE_REQUESTS_PER_ADDRESS: usize = 20;
/// Codes one client address may try per [`super::SUBMIT_WINDOW`], whatever the card.
pub const CODE_TRIES_PER_ADDRESS: usize = 30;
/// Messages listed on "my page".
const MESSAGES_SHOWN: i64 = 50;
/// Cases listed on "my page".
const CASES_SHOWN: i64 = 100;

/// A signed-in reader.
pub struct ReaderSession {
    pub reader: PortalReader,
    /// Every form the reader posts carries this.
    pub csrf: String,
    token: String,
}

impl ReaderSession {
    pub fn csrf_ok(&self, sent: Option<&str>) -> bool {
        sent.is_some_and(|s| constant_time_eq(s.as_bytes(), self.csrf.as_bytes()))
    }
}

/// The reader signed in with this request's cookie, if any (a forged or expired cookie is no one).
pub async fn reader_session(state: &AppState, headers: &HeaderMap) -> Result<Option<ReaderSession>, AppError> {
    let Some(token) = cookie(headers, READER_COOKIE).filter(|t| !t.is_empty()) else { return Ok(None) };
    Ok(state.store.portal_session(&token).await?.map(|reader| ReaderSession { reader, csrf: session_csrf(&token), token }))
}

/// Off to the sign-in page, and back to `next` afterwards.
pub fn sign_in_first(next: &str) -> Response {
    private(see_other(&format!("/portal/login?next={}", urlencode(next))), None, false)
}

fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/portal") && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/portal/me".to_string(),
    }
}

fn session_cookie(token: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{READER_COOKIE}={token}; Path=/portal; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"))
        .expect("hex tokens make a valid header")
}

// ---------------------------------------------------------------------------------------------
// Sign-in

#[derive(Template)]
#[template(path = "portal_login.html")]
struct LoginPage {
    ctx: Ctx,
    /// `request` (card and contact) or `verify` (card and code).
    step: &'static str,
    /// Sign-in by code cannot work now (no channel set up).
    unavailable: bool,
    card_no: String,
    contact: String,
    next: String,
    notice: Option<String>,
    error: Option<String>,
    minutes: i64,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    card_no: Option<String>,
    contact: Option<String>,
    code: Option<String>,
    next: Option<String>,
    csrf: Option<String>,
}

#[derive(Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

struct LoginView<'a> {
    step: &'static str,
    form: &'a LoginForm,
    unavailable: bool,
    notice: Option<Msg>,
    error: Option<Msg>,
}

fn login_page(state: &AppState, l: Lang, headers: &HeaderMap, v: LoginView<'_>, status: StatusCode) -> Response {
    let (csrf, fresh) = csrf_token(headers);
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let page = LoginPage {
        ctx: Ctx::anonymous(l, csrf.clone(), "/portal/login"),
        step: v.step,
        unavailable: v.unavailable,
        card_no: s(&v.form.card_no),
        contact: s(&v.form.contact),
        next: safe_next(v.form.next.as_deref()),
        notice: v.notice.map(|m| l.msg(&m)),
        error: v.error.map(|m| l.msg(&m)),
        minutes: CODE_MINUTES,
    };
    private(with_status(status, render(&page)), Some((&csrf, fresh)), state.secure_cookies)
}

fn unavailable_msg() -> Msg {
    Msg::new(
        "验证码登录暂不可用：图书馆尚未开通发送验证码的渠道。请联系图书馆（到馆或致电）。",
        "Signing in with a code is not available: the library has not set up a way to send codes yet. Please contact or visit the library.",
    )
}

pub async fn login_form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<NextParam>) -> Response {
    let l = Lang::from_headers(&headers);
    match reader_session(&state, &headers).await {
        Ok(Some(_)) => return private(see_other(&safe_next(q.next.as_deref())), None, false),
        Ok(None) => {}
        Err(e) => return error_page(e, l),
    }
    let unavailable = match state.store.portal_sign_in_available().await {
        Ok(ok) => !ok,
        Err(e) => return error_page(e.into(), l),
    };
    let form = LoginForm { next: q.next, ..Default::default() };
    let notice = unavailable.then(unavailable_msg);
    login_page(&state, l, &headers, LoginView { step: "request", form: &form, unavailable, notice, error: None }, StatusCode::OK)
}

/// The code form on its own, for a reader who already has a code.
pub async fn verify_form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<NextParam>) -> Response {
    let l = Lang::from_headers(&headers);
    let form = LoginForm { next: q.next, ..Default::default() };
    login_page(
        &state,
        l,
        &headers,
        LoginView { step: "verify", form: &form, unavailable: false, notice: None, error: None },
        StatusCode::OK,
    )
}

fn expired_form() -> Msg {
    Msg::new("表单已过期，请重新提交。", "The form expired; please send it again.")
}

/// The reader asks for a code. Whatever matched, the answer is "if it matched, a code is on its way".
pub async fn request_code(
    State(state): State<AppState>,
    Extension(guard): Extension<Arc<PortalGuard>>,
    extensions: Extensions,
    headers: HeaderMap,
    PortalForm(f): PortalForm<LoginForm>,
) -> Response {
    let l = Lang::from_headers(&headers);
    let view = |error: Option<Msg>, unavailable: bool| LoginView { step: "request", form: &f, unavailable, notice: None, error };
    if !csrf_ok(&headers, f.csrf.as_deref()) {
        return login_page(&state, l, &headers, view(Some(expired_form()), false), StatusCode::BAD_REQUEST);
    }
    let ip = origin(&extensions);
    let key = format!("code:{ip}");
    if let Err(wait) = guard.check_limit(&key, CODE_REQUESTS_PER_ADDRESS) {
        return too_many(l, wait, Msg::new("请求过于频繁", "Too many requests"), |window, minutes| {
            Msg::new(
                format!("同一网络地址 {window} 分钟内最多获取 {CODE_REQUESTS_PER_ADDRESS} 次验证码。请约 {minutes} 分钟后再试。"),
                format!("At most {CODE_REQUESTS_PER_ADDRESS} codes per {window} minutes from one network address. Please try again in about {minutes} minute(s)."),
            )
        });
    }
    guard.record_submission(&key);
    match state.store.portal_sign_in_available().await {
        Ok(true) => {}
        Ok(false) => return login_page(&state, l, &headers, view(Some(unavailable_msg()), true), StatusCode::SERVICE_UNAVAILABLE),
        Err(e) => return error_page(e.into(), l),
    }
    let blank = |v: &Option<String>| v.as_deref().map(str::trim).is_none_or(str::is_empty);
    if blank(&f.card_no) || blank(&f.contact) {
        let m = Msg::new(
            "请填写读者证号，以及在图书馆登记的电子邮箱或手机号。",
            "Enter your card number and the email or mobile number the library has for you.",
        );
        return login_page(&state, l, &headers, view(Some(m), false), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let card = f.card_no.as_deref().unwrap_or_default();
    match state.store.request_portal_code(card, f.contact.as_deref().unwrap_or_default(), &ip).await {
        Ok(CodeRequest::Issued { reader_id, code_id, code }) => {
            let vars = serde_json::json!({ "code": code, "minutes": CODE_MINUTES });
            match state.store.enqueue_trigger(Trigger::PortalCode, Some(reader_id), None, vars, &format!("portal_code:{code_id}")).await {
                Ok(TriggerOutcome::Queued { .. } | TriggerOutcome::AlreadyQueued) => {}
                // Told apart from a mismatch in the log only, so the page reveals nothing.
                Ok(TriggerOutcome::Skipped(why)) => tracing::warn!(reader_id, reason = %why.en, "sign-in code not sent"),
                Err(e) => return error_page(e.into(), l),
            }
        }
        Ok(CodeRequest::NoMatch) => tracing::info!(%ip, "sign-in code asked for an unknown card or contact"),
        Ok(CodeRequest::TooMany) => tracing::info!(%ip, "sign-in code refused: too many for this reader"),
        Err(e) => return error_page(e.into(), l),
    }
    let sent = Msg::new(
        format!("如果读者证号与联系方式和图书馆的记录一致，我们已向您发送 6 位验证码，{CODE_MINUTES} 分钟内有效。几分钟内仍未收到，请重新获取或联系图书馆。"),
        format!("If the card number and contact match the library's records, we have sent you a 6-digit code, valid for {CODE_MINUTES} minutes. If nothing arrives within a few minutes, ask again or contact the library."),
    );
    login_page(
        &state,
        l,
        &headers,
        LoginView { step: "verify", form: &f, unavailable: false, notice: Some(sent), error: None },
        StatusCode::OK,
    )
}

/// The reader types the code: a session, or a clear reason why not.
pub async fn verify_code(
    State(state): State<AppState>,
    Extension(guard): Extension<Arc<PortalGuard>>,
    extensions: Extensions,
    headers: HeaderMap,
    PortalForm(f): PortalForm<LoginForm>,
) -> Response {
    let l = Lang::from_headers(&headers);
    let view = |error: Msg| LoginView { step: "verify", form: &f, unavailable: false, notice: None, error: Some(error) };
    if !csrf_ok(&headers, f.csrf.as_deref()) {
        return login_page(&state, l, &headers, view(expired_form()), StatusCode::BAD_REQUEST);
    }
    let ip = origin(&extensions);
    let key = format!("verify:{ip}");
    if let Err(wait) = guard.check_limit(&key, CODE_TRIES_PER_ADDRESS) {
        return too_many(l, wait, Msg::new("尝试过于频繁", "Too many tries"), |window, minutes| {
            Msg::new(
                format!("同一网络地址 {window} 分钟内最多尝试 {CODE_TRIES_PER_ADDRESS} 次验证码。请约 {minutes} 分钟后再试。"),
                format!("At most {CODE_TRIES_PER_ADDRESS} code tries per {window} minutes from one network address. Please try again in about {minutes} minute(s)."),
            )
        });
    }
    guard.record_submission(&key);
    let card = f.card_no.as_deref().unwrap_or_default();
    let code = f.code.as_deref().unwrap_or_default();
    let check = match state.store.verify_portal_code(card, code, &ip).await {
        Ok(c) => c,
        Err(e) => return error_page(e.into(), l),
    };
    match check {
        CodeCheck::SignedIn { token, .. } => {
            let mut r = private(see_other(&safe_next(f.next.as_deref())), None, false);
            r.headers_mut().append(SET_COOKIE, session_cookie(&token, SESSION_HOURS * 3600, state.secure_cookies));
            r
        }
        CodeCheck::Wrong { attempts_left } => {
            let m = Msg::new(
                format!("验证码不正确，还可尝试 {attempts_left} 次。"),
                format!("That code is not right; {attempts_left} tries left."),
            );
            login_page(&state, l, &headers, view(m), StatusCode::UNPROCESSABLE_ENTITY)
        }
        CodeCheck::Locked => {
            let m = Msg::new(
                "错误次数过多，这个验证码已失效。请重新获取验证码。",
                "Too many wrong tries: this code no longer works. Please ask for a new code.",
            );
            login_page(&state, l, &headers, view(m), StatusCode::TOO_MANY_REQUESTS)
        }
        CodeCheck::Expired => {
            let m = Msg::new(
                "验证码已过期或无效（有效期 10 分钟，只能使用一次）。请重新获取验证码。",
                "The code has expired or is not valid (a code works once, for 10 minutes). Please ask for a new code.",
            );
            login_page(&state, l, &headers, view(m), StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap, PortalForm(f): PortalForm<CsrfOnly>) -> Response {
    let l = Lang::from_headers(&headers);
    let session = match reader_session(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return private(see_other("/portal"), None, false),
        Err(e) => return error_page(e, l),
    };
    if !session.csrf_ok(f.csrf.as_deref()) {
        return error_page(AppError::BadRequest(expired_form()), l);
    }
    if let Err(e) = state.store.end_portal_session(&session.token).await {
        return error_page(e.into(), l);
    }
    let mut r = private(see_other("/portal"), None, false);
    r.headers_mut().append(SET_COOKIE, session_cookie("", 0, state.secure_cookies));
    r
}

// ---------------------------------------------------------------------------------------------
// My page

pub struct CaseRow {
    pub number: String,
    pub kind: String,
    pub status_code: &'static str,
    pub status: String,
    pub created: String,
    pub updated: String,
}

pub struct MessageRow {
    /// The campaign's name, or what the triggered message is about.
    pub what: String,
    pub channel: String,
    pub status_code: &'static str,
    pub status: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "portal_me.html")]
struct MePage {
    ctx: Ctx,
    name: String,
    card_no: String,
    cases: Vec<CaseRow>,
    messages: Vec<MessageRow>,
}

pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let l = Lang::from_headers(&headers);
    let session = match reader_session(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return sign_in_first("/portal/me"),
        Err(e) => return error_page(e, l),
    };
    let q = CaseQuery { reader_id: Some(session.reader.id), page: 1, per_page: CASES_SHOWN, ..Default::default() };
    let cases = match state.store.cases(&q).await {
        Ok(p) => p.items,
        Err(e) => return error_page(e.into(), l),
    };
    let messages = match state.store.reader_messages(session.reader.id, MESSAGES_SHOWN).await {
        Ok(m) => m,
        Err(e) => return error_page(e.into(), l),
    };
    let page = MePage {
        ctx: Ctx::anonymous(l, session.csrf.clone(), "/portal/me"),
        name: session.reader.name.clone(),
        card_no: session.reader.card_no.clone(),
        cases: cases
            .iter()
            .map(|c| {
                let (status_code, status) = plain_status(c.status);
                CaseRow {
                    number: c.number.clone(),
                    kind: l.msg(&c.kind.label()),
                    status_code,
                    status: l.msg(&status),
                    created: local_time(&c.created_at),
                    updated: local_time(&c.updated_at),
                }
            })
            .collect(),
        messages: messages
            .iter()
            .map(|m| MessageRow {
                what: match (&m.campaign_name, m.trigger) {
                    (Some(name), _) => name.clone(),
                    (None, Some(t)) => l.msg(&t.label()),
                    (None, None) => l.pick("消息", "Message").to_string(),
                },
                channel: l.msg(&m.channel_kind.label()),
                status_code: m.status.code(),
                status: l.msg(&m.status.label()),
                at: local_time(m.sent_at.as_deref().unwrap_or(&m.created_at)),
            })
            .collect(),
    };
    private(render(&page), None, false)
}

// ---------------------------------------------------------------------------------------------
// Preferences

pub struct PrefCell {
    /// `purpose.channel`, the checkbox's value.
    pub key: String,
    pub channel: String,
    pub granted: bool,
}

pub struct PrefRow {
    pub purpose: &'static str,
    pub label: String,
    pub blurb: String,
    pub cells: Vec<PrefCell>,
}

#[derive(Template)]
#[template(path = "portal_preferences.html")]
struct PrefsPage {
    ctx: Ctx,
    channels: Vec<String>,
    rows: Vec<PrefRow>,
    lang: String,
    /// The cells granted as shown (see [`posted_changes`]).
    was: String,
}

fn purpose_blurb(p: Purpose) -> Msg {
    match p {
        Purpose::Service => Msg::new("关于您的借阅、读者证和留言办理的通知", "About your loans, your card and your messages to us"),
        Purpose::News => Msg::new("讲座、展览、读书节等活动和新闻", "Talks, exhibitions, reading festivals and news"),
        Purpose::Survey => Msg::new("邀请您参与满意度调查和问卷", "Invitations to satisfaction surveys and questionnaires"),
    }
}

pub async fn preferences(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<FlashParam>) -> Response {
    let l = Lang::from_headers(&headers);
    let session = match reader_session(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return sign_in_first("/portal/preferences"),
        Err(e) => return error_page(e, l),
    };
    let (matrix, lang) = match (state.store.consent_matrix(session.reader.id).await, state.store.reader_lang(session.reader.id).await) {
        (Ok(m), Ok(lang)) => (m, lang),
        (Err(e), _) | (_, Err(e)) => return error_page(e.into(), l),
    };
    let rows = Purpose::ALL
        .iter()
        .map(|&p| PrefRow {
            purpose: p.code(),
            label: l.msg(&p.label()),
            blurb: l.msg(&purpose_blurb(p)),
            cells: ChannelKind::ALL
                .iter()
                .map(|&c| PrefCell { key: format!("{}.{}", p.code(), c.code()), channel: l.msg(&c.label()), granted: matrix.granted(p, c) })
                .collect(),
        })
        .collect();
    let mut ctx = Ctx::anonymous(l, session.csrf.clone(), "/portal/preferences");
    if q.flash.as_deref() == Some("saved") {
        ctx.flash = Some(l.pick("已保存您的设置", "Your preferences are saved").to_string());
    }
    let page =
        PrefsPage { ctx, channels: ChannelKind::ALL.iter().map(|c| l.msg(&c.label())).collect(), rows, lang, was: granted_keys(&matrix) };
    private(render(&page), None, false)
}

#[derive(Deserialize)]
pub struct FlashParam {
    flash: Option<String>,
}

/// The consent matrix form's changes: the cells whose box (`c=purpose.channel`) differs from
/// how the page showed it (`was`, the keys then granted, comma-separated), so that a change made
/// meanwhile elsewhere (an unsubscribe link) is not undone by saving an older page. Without
/// `was`, every cell is set as posted (a box not sent is a withdrawal).
pub fn posted_changes(pairs: &[(String, String)]) -> Vec<ConsentChange> {
    let checked: Vec<&str> = pairs.iter().filter(|(k, _)| k == "c").map(|(_, v)| v.as_str()).collect();
    let was: Option<Vec<&str>> = pairs.iter().find(|(k, _)| k == "was").map(|(_, v)| v.split(',').filter(|s| !s.is_empty()).collect());
    Purpose::ALL
        .iter()
        .flat_map(|&p| ChannelKind::ALL.iter().map(move |&c| (p, c)))
        .filter_map(|(purpose, channel)| {
            let key = format!("{}.{}", purpose.code(), channel.code());
            let granted = checked.contains(&key.as_str());
            match &was {
                Some(w) if w.contains(&key.as_str()) == granted => None,
                _ => Some(ConsentChange { purpose, channel, granted }),
            }
        })
        .collect()
}

/// The `was` field of a consent matrix form: the keys granted as the page shows them.
pub fn granted_keys(matrix: &lector_store::consent::ConsentMatrix) -> String {
    matrix.cells.iter().filter(|c| c.granted).map(|c| format!("{}.{}", c.purpose.code(), c.channel.code())).collect::<Vec<_>>().join(",")
}

/// Saves the matrix as changed on the page (see [`posted_changes`]) and the language.
pub async fn save_preferences(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    PortalForm(pairs): PortalForm<Vec<(String, String)>>,
) -> Response {
    let l = Lang::from_headers(&headers);
    let session = match reader_session(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return sign_in_first("/portal/preferences"),
        Err(e) => return error_page(e, l),
    };
    let value = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if !session.csrf_ok(value("csrf")) {
        return error_page(AppError::BadRequest(expired_form()), l);
    }
    let changes = posted_changes(&pairs);
    let lang = value("lang").filter(|v| !v.is_empty());
    let actor = reader_actor(session.reader.id, &origin(&extensions));
    match state.store.save_preferences(&actor, session.reader.id, &changes, ConsentSource::Portal, lang).await {
        Ok(_) => private(see_other("/portal/preferences?flash=saved"), None, false),
        Err(StoreError::Invalid(f)) => error_page(AppError::Invalid(f), l),
        Err(e) => error_page(e.into(), l),
    }
}

// ---------------------------------------------------------------------------------------------
// Filing a case while signed in

/// What the new-case form is prefilled with for a signed-in reader: their name and the first
/// email (else mobile) on file, primary ones first.
pub async fn contact_of(state: &AppState, reader_id: i64) -> Result<(String, String), AppError> {
    let r = state.store.reader(reader_id).await?;
    let pick = |kind: ContactKind| {
        let mut of_kind: Vec<_> = r.contacts.iter().filter(|c| c.kind == kind).collect();
        of_kind.sort_by_key(|c| !c.primary);
        of_kind.first().map(|c| c.value.clone())
    };
    Ok((r.name.clone(), pick(ContactKind::Email).or_else(|| pick(ContactKind::Mobile)).unwrap_or_default()))
}

/// A "not yours / no such case" answer that is the same for both.
pub fn case_not_found(l: Lang) -> Response {
    message_page(
        l,
        StatusCode::NOT_FOUND,
        Msg::new("找不到这件事项", "No such case"),
        Msg::new(
            "您的工单中没有这个编号。请从“我的服务”页面打开工单。",
            "None of your cases has this number. Open your cases from “My page”.",
        ),
    )
}
