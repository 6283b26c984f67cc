//! Campaigns (群发任务): the list with progress, writing a campaign (segment, template, purpose,
//! channels in order of preference, schedule, quiet hours) with its audience counted before
//! sending, a test sent to yourself, send now / schedule / pause / resume / cancel, the report,
//! and the settings of the triggered messages.
//!
//! Campaign routes need `CampaignsManage`; the triggered messages need `ChannelsConfigure`. A
//! move the campaign's state does not allow answers 409 with a page saying why.

use super::{checked_post, local_time, messaging_common, path_id, render, see_other, store_err, CsrfForm, Ctx, Opt, Tab};
use crate::api::campaigns::{mask_address, parse_draft};
use crate::auth::{PageError, Staff};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Form, Router};
use lector_domain::campaign::{CampaignDraft, MAX_CHANNELS};
use lector_domain::messaging::{CampaignStatus, OutboxStatus, Purpose, Trigger};
use lector_domain::role::Permission;
use lector_domain::{FieldErrors, Msg};
use lector_messaging::render::render as render_message;
use lector_messaging::send::{Outgoing, Sender};
use lector_messaging::worker::{library_name, message_vars, to_variant, Links};
use lector_store::audit::Change;
use lector_store::campaigns::{Audience, Campaign, FailureCount, Recipient};
use lector_store::channels::Channel;
use lector_store::readers::ReaderSort;
use lector_store::segments::MemberQuery;
use lector_store::triggers::TriggerSettingInput;
use lector_store::{Page, StoreError};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/campaigns", get(list))
        .route("/campaigns/new", get(new_form).post(create))
        .route("/campaigns/triggers", get(triggers))
        .route("/campaigns/triggers/{code}", post(save_trigger))
        .route("/campaigns/{id}", get(detail).post(update))
        .route("/campaigns/{id}/report", get(report))
        .route("/campaigns/{id}/test", post(send_test))
        .route("/campaigns/{id}/start", button("started", |s, a, id| async move { s.start_campaign(&a, id).await }))
        .route("/campaigns/{id}/schedule", button("scheduled", |s, a, id| async move { s.schedule_campaign(&a, id).await }))
        .route("/campaigns/{id}/pause", button("paused", |s, a, id| async move { s.pause_campaign(&a, id).await }))
        .route("/campaigns/{id}/resume", button("resumed", |s, a, id| async move { s.resume_campaign(&a, id).await }))
        .route("/campaigns/{id}/cancel", button("cancelled", |s, a, id| async move { s.cancel_campaign(&a, id).await }))
        .route("/campaigns/{id}/delete", post(delete))
}

/// The page header with the confirmation named by `?flash=`.
fn page_ctx(staff: &Staff, path: &str, flash: Option<&str>) -> Ctx {
    let ctx = Ctx::staff(staff, "campaigns", path);
    let own = match flash {
        Some("started") => Some(("已开始发送", "Sending started")),
        Some("scheduled") => Some(("已排期", "Scheduled")),
        Some("paused") => Some(("已暂停", "Paused")),
        Some("resumed") => Some(("已继续发送", "Sending resumed")),
        Some("cancelled") => Some(("已取消", "Cancelled")),
        _ => None,
    };
    match own {
        Some((zh, en)) => Ctx { flash: Some(staff.lang.pick(zh, en).to_string()), ..ctx },
        None => ctx.with_flash(flash),
    }
}

/// Campaigns, triggered messages, and the messaging pages next door, as far as the user may go.
fn tabs(staff: &Staff, active: &str) -> Vec<Tab> {
    messaging_common::tabs(staff, active, false)
}

fn status_class(s: CampaignStatus) -> &'static str {
    match s {
        CampaignStatus::Draft | CampaignStatus::Scheduled => "status-queued",
        CampaignStatus::Sending => "status-running",
        CampaignStatus::Paused => "status-undone",
        CampaignStatus::Completed => "status-succeeded",
        CampaignStatus::Cancelled => "status-failed",
    }
}

fn opt_time(t: &Option<String>) -> String {
    t.as_deref().map(local_time).unwrap_or_default()
}

// ---- the list ----

