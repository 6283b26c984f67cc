//! End-to-end tests: they start the real `lector` binary on a temporary data directory.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn demo_user_and_token_commands() {
    let dir = tempfile::tempdir().unwrap();

    let o = lector(dir.path(), &["demo", "--readers", "300", "--json"]);
    assert!(o.status.success(), "demo failed: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("demo --json prints JSON");
    assert_eq!(report["readers"], 300);
    assert_eq!(report["password"], "lector-demo-2026");
    assert!(report["users"].as_array().unwrap().iter().any(|u| u["username"] == "admin"));

    // A second run refuses: the store is no longer empty.
    let o = lector(dir.path(), &["demo", "--readers", "10"]);
    assert!(!o.status.success());
    // 300 seeded, plus the registrar's new readers the demo import created.
    let err = stderr(&o);
    let held: u64 = err.split("already holds ").nth(1).and_then(|t| t.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(held > 300 && err.contains("demo data goes only into an empty store"), "{err}");

    // A bad role is refused with a clear one-line message and no panic.
    let o = lector(dir.path(), &["user", "add", "someone", "--role", "root"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("unknown role 'root'") && err.contains("未知角色"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A duplicate user name likewise.
    let o = lector(dir.path(), &["user", "add", "admin", "--role", "admin"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("user name 'admin' is taken"), "{}", stderr(&o));

    // A new user gets a generated password, printed once.
    let o = lector(dir.path(), &["user", "add", "wang.fang", "--role", "librarian", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let user: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(user["username"], "wang.fang");
    assert!(user["password"].as_str().unwrap().len() >= 16);

    let o = lector(dir.path(), &["token", "create", "--user", "admin"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let token = out.trim();
    assert!(token.starts_with("lec_"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");

    let o = lector(dir.path(), &["token", "create", "--user", "nobody"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no user 'nobody'"), "{}", stderr(&o));
}

#[test]
fn unreachable_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = lector(dir.path(), &["--database-url", "mysql://nowhere/db", "migrate"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("unsupported database URL"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn serve_answers_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_serve(dir.path(), &[]);
    let rt = tokio_runtime();
    let status = rt.block_on(async {
        common::http_client()
            .get(format!("http://{}/healthz", server.addr))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(status.expect("GET /healthz"), 200);
}

/// The same binary on PostgreSQL: migrate, create staff and a token from the shell, serve, and
/// create and find a reader through the API.
#[test]
fn the_same_binary_runs_on_postgresql() {
    let Some(db) = PgDatabase::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url();
    let migrated = lector(dir.path(), &["--database-url", &url, "migrate"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let added = lector(dir.path(), &["--database-url", &url, "user", "add", "boss", "--role", "librarian"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let token = lector(dir.path(), &["--database-url", &url, "token", "create", "--user", "boss"]);
    let token = stdout(&token).trim().to_string();
    assert!(token.starts_with("lec_"), "{token}");
    assert!(!dir.path().join("lector.db").exists(), "nothing was written to SQLite");

    let server = spawn_serve(dir.path(), &["--database-url", &url]);
    let base = format!("http://{}", server.addr);
    let rt = tokio_runtime();
    rt.block_on(async {
        let client = common::http_client();
        let body = serde_json::json!({
            "card_no": "PG2026001", "name": "欧阳明月", "category": "graduate",
            "contacts": [{"kind": "email", "value": "oymy@pku.edu.cn"}]
        });
        let created = client.post(format!("{base}/api/v1/readers")).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(created.status().as_u16(), 201);
        let dup = client.post(format!("{base}/api/v1/readers")).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(dup.status().as_u16(), 409);
        let found: serde_json::Value =
            client.get(format!("{base}/api/v1/readers?q=oymy")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(found["total"], 1, "{found}");
        assert_eq!(found["items"][0]["name"], "欧阳明月");
        let by_card: serde_json::Value =
            client.get(format!("{base}/api/v1/readers/by-card/PG2026001")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(by_card["pinyin"], "ouyangmingyue");
    });
}
