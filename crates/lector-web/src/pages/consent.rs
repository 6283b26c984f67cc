//! A reader's consent (授权) as staff see it: `/readers/{id}/consent`, the purpose × channel matrix
//! with where each answer came from, and its history. `ReadersView` sees it; `ConsentManage`
//! records a change on the reader's behalf (source `staff`, audited).

use super::{local_time, render, see_other, Ctx};
use crate::auth::{PageError, Staff};
use crate::error::AppError;
use crate::portal::reader::{granted_keys, posted_changes};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use lector_domain::messaging::{ChannelKind, ConsentSource, Purpose};
use lector_domain::role::Permission;
use lector_domain::Msg;
use serde::Deserialize;

/// History entries shown.
const HISTORY_SHOWN: i64 = 200;

pub fn routes() -> Router<AppState> {
    Router::new().route("/readers/{id}/consent", get(show).post(save))
}

pub struct Cell {
    pub key: String,
    pub channel: String,
    pub granted: bool,
    /// "default", or the source and time of the reader's answer.
    pub note: String,
    pub is_default: bool,
}

pub struct Row {
    pub purpose: &'static str,
    pub label: String,
    pub cells: Vec<Cell>,
}

pub struct HistoryRow {
    pub at: String,
    pub what: String,
    pub granted: bool,
    pub source: String,
    pub actor: String,
}

#[derive(Template)]
#[template(path = "consent_reader.html")]
struct ConsentPage {
    ctx: Ctx,
    reader_id: i64,
    name: String,
    card_no: String,
    channels: Vec<String>,
    rows: Vec<Row>,
    was: String,
    can_manage: bool,
    history: Vec<HistoryRow>,
}

#[derive(Deserialize)]
struct Params {
    flash: Option<String>,
}

fn path_id(raw: &str, staff: &Staff) -> Result<i64, PageError> {
    raw.parse().map_err(|_| PageError(AppError::NotFound, staff.lang))
}

async fn show(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response, PageError> {
    staff.require(Permission::ReadersView)?;
    let id = path_id(&raw, &staff)?;
    let l = staff.lang;
    let err = |e: lector_store::StoreError| PageError(e.into(), l);
    let reader = state.store.reader(id).await.map_err(err)?;
    let matrix = state.store.consent_matrix(id).await.map_err(err)?;
    let history = state.store.consent_history(id, HISTORY_SHOWN).await.map_err(err)?;
    let rows = Purpose::ALL
        .iter()
        .map(|&p| Row {
            purpose: p.code(),
            label: l.msg(&p.label()),
            cells: ChannelKind::ALL
                .iter()
                .filter_map(|&c| matrix.cell(p, c))
                .map(|cell| Cell {
                    key: format!("{}.{}", cell.purpose.code(), cell.channel.code()),
                    channel: l.msg(&cell.channel.label()),
                    granted: cell.granted,
                    note: match (&cell.source, &cell.changed_at) {
                        (Some(s), Some(at)) => format!("{} · {}", l.msg(&s.label()), local_time(at)),
                        _ => l.pick("默认", "default").to_string(),
                    },
                    is_default: cell.is_default,
                })
                .collect(),
        })
        .collect();
    let history = history
        .iter()
        .map(|e| HistoryRow {
            at: local_time(&e.at),
            what: format!("{} · {}", l.msg(&e.purpose.label()), l.msg(&e.channel.label())),
            granted: e.granted,
            source: l.msg(&e.source.label()),
            actor: e.actor.clone(),
        })
        .collect();
    let ctx = Ctx::staff(&staff, "readers", &format!("/readers/{id}/consent")).with_flash(q.flash.as_deref());
    let page = ConsentPage {
        ctx,
        reader_id: id,
        name: reader.name,
        card_no: reader.card_no,
        channels: ChannelKind::ALL.iter().map(|c| l.msg(&c.label())).collect(),
        rows,
        was: granted_keys(&matrix),
        can_manage: staff.can(Permission::ConsentManage),
        history,
    };
    Ok(render(&page))
}

/// Records the changes made on the page (the reader said so at the desk, on paper, by phone).
async fn save(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    staff.require(Permission::ConsentManage)?;
    let csrf = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
    staff.check_csrf(csrf)?;
    let id = path_id(&raw, &staff)?;
    if !pairs.iter().any(|(k, _)| k == "was") {
        let m = Msg::new("表单不完整，请刷新页面后重试", "the form is incomplete; reload the page and try again");
        return Err(PageError(AppError::BadRequest(m), staff.lang));
    }
    let changes = posted_changes(&pairs);
    state.store.set_consents(&staff.actor(), id, &changes, ConsentSource::Staff).await.map_err(|e| PageError(e.into(), staff.lang))?;
    Ok(see_other(&format!("/readers/{id}/consent?flash=saved")))
}
