//! Warehouse pages (数据仓库): the data dictionary and a table's columns, the load history, the
//! quarantine (admins only: its raw records may hold a card number), and the read-only SQL
//! page with saved queries and CSV download. Every route needs `WarehouseQuery`; the
//! quarantine `WarehouseAdmin`. Runs and downloads are audited (see `api::warehouse`).

use super::{checked_post, local_time, render, see_other, store_err, Ctx, Tab};
use crate::api::warehouse::{csv_download, run_audited, warehouse_unreadable, QueryPurpose, Ran};
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
use chrono::{DateTime, Utc};
use lector_domain::role::Permission;
use lector_domain::FieldErrors;
use lector_store::saved_queries::{SavedQuery, SavedQueryInput};
use lector_warehouse::arrow::array::Array;
use lector_warehouse::arrow::util::display::{ArrayFormatter, FormatOptions};
use lector_warehouse::QueryResult;
use serde::Deserialize;

/// The quarantine page lists at most this many events.
const QUARANTINE_SHOWN: usize = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/warehouse", get(dictionary))
        .route("/warehouse/tables/{name}", get(table))
        .route("/warehouse/batches", get(batches))
        .route("/warehouse/quarantine", get(quarantine))
        .route("/warehouse/sql", get(sql_form).post(run_sql))
        .route("/warehouse/sql/csv", post(download_csv))
        .route("/warehouse/queries", post(save_query))
        .route("/warehouse/queries/{id}/delete", post(delete_query))
}

/// The view switcher of the warehouse pages; the quarantine only for `WarehouseAdmin`.
fn tabs(staff: &Staff, active: &str) -> Vec<Tab> {
    let l = staff.lang;
    let mut all = vec![
        ("/warehouse", "tab-dictionary", l.pick("数据字典", "Data dictionary")),
        ("/warehouse/sql", "tab-sql", l.pick("SQL 查询", "SQL")),
        ("/warehouse/batches", "tab-batches", l.pick("装载历史", "Load history")),
    ];
    if staff.can(Permission::WarehouseAdmin) {
        all.push(("/warehouse/quarantine", "tab-quarantine", l.pick("隔离区", "Quarantine")));
    }
    all.into_iter().map(|(href, id, label)| Tab { href: href.into(), label: label.into(), id, active: href == active }).collect()
}

/// How long ago, roughly, in the user's language.
fn age_text(secs: i64, l: Lang) -> String {
    let s = secs.max(0);
    let (n, zh, en) = match s {
        s if s < 120 => (s, "秒前", "s ago"),
        s if s < 7200 => (s / 60, "分钟前", "min ago"),
        s if s < 172_800 => (s / 3600, "小时前", "h ago"),
        s => (s / 86_400, "天前", "days ago"),
    };
    match l {
        Lang::Zh => format!("{n} {zh}"),
        Lang::En => format!("{n} {en}"),
    }
}

fn utc_time(at: DateTime<Utc>) -> String {
    local_time(&at.to_rfc3339())
}

fn kind_label(kind: &str, l: Lang) -> &'static str {
    match kind {
        "fact" => l.pick("事实表", "fact"),
        "dimension" => l.pick("维度表", "dimension"),
        _ => l.pick("生成表", "generated"),
    }
}

pub struct TableRow {
    pub name: &'static str,
    pub kind: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub rows: u64,
    pub batches: usize,
    pub last_load: Option<String>,
    pub freshness: Option<String>,
}

#[derive(Template)]
#[template(path = "warehouse_dictionary.html")]
struct DictionaryPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    batches: usize,
    last_load: Option<String>,
    rules: Vec<String>,
    tables: Vec<TableRow>,
}

