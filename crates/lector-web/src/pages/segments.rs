//! Segment pages (读者分组): the list, the editor (a builder of groups and conditions in plain
//! JavaScript that writes the filter's JSON into a textarea, which works alone without
//! JavaScript), the live count, members, freeze / unfreeze, export, bulk tag and hand-over,
//! delete. Every route needs `SegmentsManage`; export also `ReadersExport`, the tag
//! `ReadersEdit`, the hand-over `ReadersHandOver`.

use super::{checked_post, local_time, path_id, render, see_other, store_err, Ctx, Opt};
use crate::api::segments::export_response;
use crate::auth::{PageError, Staff};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::mask::mask;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Form, Json, Router};
use lector_domain::contact::ContactKind;
use lector_domain::role::Permission;
use lector_domain::segment::catalogue;
use lector_domain::{FieldErrors, Msg};
use lector_store::readers::ReaderSort;
use lector_store::segments::{MemberQuery, Segment, SegmentInput};
use lector_store::{Actor, Page, Store, StoreError};
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/segments.js", get(script))
        .route("/segments", get(list))
        .route("/segments/new", get(new_form).post(create))
        .route("/segments/count", post(count))
        .route("/segments/{id}", get(detail).post(update))
        .route("/segments/{id}/freeze", button(freeze))
        .route("/segments/{id}/unfreeze", button(unfreeze))
        .route("/segments/{id}/delete", button(delete))
        .route("/segments/{id}/tag", post(tag))
        .route("/segments/{id}/handover", post(hand_over))
        .route("/segments/{id}/export.csv", get(export))
}

/// A new segment starts with the active readers.
const DEFAULT_FILTER: &str = r#"{"all": [{"field": "status", "op": "eq", "value": "active"}]}"#;

const PER_PAGE: i64 = 25;

async fn script() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8"), (CACHE_CONTROL, "public, max-age=3600")], include_str!("../../static/segments.js"))
        .into_response()
}

/// The confirmation shown after a redirect (`?done=…`).
fn done_message(code: Option<&str>, n: Option<i64>, l: Lang) -> Option<String> {
    let n = n.unwrap_or(0);
    let (zh, en) = match code? {
        "created" => ("读者分组已创建".to_string(), "Segment created".to_string()),
        "saved" => ("已保存".to_string(), "Saved".to_string()),
        "deleted" => ("读者分组已删除".to_string(), "Segment deleted".to_string()),
        "frozen" => (format!("已冻结：{n} 位读者"), format!("Frozen: {n} readers")),
        "unfrozen" => ("已解除冻结，成员随条件变化".to_string(), "Unfrozen: members follow the filter again".to_string()),
        "tagged" => (format!("已为 {n} 位读者添加标签"), format!("Tagged {n} readers")),
        "handover" => (format!("已移交 {n} 位读者"), format!("Handed {n} readers over")),
        _ => return None,
    };
    Some(l.pick(&zh, &en).to_string())
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
    n: Option<i64>,
}

pub struct ListRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub members: String,
    pub frozen: Option<String>,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "segments_list.html")]
struct ListPage {
    ctx: Ctx,
    rows: Vec<ListRow>,
}

async fn list(State(state): State<AppState>, staff: Staff, Query(q): Query<Done>) -> Result<Response, PageError> {
    staff.require(Permission::SegmentsManage)?;
    let l = staff.lang;
    let segments = state.store.segments().await.map_err(store_err(l))?;
    let mut ctx = Ctx::staff(&staff, "segments", "/segments");
    ctx.flash = done_message(q.done.as_deref(), q.n, l);
    let rows = segments
        .into_iter()
        .map(|s| ListRow {
            id: s.segment.id,
            name: s.segment.name,
            description: s.segment.description,
            members: s.members.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
            frozen: s.segment.frozen_at.as_deref().map(local_time),
            updated: local_time(&s.segment.updated_at),
        })
        .collect();
    Ok(render(&ListPage { ctx, rows }))
}

/// The editor's fields as posted or loaded.
#[derive(Debug, Default, Clone, Deserialize)]
struct SegmentForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    version: i64,
}

/// One member row (contacts masked).
pub struct MemberRow {
    pub id: i64,
    pub card_no: String,
    pub name: String,
    pub category: String,
    pub affiliation: String,
    pub status: String,
    pub status_code: &'static str,
    pub owner: String,
    pub email: String,
    pub mobile: String,
    pub updated: String,
}

