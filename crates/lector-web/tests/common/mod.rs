//! The in-process test harness: a fresh SQLite store in a temporary directory, one staff user
//! and one API token per role, and helpers that drive the router with `oneshot`.
//!
//! ```ignore
//! let app = TestApp::new().await;
//! let (status, body) = app.get(app.token(Role::Librarian), "/api/v1/readers").await;
//! ```

#![allow(dead_code)]

use axum::body::{to_bytes, Body};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use lector_domain::role::Role;
use lector_store::auth::{NewUser, User};
use lector_store::config::NamedInput;
use lector_store::{Actor, Store};
use lector_warehouse::{Warehouse, WarehouseConfig};
use lector_web::{router, AppState};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery";
/// The department the `department` user belongs to.
pub const DEPARTMENT: &str = "circulation";

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; `Value::Null` when empty, a JSON string when not JSON.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|_| Value::String(self.text()))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

pub struct TestApp {
    pub store: Store,
    router: Router,
    users: HashMap<&'static str, User>,
    tokens: HashMap<&'static str, String>,
    /// An empty warehouse under `dir`, for tests to load batches into.
    pub warehouse: Arc<Warehouse>,
    /// Keeps the database directory alive as long as the app.
    pub dir: tempfile::TempDir,
}

/// The user name of the test user with `role`.
pub fn username(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Leader => "leader",
        Role::Department => "dept",
        Role::Librarian => "librarian",
        Role::Analyst => "analyst",
    }
}

impl TestApp {
    /// A fresh store with one user and one API token per role.
    pub async fn new() -> TestApp {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = Store::open(&url).await.expect("open the test store");
        let setup = Actor::system("test");
        store
            .create_department(&setup, &NamedInput { code: DEPARTMENT.into(), name_zh: "流通部".into(), name_en: "Circulation".into() })
            .await
            .expect("create the test department");
        // Password hashing is slow in debug builds: hash the users in parallel.
        let mut jobs = Vec::new();
        for role in Role::ALL {
            let store = store.clone();
            let setup = setup.clone();
            jobs.push(tokio::spawn(async move {
                let new = NewUser {
                    username: username(role).into(),
                    display_name: format!("测试{}", role.label().zh),
                    role,
                    department: (role == Role::Department).then(|| DEPARTMENT.to_string()),
                    password: PASSWORD.into(),
                };
                let user = store.create_user(&setup, new).await.unwrap_or_else(|e| panic!("create user {}: {e}", username(role)));
                let (_, secret) = store.create_token(&setup, &user.username, "tests").await.expect("create token");
                (role, user, secret)
            }));
        }
        let mut users = HashMap::new();
        let mut tokens = HashMap::new();
        for job in jobs {
            let (role, user, secret) = job.await.expect("user setup task");
            users.insert(role.code(), user);
            tokens.insert(role.code(), secret);
        }
        let warehouse = Arc::new(Warehouse::open(WarehouseConfig::in_data_dir(dir.path())).await.expect("open the test warehouse"));
        let router = router(AppState {
            store: store.clone(),
            secure_cookies: false,
            data_dir: dir.path().to_path_buf(),
            warehouse: warehouse.clone(),
        });
        TestApp { store, router, users, tokens, warehouse, dir }
    }

    /// A clone of the application's router.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The API token (`lec_…`) of the test user with `role`.
    pub fn token(&self, role: Role) -> &str {
        &self.tokens[role.code()]
    }

    pub fn user(&self, role: Role) -> &User {
        &self.users[role.code()]
    }

    /// An actor for changes made directly through the store.
    pub fn actor(&self, role: Role) -> Actor {
        let u = self.user(role);
        Actor::user(u.id, &u.username, "test")
    }

    /// Starts a session for the user with `role`: the `Cookie` header value and the CSRF token.
    pub async fn session(&self, role: Role) -> (String, String) {
        let (token, csrf) = self.store.create_session(self.user(role).id).await.expect("create session");
        (format!("{}={token}", lector_web::auth::SESSION_COOKIE), csrf)
    }

    /// Sends any request through the router.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.expect("the router is infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = to_bytes(resp.into_body(), usize::MAX).await.expect("read the response body").to_vec();
        Reply { status, headers, body }
    }

    /// A request with an optional bearer token and an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b.header(CONTENT_TYPE, "application/json").body(Body::from(serde_json::to_vec(v).expect("serialise"))),
            None => b.body(Body::empty()),
        };
        self.send(req.expect("a valid request")).await
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let r = self.call(Method::GET, path, Some(token), None).await;
        (r.status, r.json())
    }

    pub async fn post_json(&self, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self.call(Method::POST, path, Some(token), Some(body)).await;
        (r.status, r.json())
    }

    pub async fn put_json(&self, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self.call(Method::PUT, path, Some(token), Some(body)).await;
        (r.status, r.json())
    }

    pub async fn delete(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let r = self.call(Method::DELETE, path, Some(token), None).await;
        (r.status, r.json())
    }

    /// A GET without credentials, or with a session cookie (for pages).
    pub async fn get_page(&self, cookie: Option<&str>, path: &str) -> Reply {
        let mut b = Request::builder().uri(path);
        if let Some(c) = cookie {
            b = b.header(COOKIE, c);
        }
        self.send(b.body(Body::empty()).expect("a valid request")).await
    }

    /// A form POST with a session cookie (for pages); `form` is already URL-encoded.
    pub async fn post_form(&self, cookie: &str, path: &str, form: &str) -> Reply {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(COOKIE, cookie)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .expect("a valid request");
        self.send(req).await
    }
}

/// URL-encodes a form body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}
