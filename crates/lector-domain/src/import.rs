//! Importing readers: the fields a source can fill, what an import may and may not overwrite,
//! and how a rejected row is reported (row, column, value, reason).

use crate::contact::ContactKind;
use crate::reader::ReaderInput;
use crate::{text, Msg};
use serde::{Deserialize, Serialize};

code_enum!(
    /// A reader field an import can set. Contact kinds are fields of their own so a source can
    /// own "the email" without owning the mobile.
    ReaderField {
        CardNo = "card_no", "读者证号", "Card number";
        Name = "name", "姓名", "Name";
        Gender = "gender", "性别", "Gender";
        BirthDate = "birth_date", "出生日期", "Birth date";
        Category = "category", "读者类型", "Category";
        Affiliation = "affiliation", "单位/院系", "Affiliation";
        Status = "status", "状态", "Status";
        EnrolledOn = "enrolled_on", "办证日期", "Enrolled on";
        ExpiresOn = "expires_on", "有效期至", "Expires on";
        Email = "email", "电子邮件", "Email";
        Mobile = "mobile", "手机", "Mobile";
        Phone = "phone", "电话", "Phone";
        Qq = "qq", "QQ", "QQ";
        Wechat = "wechat", "微信", "WeChat";
        Tags = "tags", "标签", "Tags";
        Owner = "owner", "业务负责人", "Owner";
        Notes = "notes", "备注", "Notes";
    } "读者字段", "reader field"
);

impl ReaderField {
    /// The contact kind this field stands for, if it is one.
    pub fn contact_kind(self) -> Option<ContactKind> {
        match self {
            ReaderField::Email => Some(ContactKind::Email),
            ReaderField::Mobile => Some(ContactKind::Mobile),
            ReaderField::Phone => Some(ContactKind::Phone),
            ReaderField::Qq => Some(ContactKind::Qq),
            ReaderField::Wechat => Some(ContactKind::Wechat),
            _ => None,
        }
    }
}

/// Where a source column goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A reader field.
    Field(ReaderField),
    /// A custom attribute, by its code.
    Attribute(String),
    /// The record's id in its source system: re-imports find the reader by (source, id).
    ExternalId,
    /// Read but not stored.
    Ignore,
}

impl Target {
    /// Parses `card_no`, `attr.CODE` / `attribute:CODE`, `external_id`, `ignore`.
    pub fn parse(raw: &str) -> Result<Self, Msg> {
        let v = text::clean(raw);
        let lower = v.to_lowercase();
        if let Some(code) = lower.strip_prefix("attr.").or_else(|| lower.strip_prefix("attribute:")) {
            return Ok(Target::Attribute(code.to_string()));
        }
        match lower.as_str() {
            "external_id" => Ok(Target::ExternalId),
            "ignore" | "" => Ok(Target::Ignore),
            _ => ReaderField::parse(&v).map(Target::Field),
        }
    }

    /// The text `parse` reads back.
    pub fn code(&self) -> String {
        match self {
            Target::Field(f) => f.code().to_string(),
            Target::Attribute(c) => format!("attr.{c}"),
            Target::ExternalId => "external_id".into(),
            Target::Ignore => "ignore".into(),
        }
    }
}

/// What an import does to readers that already exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportOptions {
    /// Blank cells leave the stored value as it is (otherwise a mapped blank clears it).
    pub update_only_present: bool,
    /// Fields an import sets when it creates a reader but never changes afterwards.
    pub never_overwrite: Vec<ReaderField>,
    /// Readers this source brought in earlier that are missing from this run are deactivated.
    pub deactivate_missing: bool,
    /// Any rejected row stops the whole job (nothing is written); otherwise the valid rows go in.
    pub all_or_nothing: bool,
}

code_enum!(
    /// Where an import job stands.
    JobStatus {
        Queued = "queued", "排队中", "Queued";
        Running = "running", "进行中", "Running";
        Succeeded = "succeeded", "已完成", "Succeeded";
        Failed = "failed", "失败", "Failed";
        Undone = "undone", "已撤销", "Undone";
    } "任务状态", "job status"
);

/// What a job did, or (dry run) would do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    /// Rows read from the source.
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows new to this source that joined a reader already in the store (same card number).
    pub merged: u64,
    pub rejected: u64,
    /// Readers deactivated because this source no longer lists them.
    pub deactivated: u64,
}

/// A row that could not be imported, reported so the user can fix the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// 1-based row number in the source as a user counts it (the header is row 1 in a file
    /// with a header; the n-th object in JSON).
    pub row: u64,
    /// The source column (header text), or empty when the problem is the whole row.
    pub column: String,
    /// The offending value, shortened to 200 characters.
    pub value: String,
    pub reason: Msg,
}

impl Rejection {
    pub fn new(row: u64, column: impl Into<String>, value: &str, reason: Msg) -> Self {
        let mut short: String = value.chars().take(200).collect();
        if short.len() < value.len() {
            short.push('…');
        }
        Self { row, column: column.into(), value: short, reason }
    }
}

/// A row that passed validation, ready for the store to create, update or leave alone.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingReader {
    pub row: u64,
    /// The record's id in its source; the card number when the source has no id column.
    pub external_id: String,
    pub input: ReaderInput,
    /// Fields the source maps (a column or a default feeds them), whether or not the cell was blank.
    pub mapped: Vec<ReaderField>,
    /// Mapped fields whose value in this row was not blank.
    pub present: Vec<ReaderField>,
    /// Custom attribute codes the source maps.
    pub mapped_attributes: Vec<String>,
}
