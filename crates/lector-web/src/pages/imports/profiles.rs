//! Saved mapping profiles: list, edit and save their TOML (checked before it is kept).

use super::{store_err, with_status};
use crate::auth::{PageError, Staff};
use crate::pages::{local_time, render, see_other, Ctx};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use lector_domain::role::Permission;
use lector_domain::Msg;
use lector_import::mapping::Profile;
use lector_store::imports::MappingProfile;
use lector_store::StoreError;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/imports/profiles", get(show).post(save))
}

pub struct ProfileRow {
    pub name: String,
    pub by: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "imports_profiles.html")]
struct ProfilesPage {
    ctx: Ctx,
    profiles: Vec<ProfileRow>,
    error: Option<String>,
    name: String,
    toml: String,
}

#[derive(Deserialize)]
struct Params {
    edit: Option<String>,
    flash: Option<String>,
}

async fn page(
    state: &AppState,
    staff: &Staff,
    name: String,
    toml: String,
    error: Option<String>,
    flash: Option<&str>,
) -> Result<Response, PageError> {
    let profiles: Vec<MappingProfile> = state.store.mapping_profiles().await.map_err(store_err(staff.lang))?;
    let failed = error.is_some();
    let view = ProfilesPage {
        ctx: Ctx::staff(staff, "imports", "/imports/profiles").with_flash(flash),
        profiles: profiles.into_iter().map(|p| ProfileRow { at: local_time(&p.updated_at), by: p.updated_by, name: p.name }).collect(),
        error,
        name,
        toml,
    };
    let r = render(&view);
    Ok(if failed { with_status(StatusCode::UNPROCESSABLE_ENTITY, r) } else { r })
}

async fn show(State(state): State<AppState>, staff: Staff, Query(p): Query<Params>) -> Result<Response, PageError> {
    staff.require(Permission::ReadersImport)?;
    let (name, toml) = match p.edit.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => {
            let saved = state.store.mapping_profile(name).await.map_err(store_err(staff.lang))?;
            (saved.name, saved.toml)
        }
        None => (String::new(), String::new()),
    };
    page(&state, &staff, name, toml, None, p.flash.as_deref()).await
}

#[derive(Deserialize)]
struct SaveForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    toml: String,
}

async fn save(State(state): State<AppState>, staff: Staff, Form(f): Form<SaveForm>) -> Result<Response, PageError> {
    staff.require(Permission::ReadersImport)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let l = staff.lang;
    let name = f.name.trim().to_string();
    let toml = f.toml.replace("\r\n", "\n");
    if name.is_empty() {
        let e = l.msg(&Msg::new("请填写方案名称", "name the profile"));
        return page(&state, &staff, name, toml, Some(e), None).await;
    }
    if let Err(m) = Profile::from_toml(&toml) {
        let e = l.msg(&m);
        return page(&state, &staff, name, toml, Some(e), None).await;
    }
    match state.store.save_mapping_profile(&staff.actor(), &name, &toml).await {
        Ok(saved) => Ok(see_other(&format!("/imports/profiles?edit={}&flash=saved", crate::auth::urlencode(&saved.name)))),
        Err(StoreError::Invalid(errs)) => {
            let e = errs.0.iter().map(|e| l.msg(&e.message)).collect::<Vec<_>>().join("；");
            page(&state, &staff, name, toml, Some(e), None).await
        }
        Err(StoreError::Conflict(m)) => page(&state, &staff, name, toml, Some(l.msg(&m)), None).await,
        Err(e) => Err(PageError(e.into(), l)),
    }
}
