//! `lector`: the command line and the wiring of Lector's layers.

mod demo;
mod demo_activity;
mod demo_import;
mod demo_messaging;
mod import_cmd;
mod warehouse_cmd;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use lector_domain::role::Role;
use lector_messaging::worker::WorkerOptions;
use lector_store::auth::NewUser;
use lector_store::{Actor, Store, StoreError};
use lector_warehouse::etl::ScheduledRefresh;
use rand::Rng;
use serde::Deserialize;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Lector: reader relationship management for libraries (图书馆读者关系管理).
#[derive(Debug, Parser)]
#[command(name = "lector", version, about)]
struct Cli {
    /// Where Lector keeps its files (the SQLite database, `lector.toml`).
    #[arg(long, global = true, env = "LECTOR_DATA_DIR", default_value = "./lector-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// The database: `sqlite://PATH` or `postgres://USER@HOST/DB` (default: SQLite in the data dir).
    #[arg(long, global = true, env = "LECTOR_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the web application.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// Seeds demo data first if the store holds no readers.
        #[arg(long)]
        demo: bool,
    },
    /// Brings the database schema up to date.
    Migrate,
    /// Seeds a realistic demo library (departments, staff, readers) into an empty store.
    Demo {
        /// How many readers to generate.
        #[arg(long, default_value_t = 2000, value_name = "N")]
        readers: usize,
        #[command(flatten)]
        out: Output,
    },
    /// Manages staff accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manages API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Imports readers from files and other systems; lists and undoes import jobs.
    Import {
        #[command(subcommand)]
        command: import_cmd::ImportCommand,
    },
    /// Identity resolution: one record per reader.
    Identity {
        #[command(subcommand)]
        command: import_cmd::IdentityCommand,
    },
    /// The data warehouse (数据仓库): data dictionary, read-only SQL, load history.
    Warehouse {
        #[command(subcommand)]
        command: warehouse_cmd::WarehouseCommand,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Creates a staff account. The password is read from stdin when stdin is not a terminal;
    /// otherwise one is generated and printed once.
    Add {
        /// User name: 2 to 32 letters, digits, `.`, `_` or `-`.
        name: String,
        /// admin, leader, department, librarian or analyst.
        #[arg(long)]
        role: String,
        /// Library department code (required for the `department` role).
        #[arg(long, value_name = "CODE")]
        department: Option<String>,
        /// The name shown in the interface.
        #[arg(long, value_name = "X")]
        display_name: Option<String>,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Creates an API token and prints its secret (shown only once).
    Create {
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// A label to recognise the token by.
        #[arg(long, value_name = "LABEL")]
        name: Option<String>,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Args)]
struct Output {
    /// Prints the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Settings from `lector.toml` in the data dir, overridden by `LECTOR_*` variables.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    database_url: Option<String>,
    bind: Option<String>,
    /// Mark cookies `Secure`: set when Lector is served over HTTPS (behind a TLS proxy).
    secure_cookies: Option<bool>,
    /// `[messaging]`, or `LECTOR_MESSAGING_*`.
    #[serde(default)]
    messaging: MessagingConfig,
    /// `[warehouse]`, or `LECTOR_WAREHOUSE_*`.
    #[serde(default)]
    warehouse: warehouse_cmd::WarehouseSection,
}

/// The outbox worker's pace and retry policy (`[messaging]` in `lector.toml`, or
/// `LECTOR_MESSAGING_LEASE_SECS` …); unset values keep the defaults.
#[derive(Debug, Default, Deserialize)]
struct MessagingConfig {
    /// Seconds a claimed message stays with one server before another may take it over.
    lease_secs: Option<u64>,
    /// Milliseconds between two looks at an empty outbox.
    poll_ms: Option<u64>,
    /// Messages claimed at once.
    batch: Option<usize>,
    /// Messages in flight at once.
    concurrency: Option<usize>,
    /// Transient failures before a message is failed.
    max_attempts: Option<u32>,
    /// Seconds before the first retry (doubled each time).
    backoff_secs: Option<u64>,
    /// The longest wait between retries, in seconds.
    backoff_cap_secs: Option<u64>,
    /// Transient failures in a row after which an address is no longer used.
    block_after: Option<u32>,
}

impl MessagingConfig {
    fn options(&self) -> anyhow::Result<WorkerOptions> {
        let positive = |name: &str, v: Option<u64>| -> anyhow::Result<Option<u64>> {
            match v {
                Some(0) => bail!("messaging.{name} 必须大于 0 (messaging.{name} must be greater than 0)"),
                v => Ok(v),
            }
        };
        let mut o = WorkerOptions::default();
        if let Some(v) = positive("lease_secs", self.lease_secs)? {
            o.lease = Duration::from_secs(v);
        }
        if let Some(v) = positive("poll_ms", self.poll_ms)? {
            o.poll = Duration::from_millis(v);
        }
        if let Some(v) = positive("batch", self.batch.map(|v| v as u64))? {
            o.batch = v as usize;
        }
        if let Some(v) = positive("concurrency", self.concurrency.map(|v| v as u64))? {
            o.concurrency = v as usize;
        }
        if let Some(v) = positive("max_attempts", self.max_attempts.map(u64::from))? {
            o.max_attempts = v as u32;
        }
        if let Some(v) = self.backoff_secs {
            o.backoff_base = Duration::from_secs(v);
        }
        if let Some(v) = self.backoff_cap_secs {
            o.backoff_cap = Duration::from_secs(v);
        }
        if let Some(v) = positive("block_after", self.block_after.map(u64::from))? {
            o.block_after = v as u32;
        }
        Ok(o)
    }
}

/// Everything a command needs to know about where things are.
struct Settings {
    database_url: String,
    bind: String,
    secure_cookies: bool,
    messaging: WorkerOptions,
    warehouse: lector_warehouse::WarehouseConfig,
    /// How often `lector serve` refreshes the warehouse from the store (`None`: never).
    warehouse_refresh: Option<Duration>,
}

const DEFAULT_BIND: &str = "127.0.0.1:8080";
const DEMO_SERVE_READERS: usize = 2000;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lector: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lector: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// One line for a person: store errors in Chinese and English, other errors with their causes.
fn describe(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            parts.push(store_message(e));
            break;
        }
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").replace('\n', " ")
}

