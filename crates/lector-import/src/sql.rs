//! Reading readers from another database (PostgreSQL or MySQL/MariaDB) by query, by table, or
//! through the Koha preset (`borrowers` with `borrower_attributes`).
//!
//! Reading is read-only on Lector's side: a query must be one `SELECT` (or `WITH … SELECT`), and
//! it runs inside a read-only transaction where the server supports one. Give Lector a database
//! user that can only read, all the same.
//!
//! The rows stream from a task on the tokio runtime `open` ran on, through a bounded channel, so
//! a large table is never held in memory. [`RecordSource::next_record`] waits for that task with
//! `blocking_recv`: call it off the runtime's async threads (the runner reads records inside
//! `spawn_blocking`), never from async code directly.

use crate::{Format, Opened, Record, RecordSource, SourceError, SourceHints};
use futures_util::TryStreamExt;
use lector_domain::Msg;
use serde::{Deserialize, Serialize};
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection, Postgres};
use sqlx::{Column, ColumnIndex, Connection, Database, Decode, Executor, Row, Statement, TypeInfo};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::mpsc;

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlSelect {
    Query(String),
    Table(String),
    /// Koha's own database: `borrowers` and `borrower_attributes`.
    Koha,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlSpec {
    /// `postgres://…` or `mysql://…` (`mariadb://` is read as `mysql://`).
    pub url: String,
    pub select: SqlSelect,
}

impl SqlSpec {
    /// The URL with any password replaced by `***`, for labels and logs.
    pub fn redacted_url(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) => {
                if u.password().is_some() && u.set_password(Some("***")).is_err() {
                    return mask_userinfo(&self.url);
                }
                u.to_string()
            }
            Err(_) => mask_userinfo(&self.url),
        }
    }
}

/// For a URL `url` cannot read: everything between `://` and `@` masked.
fn mask_userinfo(raw: &str) -> String {
    match (raw.find("://"), raw.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &raw[..s], &raw[at..]),
        _ => raw.to_string(),
    }
}

/// Rows per message on the channel; a few messages in flight bound the memory.
const BATCH: usize = 256;
const IN_FLIGHT: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The Koha preset: Koha's own column names, so [`crate::mapping::Profile::detect`] maps them;
/// attributes as `patron_attributes` (`CODE:value,…`, a value with a comma quoted as Koha does).
/// The password hash is not read.
const KOHA_QUERY: &str = "SELECT b.borrowernumber, b.cardnumber, b.surname, b.firstname, b.categorycode, b.branchcode, \
b.email, b.emailpro, b.B_email, b.phone, b.mobile, b.phonepro, b.B_phone, b.dateenrolled, b.dateexpiry, b.sex, \
b.dateofbirth, b.sort1, b.sort2, b.userid, b.address, b.city, b.borrowernotes, \
(SELECT GROUP_CONCAT(IF(LOCATE(',', a.attribute) > 0, CONCAT('\"', a.code, ':', REPLACE(a.attribute, '\"', '\"\"'), '\"'), \
CONCAT(a.code, ':', a.attribute)) ORDER BY a.code, a.attribute SEPARATOR ',') \
FROM borrower_attributes a WHERE a.borrowernumber = b.borrowernumber) AS patron_attributes \
FROM borrowers b ORDER BY b.borrowernumber";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Postgres,
    MySql,
}

/// Where a connection goes, for messages: never the password.
struct Place {
    driver: Driver,
    url: String,
    host: String,
}

fn place(spec: &SqlSpec) -> Result<Place, SourceError> {
    let redacted = spec.redacted_url();
    let (scheme, rest) = spec.url.trim().split_once("://").ok_or_else(|| bad_url(&redacted))?;
    let driver = match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => Driver::Postgres,
        "mysql" | "mariadb" => Driver::MySql,
        _ => return Err(bad_url(&redacted)),
    };
    let url = match driver {
        Driver::MySql => format!("mysql://{rest}"),
        Driver::Postgres => spec.url.trim().to_string(),
    };
    let host = url::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(|h| u.port().map_or_else(|| h.to_string(), |p| format!("{h}:{p}"))))
        .unwrap_or_else(|| "localhost".into());
    Ok(Place { driver, url, host })
}

