//! Messaging administration: channels (`ChannelsConfigure`: list, new, edit per kind, enable,
//! a test send that shows the real outcome), templates (`CampaignsManage`: variants per channel
//! kind and language, preview for a reader), and the public address used in message links
//! (`ChannelsConfigure`). A channel's secret is never put back into a page: its field is empty,
//! "leave blank to keep".

use super::{checked_post, messaging_common, path_id, render, see_other, Ctx, Opt, Tab};
use crate::api::messaging::{check_variants, preview, test_send};
use crate::auth::{PageError, Staff};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lector_domain::messaging::{ChannelKind, ChannelSettings, Purpose, SmtpSecurity};
use lector_domain::role::Permission;
use lector_domain::{FieldErrors, Msg};
use lector_store::channels::{Channel, ChannelInput};
use lector_store::templates::{Template as MessageTemplate, TemplateInput, TemplateVariant, LANGS};
use lector_store::StoreError;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/messaging/channels", get(channels).post(create_channel))
        .route("/messaging/channels/new", get(new_channel))
        .route("/messaging/channels/{id}", get(edit_channel).post(update_channel))
        .route("/messaging/channels/{id}/enabled", post(set_enabled))
        .route("/messaging/channels/{id}/test", post(test_channel))
        .route("/messaging/templates", get(templates).post(create_template))
        .route("/messaging/templates/{id}", get(edit_template).post(update_template))
        .route("/messaging/templates/{id}/variants", post(save_variant))
        .route("/messaging/templates/{id}/variants/delete", post(delete_variant))
        .route("/messaging/templates/{id}/preview", get(preview_page))
        .route("/messaging/settings", get(settings).post(save_settings))
}

// ---- shared ----

/// The messaging tabs the user may open.
fn tabs(staff: &Staff, active: &str) -> Vec<Tab> {
    messaging_common::tabs(staff, active, true)
}

/// A form's outcome shown above it.
#[derive(Default)]
pub struct Notice {
    pub error: Option<String>,
    pub ok: Option<String>,
}

impl Notice {
    fn error(text: String) -> Notice {
        Notice { error: Some(text), ok: None }
    }
}

fn describe(errs: &FieldErrors, l: Lang) -> String {
    errs.0.iter().map(|e| format!("{}: {}", e.field, l.msg(&e.message))).collect::<Vec<_>>().join("\n")
}

/// A store or request error as a message on the form (422/409), or an error page.
fn notice_of(e: AppError, l: Lang) -> Result<(StatusCode, Notice), PageError> {
    match e {
        AppError::Invalid(f) => Ok((StatusCode::UNPROCESSABLE_ENTITY, Notice::error(describe(&f, l)))),
        AppError::Conflict(m) => Ok((StatusCode::CONFLICT, Notice::error(l.msg(&m)))),
        e => Err(PageError(e, l)),
    }
}

fn with_status(status: StatusCode, r: Response) -> Response {
    (status, r).into_response()
}

fn opts<T: Copy + PartialEq>(all: &[T], selected: T, code: impl Fn(T) -> &'static str, label: impl Fn(T) -> Msg, l: Lang) -> Vec<Opt> {
    all.iter().map(|v| Opt { value: code(*v).into(), label: l.msg(&label(*v)), selected: *v == selected }).collect()
}

// ---- channels ----

#[derive(Template)]
#[template(path = "messaging_channels.html")]
struct ChannelsPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    channels: Vec<(Channel, String)>,
    kinds: Vec<Opt>,
}

