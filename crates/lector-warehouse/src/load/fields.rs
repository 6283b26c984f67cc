//! Columns of a circulation file found by name: the first of a field's names (compared trimmed
//! and case-insensitively) that the headers hold.

use lector_domain::Msg;
use lector_import::Record;

use super::{LoadError, RowError};

/// Where a field's values are in the rows, under the header the file gave it.
#[derive(Debug, Clone)]
pub struct Column {
    pub index: usize,
    pub header: String,
}

/// The headers of a file.
pub struct Headers(pub Vec<String>);

impl Headers {
    /// Whether the file has a column called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.find(&[name]).is_some()
    }

    /// The first of `names` the file has.
    pub fn find(&self, names: &[&str]) -> Option<Column> {
        names.iter().find_map(|name| {
            self.0
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(name))
                .map(|index| Column { index, header: self.0[index].trim().to_string() })
        })
    }

    /// The first of `names` the file has, or an error naming what is missing.
    pub fn require(&self, names: &[&str]) -> Result<Column, LoadError> {
        self.find(names).ok_or_else(|| {
            let wanted = names.join(" / ");
            let found = self.0.join(", ");
            LoadError::File(Msg::new(
                format!("缺少必需的列（{wanted}）；文件中的列：{found}"),
                format!("a required column is missing ({wanted}); the file's columns: {found}"),
            ))
        })
    }
}

/// One record of a file with its cells reachable by column.
pub struct Row<'a> {
    pub record: &'a Record,
}

impl Row<'_> {
    /// The trimmed cell of `col`; `None` when blank or the column is absent.
    pub fn get(&self, col: Option<&Column>) -> Option<&str> {
        let col = col?;
        self.record.cells.get(col.index).map(|c| c.trim()).filter(|c| !c.is_empty())
    }

    /// The cell of a required column, or the rejection of the row.
    pub fn required(&self, col: &Column) -> Result<&str, RowError> {
        self.get(Some(col)).ok_or_else(|| {
            RowError::new(
                self.record.row,
                &col.header,
                "",
                Msg::new(format!("{} 不能为空", col.header), format!("{} is required", col.header)),
            )
        })
    }

    /// An error about the value of `col` in this row.
    pub fn error(&self, col: &Column, value: &str, reason: Msg) -> RowError {
        RowError::new(self.record.row, &col.header, value, reason)
    }

    /// The record as `{header: value}`, as kept with a quarantined event.
    pub fn raw(&self, headers: &Headers) -> serde_json::Value {
        let fields = headers.0.iter().zip(&self.record.cells).map(|(h, v)| (h.clone(), serde_json::Value::String(v.clone())));
        serde_json::Value::Object(fields.collect())
    }
}
