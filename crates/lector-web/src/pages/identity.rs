//! Identity review (读者身份合并): pending candidate pairs, running resolution now, the side-by-side
//! review with a choice per field, merge or "not the same person", the merges with undo, and the
//! match rules (administrators). Needs `IdentityReview`; the rules need `ConfigManage`.

use super::{local_time, render, see_other, CsrfForm, Ctx};
use crate::api::identity::{check_choices, evidence_label, MERGE_FIELDS};
use crate::auth::{PageError, Staff};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::mask::mask;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lector_domain::identity::MatchRules;
use lector_domain::import::ReaderField;
use lector_domain::role::Permission;
use lector_domain::{FieldErrors, Msg};
use lector_store::identity::{MatchCandidate, MergeChoices, MergeRecord, ResolveReport};
use lector_store::readers::ReaderRecord;
use lector_store::{Actor, Page, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::future::Future;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/identity", get(list))
        .route("/identity/resolve", post(resolve))
        .route("/identity/candidates/{id}", get(candidate))
        .route("/identity/candidates/{id}/merge", post(merge))
        .route("/identity/candidates/{id}/distinct", post(distinct))
        .route("/identity/merges", get(merges))
        .route("/identity/merges/{id}/undo", post(undo_merge))
        .route("/identity/rules", get(rules).post(save_rules))
}

fn store_err(l: Lang) -> impl Fn(StoreError) -> PageError {
    move |e| PageError(e.into(), l)
}

fn path_id(raw: &str, l: Lang) -> Result<i64, PageError> {
    raw.parse().map_err(|_| PageError(AppError::NotFound, l))
}

#[derive(Deserialize)]
struct ListParams {
    page: Option<i64>,
    flash: Option<String>,
}

pub struct CandidateRow {
    pub id: i64,
    pub score: String,
    pub evidence: Vec<String>,
    pub left: String,
    pub right: String,
}

impl CandidateRow {
    fn new(c: &MatchCandidate, l: Lang) -> Self {
        let who = |r: &ReaderRecord| format!("{} ({})", r.name, r.card_no);
        CandidateRow {
            id: c.id,
            score: format!("{:.2}", c.score),
            evidence: c.evidence.iter().map(|e| l.msg(&evidence_label(e))).collect(),
            left: who(&c.left),
            right: who(&c.right),
        }
    }
}

#[derive(Template)]
#[template(path = "identity_list.html")]
struct ListPage {
    ctx: Ctx,
    rows: Vec<CandidateRow>,
    page: Page<MatchCandidate>,
    prev: Option<String>,
    next: Option<String>,
    report: Option<ResolveReport>,
    seconds: String,
}

async fn list_page(
    state: &AppState,
    staff: &Staff,
    page: i64,
    flash: Option<&str>,
    report: Option<ResolveReport>,
) -> Result<Response, PageError> {
    staff.require(Permission::IdentityReview)?;
    let l = staff.lang;
    let page = state.store.match_candidates("pending", page.max(1), 25).await.map_err(store_err(l))?;
    let view = ListPage {
        ctx: Ctx::staff(staff, "identity", "/identity").with_flash(flash),
        rows: page.items.iter().map(|c| CandidateRow::new(c, l)).collect(),
        prev: (page.page > 1).then(|| format!("/identity?page={}", page.page - 1)),
        next: (page.page < page.pages()).then(|| format!("/identity?page={}", page.page + 1)),
        page,
        seconds: report.as_ref().map(|r| format!("{:.1}", r.seconds)).unwrap_or_default(),
        report,
    };
    Ok(render(&view))
}

async fn list(State(state): State<AppState>, staff: Staff, Query(p): Query<ListParams>) -> Result<Response, PageError> {
    list_page(&state, &staff, p.page.unwrap_or(1), p.flash.as_deref(), None).await
}

/// Runs resolution now and shows what it found above the (refreshed) queue.
async fn resolve(State(state): State<AppState>, staff: Staff, Form(f): Form<CsrfForm>) -> Result<Response, PageError> {
    staff.require(Permission::IdentityReview)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let report = state.store.resolve_identities(&staff.actor()).await.map_err(store_err(staff.lang))?;
    list_page(&state, &staff, 1, None, Some(report)).await
}