async fn channels(State(state): State<AppState>, staff: Staff, Query(q): Query<FlashQuery>) -> Result<Response, PageError> {
    staff.require(Permission::ChannelsConfigure)?;
    let l = staff.lang;
    let channels = state.store.channels().await.map_err(|e| PageError(e.into(), l))?;
    let page = ChannelsPage {
        ctx: Ctx::staff(&staff, "campaigns", "/messaging/channels").with_flash(q.flash.as_deref()),
        tabs: tabs(&staff, "tab-channels"),
        channels: channels.into_iter().map(|c| (c.clone(), l.msg(&c.kind.label()))).collect(),
        kinds: opts(ChannelKind::ALL, ChannelKind::Email, ChannelKind::code, ChannelKind::label, l),
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
struct FlashQuery {
    flash: Option<String>,
}

/// A channel form's values (never the secret).
#[derive(Default)]
struct ChannelFields {
    kind: String,
    code: String,
    name: String,
    host: String,
    port: String,
    username: String,
    from_address: String,
    from_name: String,
    qq_mailbox: bool,
    accept_invalid_certs: bool,
    url: String,
    mobile_field: String,
    text_field: String,
    rate_per_second: String,
    enabled: bool,
    has_secret: bool,
    version: i64,
}

impl ChannelFields {
    fn new_of(kind: ChannelKind) -> ChannelFields {
        ChannelFields {
            kind: kind.code().into(),
            port: "465".into(),
            mobile_field: "mobile".into(),
            text_field: "text".into(),
            rate_per_second: "10".into(),
            enabled: true,
            ..Default::default()
        }
    }

    fn of(c: &Channel) -> ChannelFields {
        let mut f = ChannelFields {
            kind: c.kind.code().into(),
            code: c.code.clone(),
            name: c.name.clone(),
            rate_per_second: c.rate_per_second.to_string(),
            enabled: c.enabled,
            has_secret: c.has_secret,
            version: c.version,
            ..Default::default()
        };
        match &c.settings {
            ChannelSettings::Email { host, port, username, from_address, from_name, qq_mailbox, accept_invalid_certs, .. } => {
                f.host = host.clone();
                f.port = port.to_string();
                f.username = username.clone().unwrap_or_default();
                f.from_address = from_address.clone();
                f.from_name = from_name.clone();
                f.qq_mailbox = *qq_mailbox;
                f.accept_invalid_certs = *accept_invalid_certs;
            }
            ChannelSettings::Sms { url, mobile_field, text_field } => {
                f.url = url.clone();
                f.mobile_field = mobile_field.clone();
                f.text_field = text_field.clone();
            }
            ChannelSettings::Wecom { url }
            | ChannelSettings::Dingtalk { url }
            | ChannelSettings::Qq { url }
            | ChannelSettings::Webhook { url } => f.url = url.clone(),
        }
        f
    }

    fn of_form(f: &ChannelForm) -> ChannelFields {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        ChannelFields {
            kind: s(&f.kind),
            code: s(&f.code),
            name: s(&f.name),
            host: s(&f.host),
            port: s(&f.port),
            username: s(&f.username),
            from_address: s(&f.from_address),
            from_name: s(&f.from_name),
            qq_mailbox: f.qq_mailbox.is_some(),
            accept_invalid_certs: f.accept_invalid_certs.is_some(),
            url: s(&f.url),
            mobile_field: s(&f.mobile_field),
            text_field: s(&f.text_field),
            rate_per_second: s(&f.rate_per_second),
            enabled: f.enabled.is_some(),
            has_secret: false,
            version: f.version.as_deref().and_then(|v| v.parse().ok()).unwrap_or_default(),
        }
    }
}

/// What the secret field is called on each kind of channel; `None` when the kind has none.
fn secret_label(kind: ChannelKind, l: Lang) -> Option<&'static str> {
    match kind {
        ChannelKind::Email => Some(l.pick("SMTP 密码", "SMTP password")),
        ChannelKind::Sms => Some(l.pick("网关令牌（Bearer）", "Gateway token (Bearer)")),
        ChannelKind::Wecom => None,
        ChannelKind::Dingtalk => Some(l.pick("加签密钥", "Signing secret")),
        ChannelKind::Qq => Some(l.pick("访问令牌（Bearer）", "Access token (Bearer)")),
        ChannelKind::Webhook => Some(l.pick("签名密钥（X-Lector-Signature）", "Signing secret (X-Lector-Signature)")),
    }
}

#[derive(Template)]
#[template(path = "messaging_channel.html")]
struct ChannelPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    notice: Notice,
    /// `None` for a new channel.
    id: Option<i64>,
    kind_label: String,
    secret_label: Option<&'static str>,
    f: ChannelFields,
    securities: Vec<Opt>,
    test: Notice,
    test_address: String,
}

