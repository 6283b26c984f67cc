//! JSON (an array of objects, or an object holding one) and NDJSON (one object per line).
//! Objects are flattened into columns by dotted paths: `personal.email`, `addresses.0.city`;
//! arrays of plain values join with `,`; null is empty.

use super::table::{column, no_data, MAX_CELL};
use crate::decode::{self, CellText};
use crate::{Format, Opened, Record, RecordSource, SourceError, SourceHints};
use encoding_rs::Encoding;
use lector_domain::Msg;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// A JSON document is read whole; past this size NDJSON is the way.
const MAX_DOCUMENT: u64 = 512 * 1024 * 1024;
/// NDJSON headers are the keys of the first this many lines.
const HEADER_LINES: usize = 1000;
/// A longer NDJSON line is refused without being held in memory.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// A JSON value keeping object keys in document order (serde_json's map sorts them unless a
/// feature is switched on for the whole build).
enum Node {
    Null,
    Bool(bool),
    Number(String),
    Text(String),
    List(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Text(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Text(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut fields = Vec::new();
        while let Some(entry) = map.next_entry()? {
            fields.push(entry);
        }
        Ok(Node::Object(fields))
    }
}

/// One object's cells by path, in document order.
type Flat = Vec<(String, String)>;
/// A record's row number and its flattened object, or why it has none.
type Numbered = (u64, Result<Flat, SourceError>);

fn flatten(path: &mut String, node: Node, out: &mut Flat) {
    match node {
        Node::Null => out.push((path.clone(), String::new())),
        Node::Bool(b) => out.push((path.clone(), b.to_string())),
        Node::Number(s) | Node::Text(s) => out.push((path.clone(), s)),
        Node::List(items) if items.iter().all(|i| !matches!(i, Node::List(_) | Node::Object(_))) => {
            let joined = items.into_iter().map(|i| scalar(i).unwrap_or_default()).collect::<Vec<_>>().join(",");
            out.push((path.clone(), joined));
        }
        Node::List(items) => {
            for (i, item) in items.into_iter().enumerate() {
                nested(path, &i.to_string(), item, out);
            }
        }
        Node::Object(fields) => {
            for (key, value) in fields {
                nested(path, &key, value, out);
            }
        }
    }
}

fn nested(path: &mut String, key: &str, node: Node, out: &mut Flat) {
    let len = path.len();
    if len > 0 {
        path.push('.');
    }
    path.push_str(key);
    flatten(path, node, out);
    path.truncate(len);
}

fn scalar(node: Node) -> Option<String> {
    match node {
        Node::Null => Some(String::new()),
        Node::Bool(b) => Some(b.to_string()),
        Node::Number(s) | Node::Text(s) => Some(s),
        Node::List(_) | Node::Object(_) => None,
    }
}

/// One record's object flattened, or why it is not an object.
fn flat_object(node: Node, row: u64, what: (&str, &str)) -> Result<Flat, SourceError> {
    match node {
        Node::Object(_) => {
            let mut out = Vec::new();
            flatten(&mut String::new(), node, &mut out);
            Ok(out)
        }
        _ => Err(SourceError::at(
            row,
            Msg::new(
                format!("这{}不是 JSON 对象（{{…}}）：每条记录应是一个对象", what.0),
                format!("this {} is not a JSON object ({{…}}): each record must be one", what.1),
            ),
        )),
    }
}

/// Headers in order of first appearance, and each one's position.
#[derive(Default)]
struct Columns {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Columns {
    fn add(&mut self, flat: &Flat) {
        for (key, _) in flat {
            if !self.index.contains_key(key) {
                self.index.insert(key.clone(), self.names.len());
                self.names.push(key.clone());
            }
        }
    }

    /// The record of `flat`; a key not among the headers is a row error.
    fn record(&self, row: u64, flat: Flat) -> Option<Result<Record, SourceError>> {
        let mut cells = vec![String::new(); self.names.len()];
        for (key, value) in flat {
            let Some(&i) = self.index.get(&key) else {
                return Some(Err(SourceError::at(
                    row,
                    Msg::new(
                        format!("字段“{key}”在前 {HEADER_LINES} 行里都没有出现，无法作为列读取：请把含有它的行移到文件前部"),
                        format!("the field “{key}” does not appear in the first {HEADER_LINES} lines, so it is not a column: move a line that has it to the top"),
                    ),
                )));
            };
            if value.len() > MAX_CELL {
                let (zh, en) = column(&self.names, i);
                return Some(Err(SourceError::at(
                    row,
                    Msg::new(format!("{zh}的值超过 1 MiB：请缩短内容"), format!("{en}: the value is larger than 1 MiB; shorten it")),
                )));
            }
            cells[i] = value;
        }
        if cells.iter().all(|c| c.trim().is_empty()) {
            return None;
        }
        Some(Ok(Record { row, cells }))
    }
}

/// Opens a JSON document as `format` (JSON or FOLIO); when not given, an object with a `users`
/// array is FOLIO's user import.
pub(crate) fn open_json(path: &Path, encoding: &'static Encoding, format: Option<Format>) -> Result<Opened, SourceError> {
    let size = std::fs::metadata(path).map_err(|e| decode::unreadable(path, &e))?.len();
    if size > MAX_DOCUMENT {
        return Err(SourceError::whole(Msg::new(
            "JSON 文件超过 512 MiB：请改用 NDJSON（每行一个对象）",
            "the JSON file is larger than 512 MiB: use NDJSON (one object per line) instead",
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| decode::unreadable(path, &e))?;
    let name = decode::name(encoding);
    let text = decode::decode_all(&bytes, encoding).ok_or_else(|| {
        SourceError::whole(Msg::new(
            format!("文件含有 {name} 编码中无效的字节：请以 UTF-8 保存 JSON"),
            format!("the file has bytes that are not valid {name}: save the JSON as UTF-8"),
        ))
    })?;
    drop(bytes);
    if format == Some(Format::Folio) {
        return crate::library::folio(text.as_bytes());
    }
    let node: Node = serde_json::from_str(&text).map_err(|e| {
        SourceError::whole(Msg::new(
            format!("JSON 第 {} 行第 {} 列有误（{e}）：请修正后再导入", e.line(), e.column()),
            format!("the JSON is invalid at line {}, column {} ({e}): fix it and retry", e.line(), e.column()),
        ))
    })?;
    if format.is_none() && is_folio(&node) {
        drop(node);
        return crate::library::folio(text.as_bytes());
    }
    let items = records_of(node)?;
    if items.is_empty() {
        return Err(no_data());
    }
    let mut columns = Columns::default();
    let mut rows = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let row = i as u64 + 1;
        let flat = flat_object(item, row, ("条记录", "record"));
        if let Ok(flat) = &flat {
            columns.add(flat);
        }
        rows.push((row, flat));
    }
    let records = Buffered { columns, rows: rows.into() };
    Ok(Opened { records: Box::new(records), format: Format::Json, encoding: Some(name), hints: SourceHints::default() })
}

fn is_folio(node: &Node) -> bool {
    matches!(node, Node::Object(fields) if fields.iter().any(|(k, v)| k == "users" && matches!(v, Node::List(_))))
}

/// The records of a document: the array itself, the one array of objects inside an object, or a
/// lone object.
fn records_of(node: Node) -> Result<Vec<Node>, SourceError> {
    match node {
        Node::List(items) => Ok(items),
        Node::Object(fields) => {
            let is_table =
                |v: &Node| matches!(v, Node::List(items) if !items.is_empty() && items.iter().all(|i| matches!(i, Node::Object(_))));
            let tables = fields.iter().filter(|(_, v)| is_table(v)).count();
            match tables {
                0 => Ok(vec![Node::Object(fields)]),
                1 => match fields.into_iter().find(|(_, v)| is_table(v)) {
                    Some((_, Node::List(items))) => Ok(items),
                    _ => Ok(Vec::new()),
                },
                _ => {
                    let keys: Vec<&str> = fields.iter().filter(|(_, v)| is_table(v)).map(|(k, _)| k.as_str()).collect();
                    Err(SourceError::whole(Msg::new(
                        format!("JSON 对象里有多个对象数组（{}）：请只保留要导入的一个", keys.join("、")),
                        format!("the JSON object holds several arrays of objects ({}): keep only the one to import", keys.join(", ")),
                    )))
                }
            }
        }
        _ => Err(SourceError::whole(Msg::new(
            "JSON 应是对象数组（[{…}, {…}]）或含有一个对象数组的对象",
            "the JSON should be an array of objects ([{…}, {…}]) or an object holding one",
        ))),
    }
}

/// Records already flattened (JSON documents, and NDJSON's first lines).
struct Buffered {
    columns: Columns,
    rows: VecDeque<Numbered>,
}

impl RecordSource for Buffered {
    fn headers(&self) -> &[String] {
        &self.columns.names
    }

    fn next_record(&mut self) -> Option<Result<Record, SourceError>> {
        loop {
            let (row, flat) = self.rows.pop_front()?;
            match flat {
                Err(e) => return Some(Err(e)),
                Ok(flat) => {
                    if let Some(record) = self.columns.record(row, flat) {
                        return Some(record);
                    }
                }
            }
        }
    }
}

/// Opens NDJSON: the first 1000 non-blank lines are read ahead to learn the headers, the rest
/// streams line by line. A line that is not a JSON object is an error for that line only.
pub(crate) fn open_ndjson(path: &Path, encoding: &'static Encoding) -> Result<Opened, SourceError> {
    let text = decode::open_text(path, encoding, true)?;
    let mut lines = Lines {
        reader: BufReader::with_capacity(64 * 1024, text.reader),
        cells: text.cells,
        line: 0,
        buf: Vec::new(),
        name: decode::name(encoding),
    };
    let mut head = Buffered { columns: Columns::default(), rows: VecDeque::new() };
    while head.rows.len() < HEADER_LINES {
        let Some((row, flat)) = lines.next_object()? else { break };
        if let Ok(flat) = &flat {
            head.columns.add(flat);
        }
        head.rows.push_back((row, flat));
    }
    if head.columns.names.is_empty() {
        return Err(match head.rows.pop_front() {
            Some((_, Err(e))) => e,
            _ => no_data(),
        });
    }
    let records = Ndjson { head, lines, ended: false };
    Ok(Opened { records: Box::new(records), format: Format::Ndjson, encoding: Some(decode::name(encoding)), hints: SourceHints::default() })
}

struct Lines {
    reader: BufReader<Box<dyn std::io::Read + Send>>,
    cells: CellText,
    line: u64,
    buf: Vec<u8>,
    name: &'static str,
}

impl Lines {
    /// The next non-blank line as a flattened object (or its error); `Err` when the file
    /// cannot be read any more.
    fn next_object(&mut self) -> Result<Option<Numbered>, SourceError> {
        loop {
            self.buf.clear();
            let Some(too_long) = read_line(&mut self.reader, &mut self.buf)
                .map_err(|e| SourceError::whole(Msg::new(format!("读取文件出错：{e}"), format!("cannot read the file: {e}"))))?
            else {
                return Ok(None);
            };
            self.line += 1;
            let row = self.line;
            if too_long {
                return Ok(Some((
                    row,
                    Err(SourceError::at(row, Msg::new("这一行超过 64 MiB：请检查文件", "this line is longer than 64 MiB: check the file"))),
                )));
            }
            let Some(text) = self.cells.text(&self.buf) else {
                let name = self.name;
                return Ok(Some((
                    row,
                    Err(SourceError::at(
                        row,
                        Msg::new(format!("这一行含有 {name} 编码中无效的字节"), format!("this line has bytes that are not valid {name}")),
                    )),
                )));
            };
            let text = text.trim_start_matches('\u{feff}').trim();
            if text.is_empty() {
                continue;
            }
            let parsed = serde_json::from_str::<Node>(text)
                .map_err(|e| {
                    SourceError::at(
                        row,
                        Msg::new(
                            format!("这一行不是有效的 JSON（第 {} 列：{e}）", e.column()),
                            format!("this line is not valid JSON (column {}: {e})", e.column()),
                        ),
                    )
                })
                .and_then(|node| flat_object(node, row, ("一行", "line")));
            return Ok(Some((row, parsed)));
        }
    }
}

/// Reads one line into `buf` without its line end, keeping at most [`MAX_LINE`] bytes; `None` at
/// the end of the input, else whether the line was longer.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    let mut read_any = false;
    let mut too_long = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        read_any = true;
        let (part, used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if buf.len() + part.len() > MAX_LINE {
            too_long = true;
        } else if !too_long {
            buf.extend_from_slice(part);
        }
        reader.consume(used);
        if done {
            break;
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(read_any.then_some(too_long))
}

struct Ndjson {
    head: Buffered,
    lines: Lines,
    /// The input ended or failed.
    ended: bool,
}

impl RecordSource for Ndjson {
    fn headers(&self) -> &[String] {
        &self.head.columns.names
    }

    fn next_record(&mut self) -> Option<Result<Record, SourceError>> {
        if let Some(record) = self.head.next_record() {
            return Some(record);
        }
        while !self.ended {
            let (row, flat) = match self.lines.next_object() {
                Ok(Some(line)) => line,
                Ok(None) => {
                    self.ended = true;
                    return None;
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            };
            match flat {
                Err(e) => return Some(Err(e)),
                Ok(flat) => {
                    if let Some(record) = self.head.columns.record(row, flat) {
                        return Some(record);
                    }
                }
            }
        }
        None
    }
}