/// One field of the two records side by side.
pub struct FieldRow {
    pub code: &'static str,
    pub label: String,
    pub left: String,
    pub right: String,
    /// Only differing values need a choice.
    pub differ: bool,
}

/// A field's value as people read it.
fn field_value(r: &ReaderRecord, f: ReaderField, l: Lang) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    match f {
        ReaderField::CardNo => r.card_no.clone(),
        ReaderField::Name => r.name.clone(),
        ReaderField::Gender => l.msg(&r.gender.label()),
        ReaderField::BirthDate => opt(&r.birth_date),
        ReaderField::Category => l.pick(&r.category.name_zh, &r.category.name_en).to_string(),
        ReaderField::Affiliation => opt(&r.affiliation),
        ReaderField::Status => l.msg(&r.status.label()),
        ReaderField::EnrolledOn => opt(&r.enrolled_on),
        ReaderField::ExpiresOn => opt(&r.expires_on),
        ReaderField::Owner => opt(&r.owner),
        ReaderField::Notes => opt(&r.notes),
        ReaderField::Tags => r.tags.join("，"),
        ReaderField::Email | ReaderField::Mobile | ReaderField::Phone | ReaderField::Qq | ReaderField::Wechat => {
            r.contacts.iter().filter(|c| c.kind.code() == f.code()).map(|c| mask(c.kind, &c.value)).collect::<Vec<_>>().join("，")
        }
    }
}

/// What both records keep whatever is chosen, shown for reference (contacts masked).
pub struct KeptRow {
    pub label: String,
    pub left: String,
    pub right: String,
}

#[derive(Template)]
#[template(path = "identity_candidate.html")]
struct CandidatePage {
    ctx: Ctx,
    c: MatchCandidate,
    score: String,
    evidence: Vec<String>,
    status: String,
    fields: Vec<FieldRow>,
    kept: Vec<KeptRow>,
}

async fn candidate(State(state): State<AppState>, staff: Staff, Path(raw): Path<String>) -> Result<Response, PageError> {
    staff.require(Permission::IdentityReview)?;
    let l = staff.lang;
    let id = path_id(&raw, l)?;
    let c = state.store.match_candidate(id).await.map_err(store_err(l))?;
    let fields = MERGE_FIELDS
        .iter()
        .map(|f| {
            let (left, right) = (field_value(&c.left, *f, l), field_value(&c.right, *f, l));
            FieldRow { code: f.code(), label: l.msg(&f.label()), differ: left != right, left, right }
        })
        .collect();
    let kept = [ReaderField::CardNo, ReaderField::Email, ReaderField::Mobile, ReaderField::Phone, ReaderField::Tags]
        .iter()
        .map(|f| KeptRow { label: l.msg(&f.label()), left: field_value(&c.left, *f, l), right: field_value(&c.right, *f, l) })
        .collect();
    let status = match c.status.as_str() {
        "pending" => l.pick("待审核", "Pending"),
        "merged" => l.pick("已合并", "Merged"),
        "distinct" => l.pick("不是同一人", "Not the same person"),
        other => other,
    }
    .to_string();
    let view = CandidatePage {
        ctx: Ctx::staff(&staff, "identity", &format!("/identity/candidates/{id}")),
        score: format!("{:.2}", c.score),
        evidence: c.evidence.iter().map(|e| l.msg(&evidence_label(e))).collect(),
        status,
        fields,
        kept,
        c,
    };
    Ok(render(&view))
}

/// The merge form: the survivor and, per field, `left` or `right`.
fn parse_choices(pairs: &[(String, String)]) -> (MergeChoices, Option<String>) {
    let mut choices = MergeChoices::default();
    let mut csrf = None;
    for (k, v) in pairs {
        if let Some(field) = k.strip_prefix("field.") {
            choices.fields.insert(field.to_string(), v.clone());
        } else if k == "survivor" {
            choices.survivor = v.clone();
        } else if k == "csrf" {
            csrf = Some(v.clone());
        }
    }
    (choices, csrf)
}

