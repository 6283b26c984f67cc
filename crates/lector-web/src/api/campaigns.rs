//! `/api/v1/campaigns`: campaigns (群发任务) — a segment × a template × channels in order of
//! preference × a schedule: create, read, update and delete drafts, the audience before sending,
//! send now, schedule, pause, resume, cancel, and the report with its recipients.
//!
//! Every route needs `CampaignsManage`, checked before the body is read or the campaign loaded.
//! A move the campaign's state does not allow (resuming a draft, editing a campaign that is
//! sending, starting one whose segment matches nobody) is a 409 and changes nothing.

use super::dto::ErrorBody;
use super::imports::PageParams;
use super::json::ApiJson;
use super::readers::{query_error, reader_id};
use crate::auth::ApiUser;
use crate::error::AppError;
use crate::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lector_domain::campaign::{CampaignDraft, CampaignInput};
use lector_domain::messaging::{CampaignStatus, ChannelKind, OutboxStatus};
use lector_domain::role::Permission;
use lector_domain::{FieldErrors, Msg};
use lector_store::campaigns::{Audience, Campaign, CampaignReport, Recipient};
use lector_store::{Page, Store};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/campaigns", get(list_campaigns).post(create_campaign))
        .route("/campaigns/{id}", get(get_campaign).put(update_campaign).delete(delete_campaign))
        .route("/campaigns/{id}/audience", get(campaign_audience))
        .route("/campaigns/{id}/start", post(start_campaign))
        .route("/campaigns/{id}/schedule", post(schedule_campaign))
        .route("/campaigns/{id}/pause", post(pause_campaign))
        .route("/campaigns/{id}/resume", post(resume_campaign))
        .route("/campaigns/{id}/cancel", post(cancel_campaign))
        .route("/campaigns/{id}/report", get(campaign_report))
        .route("/campaigns/{id}/recipients", get(campaign_recipients))
}

/// This module's part of the OpenAPI document (merged into [`super::ApiDoc`]).
#[derive(OpenApi)]
#[openapi(
    paths(
        list_campaigns,
        create_campaign,
        get_campaign,
        update_campaign,
        delete_campaign,
        campaign_audience,
        start_campaign,
        schedule_campaign,
        pause_campaign,
        resume_campaign,
        cancel_campaign,
        campaign_report,
        campaign_recipients,
    ),
    components(schemas(
        CampaignBody,
        ProgressBody,
        CampaignPage,
        CampaignDraftBody,
        CampaignUpdateBody,
        AudienceBody,
        ChannelCountBody,
        ReportBody,
        ChannelStatusBody,
        FailureBody,
        RecipientBody,
        RecipientPage,
    )),
    tags((name = "campaigns", description = "Campaigns (群发任务): a segment, a template, channels in order of preference and a schedule")),
)]
pub struct Doc;

// ---- shared with the pages ----

/// Parses a campaign as entered, reading local times in the server's time zone.
pub fn parse_draft(d: &CampaignDraft) -> Result<CampaignInput, FieldErrors> {
    d.parse(chrono::Utc::now(), &chrono::Local)
}

/// An outbox address as staff see it in lists: masked like contact details.
pub fn mask_address(kind: ChannelKind, address: &str) -> String {
    match kind {
        ChannelKind::Email => crate::mask::mask_email(address),
        ChannelKind::Sms | ChannelKind::Wecom | ChannelKind::Dingtalk | ChannelKind::Qq => crate::mask::mask_number(address),
        ChannelKind::Webhook => address.to_string(),
    }
}

// ---- bodies ----

/// A campaign's outbox rows by status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressBody {
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// Share of rows that are sent, failed or cancelled, 0–100.
    pub percent: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignBody {
    pub id: i64,
    pub name: String,
    pub segment_id: i64,
    pub segment_name: Option<String>,
    pub template_id: i64,
    pub template_name: Option<String>,
    /// `service`, `news` or `survey`.
    pub purpose: String,
    /// Channel codes in order of preference.
    pub channels: Vec<String>,
    /// `draft`, `scheduled`, `sending`, `paused`, `completed` or `cancelled`.
    pub status: String,
    /// UTC RFC 3339.
    pub scheduled_at: Option<String>,
    /// `HH:MM-HH:MM` local time, when set.
    pub quiet_hours: Option<String>,
    /// Counted when it started: messages queued, members without consent, members without a
    /// usable address.
    pub recipients: i64,
    pub excluded_consent: i64,
    pub excluded_address: i64,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub version: i64,
    pub progress: ProgressBody,
}

