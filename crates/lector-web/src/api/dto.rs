//! What the API sends and receives, as described in the OpenAPI document.
//!
//! Responses are built from the store's types by mapping them into these structs, so the
//! document describes exactly what is serialised. Request bodies are deserialised straight into
//! the domain's `ReaderDraft` (which refuses unknown fields); [`ReaderDraftBody`] only describes
//! it, and a test checks the two keep the same fields.

use lector_domain::contact::ContactKind;
use lector_domain::reader::{Gender, ReaderStatus};
use lector_store::auth::User;
use lector_store::readers::{CategoryRef, ReaderRecord, ReaderSummary};
use lector_store::Page;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Every error: a stable code, a message in English and Chinese, and for `invalid_input` the
/// fields to correct.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of `unauthorized`, `forbidden`, `not_found`, `conflict`, `invalid_input`,
    /// `bad_request`, `unsupported_media_type`, `payload_too_large`, `too_many_attempts`,
    /// `internal`.
    #[schema(example = "invalid_input")]
    pub code: String,
    #[schema(example = "1 field(s) need correcting")]
    pub message: String,
    #[schema(example = "有 1 处输入需要修改")]
    pub message_zh: String,
    /// The problems of an `invalid_input` error, each naming its field (`birth_date`,
    /// `contacts[1].value`, or a query parameter such as `status`). Empty otherwise.
    pub fields: Vec<FieldErrorBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    #[schema(example = "contacts[0].value")]
    pub field: String,
    pub message: String,
    pub message_zh: String,
}

/// Gender code.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GenderCode {
    Male,
    Female,
    Unknown,
}

impl From<Gender> for GenderCode {
    fn from(g: Gender) -> Self {
        match g {
            Gender::Male => GenderCode::Male,
            Gender::Female => GenderCode::Female,
            Gender::Unknown => GenderCode::Unknown,
        }
    }
}

/// Card status code.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReaderStatusCode {
    Active,
    Expired,
    Suspended,
    Deactivated,
}

impl From<ReaderStatus> for ReaderStatusCode {
    fn from(s: ReaderStatus) -> Self {
        match s {
            ReaderStatus::Active => ReaderStatusCode::Active,
            ReaderStatus::Expired => ReaderStatusCode::Expired,
            ReaderStatus::Suspended => ReaderStatusCode::Suspended,
            ReaderStatus::Deactivated => ReaderStatusCode::Deactivated,
        }
    }
}

/// Contact point kind.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContactKindCode {
    Email,
    Mobile,
    Phone,
    Qq,
    Wechat,
    Address,
}

impl From<ContactKind> for ContactKindCode {
    fn from(k: ContactKind) -> Self {
        match k {
            ContactKind::Email => ContactKindCode::Email,
            ContactKind::Mobile => ContactKindCode::Mobile,
            ContactKind::Phone => ContactKindCode::Phone,
            ContactKind::Qq => ContactKindCode::Qq,
            ContactKind::Wechat => ContactKindCode::Wechat,
            ContactKind::Address => ContactKindCode::Address,
        }
    }
}

/// A reader category (读者类型).
#[derive(Debug, Serialize, ToSchema)]
pub struct Category {
    #[schema(example = "undergraduate")]
    pub code: String,
    #[schema(example = "本科生")]
    pub name_zh: String,
    #[schema(example = "Undergraduate")]
    pub name_en: String,
}

impl From<CategoryRef> for Category {
    fn from(c: CategoryRef) -> Self {
        Category { code: c.code, name_zh: c.name_zh, name_en: c.name_en }
    }
}

/// A contact point (联系方式). `value` is masked (`z***@pku.edu.cn`, `138****8000`) for users
/// without the contacts permission.
#[derive(Debug, Serialize, ToSchema)]
pub struct Contact {
    pub kind: ContactKindCode,
    #[schema(example = "zxm@pku.edu.cn")]
    pub value: String,
    pub primary: bool,
    pub verified: bool,
}