struct ChannelPageArgs {
    id: Option<i64>,
    kind: ChannelKind,
    fields: ChannelFields,
    security: SmtpSecurity,
    notice: Notice,
    test: Notice,
    test_address: String,
}

fn channel_page(staff: &Staff, a: ChannelPageArgs) -> Response {
    let l = staff.lang;
    let path = a.id.map(|id| format!("/messaging/channels/{id}")).unwrap_or_else(|| "/messaging/channels/new".into());
    let page = ChannelPage {
        ctx: Ctx::staff(staff, "campaigns", &path),
        tabs: tabs(staff, "tab-channels"),
        notice: a.notice,
        id: a.id,
        kind_label: l.msg(&a.kind.label()),
        secret_label: secret_label(a.kind, l),
        f: a.fields,
        securities: opts(SmtpSecurity::ALL, a.security, SmtpSecurity::code, SmtpSecurity::label, l),
        test: a.test,
        test_address: a.test_address,
    };
    render(&page)
}

fn security_of(c: &Channel) -> SmtpSecurity {
    match &c.settings {
        ChannelSettings::Email { security, .. } => *security,
        _ => SmtpSecurity::Tls,
    }
}

#[derive(Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

async fn new_channel(staff: Staff, Query(q): Query<KindQuery>) -> Result<Response, PageError> {
    staff.require(Permission::ChannelsConfigure)?;
    let kind = ChannelKind::parse(q.kind.as_deref().unwrap_or("email")).map_err(|m| PageError(AppError::BadRequest(m), staff.lang))?;
    Ok(channel_page(
        &staff,
        ChannelPageArgs {
            id: None,
            kind,
            fields: ChannelFields::new_of(kind),
            security: SmtpSecurity::Tls,
            notice: Notice::default(),
            test: Notice::default(),
            test_address: String::new(),
        },
    ))
}

async fn edit_channel(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<FlashQuery>,
) -> Result<Response, PageError> {
    staff.require(Permission::ChannelsConfigure)?;
    let l = staff.lang;
    let id = path_id(&id, l)?;
    let c = state.store.channel(id).await.map_err(|e| PageError(e.into(), l))?;
    let notice = match q.flash.as_deref() {
        Some("saved") => Notice { error: None, ok: Some(l.pick("已保存", "Saved").into()) },
        Some("created") => Notice { error: None, ok: Some(l.pick("已创建", "Created").into()) },
        _ => Notice::default(),
    };
    Ok(channel_page(
        &staff,
        ChannelPageArgs {
            id: Some(id),
            kind: c.kind,
            fields: ChannelFields::of(&c),
            security: security_of(&c),
            notice,
            test: Notice::default(),
            test_address: String::new(),
        },
    ))
}

#[derive(Deserialize)]
struct ChannelForm {
    csrf: Option<String>,
    kind: Option<String>,
    code: Option<String>,
    name: Option<String>,
    host: Option<String>,
    port: Option<String>,
    security: Option<String>,
    username: Option<String>,
    from_address: Option<String>,
    from_name: Option<String>,
    qq_mailbox: Option<String>,
    accept_invalid_certs: Option<String>,
    url: Option<String>,
    mobile_field: Option<String>,
    text_field: Option<String>,
    secret: Option<String>,
    rate_per_second: Option<String>,
    enabled: Option<String>,
    version: Option<String>,
}