/// What only a saved segment's page has: members, snapshot, bulk actions.
pub struct Saved {
    pub id: i64,
    pub frozen_at: Option<String>,
    pub rows: Vec<MemberRow>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub sort_card: String,
    pub sort_name: String,
    pub sort_updated: String,
    pub can_export: bool,
    pub can_tag: bool,
    pub can_handover: bool,
    pub owner_opts: Vec<Opt>,
    pub tag: String,
    pub tag_error: Option<String>,
    pub reason: String,
    pub owner_error: Option<String>,
    pub reason_error: Option<String>,
    /// A refused action (delete while a campaign uses it, freeze twice …).
    pub action_error: Option<String>,
}

#[derive(Template)]
#[template(path = "segments_edit.html")]
struct EditPage {
    ctx: Ctx,
    form: SegmentForm,
    /// The builder's field catalogue, as JSON.
    fields: String,
    /// The filter's problems, as JSON `[{"field", "message"}]` for the builder.
    errors_json: String,
    /// The same, for readers without JavaScript.
    filter_errors: Vec<(String, String)>,
    name_error: Option<String>,
    description_error: Option<String>,
    error_summary: Option<String>,
    /// Readers matching the filter as shown (`None` when it does not parse).
    count: Option<i64>,
    saved: Option<Saved>,
}

#[derive(Debug, Default, Clone, Deserialize)]
struct DetailParams {
    page: Option<i64>,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    order: String,
    done: Option<String>,
    n: Option<i64>,
}

impl DetailParams {
    fn href(&self, id: i64, page: i64, sort: Option<&str>) -> String {
        let (sort, order) = match sort {
            Some(s) if s == self.sort && self.order != "desc" => (s.to_string(), "desc"),
            Some(s) => (s.to_string(), "asc"),
            None => (self.sort.clone(), self.order.as_str()),
        };
        format!("/segments/{id}?sort={}&order={order}&page={page}#members", crate::auth::urlencode(&sort))
    }
}

/// Everything the bulk-action forms hold when they come back with errors.
#[derive(Default)]
struct Bulk {
    tag: String,
    owner: String,
    reason: String,
    errors: FieldErrors,
    action_error: Option<String>,
}

fn form_of(s: &Segment) -> SegmentForm {
    SegmentForm {
        csrf: None,
        name: s.name.clone(),
        description: s.description.clone(),
        filter: serde_json::to_string_pretty(&s.filter).unwrap_or_default(),
        version: s.version,
    }
}

/// Renders the editor (and, for a saved segment, its members and actions).
#[allow(clippy::too_many_arguments)]
async fn edit_page(
    state: &AppState,
    staff: &Staff,
    id: Option<i64>,
    form: SegmentForm,
    errors: FieldErrors,
    error_summary: Option<String>,
    params: DetailParams,
    bulk: Bulk,
) -> Result<Response, PageError> {
    let l = staff.lang;
    let err = store_err(l);
    let vocab = state.store.filter_vocabulary().await.map_err(&err)?;
    let filter_errors: Vec<(String, String)> =
        errors.0.iter().filter(|e| e.field != "name" && e.field != "description").map(|e| (e.field.clone(), l.msg(&e.message))).collect();
    let count = match serde_json::from_str::<serde_json::Value>(&form.filter) {
        Ok(v) if filter_errors.is_empty() => match state.store.count_filter(&v).await {
            Ok(n) => Some(n),
            Err(StoreError::Invalid(_)) => None,
            Err(e) => return Err(err(e)),
        },
        _ => None,
    };
    let saved = match id {
        None => None,
        Some(id) => Some(saved_part(state, staff, id, &params, bulk).await?),
    };
    let failed = !errors.is_empty();
    let conflict = error_summary.is_some() || saved.as_ref().is_some_and(|s| s.action_error.is_some());
    let bulk_failed = saved.as_ref().is_some_and(|s| s.tag_error.is_some() || s.owner_error.is_some() || s.reason_error.is_some());
    let path = id.map(|i| format!("/segments/{i}")).unwrap_or_else(|| "/segments/new".into());
    let mut ctx = Ctx::staff(staff, "segments", &path);
    ctx.flash = done_message(params.done.as_deref(), params.n, l);
    let view = EditPage {
        ctx,
        fields: serde_json::to_string(&catalogue(&vocab)).unwrap_or_default(),
        errors_json: json!(filter_errors.iter().map(|(f, m)| json!({"field": f, "message": m})).collect::<Vec<_>>()).to_string(),
        name_error: errors.get("name").map(|m| l.msg(m)),
        description_error: errors.get("description").map(|m| l.msg(m)),
        error_summary: error_summary.or_else(|| {
            failed
                .then(|| l.msg(&Msg::new(format!("有 {} 处需要修改", errors.0.len()), format!("{} problem(s) to correct", errors.0.len()))))
        }),
        filter_errors,
        count,
        saved,
        form,
    };
    let status = if conflict && !failed {
        StatusCode::CONFLICT
    } else if failed || bulk_failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, render(&view)).into_response())
}

