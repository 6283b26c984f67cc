//! Connection, backend detection and the small query-building seam.

use crate::{migrations, Result, StoreError};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Executor};
use std::fmt::Write;
use std::str::FromStr;

/// Which database server is behind the store. Only DDL differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The operational store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// The service dashboard's last figures, shared by the clones of this store.
    pub(crate) stats_cache: std::sync::Arc<crate::cases::StatsCache>,
}

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`), creating an SQLite file if needed,
    /// and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Other(format!("unsupported database URL '{url}': use sqlite://PATH or postgres://USER@HOST/DB")));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let options = sqlx::any::AnyConnectOptions::from_str(&url)?;
        let max = match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -32000; PRAGMA mmap_size = 1073741824;").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        Ok(Store { pool, backend, stats_cache: Default::default() })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the migrations not yet applied. Safe to run concurrently from several instances
    /// on PostgreSQL (an advisory lock serialises them).
    pub async fn migrate(&self) -> Result<()> {
        migrations::run(self).await
    }

    /// Starts a write transaction. On SQLite its first statement is a write (touching no row),
    /// which takes the write lock at once, so two writers queue on the busy timeout instead of
    /// failing when a read upgrades to a write. (Not `BEGIN IMMEDIATE` through `begin_with`:
    /// sqlx refuses that on a connection whose dropped transaction is still rolling back, which
    /// happens whenever a client disconnects mid-request.)
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, Any>> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Sqlite {
            sqlx::query("UPDATE schema_migrations SET version = version WHERE 1 = 0").execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// Checks the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A bound value. Typed even when null, because PostgreSQL needs to know what a null is.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}
impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}
impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(Some(v))
    }
}
impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(Some(v.to_string()))
    }
}
impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Self {
        Param::Text(v)
    }
}
impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Param::Int(Some(v as i64))
    }
}

/// SQL text with numbered placeholders, built piece by piece for dynamic filters.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    pub text: String,
    params: Vec<Param>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Sql { text: text.to_string(), params: Vec::new() }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub fn bind(&mut self, value: impl Into<Param>) -> &mut Self {
        self.params.push(value.into());
        let _ = write!(self.text, "${}", self.params.len());
        self
    }

    /// Appends placeholders for `values`, separated by commas.
    pub fn bind_list(&mut self, values: impl IntoIterator<Item = Param>) -> &mut Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self
    }

    /// The same parameters under other text (a count and a page over one filter).
    pub fn with_text(&self, text: &str) -> Sql {
        Sql { text: text.to_string(), params: self.params.clone() }
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        self.params.iter().fold(sqlx::query(&self.text), |q, p| match p {
            Param::Int(v) => q.bind(*v),
            Param::Text(v) => q.bind(v.clone()),
        })
    }
}

/// Reads a 0/1 integer column as a flag (booleans are stored as integers on both backends).
pub(crate) fn flag(row: &AnyRow, col: &str) -> Result<bool> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(col)? != 0)
}

/// True when `err` is a unique-constraint violation.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}