fn bad_url(redacted: &str) -> SourceError {
    SourceError::whole(Msg::new(
        format!("数据库地址“{redacted}”无效：应形如 postgres://用户@主机/库 或 mysql://用户@主机/库"),
        format!("database URL '{redacted}' is invalid: expected postgres://user@host/db or mysql://user@host/db"),
    ))
}

/// The statement to run, checked, and the format its rows are in.
fn statement(select: &SqlSelect, driver: Driver) -> Result<(String, Format), SourceError> {
    match select {
        SqlSelect::Query(q) => check_select(q, driver).map(|q| (q, Format::Sql)).map_err(SourceError::whole),
        SqlSelect::Table(t) => {
            let parts = check_identifier(t).map_err(SourceError::whole)?;
            let quoted: Vec<String> = match driver {
                Driver::Postgres => parts.iter().map(|p| format!("\"{p}\"")).collect(),
                Driver::MySql => parts.iter().map(|p| format!("`{p}`")).collect(),
            };
            Ok((format!("SELECT * FROM {}", quoted.join(".")), Format::Sql))
        }
        SqlSelect::Koha if driver == Driver::MySql => Ok((KOHA_QUERY.to_string(), Format::Koha)),
        SqlSelect::Koha => Err(SourceError::whole(Msg::new(
            "Koha 预设只适用于 MySQL/MariaDB 数据库（Koha 自身使用的数据库）",
            "the Koha preset reads MySQL/MariaDB only (the database Koha itself uses)",
        ))),
    }
}

/// A table name: letters, digits and `_`, with an optional `schema.` in front.
fn check_identifier(raw: &str) -> Result<Vec<&str>, Msg> {
    let parts: Vec<&str> = raw.trim().split('.').collect();
    let ok = parts.len() <= 2 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'));
    if ok {
        Ok(parts)
    } else {
        Err(Msg::new(
            format!("表名“{raw}”无效：只能包含字母、数字和下划线，可带“模式.”前缀"),
            format!("table name '{raw}' is invalid: letters, digits and _ only, optionally with a 'schema.' prefix"),
        ))
    }
}

fn not_a_select() -> Msg {
    Msg::new(
        "只能读取：查询必须是一条 SELECT（或 WITH … SELECT）语句，不含分号分隔的其他语句，也不能 SELECT … INTO",
        "read only: the query must be a single SELECT (or WITH … SELECT) statement, with no other statements after a semicolon and no SELECT … INTO",
    )
}

/// Checks that `q` is one `SELECT`/`WITH` statement without `INTO`, looking past quoted text and
/// comments, and returns it without trailing semicolons. The server then prepares it, which
/// refuses several statements outright.
fn check_select(q: &str, driver: Driver) -> Result<String, Msg> {
    let body = q.trim().trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let chars: Vec<char> = body.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' | '"' | '`' => {
                // PostgreSQL reads backslashes literally except in E'…' strings; MySQL always escapes.
                let e_string = i > 0 && matches!(chars[i - 1], 'e' | 'E') && (i < 2 || !chars[i - 2].is_alphanumeric());
                let escapes = driver == Driver::MySql || (c == '\'' && e_string);
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(not_a_select()),
                        Some('\\') if escapes => i += 2,
                        Some(&d) if d == c && chars.get(i + 1) == Some(&c) => i += 2,
                        Some(&d) if d == c => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
            }
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '#' if driver == Driver::MySql => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let close = (i + 2..chars.len().saturating_sub(1)).find(|&j| chars[j] == '*' && chars[j + 1] == '/');
                i = close.ok_or_else(not_a_select)? + 2;
            }
            ';' => return Err(not_a_select()),
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                    i += 1;
                }
                words.push(chars[start..i].iter().collect::<String>().to_lowercase());
            }
            _ => i += 1,
        }
    }
    let first = words.first().map(String::as_str);
    if !matches!(first, Some("select" | "with")) || words.iter().any(|w| w == "into") {
        return Err(not_a_select());
    }
    Ok(body.to_string())
}

