//! The harness of the browser tests: a chromedriver process, headless Chromium sessions, and
//! Lector served in-process on a fresh SQLite file with a few users and readers.
//!
//! chromedriver comes from `CHROMEDRIVER` (when set, only from there) or `PATH` (Debian:
//! `/usr/bin/chromedriver`), Chromium from `CHROME_BIN` (default `/usr/bin/chromium`). Without
//! chromedriver the tests are skipped with a notice, unless `CI` is set, in which case they fail.

use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::{Client, ClientBuilder, Locator};
use lector_domain::reader::{ContactDraft, ReaderDraft};
use lector_domain::role::Role;
use lector_store::auth::NewUser;
use lector_store::{Actor, Store};
use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);
/// How often a wait re-checks its condition.
const POLL: Duration = Duration::from_millis(50);
/// How long chromedriver may take to answer `/status`.
const DRIVER_START: Duration = Duration::from_secs(20);

pub const LIBRARIAN: (&str, &str) = ("lib", "correct-horse-9");
pub const ADMIN: (&str, &str) = ("admin", "correct-horse-10");

/// The chromedriver binary, if there is one.
pub fn find_chromedriver() -> Option<PathBuf> {
    // An explicit CHROMEDRIVER wins, and names nothing when it names no file.
    if let Some(p) = std::env::var_os("CHROMEDRIVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/lib/chromium")])
        .map(|dir| dir.join("chromedriver"))
        .find(|c| c.is_file())
}

fn chromium_binary() -> String {
    std::env::var("CHROME_BIN").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/usr/bin/chromium".to_string())
}

/// Starts chromedriver, or returns `None` (after printing why) when the tests must be skipped.
/// Panics when chromedriver is missing and `CI` is set.
pub fn driver_or_skip() -> Option<Driver> {
    match find_chromedriver() {
        Some(path) => Some(Driver::start(&path)),
        None if std::env::var("CI").is_ok_and(|v| !v.is_empty()) => panic!(
            "chromedriver not found (looked at $CHROMEDRIVER, $PATH, /usr/bin, /usr/lib/chromium); \
             CI is set, so browser tests may not be skipped: apt-get install -y chromium chromium-driver fonts-noto-cjk"
        ),
        None => {
            eprintln!("chromedriver not found: skipping browser tests");
            None
        }
    }
}

/// A running chromedriver, killed (with the browsers it started) on drop.
pub struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
    sessions: Mutex<Vec<String>>,
    /// Browser profiles; removed after the browsers are gone.
    profiles: Mutex<Vec<tempfile::TempDir>>,
    _dir: tempfile::TempDir,
}

impl Driver {
    pub fn start(path: &Path) -> Driver {
        let dir = tempfile::tempdir().expect("temp dir for chromedriver");
        let log = dir.path().join("chromedriver.log");
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            l.local_addr().expect("local addr").port()
        };
        let log_file = std::fs::File::create(&log).expect("chromedriver log file");
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            // Its own process group, so that drop can end chromedriver and every browser it started.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let mut driver = Driver { child, port, log, sessions: Mutex::new(Vec::new()), profiles: Mutex::new(Vec::new()), _dir: dir };
        driver.wait_ready(path);
        driver
    }

    fn wait_ready(&mut self, path: &Path) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited early ({status}); its log:\n{}", path.display(), self.log_text());
            }
            if let Some(body) = http(self.port, "GET", "/status") {
                if body.contains("\"ready\":true") || body.contains("\"ready\": true") {
                    return;
                }
            }
            if start.elapsed() > DRIVER_START {
                panic!(
                    "{} did not answer /status on port {} within {DRIVER_START:?}; its log:\n{}",
                    path.display(),
                    self.port,
                    self.log_text()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new headless Chromium session with a fresh profile, pointed at `base` (the app).
    pub async fn browser(&self, base: &str) -> Browser {
        let profile = tempfile::tempdir().expect("temp dir for the browser profile");
        let args = [
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--no-first-run".to_string(),
            format!("--user-data-dir={}", profile.path().display()),
            "--window-size=1280,900".to_string(),
        ];
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium_binary(), "args": args },
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        self.profiles.lock().unwrap().push(profile);
        // The workspace enables two rustls crypto providers (ring for Lector, aws-lc-rs through
        // fantoccini); rustls needs one chosen before a client is built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientBuilder::rustls().expect("rustls").capabilities(caps).connect(&self.url()).await.unwrap_or_else(|e| {
            panic!("cannot start a Chromium session through chromedriver: {e}\nchromedriver log:\n{}", self.log_text())
        });
        if let Ok(Some(id)) = client.session_id().await {
            self.sessions.lock().unwrap().push(id);
        }
        Browser { client, base: base.trim_end_matches('/').to_string() }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ends sessions a failed test left open (a closed one just answers 404), so the browsers
        // quit; then ends the process group.
        for id in self.sessions.lock().map(|s| s.clone()).unwrap_or_default() {
            let _ = http(self.port, "DELETE", &format!("/session/{id}"));
        }
        let pgid = self.child.id();
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP/1.1 request to chromedriver; the response, or `None`.
fn http(port: u16, method: &str, path: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").ok()?;
    // chromedriver keeps the connection open whatever the request says: read the headers, then
    // exactly Content-Length bytes.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(String::from_utf8_lossy(&buf).into_owned());
            }
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One browser session with helpers that wait on conditions and fail with context.
pub struct Browser {
    pub client: Client,
    base: String,
}

