//! Administration: staff accounts, API tokens, reader categories, custom attributes,
//! departments and the audit log.

use super::{render, see_other, CsrfForm, Ctx, Opt};
use crate::auth::{PageError, Staff};
use crate::error::AppError;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lector_domain::attribute::{AttrDef, AttrKind};
use lector_domain::role::{Permission, Role};
use lector_domain::Msg;
use lector_store::audit::{AuditEntry, AuditQuery};
use lector_store::auth::{ApiToken, NewUser, User};
use lector_store::config::{Category, Department, NamedInput, NewAttribute};
use lector_store::{Page, StoreError};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(users).post(create_user))
        .route("/admin/users/{id}/active", post(set_user_active))
        .route("/admin/users/{id}/password", post(set_password))
        .route("/admin/tokens", get(tokens).post(create_token))
        .route("/admin/tokens/{id}/revoke", post(revoke_token))
        .route("/admin/categories", get(categories).post(create_category))
        .route("/admin/categories/{id}/active", post(set_category_active))
        .route("/admin/attributes", get(attributes).post(create_attribute))
        .route("/admin/departments", get(departments).post(create_department))
        .route("/admin/audit", get(audit))
}

/// A form's outcome shown above it: an error, or a one-time secret to copy.
#[derive(Default)]
pub struct Notice {
    pub error: Option<String>,
    pub secret: Option<String>,
}

fn store_err(l: crate::i18n::Lang) -> impl Fn(StoreError) -> PageError {
    move |e| PageError(e.into(), l)
}

/// Turns a store rejection of a form into a message on the page (422/409) rather than an error page.
fn notice_of(e: StoreError, l: crate::i18n::Lang) -> Result<Notice, PageError> {
    match e {
        StoreError::Invalid(f) => Ok(Notice {
            error: Some(f.0.iter().map(|e| format!("{}: {}", e.field, l.msg(&e.message))).collect::<Vec<_>>().join("；")),
            secret: None,
        }),
        StoreError::Conflict(m) => Ok(Notice { error: Some(l.msg(&m)), secret: None }),
        StoreError::NotFound => Err(PageError(AppError::NotFound, l)),
        e => Err(PageError(e.into(), l)),
    }
}

fn with_status(status: axum::http::StatusCode, r: Response) -> Response {
    (status, r).into_response()
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    ctx: Ctx,
    notice: Notice,
    users: Vec<(User, String)>,
    roles: Vec<Opt>,
    departments: Vec<Department>,
}

async fn users_page(state: &AppState, staff: &Staff, notice: Notice) -> Result<Response, PageError> {
    let l = staff.lang;
    let users = state
        .store
        .users()
        .await
        .map_err(store_err(l))?
        .into_iter()
        .map(|u| {
            let r = l.msg(&u.role.label());
            (u, r)
        })
        .collect();
    let page = UsersPage {
        ctx: Ctx::staff(staff, "admin", "/admin/users"),
        notice,
        users,
        roles: Role::ALL
            .iter()
            .map(|r| Opt { value: r.code().into(), label: l.msg(&r.label()), selected: *r == Role::Librarian })
            .collect(),
        departments: state.store.departments().await.map_err(store_err(l))?,
    };
    Ok(render(&page))
}

async fn users(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::UsersManage)?;
    users_page(&state, &staff, Notice::default()).await
}

#[derive(Deserialize)]
struct UserForm {
    csrf: Option<String>,
    username: String,
    display_name: String,
    role: String,
    department: Option<String>,
    password: String,
}

async fn create_user(State(state): State<AppState>, staff: Staff, Form(f): Form<UserForm>) -> Result<Response, PageError> {
    staff.require(Permission::UsersManage)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let role = match Role::parse(&f.role) {
        Ok(r) => r,
        Err(m) => {
            return users_page(&state, &staff, Notice { error: Some(staff.lang.msg(&m)), secret: None })
                .await
                .map(|r| with_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY, r))
        }
    };
    let new = NewUser {
        username: f.username,
        display_name: f.display_name,
        role,
        department: f.department.filter(|d| !d.is_empty()),
        password: f.password,
    };
    match state.store.create_user(&staff.actor(), new).await {
        Ok(_) => Ok(see_other("/admin/users")),
        Err(e) => {
            let n = notice_of(e, staff.lang)?;
            users_page(&state, &staff, n).await.map(|r| with_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY, r))
        }
    }
}

#[derive(Deserialize)]
struct ActiveForm {
    csrf: Option<String>,
    active: String,
}