#[derive(Deserialize)]
struct ListParams {
    status: Option<String>,
    page: Option<i64>,
    flash: Option<String>,
}

pub struct CampaignRow {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub status_class: &'static str,
    pub segment: String,
    pub channels: String,
    pub recipients: i64,
    pub sent: i64,
    pub failed: i64,
    pub waiting: i64,
    pub percent: i64,
    /// Scheduled, started or created, whichever says most.
    pub when: String,
}

impl CampaignRow {
    fn new(c: &Campaign, l: Lang) -> Self {
        let p = &c.progress;
        let when = match (c.status, &c.started_at, &c.scheduled_at) {
            (CampaignStatus::Scheduled, _, Some(t)) => format!("{} {}", l.pick("排期", "scheduled"), local_time(t)),
            (_, Some(t), _) => format!("{} {}", l.pick("开始", "started"), local_time(t)),
            _ => format!("{} {}", l.pick("创建", "created"), local_time(&c.created_at)),
        };
        CampaignRow {
            id: c.id,
            name: c.name.clone(),
            status: l.msg(&c.status.label()),
            status_class: status_class(c.status),
            segment: c.segment_name.clone().unwrap_or_default(),
            channels: c.channels.join(" → "),
            recipients: c.recipients,
            sent: p.sent,
            failed: p.failed,
            waiting: p.pending + p.sending,
            percent: p.percent(),
            when,
        }
    }
}

#[derive(Template)]
#[template(path = "campaigns_list.html")]
struct ListPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    filters: Vec<Tab>,
    rows: Vec<CampaignRow>,
    page: Page<Campaign>,
    prev: Option<String>,
    next: Option<String>,
}

async fn list(State(state): State<AppState>, staff: Staff, Query(p): Query<ListParams>) -> Result<Response, PageError> {
    staff.require(Permission::CampaignsManage)?;
    let l = staff.lang;
    let status = p.status.as_deref().and_then(|s| CampaignStatus::parse(s).ok());
    let page = state.store.campaigns(status, p.page.unwrap_or(1), 25).await.map_err(store_err(l))?;
    let code = status.map(|s| s.code()).unwrap_or("");
    let link = |n: i64| format!("/campaigns?status={code}&page={n}");
    let mut filters =
        vec![Tab { href: "/campaigns".into(), label: l.pick("全部", "All").into(), id: "filter-all", active: status.is_none() }];
    for s in CampaignStatus::ALL {
        filters.push(Tab {
            href: format!("/campaigns?status={}", s.code()),
            label: l.msg(&s.label()),
            id: "filter",
            active: status == Some(*s),
        });
    }
    let view = ListPage {
        ctx: page_ctx(&staff, "/campaigns", p.flash.as_deref()),
        tabs: tabs(&staff, "tab-campaigns"),
        filters,
        rows: page.items.iter().map(|c| CampaignRow::new(c, l)).collect(),
        prev: (page.page > 1).then(|| link(page.page - 1)),
        next: (page.page < page.pages()).then(|| link(page.page + 1)),
        page,
    };
    Ok(render(&view))
}

// ---- writing a campaign ----

/// The campaign form's values as entered (or as stored).
#[derive(Debug, Clone, Default)]
struct Values {
    name: String,
    segment_id: Option<i64>,
    template_id: Option<i64>,
    purpose: String,
    channels: Vec<String>,
    /// Local time as a datetime input shows it (`2026-12-01T09:00`).
    scheduled_at: String,
    quiet_hours: String,
    version: i64,
}

impl Values {
    fn of(c: &Campaign) -> Values {
        let scheduled_at = c
            .scheduled_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default();
        Values {
            name: c.name.clone(),
            segment_id: Some(c.segment_id),
            template_id: Some(c.template_id),
            purpose: c.purpose.code().into(),
            channels: c.channels.clone(),
            scheduled_at,
            quiet_hours: c.quiet_start.clone().zip(c.quiet_end.clone()).map(|(s, e)| format!("{s}-{e}")).unwrap_or_default(),
            version: c.version,
        }
    }