async fn dictionary(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::WarehouseQuery)?;
    let l = staff.lang;
    let d = state.warehouse.describe(None).await.map_err(|e| PageError(warehouse_unreadable(e), l))?;
    let tables = d
        .tables
        .iter()
        .map(|t| TableRow {
            name: t.name,
            kind: kind_label(t.kind, l),
            zh: t.zh,
            en: t.en,
            rows: t.rows,
            batches: t.batches,
            last_load: t.last_loaded_at.map(utc_time),
            freshness: t.age_secs.map(|s| age_text(s, l)),
        })
        .collect();
    let page = DictionaryPage {
        ctx: Ctx::staff(&staff, "warehouse", "/warehouse"),
        tabs: tabs(&staff, "/warehouse"),
        batches: d.batches,
        last_load: d.last_loaded_at.map(utc_time),
        rules: d.rules.iter().map(|r| l.msg(r)).collect(),
        tables,
    };
    Ok(render(&page))
}

pub struct ColumnRow {
    pub name: &'static str,
    pub sql_type: &'static str,
    pub nullable: bool,
    pub zh: &'static str,
    pub en: &'static str,
    pub computed: bool,
}

#[derive(Template)]
#[template(path = "warehouse_table.html")]
struct TablePage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    table: TableRow,
    lineage_zh: &'static str,
    lineage_en: &'static str,
    files: Option<String>,
    time_column: Option<&'static str>,
    latest_per_key: bool,
    columns: Vec<ColumnRow>,
}

async fn table(State(state): State<AppState>, staff: Staff, Path(name): Path<String>) -> Result<Response, PageError> {
    staff.require(Permission::WarehouseQuery)?;
    let l = staff.lang;
    if lector_warehouse::schema::table(&name).is_none() {
        return Err(PageError(AppError::NotFound, l));
    }
    let d = state.warehouse.describe(Some(&name)).await.map_err(|e| PageError(warehouse_unreadable(e), l))?;
    let t = d.tables.into_iter().next().ok_or(PageError(AppError::NotFound, l))?;
    let columns = t
        .columns
        .iter()
        .map(|c| ColumnRow { name: c.name, sql_type: c.sql_type, nullable: c.nullable, zh: c.zh, en: c.en, computed: c.computed })
        .collect();
    let page = TablePage {
        ctx: Ctx::staff(&staff, "warehouse", &format!("/warehouse/tables/{name}")),
        tabs: tabs(&staff, "/warehouse"),
        table: TableRow {
            name: t.name,
            kind: kind_label(t.kind, l),
            zh: t.zh,
            en: t.en,
            rows: t.rows,
            batches: t.batches,
            last_load: t.last_loaded_at.map(utc_time),
            freshness: t.age_secs.map(|s| age_text(s, l)),
        },
        lineage_zh: t.lineage_zh,
        lineage_en: t.lineage_en,
        files: t.files,
        time_column: t.time_column,
        latest_per_key: t.latest_per_key,
        columns,
    };
    Ok(render(&page))
}

pub struct BatchRow {
    pub id: u64,
    pub source: String,
    pub started: String,
    pub finished: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rejected: u64,
    pub quarantined: u64,
    pub duplicates: u64,
    pub corrections: u64,
    pub checksum: String,
    pub checksum_short: String,
}

#[derive(Template)]
#[template(path = "warehouse_batches.html")]
struct BatchesPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    /// Shows the quarantine counts and link.
    admin: bool,
    quarantined: u64,
    rows: Vec<BatchRow>,
}

async fn batches(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::WarehouseQuery)?;
    let records = state.warehouse.batches().await.map_err(|e| PageError(warehouse_unreadable(e), staff.lang))?;
    let rows: Vec<BatchRow> = records
        .into_iter()
        .rev()
        .map(|r| BatchRow {
            id: r.id,
            source: r.source,
            started: utc_time(r.started_at),
            finished: utc_time(r.finished_at),
            rows_in: r.rows_in,
            rows_out: r.rows_out,
            rejected: r.rejected,
            quarantined: r.quarantined,
            duplicates: r.duplicates,
            corrections: r.corrections,
            checksum_short: r.checksum.chars().take(12).collect(),
            checksum: r.checksum,
        })
        .collect();
    let page = BatchesPage {
        ctx: Ctx::staff(&staff, "warehouse", "/warehouse/batches"),
        tabs: tabs(&staff, "/warehouse/batches"),
        admin: staff.can(Permission::WarehouseAdmin),
        quarantined: rows.iter().map(|r| r.quarantined).sum(),
        rows,
    };
    Ok(render(&page))
}

