//! Message templates: minijinja sources per channel kind and language, rendered with a reader's
//! variables.
//!
//! Templates are written by staff, so they are treated as untrusted: undefined variables are
//! errors (a typo must not send "Dear ," to ten thousand readers), sources and outputs are
//! size-limited, and rendering runs on a fuel budget so a loop cannot hang the worker. Only the
//! HTML body is autoescaped; the subject is forced onto one line (a newline there would start a
//! new mail header).

use lector_domain::Msg;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Largest accepted source of one part (subject, text or HTML body).
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// Largest rendered part; more is a runaway loop, not a message.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Instructions (and data, ~64 bytes per unit) one part may spend while rendering.
const FUEL: u64 = 200_000;
/// Nesting depth of loops, ifs and macros.
const RECURSION_LIMIT: usize = 64;

/// One template variant's sources (subject, plain text, optional HTML for email).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// A template that does not parse or render: which part, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part} line {line}: {detail}")]
pub struct TemplateError {
    /// `subject`, `body_text` or `body_html`.
    pub part: &'static str,
    /// 1-based line inside that part (0 when the error is about the whole part, e.g. its size).
    pub line: usize,
    /// What is wrong, "中文 (English)" (for logs and the outbox's failure reason).
    pub detail: String,
    /// What is wrong, in each language (for forms).
    pub why: Msg,
}

impl TemplateError {
    /// The error as a bilingual message naming the part and line, for forms and previews.
    pub fn msg(&self) -> Msg {
        let (zh_part, en_part) = match self.part {
            "subject" => ("标题", "subject"),
            "body_html" => ("HTML 正文", "HTML body"),
            _ => ("正文", "text body"),
        };
        let Msg { zh, en } = &self.why;
        if self.line == 0 {
            Msg::new(format!("{zh_part}：{zh}"), format!("{en_part}: {en}"))
        } else {
            Msg::new(format!("{zh_part}第 {} 行：{zh}", self.line), format!("{en_part}, line {}: {en}", self.line))
        }
    }

    fn new(part: &'static str, line: usize, why: Msg) -> TemplateError {
        TemplateError { part, line, detail: why.to_string(), why }
    }
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Keeps error spans, which name the undefined variable in the message.
    env.set_debug(true);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_auto_escape_callback(|name| if name == "body_html" { AutoEscape::Html } else { AutoEscape::None });
    env
});

/// Renders `variant` with `vars` (an object: `reader.name`, `reader.card_no`, …, plus extras).
pub fn render(variant: &Variant, vars: &serde_json::Value) -> Result<Rendered, TemplateError> {
    let ctx = minijinja::Value::from(minijinja::value::Serde(vars));
    let subject = render_part("subject", &variant.subject, &ctx)?;
    let text = render_part("body_text", &variant.body_text, &ctx)?;
    let html = match &variant.body_html {
        Some(src) if !src.trim().is_empty() => Some(render_part("body_html", src, &ctx)?),
        _ => None,
    };
    Ok(Rendered { subject: single_line(&subject), text, html })
}

/// Checks a variant parses and renders with [`sample_vars`] before it is saved.
pub fn check(variant: &Variant) -> Result<(), TemplateError> {
    render(variant, &sample_vars()).map(|_| ())
}

/// The variables every message may use, with plausible values: what [`check`] and previews
/// render with. The worker supplies the same keys (empty where it has no value).
pub fn sample_vars() -> serde_json::Value {
    serde_json::json!({
        "reader": {
            "name": "张三",
            "card_no": "2023010001",
            "category": "本科生",
            "affiliation": "计算机学院",
            "expires_on": "2027-06-30",
            "email": "zhangsan@example.edu.cn",
            "mobile": "13800138000",
            "lang": "zh",
        },
        "case": { "number": "C-2026-0001", "subject": "希望延长自习室开放时间", "title": "希望延长自习室开放时间", "kind": "建议", "status": "已受理" },
        "campaign": { "name": "新生入馆教育" },
        "library": { "name": "图书馆" },
        "link": "https://lector.example.edu.cn/portal",
        "code": "482913",
        "unsubscribe_url": "https://lector.example.edu.cn/portal/unsubscribe?t=sample",
        "preferences_url": "https://lector.example.edu.cn/portal/preferences",
    })
}

fn render_part(part: &'static str, source: &str, ctx: &minijinja::Value) -> Result<String, TemplateError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(TemplateError::new(
            part,
            0,
            Msg::new(
                format!("模板过长（{} 字节，上限 {MAX_SOURCE_BYTES}）", source.len()),
                format!("template too long: {} bytes, limit {MAX_SOURCE_BYTES}", source.len()),
            ),
        ));
    }
    let out = ENV.render_named_str(part, source, ctx.clone()).map_err(|e| to_error(part, source, &e))?;
    if out.len() > MAX_OUTPUT_BYTES {
        return Err(TemplateError::new(
            part,
            0,
            Msg::new(
                format!("生成的内容过长（上限 {MAX_OUTPUT_BYTES} 字节）"),
                format!("rendered text too long: limit {MAX_OUTPUT_BYTES} bytes"),
            ),
        ));
    }
    Ok(out)
}

/// Joins the lines of a rendered subject with single spaces.
fn single_line(s: &str) -> String {
    s.split(['\r', '\n']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

fn to_error(part: &'static str, source: &str, e: &minijinja::Error) -> TemplateError {
    let line = e.line().unwrap_or(0);
    let raw = e.detail().unwrap_or_default();
    let why = match e.kind() {
        ErrorKind::UndefinedError => match e.range().and_then(|r| expression_at(source, r)) {
            Some(s) => Msg::new(format!("变量“{s}”未定义"), format!("undefined variable '{s}'")),
            None => Msg::new("使用了未定义的变量", "an undefined variable is used"),
        },
        ErrorKind::SyntaxError => Msg::new(format!("模板语法错误：{raw}"), format!("syntax error: {raw}")),
        ErrorKind::UnknownFilter => Msg::new(format!("未知的过滤器：{raw}"), format!("unknown filter: {raw}")),
        ErrorKind::UnknownFunction => Msg::new(format!("未知的函数：{raw}"), format!("unknown function: {raw}")),
        ErrorKind::UnknownTest => Msg::new(format!("未知的测试：{raw}"), format!("unknown test: {raw}")),
        ErrorKind::UnknownMethod => Msg::new(format!("未知的方法：{raw}"), format!("unknown method: {raw}")),
        ErrorKind::OutOfFuel => Msg::new("模板运算量超出上限，请检查循环", "the template does too much work; check its loops"),
        ErrorKind::InvalidOperation if raw.contains("recursion") => Msg::new("模板嵌套过深", "the template nests too deeply"),
        kind => {
            let what = if raw.is_empty() { kind.to_string() } else { format!("{kind}: {raw}") };
            Msg::new(format!("模板无法生成：{what}"), format!("the template cannot be rendered: {what}"))
        }
    };
    TemplateError::new(part, line, why)
}

/// The dotted expression an error span points into: the span may cover only `.attr`, so it is
/// widened back over the names and dots before it (`reader.x.y`, not `.x.y`).
fn expression_at(source: &str, range: std::ops::Range<usize>) -> Option<String> {
    let end = range.end.min(source.len());
    let head = source.get(..range.start.min(end))?;
    let start = head
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.'))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let expr = source.get(start..end)?.trim();
    (!expr.is_empty() && expr.len() <= 80).then(|| expr.to_owned())
}
