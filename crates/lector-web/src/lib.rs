//! Lector's web layer: server-rendered pages, the REST API under `/api/v1`, authentication,
//! `/healthz` and `/metrics`.
//!
//! Handlers are thin: they authenticate, check the permission the route needs, parse input
//! into domain types and call the store. See `docs/permissions.md` for the matrix.

pub mod api;
pub mod auth;
pub mod error;
pub mod i18n;
pub mod mask;
mod observe;
pub mod pages;
pub mod portal;
pub mod uploads;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use lector_store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use lector_warehouse::Warehouse;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Set the `Secure` flag on cookies (when served over HTTPS).
    pub secure_cookies: bool,
    /// The data directory: uploaded import files are kept under `imports/` in it.
    pub data_dir: PathBuf,
    /// The data warehouse the warehouse pages and API query.
    pub warehouse: Arc<Warehouse>,
}

/// The whole application as a router, for `serve` and for in-process tests.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(pages::routes())
        .merge(portal::routes())
        .nest("/api/v1", api::routes())
        .route("/api/openapi.json", get(api::openapi_json))
        .route("/healthz", get(observe::healthz))
        .route("/metrics", get(observe::metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // The portal's submission limits and recent links; one per application.
        .layer(axum::Extension(Arc::new(portal::PortalGuard::new())))
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}

/// Serves Lector on `listener` until Ctrl-C or SIGTERM. `secure_cookies` marks cookies
/// `Secure` (when users reach Lector over HTTPS); uploads are kept under `data_dir`; the
/// warehouse pages query `warehouse`.
/// Due-task reminders, case escalation and the closing of unrated cases run in the background (see
/// [`remind_due_tasks`]), as do the import worker (queued jobs and scheduled re-syncs) and the
/// messaging worker (campaigns, triggered messages, the outbox; paced by `messaging`). All stop
/// with the server; the messaging worker first lets the messages in flight be recorded.
pub async fn serve(
    store: Store,
    listener: tokio::net::TcpListener,
    secure_cookies: bool,
    data_dir: PathBuf,
    warehouse: Arc<Warehouse>,
    messaging: lector_messaging::worker::WorkerOptions,
) -> std::io::Result<()> {
    let reminders = tokio::spawn(remind_due_tasks(store.clone(), REMINDER_INTERVAL));
    let imports = tokio::spawn(lector_import::runner::worker(store.clone(), IMPORT_POLL_INTERVAL));
    let (stop_messaging, stopped) = tokio::sync::watch::channel(false);
    let mut outbox = tokio::spawn(lector_messaging::worker::run_until(store.clone(), messaging, stopped));
    let app = router(AppState { store, secure_cookies, data_dir, warehouse });
    let served =
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown_signal()).await;
    reminders.abort();
    imports.abort();
    let _ = stop_messaging.send(true);
    if tokio::time::timeout(MESSAGING_STOP_GRACE, &mut outbox).await.is_err() {
        outbox.abort();
    }
    served
}

/// How long the messaging worker may take, once the server stops, to record the sends in flight.
pub const MESSAGING_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// How often the import worker looks for queued jobs and due re-syncs.
pub const IMPORT_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// How often the server looks for follow-up tasks that are due.
pub const REMINDER_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Reminds staff of their due follow-up tasks, escalates overdue service cases and closes
/// resolved cases left unrated, now and then every `every`, for as long as the task runs. The
/// store sends each reminder and escalates each case once however often (and on however many
/// servers) this runs; failures are logged and retried at the next tick.
pub async fn remind_due_tasks(store: Store, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let today = chrono::Local::now().date_naive();
        match store.remind_due_tasks(today).await {
            Ok(0) => tracing::debug!("no due tasks to remind of"),
            Ok(n) => tracing::info!(reminders = n, "reminded staff of due tasks"),
            Err(e) => tracing::error!(error = %e, "reminding staff of due tasks failed"),
        }
        let now = chrono::Local::now().naive_local();
        match store.escalate_overdue_cases(now).await {
            Ok(0) => tracing::debug!("no overdue cases to escalate"),
            Ok(n) => tracing::info!(cases = n, "escalated overdue cases"),
            Err(e) => tracing::error!(error = %e, "escalating overdue cases failed"),
        }
        match store.close_unrated_cases(now).await {
            Ok(0) => tracing::debug!("no unrated cases to close"),
            Ok(n) => tracing::info!(cases = n, "closed resolved cases left unrated"),
            Err(e) => tracing::error!(error = %e, "closing unrated cases failed"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