    /// The posted form (channel selects repeat `channel`, in preference order) and its CSRF token.
    fn posted(pairs: &[(String, String)]) -> (Values, Option<String>) {
        let mut v = Values::default();
        let mut csrf = None;
        for (k, val) in pairs {
            let val = val.trim();
            match k.as_str() {
                "csrf" => csrf = Some(val.to_string()),
                "name" => v.name = val.into(),
                "segment_id" => v.segment_id = val.parse().ok(),
                "template_id" => v.template_id = val.parse().ok(),
                "purpose" => v.purpose = val.into(),
                "channel" if !val.is_empty() => v.channels.push(val.into()),
                "scheduled_at" => v.scheduled_at = val.into(),
                "quiet_hours" => v.quiet_hours = val.into(),
                "version" => v.version = val.parse().unwrap_or_default(),
                _ => {}
            }
        }
        (v, csrf)
    }

    fn draft(&self) -> CampaignDraft {
        let some = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        CampaignDraft {
            name: self.name.clone(),
            segment_id: self.segment_id,
            template_id: self.template_id,
            purpose: some(&self.purpose),
            channels: self.channels.clone(),
            scheduled_at: some(&self.scheduled_at),
            quiet_hours: some(&self.quiet_hours),
        }
    }
}

/// The "send a test to yourself" form and what came of it.
#[derive(Debug, Clone, Default)]
struct TestForm {
    address: String,
    channel: String,
    card_no: String,
    /// Whether it left, and what to say.
    result: Option<(bool, String)>,
}

pub struct ChannelLine {
    pub label: String,
    pub count: i64,
    pub enabled: bool,
}

#[derive(Template)]
#[template(path = "campaigns_form.html")]
struct FormPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    /// `None` for a new campaign.
    campaign: Option<Campaign>,
    status: String,
    v: Values,
    errors: FieldErrors,
    segments: Vec<Opt>,
    templates: Vec<Opt>,
    purposes: Vec<Opt>,
    /// One select per preference rank.
    slots: Vec<Vec<Opt>>,
    audience: Option<Audience>,
    audience_channels: Vec<ChannelLine>,
    audience_error: Option<String>,
    test: TestForm,
    test_channels: Vec<Opt>,
}

impl FormPage {
    fn err(&self, field: &str) -> Option<String> {
        self.errors.get(field).map(|m| self.ctx.l.msg(m))
    }

    fn action(&self) -> String {
        match &self.campaign {
            Some(c) => format!("/campaigns/{}", c.id),
            None => "/campaigns/new".into(),
        }
    }
}

/// Select options over `channels`, `selected` chosen, with a blank first.
fn channel_opts(channels: &[Channel], selected: Option<&str>, l: Lang, blank: &str) -> Vec<Opt> {
    let mut opts = vec![Opt { value: String::new(), label: blank.into(), selected: selected.is_none() }];
    opts.extend(channels.iter().map(|c| Opt {
        value: c.code.clone(),
        label: format!("{} ({}{})", c.name, l.msg(&c.kind.label()), if c.enabled { "" } else { l.pick("，已停用", ", disabled") }),
        selected: selected == Some(c.code.as_str()),
    }));
    opts
}

/// One select per preference rank over the configured channels.
fn channel_slots(channels: &[Channel], chosen: &[String], l: Lang) -> Vec<Vec<Opt>> {
    let n = channels.len().clamp(1, MAX_CHANNELS).max(chosen.len());
    (0..n).map(|i| channel_opts(channels, chosen.get(i).map(String::as_str), l, l.pick("（不选）", "(none)"))).collect()
}