pub struct QuarantineRow {
    pub table: &'static str,
    pub event_key: String,
    pub reason: String,
    pub record: String,
}

#[derive(Template)]
#[template(path = "warehouse_quarantine.html")]
struct QuarantinePage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    total: usize,
    shown: usize,
    rows: Vec<QuarantineRow>,
}

async fn quarantine(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::WarehouseAdmin)?;
    let events = state.warehouse.quarantine().await.map_err(|e| PageError(warehouse_unreadable(e), staff.lang))?;
    let total = events.len();
    let rows: Vec<QuarantineRow> = events
        .into_iter()
        .take(QUARANTINE_SHOWN)
        .map(|e| QuarantineRow { table: e.table, event_key: e.event_key, reason: e.reason, record: e.record.to_string() })
        .collect();
    let page = QuarantinePage {
        ctx: Ctx::staff(&staff, "warehouse", "/warehouse/quarantine"),
        tabs: tabs(&staff, "/warehouse/quarantine"),
        total,
        shown: rows.len(),
        rows,
    };
    Ok(render(&page))
}

/// The SQL page's form: the statement, and the name, description and sharing it is saved with.
#[derive(Debug, Default, Deserialize)]
struct SqlForm {
    csrf: Option<String>,
    #[serde(default)]
    sql: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    /// A checkbox: present when ticked.
    shared: Option<String>,
}

/// A result as the page shows it: every value as text, `None` for an empty value.
pub struct ResultView {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub truncated: bool,
    pub elapsed_ms: u64,
}

pub struct SavedRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub owner: String,
    pub shared: bool,
    /// The viewer's own query: they may delete it.
    pub mine: bool,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "warehouse_sql.html")]
struct SqlPage {
    ctx: Ctx,
    tabs: Vec<Tab>,
    sql: String,
    name: String,
    description: String,
    shared: bool,
    error: Option<String>,
    name_error: Option<String>,
    description_error: Option<String>,
    result: Option<ResultView>,
    max_rows: usize,
    saved: Vec<SavedRow>,
}

fn result_view(ran: &Ran) -> Result<ResultView, AppError> {
    let formatting = |e: lector_warehouse::arrow::error::ArrowError| AppError::Internal(format!("cannot format a query result: {e}"));
    let QueryResult { columns, batches, truncated, .. } = &ran.result;
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(formatting)?;
        for i in 0..batch.num_rows() {
            let row = batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(column, f)| if column.is_null(i) { Ok(None) } else { f.value(i).try_to_string().map(Some) })
                .collect::<Result<Vec<_>, _>>()
                .map_err(formatting)?;
            rows.push(row);
        }
    }
    Ok(ResultView { columns: columns.clone(), rows, truncated: *truncated, elapsed_ms: ran.elapsed_ms })
}

impl SqlPage {
    async fn new(state: &AppState, staff: &Staff, form: &SqlForm) -> Result<SqlPage, PageError> {
        let saved = state.store.saved_queries(staff.user.id).await.map_err(store_err(staff.lang))?;
        Ok(SqlPage {
            ctx: Ctx::staff(staff, "warehouse", "/warehouse/sql"),
            tabs: tabs(staff, "/warehouse/sql"),
            sql: form.sql.clone(),
            name: form.name.clone(),
            description: form.description.clone(),
            shared: form.shared.is_some(),
            error: None,
            name_error: None,
            description_error: None,
            result: None,
            max_rows: state.warehouse.config().max_rows,
            saved: saved.into_iter().map(|q| saved_row(q, staff)).collect(),
        })
    }

    /// Shows `errors` above the form and beside its fields, as a 422.
    fn invalid(mut self, errors: &FieldErrors) -> Response {
        let l = self.ctx.l;
        let field = |name: &str| errors.get(name).map(|m| l.msg(m));
        self.name_error = field("name");
        self.description_error = field("description");
        self.error = Some(errors.0.iter().map(|e| l.msg(&e.message)).collect::<Vec<_>>().join("\n"));
        (StatusCode::UNPROCESSABLE_ENTITY, render(&self)).into_response()
    }
}