fn store_message(e: &StoreError) -> String {
    match e {
        StoreError::Invalid(fields) => fields.0.iter().map(|f| f.message.to_string()).collect::<Vec<_>>().join("; "),
        StoreError::Conflict(m) => m.to_string(),
        StoreError::NotFound => "未找到 (not found)".into(),
        StoreError::Database(e) => format!("数据库错误 (database error): {e}"),
        StoreError::Other(s) => s.clone(),
    }
}

/// Hides the password of a database URL for messages.
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.rsplit_once('@') {
            let user = userinfo.split(':').next().unwrap_or("");
            return format!("{scheme}://{user}:***@{host}");
        }
    }
    url.to_string()
}

fn settings(cli: &Cli, bind: Option<&str>) -> anyhow::Result<Settings> {
    std::fs::create_dir_all(&cli.data_dir).with_context(|| format!("cannot create the data directory {}", cli.data_dir.display()))?;
    let data_dir = cli.data_dir.canonicalize().unwrap_or_else(|_| cli.data_dir.clone());
    let file = data_dir.join("lector.toml");
    let config: FileConfig = Figment::from(Toml::file(&file))
        .merge(Env::prefixed("LECTOR_").only(&["database_url", "bind", "secure_cookies"]))
        .merge(Env::prefixed("LECTOR_MESSAGING_").map(|k| format!("messaging.{k}").into()))
        .merge(Env::prefixed("LECTOR_WAREHOUSE_").map(|k| format!("warehouse.{k}").into()))
        .extract()
        .with_context(|| format!("cannot read the configuration {}", file.display()))?;
    let database_url = cli
        .database_url
        .clone()
        .or(config.database_url)
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| sqlite_url(&data_dir.join("lector.db")));
    let bind = bind.map(String::from).or(config.bind).unwrap_or_else(|| DEFAULT_BIND.to_string());
    let messaging = config.messaging.options().with_context(|| format!("cannot read the configuration {}", file.display()))?;
    let warehouse = config.warehouse.config(&data_dir);
    let warehouse_refresh = config.warehouse.refresh_interval();
    Ok(Settings { database_url, bind, secure_cookies: config.secure_cookies.unwrap_or(false), messaging, warehouse, warehouse_refresh })
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn open_store(url: &str) -> anyhow::Result<Store> {
    Store::open(url).await.with_context(|| format!("cannot open the database {}", redact(url)))
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

async fn reader_count(store: &Store) -> anyhow::Result<i64> {
    Ok(store.reader_stats().await.context("cannot count readers")?.total)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve { bind, demo } => {
            let s = settings(&cli, bind.as_deref())?;
            let store = open_store(&s.database_url).await?;
            if *demo {
                if reader_count(&store).await? == 0 {
                    eprintln!("正在生成演示数据 Seeding demo data ({DEMO_SERVE_READERS} readers)…");
                    let report = demo::seed(&store, DEMO_SERVE_READERS, today(), &cli.data_dir).await?;
                    eprintln!("{}", report.sign_in_text());
                } else {
                    eprintln!("已有读者数据，跳过演示数据 The store already holds readers; no demo data seeded.");
                    eprintln!("演示账号密码 Demo password (if the demo accounts exist): {}", demo::DEMO_PASSWORD);
                }
            }
            let listener = tokio::net::TcpListener::bind(&s.bind).await.with_context(|| format!("cannot listen on {}", s.bind))?;
            let addr = listener.local_addr().context("cannot read the bound address")?;
            {
                let mut out = std::io::stdout().lock();
                writeln!(out, "Lector listening on http://{addr}")?;
                out.flush()?;
            }
            let warehouse = std::sync::Arc::new(warehouse_cmd::open(&s.warehouse).await?);
            let refresh = s.warehouse_refresh.map(|every| ScheduledRefresh::start(store.clone(), warehouse.clone(), every));
            let served = lector_web::serve(store, listener, s.secure_cookies, cli.data_dir.clone(), warehouse, s.messaging).await;
            if let Some(r) = refresh {
                r.stop().await;
            }
            served.context("the web server stopped with an error")?;
            Ok(())
        }
        Command::Migrate => {
            let s = settings(&cli, None)?;
            let store = open_store(&s.database_url).await?;
            store.close().await;
            println!("数据库已是最新 Database schema is up to date: {}", redact(&s.database_url));
            Ok(())
        }
        Command::Demo { readers, out } => {
            let s = settings(&cli, None)?;
            let store = open_store(&s.database_url).await?;
            let existing = reader_count(&store).await?;
            if existing > 0 {
                bail!(
                    "存储中已有 {existing} 位读者，演示数据只能写入空库 (the store already holds {existing} readers; demo data goes only into an empty store — use a new --data-dir)"
                );
            }
            if !out.json {
                eprintln!("正在生成 {readers} 位演示读者 Seeding {readers} demo readers…");
            }
            let report = demo::seed(&store, *readers, today(), &cli.data_dir).await?;
            store.close().await;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "已生成 {} 位读者 Seeded {} readers in {:.2} s ({:.0} readers/s).",
                    report.readers, report.readers, report.seconds, report.readers_per_second
                );
                println!("{}", report.sign_in_text());
            }
            Ok(())
        }
        Command::User { command: UserCommand::Add { name, role, department, display_name, out } } => {
            let role = Role::parse(role).map_err(|m| anyhow!("{m}"))?;
            let s = settings(&cli, None)?;
            let store = open_store(&s.database_url).await?;
            let (password, generated) = match read_stdin_password()? {
                Some(p) => (p, false),
                None => (generate_password(), true),
            };
            let new = NewUser {
                username: name.clone(),
                display_name: display_name.clone().unwrap_or_default(),
                role,
                department: department.clone(),
                password: password.clone(),
            };
            let user = store.create_user(&Actor::system("cli"), new).await.context("cannot create the user")?;
            store.close().await;
            if out.json {
                let v = serde_json::json!({
                    "id": user.id,
                    "username": user.username,
                    "display_name": user.display_name,
                    "role": user.role.code(),
                    "department": user.department_code,
                    "password": if generated { Some(password) } else { None },
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("已创建用户 Created user {} ({})", user.username, user.role.code());
                if generated {
                    println!("密码（只显示这一次）Password (shown only once): {password}");
                }
            }
            Ok(())
        }
        Command::Token { command: TokenCommand::Create { user, name, out } } => {
            let s = settings(&cli, None)?;
            let store = open_store(&s.database_url).await?;
            let label = name.clone().unwrap_or_else(|| "cli".into());
            let (token, secret) = store.create_token(&Actor::system("cli"), user, &label).await.context("cannot create the token")?;
            store.close().await;
            if out.json {
                let v = serde_json::json!({
                    "id": token.id,
                    "user": token.username,
                    "name": token.name,
                    "prefix": token.prefix,
                    "token": secret,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                eprintln!(
                    "已为 {} 创建令牌“{}”，只显示这一次 Created token '{}' for {}; it is shown only once:",
                    token.username, token.name, token.name, token.username
                );
                println!("{secret}");
            }
            Ok(())
        }
        Command::Import { command } => {
            let s = settings(&cli, None)?;
            let store = open_store(&s.database_url).await?;
            let result = import_cmd::run_import(&store, command).await;
            store.close().await;
            result
        }
        Command::Identity { command } => {
            let s = settings(&cli, None)?;
            let store = open_store(&s.database_url).await?;
            let result = import_cmd::run_identity(&store, command).await;
            store.close().await;
            result
        }
        Command::Warehouse { command } => warehouse_cmd::run(&settings(&cli, None)?, command).await,
    }
}

/// The password piped on stdin, if stdin is not a terminal and holds one.
fn read_stdin_password() -> anyhow::Result<Option<String>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    let mut buf = String::new();
    stdin.lock().read_to_string(&mut buf).context("cannot read the password from stdin")?;
    let pw = buf.trim_end_matches(['\r', '\n']).to_string();
    Ok(if pw.is_empty() { None } else { Some(pw) })
}

/// A random 20-character password without look-alike characters.
fn generate_password() -> String {
    const CHARS: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20).map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("postgres://lector:secret@db/lector"), "postgres://lector:***@db/lector");
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn messaging_settings_come_from_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lector.toml");
        let read = |toml: &str| {
            std::fs::write(&file, toml).unwrap();
            Figment::from(Toml::file(&file))
                .merge(Env::prefixed("LECTOR_MESSAGING_").map(|k| format!("messaging.{k}").into()))
                .extract::<FileConfig>()
                .unwrap()
                .messaging
                .options()
        };
        // No other test reads this variable.
        std::env::set_var("LECTOR_MESSAGING_POLL_MS", "250");
        let o = read("[messaging]\nlease_secs = 7\nbatch = 30\n").unwrap();
        assert_eq!((o.lease, o.batch, o.poll), (Duration::from_secs(7), 30, Duration::from_millis(250)));
        assert_eq!(o.concurrency, WorkerOptions::default().concurrency);
        let e = read("[messaging]\nlease_secs = 0\n").unwrap_err().to_string();
        assert!(e.contains("messaging.lease_secs must be greater than 0"), "{e}");
        std::env::remove_var("LECTOR_MESSAGING_POLL_MS");
    }

    #[test]
    fn passwords_are_long_enough() {
        let p = generate_password();
        assert_eq!(p.chars().count(), 20);
        assert!(lector_store::auth::check_password(&p).is_ok());
    }
}