impl ChannelForm {
    /// The channel kind, settings, and the store's input; form mistakes are field errors.
    fn parse(&self) -> Result<(ChannelKind, SmtpSecurity, ChannelInput), FieldErrors> {
        let mut errs = FieldErrors::default();
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let kind = errs.take("kind", ChannelKind::parse(&s(&self.kind))).unwrap_or(ChannelKind::Email);
        let security = errs.take("security", SmtpSecurity::parse(self.security.as_deref().unwrap_or("tls"))).unwrap_or(SmtpSecurity::Tls);
        let port = match s(&self.port).trim().parse::<u16>() {
            Ok(p) => p,
            Err(_) if kind == ChannelKind::Email => {
                errs.push("port", Msg::new("端口应为 1 到 65535 的数字", "the port is a number from 1 to 65535"));
                0
            }
            Err(_) => 0,
        };
        let rate = s(&self.rate_per_second).trim().parse::<i64>().unwrap_or_else(|_| {
            errs.push("rate_per_second", Msg::new("发送速率应为整数", "the rate is a whole number"));
            0
        });
        let url = s(&self.url);
        let settings = match kind {
            ChannelKind::Email => ChannelSettings::Email {
                host: s(&self.host),
                port,
                security,
                username: Some(s(&self.username)),
                from_address: s(&self.from_address),
                from_name: s(&self.from_name),
                qq_mailbox: self.qq_mailbox.is_some(),
                accept_invalid_certs: self.accept_invalid_certs.is_some(),
            },
            ChannelKind::Sms => ChannelSettings::Sms { url, mobile_field: s(&self.mobile_field), text_field: s(&self.text_field) },
            ChannelKind::Wecom => ChannelSettings::Wecom { url },
            ChannelKind::Dingtalk => ChannelSettings::Dingtalk { url },
            ChannelKind::Qq => ChannelSettings::Qq { url },
            ChannelKind::Webhook => ChannelSettings::Webhook { url },
        };
        let input = ChannelInput {
            code: s(&self.code),
            name: s(&self.name),
            settings,
            secret: self.secret.clone(),
            rate_per_second: rate,
            enabled: self.enabled.is_some(),
        };
        errs.finish(|| (kind, security, input))
    }
}

async fn save_channel(state: &AppState, staff: &Staff, id: Option<i64>, f: ChannelForm) -> Result<Response, PageError> {
    staff.require(Permission::ChannelsConfigure)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let l = staff.lang;
    let fields = ChannelFields::of_form(&f);
    let kind = ChannelKind::parse(&fields.kind).unwrap_or(ChannelKind::Email);
    let security = f.security.as_deref().and_then(|s| SmtpSecurity::parse(s).ok()).unwrap_or(SmtpSecurity::Tls);
    let saved = match f.parse() {
        Err(errs) => Err(AppError::Invalid(errs)),
        Ok((_, _, input)) => match id {
            None => state.store.create_channel(&staff.actor(), &input).await.map_err(AppError::from),
            Some(id) => {
                let version = f.version.as_deref().and_then(|v| v.parse().ok());
                state.store.update_channel(&staff.actor(), id, version, &input).await.map_err(AppError::from)
            }
        },
    };
    match saved {
        Ok(c) => Ok(see_other(&format!("/messaging/channels/{}?flash={}", c.id, if id.is_some() { "saved" } else { "created" }))),
        Err(e) => {
            let (status, notice) = notice_of(e, l)?;
            let mut fields = fields;
            if let Some(id) = id {
                fields.has_secret = state.store.channel(id).await.map(|c| c.has_secret).unwrap_or(false);
            }
            let page = channel_page(
                staff,
                ChannelPageArgs { id, kind, fields, security, notice, test: Notice::default(), test_address: String::new() },
            );
            Ok(with_status(status, page))
        }
    }
}

async fn create_channel(State(state): State<AppState>, staff: Staff, Form(f): Form<ChannelForm>) -> Result<Response, PageError> {
    save_channel(&state, &staff, None, f).await
}

async fn update_channel(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<ChannelForm>,
) -> Result<Response, PageError> {
    let id = path_id(&id, staff.lang)?;
    save_channel(&state, &staff, Some(id), f).await
}

#[derive(Deserialize)]
struct EnabledForm {
    csrf: Option<String>,
    enabled: String,
}

async fn set_enabled(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<EnabledForm>,
) -> Result<Response, PageError> {
    let id = checked_post(&staff, Permission::ChannelsConfigure, f.csrf.as_deref(), &id)?;
    let l = staff.lang;
    state.store.set_channel_enabled(&staff.actor(), id, f.enabled == "1").await.map_err(|e| PageError(e.into(), l))?;
    Ok(see_other("/messaging/channels?flash=saved"))
}

#[derive(Deserialize)]
struct TestForm {
    csrf: Option<String>,
    address: Option<String>,
}

