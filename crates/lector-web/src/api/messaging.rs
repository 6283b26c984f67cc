//! `/api/v1/channels` and `/api/v1/templates`: messaging channels (needs `ChannelsConfigure`)
//! and message templates with their preview (needs `CampaignsManage`). Permissions are checked
//! before a body is read or a record loaded. A channel's secret can be set but is never returned
//! (`has_secret` says whether one is stored). A template that does not parse or render is a 422
//! whose `fields` name the variant, the part and the line.

use super::dto::ErrorBody;
use super::json::ApiJson;
use super::readers::reader_id;
use crate::auth::ApiUser;
use crate::error::AppError;
use crate::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use lector_domain::messaging::{ChannelKind, ChannelSettings, Purpose};
use lector_domain::role::Permission;
use lector_domain::{FieldErrors, Msg};
use lector_messaging::render::{self, Rendered};
use lector_messaging::send::{Outgoing, Sender};
use lector_messaging::worker::{library_name, message_vars, to_variant, Links};
use lector_store::channels::{Channel, ChannelInput};
use lector_store::templates::{Template, TemplateInput, TemplateVariant};
use lector_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/channels", get(list_channels).post(create_channel))
        .route("/channels/{id}", get(get_channel).put(update_channel))
        .route("/channels/{id}/test", post(test_channel))
        .route("/templates", get(list_templates).post(create_template))
        .route("/templates/{id}", get(get_template).put(update_template))
        .route("/templates/{id}/preview", post(preview_template))
}

/// This module's part of the OpenAPI document (merged into [`super::ApiDoc`]).
#[derive(OpenApi)]
#[openapi(
    paths(
        list_channels,
        create_channel,
        get_channel,
        update_channel,
        test_channel,
        list_templates,
        create_template,
        get_template,
        update_template,
        preview_template,
    ),
    components(schemas(
        ChannelBody,
        ChannelRequest,
        TestSendRequest,
        TestSendResult,
        VariantBody,
        TemplateBody,
        TemplateRequest,
        PreviewRequest,
        PreviewBody,
    )),
    tags(
        (name = "channels", description = "Messaging channels (消息渠道): SMTP, SMS gateway, WeCom, DingTalk, QQ, webhooks"),
        (name = "templates", description = "Message templates (消息模板) per channel kind and language, and their preview"),
    ),
)]
pub struct Doc;

// ---- shared with the pages ----

/// Checks every variant renders; a failure names `variants[i].part` and the line.
pub fn check_variants(variants: &[TemplateVariant]) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    for (i, v) in variants.iter().enumerate() {
        if let Err(e) = render::check(&to_variant(v)) {
            errs.push(format!("variants[{i}].{}", e.part), e.msg());
        }
    }
    errs.finish(|| ())
}

/// A template rendered for one reader (or with empty reader fields).
pub struct Preview {
    pub rendered: Rendered,
    /// The reader it was rendered for.
    pub reader: Option<String>,
}

/// Renders template `id`'s variant for `kind` and `lang` (Chinese when missing) with the reader
/// whose card number is `card_no`. The links point at the real portal pages; the unsubscribe
/// link carries no valid token.
pub async fn preview(store: &Store, id: i64, kind: ChannelKind, lang: &str, card_no: Option<&str>) -> Result<Preview, AppError> {
    let template = store.template(id).await?;
    let lang = if lang == "en" { "en" } else { "zh" };
    let Some(variant) = store.template_variant(template.id, kind, lang).await? else {
        let mut e = FieldErrors::default();
        e.push(
            "channel_kind",
            Msg::new(format!("模板没有{}的内容", kind.label().zh), format!("the template has no variant for {}", kind.label().en)),
        );
        return Err(AppError::Invalid(e));
    };
    let reader = match card_no.map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(card) => {
            let r = store.reader_by_card(card).await.map_err(|e| match e {
                StoreError::NotFound => {
                    let mut f = FieldErrors::default();
                    f.push("card_no", Msg::new(format!("没有读者证号为“{card}”的读者"), format!("no reader has card number '{card}'")));
                    AppError::Invalid(f)
                }
                e => e.into(),
            })?;
            store.message_readers(&[r.id]).await?.remove(&r.id)
        }
    };
    let base = store.public_url().await?;
    let links = Links {
        unsubscribe_url: reader.as_ref().map(|_| format!("{base}/portal/unsubscribe/preview")),
        preferences_url: Some(format!("{base}/portal/preferences")),
    };
    let library = store.channels().await?.into_iter().find(|c| c.kind == kind).map(|c| library_name(&c, lang));
    let library = library.unwrap_or_else(|| if lang == "en" { "The Library".into() } else { "图书馆".into() });
    let vars = message_vars(reader.as_ref(), lang, None, &library, &serde_json::Value::Null, &links);
    let rendered = render::render(&to_variant(&variant), &vars).map_err(|e| {
        let mut f = FieldErrors::default();
        f.push(format!("variant.{}", e.part), e.msg());
        AppError::Invalid(f)
    })?;
    Ok(Preview { rendered, reader: reader.map(|r| r.name) })
}

