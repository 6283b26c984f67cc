//! The readers' self-service portal under `/portal` (读者服务): no staff session, no account.
//!
//! A reader files a suggestion, complaint, inquiry, purchase request or praise and gets a
//! tracking link (`/portal/track/{token}`, shown once: the token is a secret the store keeps
//! only as a hash) to follow the case, answer a question the library asks about it, read the
//! library's reply and rate it.
//!
//! The public forms are protected by a double-submit CSRF cookie (like the sign-in form), a
//! hidden random idempotency key (a double submit files one case, or records one answer), and
//! an in-memory limit of [`SUBMIT_LIMIT`] new cases, and separately as many answers, per client
//! address per [`SUBMIT_WINDOW`]. The address is the TCP peer (`ConnectInfo`); without one
//! (in-process tests) every request counts as `local`. Forwarded-for headers are not trusted:
//! behind a reverse proxy all readers share its address.
//!
//! Readers with a library card can also sign in (`/portal/login`, a one-time code; see
//! [`reader`]): they see their own cases (`/portal/cases/{number}`, the tracking page's view with
//! the same answer and rating forms; someone else's case is a 404), the messages the library
//! sent them, and set their consent per purpose and channel (`/portal/preferences`). A case filed
//! while signed in is filed under their card. Messages carry one-click unsubscribe links
//! (`/portal/unsubscribe/{token}`, see [`unsubscribe`]).

mod guard;
pub mod reader;
mod unsubscribe;

pub use guard::{PortalGuard, SUBMIT_LIMIT, SUBMIT_WINDOW};
use reader::{case_not_found, reader_session, sign_in_first, ReaderSession};

use crate::auth::{constant_time_eq, cookie, origin};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::pages::{error_page, render, see_other, Ctx};
use crate::AppState;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, HOST, REFERRER_POLICY, SET_COOKIE};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use lector_domain::case::{CaseAction, CaseDraft, CaseKind, CaseStatus, RatingDraft, MAX_QUESTION};
use lector_domain::{FieldErrors, Msg};
use lector_store::cases::{Case, CaseEvent, CaseSource, READER_ACTOR};
use lector_store::{Actor, StoreError};
use rand::RngCore;
use serde::Deserialize;
use std::sync::Arc;

/// The portal forms' double-submit CSRF cookie (there is no session to hold the token).
const CSRF_COOKIE: &str = "lector_portal_csrf";

/// Longest accepted texts, in characters (the domain checks its own limits as well).
const MAX_SUBJECT: usize = 200;
const MAX_BODY: usize = 4000;
const MAX_SHORT: usize = 100;
const MAX_COMMENT: usize = 2000;

/// Portal routes; they need a [`PortalGuard`] extension (see [`crate::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/", get(home))
        .route("/portal/new", get(new_form).post(submit))
        .route("/portal/track/{token}", get(track))
        .route("/portal/track/{token}/rate", post(rate))
        .route("/portal/track/{token}/reply", post(reply))
        .route("/portal/login", get(reader::login_form).post(reader::request_code))
        .route("/portal/login/verify", get(reader::verify_form).post(reader::verify_code))
        .route("/portal/logout", post(reader::logout))
        .route("/portal/me", get(reader::me))
        .route("/portal/preferences", get(reader::preferences).post(reader::save_preferences))
        .route("/portal/cases/{number}", get(own_case))
        .route("/portal/cases/{number}/rate", post(rate_own))
        .route("/portal/cases/{number}/reply", post(reply_own))
        .route("/portal/unsubscribe/{token}", get(unsubscribe::confirm).post(unsubscribe::unsubscribe))
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// The CSRF token of this browser: the cookie's when it has one, else a fresh one to set.
fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, CSRF_COOKIE).filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit())) {
        Some(c) => (c, false),
        None => (random_hex(16), true),
    }
}

fn csrf_ok(headers: &HeaderMap, sent: Option<&str>) -> bool {
    let expected = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    !expected.is_empty() && sent.is_some_and(|s| constant_time_eq(s.as_bytes(), expected.as_bytes()))
}

/// Portal answers are private to the reader: never cached, never leaking the tracking link as a referrer.
fn private(mut r: Response, set_csrf: Option<(&str, bool)>, secure: bool) -> Response {
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Some((token, true)) = set_csrf {
        let secure = if secure { "; Secure" } else { "" };
        if let Ok(v) = format!("{CSRF_COOKIE}={token}; Path=/portal; HttpOnly; SameSite=Strict{secure}").parse() {
            h.append(SET_COOKIE, v);
        }
    }
    r
}

fn with_status(status: StatusCode, r: Response) -> Response {
    (status, r).into_response()
}