/// A related contact (联系人); `phone` and `email` are masked like contact points.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelatedContact {
    pub name: String,
    #[schema(example = "导师")]
    pub relation: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// A whole reader record.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reader {
    pub id: i64,
    #[schema(example = "2024010101")]
    pub card_no: String,
    #[schema(example = "张晓明")]
    pub name: String,
    #[schema(example = "zhangxiaoming")]
    pub pinyin: String,
    #[schema(example = "zxm")]
    pub initials: String,
    pub gender: GenderCode,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    pub category: Category,
    pub affiliation: Option<String>,
    pub status: ReaderStatusCode,
    pub enrolled_on: Option<String>,
    pub expires_on: Option<String>,
    pub contacts: Vec<Contact>,
    pub related: Vec<RelatedContact>,
    pub tags: Vec<String>,
    /// Custom attributes by code; each holds one or more values.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// User name of the staff member responsible for the reader.
    pub owner: Option<String>,
    pub notes: Option<String>,
    /// Incremented by every update; send it back with `PUT` (or `DELETE ?version=`).
    pub version: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
    /// True when contact values were masked because the caller may not see contact details.
    pub contacts_masked: bool,
}

impl Reader {
    /// Maps a record, masking contact details unless `show_contacts`.
    pub fn from_record(r: ReaderRecord, show_contacts: bool) -> Self {
        let contacts = r
            .contacts
            .into_iter()
            .map(|c| Contact {
                value: if show_contacts { c.value } else { crate::mask::mask(c.kind, &c.value) },
                kind: c.kind.into(),
                primary: c.primary,
                verified: c.verified,
            })
            .collect();
        let related = r
            .related
            .into_iter()
            .map(|x| RelatedContact {
                name: x.name,
                relation: x.relation,
                phone: if show_contacts { x.phone } else { x.phone.as_deref().map(crate::mask::mask_number) },
                email: if show_contacts { x.email } else { x.email.as_deref().map(crate::mask::mask_email) },
            })
            .collect();
        Reader {
            id: r.id,
            card_no: r.card_no,
            name: r.name,
            pinyin: r.pinyin,
            initials: r.initials,
            gender: r.gender.into(),
            birth_date: r.birth_date,
            category: r.category.into(),
            affiliation: r.affiliation,
            status: r.status.into(),
            enrolled_on: r.enrolled_on,
            expires_on: r.expires_on,
            contacts,
            related,
            tags: r.tags,
            attributes: r.attributes,
            owner: r.owner,
            notes: r.notes,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            contacts_masked: !show_contacts,
        }
    }
}

/// Whether a record holds any contact detail that masking would hide.
pub fn has_contact_details(r: &ReaderRecord) -> bool {
    !r.contacts.is_empty() || r.related.iter().any(|x| x.phone.is_some() || x.email.is_some())
}

/// One row of a reader list (no contact details).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReaderSummaryBody {
    pub id: i64,
    pub card_no: String,
    pub name: String,
    pub pinyin: String,
    pub gender: GenderCode,
    pub category: Category,
    pub affiliation: Option<String>,
    pub status: ReaderStatusCode,
    pub owner: Option<String>,
    pub updated_at: String,
}

impl From<ReaderSummary> for ReaderSummaryBody {
    fn from(s: ReaderSummary) -> Self {
        ReaderSummaryBody {
            id: s.id,
            card_no: s.card_no,
            name: s.name,
            pinyin: s.pinyin,
            gender: s.gender.into(),
            category: s.category.into(),
            affiliation: s.affiliation,
            status: s.status.into(),
            owner: s.owner,
            updated_at: s.updated_at,
        }
    }
}

/// A page of readers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReaderPage {
    pub items: Vec<ReaderSummaryBody>,
    /// Matches counted (at most 10 000).
    pub total: i64,
    /// True when `total` is a lower bound: the search matched more than the store counts.
    pub total_capped: bool,
    pub page: i64,
    pub per_page: i64,
}

impl From<Page<ReaderSummary>> for ReaderPage {
    fn from(p: Page<ReaderSummary>) -> Self {
        ReaderPage {
            items: p.items.into_iter().map(Into::into).collect(),
            total: p.total,
            total_capped: p.total_capped,
            page: p.page,
            per_page: p.per_page,
        }
    }
}

/// The user a token belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    #[schema(example = "wangfang")]
    pub username: String,
    #[schema(example = "王芳")]
    pub display_name: String,
    /// `admin`, `leader`, `department`, `librarian` or `analyst`.
    #[schema(example = "librarian")]
    pub role: String,
    /// The library department of a `department` user.
    pub department: Option<String>,
}