/// Sends a test message on channel `id` to `address` (parsed as the channel's kind of address)
/// and says what happened: `Ok` once the server accepted it, else the real error.
pub async fn test_send(store: &Store, id: i64, address: &str, from: &str) -> Result<Result<String, Msg>, AppError> {
    let (channel, secret) = store.channel_for_sending(id).await?;
    let address = match channel.kind.address_kind() {
        Some(kind) => kind.parse_value(address),
        None => {
            Some(address.trim()).filter(|a| !a.is_empty()).map(str::to_string).ok_or_else(|| Msg::new("请填写接收方", "enter a recipient"))
        }
    };
    let address = address.map_err(|m| {
        let mut f = FieldErrors::default();
        f.push("address", m);
        AppError::Invalid(f)
    })?;
    let sender = match Sender::new(&channel.settings, secret.as_deref()) {
        Ok(s) => s,
        Err(m) => return Ok(Err(m)),
    };
    let msg = Outgoing {
        address: address.clone(),
        display_name: from.to_string(),
        subject: format!("Lector 测试消息 / test message ({})", channel.name),
        text: format!(
            "这是 Lector 渠道“{}”的测试消息，由 {from} 发送。\nThis is a test message on Lector's channel '{}', sent by {from}.",
            channel.name, channel.name
        ),
        html: None,
        message_id: format!("<test-{:016x}@lector>", rand::random::<u64>()),
        unsubscribe_url: None,
        preferences_url: None,
        extra: serde_json::json!({"test": true}),
    };
    Ok(match sender.send(&msg).await {
        Ok(()) => Ok(address),
        Err(e) => Err(Msg::new(format!("发送失败：{e}"), format!("not sent: {e}"))),
    })
}

// ---- bodies ----