// ---------------------------------------------------------------------------------------------
// Pages

/// A kind of case as the portal offers it.
pub struct KindOpt {
    pub code: &'static str,
    pub label: String,
    pub blurb: String,
    pub selected: bool,
}

fn kinds(l: Lang, selected: &str) -> Vec<KindOpt> {
    CaseKind::ALL
        .iter()
        .map(|k| {
            let blurb = match k {
                CaseKind::Suggestion => Msg::new("对图书馆的服务、馆藏或环境有好的想法", "an idea for our services, collections or spaces"),
                CaseKind::Complaint => Msg::new("对服务不满意，希望我们改进", "something went wrong and you want us to put it right"),
                CaseKind::Inquiry => {
                    Msg::new("想了解借阅、开放时间、数据库使用等问题", "a question about borrowing, opening hours, databases…")
                }
                CaseKind::Purchase => Msg::new("推荐图书馆购买图书或数据库", "ask the library to buy a book or a database"),
                CaseKind::Praise => Msg::new("表扬让您满意的馆员或服务", "praise a librarian or a service that helped you"),
            };
            KindOpt { code: k.code(), label: l.msg(&k.label()), blurb: l.msg(&blurb), selected: k.code() == selected }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "portal_home.html")]
struct HomePage {
    ctx: Ctx,
    kinds: Vec<KindOpt>,
}

async fn home(headers: HeaderMap) -> Response {
    let l = Lang::from_headers(&headers);
    let page = HomePage { ctx: Ctx::anonymous(l, String::new(), "/portal"), kinds: kinds(l, "") };
    private(render(&page), None, false)
}

/// What the reader typed, kept when the form comes back with errors.
#[derive(Debug, Default, Deserialize)]
pub struct SubmitForm {
    kind: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    card_no: Option<String>,
    contact_name: Option<String>,
    contact: Option<String>,
    key: Option<String>,
    csrf: Option<String>,
}

#[derive(Template)]
#[template(path = "portal_new.html")]
struct NewPage {
    ctx: Ctx,
    kinds: Vec<KindOpt>,
    subject: String,
    body: String,
    card_no: String,
    contact_name: String,
    contact: String,
    key: String,
    errors: FieldErrors,
    /// Problems not tied to one field (or the whole form).
    general: Option<String>,
    max_subject: usize,
    max_body: usize,
    /// The signed-in reader's card: the case is filed under it.
    signed_in: Option<String>,
}

impl NewPage {
    fn err(&self, field: &str) -> Option<String> {
        self.errors.get(field).map(|m| self.ctx.l.msg(m))
    }

    /// Errors about fields the form does not show.
    fn other_errors(&self) -> Vec<String> {
        const SHOWN: [&str; 6] = ["kind", "subject", "body", "card_no", "contact_name", "contact"];
        self.errors
            .0
            .iter()
            .filter(|e| !SHOWN.contains(&e.field.as_str()))
            .map(|e| format!("{}: {}", e.field, self.ctx.l.msg(&e.message)))
            .collect()
    }
}

#[derive(Deserialize)]
struct NewParams {
    kind: Option<String>,
}

fn valid_key(k: &str) -> bool {
    (16..=64).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[allow(clippy::too_many_arguments)]
fn new_page(
    l: Lang,
    headers: &HeaderMap,
    f: &SubmitForm,
    errors: FieldErrors,
    general: Option<String>,
    status: StatusCode,
    secure: bool,
    signed_in: Option<&str>,
) -> Response {
    let (csrf, fresh) = csrf_token(headers);
    let key = f.key.clone().filter(|k| valid_key(k)).unwrap_or_else(|| random_hex(16));
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let page = NewPage {
        ctx: Ctx::anonymous(l, csrf.clone(), "/portal/new"),
        kinds: kinds(l, f.kind.as_deref().unwrap_or("")),
        subject: s(&f.subject),
        body: s(&f.body),
        card_no: s(&f.card_no),
        contact_name: s(&f.contact_name),
        contact: s(&f.contact),
        key,
        errors,
        general,
        max_subject: MAX_SUBJECT,
        max_body: MAX_BODY,
        signed_in: signed_in.map(str::to_string),
    };
    private(with_status(status, render(&page)), Some((&csrf, fresh)), secure)
}

async fn new_form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<NewParams>) -> Response {
    let l = Lang::from_headers(&headers);
    let kind = q.kind.filter(|k| CaseKind::ALL.iter().any(|c| c.code() == k));
    let mut f = SubmitForm { kind, ..Default::default() };
    let session = match reader_session(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return error_page(e, l),
    };
    if let Some(s) = &session {
        match reader::contact_of(&state, s.reader.id).await {
            Ok((name, contact)) => {
                f.contact_name = Some(name);
                f.contact = Some(contact);
            }
            Err(e) => return error_page(e, l),
        }
    }
    let card = session.as_ref().map(|s| s.reader.card_no.as_str());
    new_page(l, &headers, &f, FieldErrors::default(), None, StatusCode::OK, state.secure_cookies, card)
}

#[derive(Template)]
#[template(path = "portal_message.html")]
struct MessagePage {
    ctx: Ctx,
    title: String,
    message: String,
}

/// A calm page with one message (invalid link, too many submissions, expired form…).
fn message_page(l: Lang, status: StatusCode, title: Msg, message: Msg) -> Response {
    let page = MessagePage { ctx: Ctx::anonymous(l, String::new(), "/portal"), title: l.msg(&title), message: l.msg(&message) };
    private(with_status(status, render(&page)), None, false)
}

/// 429 for a client over its quota: `text(window, minutes)` says how much the window of
/// `window` minutes allows and when to come back (`wait` rounded up to whole minutes).
fn too_many(l: Lang, wait: std::time::Duration, title: Msg, text: impl FnOnce(u64, u64) -> Msg) -> Response {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    message_page(l, StatusCode::TOO_MANY_REQUESTS, title, text(SUBMIT_WINDOW.as_secs() / 60, minutes))
}

/// A posted portal form. One that cannot be read is answered by the portal's own page saying why
/// (see [`form_rejection`]), in the reader's language, so no handler has to match on it.
pub struct PortalForm<T>(pub T);

impl<S, T> FromRequest<S> for PortalForm<T>
where
    S: Send + Sync,
    Form<T>: FromRequest<S, Rejection = FormRejection>,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let l = Lang::from_headers(req.headers());
        Form::<T>::from_request(req, state).await.map(|Form(f)| PortalForm(f)).map_err(|r| form_rejection(l, r))
    }
}

