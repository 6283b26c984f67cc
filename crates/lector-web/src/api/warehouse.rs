//! The warehouse (数据仓库) in the API: the data dictionary and read-only SQL, and the
//! audited query run and CSV download the warehouse pages share.
//!
//! Every route needs `WarehouseQuery`, checked before the body is read. Every query is audited
//! (`warehouse.query`, or `warehouse.export` for CSV) with its SQL in the summary, whether it
//! ran or was refused.

use super::dto::ErrorBody;
use super::json::ApiJson;
use crate::auth::ApiUser;
use crate::error::AppError;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lector_domain::role::Permission;
use lector_domain::{FieldErrors, Msg};
use lector_store::audit::Change;
use lector_store::Actor;
use lector_warehouse::dictionary::{ColumnInfo, TableInfo};
use lector_warehouse::{Dictionary, QueryResult, WarehouseError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Instant;
use utoipa::{OpenApi, ToSchema};

/// The audit summary keeps this much of a query's SQL, in characters.
pub const AUDIT_SQL_CHARS: usize = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/warehouse/tables", get(list_tables))
        .route("/warehouse/tables/{name}", get(get_table))
        .route("/warehouse/query", post(run_query))
}

/// What a query is run for, as the audit log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryPurpose {
    /// Shown on screen or returned as JSON: `warehouse.query`.
    View,
    /// Downloaded as CSV: `warehouse.export`.
    Export,
}

impl QueryPurpose {
    fn action(self) -> &'static str {
        match self {
            QueryPurpose::View => "warehouse.query",
            QueryPurpose::Export => "warehouse.export",
        }
    }
}

/// A query that ran, with how long it took.
pub struct Ran {
    pub result: QueryResult,
    pub elapsed_ms: u64,
}

/// The first `max` characters of `s`, with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// What the analyst can act on, for the failures their SQL causes; `None` for the warehouse's
/// own failures (storage, damaged files), which are logged as internal errors.
fn user_message(e: &WarehouseError) -> Option<Msg> {
    match e {
        WarehouseError::Refused(m) | WarehouseError::Invalid(m) => Some(m.clone()),
        WarehouseError::Query(detail) => Some(Msg::new(format!("查询失败：{detail}"), format!("the query failed: {detail}"))),
        WarehouseError::Timeout { secs } => {
            Some(Msg::new(format!("查询超过 {secs} 秒的时间限制"), format!("the query exceeded its time limit of {secs} s")))
        }
        WarehouseError::MemoryLimit { limit_mb, .. } => Some(Msg::new(
            format!("查询超过 {limit_mb} MB 的内存限制，请缩小范围或先聚合"),
            format!("the query exceeded its memory limit of {limit_mb} MB; narrow it down or aggregate first"),
        )),
        _ => None,
    }
}

/// Runs `sql` on the warehouse and audits the attempt, run or refused. A refusal or a failure
/// of the SQL itself is `AppError::Invalid` on the field `sql`.
pub async fn run_audited(state: &AppState, actor: &Actor, sql: &str, purpose: QueryPurpose) -> Result<Ran, AppError> {
    let sql = sql.trim();
    let started = Instant::now();
    let outcome = if sql.is_empty() {
        Err(Some(Msg::new("请填写 SQL 语句", "enter an SQL statement")))
    } else {
        state.warehouse.sql(sql).await.map_err(|e| {
            let message = user_message(&e);
            if message.is_none() {
                tracing::error!(error = %e, "the warehouse failed to run a query");
            }
            message
        })
    };
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let after = match &outcome {
        Ok(r) => json!({"rows": r.row_count(), "truncated": r.truncated, "elapsed_ms": elapsed_ms}),
        Err(Some(m)) => json!({"refused": m.en}),
        Err(None) => json!({"failed": true}),
    };
    let change = Change {
        action: purpose.action(),
        entity: "warehouse",
        entity_id: None,
        summary: cut(sql, AUDIT_SQL_CHARS),
        before: None,
        after: Some(after),
    };
    state.store.audit_access(actor, change).await?;
    match outcome {
        Ok(result) => Ok(Ran { result, elapsed_ms }),
        Err(Some(m)) => {
            let mut errors = FieldErrors::default();
            errors.push("sql", m);
            Err(AppError::Invalid(errors))
        }
        Err(None) => Err(AppError::Internal("the warehouse failed to run a query".into())),
    }
}

