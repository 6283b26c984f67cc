//! Building Arrow columns from extracted rows, and the time conventions of the star schema:
//! timestamps are the library's local time to the microsecond, facts are partitioned by the
//! `YYYY-MM` of that local time.

use std::sync::Arc;

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::Date32Type;

/// The value of every fact's `source` column for rows from the operational store.
pub const STORE: &str = "store";

/// A UTC instant as the library's local time.
pub fn local(t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&Local).naive_local()
}

/// The partition of an event at local time `t`.
pub fn month(t: NaiveDateTime) -> String {
    t.format("%Y-%m").to_string()
}

pub fn text<S: AsRef<str>>(values: impl IntoIterator<Item = Option<S>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

/// A text column holding `value` on each of `rows` rows.
pub fn constant(value: &str, rows: usize) -> ArrayRef {
    text(std::iter::repeat_n(Some(value), rows))
}

pub fn int(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int64Array>())
}

/// Local times as microseconds (the naive local time read as if it were UTC, as the schema's
/// zone-less timestamps are).
pub fn timestamps(values: impl IntoIterator<Item = NaiveDateTime>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values.into_iter().map(|t| t.and_utc().timestamp_micros())))
}

pub fn dates(values: impl IntoIterator<Item = Option<NaiveDate>>) -> ArrayRef {
    Arc::new(values.into_iter().map(|d| d.map(Date32Type::from_naive_date)).collect::<Date32Array>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    #[test]
    fn a_local_time_keeps_its_wall_clock_reading() {
        let t = NaiveDate::from_ymd_opt(2025, 3, 31).and_then(|d| d.and_hms_opt(23, 59, 0)).expect("valid time");
        let column = timestamps([t]);
        let micros = column.as_any().downcast_ref::<TimestampMicrosecondArray>().expect("timestamps").value(0);
        assert_eq!(DateTime::from_timestamp_micros(micros).map(|u| u.naive_utc()), Some(t));
        assert_eq!(month(t), "2025-03");
    }
}