fn form_rejection(l: Lang, rejection: FormRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        message_page(
            l,
            StatusCode::PAYLOAD_TOO_LARGE,
            Msg::new("内容过长", "Too long"),
            Msg::new("提交的内容过长，请精简后再试。", "What you sent is too long; please shorten it and try again."),
        )
    } else {
        message_page(
            l,
            StatusCode::BAD_REQUEST,
            Msg::new("无法读取表单", "The form could not be read"),
            Msg::new("请返回表单页面重新填写并提交。", "Please go back to the form, fill it in again and send it."),
        )
    }
}

fn too_long(errors: &mut FieldErrors, field: &str, value: &Option<String>, max: usize) {
    if value.as_deref().is_some_and(|v| v.chars().count() > max) {
        errors.push(field, Msg::new(format!("内容过长，最多 {max} 个字"), format!("too long: at most {max} characters")));
    }
}

fn blank(v: &Option<String>) -> bool {
    v.as_deref().map(str::trim).is_none_or(str::is_empty)
}

#[derive(Template)]
#[template(path = "portal_received.html")]
struct ReceivedPage {
    ctx: Ctx,
    number: String,
    kind: String,
    /// The tracking path and its absolute URL; `None` on a repeat once the link was shown.
    link: Option<(String, String)>,
    /// Filed by a signed-in reader: the case is also on their page.
    own: bool,
}

fn absolute(headers: &HeaderMap, secure: bool, path: &str) -> String {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok()).filter(|h| h.bytes().all(|b| b.is_ascii_graphic()));
    match host {
        Some(h) => format!("{}://{h}{path}", if secure { "https" } else { "http" }),
        None => path.to_string(),
    }
}