impl From<Campaign> for CampaignBody {
    fn from(c: Campaign) -> Self {
        let p = &c.progress;
        let progress = ProgressBody {
            pending: p.pending,
            sending: p.sending,
            sent: p.sent,
            failed: p.failed,
            cancelled: p.cancelled,
            percent: p.percent(),
        };
        CampaignBody {
            id: c.id,
            name: c.name,
            segment_id: c.segment_id,
            segment_name: c.segment_name,
            template_id: c.template_id,
            template_name: c.template_name,
            purpose: c.purpose.code().into(),
            channels: c.channels,
            status: c.status.code().into(),
            scheduled_at: c.scheduled_at,
            quiet_hours: c.quiet_start.zip(c.quiet_end).map(|(s, e)| format!("{s}-{e}")),
            recipients: c.recipients,
            excluded_consent: c.excluded_consent,
            excluded_address: c.excluded_address,
            created_by: c.created_by,
            created_at: c.created_at,
            updated_at: c.updated_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            version: c.version,
            progress,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignPage {
    pub items: Vec<CampaignBody>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// A campaign as written. The purpose defaults to the template's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignDraftBody {
    #[schema(example = "计算机学院研究生讲座通知")]
    pub name: String,
    pub segment_id: i64,
    pub template_id: i64,
    /// `service`, `news` or `survey`; the template's when left out.
    #[serde(default)]
    pub purpose: Option<String>,
    /// Channel codes, first preferred: a reader gets the message on the first channel they
    /// have an address for and consented to.
    #[schema(example = json!(["wecom", "sms", "email"]))]
    pub channels: Vec<String>,
    /// RFC 3339, or local `YYYY-MM-DD HH:MM`; needed to schedule.
    #[serde(default)]
    pub scheduled_at: Option<String>,
    /// No sending between these local times.
    #[serde(default)]
    #[schema(example = "22:00-08:00")]
    pub quiet_hours: Option<String>,
}

impl CampaignDraftBody {
    fn draft(self) -> CampaignDraft {
        CampaignDraft {
            name: self.name,
            segment_id: Some(self.segment_id),
            template_id: Some(self.template_id),
            purpose: self.purpose,
            channels: self.channels,
            scheduled_at: self.scheduled_at,
            quiet_hours: self.quiet_hours,
        }
    }
}

/// A change to a draft or scheduled campaign, based on `version`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignUpdateBody {
    pub version: i64,
    pub name: String,
    pub segment_id: i64,
    pub template_id: i64,
    #[serde(default)]
    pub purpose: Option<String>,
    pub channels: Vec<String>,
    #[serde(default)]
    pub scheduled_at: Option<String>,
    #[serde(default)]
    pub quiet_hours: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelCountBody {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub count: i64,
}

/// Who the campaign would reach if it started now.
#[derive(Debug, Serialize, ToSchema)]
pub struct AudienceBody {
    pub members: i64,
    pub recipients: i64,
    pub excluded_consent: i64,
    pub excluded_address: i64,
    pub excluded_blocked: i64,
    /// Recipients by the channel they get the message on, in preference order.
    pub per_channel: Vec<ChannelCountBody>,
}

impl From<Audience> for AudienceBody {
    fn from(a: Audience) -> Self {
        AudienceBody {
            members: a.members,
            recipients: a.recipients,
            excluded_consent: a.excluded_consent,
            excluded_address: a.excluded_address,
            excluded_blocked: a.excluded_blocked,
            per_channel: a
                .per_channel
                .into_iter()
                .map(|c| ChannelCountBody { code: c.code, name: c.name, kind: c.kind.code().into(), enabled: c.enabled, count: c.count })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelStatusBody {
    pub channel: String,
    pub status: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailureBody {
    pub reason: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportBody {
    pub campaign: CampaignBody,
    pub by_channel: Vec<ChannelStatusBody>,
    /// Failure reasons, most frequent first.
    pub failures: Vec<FailureBody>,
}

impl From<CampaignReport> for ReportBody {
    fn from(r: CampaignReport) -> Self {
        ReportBody {
            campaign: r.campaign.into(),
            by_channel: r
                .by_channel
                .into_iter()
                .map(|b| ChannelStatusBody { channel: b.channel, status: b.status.code().into(), count: b.count })
                .collect(),
            failures: r.failures.into_iter().map(|f| FailureBody { reason: f.reason, count: f.count }).collect(),
        }
    }
}

/// One message of the campaign. The address is masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientBody {
    pub outbox_id: i64,
    pub reader_id: Option<i64>,
    pub card_no: Option<String>,
    pub name: Option<String>,
    pub channel: String,
    pub address: String,
    pub status: String,
    pub attempts: i64,
    pub sent_at: Option<String>,
    pub error: Option<String>,
}

impl From<Recipient> for RecipientBody {
    fn from(r: Recipient) -> Self {
        RecipientBody {
            outbox_id: r.outbox_id,
            reader_id: r.reader_id,
            card_no: r.card_no,
            name: r.name,
            address: mask_address(r.channel_kind, &r.address),
            channel: r.channel,
            status: r.status.code().into(),
            attempts: r.attempts,
            sent_at: r.sent_at,
            error: r.last_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientPage {
    pub items: Vec<RecipientBody>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

impl From<Page<Recipient>> for RecipientPage {
    fn from(p: Page<Recipient>) -> Self {
        RecipientPage { total: p.total, page: p.page, per_page: p.per_page, items: p.items.into_iter().map(Into::into).collect() }
    }
}

/// A status filter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusParams {
    /// A campaign status (list) or a message status (recipients); all when left out.
    pub status: Option<String>,
}

fn status_param<T>(raw: &Option<String>, parse: fn(&str) -> Result<T, Msg>) -> Result<Option<T>, AppError> {
    match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse(s).map(Some).map_err(|m| {
            let mut e = FieldErrors::default();
            e.push("status", m);
            AppError::Invalid(e)
        }),
    }
}

// ---- handlers ----

/// Campaigns, newest first, with their progress. Needs `campaigns.manage`.
#[utoipa::path(
    get, path = "/api/v1/campaigns", tag = "campaigns",
    params(StatusParams, PageParams),
    responses(
        (status = 200, description = "A page of campaigns", body = CampaignPage),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 422, description = "A bad parameter", body = ErrorBody),
    )
)]
pub async fn list_campaigns(
    State(state): State<AppState>,
    user: ApiUser,
    status: Result<Query<StatusParams>, QueryRejection>,
    pages: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<CampaignPage>, AppError> {
    user.require(Permission::CampaignsManage)?;
    let Query(s) = status.map_err(query_error)?;
    let Query(p) = pages.map_err(query_error)?;
    let status = status_param(&s.status, CampaignStatus::parse)?;
    let (page, per_page) = p.parse()?;
    let found = state.store.campaigns(status, page, per_page).await?;
    Ok(Json(CampaignPage {
        total: found.total,
        page: found.page,
        per_page: found.per_page,
        items: found.items.into_iter().map(Into::into).collect(),
    }))
}

/// Saves a draft campaign. Needs `campaigns.manage`.
#[utoipa::path(
    post, path = "/api/v1/campaigns", tag = "campaigns",
    request_body(content = CampaignDraftBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created (a draft)", body = CampaignBody),
        (status = 400, description = "Not JSON or not of this shape", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 422, description = "Bad input, named in `fields`", body = ErrorBody),
    )
)]
pub async fn create_campaign(State(state): State<AppState>, user: ApiUser, req: Request) -> Result<Response, AppError> {
    user.require(Permission::CampaignsManage)?;
    let ApiJson(body) = ApiJson::<CampaignDraftBody>::from_request(req, &state).await?;
    let input = parse_draft(&body.draft()).map_err(AppError::Invalid)?;
    let created = state.store.create_campaign(&user.actor(), &input).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/campaigns/{}", created.id)).expect("an ASCII path");
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(CampaignBody::from(created))).into_response())
}

/// One campaign with its progress. Needs `campaigns.manage`.
#[utoipa::path(
    get, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign", body = CampaignBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
    )
)]
pub async fn get_campaign(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CampaignBody>, AppError> {
    user.require(Permission::CampaignsManage)?;
    Ok(Json(state.store.campaign(reader_id(id)?).await?.into()))
}

/// Changes a draft or scheduled campaign still at `version`. Needs `campaigns.manage`.
#[utoipa::path(
    put, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body(content = CampaignUpdateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = CampaignBody),
        (status = 400, description = "Not JSON or not of this shape", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "A stale version, or the campaign already started", body = ErrorBody),
        (status = 422, description = "Bad input, named in `fields`", body = ErrorBody),
    )
)]
pub async fn update_campaign(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<CampaignBody>, AppError> {
    user.require(Permission::CampaignsManage)?;
    let id = reader_id(id)?;
    let ApiJson(b) = ApiJson::<CampaignUpdateBody>::from_request(req, &state).await?;
    let version = b.version;
    let draft = CampaignDraft {
        name: b.name,
        segment_id: Some(b.segment_id),
        template_id: Some(b.template_id),
        purpose: b.purpose,
        channels: b.channels,
        scheduled_at: b.scheduled_at,
        quiet_hours: b.quiet_hours,
    };
    let input = parse_draft(&draft).map_err(AppError::Invalid)?;
    Ok(Json(state.store.update_campaign(&user.actor(), id, version, &input).await?.into()))
}

/// Deletes a draft (campaigns that ever started are kept; cancel them). Needs `campaigns.manage`.
#[utoipa::path(
    delete, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "Not a draft", body = ErrorBody),
    )
)]
pub async fn delete_campaign(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AppError> {
    user.require(Permission::CampaignsManage)?;
    state.store.delete_campaign(&user.actor(), reader_id(id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the campaign reaches if it started now: members, recipients per channel, and the
/// members left out for want of consent, of an address, or for blocked addresses. Needs
/// `campaigns.manage`.
#[utoipa::path(
    get, path = "/api/v1/campaigns/{id}/audience", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The counts", body = AudienceBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
    )
)]
pub async fn campaign_audience(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<AudienceBody>, AppError> {
    user.require(Permission::CampaignsManage)?;
    Ok(Json(state.store.campaign_audience(reader_id(id)?).await?.into()))
}

/// A state change: checked, done, the campaign as it is now.
async fn act<F, Fut>(state: AppState, user: ApiUser, id: Result<Path<String>, PathRejection>, f: F) -> Result<Json<CampaignBody>, AppError>
where
    F: FnOnce(Store, lector_store::Actor, i64) -> Fut,
    Fut: std::future::Future<Output = lector_store::Result<Campaign>>,
{
    user.require(Permission::CampaignsManage)?;
    let id = reader_id(id)?;
    Ok(Json(f(state.store.clone(), user.actor(), id).await?.into()))
}

/// Sends now: the recipients are queued and the worker starts sending. Needs
/// `campaigns.manage`.
#[utoipa::path(
    post, path = "/api/v1/campaigns/{id}/start", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Sending", body = CampaignBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "Not a draft or scheduled, the segment matches nobody, no channel is enabled or nobody can be reached", body = ErrorBody),
    )
)]
pub async fn start_campaign(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CampaignBody>, AppError> {
    act(state, user, id, |s, a, id| async move { s.start_campaign(&a, id).await }).await
}

/// Schedules a draft for its `scheduled_at`. Needs `campaigns.manage`.
#[utoipa::path(
    post, path = "/api/v1/campaigns/{id}/schedule", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Scheduled", body = CampaignBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "Not a draft, or the segment matches nobody", body = ErrorBody),
        (status = 422, description = "No time in the future set", body = ErrorBody),
    )
)]
pub async fn schedule_campaign(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CampaignBody>, AppError> {
    act(state, user, id, |s, a, id| async move { s.schedule_campaign(&a, id).await }).await
}

/// Pauses a sending campaign: its remaining messages wait. Needs `campaigns.manage`.
#[utoipa::path(
    post, path = "/api/v1/campaigns/{id}/pause", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Paused", body = CampaignBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "Not sending", body = ErrorBody),
    )
)]
pub async fn pause_campaign(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CampaignBody>, AppError> {
    act(state, user, id, |s, a, id| async move { s.pause_campaign(&a, id).await }).await
}

/// Resumes a paused campaign. Needs `campaigns.manage`.
#[utoipa::path(
    post, path = "/api/v1/campaigns/{id}/resume", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Sending again", body = CampaignBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "Not paused", body = ErrorBody),
    )
)]
pub async fn resume_campaign(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CampaignBody>, AppError> {
    act(state, user, id, |s, a, id| async move { s.resume_campaign(&a, id).await }).await
}

/// Cancels a campaign not yet completed: its messages not yet sent are cancelled. Needs
/// `campaigns.manage`.
#[utoipa::path(
    post, path = "/api/v1/campaigns/{id}/cancel", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Cancelled", body = CampaignBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "Already completed or cancelled", body = ErrorBody),
    )
)]
pub async fn cancel_campaign(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CampaignBody>, AppError> {
    act(state, user, id, |s, a, id| async move { s.cancel_campaign(&a, id).await }).await
}

/// What became of the campaign's messages: counts by channel and status, failures by reason.
/// Needs `campaigns.manage`.
#[utoipa::path(
    get, path = "/api/v1/campaigns/{id}/report", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The report", body = ReportBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
    )
)]
pub async fn campaign_report(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ReportBody>, AppError> {
    user.require(Permission::CampaignsManage)?;
    Ok(Json(state.store.campaign_report(reader_id(id)?).await?.into()))
}

/// The campaign's messages, one per recipient (addresses masked), optionally of one status.
/// Needs `campaigns.manage`.
#[utoipa::path(
    get, path = "/api/v1/campaigns/{id}/recipients", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id"), StatusParams, PageParams),
    responses(
        (status = 200, description = "A page of recipients", body = RecipientPage),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage campaigns", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 422, description = "A bad parameter", body = ErrorBody),
    )
)]
pub async fn campaign_recipients(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    status: Result<Query<StatusParams>, QueryRejection>,
    pages: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<RecipientPage>, AppError> {
    user.require(Permission::CampaignsManage)?;
    let id = reader_id(id)?;
    let Query(s) = status.map_err(query_error)?;
    let Query(p) = pages.map_err(query_error)?;
    let status = status_param(&s.status, OutboxStatus::parse)?;
    let (page, per_page) = p.parse()?;
    Ok(Json(state.store.campaign_recipients(id, status, page, per_page).await?.into()))
}