/// A channel as the API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelBody {
    pub id: i64,
    pub code: String,
    /// `email`, `sms`, `wecom`, `dingtalk`, `qq` or `webhook`.
    pub kind: String,
    pub name: String,
    /// The settings, tagged by `kind` (see `ChannelRequest.settings`).
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// Whether a secret (password, signing secret, token) is stored. The secret itself is never shown.
    pub has_secret: bool,
    pub rate_per_second: i64,
    pub enabled: bool,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Channel> for ChannelBody {
    fn from(c: Channel) -> Self {
        ChannelBody {
            id: c.id,
            code: c.code,
            kind: c.kind.code().into(),
            name: c.name,
            settings: serde_json::to_value(&c.settings).unwrap_or_default(),
            has_secret: c.has_secret,
            rate_per_second: c.rate_per_second,
            enabled: c.enabled,
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

fn default_rate() -> i64 {
    10
}

fn yes() -> bool {
    true
}

/// A channel to create or change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelRequest {
    #[schema(example = "campus_mail")]
    pub code: String,
    #[schema(example = "校园邮箱")]
    pub name: String,
    /// Tagged by `kind`: `email` {host, port, security: plain|starttls|tls, username, from_address,
    /// from_name, qq_mailbox, accept_invalid_certs}; `sms` {url, mobile_field, text_field};
    /// `wecom`, `dingtalk`, `qq`, `webhook` {url}. A channel's kind cannot change.
    #[schema(value_type = Object, example = json!({"kind": "email", "host": "smtp.example.edu.cn", "port": 587, "security": "starttls", "username": "library", "from_address": "library@example.edu.cn", "from_name": "图书馆"}))]
    pub settings: ChannelSettings,
    /// SMTP password, robot signing secret or gateway token. Omitted or empty: keep the stored one.
    #[serde(default)]
    pub secret: Option<String>,
    /// 1 to 10000 (default 10).
    #[serde(default = "default_rate")]
    pub rate_per_second: i64,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// On update: the version the change is based on (409 when stale).
    #[serde(default)]
    pub version: Option<i64>,
}

impl ChannelRequest {
    fn input(self) -> ChannelInput {
        ChannelInput {
            code: self.code,
            name: self.name,
            settings: self.settings,
            secret: self.secret,
            rate_per_second: self.rate_per_second,
            enabled: self.enabled,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSendRequest {
    /// An email address, mobile or QQ number, as the channel's kind needs.
    pub address: String,
}

/// What a test send did: `sent`, or the error the server or endpoint gave.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestSendResult {
    pub sent: bool,
    pub address: Option<String>,
    pub error: Option<String>,
    pub error_zh: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantBody {
    /// `email`, `sms`, `wecom`, `dingtalk`, `qq` or `webhook`.
    pub channel_kind: String,
    /// `zh` or `en`.
    pub lang: String,
    #[serde(default)]
    pub subject: String,
    /// minijinja: `{{ reader.name }}`, `{{ reader.card_no }}`, `{{ unsubscribe_url }}` …
    #[schema(example = "{{ reader.name }}，您好：\n您的读者证将于 {{ reader.expires_on }} 到期。")]
    pub body_text: String,
    /// Email only.
    #[serde(default)]
    pub body_html: Option<String>,
}

impl From<TemplateVariant> for VariantBody {
    fn from(v: TemplateVariant) -> Self {
        VariantBody {
            channel_kind: v.channel_kind.code().into(),
            lang: v.lang,
            subject: v.subject,
            body_text: v.body_text,
            body_html: v.body_html,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateBody {
    pub id: i64,
    pub code: String,
    pub name: String,
    /// `service`, `news` or `survey`.
    pub purpose: String,
    pub variants: Vec<VariantBody>,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Template> for TemplateBody {
    fn from(t: Template) -> Self {
        TemplateBody {
            id: t.id,
            code: t.code,
            name: t.name,
            purpose: t.purpose.code().into(),
            variants: t.variants.into_iter().map(Into::into).collect(),
            version: t.version,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A template to create or replace (its variants replace the stored ones).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    #[schema(example = "card_expiry")]
    pub code: String,
    #[schema(example = "读者证到期提醒")]
    pub name: String,
    /// `service`, `news` or `survey`.
    pub purpose: String,
    #[serde(default)]
    pub variants: Vec<VariantBody>,
    /// On update: the version the change is based on (409 when stale).
    #[serde(default)]
    pub version: Option<i64>,
}

impl TemplateRequest {
    /// The store's input, with the codes parsed and every variant checked.
    fn input(self) -> Result<(TemplateInput, Option<i64>), AppError> {
        let mut errs = FieldErrors::default();
        let purpose = errs.take("purpose", Purpose::parse(&self.purpose));
        let mut variants = Vec::new();
        for (i, v) in self.variants.into_iter().enumerate() {
            if let Some(kind) = errs.take(&format!("variants[{i}].channel_kind"), ChannelKind::parse(&v.channel_kind)) {
                variants.push(TemplateVariant {
                    channel_kind: kind,
                    lang: v.lang,
                    subject: v.subject,
                    body_text: v.body_text,
                    body_html: v.body_html,
                });
            }
        }
        errs.finish(|| ()).map_err(AppError::Invalid)?;
        check_variants(&variants).map_err(AppError::Invalid)?;
        let purpose = purpose.unwrap_or(Purpose::Service);
        Ok((TemplateInput { code: self.code, name: self.name, purpose, variants }, self.version))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The reader to render for; omitted: empty reader fields.
    #[serde(default)]
    pub card_no: Option<String>,
    /// Which variant: `email`, `sms`, `wecom`, `dingtalk`, `qq` or `webhook`.
    pub channel_kind: String,
    /// `zh` (default) or `en`; falls back to `zh` when the template has no English variant.
    #[serde(default)]
    pub lang: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewBody {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// The name of the reader rendered for.
    pub reader: Option<String>,
}

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<i64, AppError> {
    reader_id(id)
}

// ---- handlers: channels ----

/// Every channel. Needs `channels.configure`.
#[utoipa::path(
    get, path = "/api/v1/channels", tag = "channels",
    responses(
        (status = 200, description = "The channels, by code", body = [ChannelBody]),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not configure channels", body = ErrorBody),
    )
)]
pub async fn list_channels(State(state): State<AppState>, user: ApiUser) -> Result<Json<Vec<ChannelBody>>, AppError> {
    user.require(Permission::ChannelsConfigure)?;
    Ok(Json(state.store.channels().await?.into_iter().map(Into::into).collect()))
}

/// Creates a channel. Needs `channels.configure`. Audited (the secret never appears).
#[utoipa::path(
    post, path = "/api/v1/channels", tag = "channels",
    request_body(content = ChannelRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = ChannelBody),
        (status = 400, description = "Not JSON or not of this shape", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not configure channels", body = ErrorBody),
        (status = 409, description = "The code is taken", body = ErrorBody),
        (status = 422, description = "A bad field, named in `fields`", body = ErrorBody),
    )
)]
pub async fn create_channel(
    State(state): State<AppState>,
    user: ApiUser,
    req: Request,
) -> Result<(StatusCode, Json<ChannelBody>), AppError> {
    user.require(Permission::ChannelsConfigure)?;
    let ApiJson(body) = ApiJson::<ChannelRequest>::from_request(req, &state).await?;
    let c = state.store.create_channel(&user.actor(), &body.input()).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// One channel. Needs `channels.configure`.
#[utoipa::path(
    get, path = "/api/v1/channels/{id}", tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    responses(
        (status = 200, description = "The channel", body = ChannelBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not configure channels", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
    )
)]
pub async fn get_channel(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ChannelBody>, AppError> {
    user.require(Permission::ChannelsConfigure)?;
    Ok(Json(state.store.channel(path_id(id)?).await?.into()))
}

/// Changes a channel (its kind is fixed). An omitted or empty `secret` keeps the stored one.
/// Needs `channels.configure`. Audited.
#[utoipa::path(
    put, path = "/api/v1/channels/{id}", tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    request_body(content = ChannelRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = ChannelBody),
        (status = 400, description = "Not JSON or not of this shape", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not configure channels", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 409, description = "A stale version or a taken code", body = ErrorBody),
        (status = 422, description = "A bad field, named in `fields`", body = ErrorBody),
    )
)]
pub async fn update_channel(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<ChannelBody>, AppError> {
    user.require(Permission::ChannelsConfigure)?;
    let id = path_id(id)?;
    let ApiJson(body) = ApiJson::<ChannelRequest>::from_request(req, &state).await?;
    let version = body.version;
    Ok(Json(state.store.update_channel(&user.actor(), id, version, &body.input()).await?.into()))
}

/// Sends a test message on the channel to an address and reports the real outcome. Needs
/// `channels.configure`.
#[utoipa::path(
    post, path = "/api/v1/channels/{id}/test", tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    request_body(content = TestSendRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Sent, or the error that stopped it", body = TestSendResult),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not configure channels", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 422, description = "Not an address for this channel", body = ErrorBody),
    )
)]
pub async fn test_channel(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<TestSendResult>, AppError> {
    user.require(Permission::ChannelsConfigure)?;
    let id = path_id(id)?;
    let ApiJson(body) = ApiJson::<TestSendRequest>::from_request(req, &state).await?;
    let from = if user.user.display_name.is_empty() { user.user.username.clone() } else { user.user.display_name.clone() };
    Ok(Json(match test_send(&state.store, id, &body.address, &from).await? {
        Ok(address) => TestSendResult { sent: true, address: Some(address), error: None, error_zh: None },
        Err(m) => TestSendResult { sent: false, address: None, error: Some(m.en), error_zh: Some(m.zh) },
    }))
}

// ---- handlers: templates ----

/// Every template with its variants. Needs `campaigns.manage`.
#[utoipa::path(
    get, path = "/api/v1/templates", tag = "templates",
    responses(
        (status = 200, description = "The templates, by code", body = [TemplateBody]),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
    )
)]
pub async fn list_templates(State(state): State<AppState>, user: ApiUser) -> Result<Json<Vec<TemplateBody>>, AppError> {
    user.require(Permission::CampaignsManage)?;
    Ok(Json(state.store.templates().await?.into_iter().map(Into::into).collect()))
}

/// Creates a template; every variant must render. Needs `campaigns.manage`. Audited.
#[utoipa::path(
    post, path = "/api/v1/templates", tag = "templates",
    request_body(content = TemplateRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = TemplateBody),
        (status = 400, description = "Not JSON or not of this shape", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 409, description = "The code is taken", body = ErrorBody),
        (status = 422, description = "A bad field or a template error, named in `fields` (variant, part and line)", body = ErrorBody),
    )
)]
pub async fn create_template(
    State(state): State<AppState>,
    user: ApiUser,
    req: Request,
) -> Result<(StatusCode, Json<TemplateBody>), AppError> {
    user.require(Permission::CampaignsManage)?;
    let ApiJson(body) = ApiJson::<TemplateRequest>::from_request(req, &state).await?;
    let (input, _) = body.input()?;
    let t = state.store.create_template(&user.actor(), &input).await?;
    Ok((StatusCode::CREATED, Json(t.into())))
}

/// One template. Needs `campaigns.manage`.
#[utoipa::path(
    get, path = "/api/v1/templates/{id}", tag = "templates",
    params(("id" = i64, Path, description = "Template id")),
    responses(
        (status = 200, description = "The template", body = TemplateBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such template", body = ErrorBody),
    )
)]
pub async fn get_template(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TemplateBody>, AppError> {
    user.require(Permission::CampaignsManage)?;
    Ok(Json(state.store.template(path_id(id)?).await?.into()))
}

/// Replaces a template's code, name, purpose and variants; every variant must render. Needs
/// `campaigns.manage`. Audited.
#[utoipa::path(
    put, path = "/api/v1/templates/{id}", tag = "templates",
    params(("id" = i64, Path, description = "Template id")),
    request_body(content = TemplateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = TemplateBody),
        (status = 400, description = "Not JSON or not of this shape", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such template", body = ErrorBody),
        (status = 409, description = "A stale version or a taken code", body = ErrorBody),
        (status = 422, description = "A bad field or a template error, named in `fields` (variant, part and line)", body = ErrorBody),
    )
)]
pub async fn update_template(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<TemplateBody>, AppError> {
    user.require(Permission::CampaignsManage)?;
    let id = path_id(id)?;
    let ApiJson(body) = ApiJson::<TemplateRequest>::from_request(req, &state).await?;
    let (input, version) = body.input()?;
    Ok(Json(state.store.update_template(&user.actor(), id, version, &input).await?.into()))
}

/// Renders a template's variant for a reader chosen by card number. Needs `campaigns.manage`.
#[utoipa::path(
    post, path = "/api/v1/templates/{id}/preview", tag = "templates",
    params(("id" = i64, Path, description = "Template id")),
    request_body(content = PreviewRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The rendered message", body = PreviewBody),
        (status = 400, description = "Not JSON or not of this shape", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such template", body = ErrorBody),
        (status = 422, description = "No such reader or variant, or a template error naming the part and line", body = ErrorBody),
    )
)]
pub async fn preview_template(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<PreviewBody>, AppError> {
    user.require(Permission::CampaignsManage)?;
    let id = path_id(id)?;
    let ApiJson(body) = ApiJson::<PreviewRequest>::from_request(req, &state).await?;
    let kind = ChannelKind::parse(&body.channel_kind).map_err(|m| {
        let mut f = FieldErrors::default();
        f.push("channel_kind", m);
        AppError::Invalid(f)
    })?;
    let p = preview(&state.store, id, kind, body.lang.as_deref().unwrap_or("zh"), body.card_no.as_deref()).await?;
    Ok(Json(PreviewBody { subject: p.rendered.subject, text: p.rendered.text, html: p.rendered.html, reader: p.reader }))
}
