//! Dates and times as circulation files write them, and which of them are possible.

use chrono::{Duration, NaiveDateTime};
use lector_domain::tracking::parse_datetime;
use lector_domain::Msg;

/// The earliest year a circulation event can have.
const FIRST_YEAR: i32 = 1900;

/// A local time written as `2024-03-05 14:03:00`, `2024-03-05`, `2024/3/5 14:03` or
/// `2024年3月5日`, no earlier than 1900 and no later than tomorrow (`now` + 1 day).
pub fn parse(raw: &str, now: NaiveDateTime) -> Result<NaiveDateTime, Msg> {
    let t = parse_datetime(raw)?;
    if chrono::Datelike::year(&t) < FIRST_YEAR {
        return Err(Msg::new(
            format!("“{raw}”早于 {FIRST_YEAR} 年，不可能"),
            format!("'{raw}' is before {FIRST_YEAR}, which is impossible"),
        ));
    }
    if t.date() > now.date() + Duration::days(1) {
        return Err(Msg::new(format!("“{raw}”在将来，不可能"), format!("'{raw}' is in the future, which is impossible")));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2025, 1, 10).and_then(|d| d.and_hms_opt(12, 0, 0)).expect("valid")
    }

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).and_then(|d| d.and_hms_opt(h, min, s)).expect("valid")
    }

    #[test]
    fn the_usual_ways_of_writing_a_time_are_read() {
        assert_eq!(parse("2024-03-05 14:03:00", now()), Ok(at(2024, 3, 5, 14, 3, 0)));
        assert_eq!(parse("2024-03-05", now()), Ok(at(2024, 3, 5, 0, 0, 0)));
        assert_eq!(parse("2024/3/5 14:03", now()), Ok(at(2024, 3, 5, 14, 3, 0)));
        assert_eq!(parse("2024年3月5日", now()), Ok(at(2024, 3, 5, 0, 0, 0)));
    }

    #[test]
    fn impossible_times_are_refused() {
        assert!(parse("1899-12-31 10:00", now()).is_err());
        assert!(parse("2025-01-12", now()).is_err(), "after tomorrow");
        assert!(parse("2025-01-11", now()).is_ok(), "tomorrow is allowed");
        assert!(parse("yesterday", now()).is_err());
    }
}