async fn test_channel(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<TestForm>,
) -> Result<Response, PageError> {
    let id = checked_post(&staff, Permission::ChannelsConfigure, f.csrf.as_deref(), &id)?;
    let l = staff.lang;
    let c = state.store.channel(id).await.map_err(|e| PageError(e.into(), l))?;
    let address = f.address.unwrap_or_default();
    let from = if staff.user.display_name.is_empty() { staff.user.username.clone() } else { staff.user.display_name.clone() };
    let (status, test) = match test_send(&state.store, id, &address, &from).await {
        Ok(Ok(to)) => (
            StatusCode::OK,
            Notice {
                error: None,
                ok: Some(format!("{} {to}", l.pick("测试消息已被服务器接收：", "The server accepted the test message to"))),
            },
        ),
        Ok(Err(m)) => (StatusCode::OK, Notice::error(l.msg(&m))),
        Err(e) => notice_of(e, l)?,
    };
    let page = channel_page(
        &staff,
        ChannelPageArgs {
            id: Some(id),
            kind: c.kind,
            fields: ChannelFields::of(&c),
            security: security_of(&c),
            notice: Notice::default(),
            test,
            test_address: address,
        },
    );
    Ok(with_status(status, page))
}

// ---- templates ----

#[derive(Template)]
#[template(path = "messaging_templates.html")]
struct TemplatesPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    notice: Notice,
    templates: Vec<(MessageTemplate, String, String)>,
    purposes: Vec<Opt>,
    code: String,
    name: String,
}

async fn templates_page(
    state: &AppState,
    staff: &Staff,
    notice: Notice,
    code: String,
    name: String,
    purpose: Purpose,
) -> Result<Response, PageError> {
    let l = staff.lang;
    let list = state.store.templates().await.map_err(|e| PageError(e.into(), l))?;
    let templates = list
        .into_iter()
        .map(|t| {
            let purpose = l.msg(&t.purpose.label());
            let variants =
                t.variants.iter().map(|v| format!("{}·{}", l.msg(&v.channel_kind.label()), v.lang)).collect::<Vec<_>>().join("，");
            (t, purpose, variants)
        })
        .collect();
    let page = TemplatesPage {
        ctx: Ctx::staff(staff, "campaigns", "/messaging/templates"),
        tabs: tabs(staff, "tab-templates"),
        notice,
        templates,
        purposes: opts(Purpose::ALL, purpose, Purpose::code, Purpose::label, l),
        code,
        name,
    };
    Ok(render(&page))
}

async fn templates(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::CampaignsManage)?;
    templates_page(&state, &staff, Notice::default(), String::new(), String::new(), Purpose::Service).await
}

#[derive(Deserialize)]
struct TemplateMetaForm {
    csrf: Option<String>,
    code: Option<String>,
    name: Option<String>,
    purpose: Option<String>,
    version: Option<String>,
}

async fn create_template(State(state): State<AppState>, staff: Staff, Form(f): Form<TemplateMetaForm>) -> Result<Response, PageError> {
    staff.require(Permission::CampaignsManage)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let l = staff.lang;
    let code = f.code.unwrap_or_default();
    let name = f.name.unwrap_or_default();
    let purpose = Purpose::parse(f.purpose.as_deref().unwrap_or("service")).unwrap_or(Purpose::Service);
    let input = TemplateInput { code: code.clone(), name: name.clone(), purpose, variants: Vec::new() };
    match state.store.create_template(&staff.actor(), &input).await {
        Ok(t) => Ok(see_other(&format!("/messaging/templates/{}?flash=created", t.id))),
        Err(e) => {
            let (status, notice) = notice_of(e.into(), l)?;
            templates_page(&state, &staff, notice, code, name, purpose).await.map(|r| with_status(status, r))
        }
    }
}

/// One variant's editor.
struct VariantView {
    kind: String,
    kind_label: String,
    lang: String,
    subject: String,
    body_text: String,
    body_html: String,
    is_email: bool,
    /// A failed save's message, shown beside this editor.
    error: Option<String>,
}

impl VariantView {
    fn of(v: &TemplateVariant, l: Lang) -> VariantView {
        VariantView {
            kind: v.channel_kind.code().into(),
            kind_label: l.msg(&v.channel_kind.label()),
            lang: v.lang.clone(),
            subject: v.subject.clone(),
            body_text: v.body_text.clone(),
            body_html: v.body_html.clone().unwrap_or_default(),
            is_email: v.channel_kind == ChannelKind::Email,
            error: None,
        }
    }
}

