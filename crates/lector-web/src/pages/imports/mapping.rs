//! The mapping page of an uploaded file: what Lector detected, the first rows, a target per
//! column, and the profile TOML (the source of truth once edited); preview (dry run) or import.

use super::{store_err, with_status, Choices, Settings};
use crate::auth::{PageError, Staff};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::pages::{render, see_other, Ctx, Opt};
use crate::uploads::{self, Upload};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use lector_domain::attribute::AttrDef;
use lector_domain::import::{ImportOptions, JobStatus, ReaderField, Target};
use lector_domain::role::Permission;
use lector_domain::Msg;
use lector_import::mapping::Profile;
use lector_import::runner::Sample;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub fn routes() -> axum::Router<AppState> {
    Router::new().route("/imports/uploads/{token}", get(show).post(submit))
}

/// Rows of the file shown on the page.
const SAMPLE_ROWS: usize = 10;

/// A header as profiles match it: trimmed, half-width, case-insensitive.
fn header_key(h: &str) -> String {
    lector_domain::text::clean(h).to_lowercase()
}

/// Column header (as [`header_key`]) → target code, as the profile maps them.
pub fn targets(profile: &Profile) -> BTreeMap<String, String> {
    let Ok(Value::Object(root)) = serde_json::to_value(profile) else {
        return BTreeMap::new();
    };
    let Some(Value::Object(columns)) = root.get("columns") else {
        return BTreeMap::new();
    };
    columns
        .iter()
        .filter_map(|(header, col)| col.get("field").and_then(Value::as_str).map(|f| (header_key(header), f.to_string())))
        .collect()
}

/// The import options a profile carries (`[options]`), if any.
fn profile_options(profile: &Profile) -> Option<ImportOptions> {
    let root = serde_json::to_value(profile).ok()?;
    serde_json::from_value(root.get("options")?.clone()).ok()
}

/// The profile `toml` with each (header, target) of `chosen` set; other settings of a column
/// (value maps, transforms) and the rest of the profile are kept. Columns set to `ignore` that
/// the profile does not name stay unnamed.
pub fn with_targets(toml: &str, chosen: &[(String, String)]) -> Result<String, Msg> {
    let profile = Profile::from_toml(toml)?;
    let internal = |e: serde_json::Error| Msg::new(format!("映射方案无法更新：{e}"), format!("the mapping profile cannot be updated: {e}"));
    let mut root = match serde_json::to_value(&profile).map_err(internal)? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let columns = root.entry("columns").or_insert_with(|| Value::Object(Map::new()));
    if !columns.is_object() {
        *columns = Value::Object(Map::new());
    }
    if let Value::Object(columns) = columns {
        for (header, target) in chosen {
            // The profile's own spelling of the header, if it names it.
            let key = columns.keys().find(|k| header_key(k) == header_key(header)).cloned().unwrap_or_else(|| header.clone());
            match columns.get_mut(&key) {
                Some(Value::Object(col)) => {
                    col.insert("field".into(), Value::String(target.clone()));
                }
                _ if target == "ignore" => {}
                _ => {
                    let mut col = Map::new();
                    col.insert("field".into(), Value::String(target.clone()));
                    columns.insert(header.clone(), Value::Object(col));
                }
            }
        }
    }
    let updated: Profile = serde_json::from_value(Value::Object(root)).map_err(internal)?;
    Ok(updated.to_toml())
}

/// Textareas send CRLF line ends; an edit is a change of content, not of line ends.
fn same_text(a: &str, b: &str) -> bool {
    a.replace("\r\n", "\n").trim_end() == b.replace("\r\n", "\n").trim_end()
}

/// The targets a column may feed: reader fields, custom attributes, the source's id, nothing.
fn target_choices(defs: &[AttrDef], l: Lang) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        ReaderField::ALL.iter().map(|f| (Target::Field(*f).code(), format!("{} ({})", l.msg(&f.label()), f.code()))).collect();
    for d in defs {
        let t = Target::Attribute(d.code.clone()).code();
        out.push((t.clone(), format!("{}：{} ({t})", l.pick("自定义属性", "Attribute"), l.pick(&d.label_zh, &d.label_en))));
    }
    out.push((Target::ExternalId.code(), l.pick("来源编号 (external_id)", "Source id (external_id)").into()));
    out.push((Target::Ignore.code(), l.pick("忽略 (ignore)", "Ignore (ignore)").into()));
    out
}

