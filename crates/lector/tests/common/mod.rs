//! Running the real `lector` binary in tests: one-shot commands, a served instance, a fresh
//! PostgreSQL database.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_lector");

/// Runs `lector --data-dir DIR ARGS…` to completion, with stdin closed and logs quiet.
pub fn lector(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("LECTOR_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run lector")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running `lector serve`, killed when dropped.
pub struct Server {
    pub addr: String,
    pub child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lector serve --bind 127.0.0.1:0 EXTRA…` on `dir` and waits for its
/// `Lector listening on http://ADDR` line; returns the address (`127.0.0.1:PORT`) and the guard.
pub fn spawn_serve(dir: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(extra)
        .env_remove("LECTOR_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start lector serve");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("Lector listening on http://") {
                let _ = tx.send(addr.trim().to_string());
                break;
            }
        }
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let mut server = Server { addr: String::new(), child };
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(addr) => server.addr = addr,
        Err(_) => {
            let status = server.child.try_wait().ok().flatten();
            panic!("lector serve did not report its address (exit status: {status:?})");
        }
    }
    server
}

pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A fresh PostgreSQL database for one test, dropped afterwards. `None` (with a notice) when the
/// server is unreachable outside CI; in CI that is a failure.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    pub fn create() -> Option<PgDatabase> {
        let admin_url = std::env::var("LECTOR_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!(
            "lector_e2e_{}_{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
        );
        let made =
            Command::new("psql").args([admin_url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", &format!("CREATE DATABASE {name}")]).output();
        match made {
            Ok(o) if o.status.success() => Some(PgDatabase { admin_url, name }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(std::env::var("CI").unwrap_or_default().is_empty(), "PostgreSQL unreachable in CI: {why}");
                eprintln!("PostgreSQL unreachable: skipping the PostgreSQL end-to-end test ({why})");
                None
            }
        }
    }

    pub fn url(&self) -> String {
        let base = self.admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&self.admin_url);
        format!("{base}/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([self.admin_url.as_str(), "-qc", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

/// An HTTP client for talking to a spawned server. The workspace builds reqwest with rustls but
/// no default crypto provider (Lector picks ring where it builds TLS configurations), so the
/// tests choose one before the first client.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
