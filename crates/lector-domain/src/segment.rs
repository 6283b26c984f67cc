//! Segment filters (读者分组条件): a saved condition over readers, parsed once into a tree that
//! can only hold valid conditions.
//!
//! The JSON form (stored in `segments.filter_json`, sent by the API and written by the page's
//! builder) nests `all` (AND) and `any` (OR) groups of conditions:
//!
//! ```json
//! {"all": [
//!   {"field": "category", "op": "in", "value": ["undergraduate", "graduate"]},
//!   {"any": [{"field": "tag", "op": "eq", "value": "志愿者"},
//!            {"field": "attr.college", "op": "starts_with", "value": "计算机"}]}
//! ]}
//! ```
//!
//! A failed parse names every problem by its path (`all[1].any[0].value`) in both languages.

use crate::attribute::{AttrDef, AttrKind};
use crate::contact::ContactKind;
use crate::messaging::{ChannelKind, Purpose};
use crate::reader::{parse_date, Gender, ReaderStatus};
use crate::{text, FieldErrors, Msg};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Groups nest at most this deep (the outermost group is level 1).
pub const MAX_DEPTH: usize = 8;
/// A filter holds at most this many conditions in all.
pub const MAX_CONDITIONS: usize = 100;
/// A list value (`in`, `not_in`) holds at most this many items.
pub const MAX_LIST: usize = 200;
/// A text value has at most this many characters.
pub const MAX_TEXT: usize = 200;
/// `within_last_days` / `within_next_days` look at most this far (100 years).
pub const MAX_DAYS: u32 = 36_500;

code_enum!(
    /// A comparison. Which ones a field takes depends on its [`FieldKind`].
    Op {
        Eq = "eq", "等于", "equals";
        Ne = "ne", "不等于", "does not equal";
        In = "in", "属于其中之一", "is one of";
        NotIn = "not_in", "不属于其中任何一个", "is none of";
        Contains = "contains", "包含", "contains";
        StartsWith = "starts_with", "开头是", "starts with";
        IsEmpty = "is_empty", "为空", "is empty";
        NotEmpty = "not_empty", "不为空", "is not empty";
        Before = "before", "早于", "before";
        After = "after", "晚于", "after";
        Between = "between", "介于（含两端）", "between (inclusive)";
        WithinLastDays = "within_last_days", "最近 N 天内", "within the last N days";
        WithinNextDays = "within_next_days", "未来 N 天内", "within the next N days";
    } "比较方式", "operator"
);

/// What a field holds, which decides its operators and the shape of their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    Date,
    Enum,
}

impl FieldKind {
    /// The operators of this kind. Enum fields that may be unset (owner, a choice attribute)
    /// also take `is_empty` / `not_empty` (see [`Field::ops`]).
    fn ops(self) -> &'static [Op] {
        use Op::*;
        match self {
            FieldKind::Text => &[Eq, Ne, In, NotIn, Contains, StartsWith, IsEmpty, NotEmpty],
            FieldKind::Date => &[Before, After, Between, WithinLastDays, WithinNextDays, IsEmpty, NotEmpty],
            FieldKind::Enum => &[Eq, Ne, In, NotIn],
        }
    }
}

/// A reader field a condition looks at.
///
/// Extending it: the warehouse's activity measures ("no loan in N days", "visits last month")
/// become new variants here (say `Activity(Measure)`, code `activity.loans`), with their own
/// [`FieldKind`] (a count over a period) and test type in [`Condition`]. The JSON shape
/// (`field`/`op`/`value`) and every filter saved before stay valid, and the store's compiler,
/// which matches exhaustively on [`Condition`], will not build until the new variant is compiled
/// to SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    CardNo,
    Name,
    Gender,
    Category,
    Affiliation,
    Status,
    /// The responsible staff member, by user name.
    Owner,
    Tag,
    /// A custom attribute (`attr.CODE`), typed by its definition.
    Attr {
        code: String,
        kind: AttrKind,
    },
    /// When the record was created (a stored UTC time; compared by local calendar day).
    CreatedAt,
    EnrolledOn,
    ExpiresOn,
    BirthDate,
    /// The language the reader is written to in (`zh` when unset).
    Lang,
    /// Has a contact point of the kinds named in the value.
    HasContact,
    /// Consents to `purpose` on the channel kinds named in the value; readers without an answer
    /// count as [`Purpose::granted_by_default`].
    Consent(Purpose),
}

/// The plain fields by code, in the order the builder offers them.
const PLAIN_FIELDS: &[(&str, &str, &str)] = &[
    ("card_no", "读者证号", "Card number"),
    ("name", "姓名", "Name"),
    ("gender", "性别", "Gender"),
    ("category", "读者类型", "Category"),
    ("affiliation", "单位/院系", "Affiliation"),
    ("status", "读者状态", "Status"),
    ("owner", "业务负责人", "Owner"),
    ("tag", "标签", "Tag"),
    ("created_at", "建档时间", "Created"),
    ("enrolled_on", "办证日期", "Enrolled on"),
    ("expires_on", "有效期至", "Expires on"),
    ("birth_date", "出生日期", "Birth date"),
    ("lang", "消息语言", "Message language"),
    ("has_contact", "有联系方式", "Has contact point"),
];