pub struct Column {
    pub index: usize,
    pub header: String,
    pub opts: Vec<Opt>,
}

fn columns(headers: &[String], chosen: &BTreeMap<String, String>, choices: &[(String, String)]) -> Vec<Column> {
    headers
        .iter()
        .enumerate()
        .map(|(index, header)| {
            let current = chosen.get(&header_key(header)).map(String::as_str).unwrap_or("ignore");
            let mut opts: Vec<Opt> =
                choices.iter().map(|(v, label)| Opt { value: v.clone(), label: label.clone(), selected: v == current }).collect();
            if !opts.iter().any(|o| o.selected) {
                // A target this page does not list (set in the TOML): keep it selectable.
                opts.push(Opt { value: current.to_string(), label: current.to_string(), selected: true });
            }
            Column { index, header: header.clone(), opts }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "imports_mapping.html")]
struct MappingPage {
    ctx: Ctx,
    upload: Upload,
    settings: Settings,
    choices: Choices,
    /// Why the file cannot be read or the mapping cannot be used.
    error: Option<String>,
    format: String,
    encoding: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    columns: Vec<Column>,
    toml: String,
    /// The TOML as this page rendered it, to tell an edit from the selects' work.
    toml_original: String,
    save_as: String,
}

/// What the page shows besides the sample: the state of the form.
struct FormState {
    settings: Settings,
    chosen: BTreeMap<String, String>,
    toml: String,
    toml_original: String,
    save_as: String,
    error: Option<String>,
}

async fn page(state: &AppState, staff: &Staff, upload: Upload, sample: Option<&Sample>, form: FormState) -> Result<Response, PageError> {
    let l = staff.lang;
    let defs: Vec<AttrDef> = state.store.attribute_defs().await.map_err(store_err(l))?.into_iter().map(|(_, d)| d).collect();
    let choices = target_choices(&defs, l);
    let (format, encoding, headers, rows) = match sample {
        Some(s) => (uploads::format_code(s.format), s.encoding.unwrap_or("").to_string(), s.headers.clone(), s.rows.clone()),
        None => Default::default(),
    };
    let failed = form.error.is_some();
    let view = MappingPage {
        ctx: Ctx::staff(staff, "imports", &format!("/imports/uploads/{}?{}", upload.token, form.settings.query())),
        choices: Choices::load(state, &form.settings, l).await?,
        columns: columns(&headers, &form.chosen, &choices),
        upload,
        settings: form.settings,
        error: form.error,
        format,
        encoding,
        headers,
        rows,
        toml: form.toml,
        toml_original: form.toml_original,
        save_as: form.save_as,
    };
    let r = render(&view);
    Ok(if failed { with_status(StatusCode::UNPROCESSABLE_ENTITY, r) } else { r })
}

async fn find_upload(state: &AppState, token: &str, l: Lang) -> Result<Upload, PageError> {
    uploads::find(&state.data_dir, token).await.ok_or(PageError(AppError::NotFound, l))
}

/// Samples the upload as the settings say; the message says why it cannot be read.
async fn sample_of(upload: &Upload, settings: &Settings) -> Result<Sample, Msg> {
    let format = uploads::parse_format(&settings.format)?;
    uploads::sample(&upload.path, format, SAMPLE_ROWS).await
}

async fn show(
    State(state): State<AppState>,
    staff: Staff,
    Path(token): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    staff.require(Permission::ReadersImport)?;
    let l = staff.lang;
    let upload = find_upload(&state, &token, l).await?;
    let mut settings = Settings::from_pairs(&pairs);
    let sample = sample_of(&upload, &settings).await;
    let mut error = sample.as_ref().err().map(|m| format!("{}{}", l.pick("无法读取文件：", "The file cannot be read: "), l.msg(m)));
    let saved = match settings.profile.as_str() {
        "" => None,
        name => match state.store.mapping_profile(name).await {
            Ok(p) => Some(p),
            Err(lector_store::StoreError::NotFound) => {
                let m = Msg::new(format!("没有名为“{name}”的映射方案"), format!("there is no mapping profile named '{name}'"));
                error.get_or_insert_with(|| l.msg(&m));
                None
            }
            Err(e) => return Err(PageError(e.into(), l)),
        },
    };
    let profile = match (&saved, &sample) {
        (Some(p), _) => match Profile::from_toml(&p.toml) {
            Ok(profile) => Some(profile),
            Err(m) => {
                error.get_or_insert_with(|| l.msg(&m));
                None
            }
        },
        (None, Ok(s)) if settings.profile.is_empty() => Some(s.profile.clone()),
        (None, _) => None,
    };
    let toml = match (&profile, &saved) {
        (Some(p), _) => p.to_toml(),
        (None, Some(saved)) => saved.toml.clone(),
        (None, None) => String::new(),
    };
    if let Some(options) = profile.as_ref().and_then(profile_options) {
        merge_options(&mut settings.options, options);
    }
    let form = FormState {
        settings,
        chosen: profile.as_ref().map(targets).unwrap_or_default(),
        toml_original: toml.clone(),
        toml,
        save_as: String::new(),
        error,
    };
    page(&state, &staff, upload, sample.as_ref().ok(), form).await
}

/// A profile's options add to those chosen on the upload form.
fn merge_options(into: &mut ImportOptions, from: ImportOptions) {
    into.update_only_present |= from.update_only_present;
    into.deactivate_missing |= from.deactivate_missing;
    into.all_or_nothing |= from.all_or_nothing;
    for f in from.never_overwrite {
        if !into.never_overwrite.contains(&f) {
            into.never_overwrite.push(f);
        }
    }
}

/// The mapping form as posted.
struct Posted {
    settings: Settings,
    /// Column index → target code.
    columns: BTreeMap<usize, String>,
    toml: String,
    toml_original: String,
    save_as: String,
    dry_run: bool,
    csrf: Option<String>,
}

fn parse_posted(pairs: &[(String, String)]) -> Posted {
    let mut p = Posted {
        settings: Settings::from_pairs(pairs),
        columns: BTreeMap::new(),
        toml: String::new(),
        toml_original: String::new(),
        save_as: String::new(),
        dry_run: true,
        csrf: None,
    };
    for (k, v) in pairs {
        if let Some(i) = k.strip_prefix("col.").and_then(|i| i.parse().ok()) {
            p.columns.insert(i, v.clone());
            continue;
        }
        match k.as_str() {
            "toml" => p.toml = v.clone(),
            "toml_original" => p.toml_original = v.clone(),
            "save_as" => p.save_as = v.trim().to_string(),
            "action" => p.dry_run = v != "run",
            "csrf" => p.csrf = Some(v.clone()),
            _ => {}
        }
    }
    p
}

/// The profile TOML to run: the textarea when it was edited, else the selects applied to it.
fn chosen_toml(p: &Posted, headers: &[String]) -> Result<String, Msg> {
    if !same_text(&p.toml, &p.toml_original) {
        return Ok(p.toml.replace("\r\n", "\n"));
    }
    let chosen: Vec<(String, String)> =
        p.columns.iter().filter_map(|(i, t)| headers.get(*i).map(|h| (h.clone(), t.trim().to_string()))).collect();
    with_targets(&p.toml_original, &chosen)
}

/// `POST /imports/uploads/{token}`: checks the mapping against the file and queues a dry run
/// (preview) or the import itself.
async fn submit(
    State(state): State<AppState>,
    staff: Staff,
    Path(token): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    staff.require(Permission::ReadersImport)?;
    let posted = parse_posted(&pairs);
    staff.check_csrf(posted.csrf.as_deref())?;
    let l = staff.lang;
    let upload = find_upload(&state, &token, l).await?;
    let sample = sample_of(&upload, &posted.settings).await;
    let headers = sample.as_ref().map(|s| s.headers.clone()).unwrap_or_default();
    let chosen: BTreeMap<String, String> =
        posted.columns.iter().filter_map(|(i, t)| headers.get(*i).map(|h| (header_key(h), t.clone()))).collect();
    let again = |error: String, toml: String| FormState {
        settings: posted.settings.clone(),
        chosen: chosen.clone(),
        toml,
        toml_original: posted.toml_original.clone(),
        save_as: posted.save_as.clone(),
        error: Some(error),
    };
    let sample = match sample {
        Ok(s) => s,
        Err(m) => {
            let e = format!("{}{}", l.pick("无法读取文件：", "The file cannot be read: "), l.msg(&m));
            return page(&state, &staff, upload, None, again(e, posted.toml.clone())).await;
        }
    };
    let toml = match chosen_toml(&posted, &sample.headers) {
        Ok(t) => t,
        Err(m) => {
            let e = l.msg(&m);
            return page(&state, &staff, upload, Some(&sample), again(e, posted.toml.clone())).await;
        }
    };
    if let Err(m) = uploads::check_profile(&state, &toml, &sample.headers).await.map_err(|e| PageError(e, l))? {
        let e = l.msg(&m);
        return page(&state, &staff, upload, Some(&sample), again(e, toml)).await;
    }
    if posted.settings.source.is_empty() {
        let e = l.msg(&Msg::new("请填写数据源名称（例如“教务处学生名单”）", "name the source (for example \"registrar students\")"));
        return page(&state, &staff, upload, Some(&sample), again(e, toml)).await;
    }
    if !posted.save_as.is_empty() {
        if let Err(e) = state.store.save_mapping_profile(&staff.actor(), &posted.save_as, &toml).await {
            let e = match e {
                lector_store::StoreError::Invalid(f) => f.0.iter().map(|e| l.msg(&e.message)).collect::<Vec<_>>().join("；"),
                lector_store::StoreError::Conflict(m) => l.msg(&m),
                e => return Err(PageError(e.into(), l)),
            };
            return page(&state, &staff, upload, Some(&sample), again(e, toml)).await;
        }
    }
    let new =
        uploads::file_job(&upload, &posted.settings.source, sample.format, Some(toml), posted.settings.options.clone(), posted.dry_run)
            .map_err(|e| PageError(e, l))?;
    let job = state.store.create_import_job(&staff.actor(), &new, JobStatus::Queued).await.map_err(store_err(l))?;
    Ok(see_other(&format!("/imports/{}?flash=queued", job.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_are_not_edits() {
        assert!(same_text("a = 1\r\nb = 2\r\n", "a = 1\nb = 2"));
        assert!(!same_text("a = 1\nb = 3", "a = 1\nb = 2"));
    }

    #[test]
    fn posted_form_is_read() {
        let pairs: Vec<(String, String)> = [
            ("csrf", "t"),
            ("source", "registrar"),
            ("col.0", "card_no"),
            ("col.1", "name"),
            ("col.x", "email"),
            ("toml", "x"),
            ("toml_original", "y"),
            ("action", "run"),
            ("never", "notes"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = parse_posted(&pairs);
        assert_eq!(p.columns.len(), 2);
        assert_eq!(p.columns[&1], "name");
        assert!(!p.dry_run);
        assert_eq!(p.settings.source, "registrar");
        assert_eq!(p.settings.options.never_overwrite, vec![ReaderField::Notes]);
        assert_eq!(p.csrf.as_deref(), Some("t"));
    }

    #[test]
    fn selects_set_targets_and_keep_the_rest() {
        let toml = "[columns.\"类型\"]\nfield = \"ignore\"\nvalues = { \"本科\" = \"undergraduate\" }\n";
        let chosen = [("类型", "category"), ("学号", "card_no"), ("备用", "ignore")].map(|(h, t)| (h.to_string(), t.to_string()));
        let out = with_targets(toml, &chosen).unwrap();
        let t = targets(&Profile::from_toml(&out).unwrap());
        assert_eq!(t.get(&header_key("类型")).map(String::as_str), Some("category"));
        assert_eq!(t.get(&header_key("学号")).map(String::as_str), Some("card_no"));
        assert!(!t.contains_key(&header_key("备用")), "an ignored column the profile did not name stays out: {out}");
        assert!(out.contains("本科"), "value maps are kept: {out}");
    }

    #[test]
    fn the_profile_spelling_of_a_header_is_kept() {
        let out = with_targets("[columns.\"Ｅmail \"]\nfield = \"ignore\"\n", &[("email".to_string(), "email".to_string())]).unwrap();
        let t = targets(&Profile::from_toml(&out).unwrap());
        assert_eq!(t.len(), 1, "{out}");
        assert_eq!(t.get("email").map(String::as_str), Some("email"));
        assert!(with_targets("[columns", &[]).is_err(), "a broken profile is an error");
    }

    #[test]
    fn columns_keep_a_target_they_do_not_list() {
        let choices = vec![("card_no".to_string(), "Card".to_string()), ("ignore".to_string(), "Ignore".to_string())];
        let chosen: BTreeMap<String, String> = [(header_key("姓"), "family_name".to_string())].into();
        let cols = columns(&["学号".to_string(), "姓".to_string()], &chosen, &choices);
        assert!(cols[0].opts.iter().any(|o| o.value == "ignore" && o.selected));
        assert!(cols[1].opts.iter().any(|o| o.value == "family_name" && o.selected));
    }
}