async fn merge(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    staff.require(Permission::IdentityReview)?;
    let (choices, csrf) = parse_choices(&pairs);
    staff.check_csrf(csrf.as_deref())?;
    let l = staff.lang;
    let id = path_id(&raw, l)?;
    check_choices(&choices).map_err(|e| PageError(AppError::Invalid(e), l))?;
    let survivor = state.store.merge_candidate(&staff.actor(), id, &choices).await.map_err(store_err(l))?;
    Ok(see_other(&format!("/readers/{}?flash=merged", survivor.id)))
}

/// A button on a pair or a merge (its id in the path): checked, done by `act`, then back to `to`.
async fn decide<Fut>(staff: &Staff, raw: &str, f: &CsrfForm, to: &str, act: impl FnOnce(Actor, i64) -> Fut) -> Result<Response, PageError>
where
    Fut: Future<Output = Result<(), StoreError>>,
{
    staff.require(Permission::IdentityReview)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let id = path_id(raw, staff.lang)?;
    act(staff.actor(), id).await.map_err(store_err(staff.lang))?;
    Ok(see_other(to))
}

async fn distinct(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    decide(&staff, &raw, &f, "/identity?flash=distinct", |actor, id| async move { state.store.mark_distinct(&actor, id).await }).await
}

pub struct MergeRow {
    pub id: i64,
    pub survivor_id: i64,
    pub absorbed: String,
    pub how: String,
    pub by: String,
    pub at: String,
    pub undone: String,
}

