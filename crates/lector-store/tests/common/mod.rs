//! The harness of the scenario suite: runs one scenario against a fresh SQLite file and against
//! a fresh PostgreSQL database.
//!
//! PostgreSQL comes from `LECTOR_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! Each test creates its own database `lector_t_<random>` through that admin connection and drops
//! it afterwards. When PostgreSQL is unreachable the PG half is skipped with a notice, unless `CI`
//! is set, in which case the test fails.

use chrono::NaiveDate;
use lector_store::domain::reader::ReaderDraft;
use lector_store::{Actor, Store};
use rand::Rng;
use sqlx::{Connection, Executor};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

/// One `#[tokio::test]` per scenario: `scenarios!(module: name, …)` runs `module::name` through
/// [`run`].
macro_rules! scenarios {
    ($module:ident: $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                common::run(stringify!($name), $module::$name).await;
            }
        )+
    };
}

/// The fixed "today" of the suites, so dates in fixtures never go stale.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 1).unwrap()
}

pub fn actor() -> Actor {
    Actor::system("test")
}

/// An undergraduate reader with only a card number and a name.
pub fn draft(card: &str, name: &str) -> ReaderDraft {
    ReaderDraft { card_no: card.into(), name: name.into(), category: "undergraduate".into(), ..Default::default() }
}

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

tokio::task_local! {
    /// The URL of the database the running scenario works on.
    static DB_URL: String;
}

/// The URL of the database under test (for scenarios that open a second store or look at rows
/// directly).
pub fn db_url() -> String {
    DB_URL.with(|u| u.clone())
}

/// A plain connection pool on the database under test, for checks the store's API cannot make.
pub async fn raw_pool() -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&db_url()).await.expect("raw connection to the test database")
}

/// Runs `sql` (a `SELECT COUNT(*)`-like query with one `$1` integer parameter) directly.
pub async fn raw_count(sql: &str, param: i64) -> i64 {
    let pool = raw_pool().await;
    let n: i64 = sqlx::query_scalar(sql).bind(param).fetch_one(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
    n
}

/// Runs `scenario` against SQLite, then against PostgreSQL.
pub async fn run<F, Fut>(test: &str, scenario: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_sqlite(test, &scenario).await;
    run_postgres(test, &scenario).await;
}

async fn run_sqlite<F, Fut>(test: &str, scenario: &F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("lector.db").display());
    let store = Store::open(&url).await.unwrap_or_else(|e| panic!("[sqlite] {test}: cannot open {url}: {e}"));
    let outcome = run_guarded(url, store.clone(), scenario).await;
    store.close().await;
    if let Err(msg) = outcome {
        panic!("[sqlite] {test} failed: {msg}");
    }
}

async fn run_postgres<F, Fut>(test: &str, scenario: &F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin_url = std::env::var("LECTOR_TEST_PG_URL").ok().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| DEFAULT_PG_URL.to_string());
    let admin = tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&admin_url)).await;
    let mut admin = match admin {
        Ok(Ok(conn)) => conn,
        failure => {
            let why = match failure {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out after 10 s".to_string(),
            };
            if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
                panic!("[postgres] {test}: PostgreSQL unreachable at {admin_url} ({why}); CI is set, so the PostgreSQL half may not be skipped");
            }
            eprintln!("PostgreSQL unreachable: skipping PG half of {test} ({admin_url}: {why})");
            return;
        }
    };
    let name = format!("lector_t_{:016x}", rand::thread_rng().gen::<u64>());
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("[postgres] {test}: CREATE DATABASE {name}: {e}"));
    let url = with_database(&admin_url, &name);
    let outcome = match Store::open(&url).await {
        Ok(store) => {
            let outcome = run_guarded(url, store.clone(), scenario).await;
            store.close().await;
            outcome
        }
        Err(e) => Err(format!("cannot open {url}: {e}")),
    };
    // Best effort: a leftover database is harmless and named for what it is.
    if let Err(e) = admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await {
        eprintln!("[postgres] {test}: could not drop {name}: {e}");
    }
    let _ = admin.close().await;
    if let Err(msg) = outcome {
        panic!("[postgres] {test} failed: {msg}");
    }
}

/// Runs the scenario in its own task so that a failed assertion still lets the harness clean up.
async fn run_guarded<F, Fut>(url: String, store: Store, scenario: &F) -> Result<(), String>
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fut = DB_URL.scope(url, scenario(store));
    match tokio::spawn(AssertUnwindSafe(fut)).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            Err(payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".to_string()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[test]
fn database_name_is_replaced() {
    assert_eq!(with_database("postgres://postgres@127.0.0.1:5432/test", "x"), "postgres://postgres@127.0.0.1:5432/x");
    assert_eq!(with_database("postgres://u:p@h/test?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
    assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
}