async fn submit(
    State(state): State<AppState>,
    Extension(guard): Extension<Arc<PortalGuard>>,
    extensions: Extensions,
    headers: HeaderMap,
    PortalForm(mut f): PortalForm<SubmitForm>,
) -> Response {
    let l = Lang::from_headers(&headers);
    let secure = state.secure_cookies;
    // A signed-in reader files under their own card, whatever the form says.
    let session = match reader_session(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return error_page(e, l),
    };
    if let Some(s) = &session {
        f.card_no = Some(s.reader.card_no.clone());
    }
    let card = session.as_ref().map(|s| s.reader.card_no.as_str());
    if !csrf_ok(&headers, f.csrf.as_deref()) {
        let m = Msg::new(
            "表单已过期或来源不明，请检查内容后重新提交。",
            "The form expired or did not come from this site; check what you wrote and send it again.",
        );
        return new_page(l, &headers, &f, FieldErrors::default(), Some(l.msg(&m)), StatusCode::BAD_REQUEST, secure, card);
    }
    let client = origin(&extensions);
    if let Err(wait) = guard.check(&client) {
        return too_many(l, wait, Msg::new("提交过于频繁", "Too many submissions"), |window, minutes| {
            Msg::new(
                format!("同一网络地址 {window} 分钟内最多提交 {SUBMIT_LIMIT} 件。请约 {minutes} 分钟后再试，或直接致电、到馆联系我们。"),
                format!(
                    "At most {SUBMIT_LIMIT} submissions per {window} minutes from one network address. Please try again in about {minutes} minute(s), or call or visit us."
                ),
            )
        });
    }

    let mut errors = FieldErrors::default();
    too_long(&mut errors, "subject", &f.subject, MAX_SUBJECT);
    too_long(&mut errors, "body", &f.body, MAX_BODY);
    too_long(&mut errors, "card_no", &f.card_no, MAX_SHORT);
    too_long(&mut errors, "contact_name", &f.contact_name, MAX_SHORT);
    too_long(&mut errors, "contact", &f.contact, MAX_SHORT * 2);
    if !errors.is_empty() {
        return new_page(l, &headers, &f, errors, None, StatusCode::UNPROCESSABLE_ENTITY, secure, card);
    }
    let opt = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let draft = CaseDraft {
        kind: f.kind.clone().unwrap_or_default(),
        subject: f.subject.clone().unwrap_or_default(),
        body: f.body.clone().unwrap_or_default(),
        card_no: opt(&f.card_no),
        contact_name: opt(&f.contact_name),
        contact: opt(&f.contact),
    };
    let input = match draft.parse(true) {
        Ok(input) => {
            // The portal's own rule, whatever the domain checks: a name and a way to reply.
            if blank(&f.contact_name) || input.contact_name.is_none() {
                errors.push("contact_name", Msg::new("请填写您的姓名", "please give your name"));
            }
            if blank(&f.contact) || input.contact.is_none() {
                errors.push(
                    "contact",
                    Msg::new("请填写电子邮箱或手机号，以便我们答复", "please give an email or a mobile number so we can reply"),
                );
            }
            if !errors.is_empty() {
                return new_page(l, &headers, &f, errors, None, StatusCode::UNPROCESSABLE_ENTITY, secure, card);
            }
            input
        }
        Err(errors) => return new_page(l, &headers, &f, errors, None, StatusCode::UNPROCESSABLE_ENTITY, secure, card),
    };
    let key = f.key.clone().filter(|k| valid_key(k));
    let store_key = key.as_ref().map(|k| format!("portal:{k}"));
    let (case, token): (Case, Option<String>) = match state
        .store
        .create_case(&card.map_or_else(|| Actor::system("portal"), Actor::reader), &input, CaseSource::Portal, store_key.as_deref())
        .await
    {
        Ok(r) => r,
        Err(StoreError::Invalid(errors)) => return new_page(l, &headers, &f, errors, None, StatusCode::UNPROCESSABLE_ENTITY, secure, card),
        Err(e) => return error_page(e.into(), l),
    };
    let token = match (token, &key) {
        (Some(t), Some(k)) => {
            guard.record(&client, k, &case.number, &t);
            Some(t)
        }
        (Some(t), None) => {
            guard.record_submission(&client);
            Some(t)
        }
        // The same form sent again: the link shown the first time, if this server still holds it.
        (None, Some(k)) => guard.recent(k, &case.number),
        (None, None) => None,
    };
    let link = token.map(|t| {
        let path = format!("/portal/track/{t}");
        let abs = absolute(&headers, secure, &path);
        (path, abs)
    });
    let page = ReceivedPage {
        ctx: Ctx::anonymous(l, String::new(), "/portal"),
        number: case.number.clone(),
        kind: l.msg(&case.kind.label()),
        link,
        own: session.is_some(),
    };
    private(render(&page), None, secure)
}

// ---------------------------------------------------------------------------------------------
// Tracking

/// One step of the public history.
pub struct Step {
    pub at: String,
    pub code: &'static str,
    pub label: String,
    /// Only the library's reply to the reader; internal comments are never shown.
    pub text: Option<String>,
}

/// The status in words a reader understands.
fn plain_status(status: CaseStatus) -> (&'static str, Msg) {
    match status {
        CaseStatus::Received => ("received", Msg::new("已收到，等待受理", "Received; waiting to be looked at")),
        CaseStatus::Triaged | CaseStatus::Assigned | CaseStatus::AwaitingApproval | CaseStatus::InProgress => {
            ("in_progress", Msg::new("处理中", "In progress"))
        }
        CaseStatus::AwaitingReader => ("awaiting_reader", Msg::new("需要您补充信息", "We need more information from you")),
        CaseStatus::Resolved => ("resolved", Msg::new("已答复", "Answered")),
        CaseStatus::Closed => ("closed", Msg::new("已办结", "Closed")),
    }
}