/// RFC 5987 encoding of a file name for `filename*=UTF-8''…`.
fn encode_filename(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The result as a CSV download named after `title` (a saved query's name, say) and the
/// time: UTF-8 with a BOM, so Excel reads Chinese.
pub fn csv_download(result: &QueryResult, title: &str) -> Result<Response, AppError> {
    let csv = result.to_csv().map_err(|e| AppError::Internal(format!("cannot write the query result as CSV: {e}")))?;
    let title: String = title.chars().filter(|c| !c.is_control() && !matches!(c, '/' | '\\' | '"')).take(80).collect();
    let title = if title.trim().is_empty() { "query".to_string() } else { title.trim().to_string() };
    let name = format!("{title}-{}.csv", chrono::Local::now().format("%Y%m%d-%H%M%S"));
    let ascii: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') { c } else { '_' }).collect();
    let disposition = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", encode_filename(&name));
    let disposition = HeaderValue::from_str(&disposition).map_err(|e| AppError::Internal(format!("bad download header: {e}")))?;
    let body = format!("\u{feff}{csv}");
    Ok(([(CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")), (CONTENT_DISPOSITION, disposition)], body).into_response())
}

/// The warehouse's failure to read its own files or load log, as an internal error.
pub fn warehouse_unreadable(e: WarehouseError) -> AppError {
    AppError::Internal(format!("cannot read the warehouse: {e}"))
}

/// One column of a table.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnBody {
    #[schema(example = "loaned_at")]
    pub name: String,
    #[schema(example = "TIMESTAMP")]
    pub sql_type: String,
    pub nullable: bool,
    pub description_zh: String,
    pub description_en: String,
    /// Computed by the table's view (e.g. `valid_to`, `is_current`), not stored in its files.
    pub computed: bool,
}

/// One table of the data dictionary.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableBody {
    #[schema(example = "fact_loan")]
    pub name: String,
    /// `fact`, `dimension` or `generated`.
    pub kind: String,
    pub description_zh: String,
    pub description_en: String,
    pub lineage_zh: String,
    pub lineage_en: String,
    /// Rows stored by committed batches (a generated table: the rows it has now).
    pub rows: u64,
    /// Committed batches that stored rows in the table.
    pub batches: usize,
    /// RFC 3339, UTC; absent when never loaded.
    pub last_loaded_at: Option<String>,
    /// Seconds since the last load.
    pub age_secs: Option<i64>,
    /// Queries keep only the latest batch per `event_key` (the table has corrections).
    pub latest_per_key: bool,
    pub columns: Vec<ColumnBody>,
}

/// A rule every reader of the warehouse's files must follow.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleBody {
    pub zh: String,
    pub en: String,
}

/// The data dictionary.
#[derive(Debug, Serialize, ToSchema)]
pub struct DictionaryBody {
    /// Committed batches.
    pub batches: usize,
    pub last_batch: Option<u64>,
    /// RFC 3339, UTC.
    pub last_loaded_at: Option<String>,
    pub rules: Vec<RuleBody>,
    pub tables: Vec<TableBody>,
}

impl From<&ColumnInfo> for ColumnBody {
    fn from(c: &ColumnInfo) -> Self {
        ColumnBody {
            name: c.name.into(),
            sql_type: c.sql_type.into(),
            nullable: c.nullable,
            description_zh: c.zh.into(),
            description_en: c.en.into(),
            computed: c.computed,
        }
    }
}

impl From<&TableInfo> for TableBody {
    fn from(t: &TableInfo) -> Self {
        TableBody {
            name: t.name.into(),
            kind: t.kind.into(),
            description_zh: t.zh.into(),
            description_en: t.en.into(),
            lineage_zh: t.lineage_zh.into(),
            lineage_en: t.lineage_en.into(),
            rows: t.rows,
            batches: t.batches,
            last_loaded_at: t.last_loaded_at.map(|at| at.to_rfc3339()),
            age_secs: t.age_secs,
            latest_per_key: t.latest_per_key,
            columns: t.columns.iter().map(ColumnBody::from).collect(),
        }
    }
}

impl From<&Dictionary> for DictionaryBody {
    fn from(d: &Dictionary) -> Self {
        DictionaryBody {
            batches: d.batches,
            last_batch: d.last_batch,
            last_loaded_at: d.last_loaded_at.map(|at| at.to_rfc3339()),
            rules: d.rules.iter().map(|r| RuleBody { zh: r.zh.clone(), en: r.en.clone() }).collect(),
            tables: d.tables.iter().map(TableBody::from).collect(),
        }
    }
}

/// How the result comes back.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueryFormat {
    /// `QueryResultBody`.
    #[default]
    Json,
    /// `text/csv`, UTF-8 with a BOM; audited as an export.
    Csv,
}

/// A read-only query: a single `SELECT`, `WITH`, `VALUES` or `EXPLAIN` of those.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    #[schema(example = "SELECT month, count(*) AS loans FROM fact_loan GROUP BY month ORDER BY month")]
    pub sql: String,
    #[serde(default)]
    pub format: Option<QueryFormat>,
}

/// The rows of a query, at most the configured maximum.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryResultBody {
    pub columns: Vec<String>,
    /// One object per row, keyed by column; empty values are `null`.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    pub row_count: usize,
    /// The query had more rows than `max_rows`; the rest were not read.
    pub truncated: bool,
    pub max_rows: usize,
    pub elapsed_ms: u64,
}