#[derive(Template)]
#[template(path = "messaging_template.html")]
struct TemplatePage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    notice: Notice,
    t: MessageTemplate,
    purposes: Vec<Opt>,
    variants: Vec<VariantView>,
    /// The editor for a variant not yet saved (kind and language chosen).
    fresh: VariantView,
    kinds: Vec<Opt>,
    langs: Vec<Opt>,
}

fn lang_opts(selected: &str, l: Lang) -> Vec<Opt> {
    LANGS
        .iter()
        .map(|code| Opt {
            value: (*code).into(),
            label: if *code == "en" { l.pick("英文", "English").into() } else { l.pick("中文", "Chinese").into() },
            selected: *code == selected,
        })
        .collect()
}

async fn template_page(
    state: &AppState,
    staff: &Staff,
    id: i64,
    notice: Notice,
    edited: Option<VariantView>,
) -> Result<Response, PageError> {
    let l = staff.lang;
    let t = state.store.template(id).await.map_err(|e| PageError(e.into(), l))?;
    let mut variants: Vec<VariantView> = t.variants.iter().map(|v| VariantView::of(v, l)).collect();
    let mut fresh = VariantView {
        kind: ChannelKind::Email.code().into(),
        kind_label: String::new(),
        lang: "zh".into(),
        subject: String::new(),
        body_text: String::new(),
        body_html: String::new(),
        is_email: true,
        error: None,
    };
    if let Some(e) = edited {
        match variants.iter_mut().find(|v| v.kind == e.kind && v.lang == e.lang) {
            Some(slot) => *slot = e,
            None => fresh = e,
        }
    }
    let fresh_kind = ChannelKind::parse(&fresh.kind).unwrap_or(ChannelKind::Email);
    let page = TemplatePage {
        ctx: Ctx::staff(staff, "campaigns", &format!("/messaging/templates/{id}")),
        tabs: tabs(staff, "tab-templates"),
        notice,
        purposes: opts(Purpose::ALL, t.purpose, Purpose::code, Purpose::label, l),
        t,
        variants,
        kinds: opts(ChannelKind::ALL, fresh_kind, ChannelKind::code, ChannelKind::label, l),
        langs: lang_opts(&fresh.lang, l),
        fresh,
    };
    Ok(render(&page))
}

async fn edit_template(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<FlashQuery>,
) -> Result<Response, PageError> {
    staff.require(Permission::CampaignsManage)?;
    let l = staff.lang;
    let id = path_id(&id, l)?;
    let notice = match q.flash.as_deref() {
        Some("saved") => Notice { error: None, ok: Some(l.pick("已保存", "Saved").into()) },
        Some("created") => Notice {
            error: None,
            ok: Some(l.pick("模板已创建，请添加各渠道的内容", "Template created; add its text per channel").into()),
        },
        Some("deleted") => Notice { error: None, ok: Some(l.pick("已删除", "Deleted").into()) },
        _ => Notice::default(),
    };
    template_page(&state, &staff, id, notice, None).await
}

/// Saves `variants` as template `t`'s new set (keeping its code, name and purpose).
async fn replace_variants(
    state: &AppState,
    staff: &Staff,
    t: &MessageTemplate,
    version: Option<i64>,
    variants: Vec<TemplateVariant>,
) -> Result<(), AppError> {
    check_variants(&variants).map_err(AppError::Invalid)?;
    let input = TemplateInput { code: t.code.clone(), name: t.name.clone(), purpose: t.purpose, variants };
    state.store.update_template(&staff.actor(), t.id, version, &input).await?;
    Ok(())
}

