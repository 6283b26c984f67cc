//! Reader pages: list and search, detail with timeline, create, edit, delete, export.

use super::tracking::{DetailForms, HandoverForm, ReaderTracking};
use super::{render, see_other, Ctx, Opt};
use crate::auth::{PageError, Staff};
use crate::error::AppError;
use crate::mask::mask;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lector_domain::attribute::{AttrDef, AttrInput, AttrKind};
use lector_domain::contact::ContactKind;
use lector_domain::reader::{ContactDraft, Gender, ReaderDraft, ReaderStatus, RelatedDraft};
use lector_domain::role::Permission;
use lector_domain::search::SearchTerm;
use lector_domain::FieldErrors;
use lector_store::audit::{AuditEntry, Change};
use lector_store::config::Category;
use lector_store::readers::{ReaderQuery, ReaderRecord, ReaderSort, ReaderSummary};
use lector_store::Page;
use serde::Deserialize;
use std::collections::BTreeMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/readers", get(list))
        .route("/readers/export.csv", get(export))
        .route("/readers/new", get(new_form).post(create))
        .route("/readers/{id}", get(detail))
        .route("/readers/{id}/edit", get(edit_form).post(update))
        .route("/readers/{id}/delete", post(delete))
}

/// The list filters as they arrive in the query string.
#[derive(Debug, Default, Deserialize, Clone)]
pub struct ListParams {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub affiliation: String,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub order: String,
    pub page: Option<i64>,
    pub flash: Option<String>,
}

impl ListParams {
    fn query(&self, per_page: i64) -> ReaderQuery {
        ReaderQuery {
            q: SearchTerm::parse(&self.q),
            category: Some(self.category.clone()),
            affiliation: Some(self.affiliation.trim().to_string()),
            tag: Some(self.tag.trim().to_string()),
            status: ReaderStatus::parse(&self.status).ok().filter(|_| !self.status.is_empty()),
            owner: Some(self.owner.clone()),
            sort: ReaderSort::parse(&self.sort),
            desc: self.order == "desc",
            page: self.page.unwrap_or(1),
            per_page,
        }
    }

    /// The query string for the same filters on another page or sort.
    fn href(&self, page: i64, sort: Option<&str>) -> String {
        let enc = crate::auth::urlencode;
        let (sort, order) = match sort {
            Some(s) if s == self.sort && self.order != "desc" => (s.to_string(), "desc"),
            Some(s) => (s.to_string(), "asc"),
            None => (self.sort.clone(), self.order.as_str()),
        };
        format!(
            "/readers?q={}&category={}&affiliation={}&tag={}&status={}&owner={}&sort={}&order={}&page={page}",
            enc(&self.q),
            enc(&self.category),
            enc(&self.affiliation),
            enc(&self.tag),
            enc(&self.status),
            enc(&self.owner),
            enc(&sort),
            order
        )
    }
}

#[derive(Template)]
#[template(path = "readers_list.html")]
struct ListPage {
    ctx: Ctx,
    p: ListParams,
    page: Page<ReaderSummary>,
    rows: Vec<Row>,
    categories: Vec<Opt>,
    statuses: Vec<Opt>,
    can_edit: bool,
    can_export: bool,
    prev: Option<String>,
    next: Option<String>,
    sort_name: String,
    sort_card: String,
    sort_updated: String,
    export_href: String,
    can_handover: bool,
    /// This list's address, to come back to after a bulk hand-over.
    back: String,
    owner_opts: Vec<Opt>,
    handover: HandoverForm,
    handover_error: Option<String>,
}

impl ListPage {
    fn herr(&self, field: &str) -> Option<String> {
        self.handover.errors.get(field).map(|m| self.ctx.l.msg(m))
    }
}

pub struct Row {
    pub id: i64,
    pub card_no: String,
    pub name: String,
    pub category: String,
    pub affiliation: String,
    pub status: String,
    pub status_code: &'static str,
    pub owner: String,
    pub updated: String,
}

fn category_opts(cats: &[Category], l: crate::i18n::Lang, selected: &str, only_active: bool) -> Vec<Opt> {
    cats.iter()
        .filter(|c| !only_active || c.active || c.code == selected)
        .map(|c| Opt { value: c.code.clone(), label: l.pick(&c.name_zh, &c.name_en).to_string(), selected: c.code == selected })
        .collect()
}