async fn form_page(
    state: &AppState,
    staff: &Staff,
    campaign: Option<Campaign>,
    v: Values,
    errors: FieldErrors,
    mut test: TestForm,
) -> Result<FormPage, PageError> {
    let l = staff.lang;
    let store = &state.store;
    let err = store_err(l);
    let segments = store.segments().await.map_err(&err)?;
    let templates = store.templates().await.map_err(&err)?;
    let channels = store.channels().await.map_err(&err)?;
    let mut seg_opts =
        vec![Opt { value: String::new(), label: l.pick("（请选择）", "(choose)").into(), selected: v.segment_id.is_none() }];
    seg_opts.extend(segments.iter().map(|s| Opt {
        value: s.segment.id.to_string(),
        label: match s.members {
            Some(n) => format!("{} ({n})", s.segment.name),
            None => s.segment.name.clone(),
        },
        selected: v.segment_id == Some(s.segment.id),
    }));
    let mut tpl_opts =
        vec![Opt { value: String::new(), label: l.pick("（请选择）", "(choose)").into(), selected: v.template_id.is_none() }];
    tpl_opts.extend(templates.iter().map(|t| Opt {
        value: t.id.to_string(),
        label: format!("{} · {}", t.name, l.msg(&t.purpose.label())),
        selected: v.template_id == Some(t.id),
    }));
    let mut purposes =
        vec![Opt { value: String::new(), label: l.pick("（同模板）", "(the template's)").into(), selected: v.purpose.is_empty() }];
    purposes.extend(Purpose::ALL.iter().map(|p| Opt { value: p.code().into(), label: l.msg(&p.label()), selected: v.purpose == p.code() }));
    let (mut audience, mut audience_error) = (None, None);
    if let Some(c) = campaign.as_ref().filter(|c| c.status.is_editable()) {
        match store.campaign_audience(c.id).await {
            Ok(a) => audience = Some(a),
            // A segment whose filter no longer parses: the page still opens, saying so.
            Err(e) => {
                let e = AppError::from(e);
                audience_error = Some(l.msg(&e.message()));
            }
        }
    }
    let audience_channels = audience
        .as_ref()
        .map(|a| {
            a.per_channel
                .iter()
                .map(|p| ChannelLine { label: format!("{} ({})", p.name, p.code), count: p.count, enabled: p.enabled })
                .collect()
        })
        .unwrap_or_default();
    if test.address.is_empty() && test.result.is_none() {
        test.address = store.user_email(staff.user.id).await.map_err(&err)?.unwrap_or_default();
    }
    let campaign_channels: Vec<Channel> = channels.iter().filter(|c| v.channels.contains(&c.code)).cloned().collect();
    let preferred = if test.channel.is_empty() {
        campaign_channels
            .iter()
            .find(|c| c.kind == lector_domain::messaging::ChannelKind::Email)
            .or(campaign_channels.first())
            .map(|c| c.code.clone())
    } else {
        Some(test.channel.clone())
    };
    let test_channels = channel_opts(&campaign_channels, preferred.as_deref(), l, l.pick("（请选择渠道）", "(choose a channel)"));
    Ok(FormPage {
        ctx: Ctx::staff(staff, "campaigns", "/campaigns"),
        tabs: tabs(staff, "tab-campaigns"),
        status: campaign.as_ref().map(|c| l.msg(&c.status.label())).unwrap_or_else(|| l.msg(&CampaignStatus::Draft.label())),
        slots: channel_slots(&channels, &v.channels, l),
        campaign,
        v,
        errors,
        segments: seg_opts,
        templates: tpl_opts,
        purposes,
        audience,
        audience_channels,
        audience_error,
        test,
        test_channels,
    })
}

async fn new_form(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::CampaignsManage)?;
    let mut page = form_page(&state, &staff, None, Values::default(), FieldErrors::default(), TestForm::default()).await?;
    page.ctx = Ctx::staff(&staff, "campaigns", "/campaigns/new");
    Ok(render(&page))
}

/// The form again with its errors, answered 422.
async fn invalid(
    state: &AppState,
    staff: &Staff,
    campaign: Option<Campaign>,
    v: Values,
    errors: FieldErrors,
) -> Result<Response, PageError> {
    let page = form_page(state, staff, campaign, v, errors, TestForm::default()).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
}