async fn set_user_active(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<ActiveForm>,
) -> Result<Response, PageError> {
    staff.require(Permission::UsersManage)?;
    staff.check_csrf(f.csrf.as_deref())?;
    if id == staff.user.id {
        let n = Notice {
            error: Some(staff.lang.msg(&Msg::new("不能停用自己的账号", "you cannot disable your own account"))),
            secret: None,
        };
        return users_page(&state, &staff, n).await.map(|r| with_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY, r));
    }
    state.store.set_user_active(&staff.actor(), id, f.active == "1").await.map_err(store_err(staff.lang))?;
    Ok(see_other("/admin/users"))
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: Option<String>,
    password: String,
}

async fn set_password(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<PasswordForm>,
) -> Result<Response, PageError> {
    staff.require(Permission::UsersManage)?;
    staff.check_csrf(f.csrf.as_deref())?;
    match state.store.set_password(&staff.actor(), id, f.password).await {
        Ok(()) => Ok(see_other("/admin/users")),
        Err(e) => {
            let n = notice_of(e, staff.lang)?;
            users_page(&state, &staff, n).await.map(|r| with_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY, r))
        }
    }
}

#[derive(Template)]
#[template(path = "admin_tokens.html")]
struct TokensPage {
    ctx: Ctx,
    notice: Notice,
    tokens: Vec<ApiToken>,
    users: Vec<User>,
}

async fn tokens_page(state: &AppState, staff: &Staff, notice: Notice) -> Result<Response, PageError> {
    let l = staff.lang;
    let page = TokensPage {
        ctx: Ctx::staff(staff, "admin", "/admin/tokens"),
        notice,
        tokens: state.store.tokens().await.map_err(store_err(l))?,
        users: state.store.users().await.map_err(store_err(l))?.into_iter().filter(|u| u.active).collect(),
    };
    Ok(render(&page))
}

async fn tokens(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::TokensManage)?;
    tokens_page(&state, &staff, Notice::default()).await
}

#[derive(Deserialize)]
struct TokenForm {
    csrf: Option<String>,
    username: String,
    name: String,
}

/// Creates a token and shows its secret once, on this response only.
async fn create_token(State(state): State<AppState>, staff: Staff, Form(f): Form<TokenForm>) -> Result<Response, PageError> {
    staff.require(Permission::TokensManage)?;
    staff.check_csrf(f.csrf.as_deref())?;
    match state.store.create_token(&staff.actor(), &f.username, &f.name).await {
        Ok((_, secret)) => tokens_page(&state, &staff, Notice { error: None, secret: Some(secret) }).await,
        Err(e) => {
            let n = notice_of(e, staff.lang)?;
            tokens_page(&state, &staff, n).await.map(|r| with_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY, r))
        }
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    staff.require(Permission::TokensManage)?;
    staff.check_csrf(f.csrf.as_deref())?;
    state.store.revoke_token(&staff.actor(), id).await.map_err(store_err(staff.lang))?;
    Ok(see_other("/admin/tokens"))
}

#[derive(Template)]
#[template(path = "admin_categories.html")]
struct CategoriesPage {
    ctx: Ctx,
    notice: Notice,
    categories: Vec<Category>,
}

async fn categories_page(state: &AppState, staff: &Staff, notice: Notice) -> Result<Response, PageError> {
    let page = CategoriesPage {
        ctx: Ctx::staff(staff, "admin", "/admin/categories"),
        notice,
        categories: state.store.categories().await.map_err(store_err(staff.lang))?,
    };
    Ok(render(&page))
}

async fn categories(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::ConfigManage)?;
    categories_page(&state, &staff, Notice::default()).await
}

#[derive(Deserialize)]
struct NamedForm {
    csrf: Option<String>,
    code: String,
    name_zh: String,
    name_en: String,
}

impl NamedForm {
    fn input(&self) -> NamedInput {
        NamedInput { code: self.code.clone(), name_zh: self.name_zh.clone(), name_en: self.name_en.clone() }
    }
}

async fn create_category(State(state): State<AppState>, staff: Staff, Form(f): Form<NamedForm>) -> Result<Response, PageError> {
    staff.require(Permission::ConfigManage)?;
    staff.check_csrf(f.csrf.as_deref())?;
    match state.store.create_category(&staff.actor(), &f.input()).await {
        Ok(_) => Ok(see_other("/admin/categories")),
        Err(e) => {
            let n = notice_of(e, staff.lang)?;
            categories_page(&state, &staff, n).await.map(|r| with_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY, r))
        }
    }
}

async fn set_category_active(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<ActiveForm>,
) -> Result<Response, PageError> {
    staff.require(Permission::ConfigManage)?;
    staff.check_csrf(f.csrf.as_deref())?;
    state.store.set_category_active(&staff.actor(), id, f.active == "1").await.map_err(store_err(staff.lang))?;
    Ok(see_other("/admin/categories"))
}

#[derive(Template)]
#[template(path = "admin_attributes.html")]
struct AttributesPage {
    ctx: Ctx,
    notice: Notice,
    attributes: Vec<(AttrDef, String)>,
    kinds: Vec<Opt>,
}