/// Errors that mean "the page changed under the query" (an element not there yet, or one that a
/// reload — such as a job page refreshing itself — took away while it was being read).
fn transient(e: &CmdError) -> bool {
    match e {
        CmdError::Standard(w) => match w.error {
            ErrorStatus::NoSuchElement | ErrorStatus::StaleElementReference => true,
            ErrorStatus::UnknownError => {
                let m = w.message.to_string();
                m.contains("does not belong to the document") || m.contains("Cannot find context with specified id")
            }
            _ => false,
        },
        _ => false,
    }
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn goto(&self, path: &str) {
        let url = self.url(path);
        self.client.goto(&url).await.unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The path (and query) of the current page.
    pub async fn path(&self) -> String {
        let u = self.client.current_url().await.expect("current url");
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    /// The URL and visible text of the current page, for failure messages.
    pub async fn context(&self) -> String {
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_else(|e| format!("<{e}>"));
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(e) => format!("<no body: {e}>"),
        };
        let text: String = text.chars().take(1500).collect();
        format!("at {url}; page text:\n{text}")
    }

    /// Polls `check` until it yields a value; fails after [`WAIT`] with `what` and the page.
    /// "No such element" and "stale element" count as "not yet".
    pub async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, CmdError>>,
    {
        let start = Instant::now();
        loop {
            match check().await {
                Ok(Some(v)) => return v,
                Ok(None) => {}
                Err(e) if transient(&e) => {}
                Err(e) => panic!("waiting for {what}: {e}\n{}", self.context().await),
            }
            if start.elapsed() > WAIT {
                panic!("timed out after {WAIT:?} waiting for {what}\n{}", self.context().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for an element matching `css` to exist.
    pub async fn wait_css(&self, css: &str) -> Element {
        match self.client.wait().at_most(WAIT).every(POLL).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("waiting for element `{css}`: {e}\n{}", self.context().await),
        }
    }

    /// Waits until the current path satisfies `pred`.
    pub async fn wait_path(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.until(what, || async {
            let p = self.path().await;
            Ok(pred(&p).then_some(p))
        })
        .await
    }

    /// Waits until the element `css` exists and its trimmed text satisfies `pred`; returns the text.
    pub async fn wait_text(&self, css: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.until(&format!("`{css}` {what}"), || async {
            let t = self.client.find(Locator::Css(css)).await?.text().await?;
            let t = t.trim().to_string();
            Ok(pred(&t).then_some(t))
        })
        .await
    }

    /// The trimmed texts of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.client.find_all(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find_all `{css}`: {e}")) {
            out.push(e.text().await.unwrap_or_else(|e| panic!("text of `{css}`: {e}")).trim().to_string());
        }
        out
    }

    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find_all `{css}`: {e}")).len()
    }

    /// Replaces the value of the input matching `css` by typing.
    pub async fn fill(&self, css: &str, value: &str) {
        let e = self.wait_css(css).await;
        e.clear().await.unwrap_or_else(|err| panic!("clear `{css}`: {err}"));
        e.send_keys(value).await.unwrap_or_else(|err| panic!("type into `{css}`: {err}"));
        let got = e.prop("value").await.ok().flatten().unwrap_or_default();
        assert_eq!(got, value, "`{css}` should hold what was typed");
    }

    pub async fn click(&self, css: &str) {
        let e = self.wait_css(css).await;
        if let Err(err) = e.click().await {
            panic!("click `{css}`: {err}\n{}", self.context().await);
        }
    }

    /// Fills the sign-in form and submits it (does not wait for the outcome).
    pub async fn submit_login(&self, user: &str, password: &str) {
        self.wait_css("form#login-form").await;
        self.fill("form#login-form input[name=username]", user).await;
        self.fill("form#login-form input[name=password]", password).await;
        self.click("#login-submit").await;
    }

    /// Signs in and waits for a signed-in page.
    pub async fn login(&self, (user, password): (&str, &str)) {
        self.goto("/login").await;
        self.submit_login(user, password).await;
        self.wait_path("to leave /login after signing in", |p| !p.starts_with("/login")).await;
        self.wait_css("a#nav-readers").await;
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// Lector served in-process on a fresh SQLite file.
pub struct App {
    pub store: Store,
    pub base: String,
    /// Reader ids by card number.
    pub readers: HashMap<&'static str, i64>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// (card number, name, affiliation, email)
pub const READERS: &[(&str, &str, &str, &str)] = &[
    ("2024000001", "张晓明", "计算机学院", "zxm@example.edu.cn"),
    ("2024000002", "张辉", "物理学院", "zh@example.edu.cn"),
    ("2024000003", "王芳", "文学院", "wf@example.edu.cn"),
    ("2024000004", "李明", "数学学院", "lm@example.edu.cn"),
];

impl App {
    pub async fn start() -> App {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.expect("open store");
        let actor = Actor::system("test");
        for (username, display, role, password) in
            [(LIBRARIAN.0, "图书馆员", Role::Librarian, LIBRARIAN.1), (ADMIN.0, "管理员", Role::Admin, ADMIN.1)]
        {
            store
                .create_user(
                    &actor,
                    NewUser { username: username.into(), display_name: display.into(), role, department: None, password: password.into() },
                )
                .await
                .unwrap_or_else(|e| panic!("create user {username}: {e}"));
        }
        let today = chrono::Local::now().date_naive();
        let mut readers = HashMap::new();
        for &(card, name, affiliation, email) in READERS {
            let draft = ReaderDraft {
                card_no: card.into(),
                name: name.into(),
                category: "undergraduate".into(),
                affiliation: Some(affiliation.into()),
                contacts: vec![ContactDraft { kind: "email".into(), value: email.into(), primary: true, verified: false }],
                ..Default::default()
            };
            let input = draft.parse(today).unwrap_or_else(|e| panic!("reader {name}: {e:?}"));
            let rec = store.create_reader(&actor, &input).await.unwrap_or_else(|e| panic!("create reader {name}: {e}"));
            readers.insert(card, rec.id);
        }
        let router = lector_web::router(lector_web::AppState {
            store: store.clone(),
            secure_cookies: false,
            data_dir: dir.path().to_path_buf(),
            warehouse: std::sync::Arc::new(
                lector_warehouse::Warehouse::open(lector_warehouse::WarehouseConfig::in_data_dir(dir.path()))
                    .await
                    .expect("open the warehouse"),
            ),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind app");
        let addr = listener.local_addr().expect("app addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.expect("serve");
        });
        App { store, base: format!("http://{addr}"), readers, server, _dir: dir }
    }

    pub fn reader_id(&self, card: &str) -> i64 {
        self.readers[card]
    }
}

/// Where screenshots go: under Cargo's temporary directory for integration tests.
pub fn artifact_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lector-browser");
    std::fs::create_dir_all(&dir).expect("create screenshot dir");
    dir.join(name)
}