fn saved_row(q: SavedQuery, staff: &Staff) -> SavedRow {
    SavedRow {
        id: q.id,
        mine: q.owner_id == staff.user.id,
        name: q.name,
        description: q.description,
        owner: q.owner,
        shared: q.shared,
        updated: local_time(&q.updated_at),
    }
}

#[derive(Deserialize)]
struct SqlQuery {
    /// A saved query to load into the form.
    saved: Option<i64>,
    flash: Option<String>,
}

async fn sql_form(State(state): State<AppState>, staff: Staff, Query(q): Query<SqlQuery>) -> Result<Response, PageError> {
    staff.require(Permission::WarehouseQuery)?;
    let form = match q.saved {
        Some(id) => {
            let saved = state.store.saved_query(staff.user.id, id).await.map_err(store_err(staff.lang))?;
            SqlForm { csrf: None, sql: saved.sql, name: saved.name, description: saved.description, shared: saved.shared.then(String::new) }
        }
        None => SqlForm::default(),
    };
    let mut page = SqlPage::new(&state, &staff, &form).await?;
    page.ctx = page.ctx.with_flash(q.flash.as_deref());
    Ok(render(&page))
}

async fn run_sql(State(state): State<AppState>, staff: Staff, Form(form): Form<SqlForm>) -> Result<Response, PageError> {
    staff.require(Permission::WarehouseQuery)?;
    staff.check_csrf(form.csrf.as_deref())?;
    let l = staff.lang;
    let outcome = run_audited(&state, &staff.actor(), &form.sql, QueryPurpose::View).await;
    let mut page = SqlPage::new(&state, &staff, &form).await?;
    match outcome {
        Ok(ran) => {
            page.result = Some(result_view(&ran).map_err(|e| PageError(e, l))?);
            Ok(render(&page))
        }
        Err(AppError::Invalid(errors)) => Ok(page.invalid(&errors)),
        Err(e) => Err(PageError(e, l)),
    }
}

async fn download_csv(State(state): State<AppState>, staff: Staff, Form(form): Form<SqlForm>) -> Result<Response, PageError> {
    staff.require(Permission::WarehouseQuery)?;
    staff.check_csrf(form.csrf.as_deref())?;
    let l = staff.lang;
    match run_audited(&state, &staff.actor(), &form.sql, QueryPurpose::Export).await {
        Ok(ran) => csv_download(&ran.result, &form.name).map_err(|e| PageError(e, l)),
        Err(AppError::Invalid(errors)) => Ok(SqlPage::new(&state, &staff, &form).await?.invalid(&errors)),
        Err(e) => Err(PageError(e, l)),
    }
}

async fn save_query(State(state): State<AppState>, staff: Staff, Form(form): Form<SqlForm>) -> Result<Response, PageError> {
    staff.require(Permission::WarehouseQuery)?;
    staff.check_csrf(form.csrf.as_deref())?;
    let input = SavedQueryInput {
        name: form.name.clone(),
        sql: form.sql.clone(),
        description: form.description.clone(),
        shared: form.shared.is_some(),
    };
    match state.store.save_query(&staff.actor(), &input).await {
        Ok(saved) => Ok(see_other(&format!("/warehouse/sql?saved={}&flash=saved", saved.id))),
        Err(lector_store::StoreError::Invalid(errors)) => Ok(SqlPage::new(&state, &staff, &form).await?.invalid(&errors)),
        Err(lector_store::StoreError::Conflict(m)) => {
            let mut errors = FieldErrors::default();
            errors.push("name", m);
            Ok(SqlPage::new(&state, &staff, &form).await?.invalid(&errors))
        }
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

async fn delete_query(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Form(form): Form<super::CsrfForm>,
) -> Result<Response, PageError> {
    let id = checked_post(&staff, Permission::WarehouseQuery, form.csrf.as_deref(), &raw)?;
    state.store.delete_saved_query(&staff.actor(), id).await.map_err(store_err(staff.lang))?;
    Ok(see_other("/warehouse/sql?flash=deleted"))
}