/// The reader's view of the history: received, in progress (once per stretch of internal work),
/// a question for the reader and the reader's answer, answered with the reply, reopened, rated,
/// closed. Staff comments (including why a question was withdrawn) are never shown.
fn public_steps(l: Lang, case: &Case, events: &[CaseEvent]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let last_resolve = events.iter().rposition(|e| e.action == "resolve");
    for (i, e) in events.iter().enumerate() {
        let at = crate::pages::local_time(&e.at);
        let (code, label, text) = match e.action.as_str() {
            "create" => ("received", Msg::new("已收到您的来信", "We received your message"), None),
            "triage" if e.to == CaseStatus::Closed => (
                "closed",
                Msg::new("经审核，不予单独处理（重复或不属受理范围）", "Not taken up separately (a duplicate, or outside what we handle)"),
                None,
            ),
            "triage" | "assign" | "claim" | "propose" | "approve" | "reject_proposal" => {
                if steps.last().is_some_and(|s| s.code == "in_progress") {
                    continue;
                }
                ("in_progress", Msg::new("已受理，正在处理", "Accepted; we are working on it"), None)
            }
            "resolve" => {
                let reply = if Some(i) == last_resolve { case.reply.clone() } else { None };
                ("resolved", Msg::new("图书馆已答复", "The library replied"), reply)
            }
            "reopen" => ("in_progress", Msg::new("重新处理中", "Reopened; we are working on it again"), None),
            "request_info" => ("question", Msg::new("图书馆请您补充信息", "The library asked you for more information"), e.comment.clone()),
            "reader_reply" => ("answered", Msg::new("您已补充信息", "You answered"), e.comment.clone()),
            "withdraw_question" => ("in_progress", Msg::new("无需再补充，继续处理", "No answer needed any more; we carry on"), None),
            "rate" => ("rated", Msg::new("您已评价", "You rated the answer"), None),
            "close" => ("closed", Msg::new("已办结", "Closed"), None),
            _ => continue,
        };
        steps.push(Step { at, code, label: l.msg(&label), text });
    }
    // A history without a resolve event (should not happen) still shows the reply.
    if last_resolve.is_none() {
        if let Some(reply) = &case.reply {
            steps.push(Step {
                at: String::new(),
                code: "resolved",
                label: l.msg(&Msg::new("图书馆已答复", "The library replied")),
                text: Some(reply.clone()),
            });
        }
    }
    steps
}

#[derive(Template)]
#[template(path = "portal_track.html")]
struct TrackPage {
    ctx: Ctx,
    /// The case page's address: its tracking link, or `/portal/cases/{number}` when signed in.
    base: String,
    number: String,
    kind: String,
    subject: String,
    submitted: String,
    status_code: &'static str,
    status_text: String,
    steps: Vec<Step>,
    reply: Option<String>,
    /// The open question to the reader, and the answer form's entries (kept on an error).
    question: Option<String>,
    answer: String,
    answer_key: String,
    max_answer: usize,
    can_rate: bool,
    rating: Option<lector_store::cases::Rating>,
    /// The rating form's entries, kept on an error.
    satisfaction: String,
    recommend: String,
    comment: String,
    errors: FieldErrors,
    general: Option<String>,
}

impl TrackPage {
    fn err(&self, field: &str) -> Option<String> {
        self.errors.get(field).map(|m| self.ctx.l.msg(m))
    }
}