impl MergeRow {
    fn new(m: &MergeRecord, l: Lang) -> Self {
        MergeRow {
            id: m.id,
            survivor_id: m.survivor_id,
            absorbed: format!("{} ({})", m.absorbed_name, m.absorbed_card_no),
            how: if m.how == "auto" { l.pick("自动", "automatic") } else { l.pick("人工", "by staff") }.to_string(),
            by: m.by.clone(),
            at: local_time(&m.at),
            undone: m.undone_at.as_deref().map(local_time).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "identity_merges.html")]
struct MergesPage {
    ctx: Ctx,
    rows: Vec<MergeRow>,
    page: Page<MergeRecord>,
    prev: Option<String>,
    next: Option<String>,
}

async fn merges(State(state): State<AppState>, staff: Staff, Query(p): Query<ListParams>) -> Result<Response, PageError> {
    staff.require(Permission::IdentityReview)?;
    let l = staff.lang;
    let page = state.store.merges(p.page.unwrap_or(1).max(1), 25).await.map_err(store_err(l))?;
    let view = MergesPage {
        ctx: Ctx::staff(&staff, "identity", "/identity/merges").with_flash(p.flash.as_deref()),
        rows: page.items.iter().map(|m| MergeRow::new(m, l)).collect(),
        prev: (page.page > 1).then(|| format!("/identity/merges?page={}", page.page - 1)),
        next: (page.page < page.pages()).then(|| format!("/identity/merges?page={}", page.page + 1)),
        page,
    };
    Ok(render(&view))
}

async fn undo_merge(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    decide(&staff, &raw, &f, "/identity/merges?flash=unmerged", |actor, id| async move { state.store.undo_merge(&actor, id).await }).await
}

// ---- match rules, as a form generated from their fields ----

/// One editable setting of the rules, by its path (`merge_at`, `weights.same_email`).
pub struct RuleInput {
    pub path: String,
    pub label: String,
    /// `number`, `checkbox` or `text`.
    pub kind: &'static str,
    pub value: String,
    pub checked: bool,
    pub error: Option<String>,
}

/// Words for the settings people know by name; others show their path.
fn rule_label(path: &str, l: Lang) -> String {
    let evidence = path.rsplit('.').next().and_then(|code| serde_json::from_value(Value::String(code.to_string())).ok());
    match (path, evidence) {
        ("merge_at", _) => l.pick("自动合并阈值（分数达到即自动合并）", "Merge threshold (at or above: merged automatically)").into(),
        ("review_at", _) => l.pick("人工审核阈值（分数达到即列入待审核）", "Review threshold (at or above: queued for review)").into(),
        ("max_block", _) => l
            .pick("分组人数上限（共享同一线索的读者超过此数则不比对）", "Largest block (a key shared by more readers proposes no pairs)")
            .into(),
        ("id_number_attributes", _) => {
            l.pick("存放证件号的自定义属性（逗号分隔）", "Custom attributes holding ID numbers (comma-separated)").into()
        }
        ("card_attributes", _) => l
            .pick("存放学号、工号等编号的自定义属性（逗号分隔）", "Custom attributes holding student or staff numbers (comma-separated)")
            .into(),
        (_, Some(e)) if path.contains('.') => format!("{}（{path}）", l.msg(&evidence_label(&e))),
        _ => path.to_string(),
    }
}

/// The leaves of the rules' JSON as form inputs.
fn rule_inputs(value: &Value, prefix: &str, l: Lang, errors: &FieldErrors, out: &mut Vec<RuleInput>) {
    let Value::Object(map) = value else { return };
    for (key, v) in map {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let (kind, text, checked) = match v {
            Value::Object(_) => {
                rule_inputs(v, &path, l, errors, out);
                continue;
            }
            Value::Number(n) => ("number", n.to_string(), false),
            Value::Bool(b) => ("checkbox", String::new(), *b),
            Value::String(s) => ("text", s.clone(), false),
            Value::Array(items) if items.iter().all(Value::is_string) => {
                ("text", items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "), false)
            }
            other => ("text", other.to_string(), false),
        };
        out.push(RuleInput { label: rule_label(&path, l), error: errors.get(&path).map(|m| l.msg(m)), path, kind, value: text, checked });
    }
}

/// The rules with the posted values put in place of `current`'s, each parsed as the type it had.
fn rules_from_form(current: &Value, posted: &Map<String, Value>, prefix: &str, errors: &mut FieldErrors) -> Value {
    let Value::Object(map) = current else { return current.clone() };
    let mut out = Map::new();
    for (key, v) in map {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let sent = posted.get(&path).and_then(Value::as_str).map(str::trim);
        let new = match (v, sent) {
            (Value::Object(_), _) => rules_from_form(v, posted, &path, errors),
            (Value::Bool(_), sent) => Value::Bool(sent.is_some()),
            (_, None) => v.clone(),
            (Value::Number(n), Some(s)) => match s.parse::<f64>() {
                Ok(x) if x.is_finite() && n.is_i64() && x.fract() == 0.0 => Value::from(x as i64),
                Ok(x) if x.is_finite() => Value::from(x),
                _ => {
                    errors.push(&path, Msg::new(format!("“{s}”不是数字"), format!("'{s}' is not a number")));
                    v.clone()
                }
            },
            (Value::String(_), Some(s)) => Value::String(s.to_string()),
            (Value::Array(items), Some(s)) if items.iter().all(Value::is_string) => Value::Array(
                s.split([',', '，', '\n']).map(str::trim).filter(|x| !x.is_empty()).map(|x| Value::String(x.to_string())).collect(),
            ),
            (_, Some(s)) => serde_json::from_str(s).unwrap_or_else(|e| {
                errors.push(&path, Msg::new(format!("格式不正确：{e}"), format!("not valid: {e}")));
                v.clone()
            }),
        };
        out.insert(key.clone(), new);
    }
    Value::Object(out)
}

#[derive(Template)]
#[template(path = "identity_rules.html")]
struct RulesPage {
    ctx: Ctx,
    inputs: Vec<RuleInput>,
    error: Option<String>,
}

fn rules_page(staff: &Staff, rules: &Value, errors: &FieldErrors, error: Option<String>, flash: Option<&str>) -> Response {
    let mut inputs = Vec::new();
    rule_inputs(rules, "", staff.lang, errors, &mut inputs);
    let failed = error.is_some() || !errors.is_empty();
    let view = RulesPage { ctx: Ctx::staff(staff, "identity", "/identity/rules").with_flash(flash), inputs, error };
    let r = render(&view);
    if failed {
        (StatusCode::UNPROCESSABLE_ENTITY, r).into_response()
    } else {
        r
    }
}

fn rules_json(rules: &MatchRules) -> Result<Value, AppError> {
    serde_json::to_value(rules).map_err(|e| AppError::Internal(format!("serialising match rules: {e}")))
}

async fn rules(State(state): State<AppState>, staff: Staff, Query(p): Query<ListParams>) -> Result<Response, PageError> {
    staff.require(Permission::ConfigManage)?;
    let l = staff.lang;
    let current = rules_json(&state.store.match_rules().await.map_err(store_err(l))?).map_err(|e| PageError(e, l))?;
    Ok(rules_page(&staff, &current, &FieldErrors::default(), None, p.flash.as_deref()))
}

async fn save_rules(State(state): State<AppState>, staff: Staff, Form(pairs): Form<Vec<(String, String)>>) -> Result<Response, PageError> {
    staff.require(Permission::ConfigManage)?;
    let csrf = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
    staff.check_csrf(csrf)?;
    let l = staff.lang;
    let posted: Map<String, Value> =
        pairs.iter().filter_map(|(k, v)| k.strip_prefix("rule.").map(|p| (p.to_string(), Value::String(v.clone())))).collect();
    let current = rules_json(&state.store.match_rules().await.map_err(store_err(l))?).map_err(|e| PageError(e, l))?;
    let mut errors = FieldErrors::default();
    let updated = rules_from_form(&current, &posted, "", &mut errors);
    if !errors.is_empty() {
        return Ok(rules_page(&staff, &updated, &errors, None, None));
    }
    let parsed: MatchRules = match serde_json::from_value(updated.clone()) {
        Ok(r) => r,
        Err(e) => {
            return Ok(rules_page(
                &staff,
                &updated,
                &errors,
                Some(format!("{}{e}", l.pick("规则无效：", "The rules are not valid: "))),
                None,
            ))
        }
    };
    match state.store.save_match_rules(&staff.actor(), &parsed).await {
        Ok(()) => Ok(see_other("/identity/rules?flash=saved")),
        Err(StoreError::Invalid(errs)) => {
            let text = errs.0.iter().map(|e| format!("{}: {}", e.field, l.msg(&e.message))).collect::<Vec<_>>().join("\n");
            Ok(rules_page(&staff, &updated, &errs, Some(text), None))
        }
        Err(e) => Err(PageError(e.into(), l)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_round_trip_through_the_form() {
        let current = json!({"merge_at": 0.9, "review_at": 0.6, "max_block": 50, "weights": {"same_email": 0.5}, "id_attributes": ["id_number"], "strict": true});
        let mut inputs = Vec::new();
        rule_inputs(&current, "", Lang::En, &FieldErrors::default(), &mut inputs);
        let paths: Vec<&str> = inputs.iter().map(|i| i.path.as_str()).collect();
        assert!(paths.contains(&"weights.same_email") && paths.contains(&"id_attributes"));
        assert!(inputs.iter().find(|i| i.path == "weights.same_email").unwrap().label.starts_with("Same email"));
        let posted: Map<String, Value> = [
            ("merge_at", "0.95"),
            ("review_at", "0.7"),
            ("max_block", "40"),
            ("weights.same_email", "0.4"),
            ("id_attributes", "id_number, passport"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
        let mut errors = FieldErrors::default();
        let updated = rules_from_form(&current, &posted, "", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            updated,
            json!({"merge_at": 0.95, "review_at": 0.7, "max_block": 40, "weights": {"same_email": 0.4}, "id_attributes": ["id_number", "passport"], "strict": false})
        );
    }

    #[test]
    fn a_bad_number_is_named() {
        let current = json!({"merge_at": 0.9});
        let posted: Map<String, Value> = [("merge_at".to_string(), Value::String("high".into()))].into_iter().collect();
        let mut errors = FieldErrors::default();
        rules_from_form(&current, &posted, "", &mut errors);
        assert!(errors.get("merge_at").is_some());
    }

    #[test]
    fn merge_form_is_read() {
        let pairs: Vec<(String, String)> = [("csrf", "t"), ("survivor", "right"), ("field.name", "left"), ("field.birth_date", "right")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (c, csrf) = parse_choices(&pairs);
        assert_eq!(csrf.as_deref(), Some("t"));
        assert_eq!(c.survivor, "right");
        assert_eq!(c.fields.len(), 2);
        assert_eq!(c.fields["name"], "left");
    }
}
