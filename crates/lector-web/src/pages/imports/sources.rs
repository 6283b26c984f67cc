//! Import sources and their re-sync schedules (`ImportSchedule`). Only a source Lector can read
//! again by itself may be scheduled: a SQL source, or a file at a path on the server (not a
//! one-off upload).

use super::{store_err, with_status};
use crate::auth::{PageError, Staff};
use crate::i18n::Lang;
use crate::pages::{local_time, render, see_other, Ctx};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lector_domain::role::Permission;
use lector_domain::Msg;
use lector_import::runner::JobSpec;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

pub fn routes() -> Router<AppState> {
    Router::new().route("/imports/sources", get(show)).route("/imports/sources/schedule", post(schedule))
}

/// Recent jobs searched for a source's last re-readable spec.
const RECENT_JOBS: i64 = 200;
/// The longest interval: a year.
const MAX_MINUTES: i64 = 366 * 24 * 60;

/// What a spec reads, for people; `None` when Lector cannot read it again by itself.
fn rereadable(spec: &Value, data_dir: &Path, l: Lang) -> Option<String> {
    match serde_json::from_value::<JobSpec>(spec.clone()).ok()? {
        JobSpec::Sql { sql, .. } => Some(format!("SQL · {}", sql.redacted_url())),
        JobSpec::File { path, .. } if !crate::uploads::is_upload(data_dir, &path) => {
            Some(format!("{} · {}", l.pick("服务器文件", "Server file"), path.display()))
        }
        JobSpec::File { .. } => None,
    }
}

/// The spec each source would re-read: its own, else that of its latest re-readable job.
async fn specs(state: &AppState) -> Result<HashMap<String, Value>, lector_store::StoreError> {
    let mut found = HashMap::new();
    for s in state.store.import_sources().await? {
        if let Some(spec) = s.spec {
            found.insert(s.name, spec);
        }
    }
    for job in state.store.import_jobs(1, RECENT_JOBS).await?.items {
        if !found.contains_key(&job.source) && rereadable(&job.spec, &state.data_dir, Lang::En).is_some() {
            found.insert(job.source, job.spec);
        }
    }
    Ok(found)
}

pub struct SourceRow {
    pub name: String,
    pub created: String,
    /// What a re-sync reads; `None`: not schedulable.
    pub reads: Option<String>,
    pub every_minutes: String,
    pub next_run: String,
}

#[derive(Template)]
#[template(path = "imports_sources.html")]
struct SourcesPage {
    ctx: Ctx,
    sources: Vec<SourceRow>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Params {
    flash: Option<String>,
}

async fn page(state: &AppState, staff: &Staff, error: Option<String>, flash: Option<&str>) -> Result<Response, PageError> {
    let l = staff.lang;
    let specs = specs(state).await.map_err(store_err(l))?;
    let sources = state
        .store
        .import_sources()
        .await
        .map_err(store_err(l))?
        .into_iter()
        .map(|s| SourceRow {
            reads: specs.get(&s.name).and_then(|spec| rereadable(spec, &state.data_dir, l)),
            created: local_time(&s.created_at),
            every_minutes: s.every_minutes.map(|m| m.to_string()).unwrap_or_default(),
            next_run: s.next_run_at.as_deref().map(local_time).unwrap_or_default(),
            name: s.name,
        })
        .collect();
    let failed = error.is_some();
    let view = SourcesPage { ctx: Ctx::staff(staff, "imports", "/imports/sources").with_flash(flash), sources, error };
    let r = render(&view);
    Ok(if failed { with_status(StatusCode::UNPROCESSABLE_ENTITY, r) } else { r })
}

async fn show(State(state): State<AppState>, staff: Staff, Query(p): Query<Params>) -> Result<Response, PageError> {
    staff.require(Permission::ImportSchedule)?;
    page(&state, &staff, None, p.flash.as_deref()).await
}

#[derive(Deserialize)]
struct ScheduleForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    /// Minutes between re-syncs; blank or 0 turns the schedule off.
    #[serde(default)]
    every_minutes: String,
}

/// Minutes between runs: blank or 0 is "off".
fn parse_every(raw: &str) -> Result<Option<i64>, Msg> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.parse::<i64>() {
        Ok(0) => Ok(None),
        Ok(n) if (1..=MAX_MINUTES).contains(&n) => Ok(Some(n)),
        _ => Err(Msg::new(
            format!("同步间隔应为 1 到 {MAX_MINUTES} 之间的分钟数（留空或 0 表示关闭），而不是“{raw}”"),
            format!("the interval must be a number of minutes from 1 to {MAX_MINUTES} (blank or 0 turns it off), not '{raw}'"),
        )),
    }
}

async fn schedule(State(state): State<AppState>, staff: Staff, Form(f): Form<ScheduleForm>) -> Result<Response, PageError> {
    staff.require(Permission::ImportSchedule)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let l = staff.lang;
    let every = match parse_every(&f.every_minutes) {
        Ok(e) => e,
        Err(m) => return page(&state, &staff, Some(format!("{}: {}", f.name, l.msg(&m))), None).await,
    };
    let spec = specs(&state).await.map_err(store_err(l))?.remove(f.name.trim());
    if every.is_some() && spec.as_ref().and_then(|s| rereadable(s, &state.data_dir, l)).is_none() {
        let m = Msg::new(
            "此数据源只导入过上传的文件，服务器无法自行重新读取，不能定时同步",
            "this source has only been imported from uploaded files, which the server cannot read again by itself; it cannot be scheduled",
        );
        return page(&state, &staff, Some(format!("{}: {}", f.name, l.msg(&m))), None).await;
    }
    state.store.schedule_import_source(&staff.actor(), f.name.trim(), spec, every).await.map_err(store_err(l))?;
    Ok(see_other("/imports/sources?flash=saved"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_every(" ").unwrap(), None);
        assert_eq!(parse_every("0").unwrap(), None);
        assert_eq!(parse_every("60").unwrap(), Some(60));
        assert!(parse_every("-5").is_err());
        assert!(parse_every("every hour").is_err());
        assert!(parse_every(&(MAX_MINUTES + 1).to_string()).is_err());
    }

    #[test]
    fn uploads_are_not_rereadable() {
        let data = Path::new("/srv/lector-data");
        let upload = serde_json::json!({"kind": "file", "path": "/srv/lector-data/imports/abc-x.csv"});
        let server = serde_json::json!({"kind": "file", "path": "/srv/exports/students.csv"});
        assert_eq!(rereadable(&upload, data, Lang::En), None);
        assert_eq!(rereadable(&server, data, Lang::En).as_deref(), Some("Server file · /srv/exports/students.csv"));
        assert_eq!(rereadable(&serde_json::json!({"kind": "ftp"}), data, Lang::En), None);
    }
}