/// A token can only be hex-ish and short; anything else is not worth a database look-up.
fn plausible_token(t: &str) -> bool {
    (8..=128).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn invalid_link(l: Lang) -> Response {
    message_page(
        l,
        StatusCode::NOT_FOUND,
        Msg::new("链接无效", "This link is not valid"),
        Msg::new(
            "这个跟踪链接无效：请检查是否完整复制了提交时显示的链接。如已遗失，请联系图书馆并告知工单编号。",
            "This tracking link is not valid. Check that you copied the whole link shown when you sent your message; if you lost it, contact the library with your case number.",
        ),
    )
}

#[derive(Deserialize)]
struct TrackParams {
    flash: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RateForm {
    satisfaction: Option<String>,
    recommend: Option<String>,
    comment: Option<String>,
    csrf: Option<String>,
}

struct TrackExtra<'a> {
    form: Option<&'a RateForm>,
    answer: Option<&'a ReplyForm>,
    errors: FieldErrors,
    general: Option<String>,
    flash: Option<String>,
}

/// Who looks at a case: the holder of its tracking link, or the signed-in reader it belongs to.
enum Access<'a> {
    Link(&'a str),
    Reader(&'a ReaderSession, &'a str),
}

impl Access<'_> {
    fn base(&self) -> String {
        match self {
            Access::Link(token) => format!("/portal/track/{token}"),
            Access::Reader(_, number) => format!("/portal/cases/{number}"),
        }
    }

    async fn case(&self, state: &AppState) -> Result<Case, StoreError> {
        match self {
            Access::Link(token) => state.store.case_by_token(token).await,
            Access::Reader(s, number) => state.store.reader_case(s.reader.id, number).await,
        }
    }

    /// The same answer for a case that does not exist and one that is not the reader's.
    fn not_found(&self, l: Lang) -> Response {
        match self {
            Access::Link(_) => invalid_link(l),
            Access::Reader(..) => case_not_found(l),
        }
    }
}

async fn track_page(
    state: &AppState,
    l: Lang,
    headers: &HeaderMap,
    access: &Access<'_>,
    extra: TrackExtra<'_>,
    status: StatusCode,
) -> Response {
    if let Access::Link(token) = access {
        if !plausible_token(token) {
            return invalid_link(l);
        }
    }
    let case = match access.case(state).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => return access.not_found(l),
        Err(e) => return error_page(e.into(), l),
    };
    let events = match state.store.case_events(case.id).await {
        Ok(e) => e,
        Err(e) => return error_page(e.into(), l),
    };
    let (csrf, fresh) = match access {
        Access::Link(_) => csrf_token(headers),
        Access::Reader(s, _) => (s.csrf.clone(), false),
    };
    let (status_code, status_text) = plain_status(case.status);
    let base = access.base();
    let mut ctx = Ctx::anonymous(l, csrf.clone(), &base);
    ctx.flash = extra.flash;
    let s = |v: Option<&Option<String>>| v.and_then(|o| o.clone()).unwrap_or_default();
    let page = TrackPage {
        base,
        number: case.number.clone(),
        kind: l.msg(&case.kind.label()),
        subject: case.subject.clone(),
        submitted: crate::pages::local_time(&case.created_at),
        status_code,
        status_text: l.msg(&status_text),
        steps: public_steps(l, &case, &events),
        reply: case.reply.clone(),
        question: case.question.clone().filter(|_| case.status == CaseStatus::AwaitingReader),
        answer: s(extra.answer.map(|f| &f.text)),
        answer_key: extra.answer.and_then(|f| f.key.clone()).filter(|k| valid_key(k)).unwrap_or_else(|| random_hex(16)),
        max_answer: MAX_QUESTION,
        can_rate: case.status == CaseStatus::Resolved && case.rating.is_none(),
        rating: case.rating.clone(),
        satisfaction: s(extra.form.map(|f| &f.satisfaction)),
        recommend: s(extra.form.map(|f| &f.recommend)),
        comment: s(extra.form.map(|f| &f.comment)),
        errors: extra.errors,
        general: extra.general,
        ctx,
    };
    private(with_status(status, render(&page)), Some((&csrf, fresh)), state.secure_cookies)
}

fn flash_text(l: Lang, code: Option<&str>) -> Option<String> {
    match code {
        Some("rated") => Some(l.pick("感谢您的评价！", "Thank you for your rating!").to_string()),
        Some("answered") => {
            Some(l.pick("已收到您补充的信息，我们会继续处理。", "Thank you; we received your answer and carry on.").to_string())
        }
        _ => None,
    }
}

async fn track(State(state): State<AppState>, headers: HeaderMap, Path(token): Path<String>, Query(q): Query<TrackParams>) -> Response {
    let l = Lang::from_headers(&headers);
    let extra =
        TrackExtra { form: None, answer: None, errors: FieldErrors::default(), general: None, flash: flash_text(l, q.flash.as_deref()) };
    track_page(&state, l, &headers, &Access::Link(&token), extra, StatusCode::OK).await
}

/// A signed-in reader's own case: the tracking page's view, whether or not the case has a link.
async fn own_case(State(state): State<AppState>, headers: HeaderMap, Path(number): Path<String>, Query(q): Query<TrackParams>) -> Response {
    let l = Lang::from_headers(&headers);
    let session = match reader_session(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return sign_in_first(&format!("/portal/cases/{number}")),
        Err(e) => return error_page(e, l),
    };
    let extra =
        TrackExtra { form: None, answer: None, errors: FieldErrors::default(), general: None, flash: flash_text(l, q.flash.as_deref()) };
    track_page(&state, l, &headers, &Access::Reader(&session, &number), extra, StatusCode::OK).await
}