fn status_opts(l: crate::i18n::Lang, selected: &str) -> Vec<Opt> {
    ReaderStatus::ALL.iter().map(|s| Opt { value: s.code().into(), label: l.msg(&s.label()), selected: s.code() == selected }).collect()
}

async fn list(State(state): State<AppState>, staff: Staff, Query(p): Query<ListParams>) -> Result<Response, PageError> {
    list_page(&state, &staff, p, HandoverForm::default()).await
}

/// The reader list; `handover` is the bulk hand-over form (with its errors after a failed post).
pub(super) async fn list_page(state: &AppState, staff: &Staff, p: ListParams, handover: HandoverForm) -> Result<Response, PageError> {
    staff.require(Permission::ReadersView)?;
    let l = staff.lang;
    let err = |e: lector_store::StoreError| PageError(e.into(), l);
    let page = state.store.readers(&p.query(25)).await.map_err(err)?;
    let cats = state.store.categories().await.map_err(err)?;
    let rows = page
        .items
        .iter()
        .map(|r| Row {
            id: r.id,
            card_no: r.card_no.clone(),
            name: r.name.clone(),
            category: l.pick(&r.category.name_zh, &r.category.name_en).to_string(),
            affiliation: r.affiliation.clone().unwrap_or_default(),
            status: l.msg(&r.status.label()),
            status_code: r.status.code(),
            owner: r.owner.clone().unwrap_or_default(),
            updated: super::local_time(&r.updated_at).get(..10).unwrap_or_default().to_string(),
        })
        .collect();
    let current = page.page;
    let can_handover = staff.can(Permission::ReadersHandOver);
    let owner_opts = if can_handover {
        let users = state.store.users().await.map_err(err)?;
        users
            .iter()
            .filter(|u| u.active && u.role.can(Permission::TrackingView))
            .map(|u| Opt {
                value: u.username.clone(),
                label: format!("{} ({})", u.display_name, u.username),
                selected: u.username == handover.owner,
            })
            .collect()
    } else {
        Vec::new()
    };
    let handover_error =
        (!handover.errors.is_empty()).then(|| handover.errors.0.iter().map(|e| l.msg(&e.message)).collect::<Vec<_>>().join("；"));
    let view = ListPage {
        ctx: Ctx::staff(staff, "readers", &p.href(current, None)).with_flash(p.flash.as_deref()),
        can_handover,
        back: p.href(current, None),
        owner_opts,
        handover,
        handover_error,
        prev: (current > 1).then(|| p.href(current - 1, None)),
        next: (current < page.pages() || (page.total_capped && page.items.len() as i64 == page.per_page))
            .then(|| p.href(current + 1, None)),
        sort_name: p.href(1, Some("name")),
        sort_card: p.href(1, Some("card_no")),
        sort_updated: p.href(1, Some("updated")),
        export_href: p.href(1, None).replacen("/readers?", "/readers/export.csv?", 1),
        categories: category_opts(&cats, l, &p.category, false),
        statuses: status_opts(l, &p.status),
        can_edit: staff.can(Permission::ReadersEdit),
        can_export: staff.can(Permission::ReadersExport),
        rows,
        page,
        p,
    };
    Ok(render(&view))
}

pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(['=', '+', '-', '@']) {
        // Quote, and neutralise spreadsheet formulas.
        let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Exports the readers matching the filters as CSV (UTF-8 with BOM, so Excel reads Chinese),
/// and audits the export with its filters and row count.
async fn export(State(state): State<AppState>, staff: Staff, Query(p): Query<ListParams>) -> Result<Response, PageError> {
    staff.require(Permission::ReadersExport)?;
    let l = staff.lang;
    let err = |e: lector_store::StoreError| PageError(e.into(), l);
    let mut out = String::from("\u{feff}card_no,name,pinyin,gender,category,affiliation,status,owner,updated_at\r\n");
    let mut q = p.query(200);
    let mut rows = 0;
    loop {
        let page = state.store.readers(&q).await.map_err(err)?;
        for r in &page.items {
            let fields = [
                &r.card_no,
                &r.name,
                &r.pinyin,
                r.gender.code(),
                &r.category.name_zh,
                r.affiliation.as_deref().unwrap_or(""),
                r.status.code(),
                r.owner.as_deref().unwrap_or(""),
                &r.updated_at,
            ];
            out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
            out.push_str("\r\n");
        }
        rows += page.items.len();
        if (page.items.len() as i64) < page.per_page || rows >= lector_store::readers::COUNT_CAP as usize {
            break;
        }
        q.page += 1;
    }
    let filters =
        format!("q={} category={} affiliation={} tag={} status={} owner={}", p.q, p.category, p.affiliation, p.tag, p.status, p.owner);
    state
        .store
        .audit_access(
            &staff.actor(),
            Change {
                action: "reader.export",
                entity: "reader",
                entity_id: None,
                summary: format!("{rows} readers; {filters}"),
                before: None,
                after: None,
            },
        )
        .await
        .map_err(err)?;
    Ok(([(CONTENT_TYPE, "text/csv; charset=utf-8"), (CONTENT_DISPOSITION, "attachment; filename=\"readers.csv\"")], out).into_response())
}

pub struct ContactView {
    pub kind: String,
    pub value: String,
    pub primary: bool,
    pub verified: bool,
}

pub struct TimelineItem {
    /// The local time the entry is ordered by.
    pub sort: Option<chrono::NaiveDateTime>,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub label: String,
    pub changed: String,
    /// What the entry is about (an interaction's subject, a hand-over's reason).
    pub detail: String,
}

#[derive(Template)]
#[template(path = "reader_detail.html")]
struct DetailPage {
    ctx: Ctx,
    r: ReaderRecord,
    gender: String,
    status: String,
    category: String,
    contacts: Vec<ContactView>,
    full_contacts: bool,
    can_contacts: bool,
    can_edit: bool,
    can_delete: bool,
    attributes: Vec<(String, String)>,
    timeline: Vec<TimelineItem>,
    /// Interactions, tasks and owners (`TrackingView`).
    tracking: Option<ReaderTracking>,
    /// The reader's service cases (any case permission; department staff see their department's).
    cases: Option<Vec<super::cases::CaseRow>>,
    /// Which source and import job set each field; jobs link to their page for `ReadersImport`.
    provenance: Vec<super::imports::ProvenanceRow>,
    can_import: bool,
}

#[derive(Deserialize)]
struct DetailParams {
    contacts: Option<String>,
    flash: Option<String>,
}

fn action_label(action: &str) -> (&'static str, &'static str) {
    match action {
        "reader.create" => ("创建记录", "Record created"),
        "reader.update" => ("修改记录", "Record updated"),
        "reader.view_contacts" => ("查看完整联系方式", "Full contact details viewed"),
        "reader.delete" => ("删除记录", "Record deleted"),
        "reader.handover" => ("移交业务负责人", "Owner handed over"),
        "consent.update" => ("授权变更", "Consent changed"),
        _ => ("其他操作", "Other action"),
    }
}

/// The reader's history, newest first: its audit trail merged with `tracked` (interactions,
/// tasks and hand-overs, which replace their own audit rows when given).
fn timeline(entries: &[AuditEntry], r: &ReaderRecord, l: crate::i18n::Lang, tracked: Option<Vec<TimelineItem>>) -> Vec<TimelineItem> {
    let skip = |action: &str| {
        tracked.is_some() && (action == "reader.handover" || action.starts_with("interaction.") || action.starts_with("task."))
    };
    let mut items: Vec<TimelineItem> = entries
        .iter()
        .filter(|e| !skip(&e.action))
        .map(|e| {
            let (zh, en) = action_label(&e.action);
            TimelineItem {
                sort: super::local_naive(&e.at),
                at: super::local_time(&e.at),
                actor: e.actor_name.clone(),
                action: e.action.clone(),
                label: l.pick(zh, en).to_string(),
                changed: e.changed_fields().join(", "),
                detail: String::new(),
            }
        })
        .collect();
    if !entries.iter().any(|e| e.action == "reader.create") {
        // Loaded in bulk (demo data, imports): the batch is audited, not each reader.
        items.insert(
            0,
            TimelineItem {
                sort: super::local_naive(&r.created_at),
                at: super::local_time(&r.created_at),
                actor: String::new(),
                action: "reader.bulk_create".into(),
                label: l.pick("批量载入创建", "Created by a bulk load").into(),
                changed: String::new(),
                detail: String::new(),
            },
        );
    }
    items.extend(tracked.unwrap_or_default());
    // Oldest first (a stable sort keeps the recorded order of entries in the same instant),
    // then newest first.
    items.sort_by_key(|t| t.sort);
    items.reverse();
    items
}

async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Query(q): Query<DetailParams>,
) -> Result<Response, PageError> {
    let full = q.contacts.as_deref() == Some("full");
    detail_page(&state, &staff, id, full, q.flash.as_deref(), DetailForms::default()).await
}