async fn create(State(state): State<AppState>, staff: Staff, Form(pairs): Form<Vec<(String, String)>>) -> Result<Response, PageError> {
    staff.require(Permission::CampaignsManage)?;
    let (v, csrf) = Values::posted(&pairs);
    staff.check_csrf(csrf.as_deref())?;
    let input = match parse_draft(&v.draft()) {
        Ok(i) => i,
        Err(errors) => return invalid(&state, &staff, None, v, errors).await,
    };
    match state.store.create_campaign(&staff.actor(), &input).await {
        Ok(c) => Ok(see_other(&format!("/campaigns/{}?flash=created", c.id))),
        Err(StoreError::Invalid(errors)) => invalid(&state, &staff, None, v, errors).await,
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

#[derive(Deserialize)]
struct DetailParams {
    flash: Option<String>,
    status: Option<String>,
    page: Option<i64>,
}

/// A draft or scheduled campaign opens in its form; one that started shows its report.
async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Query(q): Query<DetailParams>,
) -> Result<Response, PageError> {
    staff.require(Permission::CampaignsManage)?;
    let l = staff.lang;
    let id = path_id(&raw, l)?;
    let c = state.store.campaign(id).await.map_err(store_err(l))?;
    if !c.status.is_editable() {
        return report_page(&state, &staff, c, q).await;
    }
    let v = Values::of(&c);
    let mut page = form_page(&state, &staff, Some(c), v, FieldErrors::default(), TestForm::default()).await?;
    page.ctx = page_ctx(&staff, &format!("/campaigns/{id}"), q.flash.as_deref());
    Ok(render(&page))
}

async fn update(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    staff.require(Permission::CampaignsManage)?;
    let (v, csrf) = Values::posted(&pairs);
    staff.check_csrf(csrf.as_deref())?;
    let l = staff.lang;
    let id = path_id(&raw, l)?;
    let c = state.store.campaign(id).await.map_err(store_err(l))?;
    let input = match parse_draft(&v.draft()) {
        Ok(i) => i,
        Err(errors) => return invalid(&state, &staff, Some(c), v, errors).await,
    };
    match state.store.update_campaign(&staff.actor(), id, v.version, &input).await {
        Ok(_) => Ok(see_other(&format!("/campaigns/{id}?flash=saved"))),
        Err(StoreError::Invalid(errors)) => invalid(&state, &staff, Some(c), v, errors).await,
        Err(e) => Err(PageError(e.into(), l)),
    }
}

#[derive(Deserialize)]
struct TestPost {
    csrf: Option<String>,
    #[serde(default)]
    address: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    card_no: String,
}

/// Renders the campaign for one reader (the card number given, else the segment's first
/// member by card number) and sends it to the address typed, now, on the chosen channel; the page shows what
/// the channel answered. Audited as `campaign.test`.
async fn send_test(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Form(f): Form<TestPost>,
) -> Result<Response, PageError> {
    let id = checked_post(&staff, Permission::CampaignsManage, f.csrf.as_deref(), &raw)?;
    let l = staff.lang;
    let c = state.store.campaign(id).await.map_err(store_err(l))?;
    let mut test =
        TestForm { address: f.address.trim().into(), channel: f.channel.trim().into(), card_no: f.card_no.trim().into(), result: None };
    let outcome = test_message(&state, &staff, &c, &test).await.map_err(store_err(l))?;
    let ok = outcome.is_ok();
    let text = match outcome {
        Ok(m) | Err(m) => l.msg(&m),
    };
    let audit = Change {
        action: "campaign.test",
        entity: "campaign",
        entity_id: Some(id.to_string()),
        summary: format!("test on {} to {}: {}", test.channel, test.address, if ok { "sent" } else { "not sent" }),
        before: None,
        after: None,
    };
    state.store.audit_access(&staff.actor(), audit).await.map_err(store_err(l))?;
    test.result = Some((ok, text));
    let v = Values::of(&c);
    let mut page = form_page(&state, &staff, Some(c), v, FieldErrors::default(), test).await?;
    page.ctx = Ctx::staff(&staff, "campaigns", &format!("/campaigns/{id}"));
    let status = if ok { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, render(&page)).into_response())
}