async fn attributes_page(state: &AppState, staff: &Staff, notice: Notice) -> Result<Response, PageError> {
    let l = staff.lang;
    let attributes = state
        .store
        .attribute_defs()
        .await
        .map_err(store_err(l))?
        .into_iter()
        .map(|(_, d)| {
            let k = l.msg(&d.kind.label());
            (d, k)
        })
        .collect();
    let page = AttributesPage {
        ctx: Ctx::staff(staff, "admin", "/admin/attributes"),
        notice,
        attributes,
        kinds: AttrKind::ALL
            .iter()
            .map(|k| Opt { value: k.code().into(), label: l.msg(&k.label()), selected: *k == AttrKind::Text })
            .collect(),
    };
    Ok(render(&page))
}

async fn attributes(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::ConfigManage)?;
    attributes_page(&state, &staff, Notice::default()).await
}

#[derive(Deserialize)]
struct AttributeForm {
    csrf: Option<String>,
    code: String,
    label_zh: String,
    label_en: String,
    kind: String,
    #[serde(default)]
    choices: String,
    repeatable: Option<String>,
    unique: Option<String>,
    searchable: Option<String>,
}

async fn create_attribute(State(state): State<AppState>, staff: Staff, Form(f): Form<AttributeForm>) -> Result<Response, PageError> {
    staff.require(Permission::ConfigManage)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let new = NewAttribute {
        code: f.code,
        label_zh: f.label_zh,
        label_en: f.label_en,
        kind: f.kind,
        choices: f.choices.split([',', '，', '\n']).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        repeatable: f.repeatable.is_some(),
        unique: f.unique.is_some(),
        searchable: f.searchable.is_some(),
    };
    match state.store.create_attribute(&staff.actor(), &new).await {
        Ok(_) => Ok(see_other("/admin/attributes")),
        Err(e) => {
            let n = notice_of(e, staff.lang)?;
            attributes_page(&state, &staff, n).await.map(|r| with_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY, r))
        }
    }
}

#[derive(Template)]
#[template(path = "admin_departments.html")]
struct DepartmentsPage {
    ctx: Ctx,
    notice: Notice,
    departments: Vec<Department>,
}

async fn departments_page(state: &AppState, staff: &Staff, notice: Notice) -> Result<Response, PageError> {
    let page = DepartmentsPage {
        ctx: Ctx::staff(staff, "admin", "/admin/departments"),
        notice,
        departments: state.store.departments().await.map_err(store_err(staff.lang))?,
    };
    Ok(render(&page))
}

async fn departments(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::ConfigManage)?;
    departments_page(&state, &staff, Notice::default()).await
}

async fn create_department(State(state): State<AppState>, staff: Staff, Form(f): Form<NamedForm>) -> Result<Response, PageError> {
    staff.require(Permission::ConfigManage)?;
    staff.check_csrf(f.csrf.as_deref())?;
    match state.store.create_department(&staff.actor(), &f.input()).await {
        Ok(_) => Ok(see_other("/admin/departments")),
        Err(e) => {
            let n = notice_of(e, staff.lang)?;
            departments_page(&state, &staff, n).await.map(|r| with_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY, r))
        }
    }
}

#[derive(Deserialize, Default)]
struct AuditParams {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    entity_id: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    page: Option<i64>,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    ctx: Ctx,
    p: AuditParams,
    page: Page<AuditEntry>,
    prev: Option<String>,
    next: Option<String>,
}

impl AuditPage {
    fn changed(&self, e: &AuditEntry) -> String {
        e.changed_fields().join(", ")
    }
}

async fn audit(State(state): State<AppState>, staff: Staff, Query(p): Query<AuditParams>) -> Result<Response, PageError> {
    staff.require(Permission::AuditView)?;
    let q = AuditQuery {
        actor: Some(p.actor.trim().to_lowercase()),
        action: Some(p.action.trim().to_string()),
        entity: None,
        entity_id: Some(p.entity_id.trim().to_string()),
        from: Some(p.from.trim().to_string()),
        to: Some(p.to.trim().to_string()),
        page: p.page.unwrap_or(1),
        per_page: 50,
    };
    let page = state.store.audit_log(&q).await.map_err(store_err(staff.lang))?;
    let enc = crate::auth::urlencode;
    let href = |n: i64| {
        format!(
            "/admin/audit?actor={}&action={}&entity_id={}&from={}&to={}&page={n}",
            enc(&p.actor),
            enc(&p.action),
            enc(&p.entity_id),
            enc(&p.from),
            enc(&p.to)
        )
    };
    let view = AuditPage {
        ctx: Ctx::staff(&staff, "audit", "/admin/audit"),
        prev: (page.page > 1).then(|| href(page.page - 1)),
        next: (page.page < page.pages()).then(|| href(page.page + 1)),
        page,
        p,
    };
    Ok(render(&view))
}