/// The reader page. `forms` holds the tracking forms as posted when a save failed: the page is
/// then answered with 422 and the errors beside their fields.
pub(super) async fn detail_page(
    state: &AppState,
    staff: &Staff,
    id: i64,
    full_contacts: bool,
    flash: Option<&str>,
    forms: DetailForms,
) -> Result<Response, PageError> {
    staff.require(Permission::ReadersView)?;
    let l = staff.lang;
    let err = |e: lector_store::StoreError| PageError(e.into(), l);
    let r = state.store.reader(id).await.map_err(err)?;
    let can_contacts = staff.can(Permission::ReadersContacts);
    let full = can_contacts && full_contacts;
    if full {
        state
            .store
            .audit_access(
                &staff.actor(),
                Change {
                    action: "reader.view_contacts",
                    entity: "reader",
                    entity_id: Some(id.to_string()),
                    summary: format!("{} {}", r.card_no, r.name),
                    before: None,
                    after: None,
                },
            )
            .await
            .map_err(err)?;
    }
    let contacts = r
        .contacts
        .iter()
        .map(|c| ContactView {
            kind: l.msg(&c.kind.label()),
            value: if full { c.value.clone() } else { mask(c.kind, &c.value) },
            primary: c.primary,
            verified: c.verified,
        })
        .collect();
    let defs = state.store.attribute_defs().await.map_err(err)?;
    let attributes = r
        .attributes
        .iter()
        .map(|(code, vals)| {
            let label = defs
                .iter()
                .find(|(_, d)| &d.code == code)
                .map(|(_, d)| l.pick(&d.label_zh, &d.label_en).to_string())
                .unwrap_or_else(|| code.clone());
            (label, vals.join("；"))
        })
        .collect();
    let trail = state.store.audit_trail("reader", &id.to_string()).await.map_err(err)?;
    let failed = forms.failed();
    let (tracking, tracked) = if staff.can(Permission::TrackingView) {
        let (t, items) = super::tracking::reader_tracking(state, staff, &r, forms).await.map_err(err)?;
        (Some(t), Some(items))
    } else {
        (None, None)
    };
    let cases = super::cases::reader_cases(state, staff, id).await.map_err(err)?;
    let view = DetailPage {
        provenance: super::imports::provenance_rows(state, l, id).await.map_err(err)?,
        can_import: staff.can(Permission::ReadersImport),
        cases,
        ctx: Ctx::staff(staff, "readers", &format!("/readers/{id}")).with_flash(flash),
        tracking,
        gender: l.msg(&r.gender.label()),
        status: l.msg(&r.status.label()),
        category: l.pick(&r.category.name_zh, &r.category.name_en).to_string(),
        contacts,
        full_contacts: full,
        can_contacts,
        can_edit: staff.can(Permission::ReadersEdit),
        can_delete: staff.can(Permission::ReadersDelete),
        attributes,
        timeline: timeline(&trail, &r, l, tracked),
        r,
    };
    let status = if failed { axum::http::StatusCode::UNPROCESSABLE_ENTITY } else { axum::http::StatusCode::OK };
    Ok((status, render(&view)).into_response())
}

/// One row of contact inputs on the form.
pub struct ContactRow {
    pub kind: String,
    pub value: String,
    pub primary: bool,
    pub verified: bool,
    pub error: Option<String>,
}

pub struct RelatedRow {
    pub name: String,
    pub relation: String,
    pub phone: String,
    pub email: String,
    pub error: Option<String>,
}

pub struct AttrField {
    pub code: String,
    pub label: String,
    pub kind: &'static str,
    pub repeatable: bool,
    pub value: String,
    pub choices: Vec<Opt>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "reader_form.html")]