fn parse_rating(f: &RateForm) -> Result<RatingDraft, FieldErrors> {
    let mut errors = FieldErrors::default();
    let satisfaction = match f.satisfaction.as_deref().map(str::trim).and_then(|s| s.parse::<u8>().ok()) {
        Some(n) if (1..=5).contains(&n) => Some(n),
        _ => {
            errors.push("satisfaction", Msg::new("请选择 1 到 5 的满意度", "choose a satisfaction from 1 to 5"));
            None
        }
    };
    let recommend = match f.recommend.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<u8>() {
            Ok(n) if n <= 10 => Some(n),
            _ => {
                errors.push("recommend", Msg::new("推荐意愿应为 0 到 10", "the recommendation is 0 to 10"));
                None
            }
        },
    };
    too_long(&mut errors, "comment", &f.comment, MAX_COMMENT);
    let comment = f.comment.clone().filter(|c| !c.trim().is_empty());
    errors.finish(|| RatingDraft { satisfaction: satisfaction.unwrap_or(0), recommend, comment })
}

async fn rate(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    Path(token): Path<String>,
    PortalForm(f): PortalForm<RateForm>,
) -> Response {
    let l = Lang::from_headers(&headers);
    if !plausible_token(&token) {
        return invalid_link(l);
    }
    let fresh = csrf_ok(&headers, f.csrf.as_deref());
    rate_on(&state, l, &headers, &origin(&extensions), &Access::Link(&token), &f, fresh).await
}

async fn rate_own(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    Path(number): Path<String>,
    PortalForm(f): PortalForm<RateForm>,
) -> Response {
    let l = Lang::from_headers(&headers);
    let session = match reader_session(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return sign_in_first(&format!("/portal/cases/{number}")),
        Err(e) => return error_page(e, l),
    };
    let fresh = session.csrf_ok(f.csrf.as_deref());
    rate_on(&state, l, &headers, &origin(&extensions), &Access::Reader(&session, &number), &f, fresh).await
}