/// Builds and sends the test: `Ok(what happened)` when the channel accepted it, `Err(why not)`.
async fn test_message(state: &AppState, staff: &Staff, c: &Campaign, t: &TestForm) -> Result<Result<Msg, Msg>, StoreError> {
    let store = &state.store;
    if t.address.is_empty() {
        return Ok(Err(Msg::new("请填写接收测试消息的地址", "enter the address to send the test to")));
    }
    if !c.channels.contains(&t.channel) {
        return Ok(Err(Msg::new("请选择本群发任务的一个渠道", "choose one of the campaign's channels")));
    }
    let channel = store.channel_by_code(&t.channel).await?;
    let reader = if t.card_no.is_empty() {
        let q = MemberQuery { sort: Some(ReaderSort::CardNo), page: 1, per_page: 1, ..Default::default() };
        match store.segment_members(c.segment_id, &q).await?.items.first() {
            Some(m) => m.reader.id,
            None => {
                return Ok(Err(Msg::new(
                    "读者分组没有成员；请填写一个读者证号来预览",
                    "the segment has no members; give a card number to render with",
                )))
            }
        }
    } else {
        match store.reader_by_card(&t.card_no).await {
            Ok(r) => r.id,
            Err(StoreError::NotFound) => {
                return Ok(Err(Msg::new(
                    format!("没有读者证号为“{}”的读者", t.card_no),
                    format!("no reader has card number '{}'", t.card_no),
                )))
            }
            Err(e) => return Err(e),
        }
    };
    let readers = store.message_readers(&[reader]).await?;
    let r = readers.get(&reader);
    let lang = r.map(|r| r.lang.clone()).unwrap_or_else(|| "zh".into());
    let variant = match store.template_variant(c.template_id, channel.kind, &lang).await? {
        Some(v) => Some(v),
        None => store.template_variant(c.template_id, channel.kind, "zh").await?,
    };
    let Some(variant) = variant else {
        let kind = channel.kind.label();
        return Ok(Err(Msg::new(format!("模板没有“{}”的内容", kind.zh), format!("the template has no {} variant", kind.en))));
    };
    let base = store.public_url().await?;
    let links = Links { unsubscribe_url: None, preferences_url: Some(format!("{}/portal/preferences", base.trim_end_matches('/'))) };
    let vars = message_vars(r, &lang, Some(&c.name), &library_name(&channel, &lang), &serde_json::Value::Null, &links);
    let rendered = match render_message(&to_variant(&variant), &vars) {
        Ok(m) => m,
        Err(e) => return Ok(Err(e.msg())),
    };
    let (_, secret) = store.channel_for_sending(channel.id).await?;
    let sender = match Sender::new(&channel.settings, secret.as_deref()) {
        Ok(s) => s,
        Err(m) => return Ok(Err(m)),
    };
    let msg = Outgoing {
        address: t.address.clone(),
        display_name: staff.user.display_name.clone(),
        subject: format!("[测试 Test] {}", rendered.subject),
        text: rendered.text,
        html: rendered.html,
        message_id: format!("<test-{}.{:08x}@lector>", c.id, rand::random::<u32>()),
        unsubscribe_url: None,
        preferences_url: links.preferences_url,
        extra: serde_json::json!({"campaign": c.id, "test": true}),
    };
    Ok(match sender.send(&msg).await {
        Ok(()) => Ok(Msg::new(
            format!("测试消息已由“{}”发送到 {}（按读者 {} 生成）", channel.name, t.address, r.map(|r| r.card_no.as_str()).unwrap_or("")),
            format!(
                "the test left on '{}' for {} (rendered for reader {})",
                channel.name,
                t.address,
                r.map(|r| r.card_no.as_str()).unwrap_or("")
            ),
        )),
        Err(e) => Err(Msg::new(format!("发送失败：{}", e.reason()), format!("not sent: {}", e.reason()))),
    })
}