struct FormPage {
    ctx: Ctx,
    /// `None` when creating.
    id: Option<i64>,
    version: i64,
    d: ReaderDraft,
    errors: FieldErrors,
    error_summary: Option<String>,
    tags: String,
    genders: Vec<Opt>,
    statuses: Vec<Opt>,
    categories: Vec<Opt>,
    owners: Vec<Opt>,
    kinds: Vec<(String, String)>,
    contacts: Vec<ContactRow>,
    related: Vec<RelatedRow>,
    attributes: Vec<AttrField>,
}

impl FormPage {
    fn err(&self, field: &str) -> Option<String> {
        let l = self.ctx.l;
        self.errors.get(field).map(|m| l.msg(m))
    }

    fn tags_err(&self) -> Option<String> {
        let l = self.ctx.l;
        self.errors.0.iter().find(|e| e.field.starts_with("tags")).map(|e| l.msg(&e.message))
    }
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

async fn form_page(
    state: &AppState,
    staff: &Staff,
    id: Option<i64>,
    version: i64,
    d: ReaderDraft,
    errors: FieldErrors,
    conflict: Option<String>,
) -> Result<Response, PageError> {
    let l = staff.lang;
    let err = |e: lector_store::StoreError| PageError(e.into(), l);
    let cats = state.store.categories().await.map_err(err)?;
    let users = state.store.users().await.map_err(err)?;
    let defs = state.store.attribute_defs().await.map_err(err)?;
    let msg = |field: String| errors.get(&field).map(|m| l.msg(m));
    let mut contacts: Vec<ContactRow> = d
        .contacts
        .iter()
        .enumerate()
        .map(|(i, c)| ContactRow {
            kind: c.kind.clone(),
            value: c.value.clone(),
            primary: c.primary,
            verified: c.verified,
            error: msg(format!("contacts[{i}].value")).or_else(|| msg(format!("contacts[{i}].kind"))),
        })
        .collect();
    for kind in ["email", "mobile", "qq"] {
        contacts.push(ContactRow { kind: kind.into(), value: String::new(), primary: false, verified: false, error: None });
    }
    let mut related: Vec<RelatedRow> = d
        .related
        .iter()
        .enumerate()
        .map(|(i, r)| RelatedRow {
            name: r.name.clone(),
            relation: r.relation.clone(),
            phone: opt(&r.phone),
            email: opt(&r.email),
            error: ["name", "relation", "phone", "email"].iter().find_map(|f| msg(format!("related[{i}].{f}"))),
        })
        .collect();
    related.push(RelatedRow { name: String::new(), relation: String::new(), phone: String::new(), email: String::new(), error: None });
    let attributes =
        defs.iter().map(|(_, def)| attr_field(def, d.attributes.get(&def.code), msg(format!("attributes.{}", def.code)), l)).collect();
    let owner = opt(&d.owner);
    let gender = opt(&d.gender);
    let status = d.status.clone().unwrap_or_else(|| "active".into());
    let error_summary = conflict.or_else(|| (!errors.is_empty()).then(|| l.msg(&AppError::Invalid(errors.clone()).message())));
    let view = FormPage {
        ctx: Ctx::staff(staff, "readers", &id.map(|i| format!("/readers/{i}/edit")).unwrap_or_else(|| "/readers/new".into())),
        id,
        version,
        tags: d.tags.join("，"),
        genders: Gender::ALL
            .iter()
            .map(|g| Opt { value: g.code().into(), label: l.msg(&g.label()), selected: g.code() == gender })
            .collect(),
        statuses: status_opts(l, &status),
        categories: category_opts(&cats, l, &d.category, true),
        owners: users
            .iter()
            .filter(|u| u.active)
            .map(|u| Opt {
                value: u.username.clone(),
                label: format!("{} ({})", u.display_name, u.username),
                selected: u.username == owner,
            })
            .collect(),
        kinds: ContactKind::ALL.iter().map(|k| (k.code().to_string(), l.msg(&k.label()))).collect(),
        contacts,
        related,
        attributes,
        error_summary,
        errors,
        d,
    };
    Ok(render(&view))
}

fn attr_field(def: &AttrDef, input: Option<&AttrInput>, error: Option<String>, l: crate::i18n::Lang) -> AttrField {
    let values = input.map(|i| i.values()).unwrap_or_default();
    AttrField {
        code: def.code.clone(),
        label: l.pick(&def.label_zh, &def.label_en).to_string(),
        kind: def.kind.code(),
        repeatable: def.repeatable,
        choices: if def.kind == AttrKind::Choice {
            def.choices.iter().map(|c| Opt { value: c.clone(), label: c.clone(), selected: values.contains(c) }).collect()
        } else {
            Vec::new()
        },
        value: values.join("\n"),
        error,
    }
}

fn record_to_draft(r: &ReaderRecord) -> ReaderDraft {
    ReaderDraft {
        card_no: r.card_no.clone(),
        name: r.name.clone(),
        gender: Some(r.gender.code().into()),
        birth_date: r.birth_date.clone(),
        category: r.category.code.clone(),
        affiliation: r.affiliation.clone(),
        status: Some(r.status.code().into()),
        enrolled_on: r.enrolled_on.clone(),
        expires_on: r.expires_on.clone(),
        contacts: r
            .contacts
            .iter()
            .map(|c| ContactDraft { kind: c.kind.code().into(), value: c.value.clone(), primary: c.primary, verified: c.verified })
            .collect(),
        related: r
            .related
            .iter()
            .map(|x| RelatedDraft { name: x.name.clone(), relation: x.relation.clone(), phone: x.phone.clone(), email: x.email.clone() })
            .collect(),
        tags: r.tags.clone(),
        attributes: r.attributes.iter().map(|(k, v)| (k.clone(), AttrInput::Many(v.clone()))).collect(),
        owner: r.owner.clone(),
        notes: r.notes.clone(),
    }
}

/// The reader form as posted: the draft, the version it edits and the CSRF token.
struct Posted {
    draft: ReaderDraft,
    version: i64,
    csrf: Option<String>,
}

/// Reads the posted form. Rows left blank are dropped and the rest renumbered, so that error
/// field names (`contacts[1].value`) match the rows shown when the form comes back.
fn parse_posted(pairs: Vec<(String, String)>) -> Posted {
    let mut d = ReaderDraft::default();
    let mut contacts: BTreeMap<usize, ContactDraft> = BTreeMap::new();
    let mut related: BTreeMap<usize, RelatedDraft> = BTreeMap::new();
    let mut version = 0;
    let mut csrf = None;
    let some = |v: String| Some(v).filter(|s| !s.trim().is_empty());
    for (k, v) in pairs {
        if let Some(rest) = k.strip_prefix("contacts[") {
            if let Some((idx, field)) = rest.split_once("].") {
                let c = contacts.entry(idx.parse().unwrap_or(usize::MAX)).or_default();
                match field {
                    "kind" => c.kind = v,
                    "value" => c.value = v,
                    "primary" => c.primary = true,
                    "verified" => c.verified = true,
                    _ => {}
                }
            }
            continue;
        }
        if let Some(rest) = k.strip_prefix("related[") {
            if let Some((idx, field)) = rest.split_once("].") {
                let r = related.entry(idx.parse().unwrap_or(usize::MAX)).or_default();
                match field {
                    "name" => r.name = v,
                    "relation" => r.relation = v,
                    "phone" => r.phone = some(v),
                    "email" => r.email = some(v),
                    _ => {}
                }
            }
            continue;
        }
        if let Some(code) = k.strip_prefix("attributes.") {
            let vals: Vec<String> = v.lines().map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
            if !vals.is_empty() {
                d.attributes.insert(code.to_string(), AttrInput::Many(vals));
            }
            continue;
        }
        match k.as_str() {
            "card_no" => d.card_no = v,
            "name" => d.name = v,
            "gender" => d.gender = some(v),
            "birth_date" => d.birth_date = some(v),
            "category" => d.category = v,
            "affiliation" => d.affiliation = some(v),
            "status" => d.status = some(v),
            "enrolled_on" => d.enrolled_on = some(v),
            "expires_on" => d.expires_on = some(v),
            "owner" => d.owner = some(v),
            "notes" => d.notes = some(v),
            "tags" => d.tags = v.split([',', '，', ';', '；', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            "version" => version = v.parse().unwrap_or(0),
            "csrf" => csrf = Some(v),
            _ => {}
        }
    }
    d.contacts = contacts.into_values().filter(|c| !c.value.trim().is_empty()).collect();
    d.related = related
        .into_values()
        .filter(|r| !(r.name.trim().is_empty() && r.relation.trim().is_empty() && r.phone.is_none() && r.email.is_none()))
        .collect();
    Posted { draft: d, version, csrf }
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

async fn new_form(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::ReadersEdit)?;
    let d = ReaderDraft { category: "undergraduate".into(), status: Some("active".into()), ..Default::default() };
    form_page(&state, &staff, None, 0, d, FieldErrors::default(), None).await
}

async fn create(State(state): State<AppState>, staff: Staff, Form(pairs): Form<Vec<(String, String)>>) -> Result<Response, PageError> {
    staff.require(Permission::ReadersEdit)?;
    let posted = parse_posted(pairs);
    staff.check_csrf(posted.csrf.as_deref())?;
    let input = match posted.draft.parse(today()) {
        Ok(i) => i,
        Err(errors) => return form_page(&state, &staff, None, 0, posted.draft, errors, None).await.map(unprocessable),
    };
    match state.store.create_reader(&staff.actor(), &input).await {
        Ok(r) => Ok(see_other(&format!("/readers/{}?flash=created", r.id))),
        Err(lector_store::StoreError::Invalid(errors)) => {
            form_page(&state, &staff, None, 0, posted.draft, errors, None).await.map(unprocessable)
        }
        Err(lector_store::StoreError::Conflict(m)) => {
            form_page(&state, &staff, None, 0, posted.draft, FieldErrors::default(), Some(staff.lang.msg(&m))).await.map(conflict)
        }
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

fn unprocessable(r: Response) -> Response {
    (axum::http::StatusCode::UNPROCESSABLE_ENTITY, r).into_response()
}

fn conflict(r: Response) -> Response {
    (axum::http::StatusCode::CONFLICT, r).into_response()
}

async fn edit_form(State(state): State<AppState>, staff: Staff, Path(id): Path<i64>) -> Result<Response, PageError> {
    staff.require(Permission::ReadersEdit)?;
    let r = state.store.reader(id).await.map_err(|e| PageError(e.into(), staff.lang))?;
    form_page(&state, &staff, Some(id), r.version, record_to_draft(&r), FieldErrors::default(), None).await
}

async fn update(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    staff.require(Permission::ReadersEdit)?;
    let posted = parse_posted(pairs);
    staff.check_csrf(posted.csrf.as_deref())?;
    let input = match posted.draft.parse(today()) {
        Ok(i) => i,
        Err(errors) => return form_page(&state, &staff, Some(id), posted.version, posted.draft, errors, None).await.map(unprocessable),
    };
    match state.store.update_reader(&staff.actor(), id, posted.version, &input).await {
        Ok(_) => Ok(see_other(&format!("/readers/{id}?flash=saved"))),
        Err(lector_store::StoreError::Invalid(errors)) => {
            form_page(&state, &staff, Some(id), posted.version, posted.draft, errors, None).await.map(unprocessable)
        }
        Err(lector_store::StoreError::Conflict(m)) => {
            form_page(&state, &staff, Some(id), posted.version, posted.draft, FieldErrors::default(), Some(staff.lang.msg(&m)))
                .await
                .map(conflict)
        }
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    csrf: Option<String>,
    version: Option<i64>,
}

async fn delete(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<DeleteForm>,
) -> Result<Response, PageError> {
    staff.require(Permission::ReadersDelete)?;
    staff.check_csrf(f.csrf.as_deref())?;
    state.store.delete_reader(&staff.actor(), id, f.version).await.map_err(|e| PageError(e.into(), staff.lang))?;
    Ok(see_other("/readers?flash=deleted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posted_rows_are_renumbered() {
        let pairs = vec![
            ("contacts[0].kind".into(), "email".into()),
            ("contacts[0].value".into(), "".into()),
            ("contacts[1].kind".into(), "mobile".into()),
            ("contacts[1].value".into(), "13800138000".into()),
            ("contacts[1].primary".into(), "on".into()),
            ("tags".into(), "新生，读书会, 志愿者".into()),
            ("version".into(), "3".into()),
        ];
        let p = parse_posted(pairs);
        assert_eq!(p.draft.contacts.len(), 1);
        assert_eq!(p.draft.contacts[0].kind, "mobile");
        assert!(p.draft.contacts[0].primary);
        assert_eq!(p.draft.tags, vec!["新生", "读书会", "志愿者"]);
        assert_eq!(p.version, 3);
    }

    #[test]
    fn csv_neutralises_formulas() {
        assert_eq!(csv_field("=1+1"), "\"'=1+1\"");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("张三"), "张三");
    }
}