/// The languages a reader may be written to in.
pub const LANGS: &[(&str, &str, &str)] = &[("zh", "中文", "Chinese"), ("en", "英文", "English")];

impl Field {
    /// The code used in JSON.
    pub fn code(&self) -> String {
        let plain = match self {
            Field::CardNo => "card_no",
            Field::Name => "name",
            Field::Gender => "gender",
            Field::Category => "category",
            Field::Affiliation => "affiliation",
            Field::Status => "status",
            Field::Owner => "owner",
            Field::Tag => "tag",
            Field::CreatedAt => "created_at",
            Field::EnrolledOn => "enrolled_on",
            Field::ExpiresOn => "expires_on",
            Field::BirthDate => "birth_date",
            Field::Lang => "lang",
            Field::HasContact => "has_contact",
            Field::Attr { code, .. } => return format!("attr.{code}"),
            Field::Consent(p) => return format!("consent.{}", p.code()),
        };
        plain.to_string()
    }

    pub fn kind(&self) -> FieldKind {
        match self {
            Field::CardNo | Field::Name | Field::Affiliation | Field::Tag => FieldKind::Text,
            Field::CreatedAt | Field::EnrolledOn | Field::ExpiresOn | Field::BirthDate => FieldKind::Date,
            Field::Gender | Field::Category | Field::Status | Field::Owner | Field::Lang | Field::HasContact | Field::Consent(_) => {
                FieldKind::Enum
            }
            Field::Attr { kind: AttrKind::Date, .. } => FieldKind::Date,
            Field::Attr { kind: AttrKind::Choice, .. } => FieldKind::Enum,
            Field::Attr { kind: AttrKind::Text | AttrKind::Number, .. } => FieldKind::Text,
        }
    }

    /// The operators this field takes.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = self.kind().ops().to_vec();
        if matches!(self, Field::Owner | Field::Attr { kind: AttrKind::Choice, .. }) {
            ops.extend([Op::IsEmpty, Op::NotEmpty]);
        }
        ops
    }

    /// Looks a field up by its JSON code.
    pub fn parse(code: &str, vocab: &Vocabulary) -> Result<Field, Msg> {
        let field = match code {
            "card_no" => Field::CardNo,
            "name" => Field::Name,
            "gender" => Field::Gender,
            "category" => Field::Category,
            "affiliation" => Field::Affiliation,
            "status" => Field::Status,
            "owner" => Field::Owner,
            "tag" => Field::Tag,
            "created_at" => Field::CreatedAt,
            "enrolled_on" => Field::EnrolledOn,
            "expires_on" => Field::ExpiresOn,
            "birth_date" => Field::BirthDate,
            "lang" => Field::Lang,
            "has_contact" => Field::HasContact,
            other => {
                if let Some(attr) = other.strip_prefix("attr.") {
                    let def = vocab
                        .attributes
                        .iter()
                        .find(|d| d.code == attr)
                        .ok_or_else(|| Msg::new(format!("没有自定义属性“{attr}”"), format!("there is no custom attribute '{attr}'")))?;
                    Field::Attr { code: def.code.clone(), kind: def.kind }
                } else if let Some(purpose) = other.strip_prefix("consent.") {
                    Field::Consent(Purpose::parse(purpose).map_err(|_| {
                        Msg::new(
                            format!("没有消息用途“{purpose}”，可选：consent.service、consent.news、consent.survey"),
                            format!("no purpose '{purpose}'; use consent.service, consent.news or consent.survey"),
                        )
                    })?)
                } else {
                    let codes: Vec<&str> = PLAIN_FIELDS.iter().map(|f| f.0).collect();
                    return Err(Msg::new(
                        format!("未知字段“{other}”，可选：{}、attr.属性代码、consent.用途", codes.join("、")),
                        format!("unknown field '{other}'; use {}, attr.CODE or consent.PURPOSE", codes.join(", ")),
                    ));
                }
            }
        };
        Ok(field)
    }

    /// The values an enum field accepts: (code, label).
    pub fn options(&self, vocab: &Vocabulary) -> Vec<(String, Msg)> {
        match self {
            Field::Gender => Gender::ALL.iter().map(|g| (g.code().to_string(), g.label())).collect(),
            Field::Status => ReaderStatus::ALL.iter().map(|s| (s.code().to_string(), s.label())).collect(),
            Field::Category => vocab.categories.clone(),
            Field::Owner => vocab.owners.iter().map(|(u, d)| (u.clone(), Msg::new(format!("{d}（{u}）"), format!("{d} ({u})")))).collect(),
            Field::Lang => LANGS.iter().map(|(c, zh, en)| (c.to_string(), Msg::new(*zh, *en))).collect(),
            Field::HasContact => ContactKind::ALL.iter().map(|k| (k.code().to_string(), k.label())).collect(),
            Field::Consent(_) => ChannelKind::ALL.iter().map(|k| (k.code().to_string(), k.label())).collect(),
            Field::Attr { code, kind: AttrKind::Choice } => vocab
                .attributes
                .iter()
                .find(|d| &d.code == code)
                .map(|d| d.choices.iter().map(|c| (c.clone(), Msg::new(c.clone(), c.clone()))).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Parses one enum value to its stored code (labels are accepted where the type has them).
    fn parse_option(&self, raw: &str, vocab: &Vocabulary) -> Result<String, Msg> {
        let v = text::clean(raw);
        let invalid = |options: Vec<(String, Msg)>| {
            let codes: Vec<String> = options.into_iter().map(|o| o.0).collect();
            Msg::new(
                format!("“{v}”不是“{}”的有效取值，可选：{}", self.code(), codes.join("、")),
                format!("'{v}' is not a valid value of '{}'; use one of {}", self.code(), codes.join(", ")),
            )
        };
        match self {
            Field::Gender => Gender::parse(&v).map(|g| g.code().to_string()),
            Field::Status => ReaderStatus::parse(&v).map(|s| s.code().to_string()),
            Field::HasContact => ContactKind::parse(&v.to_lowercase()).map(|k| k.code().to_string()),
            Field::Consent(_) => ChannelKind::parse(&v).map(|k| k.code().to_string()),
            Field::Owner => {
                let lower = v.to_lowercase();
                vocab
                    .owners
                    .iter()
                    .find(|(u, _)| *u == lower)
                    .map(|(u, _)| u.clone())
                    .ok_or_else(|| Msg::new(format!("没有馆员账号“{v}”"), format!("there is no staff account '{v}'")))
            }
            _ => {
                let options = self.options(vocab);
                match options.iter().find(|(code, _)| *code == v) {
                    Some((code, _)) => Ok(code.clone()),
                    None => Err(invalid(options)),
                }
            }
        }
    }
}

/// What the configured world offers a filter: categories, staff and custom attributes. Filters
/// are parsed against it, so a filter can only name things that exist.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Category codes with their labels.
    pub categories: Vec<(String, Msg)>,
    /// Staff user names with display names.
    pub owners: Vec<(String, String)>,
    pub attributes: Vec<AttrDef>,
}

/// A test on a text field. Multi-valued fields (tags, repeatable attributes) match when any of
/// their values does; `ne` / `not_in` / `is_empty` then mean "no value does".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextTest {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    /// Case-insensitive.
    Contains(String),
    /// Case-insensitive.
    StartsWith(String),
    IsEmpty,
    NotEmpty,
}

