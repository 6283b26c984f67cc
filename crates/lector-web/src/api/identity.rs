//! `/api/v1/identity`: candidate pairs, merge, "not the same person", resolution now, merges
//! and their undo. Everything needs `identity.review`, checked before any body is read.

use super::dto::{ErrorBody, Reader};
use super::imports::PageParams;
use super::json::ApiJson;
use super::readers::{query_error, reader_id};
use crate::auth::ApiUser;
use crate::error::AppError;
use crate::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use lector_domain::identity::Evidence;
use lector_domain::import::ReaderField;
use lector_domain::role::Permission;
use lector_domain::{FieldErrors, Msg};
use lector_store::identity::{MatchCandidate, MergeChoices, MergeRecord, ResolveReport};
use lector_store::Page;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/identity/candidates", get(list_candidates))
        .route("/identity/candidates/{id}/merge", post(merge_candidate))
        .route("/identity/candidates/{id}/distinct", post(mark_distinct))
        .route("/identity/resolve", post(resolve))
        .route("/identity/merges", get(list_merges))
        .route("/identity/merges/{id}/undo", post(undo_merge))
}

// ---- shared with the pages ----

/// The fields a merge chooses between the two records (the rest is united).
pub const MERGE_FIELDS: [ReaderField; 10] = [
    ReaderField::Name,
    ReaderField::Gender,
    ReaderField::BirthDate,
    ReaderField::Category,
    ReaderField::Affiliation,
    ReaderField::Status,
    ReaderField::EnrolledOn,
    ReaderField::ExpiresOn,
    ReaderField::Owner,
    ReaderField::Notes,
];

/// The stable code of a piece of evidence (`same_email`).
pub fn evidence_code(e: &Evidence) -> String {
    serde_json::to_value(e).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// What a piece of evidence means, for people.
pub fn evidence_label(e: &Evidence) -> Msg {
    let code = evidence_code(e);
    let (zh, en) = match code.as_str() {
        "same_card_no" => ("读者证号相同", "Same card number"),
        "same_id_number" => ("证件号相同", "Same ID number"),
        "same_email" => ("电子邮件相同", "Same email"),
        "same_mobile" => ("手机号相同", "Same mobile"),
        "same_name" => ("姓名相同", "Same name"),
        "same_pinyin" => ("姓名拼音相同", "Same name in pinyin"),
        "same_birth_date" => ("出生日期相同", "Same birth date"),
        "same_affiliation" => ("单位相同", "Same affiliation"),
        "different_birth_date" => ("出生日期不同", "Different birth dates"),
        "different_id_number" => ("证件号不同", "Different ID numbers"),
        _ => return Msg::new(code.clone(), code),
    };
    Msg::new(zh, en)
}

fn side(v: &str) -> bool {
    v == "left" || v == "right"
}

/// Checks merge choices: the survivor and every field's pick are `left` or `right`, and every
/// field is one a merge chooses.
pub fn check_choices(c: &MergeChoices) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    if !side(&c.survivor) {
        errs.push(
            "survivor",
            Msg::new(
                format!("survivor 应为 left 或 right，而不是“{}”", c.survivor),
                format!("survivor must be left or right, not '{}'", c.survivor),
            ),
        );
    }
    for (field, pick) in &c.fields {
        let known = MERGE_FIELDS.iter().any(|f| f.code() == field);
        let codes = MERGE_FIELDS.iter().map(|f| f.code()).collect::<Vec<_>>().join(", ");
        if !known {
            errs.push(
                format!("fields.{field}"),
                Msg::new(format!("不能选择字段“{field}”，可选：{codes}"), format!("'{field}' cannot be chosen; use one of {codes}")),
            );
        } else if !side(pick) {
            errs.push(
                format!("fields.{field}"),
                Msg::new(format!("应为 left 或 right，而不是“{pick}”"), format!("must be left or right, not '{pick}'")),
            );
        }
    }
    errs.finish(|| ())
}

// ---- bodies ----

/// A pair of records that may be the same reader.
#[derive(Debug, Serialize, ToSchema)]
pub struct CandidateBody {
    pub id: i64,
    pub score: f64,
    /// Evidence codes: `same_card_no`, `same_id_number`, `same_email`, `same_mobile`,
    /// `same_name`, `same_pinyin`, `same_birth_date`, `same_affiliation`, `different_birth_date`,
    /// `different_id_number`.
    pub evidence: Vec<String>,
    /// `pending`, `merged` or `distinct`.
    pub status: String,
    pub created_at: String,
    /// Contact details masked.
    pub left: Reader,
    pub right: Reader,
}