/// Connects and starts reading; the rows stream through a bounded channel so a large table is
/// never held in memory. A refused connection or a failing query is a clear error.
pub async fn open(spec: &SqlSpec) -> Result<Opened, SourceError> {
    let place = place(spec)?;
    let (sql, format) = statement(&spec.select, place.driver)?;
    match place.driver {
        Driver::Postgres => {
            let opts = PgConnectOptions::from_str(&place.url).map_err(|_| bad_url(&spec.redacted_url()))?;
            let conn = connect(&place, spec, PgConnection::connect_with(&opts)).await?;
            start::<Postgres>(conn, &["SET datestyle = 'ISO, YMD'"], sql, format, place, spec).await
        }
        Driver::MySql => {
            let opts = MySqlConnectOptions::from_str(&place.url).map_err(|_| bad_url(&spec.redacted_url()))?;
            let conn = connect(&place, spec, MySqlConnection::connect_with(&opts)).await?;
            start::<MySql>(conn, &["SET SESSION group_concat_max_len = 16777216"], sql, format, place, spec).await
        }
    }
}

async fn connect<C>(
    place: &Place,
    spec: &SqlSpec,
    connecting: impl std::future::Future<Output = Result<C, sqlx::Error>>,
) -> Result<C, SourceError> {
    let reason = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => return Ok(conn),
        Ok(Err(e)) => reason(&e, &password_of(spec)),
        Err(_) => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
    };
    Err(SourceError::whole(Msg::new(
        format!("无法连接数据库 {}：{reason}（请检查地址、端口、用户名和密码）", place.host),
        format!("cannot connect to the database at {}: {reason} (check the host, port, user and password)", place.host),
    )))
}

fn password_of(spec: &SqlSpec) -> String {
    url::Url::parse(&spec.url).ok().and_then(|u| u.password().map(str::to_string)).unwrap_or_default()
}

/// The server's or the network's reason, without the password even if a driver echoed it.
fn reason(e: &sqlx::Error, password: &str) -> String {
    let text = match e {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    };
    if password.len() >= 3 {
        text.replace(password, "***")
    } else {
        text
    }
}

fn query_failed(place: &Place, spec: &SqlSpec, e: &sqlx::Error) -> SourceError {
    let reason = reason(e, &password_of(spec));
    SourceError::whole(Msg::new(
        format!("数据库 {} 执行查询失败：{reason}", place.host),
        format!("the database at {} could not run the query: {reason}", place.host),
    ))
}

/// Opens a read-only transaction, reads the headers by preparing the statement (so an empty
/// result still has them, and several statements are refused), and starts the task that
/// streams the rows.
async fn start<DB>(
    mut conn: DB::Connection,
    setup: &[&str],
    sql: String,
    format: Format,
    place: Place,
    spec: &SqlSpec,
) -> Result<Opened, SourceError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> &'r str: Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    for s in setup {
        conn.execute(*s).await.map_err(|e| query_failed(&place, spec, &e))?;
    }
    if let Err(e) = conn.execute("START TRANSACTION READ ONLY").await {
        tracing::warn!(host = %place.host, error = %reason(&e, &password_of(spec)), "the source database has no read-only transactions; reading without one");
    }
    let headers: Vec<String> = match conn.prepare(sql.as_str()).await {
        Ok(statement) => statement.columns().iter().map(|c| c.name().to_string()).collect(),
        Err(e) => {
            let err = query_failed(&place, spec, &e);
            let _ = conn.close().await;
            return Err(err);
        }
    };
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let label = spec.redacted_url();
    let password = password_of(spec);
    let failure = move |e: &sqlx::Error| {
        let text = reason(e, &password);
        SourceError::whole(Msg::new(
            format!("读取数据库 {} 时出错：{text}", place.host),
            format!("reading from the database at {} failed: {text}", place.host),
        ))
    };
    tokio::spawn(async move {
        pump::<DB>(&mut conn, &sql, &tx, failure).await;
        let _ = conn.execute("ROLLBACK").await;
        let _ = conn.close().await;
        tracing::debug!(source = %label, "source database closed");
    });
    Ok(Opened {
        records: Box::new(SqlRecords { headers, rx, batch: Vec::new().into_iter(), finished: false }),
        format,
        encoding: None,
        hints: SourceHints::default(),
    })
}