/// A test on a date field; `Between` includes both ends. The `Within…` tests are relative to
/// the day the filter runs, so a saved segment moves with time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateTest {
    Before(NaiveDate),
    After(NaiveDate),
    Between(NaiveDate, NaiveDate),
    WithinLastDays(u32),
    WithinNextDays(u32),
    IsEmpty,
    NotEmpty,
}

/// A test on an enum field; values are stored codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnumTest {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    IsEmpty,
    NotEmpty,
}

/// One condition: a field and a test of its kind. Built only by [`Filter::parse`], so a field
/// always carries a test that fits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Text(Field, TextTest),
    Date(Field, DateTest),
    Enum(Field, EnumTest),
}

impl Condition {
    pub fn field(&self) -> &Field {
        match self {
            Condition::Text(f, _) | Condition::Date(f, _) | Condition::Enum(f, _) => f,
        }
    }

    fn op(&self) -> Op {
        match self {
            Condition::Text(_, t) => match t {
                TextTest::Eq(_) => Op::Eq,
                TextTest::Ne(_) => Op::Ne,
                TextTest::In(_) => Op::In,
                TextTest::NotIn(_) => Op::NotIn,
                TextTest::Contains(_) => Op::Contains,
                TextTest::StartsWith(_) => Op::StartsWith,
                TextTest::IsEmpty => Op::IsEmpty,
                TextTest::NotEmpty => Op::NotEmpty,
            },
            Condition::Date(_, t) => match t {
                DateTest::Before(_) => Op::Before,
                DateTest::After(_) => Op::After,
                DateTest::Between(..) => Op::Between,
                DateTest::WithinLastDays(_) => Op::WithinLastDays,
                DateTest::WithinNextDays(_) => Op::WithinNextDays,
                DateTest::IsEmpty => Op::IsEmpty,
                DateTest::NotEmpty => Op::NotEmpty,
            },
            Condition::Enum(_, t) => match t {
                EnumTest::Eq(_) => Op::Eq,
                EnumTest::Ne(_) => Op::Ne,
                EnumTest::In(_) => Op::In,
                EnumTest::NotIn(_) => Op::NotIn,
                EnumTest::IsEmpty => Op::IsEmpty,
                EnumTest::NotEmpty => Op::NotEmpty,
            },
        }
    }