impl From<MatchCandidate> for CandidateBody {
    fn from(c: MatchCandidate) -> Self {
        CandidateBody {
            id: c.id,
            score: c.score,
            evidence: c.evidence.iter().map(evidence_code).collect(),
            status: c.status,
            created_at: c.created_at,
            left: Reader::from_record(c.left, false),
            right: Reader::from_record(c.right, false),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CandidatePage {
    pub items: Vec<CandidateBody>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// Which record survives and, field by field, whose value it keeps (fields not named keep the
/// survivor's). Contacts, tags, attributes, card numbers and history of both are always kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct MergeChoicesBody {
    /// `left` or `right`.
    #[schema(example = "left")]
    pub survivor: String,
    /// Field code (`name`, `gender`, `birth_date`, `category`, `affiliation`, `status`,
    /// `enrolled_on`, `expires_on`, `owner`, `notes`) → `left` or `right`.
    #[schema(example = json!({"birth_date": "right"}))]
    pub fields: BTreeMap<String, String>,
}

/// What a resolution run found.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResolveReportBody {
    pub readers: u64,
    /// Pairs scored (those sharing a blocking key).
    pub pairs_scored: u64,
    pub merged: u64,
    pub queued: u64,
    pub seconds: f64,
}

impl From<ResolveReport> for ResolveReportBody {
    fn from(r: ResolveReport) -> Self {
        ResolveReportBody { readers: r.readers, pairs_scored: r.pairs_scored, merged: r.merged, queued: r.queued, seconds: r.seconds }
    }
}

/// A merge, as remembered so it can be undone.
#[derive(Debug, Serialize, ToSchema)]
pub struct MergeBody {
    pub id: i64,
    pub survivor_id: i64,
    pub absorbed_id: i64,
    pub absorbed_card_no: String,
    pub absorbed_name: String,
    pub by: String,
    pub at: String,
    /// `auto` or `manual`.
    pub how: String,
    pub undone_at: Option<String>,
}

impl From<MergeRecord> for MergeBody {
    fn from(m: MergeRecord) -> Self {
        MergeBody {
            id: m.id,
            survivor_id: m.survivor_id,
            absorbed_id: m.absorbed_id,
            absorbed_card_no: m.absorbed_card_no,
            absorbed_name: m.absorbed_name,
            by: m.by,
            at: m.at,
            how: m.how,
            undone_at: m.undone_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MergePage {
    pub items: Vec<MergeBody>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

impl From<Page<MergeRecord>> for MergePage {
    fn from(p: Page<MergeRecord>) -> Self {
        MergePage { items: p.items.into_iter().map(Into::into).collect(), total: p.total, page: p.page, per_page: p.per_page }
    }
}

/// The status filter of the candidate list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CandidateParams {
    /// `pending` (default), `merged` or `distinct`.
    pub status: Option<String>,
}

// ---- handlers ----

/// Candidate pairs, best score first. Needs `identity.review`.
#[utoipa::path(
    get, path = "/api/v1/identity/candidates", tag = "identity",
    params(CandidateParams, PageParams),
    responses(
        (status = 200, description = "A page of pairs", body = CandidatePage),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not review identities", body = ErrorBody),
        (status = 422, description = "A bad parameter", body = ErrorBody),
    )
)]
pub async fn list_candidates(
    State(state): State<AppState>,
    user: ApiUser,
    status: Result<Query<CandidateParams>, QueryRejection>,
    pages: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<CandidatePage>, AppError> {
    user.require(Permission::IdentityReview)?;
    let Query(s) = status.map_err(query_error)?;
    let Query(p) = pages.map_err(query_error)?;
    let status = s.status.as_deref().map(str::trim).filter(|v| !v.is_empty()).unwrap_or("pending");
    if !["pending", "merged", "distinct"].contains(&status) {
        let mut e = FieldErrors::default();
        e.push(
            "status",
            Msg::new(
                format!("status 应为 pending、merged 或 distinct，而不是“{status}”"),
                format!("status must be pending, merged or distinct, not '{status}'"),
            ),
        );
        return Err(AppError::Invalid(e));
    }
    let (page, per_page) = p.parse()?;
    let found = state.store.match_candidates(status, page, per_page).await?;
    Ok(Json(CandidatePage {
        total: found.total,
        page: found.page,
        per_page: found.per_page,
        items: found.items.into_iter().map(Into::into).collect(),
    }))
}

/// Merges a pair as chosen; returns the surviving record (contacts masked). Needs
/// `identity.review`. Audited and reversible (`POST /api/v1/identity/merges/{id}/undo`).
#[utoipa::path(
    post, path = "/api/v1/identity/candidates/{id}/merge", tag = "identity",
    params(("id" = i64, Path, description = "Candidate id")),
    request_body(content = MergeChoicesBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Merged; the survivor", body = Reader),
        (status = 400, description = "Not JSON or not of this shape", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not review identities", body = ErrorBody),
        (status = 404, description = "No such candidate", body = ErrorBody),
        (status = 409, description = "Already decided", body = ErrorBody),
        (status = 422, description = "A bad choice, named in `fields`", body = ErrorBody),
    )
)]
pub async fn merge_candidate(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<Reader>, AppError> {
    user.require(Permission::IdentityReview)?;
    let id = reader_id(id)?;
    let ApiJson(choices) = ApiJson::<MergeChoices>::from_request(req, &state).await?;
    check_choices(&choices).map_err(AppError::Invalid)?;
    let survivor = state.store.merge_candidate(&user.actor(), id, &choices).await?;
    Ok(Json(Reader::from_record(survivor, false)))
}

/// Marks a pair "not the same person": later runs never propose it again. Needs `identity.review`.
#[utoipa::path(
    post, path = "/api/v1/identity/candidates/{id}/distinct", tag = "identity",
    params(("id" = i64, Path, description = "Candidate id")),
    responses(
        (status = 204, description = "Remembered"),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not review identities", body = ErrorBody),
        (status = 404, description = "No such candidate", body = ErrorBody),
        (status = 409, description = "Already decided", body = ErrorBody),
    )
)]
pub async fn mark_distinct(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AppError> {
    user.require(Permission::IdentityReview)?;
    let id = reader_id(id)?;
    state.store.mark_distinct(&user.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs identity resolution now over all readers. Needs `identity.review`.
#[utoipa::path(
    post, path = "/api/v1/identity/resolve", tag = "identity",
    responses(
        (status = 200, description = "What the run found", body = ResolveReportBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not review identities", body = ErrorBody),
    )
)]
pub async fn resolve(State(state): State<AppState>, user: ApiUser) -> Result<Json<ResolveReportBody>, AppError> {
    user.require(Permission::IdentityReview)?;
    Ok(Json(state.store.resolve_identities(&user.actor()).await?.into()))
}

/// Merges, newest first. Needs `identity.review`.
#[utoipa::path(
    get, path = "/api/v1/identity/merges", tag = "identity",
    params(PageParams),
    responses(
        (status = 200, description = "A page of merges", body = MergePage),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not review identities", body = ErrorBody),
        (status = 422, description = "A bad page parameter", body = ErrorBody),
    )
)]
pub async fn list_merges(
    State(state): State<AppState>,
    user: ApiUser,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<MergePage>, AppError> {
    user.require(Permission::IdentityReview)?;
    let Query(p) = query.map_err(query_error)?;
    let (page, per_page) = p.parse()?;
    Ok(Json(state.store.merges(page, per_page).await?.into()))
}

/// Reverses a merge: the absorbed record comes back with its own id and history. Needs
/// `identity.review`.
#[utoipa::path(
    post, path = "/api/v1/identity/merges/{id}/undo", tag = "identity",
    params(("id" = i64, Path, description = "Merge id")),
    responses(
        (status = 204, description = "Undone"),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not review identities", body = ErrorBody),
        (status = 404, description = "No such merge", body = ErrorBody),
        (status = 409, description = "Already undone, or the survivor was merged away since", body = ErrorBody),
    )
)]
pub async fn undo_merge(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AppError> {
    user.require(Permission::IdentityReview)?;
    let id = reader_id(id)?;
    state.store.undo_merge(&user.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_checked() {
        let mut c = MergeChoices { survivor: "left".into(), fields: BTreeMap::new() };
        assert!(check_choices(&c).is_ok());
        c.fields.insert("birth_date".into(), "right".into());
        assert!(check_choices(&c).is_ok());
        c.survivor = "both".into();
        c.fields.insert("card_no".into(), "left".into());
        c.fields.insert("name".into(), "middle".into());
        let errs = check_choices(&c).unwrap_err();
        assert!(errs.get("survivor").is_some() && errs.get("fields.card_no").is_some() && errs.get("fields.name").is_some());
    }

    #[test]
    fn evidence_has_words_in_both_languages() {
        let m = evidence_label(&Evidence::SameEmail);
        assert_eq!((m.zh.as_str(), m.en.as_str()), ("电子邮件相同", "Same email"));
        assert_eq!(evidence_code(&Evidence::DifferentBirthDate), "different_birth_date");
    }
}
