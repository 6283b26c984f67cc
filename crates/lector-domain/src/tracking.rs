//! Reader tracking (读者跟踪): interactions with readers, follow-up tasks, hand-over of owners.

use crate::{text, FieldErrors, Msg};
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

code_enum!(
    /// How staff and reader were in contact.
    Channel {
        Visit = "visit", "到馆", "Visit";
        Phone = "phone", "电话", "Phone";
        Email = "email", "邮件", "Email";
        Qq = "qq", "QQ", "QQ";
        Wechat = "wechat", "微信", "WeChat";
        Chat = "chat", "在线咨询", "Online chat";
        Consultation = "consultation", "参考咨询", "Consultation";
        Training = "training", "培训", "Training";
        Event = "event", "活动", "Event";
    } "联系渠道", "channel"
);

code_enum!(
    /// Who started the contact.
    Direction {
        Inbound = "inbound", "读者来访/来电", "From the reader";
        Outbound = "outbound", "馆员主动联系", "From the library";
    } "联系方向", "direction"
);

code_enum!(
    /// Where a follow-up task stands.
    TaskStatus {
        Open = "open", "待办", "Open";
        Done = "done", "已完成", "Done";
        Cancelled = "cancelled", "已取消", "Cancelled";
    } "任务状态", "task status"
);

/// Parses a local date and time as staff type it: `2026-11-28 14:30`, `2026/11/28 14:30`,
/// `2026-11-28T14:30` (from a browser's datetime input) or a bare date (taken as 00:00).
pub fn parse_datetime(raw: &str) -> Result<NaiveDateTime, Msg> {
    let v = text::clean(raw).replace('/', "-").replace('T', " ");
    for fmt in ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&v, fmt) {
            return Ok(t);
        }
    }
    crate::reader::parse_date(&v).map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists")).map_err(|_| {
        Msg::new(
            format!("“{v}”不是有效的时间，请写作 2026-11-28 14:30"),
            format!("'{v}' is not a valid time; write it as 2026-11-28 14:30"),
        )
    })
}

/// An interaction as entered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InteractionDraft {
    pub channel: String,
    #[serde(default)]
    pub direction: Option<String>,
    pub subject: String,
    #[serde(default)]
    pub notes: Option<String>,
    /// Local time of the contact; now when absent.
    #[serde(default)]
    pub occurred_at: Option<String>,
}

/// A checked interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionInput {
    pub channel: Channel,
    pub direction: Direction,
    pub subject: String,
    pub notes: Option<String>,
    pub occurred_at: NaiveDateTime,
}

impl InteractionDraft {
    /// Checks every field; `now` is the local time, used when no time is given and to refuse
    /// contacts in the future.
    pub fn parse(&self, now: NaiveDateTime) -> Result<InteractionInput, FieldErrors> {
        let mut errs = FieldErrors::default();
        let channel = errs.take("channel", Channel::parse(&self.channel));
        let direction = errs.take("direction", Direction::parse(self.direction.as_deref().unwrap_or("inbound")));
        let subject = errs.take("subject", text::required_prose(&self.subject, 200, "主题", "subject"));
        let notes = errs.take("notes", text::optional_prose(self.notes.as_deref(), 4000, "记录内容", "notes")).flatten();
        let occurred_at = match self.occurred_at.as_deref().filter(|s| !s.trim().is_empty()) {
            None => Some(now),
            Some(raw) => errs.take("occurred_at", parse_datetime(raw)),
        };
        if occurred_at.is_some_and(|t| t > now + chrono::Duration::minutes(5)) {
            errs.push("occurred_at", Msg::new("联系时间不能晚于现在", "the contact cannot be in the future"));
        }
        errs.finish(|| InteractionInput {
            channel: channel.expect("checked"),
            direction: direction.expect("checked"),
            subject: subject.expect("checked"),
            notes,
            occurred_at: occurred_at.expect("checked"),
        })
    }
}

/// A follow-up task as entered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDraft {
    pub title: String,
    #[serde(default)]
    pub notes: Option<String>,
    pub due_on: String,
    /// User name of the staff member who should do it.
    pub assignee: String,
}

/// A checked task. The assignee is checked against the store when it is saved.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInput {
    pub title: String,
    pub notes: Option<String>,
    pub due_on: NaiveDate,
    pub assignee: String,
}

impl TaskDraft {
    pub fn parse(&self, today: NaiveDate) -> Result<TaskInput, FieldErrors> {
        let mut errs = FieldErrors::default();
        let title = errs.take("title", text::required_prose(&self.title, 200, "任务标题", "title"));
        let notes = errs.take("notes", text::optional_prose(self.notes.as_deref(), 4000, "说明", "notes")).flatten();
        let due_on = errs.take("due_on", crate::reader::parse_date(&self.due_on));
        if due_on.is_some_and(|d| d < today) {
            errs.push("due_on", Msg::new("截止日期不能早于今天", "the due date cannot be in the past"));
        }
        let assignee = text::clean(&self.assignee).to_lowercase();
        if assignee.is_empty() {
            errs.push("assignee", Msg::new("请选择负责完成的馆员", "choose who should do it"));
        }
        errs.finish(|| TaskInput { title: title.expect("checked"), notes, due_on: due_on.expect("checked"), assignee })
    }
}

/// Why readers change owner: required, so the history explains itself.
pub fn parse_handover_reason(raw: &str) -> Result<String, Msg> {
    text::required_prose(raw, 500, "移交原因", "reason for the hand-over")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap().and_hms_opt(15, 0, 0).unwrap()
    }

    #[test]
    fn interactions() {
        let d = InteractionDraft { channel: "电话".into(), subject: " 咨询借阅 ".into(), ..Default::default() };
        let i = d.parse(now()).unwrap();
        assert_eq!((i.channel, i.direction, i.subject.as_str(), i.occurred_at), (Channel::Phone, Direction::Inbound, "咨询借阅", now()));
        let bad = InteractionDraft {
            channel: "pigeon".into(),
            subject: "".into(),
            occurred_at: Some("2027-01-01 10:00".into()),
            ..Default::default()
        };
        let e = bad.parse(now()).unwrap_err();
        for f in ["channel", "subject", "occurred_at"] {
            assert!(e.get(f).is_some(), "{f}: {e}");
        }
        assert_eq!(
            parse_datetime("2026/11/28T09:05").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 28).unwrap().and_hms_opt(9, 5, 0).unwrap()
        );
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn tasks() {
        let today = now().date();
        let t = TaskDraft { title: "回电".into(), due_on: "2026-12-01".into(), assignee: "LiNa".into(), notes: None }.parse(today).unwrap();
        assert_eq!(t.assignee, "lina");
        let e =
            TaskDraft { title: "x".repeat(201), due_on: "2026-01-01".into(), assignee: "".into(), notes: None }.parse(today).unwrap_err();
        for f in ["title", "due_on", "assignee"] {
            assert!(e.get(f).is_some(), "{f}: {e}");
        }
        assert!(parse_handover_reason("  ").is_err());
    }
}