/// What the reading task sends.
enum Chunk {
    Rows(Vec<Record>),
    Failed(SourceError),
    /// Every row was sent; without it a closed channel means the task stopped early.
    End,
}

async fn pump<DB>(conn: &mut DB::Connection, sql: &str, tx: &mpsc::Sender<Chunk>, failure: impl Fn(&sqlx::Error) -> SourceError)
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> &'r str: Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    // Unprepared, so both servers send every value as text in its own canonical form.
    let mut rows = conn.fetch(sql);
    let mut batch = Vec::with_capacity(BATCH);
    let mut n: u64 = 0;
    loop {
        match rows.try_next().await {
            Ok(Some(row)) => {
                n += 1;
                batch.push(Record { row: n, cells: cells(&row) });
                if batch.len() == BATCH && tx.send(Chunk::Rows(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))).await.is_err() {
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.send(Chunk::Failed(failure(&e))).await;
                return;
            }
        }
    }
    if !batch.is_empty() && tx.send(Chunk::Rows(batch)).await.is_err() {
        return;
    }
    let _ = tx.send(Chunk::End).await;
}

/// A row's values as text: NULL is empty, booleans `true`/`false`, MySQL's zero dates empty,
/// anything that is not text (binary data) empty.
fn cells<R>(row: &R) -> Vec<String>
where
    R: Row,
    for<'r> &'r str: Decode<'r, R::Database>,
    usize: ColumnIndex<R>,
{
    (0..row.len())
        .map(|i| {
            let Ok(value) = row.try_get_raw(i) else { return String::new() };
            if sqlx::ValueRef::is_null(&value) {
                return String::new();
            }
            let kind = row.column(i).type_info().name().to_ascii_uppercase();
            let Ok(text) = <&str as Decode<R::Database>>::decode(value) else { return String::new() };
            match (kind.as_str(), text) {
                ("BOOL" | "BOOLEAN", "t" | "1") => "true".into(),
                ("BOOL" | "BOOLEAN", "f" | "0") => "false".into(),
                ("DATE" | "DATETIME" | "TIMESTAMP", t) if t.starts_with("0000-00-00") => String::new(),
                (_, t) => t.to_string(),
            }
        })
        .collect()
}

/// The receiving end: records in batches from the reading task.
struct SqlRecords {
    headers: Vec<String>,
    rx: mpsc::Receiver<Chunk>,
    batch: std::vec::IntoIter<Record>,
    finished: bool,
}

impl RecordSource for SqlRecords {
    fn headers(&self) -> &[String] {
        &self.headers
    }

    fn next_record(&mut self) -> Option<Result<Record, SourceError>> {
        loop {
            if let Some(r) = self.batch.next() {
                return Some(Ok(r));
            }
            if self.finished {
                return None;
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Rows(rows)) => self.batch = rows.into_iter(),
                Some(Chunk::End) => self.finished = true,
                Some(Chunk::Failed(e)) => {
                    self.finished = true;
                    return Some(Err(e));
                }
                None => {
                    self.finished = true;
                    return Some(Err(SourceError::whole(Msg::new(
                        "与源数据库的读取意外中断，数据不完整",
                        "reading from the source database stopped unexpectedly; the data is incomplete",
                    ))));
                }
            }
        }
    }
}