/// The rating form, sent through the tracking link or by the signed-in reader; `fresh` says
/// whether its CSRF token was right.
async fn rate_on(state: &AppState, l: Lang, headers: &HeaderMap, ip: &str, access: &Access<'_>, f: &RateForm, fresh: bool) -> Response {
    let extra = |errors: FieldErrors, general: Option<Msg>| TrackExtra {
        form: Some(f),
        answer: None,
        errors,
        general: general.map(|m| l.msg(&m)),
        flash: None,
    };
    if !fresh {
        let m = Msg::new("表单已过期，请重新提交评价。", "The form expired; please send your rating again.");
        return track_page(state, l, headers, access, extra(FieldErrors::default(), Some(m)), StatusCode::BAD_REQUEST).await;
    }
    let draft = match parse_rating(f) {
        Ok(d) => d,
        Err(errors) => return track_page(state, l, headers, access, extra(errors, None), StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    // Refuse early with a clear message; the store checks again in its transaction.
    let case = match access.case(state).await {
        Ok(c) if c.rating.is_some() => {
            let m = Msg::new("您已评价过这件事项，感谢！", "You have already rated this case; thank you!");
            return track_page(state, l, headers, access, extra(FieldErrors::default(), Some(m)), StatusCode::CONFLICT).await;
        }
        Ok(c) if c.status != CaseStatus::Resolved => {
            let m = Msg::new("图书馆答复之后才能评价。", "You can rate once the library has replied.");
            return track_page(state, l, headers, access, extra(FieldErrors::default(), Some(m)), StatusCode::CONFLICT).await;
        }
        Ok(c) => c,
        Err(StoreError::NotFound) => return access.not_found(l),
        Err(e) => return error_page(e.into(), l),
    };
    let rated = match access {
        Access::Link(token) => state.store.rate_case(token, &draft).await,
        Access::Reader(s, _) => state.store.rate_own_case(s.reader.id, case.id, &draft, ip).await,
    };
    match rated {
        Ok(_) => private(see_other(&format!("{}?flash=rated", access.base())), None, state.secure_cookies),
        Err(StoreError::NotFound) => access.not_found(l),
        Err(StoreError::Conflict(m)) => {
            track_page(state, l, headers, access, extra(FieldErrors::default(), Some(m)), StatusCode::CONFLICT).await
        }
        Err(StoreError::Invalid(errors)) => {
            track_page(state, l, headers, access, extra(errors, None), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => error_page(AppError::from(e), l),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ReplyForm {
    text: Option<String>,
    key: Option<String>,
    csrf: Option<String>,
}

/// The reader answers the library's question: the case goes back to work and its deadline moves
/// later by the working time spent waiting. A form sent twice records one answer.
async fn reply(
    State(state): State<AppState>,
    Extension(guard): Extension<Arc<PortalGuard>>,
    extensions: Extensions,
    headers: HeaderMap,
    Path(token): Path<String>,
    PortalForm(f): PortalForm<ReplyForm>,
) -> Response {
    let l = Lang::from_headers(&headers);
    if !plausible_token(&token) {
        return invalid_link(l);
    }
    let fresh = csrf_ok(&headers, f.csrf.as_deref());
    reply_on(&state, &guard, l, &headers, &origin(&extensions), &Access::Link(&token), &f, fresh).await
}

/// The signed-in reader answers the question on their own case. A second send finds the
/// question already answered and says so.
async fn reply_own(
    State(state): State<AppState>,
    Extension(guard): Extension<Arc<PortalGuard>>,
    extensions: Extensions,
    headers: HeaderMap,
    Path(number): Path<String>,
    PortalForm(f): PortalForm<ReplyForm>,
) -> Response {
    let l = Lang::from_headers(&headers);
    let session = match reader_session(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return sign_in_first(&format!("/portal/cases/{number}")),
        Err(e) => return error_page(e, l),
    };
    let fresh = session.csrf_ok(f.csrf.as_deref());
    reply_on(&state, &guard, l, &headers, &origin(&extensions), &Access::Reader(&session, &number), &f, fresh).await
}

#[allow(clippy::too_many_arguments)]
async fn reply_on(
    state: &AppState,
    guard: &PortalGuard,
    l: Lang,
    headers: &HeaderMap,
    ip: &str,
    access: &Access<'_>,
    f: &ReplyForm,
    fresh: bool,
) -> Response {
    let extra = |errors: FieldErrors, general: Option<Msg>| TrackExtra {
        form: None,
        answer: Some(f),
        errors,
        general: general.map(|m| l.msg(&m)),
        flash: None,
    };
    if !fresh {
        let m = Msg::new("表单已过期，请检查内容后重新提交。", "The form expired; check your answer and send it again.");
        return track_page(state, l, headers, access, extra(FieldErrors::default(), Some(m)), StatusCode::BAD_REQUEST).await;
    }
    // Answers have their own quota per address, apart from new cases.
    let client = format!("answer:{ip}");
    if let Err(wait) = guard.check(&client) {
        return too_many(l, wait, Msg::new("提交过于频繁", "Too many answers"), |window, minutes| {
            Msg::new(
                format!("同一网络地址 {window} 分钟内最多提交 {SUBMIT_LIMIT} 次补充信息。请约 {minutes} 分钟后再试。"),
                format!("At most {SUBMIT_LIMIT} answers per {window} minutes from one network address. Please try again in about {minutes} minute(s)."),
            )
        });
    }
    let mut errors = FieldErrors::default();
    too_long(&mut errors, "text", &f.text, MAX_QUESTION);
    if blank(&f.text) {
        errors.push("text", Msg::new("请填写您要补充的信息", "please write your answer"));
    }
    if !errors.is_empty() {
        return track_page(state, l, headers, access, extra(errors, None), StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let text = f.text.clone().unwrap_or_default();
    let answered = match access {
        Access::Link(token) => {
            let key = f.key.clone().filter(|k| valid_key(k));
            state.store.answer_case_question(token, &text, key.as_deref()).await
        }
        Access::Reader(..) => match access.case(state).await {
            Ok(case) => {
                let actor = Actor { user_id: None, name: READER_ACTOR.to_string(), origin: ip.to_string() };
                state.store.act_on_case(&actor, case.id, &CaseAction::ReaderReply { text }, case.version).await
            }
            Err(e) => Err(e),
        },
    };
    match answered {
        Ok(_) => {
            guard.record_submission(&client);
            private(see_other(&format!("{}?flash=answered", access.base())), None, state.secure_cookies)
        }
        Err(StoreError::NotFound) => access.not_found(l),
        Err(StoreError::Conflict(_)) => {
            let m = Msg::new(
                "图书馆目前没有需要您补充的问题（可能已收到您的回答，或问题已撤回）。",
                "The library has no open question for you (your answer may have arrived already, or the question was withdrawn).",
            );
            track_page(state, l, headers, access, extra(FieldErrors::default(), Some(m)), StatusCode::CONFLICT).await
        }
        Err(StoreError::Invalid(errors)) => {
            track_page(state, l, headers, access, extra(errors, None), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => error_page(AppError::from(e), l),
    }
}