async fn saved_part(state: &AppState, staff: &Staff, id: i64, p: &DetailParams, bulk: Bulk) -> Result<Saved, PageError> {
    let l = staff.lang;
    let err = store_err(l);
    let segment = state.store.segment(id).await.map_err(&err)?;
    let q = MemberQuery { sort: ReaderSort::parse(&p.sort), desc: p.order == "desc", page: p.page.unwrap_or(1).max(1), per_page: PER_PAGE };
    let (page, members_error) = match state.store.segment_members(id, &q).await {
        Ok(page) => (page, None),
        // A saved filter that no longer parses: the editor shows why; no members to list.
        Err(StoreError::Invalid(_)) => (
            Page { items: Vec::new(), total: 0, total_capped: false, page: 1, per_page: PER_PAGE },
            Some(
                l.pick("条件已失效（引用的配置已删除），请修改条件", "the filter no longer holds (it names something removed); correct it")
                    .to_string(),
            ),
        ),
        Err(e) => return Err(err(e)),
    };
    let can_handover = staff.can(Permission::ReadersHandOver);
    let owner_opts = if can_handover {
        state
            .store
            .users()
            .await
            .map_err(&err)?
            .iter()
            .filter(|u| u.active && u.role.can(Permission::TrackingView))
            .map(|u| Opt {
                value: u.username.clone(),
                label: format!("{} ({})", u.display_name, u.username),
                selected: u.username == bulk.owner,
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows = page
        .items
        .iter()
        .map(|m| {
            let r = &m.reader;
            MemberRow {
                id: r.id,
                card_no: r.card_no.clone(),
                name: r.name.clone(),
                category: l.pick(&r.category.name_zh, &r.category.name_en).to_string(),
                affiliation: r.affiliation.clone().unwrap_or_default(),
                status: l.msg(&r.status.label()),
                status_code: r.status.code(),
                owner: r.owner.clone().unwrap_or_default(),
                email: m.email.as_deref().map(|e| mask(ContactKind::Email, e)).unwrap_or_default(),
                mobile: m.mobile.as_deref().map(|v| mask(ContactKind::Mobile, v)).unwrap_or_default(),
                updated: local_time(&r.updated_at).get(..10).unwrap_or_default().to_string(),
            }
        })
        .collect();
    let current = page.page;
    let msg = |f: &str| bulk.errors.get(f).map(|m| l.msg(m));
    Ok(Saved {
        id,
        frozen_at: segment.frozen_at.as_deref().map(local_time),
        rows,
        total: page.total,
        page: current,
        pages: page.pages(),
        prev: (current > 1).then(|| p.href(id, current - 1, None)),
        next: (current < page.pages()).then(|| p.href(id, current + 1, None)),
        sort_card: p.href(id, 1, Some("card_no")),
        sort_name: p.href(id, 1, Some("name")),
        sort_updated: p.href(id, 1, Some("updated")),
        can_export: staff.can(Permission::ReadersExport),
        can_tag: staff.can(Permission::ReadersEdit),
        can_handover,
        owner_opts,
        tag_error: msg("tag"),
        owner_error: msg("owner"),
        reason_error: msg("reason"),
        tag: bulk.tag,
        reason: bulk.reason,
        action_error: bulk.action_error.or(members_error),
    })
}

async fn new_form(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::SegmentsManage)?;
    let form = SegmentForm { filter: DEFAULT_FILTER.into(), ..Default::default() };
    edit_page(&state, &staff, None, form, FieldErrors::default(), None, DetailParams::default(), Bulk::default()).await
}

/// The posted form as a store input; JSON that does not parse is reported under `filter`.
fn posted_input(form: &SegmentForm) -> Result<SegmentInput, FieldErrors> {
    match serde_json::from_str::<serde_json::Value>(&form.filter) {
        Ok(filter) => Ok(SegmentInput { name: form.name.clone(), description: form.description.clone(), filter }),
        Err(e) => {
            let mut errs = FieldErrors::default();
            errs.push(
                "filter",
                Msg::new(
                    format!("条件不是有效的 JSON（第 {} 行第 {} 列）", e.line(), e.column()),
                    format!("the filter is not valid JSON (line {}, column {})", e.line(), e.column()),
                ),
            );
            Err(errs)
        }
    }
}

async fn create(State(state): State<AppState>, staff: Staff, Form(form): Form<SegmentForm>) -> Result<Response, PageError> {
    staff.require(Permission::SegmentsManage)?;
    staff.check_csrf(form.csrf.as_deref())?;
    let again = |errors, summary| edit_page(&state, &staff, None, form.clone(), errors, summary, DetailParams::default(), Bulk::default());
    let input = match posted_input(&form) {
        Ok(i) => i,
        Err(errors) => return again(errors, None).await,
    };
    match state.store.create_segment(&staff.actor(), &input).await {
        Ok(s) => Ok(see_other(&format!("/segments/{}?done=created", s.id))),
        Err(StoreError::Invalid(errors)) => again(errors, None).await,
        Err(StoreError::Conflict(m)) => again(FieldErrors::default(), Some(staff.lang.msg(&m))).await,
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(p): Query<DetailParams>,
) -> Result<Response, PageError> {
    staff.require(Permission::SegmentsManage)?;
    let id = path_id(&id, staff.lang)?;
    let segment = state.store.segment(id).await.map_err(store_err(staff.lang))?;
    edit_page(&state, &staff, Some(id), form_of(&segment), FieldErrors::default(), None, p, Bulk::default()).await
}

async fn update(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<SegmentForm>,
) -> Result<Response, PageError> {
    let id = checked_post(&staff, Permission::SegmentsManage, form.csrf.as_deref(), &id)?;
    let again =
        |errors, summary| edit_page(&state, &staff, Some(id), form.clone(), errors, summary, DetailParams::default(), Bulk::default());
    let input = match posted_input(&form) {
        Ok(i) => i,
        Err(errors) => return again(errors, None).await,
    };
    match state.store.update_segment(&staff.actor(), id, form.version, &input).await {
        Ok(_) => Ok(see_other(&format!("/segments/{id}?done=saved"))),
        Err(StoreError::Invalid(errors)) => again(errors, None).await,
        Err(StoreError::Conflict(m)) => again(FieldErrors::default(), Some(staff.lang.msg(&m))).await,
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

/// Shows the saved segment again with a refused action's message (409).
async fn refused(state: &AppState, staff: &Staff, id: i64, m: &Msg) -> Result<Response, PageError> {
    let segment = state.store.segment(id).await.map_err(store_err(staff.lang))?;
    let bulk = Bulk { action_error: Some(staff.lang.msg(m)), ..Default::default() };
    edit_page(state, staff, Some(id), form_of(&segment), FieldErrors::default(), None, DetailParams::default(), bulk).await
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: Option<String>,
    version: Option<i64>,
}

/// A button on a segment, as a route: checked, done by `act` (given the posted version), then
/// to the address `act` names; a refusal (409) shows the segment again. One function serves
/// freeze, unfreeze and delete.
fn button<F, Fut>(act: F) -> MethodRouter<AppState>
where
    F: FnOnce(Store, Actor, i64, Option<i64>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = lector_store::Result<String>> + Send,
{
    post(move |State(state): State<AppState>, staff: Staff, Path(raw): Path<String>, Form(f): Form<ActionForm>| async move {
        let id = checked_post(&staff, Permission::SegmentsManage, f.csrf.as_deref(), &raw)?;
        match act(state.store.clone(), staff.actor(), id, f.version).await {
            Ok(to) => Ok(see_other(&to)),
            Err(StoreError::Conflict(m)) => refused(&state, &staff, id, &m).await,
            Err(e) => Err(PageError(e.into(), staff.lang)),
        }
    })
}

async fn freeze(store: Store, actor: Actor, id: i64, _version: Option<i64>) -> lector_store::Result<String> {
    let s = store.freeze_segment(&actor, id).await?;
    Ok(format!("/segments/{id}?done=frozen&n={}", s.frozen_count.unwrap_or(0)))
}

async fn unfreeze(store: Store, actor: Actor, id: i64, _version: Option<i64>) -> lector_store::Result<String> {
    store.unfreeze_segment(&actor, id).await?;
    Ok(format!("/segments/{id}?done=unfrozen"))
}

async fn delete(store: Store, actor: Actor, id: i64, version: Option<i64>) -> lector_store::Result<String> {
    store.delete_segment(&actor, id, version).await?;
    Ok("/segments?done=deleted".to_string())
}

#[derive(Deserialize)]
struct TagForm {
    csrf: Option<String>,
    #[serde(default)]
    tag: String,
}

async fn tag(State(state): State<AppState>, staff: Staff, Path(id): Path<String>, Form(f): Form<TagForm>) -> Result<Response, PageError> {
    staff.require(Permission::SegmentsManage)?;
    staff.require(Permission::ReadersEdit)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let id = path_id(&id, staff.lang)?;
    match state.store.tag_segment(&staff.actor(), id, &f.tag).await {
        Ok(n) => Ok(see_other(&format!("/segments/{id}?done=tagged&n={n}#members"))),
        Err(StoreError::Invalid(errors)) => {
            let segment = state.store.segment(id).await.map_err(store_err(staff.lang))?;
            let bulk = Bulk { tag: f.tag, errors, ..Default::default() };
            edit_page(&state, &staff, Some(id), form_of(&segment), FieldErrors::default(), None, DetailParams::default(), bulk).await
        }
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

#[derive(Deserialize)]
struct HandoverForm {
    csrf: Option<String>,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    reason: String,
}

async fn hand_over(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<HandoverForm>,
) -> Result<Response, PageError> {
    staff.require(Permission::SegmentsManage)?;
    staff.require(Permission::ReadersHandOver)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let id = path_id(&id, staff.lang)?;
    let owner = Some(f.owner.trim()).filter(|s| !s.is_empty());
    match state.store.hand_over_segment(&staff.actor(), id, owner, &f.reason).await {
        Ok(n) => Ok(see_other(&format!("/segments/{id}?done=handover&n={n}#members"))),
        Err(StoreError::Invalid(errors)) => {
            let segment = state.store.segment(id).await.map_err(store_err(staff.lang))?;
            let bulk = Bulk { owner: f.owner, reason: f.reason, errors, ..Default::default() };
            edit_page(&state, &staff, Some(id), form_of(&segment), FieldErrors::default(), None, DetailParams::default(), bulk).await
        }
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

async fn export(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, PageError> {
    staff.require(Permission::SegmentsManage)?;
    staff.require(Permission::ReadersExport)?;
    let id = path_id(&id, staff.lang)?;
    export_response(&state.store, &staff.actor(), id).await.map_err(|e| PageError(e, staff.lang))
}

#[derive(Deserialize)]
struct CountForm {
    csrf: Option<String>,
    #[serde(default)]
    filter: String,
}

/// The builder's live count: `{"count": n}`, or 422 `{"errors": [{"field", "message"}]}` with
/// each problem's path in the filter, in the user's language.
async fn count(State(state): State<AppState>, staff: Staff, Form(f): Form<CountForm>) -> Response {
    let l = staff.lang;
    let failure = |status: StatusCode, errors: Vec<serde_json::Value>| (status, Json(json!({ "errors": errors }))).into_response();
    let one = |m: &Msg| vec![json!({"field": "filter", "message": l.msg(m)})];
    if !staff.can(Permission::SegmentsManage) {
        return failure(StatusCode::FORBIDDEN, one(&AppError::Forbidden.message()));
    }
    if let Err(PageError(e, _)) = staff.check_csrf(f.csrf.as_deref()) {
        return failure(StatusCode::BAD_REQUEST, one(&e.message()));
    }
    let form = SegmentForm { filter: f.filter, ..Default::default() };
    let result = match posted_input(&form) {
        Ok(input) => state.store.count_filter(&input.filter).await,
        Err(errors) => Err(StoreError::Invalid(errors)),
    };
    match result {
        Ok(n) => Json(json!({ "count": n })).into_response(),
        Err(StoreError::Invalid(errors)) => failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            errors.0.iter().map(|e| json!({"field": e.field, "message": l.msg(&e.message)})).collect(),
        ),
        Err(e) => {
            let e = AppError::from(e);
            tracing::error!(error = ?e, "counting a segment filter failed");
            failure(StatusCode::INTERNAL_SERVER_ERROR, one(&e.message()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_is_json_and_confirmations_name_counts() {
        assert!(serde_json::from_str::<serde_json::Value>(DEFAULT_FILTER).is_ok());
        assert_eq!(done_message(Some("tagged"), Some(3), Lang::En).as_deref(), Some("Tagged 3 readers"));
        assert_eq!(done_message(Some("bogus"), None, Lang::Zh), None);
    }

    #[test]
    fn sort_links_toggle_the_order() {
        let p = DetailParams { sort: "card_no".into(), ..Default::default() };
        assert!(p.href(7, 1, Some("card_no")).contains("order=desc"));
        assert!(p.href(7, 2, Some("name")).contains("sort=name&order=asc&page=2"));
    }
}