/// A button on a campaign, as a route: checked, done by `act`, then back to the campaign with
/// `flash`. One function serves start, schedule, pause, resume and cancel.
fn button<F, Fut>(flash: &'static str, act: F) -> MethodRouter<AppState>
where
    F: FnOnce(lector_store::Store, lector_store::Actor, i64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = lector_store::Result<Campaign>> + Send,
{
    post(move |State(state): State<AppState>, staff: Staff, Path(raw): Path<String>, Form(f): Form<CsrfForm>| async move {
        let id = checked_post(&staff, Permission::CampaignsManage, f.csrf.as_deref(), &raw)?;
        act(state.store.clone(), staff.actor(), id).await.map_err(store_err(staff.lang))?;
        Ok::<_, PageError>(see_other(&format!("/campaigns/{id}?flash={flash}")))
    })
}

async fn delete(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let id = checked_post(&staff, Permission::CampaignsManage, f.csrf.as_deref(), &raw)?;
    state.store.delete_campaign(&staff.actor(), id).await.map_err(store_err(staff.lang))?;
    Ok(see_other("/campaigns?flash=deleted"))
}

// ---- the report ----

pub struct CountRow {
    pub channel: String,
    pub status: String,
    pub count: i64,
}

pub struct RecipientRow {
    pub reader_id: Option<i64>,
    pub card_no: String,
    pub name: String,
    pub channel: String,
    pub address: String,
    pub status: String,
    pub attempts: i64,
    pub sent_at: String,
    pub error: String,
}

impl RecipientRow {
    fn new(r: &Recipient, l: Lang) -> Self {
        RecipientRow {
            reader_id: r.reader_id,
            card_no: r.card_no.clone().unwrap_or_default(),
            name: r.name.clone().unwrap_or_default(),
            channel: r.channel.clone(),
            address: mask_address(r.channel_kind, &r.address),
            status: l.msg(&r.status.label()),
            attempts: r.attempts,
            sent_at: opt_time(&r.sent_at),
            error: r.last_error.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "campaigns_report.html")]
struct ReportPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    c: Campaign,
    status: String,
    status_class: &'static str,
    purpose: String,
    quiet: String,
    scheduled: String,
    started: String,
    finished: String,
    by_channel: Vec<CountRow>,
    failures: Vec<FailureCount>,
    filters: Vec<Tab>,
    recipients: Vec<RecipientRow>,
    page: Page<Recipient>,
    prev: Option<String>,
    next: Option<String>,
    can_pause: bool,
    can_resume: bool,
    can_cancel: bool,
}

async fn report(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Query(q): Query<DetailParams>,
) -> Result<Response, PageError> {
    staff.require(Permission::CampaignsManage)?;
    let l = staff.lang;
    let id = path_id(&raw, l)?;
    let c = state.store.campaign(id).await.map_err(store_err(l))?;
    report_page(&state, &staff, c, q).await
}

async fn report_page(state: &AppState, staff: &Staff, c: Campaign, q: DetailParams) -> Result<Response, PageError> {
    let l = staff.lang;
    let err = store_err(l);
    let report = state.store.campaign_report(c.id).await.map_err(&err)?;
    let status = q.status.as_deref().and_then(|s| OutboxStatus::parse(s).ok());
    let page = state.store.campaign_recipients(c.id, status, q.page.unwrap_or(1), 50).await.map_err(&err)?;
    let base = format!("/campaigns/{}/report", c.id);
    let code = status.map(|s| s.code()).unwrap_or("");
    let link = |n: i64| format!("{base}?status={code}&page={n}");
    let mut filters =
        vec![Tab { href: base.clone(), label: l.pick("全部", "All").into(), id: "recipients-all", active: status.is_none() }];
    for s in OutboxStatus::ALL {
        filters.push(Tab {
            href: format!("{base}?status={}", s.code()),
            label: l.msg(&s.label()),
            id: "recipients-filter",
            active: status == Some(*s),
        });
    }
    let by_channel = report
        .by_channel
        .iter()
        .map(|b| CountRow { channel: b.channel.clone(), status: l.msg(&b.status.label()), count: b.count })
        .collect();
    let view = ReportPage {
        ctx: page_ctx(staff, &format!("/campaigns/{}", c.id), q.flash.as_deref()),
        tabs: tabs(staff, "tab-campaigns"),
        status: l.msg(&c.status.label()),
        status_class: status_class(c.status),
        purpose: l.msg(&c.purpose.label()),
        quiet: c.quiet_start.clone().zip(c.quiet_end.clone()).map(|(s, e)| format!("{s}–{e}")).unwrap_or_default(),
        scheduled: opt_time(&c.scheduled_at),
        started: opt_time(&c.started_at),
        finished: opt_time(&c.finished_at),
        by_channel,
        failures: report.failures,
        filters,
        recipients: page.items.iter().map(|r| RecipientRow::new(r, l)).collect(),
        prev: (page.page > 1).then(|| link(page.page - 1)),
        next: (page.page < page.pages()).then(|| link(page.page + 1)),
        page,
        can_pause: c.status == CampaignStatus::Sending,
        can_resume: c.status == CampaignStatus::Paused,
        can_cancel: !c.status.is_final(),
        c: report.campaign,
    };
    Ok(render(&view))
}

// ---- triggered messages ----

pub struct TriggerRow {
    pub code: &'static str,
    pub label: String,
    pub enabled: bool,
    pub enabled_at: String,
    pub templates: Vec<Opt>,
    pub slots: Vec<Vec<Opt>>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "campaigns_triggers.html")]
struct TriggersPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    rows: Vec<TriggerRow>,
}