    fn value(&self) -> Option<Value> {
        let list = |v: &[String]| Some(json!(v));
        match self {
            Condition::Text(_, t) => match t {
                TextTest::Eq(v) | TextTest::Ne(v) | TextTest::Contains(v) | TextTest::StartsWith(v) => Some(json!(v)),
                TextTest::In(v) | TextTest::NotIn(v) => list(v),
                TextTest::IsEmpty | TextTest::NotEmpty => None,
            },
            Condition::Date(_, t) => match t {
                DateTest::Before(d) | DateTest::After(d) => Some(json!(d.to_string())),
                DateTest::Between(a, b) => Some(json!([a.to_string(), b.to_string()])),
                DateTest::WithinLastDays(n) | DateTest::WithinNextDays(n) => Some(json!(n)),
                DateTest::IsEmpty | DateTest::NotEmpty => None,
            },
            Condition::Enum(_, t) => match t {
                EnumTest::Eq(v) | EnumTest::Ne(v) => Some(json!(v)),
                EnumTest::In(v) | EnumTest::NotIn(v) => list(v),
                EnumTest::IsEmpty | EnumTest::NotEmpty => None,
            },
        }
    }
}

/// A node of the filter tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Every child holds (AND). Never empty.
    All(Vec<Node>),
    /// At least one child holds (OR). Never empty.
    Any(Vec<Node>),
    Cond(Condition),
}

impl Node {
    fn to_json(&self) -> Value {
        match self {
            Node::All(children) => json!({ "all": children.iter().map(Node::to_json).collect::<Vec<_>>() }),
            Node::Any(children) => json!({ "any": children.iter().map(Node::to_json).collect::<Vec<_>>() }),
            Node::Cond(c) => {
                let mut m = Map::new();
                m.insert("field".into(), json!(c.field().code()));
                m.insert("op".into(), json!(c.op().code()));
                if let Some(v) = c.value() {
                    m.insert("value".into(), v);
                }
                Value::Object(m)
            }
        }
    }
}

/// A whole, valid segment filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    root: Node,
}

impl Filter {
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// The canonical JSON form (codes instead of labels, ISO dates), as stored.
    pub fn to_json(&self) -> Value {
        self.root.to_json()
    }

    /// Parses the JSON form against what exists, reporting every problem by its path
    /// (`all[1].any[0].value`; problems with the whole filter under `filter`).
    pub fn parse(json: &Value, vocab: &Vocabulary) -> Result<Filter, FieldErrors> {
        let mut p = Parser { vocab, errs: FieldErrors::default(), conditions: 0 };
        let root = p.node(json, "", 1);
        if p.conditions > MAX_CONDITIONS {
            p.errs.push(
                "filter",
                Msg::new(
                    format!("条件最多 {MAX_CONDITIONS} 个（现有 {} 个）", p.conditions),
                    format!("a filter has at most {MAX_CONDITIONS} conditions (this one has {})", p.conditions),
                ),
            );
        }
        match root {
            Some(root) if p.errs.is_empty() => Ok(Filter { root }),
            _ => Err(p.errs),
        }
    }

    /// Parses the text of a filter (a form's textarea); bad JSON is reported under `filter`.
    pub fn parse_text(raw: &str, vocab: &Vocabulary) -> Result<Filter, FieldErrors> {
        match serde_json::from_str::<Value>(raw) {
            Ok(v) => Filter::parse(&v, vocab),
            Err(e) => {
                let mut errs = FieldErrors::default();
                errs.push(
                    "filter",
                    Msg::new(
                        format!("条件不是有效的 JSON（第 {} 行第 {} 列）", e.line(), e.column()),
                        format!("the filter is not valid JSON (line {}, column {})", e.line(), e.column()),
                    ),
                );
                Err(errs)
            }
        }
    }
}

