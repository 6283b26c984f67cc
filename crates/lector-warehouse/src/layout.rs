//! Where things live under the warehouse root (ADR 0006). Names carry the batch id, so the
//! owner of any file can be told from its name alone:
//!
//! ```text
//! fact_loan/month=2025-03/b00000042-0.parquet   facts, hive-partitioned by event month
//! dim_reader/b00000042-0.parquet                dimensions
//! _quarantine/b00000042-0.parquet               events that named an unknown reader or item
//! _batches/b00000042.lock                       an id reserved by a writer at work
//! _batches/b00000042.json                       the batch record: written last, the commit
//! ```

use datafusion::object_store::path::Path;

pub const BATCHES_DIR: &str = "_batches";
pub const QUARANTINE_DIR: &str = "_quarantine";

pub fn record_path(id: u64) -> Path {
    Path::from(format!("{BATCHES_DIR}/b{id:08}.json"))
}

pub fn lock_path(id: u64) -> Path {
    Path::from(format!("{BATCHES_DIR}/b{id:08}.lock"))
}

/// The `n`-th data file a batch writes for `table`; `month` (`YYYY-MM`) for facts.
pub fn data_file(table: &str, month: Option<&str>, id: u64, n: usize) -> String {
    match month {
        Some(m) => format!("{table}/month={m}/b{id:08}-{n}.parquet"),
        None => format!("{table}/b{id:08}-{n}.parquet"),
    }
}

pub fn quarantine_file(id: u64) -> String {
    format!("{QUARANTINE_DIR}/b{id:08}-0.parquet")
}

/// What a file under `_batches/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEntry {
    Record(u64),
    Lock(u64),
}

/// Reads `_batches/bNNNNNNNN.json` or `.lock`; anything else is not Lector's.
pub fn log_entry(path: &Path) -> Option<LogEntry> {
    let mut parts = path.parts();
    if parts.next()?.as_ref() != BATCHES_DIR {
        return None;
    }
    let name = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let (stem, ext) = name.as_ref().split_once('.')?;
    let id = batch_number(stem.strip_prefix('b')?)?;
    match ext {
        "json" => Some(LogEntry::Record(id)),
        "lock" => Some(LogEntry::Lock(id)),
        _ => None,
    }
}

/// The batch a data file belongs to, from its name `bNNNNNNNN-N.parquet`; `None` for files
/// that are not Lector's (they are never touched) and for anything under `_batches/`.
pub fn data_file_batch(path: &Path) -> Option<u64> {
    if path.parts().next()?.as_ref() == BATCHES_DIR {
        return None;
    }
    let name = path.filename()?;
    let stem = name.strip_suffix(".parquet")?.strip_prefix('b')?;
    let (id, n) = stem.split_once('-')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(())?;
    batch_number(id)
}

/// The month partition of a fact file (`…/month=2025-03/…` → `2025-03`).
pub fn file_month(file: &str) -> Option<&str> {
    file.split('/').find_map(|part| part.strip_prefix("month="))
}

fn batch_number(digits: &str) -> Option<u64> {
    (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(log_entry(&record_path(42)), Some(LogEntry::Record(42)));
        assert_eq!(log_entry(&lock_path(7)), Some(LogEntry::Lock(7)));
        assert_eq!(log_entry(&Path::from("_batches/readme.txt")), None);
        let fact = data_file("fact_loan", Some("2025-03"), 42, 1);
        assert_eq!(fact, "fact_loan/month=2025-03/b00000042-1.parquet");
        assert_eq!(data_file_batch(&Path::from(fact.as_str())), Some(42));
        assert_eq!(file_month(&fact), Some("2025-03"));
        assert_eq!(data_file_batch(&Path::from(data_file("dim_reader", None, 3, 0))), Some(3));
        assert_eq!(data_file_batch(&Path::from(quarantine_file(9))), Some(9));
        assert_eq!(data_file_batch(&Path::from("fact_loan/notes.parquet")), None);
        assert_eq!(data_file_batch(&Path::from("fact_loan/b123-0.parquet")), None);
    }
}
