//! EZproxy logs in the NCSA common/combined format (`%h %l %u %t "%r" %s %b …`): the user
//! `%u` is the reader's card number, the resource the host of the requested URL, the path the
//! URL's path without its query string. Fields after `%b` (referer, user agent) are ignored.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use chrono::{DateTime, NaiveDateTime};
use encoding_rs::Encoding;
use lector_domain::Msg;
use lector_import::decode;
use lector_store::reader_refs::ReaderRef;

use super::events::{hashed_key, EresourceUse};
use super::{times, FileFormat, LoadError, ReadRow, Result, RowError, RowSource};

/// An EZproxy log read line by line.
pub struct LogLines {
    lines: BufReader<File>,
    encoding: &'static Encoding,
    line_no: u64,
    buf: Vec<u8>,
    source: String,
    now: NaiveDateTime,
}

/// Opens the log at `path`; refuses files that are not text.
pub fn open(path: &Path, format: Option<FileFormat>, source: &str, now: NaiveDateTime) -> Result<LogLines> {
    if matches!(format, Some(FileFormat::Koha | FileFormat::Plain)) {
        return Err(LoadError::File(Msg::new("电子资源使用只能从 EZproxy 日志装载", "e-resource use is loaded from EZproxy logs only")));
    }
    let unreadable = |e: std::io::Error| {
        LoadError::File(Msg::new(format!("无法读取 {}：{e}", path.display()), format!("cannot read {}: {e}", path.display())))
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let mut prefix = Vec::with_capacity(decode::PREFIX_LEN);
    file.by_ref().take(decode::PREFIX_LEN as u64).read_to_end(&mut prefix).map_err(unreadable)?;
    let encoding = decode::detect(&prefix);
    if decode::looks_binary(&prefix, encoding) {
        return Err(LoadError::File(Msg::new(
            "这不是 EZproxy 日志（不是文本文件）：请确认选择了正确的文件",
            "this is not an EZproxy log (not a text file): check that you chose the right file",
        )));
    }
    let file = File::open(path).map_err(unreadable)?;
    Ok(LogLines { lines: BufReader::new(file), encoding, line_no: 0, buf: Vec::new(), source: source.to_string(), now })
}

impl RowSource<EresourceUse> for LogLines {
    fn format(&self) -> FileFormat {
        FileFormat::Ezproxy
    }

    fn next_row(&mut self) -> Option<Result<ReadRow<EresourceUse>>> {
        loop {
            self.buf.clear();
            match self.lines.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(LoadError::File(Msg::new(format!("读取日志出错：{e}"), format!("cannot read the log: {e}"))))),
            }
            self.line_no += 1;
            let bytes = if self.line_no == 1 { strip_bom(&self.buf) } else { &self.buf[..] };
            let (text, _) = self.encoding.decode_without_bom_handling(bytes);
            let line = text.trim_end_matches(['\r', '\n']);
            if line.trim().is_empty() {
                continue;
            }
            let parsed = parse_line(line, &self.source, self.now)
                .map_err(|(column, value, reason)| RowError::new(self.line_no, column, &value, reason));
            return Some(Ok(ReadRow { row: self.line_no, raw: serde_json::json!({ "line": line }), parsed }));
        }
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    match Encoding::for_bom(bytes) {
        Some((_, len)) => &bytes[len..],
        None => bytes,
    }
}

/// A field's problem: its format directive, its value and the reason.
type FieldError = (&'static str, String, Msg);

fn malformed(directive: &'static str, value: &str) -> FieldError {
    (
        directive,
        value.to_string(),
        Msg::new(format!("不是 EZproxy 日志行：{directive} 无法识别"), format!("not an EZproxy log line: cannot read {directive}")),
    )
}

/// One request of the log.
fn parse_line(line: &str, source: &str, now: NaiveDateTime) -> Result<EresourceUse, FieldError> {
    let mut rest = line.trim_start();
    let _host = word(&mut rest).ok_or_else(|| malformed("%h", line))?;
    let _ident = word(&mut rest).ok_or_else(|| malformed("%l", line))?;
    let user = word(&mut rest).ok_or_else(|| malformed("%u", line))?;
    let stamp = enclosed(&mut rest, '[', ']').ok_or_else(|| malformed("%t", line))?;
    let request = quoted(&mut rest).ok_or_else(|| malformed("%r", line))?;
    let status = word(&mut rest).ok_or_else(|| malformed("%s", line))?;
    let bytes = word(&mut rest).unwrap_or("-");

    if user == "-" {
        return Err(("%u", user.to_string(), Msg::new("没有用户（读者证号）", "no user (reader card number)")));
    }
    let used_at = DateTime::parse_from_str(stamp, "%d/%b/%Y:%H:%M:%S %z").map(|t| t.naive_local()).map_err(|_| {
        ("%t", stamp.to_string(), Msg::new("时间格式应为 05/Mar/2024:14:03:00 +0800", "the time must read like 05/Mar/2024:14:03:00 +0800"))
    })?;
    let used_at = times::parse(&used_at.format("%Y-%m-%d %H:%M:%S").to_string(), now).map_err(|m| ("%t", stamp.to_string(), m))?;
    let (resource, path) = target(request).ok_or_else(|| {
        ("%r", request.to_string(), Msg::new("请求中没有被代理网站的完整网址", "the request has no full URL of a proxied site"))
    })?;
    let number = |directive: &'static str, raw: &str| -> Result<Option<i64>, FieldError> {
        match raw {
            "-" => Ok(None),
            _ => raw.parse::<i64>().map(Some).map_err(|_| {
                (directive, raw.to_string(), Msg::new(format!("{directive} 应为整数"), format!("{directive} must be a number")))
            }),
        }
    };
    Ok(EresourceUse {
        event_key: hashed_key(source, "eresource", &[user, stamp, request]),
        reader: ReaderRef::card(user),
        used_at,
        resource,
        path,
        status: number("%s", status)?,
        bytes: number("%b", bytes)?,
        source: source.to_string(),
    })
}