/// The page, with `posted` (a trigger's form as sent, and its errors) in place of its stored
/// settings.
async fn triggers_page(
    state: &AppState,
    staff: &Staff,
    posted: Option<(Trigger, TriggerSettingInput, FieldErrors)>,
) -> Result<TriggersPage, PageError> {
    let l = staff.lang;
    let err = store_err(l);
    let settings = state.store.trigger_settings().await.map_err(&err)?;
    let templates = state.store.templates().await.map_err(&err)?;
    let channels = state.store.channels().await.map_err(&err)?;
    let rows = settings
        .iter()
        .map(|s| {
            let (template_id, chosen, enabled, error) = match &posted {
                Some((t, input, errs)) if *t == s.trigger => {
                    let msgs: Vec<String> = errs.0.iter().map(|e| l.msg(&e.message)).collect();
                    (input.template_id, input.channels.clone(), input.enabled, Some(msgs.join("；")))
                }
                _ => (s.template_id, s.channels.clone(), s.enabled, None),
            };
            let mut tpl =
                vec![Opt { value: String::new(), label: l.pick("（请选择）", "(choose)").into(), selected: template_id.is_none() }];
            tpl.extend(templates.iter().map(|t| Opt {
                value: t.id.to_string(),
                label: t.name.clone(),
                selected: template_id == Some(t.id),
            }));
            TriggerRow {
                code: s.trigger.code(),
                label: l.msg(&s.trigger.label()),
                enabled,
                enabled_at: opt_time(&s.enabled_at),
                templates: tpl,
                slots: channel_slots(&channels, &chosen, l),
                error,
            }
        })
        .collect();
    Ok(TriggersPage { ctx: Ctx::staff(staff, "campaigns", "/campaigns/triggers"), tabs: tabs(staff, "tab-triggers"), rows })
}

#[derive(Deserialize)]
struct FlashParams {
    flash: Option<String>,
}

async fn triggers(State(state): State<AppState>, staff: Staff, Query(q): Query<FlashParams>) -> Result<Response, PageError> {
    staff.require(Permission::ChannelsConfigure)?;
    let mut page = triggers_page(&state, &staff, None).await?;
    page.ctx = page.ctx.with_flash(q.flash.as_deref());
    Ok(render(&page))
}

async fn save_trigger(
    State(state): State<AppState>,
    staff: Staff,
    Path(code): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    staff.require(Permission::ChannelsConfigure)?;
    let csrf = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
    staff.check_csrf(csrf)?;
    let l = staff.lang;
    let trigger = Trigger::parse(&code).map_err(|_| PageError(AppError::NotFound, l))?;
    let mut input = TriggerSettingInput::default();
    for (k, v) in &pairs {
        let v = v.trim();
        match k.as_str() {
            "template_id" => input.template_id = v.parse().ok(),
            "channel" if !v.is_empty() => input.channels.push(v.into()),
            "enabled" => input.enabled = !v.is_empty(),
            _ => {}
        }
    }
    match state.store.set_trigger_setting(&staff.actor(), trigger, &input).await {
        Ok(_) => Ok(see_other("/campaigns/triggers?flash=saved")),
        Err(StoreError::Invalid(errs)) => {
            let page = triggers_page(&state, &staff, Some((trigger, input, errs))).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(e) => Err(PageError(e.into(), l)),
    }
}