impl From<User> for Me {
    fn from(u: User) -> Self {
        Me { username: u.username, display_name: u.display_name, role: u.role.code().to_string(), department: u.department_code }
    }
}

// ---- request bodies (documentation only; the API deserialises `ReaderDraft`) ----

/// A contact point as entered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactDraftBody {
    /// `email`, `mobile`, `phone`, `qq`, `wechat` or `address`.
    #[schema(example = "mobile")]
    pub kind: String,
    #[schema(example = "13800138000")]
    pub value: String,
    #[serde(default)]
    pub primary: bool,
    #[serde(default)]
    pub verified: bool,
}

/// A related contact as entered.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelatedDraftBody {
    pub name: String,
    pub relation: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// A custom attribute value: a string, a number or a list of strings.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AttrValue {
    One(String),
    Number(f64),
    Many(Vec<String>),
}

/// A reader as entered. Unknown fields are refused (400); every field's value is checked and
/// all problems are reported at once (422, each naming its field).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReaderDraftBody {
    /// 1 to 32 letters, digits, `-` or `_`; upper-cased.
    #[schema(example = "2024010101")]
    pub card_no: String,
    #[schema(example = "张晓明")]
    pub name: String,
    /// `male`, `female`, `unknown` (or 男 / 女).
    pub gender: Option<String>,
    /// A date: `2024-09-01`, `2024/9/1`, `20240901`, `2024年9月1日`.
    pub birth_date: Option<String>,
    /// A category code, e.g. `undergraduate`.
    #[schema(example = "undergraduate")]
    pub category: String,
    pub affiliation: Option<String>,
    /// `active` (default), `expired`, `suspended`, `deactivated`.
    pub status: Option<String>,
    pub enrolled_on: Option<String>,
    pub expires_on: Option<String>,
    #[serde(default)]
    pub contacts: Vec<ContactDraftBody>,
    #[serde(default)]
    pub related: Vec<RelatedDraftBody>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, AttrValue>,
    /// User name of the responsible staff member.
    pub owner: Option<String>,
    pub notes: Option<String>,
}

/// The body of `PUT /api/v1/readers/{id}`: the version the edit is based on, and the whole
/// record as in `POST`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReaderUpdateBody {
    /// The `version` of the record as last read. Required unless an `If-Match` header carries
    /// it; a stale version is refused with 409 and nothing is written.
    pub version: Option<i64>,
    #[serde(flatten)]
    pub draft: ReaderDraftBody,
}

// ---- reader tracking ----

