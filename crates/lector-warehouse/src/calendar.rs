//! `dim_date`, generated at query time over the years the facts cover: nothing to load, and
//! always as wide as the data.

use std::ops::RangeInclusive;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{ArrayRef, BooleanArray, Date32Array, Int64Array, RecordBatch, StringArray};

use crate::batch::BatchRecord;
use crate::error::{Result, WarehouseError};
use crate::layout;
use crate::schema::TableDef;

/// The years of the facts' month partitions; the years around `today` while there are none.
pub fn covered_years(records: &[Arc<BatchRecord>], today: NaiveDate) -> RangeInclusive<i32> {
    let years = records
        .iter()
        .flat_map(|r| r.tables.iter().flat_map(|t| &t.files))
        .filter_map(|f| layout::file_month(f)?.get(..4)?.parse::<i32>().ok());
    let (min, max) = years
        .fold((None, None), |(lo, hi): (Option<i32>, Option<i32>), y| (Some(lo.map_or(y, |l| l.min(y))), Some(hi.map_or(y, |h| h.max(y)))));
    match (min, max) {
        (Some(lo), Some(hi)) => lo..=hi,
        _ => today.year() - 1..=today.year() + 1,
    }
}

/// How many days `years` hold (the row count of `dim_date`).
pub fn day_count(years: &RangeInclusive<i32>) -> u64 {
    years.clone().map(|y| if NaiveDate::from_ymd_opt(y, 2, 29).is_some() { 366 } else { 365 }).sum()
}

/// Every day of `years`, one row each, in `def`'s columns.
pub fn dim_date(def: &TableDef, years: RangeInclusive<i32>) -> Result<RecordBatch> {
    let (first, last) = (*years.start(), *years.end());
    let bounds = NaiveDate::from_ymd_opt(first, 1, 1).zip(NaiveDate::from_ymd_opt(last, 12, 31)).zip(NaiveDate::from_ymd_opt(1970, 1, 1));
    let Some(((start, end), epoch)) = bounds else {
        return Err(WarehouseError::invalid(
            format!("日期维度的年份 {first}–{last} 超出范围"),
            format!("the years {first}–{last} of the date dimension are out of range"),
        ));
    };
    let days: Vec<NaiveDate> = start.iter_days().take_while(|d| *d <= end).collect();
    let int = |f: fn(&NaiveDate) -> i64| -> ArrayRef { Arc::new(Int64Array::from_iter_values(days.iter().map(f))) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from_iter_values(days.iter().map(|d| (*d - epoch).num_days() as i32))),
        int(|d| i64::from(d.year())),
        int(|d| i64::from(d.month0() / 3 + 1)),
        int(|d| i64::from(d.month())),
        int(|d| i64::from(d.day())),
        int(|d| i64::from(d.weekday().number_from_monday())),
        Arc::new(days.iter().map(|d| Some(d.weekday().number_from_monday() >= 6)).collect::<BooleanArray>()),
        Arc::new(StringArray::from_iter_values(days.iter().map(|d| d.format("%Y-%m").to_string()))),
    ];
    RecordBatch::try_new(def.schema(), columns)
        .map_err(|e| WarehouseError::invalid(format!("日期维度：{e}"), format!("date dimension: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    #[test]
    fn a_leap_year_has_every_day_once_with_its_weekday() {
        let def = schema::table("dim_date").unwrap();
        let dates = dim_date(def, 2024..=2024).unwrap();
        assert_eq!(dates.num_rows() as u64, day_count(&(2024..=2024)));
        assert_eq!(dates.num_rows(), 366);
        let weekday = dates.column_by_name("weekday").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
        // 2024-01-01 was a Monday.
        assert_eq!(weekday.value(0), 1);
        let ym = dates.column_by_name("ym").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(ym.value(365), "2024-12");
    }

    #[test]
    fn no_facts_cover_the_years_around_today() {
        let today = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
        assert_eq!(covered_years(&[], today), 2025..=2027);
    }
}