async fn update_template(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<TemplateMetaForm>,
) -> Result<Response, PageError> {
    let id = checked_post(&staff, Permission::CampaignsManage, f.csrf.as_deref(), &id)?;
    let l = staff.lang;
    let t = state.store.template(id).await.map_err(|e| PageError(e.into(), l))?;
    let purpose = match Purpose::parse(f.purpose.as_deref().unwrap_or_default()) {
        Ok(p) => p,
        Err(m) => {
            return template_page(&state, &staff, id, Notice::error(l.msg(&m)), None)
                .await
                .map(|r| with_status(StatusCode::UNPROCESSABLE_ENTITY, r))
        }
    };
    let input = TemplateInput { code: f.code.unwrap_or_default(), name: f.name.unwrap_or_default(), purpose, variants: t.variants.clone() };
    let version = f.version.as_deref().and_then(|v| v.parse().ok());
    match state.store.update_template(&staff.actor(), id, version, &input).await {
        Ok(_) => Ok(see_other(&format!("/messaging/templates/{id}?flash=saved"))),
        Err(e) => {
            let (status, notice) = notice_of(e.into(), l)?;
            template_page(&state, &staff, id, notice, None).await.map(|r| with_status(status, r))
        }
    }
}

#[derive(Deserialize)]
struct VariantForm {
    csrf: Option<String>,
    channel_kind: Option<String>,
    lang: Option<String>,
    subject: Option<String>,
    body_text: Option<String>,
    body_html: Option<String>,
    version: Option<String>,
}

/// The template a variant form posts to and the channel kind it names, which saving and deleting
/// a variant both start from.
async fn variant_target(state: &AppState, id: i64, f: &VariantForm, l: Lang) -> Result<(MessageTemplate, ChannelKind), PageError> {
    let t = state.store.template(id).await.map_err(|e| PageError(e.into(), l))?;
    let kind = ChannelKind::parse(f.channel_kind.as_deref().unwrap_or_default()).map_err(|m| PageError(AppError::BadRequest(m), l))?;
    Ok((t, kind))
}

async fn save_variant(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<VariantForm>,
) -> Result<Response, PageError> {
    let id = checked_post(&staff, Permission::CampaignsManage, f.csrf.as_deref(), &id)?;
    let l = staff.lang;
    let (t, kind) = variant_target(&state, id, &f, l).await?;
    let lang = f.lang.clone().unwrap_or_default();
    let variant = TemplateVariant {
        channel_kind: kind,
        lang: lang.clone(),
        subject: f.subject.clone().unwrap_or_default(),
        body_text: f.body_text.clone().unwrap_or_default(),
        body_html: f.body_html.clone().filter(|h| !h.trim().is_empty()),
    };
    let mut variants: Vec<TemplateVariant> = t.variants.iter().filter(|v| !(v.channel_kind == kind && v.lang == lang)).cloned().collect();
    variants.push(variant.clone());
    let version = f.version.as_deref().and_then(|v| v.parse().ok());
    // A rendering problem is reported for this variant only, naming its part and line.
    if let Err(e) = lector_messaging::render::check(&lector_messaging::worker::to_variant(&variant)) {
        let mut view = VariantView::of(&variant, l);
        view.error = Some(l.msg(&e.msg()));
        let notice = Notice::error(format!("{}（{}）：{}", view.kind_label, lang, l.msg(&e.msg())));
        return template_page(&state, &staff, id, notice, Some(view)).await.map(|r| with_status(StatusCode::UNPROCESSABLE_ENTITY, r));
    }
    match replace_variants(&state, &staff, &t, version, variants).await {
        Ok(()) => Ok(see_other(&format!("/messaging/templates/{id}?flash=saved"))),
        Err(e) => {
            let (status, notice) = notice_of(e, l)?;
            let view = VariantView::of(&variant, l);
            template_page(&state, &staff, id, notice, Some(view)).await.map(|r| with_status(status, r))
        }
    }
}

async fn delete_variant(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<VariantForm>,
) -> Result<Response, PageError> {
    let id = checked_post(&staff, Permission::CampaignsManage, f.csrf.as_deref(), &id)?;
    let l = staff.lang;
    let (t, kind) = variant_target(&state, id, &f, l).await?;
    let lang = f.lang.unwrap_or_default();
    let variants = t.variants.iter().filter(|v| !(v.channel_kind == kind && v.lang == lang)).cloned().collect();
    let version = f.version.as_deref().and_then(|v| v.parse().ok());
    match replace_variants(&state, &staff, &t, version, variants).await {
        Ok(()) => Ok(see_other(&format!("/messaging/templates/{id}?flash=deleted"))),
        Err(e) => {
            let (status, notice) = notice_of(e, l)?;
            template_page(&state, &staff, id, notice, None).await.map(|r| with_status(status, r))
        }
    }
}