#[utoipa::path(
    get, path = "/api/v1/warehouse/tables", tag = "warehouse",
    responses(
        (status = 200, description = "The data dictionary: every table with its columns, load history summary and rules", body = DictionaryBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not query the warehouse", body = ErrorBody),
    )
)]
pub async fn list_tables(State(state): State<AppState>, user: ApiUser) -> Result<Json<DictionaryBody>, AppError> {
    user.require(Permission::WarehouseQuery)?;
    let dictionary = state.warehouse.describe(None).await.map_err(warehouse_unreadable)?;
    Ok(Json(DictionaryBody::from(&dictionary)))
}

#[utoipa::path(
    get, path = "/api/v1/warehouse/tables/{name}", tag = "warehouse",
    params(("name" = String, Path, description = "Table name, e.g. `fact_loan`")),
    responses(
        (status = 200, description = "One table of the data dictionary", body = TableBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not query the warehouse", body = ErrorBody),
        (status = 404, description = "No such table", body = ErrorBody),
    )
)]
pub async fn get_table(State(state): State<AppState>, user: ApiUser, Path(name): Path<String>) -> Result<Json<TableBody>, AppError> {
    user.require(Permission::WarehouseQuery)?;
    if lector_warehouse::schema::table(&name).is_none() {
        return Err(AppError::NotFound);
    }
    let dictionary = state.warehouse.describe(Some(&name)).await.map_err(warehouse_unreadable)?;
    dictionary.tables.first().map(|t| Json(TableBody::from(t))).ok_or(AppError::NotFound)
}

#[utoipa::path(
    post, path = "/api/v1/warehouse/query", tag = "warehouse",
    request_body(content = QueryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The rows (JSON), or a CSV file with a BOM for `format: csv`", body = QueryResultBody),
        (status = 400, description = "The body is not a query request", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not query the warehouse", body = ErrorBody),
        (status = 422, description = "The SQL was refused (not a single read-only query) or failed; the message says why", body = ErrorBody),
    )
)]
pub async fn run_query(State(state): State<AppState>, user: ApiUser, body: axum::body::Bytes) -> Result<Response, AppError> {
    user.require(Permission::WarehouseQuery)?;
    let ApiJson(request) = ApiJson::<QueryRequest>::from_bytes(&body)?;
    let format = request.format.unwrap_or_default();
    let purpose = match format {
        QueryFormat::Json => QueryPurpose::View,
        QueryFormat::Csv => QueryPurpose::Export,
    };
    let ran = run_audited(&state, &user.actor(), &request.sql, purpose).await?;
    match format {
        QueryFormat::Csv => csv_download(&ran.result, "query"),
        QueryFormat::Json => {
            let rows = ran.result.to_json_rows().map_err(|e| AppError::Internal(format!("cannot write the query result as JSON: {e}")))?;
            Ok(Json(QueryResultBody {
                columns: ran.result.columns.clone(),
                row_count: rows.len(),
                rows,
                truncated: ran.result.truncated,
                max_rows: state.warehouse.config().max_rows,
                elapsed_ms: ran.elapsed_ms,
            })
            .into_response())
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(list_tables, get_table, run_query),
    components(schemas(ColumnBody, TableBody, RuleBody, DictionaryBody, QueryFormat, QueryRequest, QueryResultBody)),
    tags((name = "warehouse", description = "The data warehouse (数据仓库): data dictionary and read-only SQL")),
)]
pub struct Doc;