/// One field as the builder offers it: its code, label, kind, operators and (for enums) values.
#[derive(Debug, Clone, Serialize)]
pub struct FieldSpec {
    pub code: String,
    pub label: Msg,
    pub kind: FieldKind,
    pub ops: Vec<OpSpec>,
    pub options: Vec<OptionSpec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpSpec {
    pub code: &'static str,
    pub label: Msg,
}

#[derive(Debug, Clone, Serialize)]
pub struct OptionSpec {
    pub code: String,
    pub label: Msg,
}

/// Every field a filter may use, for the builder: plain fields, then custom attributes, then
/// consent per purpose.
pub fn catalogue(vocab: &Vocabulary) -> Vec<FieldSpec> {
    let mut fields: Vec<(Field, Msg)> =
        PLAIN_FIELDS.iter().map(|(code, zh, en)| (Field::parse(code, vocab).expect("plain fields parse"), Msg::new(*zh, *en))).collect();
    for d in &vocab.attributes {
        fields.push((
            Field::Attr { code: d.code.clone(), kind: d.kind },
            Msg::new(format!("属性：{}", d.label_zh), format!("Attribute: {}", d.label_en)),
        ));
    }
    for p in Purpose::ALL {
        let l = p.label();
        fields.push((Field::Consent(*p), Msg::new(format!("同意接收：{}", l.zh), format!("Consents to: {}", l.en))));
    }
    fields
        .into_iter()
        .map(|(f, label)| FieldSpec {
            code: f.code(),
            label,
            kind: f.kind(),
            ops: f.ops().into_iter().map(|o| OpSpec { code: o.code(), label: o.label() }).collect(),
            options: f.options(vocab).into_iter().map(|(code, label)| OptionSpec { code, label }).collect(),
        })
        .collect()
}

struct Parser<'a> {
    vocab: &'a Vocabulary,
    errs: FieldErrors,
    conditions: usize,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() {
        "filter"
    } else {
        path
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

impl Parser<'_> {
    fn err(&mut self, path: &str, zh: impl Into<String>, en: impl Into<String>) {
        self.errs.push(at(path), Msg::new(zh, en));
    }

    fn node(&mut self, v: &Value, path: &str, depth: usize) -> Option<Node> {
        let Value::Object(m) = v else {
            self.err(
                path,
                format!("应为条件或条件组（对象），而不是 {}", type_name(v)),
                format!("expected a condition or a group (an object), not {}", type_name(v)),
            );
            return None;
        };
        let group = ["all", "any"].into_iter().find(|k| m.contains_key(*k));
        match group {
            Some(key) => {
                if m.len() != 1 {
                    self.err(path, "条件组只能有一个键 all 或 any", "a group has exactly one key, all or any, and nothing else");
                    return None;
                }
                self.group(key, &m[key], &join(path, key), depth)
            }
            None => {
                self.conditions += 1;
                self.condition(m, path).map(Node::Cond)
            }
        }
    }

    fn group(&mut self, key: &str, v: &Value, path: &str, depth: usize) -> Option<Node> {
        if depth > MAX_DEPTH {
            self.err(path, format!("条件组最多嵌套 {MAX_DEPTH} 层"), format!("groups nest at most {MAX_DEPTH} levels deep"));
            return None;
        }
        let Value::Array(items) = v else {
            self.err(path, "条件组应为列表", format!("{key} must be a list of conditions and groups"));
            return None;
        };
        if items.is_empty() {
            self.err(path, "条件组不能为空：请添加条件或删除该组", "a group cannot be empty: add a condition or remove the group");
            return None;
        }
        let children: Vec<Option<Node>> = items.iter().enumerate().map(|(i, c)| self.node(c, &format!("{path}[{i}]"), depth + 1)).collect();
        let children: Option<Vec<Node>> = children.into_iter().collect();
        let children = children?;
        Some(if key == "all" { Node::All(children) } else { Node::Any(children) })
    }

    fn condition(&mut self, m: &Map<String, Value>, path: &str) -> Option<Condition> {
        for key in m.keys().filter(|k| !matches!(k.as_str(), "field" | "op" | "value")) {
            self.err(
                &join(path, key),
                format!("未知的键“{key}”：条件只有 field、op、value；条件组用 all 或 any"),
                format!("unknown key '{key}': a condition has field, op and value; a group has all or any"),
            );
        }
        let field_path = join(path, "field");
        let field = match m.get("field") {
            Some(Value::String(code)) => match Field::parse(code.trim(), self.vocab) {
                Ok(f) => Some(f),
                Err(msg) => {
                    self.errs.push(field_path, msg);
                    None
                }
            },
            Some(other) => {
                self.err(
                    &field_path,
                    format!("field 应为文本，而不是 {}", type_name(other)),
                    format!("field must be a string, not {}", type_name(other)),
                );
                None
            }
            None => {
                self.err(&field_path, "请选择字段", "choose a field");
                None
            }
        };
        let op_path = join(path, "op");
        let op = match m.get("op") {
            Some(Value::String(code)) => match Op::parse(code) {
                Ok(op) => Some(op),
                Err(msg) => {
                    self.errs.push(op_path.clone(), msg);
                    None
                }
            },
            Some(other) => {
                self.err(
                    &op_path,
                    format!("op 应为文本，而不是 {}", type_name(other)),
                    format!("op must be a string, not {}", type_name(other)),
                );
                None
            }
            None => {
                self.err(&op_path, "请选择比较方式", "choose an operator");
                None
            }
        };
        let (field, op) = (field?, op?);
        if !field.ops().contains(&op) {
            let codes: Vec<&str> = field.ops().iter().map(|o| o.code()).collect();
            self.err(
                &op_path,
                format!("字段“{}”不能使用“{}”，可选：{}", field.code(), op.code(), codes.join("、")),
                format!("field '{}' does not take '{}'; use one of {}", field.code(), op.code(), codes.join(", ")),
            );
            return None;
        }
        let value_path = join(path, "value");
        let value = m.get("value").filter(|v| !v.is_null());
        if matches!(op, Op::IsEmpty | Op::NotEmpty) {
            if value.is_some() {
                self.err(&value_path, format!("“{}”不需要值", op.code()), format!("'{}' takes no value", op.code()));
                return None;
            }
        } else if value.is_none() {
            self.err(&value_path, "请填写值", "enter a value");
            return None;
        }
        match field.kind() {
            FieldKind::Text => self.text_test(op, value, &value_path).map(|t| Condition::Text(field, t)),
            FieldKind::Date => self.date_test(op, value, &value_path).map(|t| Condition::Date(field, t)),
            FieldKind::Enum => self.enum_test(&field, op, value, &value_path).map(|t| Condition::Enum(field, t)),
        }
    }

    /// A single string value: cleaned, not empty, at most [`MAX_TEXT`] characters.
    fn string(&mut self, v: &Value, path: &str) -> Option<String> {
        let Value::String(s) = v else {
            self.err(path, format!("应为文本，而不是 {}", type_name(v)), format!("expected a string, not {}", type_name(v)));
            return None;
        };
        let s = text::clean(s);
        if s.is_empty() {
            self.err(path, "值不能为空（要查找空值请用“为空”）", "the value cannot be blank (to find blanks use is_empty)");
            return None;
        }
        if s.chars().count() > MAX_TEXT || text::has_control(&s) {
            self.err(
                path,
                format!("值最多 {MAX_TEXT} 个字符，且不能含控制字符"),
                format!("a value has at most {MAX_TEXT} characters and no control characters"),
            );
            return None;
        }
        Some(s)
    }

    /// A non-empty list of at most [`MAX_LIST`] items, each parsed by `item`; duplicates dropped.
    fn list<T: PartialEq>(&mut self, v: &Value, path: &str, mut item: impl FnMut(&mut Self, &Value, &str) -> Option<T>) -> Option<Vec<T>> {
        let Value::Array(items) = v else {
            self.err(path, format!("应为列表，而不是 {}", type_name(v)), format!("expected a list, not {}", type_name(v)));
            return None;
        };
        if items.is_empty() || items.len() > MAX_LIST {
            self.err(path, format!("列表应有 1 到 {MAX_LIST} 项"), format!("the list must have 1 to {MAX_LIST} items"));
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, it) in items.iter().enumerate() {
            match item(self, it, &format!("{path}[{i}]")) {
                Some(x) if !out.contains(&x) => out.push(x),
                Some(_) => {}
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn text_test(&mut self, op: Op, v: Option<&Value>, path: &str) -> Option<TextTest> {
        Some(match (op, v) {
            (Op::IsEmpty, _) => TextTest::IsEmpty,
            (Op::NotEmpty, _) => TextTest::NotEmpty,
            (_, None) => return None,
            (Op::Eq, Some(v)) => TextTest::Eq(self.string(v, path)?),
            (Op::Ne, Some(v)) => TextTest::Ne(self.string(v, path)?),
            (Op::Contains, Some(v)) => TextTest::Contains(self.string(v, path)?),
            (Op::StartsWith, Some(v)) => TextTest::StartsWith(self.string(v, path)?),
            (Op::In, Some(v)) => TextTest::In(self.list(v, path, |p, x, at| p.string(x, at))?),
            (Op::NotIn, Some(v)) => TextTest::NotIn(self.list(v, path, |p, x, at| p.string(x, at))?),
            _ => return None,
        })
    }

    fn date(&mut self, v: &Value, path: &str) -> Option<NaiveDate> {
        let s = self.string(v, path)?;
        match parse_date(&s) {
            Ok(d) => Some(d),
            Err(msg) => {
                self.errs.push(path, msg);
                None
            }
        }
    }

    fn days(&mut self, v: &Value, path: &str) -> Option<u32> {
        match v.as_u64() {
            Some(n) if (1..=u64::from(MAX_DAYS)).contains(&n) => Some(n as u32),
            _ => {
                self.err(
                    path,
                    format!("天数应为 1 到 {MAX_DAYS} 之间的整数，而不是 {v}"),
                    format!("the number of days must be a whole number from 1 to {MAX_DAYS}, not {v}"),
                );
                None
            }
        }
    }

    fn date_test(&mut self, op: Op, v: Option<&Value>, path: &str) -> Option<DateTest> {
        Some(match (op, v) {
            (Op::IsEmpty, _) => DateTest::IsEmpty,
            (Op::NotEmpty, _) => DateTest::NotEmpty,
            (_, None) => return None,
            (Op::Before, Some(v)) => DateTest::Before(self.date(v, path)?),
            (Op::After, Some(v)) => DateTest::After(self.date(v, path)?),
            (Op::WithinLastDays, Some(v)) => DateTest::WithinLastDays(self.days(v, path)?),
            (Op::WithinNextDays, Some(v)) => DateTest::WithinNextDays(self.days(v, path)?),
            (Op::Between, Some(v)) => {
                let pair = match v {
                    Value::Array(items) if items.len() == 2 => items,
                    _ => {
                        self.err(path, "“介于”需要两个日期：[起, 止]", "between takes two dates: [from, to]");
                        return None;
                    }
                };
                let from = self.date(&pair[0], &format!("{path}[0]"));
                let to = self.date(&pair[1], &format!("{path}[1]"));
                let (from, to) = (from?, to?);
                if to < from {
                    self.err(&format!("{path}[1]"), "结束日期不能早于开始日期", "the second date cannot be before the first");
                    return None;
                }
                DateTest::Between(from, to)
            }
            _ => return None,
        })
    }

    fn option(&mut self, field: &Field, v: &Value, path: &str) -> Option<String> {
        let s = self.string(v, path)?;
        match field.parse_option(&s, self.vocab) {
            Ok(code) => Some(code),
            Err(msg) => {
                self.errs.push(path, msg);
                None
            }
        }
    }

    fn enum_test(&mut self, field: &Field, op: Op, v: Option<&Value>, path: &str) -> Option<EnumTest> {
        Some(match (op, v) {
            (Op::IsEmpty, _) => EnumTest::IsEmpty,
            (Op::NotEmpty, _) => EnumTest::NotEmpty,
            (_, None) => return None,
            (Op::Eq, Some(v)) => EnumTest::Eq(self.option(field, v, path)?),
            (Op::Ne, Some(v)) => EnumTest::Ne(self.option(field, v, path)?),
            (Op::In, Some(v)) => EnumTest::In(self.list(v, path, |p, x, at| p.option(field, x, at))?),
            (Op::NotIn, Some(v)) => EnumTest::NotIn(self.list(v, path, |p, x, at| p.option(field, x, at))?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        let attr = |code: &str, kind: AttrKind, choices: &[&str]| AttrDef {
            code: code.into(),
            label_zh: code.into(),
            label_en: code.into(),
            kind,
            choices: choices.iter().map(|c| c.to_string()).collect(),
            repeatable: false,
            unique: false,
            searchable: false,
        };
        Vocabulary {
            categories: vec![
                ("undergraduate".into(), Msg::new("本科生", "Undergraduate")),
                ("graduate".into(), Msg::new("研究生", "Graduate student")),
            ],
            owners: vec![("librarian".into(), "王老师".into())],
            attributes: vec![
                attr("college", AttrKind::Text, &[]),
                attr("graduation", AttrKind::Date, &[]),
                attr("track", AttrKind::Choice, &["理科", "文科"]),
            ],
        }
    }

    fn parse(v: Value) -> Result<Filter, FieldErrors> {
        Filter::parse(&v, &vocab())
    }

    fn errors(v: Value) -> FieldErrors {
        parse(v.clone()).expect_err(&format!("{v} should not parse"))
    }

    fn fields(e: &FieldErrors) -> Vec<&str> {
        e.0.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn the_example_parses_and_round_trips() {
        let v = json!({"all":[
            {"field":"category","op":"in","value":["undergraduate","graduate"]},
            {"any":[{"field":"tag","op":"eq","value":"志愿者"},{"field":"attr.college","op":"starts_with","value":"计算机"}]}
        ]});
        let f = parse(v.clone()).unwrap();
        assert_eq!(f.to_json(), v);
        let Node::All(children) = f.root() else { panic!("root should be all") };
        assert_eq!(children.len(), 2);
        assert!(matches!(&children[1], Node::Any(c) if c.len() == 2));
        assert_eq!(Filter::parse(&f.to_json(), &vocab()).unwrap(), f);
    }

    #[test]
    fn values_are_canonicalised() {
        let f = parse(json!({"all":[
            {"field":"gender","op":"eq","value":"女"},
            {"field":"status","op":"in","value":["Active","有效","expired"]},
            {"field":"expires_on","op":"between","value":["2025/3/1","2025年4月1日"]},
            {"field":"owner","op":"eq","value":"LIBRARIAN"},
            {"field":"has_contact","op":"in","value":["email","Mobile"]},
            {"field":"consent.news","op":"eq","value":"电子邮件"},
            {"field":"name","op":"contains","value":"　晓明 "},
        ]}))
        .unwrap();
        assert_eq!(
            f.to_json(),
            json!({"all":[
                {"field":"gender","op":"eq","value":"female"},
                {"field":"status","op":"in","value":["active","expired"]},
                {"field":"expires_on","op":"between","value":["2025-03-01","2025-04-01"]},
                {"field":"owner","op":"eq","value":"librarian"},
                {"field":"has_contact","op":"in","value":["email","mobile"]},
                {"field":"consent.news","op":"eq","value":"email"},
                {"field":"name","op":"contains","value":"晓明"},
            ]})
        );
    }

    #[test]
    fn every_operator_family_parses() {
        for (field, op, value) in [
            ("card_no", "starts_with", json!("2024")),
            ("affiliation", "not_in", json!(["文学院", "理学院"])),
            ("tag", "is_empty", Value::Null),
            ("attr.college", "not_empty", Value::Null),
            ("created_at", "within_last_days", json!(30)),
            ("expires_on", "within_next_days", json!(30)),
            ("birth_date", "before", json!("2000-01-01")),
            ("enrolled_on", "after", json!("2020-09-01")),
            ("attr.graduation", "is_empty", Value::Null),
            ("attr.track", "eq", json!("理科")),
            ("owner", "is_empty", Value::Null),
            ("lang", "ne", json!("en")),
            ("category", "not_in", json!(["graduate"])),
            ("consent.survey", "not_in", json!(["sms", "wecom"])),
        ] {
            let mut c = json!({"field": field, "op": op});
            if !value.is_null() {
                c["value"] = value;
            }
            let f = parse(json!({"any": [c.clone()]})).unwrap_or_else(|e| panic!("{c}: {e}"));
            assert_eq!(f.to_json(), json!({"any": [c]}));
        }
    }

    #[test]
    fn errors_name_the_path() {
        let e = errors(json!({"all":[
            {"field":"category","op":"eq","value":"undergraduate"},
            {"any":[{"field":"tag","op":"eq","value":7}, {"field":"nope","op":"eq","value":"x"}]},
            {"field":"expires_on","op":"between","value":["2025-03-01","2025-02-30"]},
        ]}));
        assert_eq!(fields(&e), vec!["all[1].any[0].value", "all[1].any[1].field", "all[2].value[1]"], "{e}");
        let msg = e.get("all[1].any[1].field").unwrap();
        assert!(msg.zh.contains("未知字段") && msg.en.contains("unknown field 'nope'"), "{msg}");
    }

    #[test]
    fn unknown_operators_and_misfits_are_refused() {
        let e = errors(json!({"all":[
            {"field":"name","op":"like","value":"x"},
            {"field":"expires_on","op":"contains","value":"2025"},
            {"field":"gender","op":"is_empty"},
            {"field":"status","op":"starts_with","value":"a"},
        ]}));
        assert_eq!(fields(&e), vec!["all[0].op", "all[1].op", "all[2].op", "all[3].op"], "{e}");
    }

    #[test]
    fn wrong_value_types_bad_dates_and_bad_codes() {
        let e = errors(json!({"any":[
            {"field":"tag","op":"in","value":"志愿者"},
            {"field":"birth_date","op":"before","value":"2001-13-01"},
            {"field":"created_at","op":"within_last_days","value":-3},
            {"field":"status","op":"eq","value":"retired"},
            {"field":"category","op":"in","value":["undergraduate","alien"]},
            {"field":"attr.track","op":"eq","value":"工科"},
            {"field":"owner","op":"eq","value":"nobody"},
            {"field":"tag","op":"is_empty","value":"x"},
            {"field":"name","op":"eq"},
            {"field":"name","op":"eq","value":"  "},
            {"field":"consent.marketing","op":"eq","value":"email"},
            {"field":"attr.missing","op":"eq","value":"x"},
            {"field":"lang","op":"eq","value":"fr"},
            {"field":"name","op":"eq","value":"x","extra":1},
        ]}));
        assert_eq!(
            fields(&e),
            vec![
                "any[0].value",
                "any[1].value",
                "any[2].value",
                "any[3].value",
                "any[4].value[1]",
                "any[5].value",
                "any[6].value",
                "any[7].value",
                "any[8].value",
                "any[9].value",
                "any[10].field",
                "any[11].field",
                "any[12].value",
                "any[13].extra",
            ],
            "{e}"
        );
        assert!(e.get("any[3].value").unwrap().en.contains("retired"));
        assert!(e.get("any[4].value[1]").unwrap().en.contains("alien"));
    }

    #[test]
    fn groups_must_be_well_formed() {
        assert_eq!(fields(&errors(json!({"all":[]}))), vec!["all"]);
        assert_eq!(fields(&errors(json!({"all":[{"any":[]}]}))), vec!["all[0].any"]);
        assert_eq!(fields(&errors(json!({"all":{"field":"tag"}}))), vec!["all"]);
        assert_eq!(fields(&errors(json!({"all":[], "any":[]}))), vec!["filter"]);
        assert_eq!(fields(&errors(json!([1, 2]))), vec!["filter"]);
        assert_eq!(fields(&errors(json!({"all":[3]}))), vec!["all[0]"]);
        let e = Filter::parse_text("{\"all\": [", &vocab()).unwrap_err();
        assert_eq!(fields(&e), vec!["filter"]);
        assert!(e.0[0].message.en.contains("not valid JSON"));
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let cond = json!({"field":"tag","op":"eq","value":"x"});
        let nest = |levels: usize| (0..levels).fold(cond.clone(), |inner, _| json!({"all": [inner]}));
        assert!(parse(nest(MAX_DEPTH)).is_ok());
        let e = errors(nest(MAX_DEPTH + 1));
        let deepest = format!("{}all", "all[0].".repeat(MAX_DEPTH));
        assert_eq!(fields(&e), vec![deepest.as_str()], "{e}");
        assert!(e.0[0].message.en.contains("8 levels"));

        assert!(parse(json!({"any": vec![cond.clone(); MAX_CONDITIONS]})).is_ok());
        let e = errors(json!({"any": vec![cond; MAX_CONDITIONS + 1]}));
        assert_eq!(fields(&e), vec!["filter"]);
        assert!(e.0[0].message.zh.contains("101"));
    }

    #[test]
    fn the_catalogue_lists_fields_with_fitting_operators() {
        let cat = catalogue(&vocab());
        let get = |code: &str| cat.iter().find(|f| f.code == code).unwrap_or_else(|| panic!("{code} missing"));
        assert_eq!(get("name").kind, FieldKind::Text);
        assert!(get("expires_on").ops.iter().any(|o| o.code == "within_next_days"));
        assert!(!get("gender").ops.iter().any(|o| o.code == "is_empty"));
        assert!(get("owner").ops.iter().any(|o| o.code == "is_empty"));
        assert_eq!(get("category").options.len(), 2);
        assert_eq!(get("attr.track").options.iter().map(|o| o.code.as_str()).collect::<Vec<_>>(), vec!["理科", "文科"]);
        assert_eq!(get("attr.graduation").kind, FieldKind::Date);
        assert_eq!(get("consent.news").options.len(), ChannelKind::ALL.len());
        // Every catalogue entry parses back as a field.
        for f in &cat {
            assert!(Field::parse(&f.code, &vocab()).is_ok(), "{}", f.code);
        }
    }
}