/// One contact between staff and a reader (联系记录).
#[derive(Debug, Serialize, ToSchema)]
pub struct Interaction {
    pub id: i64,
    pub reader_id: i64,
    pub reader_card_no: String,
    pub reader_name: String,
    /// `visit`, `phone`, `email`, `qq`, `wechat`, `chat`, `consultation`, `training` or `event`.
    #[schema(example = "phone")]
    pub channel: String,
    /// `inbound` (from the reader) or `outbound` (from the library).
    #[schema(example = "inbound")]
    pub direction: String,
    pub subject: String,
    pub notes: Option<String>,
    /// The library's local time of the contact, `YYYY-MM-DD HH:MM`.
    #[schema(example = "2026-11-28 14:30")]
    pub occurred_at: String,
    /// User name of the staff member who recorded it.
    pub staff: String,
    pub staff_name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl From<lector_store::tracking::Interaction> for Interaction {
    fn from(i: lector_store::tracking::Interaction) -> Self {
        Interaction {
            id: i.id,
            reader_id: i.reader_id,
            reader_card_no: i.reader_card_no,
            reader_name: i.reader_name,
            channel: i.channel.code().into(),
            direction: i.direction.code().into(),
            subject: i.subject,
            notes: i.notes,
            occurred_at: i.occurred_at,
            staff: i.staff,
            staff_name: i.staff_name,
            created_at: i.created_at,
        }
    }
}

/// A page of interactions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct InteractionPage {
    pub items: Vec<Interaction>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

impl From<Page<lector_store::tracking::Interaction>> for InteractionPage {
    fn from(p: Page<lector_store::tracking::Interaction>) -> Self {
        InteractionPage { items: p.items.into_iter().map(Into::into).collect(), total: p.total, page: p.page, per_page: p.per_page }
    }
}

/// A follow-up task (跟进任务), optionally about one reader.
#[derive(Debug, Serialize, ToSchema)]
pub struct Task {
    pub id: i64,
    pub reader_id: Option<i64>,
    pub reader_card_no: Option<String>,
    pub reader_name: Option<String>,
    pub title: String,
    pub notes: Option<String>,
    /// `YYYY-MM-DD`.
    #[schema(example = "2026-12-01")]
    pub due_on: String,
    /// User name of the staff member who should do it.
    pub assignee: String,
    pub assignee_name: String,
    /// User name of who created it.
    pub created_by: String,
    /// `open`, `done` or `cancelled`.
    #[schema(example = "open")]
    pub status: String,
    pub done_at: Option<String>,
    pub created_at: String,
    /// Incremented by every change; send it back to change the status.
    pub version: i64,
}

impl From<lector_store::tracking::Task> for Task {
    fn from(t: lector_store::tracking::Task) -> Self {
        Task {
            id: t.id,
            reader_id: t.reader_id,
            reader_card_no: t.reader_card_no,
            reader_name: t.reader_name,
            title: t.title,
            notes: t.notes,
            due_on: t.due_on,
            assignee: t.assignee,
            assignee_name: t.assignee_name,
            created_by: t.created_by,
            status: t.status.code().into(),
            done_at: t.done_at,
            created_at: t.created_at,
            version: t.version,
        }
    }
}

/// A page of tasks, earliest due first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    pub items: Vec<Task>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

impl From<Page<lector_store::tracking::Task>> for TaskPage {
    fn from(p: Page<lector_store::tracking::Task>) -> Self {
        TaskPage { items: p.items.into_iter().map(Into::into).collect(), total: p.total, page: p.page, per_page: p.per_page }
    }
}

/// One change of a reader's owner (业务负责人).
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerChange {
    pub id: i64,
    pub reader_id: i64,
    pub from_owner: Option<String>,
    pub to_owner: Option<String>,
    pub reason: String,
    /// User name of who handed the reader over.
    pub by: String,
    /// RFC 3339, UTC.
    pub at: String,
}

impl From<lector_store::tracking::OwnerChange> for OwnerChange {
    fn from(c: lector_store::tracking::OwnerChange) -> Self {
        OwnerChange {
            id: c.id,
            reader_id: c.reader_id,
            from_owner: c.from_owner,
            to_owner: c.to_owner,
            reason: c.reason,
            by: c.by,
            at: c.at,
        }
    }
}

/// An interaction as entered. Unknown fields are refused (400).
#[derive(Debug, Serialize, ToSchema)]
pub struct InteractionDraftBody {
    /// A channel code (`phone`) or its label (电话).
    #[schema(example = "phone")]
    pub channel: String,
    /// `inbound` (default) or `outbound`.
    pub direction: Option<String>,
    /// 1 to 200 characters.
    #[schema(example = "咨询馆际互借")]
    pub subject: String,
    pub notes: Option<String>,
    /// Local time, `2026-11-28 14:30` or `2026-11-28T14:30`; now when absent; not in the future.
    pub occurred_at: Option<String>,
}

/// A follow-up task as entered. Unknown fields are refused (400).
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDraftBody {
    #[schema(example = "回电确认荐购结果")]
    pub title: String,
    pub notes: Option<String>,
    /// A date, today or later.
    #[schema(example = "2026-12-01")]
    pub due_on: String,
    /// User name of an active staff member.
    #[schema(example = "librarian")]
    pub assignee: String,
    /// The reader the task is about, if any.
    pub reader_id: Option<i64>,
}

/// A task status change: open → done or cancelled, done or cancelled → open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskStatusBody {
    /// `open`, `done` or `cancelled`.
    #[schema(example = "done")]
    pub status: String,
    /// The task's `version` as last read; a stale one is refused with 409.
    pub version: i64,
}

/// Hands readers over to a new owner in one transaction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverBody {
    pub reader_ids: Vec<i64>,
    /// User name of the new owner; `null` leaves the readers without an owner.
    pub owner: Option<String>,
    /// Why (required, up to 500 characters); kept in each reader's owner history.
    pub reason: String,
}

/// The outcome of a hand-over.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandoverResult {
    /// How many readers changed owner (readers that already had that owner are skipped).
    pub changed: usize,
}

// ---- masking ----
