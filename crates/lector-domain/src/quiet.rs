//! Quiet hours (免打扰时段): a daily span of local time in which no campaign message is sent,
//! such as `22:00-08:00` (crossing midnight) or `12:00-13:30` (lunch).

use crate::{text, Msg};
use chrono::{Duration, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};

/// A daily span `[start, end)` of local time; when `start > end` it crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
}

fn time(raw: &str, what_zh: &str, what_en: &str) -> Result<NaiveTime, Msg> {
    let v = text::clean(raw);
    NaiveTime::parse_from_str(&v, "%H:%M")
        .map_err(|_| Msg::new(format!("{what_zh}“{v}”应为 HH:MM（如 22:00）"), format!("{what_en} '{v}' should be HH:MM (such as 22:00)")))
}

impl QuietHours {
    /// Quiet hours from their two ends (`HH:MM` each), as campaigns store them.
    pub fn new(start: &str, end: &str) -> Result<Self, Msg> {
        let start = time(start, "免打扰开始时间", "the quiet hours' start")?;
        let end = time(end, "免打扰结束时间", "the quiet hours' end")?;
        if start == end {
            return Err(Msg::new("免打扰的开始和结束时间不能相同", "quiet hours must start and end at different times"));
        }
        Ok(QuietHours { start, end })
    }

    /// Parses `HH:MM-HH:MM` (a full-width dash or `~` also separates).
    pub fn parse(raw: &str) -> Result<Self, Msg> {
        let v = text::clean(raw);
        let Some((start, end)) = v.split_once(['-', '~', '–', '—']) else {
            return Err(Msg::new(
                format!("免打扰时段“{v}”应写作 开始-结束，如 22:00-08:00"),
                format!("quiet hours '{v}' should read start-end, such as 22:00-08:00"),
            ));
        };
        Self::new(start, end)
    }

    /// The start as `HH:MM`.
    pub fn start(&self) -> String {
        self.start.format("%H:%M").to_string()
    }

    /// The end as `HH:MM`.
    pub fn end(&self) -> String {
        self.end.format("%H:%M").to_string()
    }

    /// Whether `t` (local time) falls in the quiet hours.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// The first local time at or after `now` outside the quiet hours: `now` itself, or the end
    /// of the quiet span `now` is in.
    pub fn next_allowed(&self, now: NaiveDateTime) -> NaiveDateTime {
        let t = now.time();
        if !self.contains(t) {
            return now;
        }
        let today_end = now.date().and_time(self.end);
        if self.start > self.end && t >= self.start {
            today_end + Duration::days(1)
        } else {
            today_end
        }
    }
}

impl std::fmt::Display for QuietHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start(), self.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(d: u32, h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2025, 3, d).unwrap().and_hms_opt(h, m, 0).unwrap()
    }

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn crossing_midnight() {
        let q = QuietHours::parse("22:00-08:00").unwrap();
        assert_eq!(q.to_string(), "22:00-08:00");
        assert!(q.contains(t(22, 0)) && q.contains(t(23, 59)) && q.contains(t(0, 0)) && q.contains(t(7, 59)));
        assert!(!q.contains(t(8, 0)) && !q.contains(t(12, 0)) && !q.contains(t(21, 59)));
        // Late evening: tomorrow morning. Small hours: this morning. Daytime: now.
        assert_eq!(q.next_allowed(at(1, 23, 30)), at(2, 8, 0));
        assert_eq!(q.next_allowed(at(1, 22, 0)), at(2, 8, 0));
        assert_eq!(q.next_allowed(at(2, 3, 15)), at(2, 8, 0));
        assert_eq!(q.next_allowed(at(2, 8, 0)), at(2, 8, 0));
        assert_eq!(q.next_allowed(at(2, 14, 5)), at(2, 14, 5));
        // The end of the month rolls over.
        assert_eq!(q.next_allowed(at(31, 23, 0)), NaiveDate::from_ymd_opt(2025, 4, 1).unwrap().and_hms_opt(8, 0, 0).unwrap());
    }

    #[test]
    fn within_a_day() {
        let q = QuietHours::parse(" 12:00 - 13:30 ").unwrap();
        assert_eq!((q.start(), q.end()), ("12:00".to_string(), "13:30".to_string()));
        assert!(!q.contains(t(11, 59)) && q.contains(t(12, 0)) && q.contains(t(13, 29)) && !q.contains(t(13, 30)));
        assert!(!q.contains(t(0, 30)) && !q.contains(t(23, 0)));
        assert_eq!(q.next_allowed(at(5, 12, 45)), at(5, 13, 30));
        assert_eq!(q.next_allowed(at(5, 9, 0)), at(5, 9, 0));
        assert_eq!(q.next_allowed(at(5, 13, 30)), at(5, 13, 30));
    }

    #[test]
    fn bad_input_says_what_to_fix() {
        for bad in ["", "22:00", "25:00-08:00", "22:00-8h", "abc-def"] {
            assert!(QuietHours::parse(bad).is_err(), "{bad} accepted");
        }
        let e = QuietHours::parse("22:00").unwrap_err();
        assert!(e.en.contains("22:00-08:00"), "{}", e.en);
        let e = QuietHours::new("09:00", "09:00").unwrap_err();
        assert!(e.en.contains("different"), "{}", e.en);
        assert_eq!(QuietHours::parse("22:00～08:00").unwrap(), QuietHours::new("22:00", "08:00").unwrap());
    }
}