#[derive(Template)]
#[template(path = "messaging_preview.html")]
struct PreviewPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    t: MessageTemplate,
    kinds: Vec<Opt>,
    langs: Vec<Opt>,
    card_no: String,
    error: Option<String>,
    reader: Option<String>,
    subject: String,
    text: String,
    html: Option<String>,
    rendered: bool,
}

#[derive(Deserialize)]
struct PreviewQuery {
    kind: Option<String>,
    lang: Option<String>,
    card_no: Option<String>,
}

async fn preview_page(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<PreviewQuery>,
) -> Result<Response, PageError> {
    staff.require(Permission::CampaignsManage)?;
    let l = staff.lang;
    let id = path_id(&id, l)?;
    let t = state.store.template(id).await.map_err(|e| PageError(e.into(), l))?;
    let first = t.variants.first().map(|v| v.channel_kind).unwrap_or(ChannelKind::Email);
    let kind = q.kind.as_deref().and_then(|k| ChannelKind::parse(k).ok()).unwrap_or(first);
    let lang = if q.lang.as_deref() == Some("en") { "en" } else { "zh" };
    let card_no = q.card_no.clone().unwrap_or_default();
    let mut page = PreviewPage {
        ctx: Ctx::staff(&staff, "campaigns", &format!("/messaging/templates/{id}/preview")),
        tabs: tabs(&staff, "tab-templates"),
        kinds: opts(ChannelKind::ALL, kind, ChannelKind::code, ChannelKind::label, l),
        langs: lang_opts(lang, l),
        t,
        card_no: card_no.clone(),
        error: None,
        reader: None,
        subject: String::new(),
        text: String::new(),
        html: None,
        rendered: false,
    };
    let status = match preview(&state.store, id, kind, lang, Some(&card_no)).await {
        Ok(p) => {
            page.reader = p.reader;
            page.subject = p.rendered.subject;
            page.text = p.rendered.text;
            page.html = p.rendered.html;
            page.rendered = true;
            StatusCode::OK
        }
        Err(AppError::Invalid(f)) => {
            page.error = Some(describe(&f, l));
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(e) => return Err(PageError(e, l)),
    };
    Ok(with_status(status, render(&page)))
}

// ---- settings ----

#[derive(Template)]
#[template(path = "messaging_settings.html")]
struct SettingsPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    notice: Notice,
    public_url: String,
}

async fn settings(State(state): State<AppState>, staff: Staff, Query(q): Query<FlashQuery>) -> Result<Response, PageError> {
    staff.require(Permission::ChannelsConfigure)?;
    let l = staff.lang;
    let public_url = state.store.public_url().await.map_err(|e| PageError(e.into(), l))?;
    let notice = match q.flash.as_deref() {
        Some("saved") => Notice { error: None, ok: Some(l.pick("已保存", "Saved").into()) },
        _ => Notice::default(),
    };
    let page = SettingsPage {
        ctx: Ctx::staff(&staff, "campaigns", "/messaging/settings"),
        tabs: tabs(&staff, "tab-settings"),
        notice,
        public_url,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
struct SettingsForm {
    csrf: Option<String>,
    public_url: Option<String>,
}

async fn save_settings(State(state): State<AppState>, staff: Staff, Form(f): Form<SettingsForm>) -> Result<Response, PageError> {
    staff.require(Permission::ChannelsConfigure)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let l = staff.lang;
    let url = f.public_url.unwrap_or_default();
    match state.store.set_public_url(&staff.actor(), &url).await {
        Ok(_) => Ok(see_other("/messaging/settings?flash=saved")),
        Err(StoreError::Invalid(errs)) => {
            let page = SettingsPage {
                ctx: Ctx::staff(&staff, "campaigns", "/messaging/settings"),
                tabs: tabs(&staff, "tab-settings"),
                notice: Notice::error(describe(&errs, l)),
                public_url: url,
            };
            Ok(with_status(StatusCode::UNPROCESSABLE_ENTITY, render(&page)))
        }
        Err(e) => Err(PageError(e.into(), l)),
    }
}