/// The next space-separated word.
fn word<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start();
    if s.is_empty() {
        return None;
    }
    let end = s.find(' ').unwrap_or(s.len());
    *rest = &s[end..];
    Some(&s[..end])
}

fn enclosed<'a>(rest: &mut &'a str, open: char, close: char) -> Option<&'a str> {
    let s = rest.trim_start().strip_prefix(open)?;
    let end = s.find(close)?;
    *rest = &s[end + close.len_utf8()..];
    Some(&s[..end])
}

/// A `"…"` field; a quote inside is escaped as `\"`.
fn quoted<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start().strip_prefix('"')?;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => {
                *rest = &s[i + 1..];
                return Some(&s[..i]);
            }
            _ => escaped = false,
        }
    }
    None
}

/// The host (lower case, without port or credentials) and the path (without query string) of
/// the URL a request line `GET http://host/path?q HTTP/1.1` asks for; a `CONNECT host:443`
/// has only a host.
fn target(request: &str) -> Option<(String, Option<String>)> {
    let mut parts = request.split_whitespace();
    let method = parts.next()?;
    let url = parts.next()?;
    let (authority, path) = match url.split_once("://") {
        Some((_, after)) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            let path = after[end..].split(['?', '#']).next().filter(|p| !p.is_empty()).unwrap_or("/");
            (&after[..end], Some(path.to_string()))
        }
        None if method.eq_ignore_ascii_case("CONNECT") => (url, None),
        None => return None,
    };
    let host = authority.rsplit('@').next()?;
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2025, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("valid")
    }

    #[test]
    fn a_combined_log_line_gives_user_time_host_and_path() {
        let line = r#"10.1.2.3 - 20240001 [05/Mar/2024:14:03:00 +0800] "GET https://www.JSTOR.org:443/stable/123?seq=1 HTTP/1.1" 200 5120 "-" "Mozilla/5.0""#;
        let u = parse_line(line, "ezproxy", now()).expect("a valid line");
        assert_eq!(u.reader, ReaderRef::card("20240001"));
        assert_eq!(u.used_at, NaiveDate::from_ymd_opt(2024, 3, 5).and_then(|d| d.and_hms_opt(14, 3, 0)).expect("valid"));
        assert_eq!(u.resource, "www.jstor.org");
        assert_eq!(u.path.as_deref(), Some("/stable/123"));
        assert_eq!((u.status, u.bytes), (Some(200), Some(5120)));
    }

    #[test]
    fn lines_without_user_or_url_are_refused_with_the_field() {
        let no_user = r#"10.1.2.3 - - [05/Mar/2024:14:03:00 +0800] "GET http://a.org/ HTTP/1.1" 200 1"#;
        assert_eq!(parse_line(no_user, "e", now()).map_err(|e| e.0), Err("%u"));
        let relative = r#"10.1.2.3 - 1 [05/Mar/2024:14:03:00 +0800] "GET /login HTTP/1.1" 302 -"#;
        assert_eq!(parse_line(relative, "e", now()).map_err(|e| e.0), Err("%r"));
        assert_eq!(parse_line("garbage", "e", now()).map_err(|e| e.0), Err("%l"));
    }

    #[test]
    fn a_connect_request_names_its_host() {
        assert_eq!(target("CONNECT db.cnki.net:443 HTTP/1.1"), Some(("db.cnki.net".to_string(), None)));
    }
}
