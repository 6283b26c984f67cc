//! The REST API under `/api/v1`, described at `/api/openapi.json`.
//!
//! Callers authenticate with `Authorization: Bearer lec_…` (an API token). Every route checks
//! the permission it needs before it reads input or data; errors are JSON
//! (`{"error": {"code", "message", "message_zh", "fields"}}`, see [`dto::ErrorBody`]).

pub mod campaigns;
pub mod cases;
pub mod consent;
pub mod dto;
pub mod identity;
pub mod imports;
pub mod json;
pub mod messaging;
pub mod readers;
pub mod segments;
pub mod tracking;
pub mod warehouse;

use crate::AppState;
use axum::http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub fn routes() -> Router<AppState> {
    readers::routes()
        .merge(tracking::routes())
        .merge(cases::routes())
        .merge(imports::routes())
        .merge(identity::routes())
        .merge(segments::routes())
        .merge(campaigns::routes())
        .merge(messaging::routes())
        .merge(consent::routes())
        .merge(warehouse::routes())
        .fallback(|| async { crate::error::AppError::NotFound })
        .layer(axum::middleware::map_response(api_headers))
}

/// Every API response: never cached (records hold personal data); a 401 says how to
/// authenticate.
async fn api_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"lector\""));
    }
    resp
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lector API",
        description = "The REST API of Lector, a reader relationship management system for libraries. \
            Authenticate with `Authorization: Bearer lec_…` (an API token). Errors are JSON objects \
            of the `ErrorBody` shape with a stable `code`.",
    ),
    paths(
        readers::me,
        readers::list_readers,
        readers::get_reader,
        readers::get_reader_by_card,
        readers::create_reader,
        readers::update_reader,
        readers::delete_reader,
        tracking::reader_interactions,
        tracking::record_interaction,
        tracking::list_interactions,
        tracking::list_tasks,
        tracking::create_task,
        tracking::set_task_status,
        tracking::hand_over,
        tracking::owner_history,
        cases::list_cases,
        cases::create_case,
        cases::get_case,
        cases::act_on_case,
        cases::case_stats,
        imports::create_import,
        imports::list_imports,
        imports::get_import,
        imports::import_rejections,
        imports::undo_import,
        imports::reader_provenance,
        identity::list_candidates,
        identity::merge_candidate,
        identity::mark_distinct,
        identity::resolve,
        identity::list_merges,
        identity::undo_merge,
    ),
    components(schemas(
        dto::ErrorBody,
        dto::ErrorDetail,
        dto::FieldErrorBody,
        dto::Reader,
        dto::ReaderSummaryBody,
        dto::ReaderPage,
        dto::ReaderDraftBody,
        dto::ReaderUpdateBody,
        dto::Me,
        readers::SortKey,
        readers::SortOrder,
        dto::Interaction,
        dto::InteractionPage,
        dto::InteractionDraftBody,
        dto::Task,
        dto::TaskPage,
        dto::TaskDraftBody,
        dto::TaskStatusBody,
        dto::OwnerChange,
        dto::HandoverBody,
        dto::HandoverResult,
        cases::CaseBody,
        cases::CasePage,
        cases::CaseEventBody,
        cases::RatingBody,
        cases::CaseDraftBody,
        cases::CaseActionRequest,
        cases::ActionBody,
        cases::CountBody,
        cases::SatisfactionBody,
        cases::ServiceStatsBody,
        imports::MessageBody,
        imports::ImportOptionsBody,
        imports::ImportCountsBody,
        imports::ImportJobBody,
        imports::ImportJobPage,
        imports::RejectionBody,
        imports::ProvenanceBody,
        identity::CandidateBody,
        identity::CandidatePage,
        identity::MergeChoicesBody,
        identity::ResolveReportBody,
        identity::MergeBody,
        identity::MergePage,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "readers", description = "Reader records (读者)"),
        (name = "me", description = "The caller"),
        (name = "tracking", description = "Reader tracking (读者跟踪): interactions, follow-up tasks, owners"),
        (name = "cases", description = "Service cases (服务工单): suggestions, complaints, inquiries, purchase requests, praise"),
        (name = "imports", description = "Importing readers (导入): upload a file as a job, follow it, its rejected rows, undo; provenance"),
        (name = "identity", description = "Identity resolution (读者身份合并): candidate pairs, merge, not the same person, undo"),
    ),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lec_…")
                    .description(Some("An API token, created by an administrator"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, built once.
pub fn openapi_document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.merge(segments::Doc::openapi());
        doc.merge(campaigns::Doc::openapi());
        doc.merge(messaging::Doc::openapi());
        doc.merge(consent::Doc::openapi());
        doc.merge(warehouse::Doc::openapi());
        doc.to_pretty_json().expect("the OpenAPI document serialises")
    })
}

/// `GET /api/openapi.json`.
pub async fn openapi_json() -> Response {
    ([(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], openapi_document()).into_response()
}
