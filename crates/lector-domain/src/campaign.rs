//! Campaigns (群发任务): the moves between campaign states, and a campaign as staff write it.
//!
//! `draft → scheduled | sending`, `scheduled → sending`, `sending ⇄ paused`, `sending →
//! completed`; anything not yet completed may be cancelled. Every other move is refused with a
//! message saying where the campaign stands, so the caller can answer 409 and change nothing.

use crate::messaging::{CampaignStatus, Purpose};
use crate::quiet::QuietHours;
use crate::{text, FieldErrors, Msg};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

code_enum!(
    /// What staff (or the scheduler) do to a campaign.
    CampaignAction {
        Schedule = "schedule", "排期发送", "Schedule";
        Start = "start", "开始发送", "Send now" | "send";
        Pause = "pause", "暂停", "Pause";
        Resume = "resume", "继续发送", "Resume";
        Cancel = "cancel", "取消", "Cancel";
        Complete = "complete", "完成", "Complete";
    } "群发操作", "campaign action"
);

impl CampaignStatus {
    /// The state `action` leads to from this one, or why it is not allowed.
    pub fn after(self, action: CampaignAction) -> Result<CampaignStatus, Msg> {
        use CampaignAction as A;
        use CampaignStatus as S;
        let next = match (self, action) {
            (S::Draft, A::Schedule) => Some(S::Scheduled),
            (S::Draft | S::Scheduled, A::Start) => Some(S::Sending),
            (S::Sending, A::Pause) => Some(S::Paused),
            (S::Paused, A::Resume) => Some(S::Sending),
            (S::Sending, A::Complete) => Some(S::Completed),
            (S::Draft | S::Scheduled | S::Sending | S::Paused, A::Cancel) => Some(S::Cancelled),
            _ => None,
        };
        next.ok_or_else(|| {
            let (now, act) = (self.label(), action.label());
            Msg::new(
                format!("群发任务当前为“{}”，不能执行“{}”", now.zh, act.zh),
                format!("the campaign is {}; it cannot be {}", self.code(), past_tense(action)),
            )
        })
    }

    /// Whether the campaign's content (segment, template, channels, schedule) may still change.
    pub fn is_editable(self) -> bool {
        matches!(self, CampaignStatus::Draft | CampaignStatus::Scheduled)
    }

    /// Whether nothing will happen to the campaign any more.
    pub fn is_final(self) -> bool {
        matches!(self, CampaignStatus::Completed | CampaignStatus::Cancelled)
    }
}

fn past_tense(a: CampaignAction) -> &'static str {
    match a {
        CampaignAction::Schedule => "scheduled",
        CampaignAction::Start => "started",
        CampaignAction::Pause => "paused",
        CampaignAction::Resume => "resumed",
        CampaignAction::Cancel => "cancelled",
        CampaignAction::Complete => "completed",
    }
}

/// Longest campaign name.
pub const MAX_NAME: usize = 100;
/// Most channels in a preference list (one per channel kind is the sensible maximum).
pub const MAX_CHANNELS: usize = 6;

/// A campaign as typed in a form or sent to the API: raw text, parsed by [`CampaignDraft::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignDraft {
    pub name: String,
    pub segment_id: Option<i64>,
    pub template_id: Option<i64>,
    /// Purpose code; blank takes the template's purpose.
    pub purpose: Option<String>,
    /// Channel codes in order of preference.
    pub channels: Vec<String>,
    /// When to send: RFC 3339, or the library's local time (`2026-12-01 09:00`); blank means
    /// when someone presses "send now".
    pub scheduled_at: Option<String>,
    /// No sending between these local times, e.g. `22:00-08:00`; blank for none.
    pub quiet_hours: Option<String>,
}

/// A checked campaign. Whether the segment, template and channels exist is the store's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignInput {
    pub name: String,
    pub segment_id: i64,
    pub template_id: i64,
    pub purpose: Option<Purpose>,
    pub channels: Vec<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub quiet_hours: Option<QuietHours>,
}

impl CampaignDraft {
    /// Parses the draft; local times are read in `tz`, and a schedule must lie after `now`.
    pub fn parse<Tz: TimeZone>(&self, now: DateTime<Utc>, tz: &Tz) -> Result<CampaignInput, FieldErrors> {
        let mut errs = FieldErrors::default();
        let name = text::clean(&self.name);
        if name.is_empty() {
            errs.push("name", Msg::new("请填写群发任务名称", "enter a name for the campaign"));
        } else if name.chars().count() > MAX_NAME {
            errs.push("name", Msg::new(format!("名称最多 {MAX_NAME} 个字符"), format!("the name has at most {MAX_NAME} characters")));
        }
        if self.segment_id.is_none() {
            errs.push("segment_id", Msg::new("请选择读者分组", "choose a segment"));
        }
        if self.template_id.is_none() {
            errs.push("template_id", Msg::new("请选择消息模板", "choose a template"));
        }
        let purpose = match self.purpose.as_deref().map(text::clean).filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => errs.take("purpose", Purpose::parse(&p)),
        };
        let mut channels: Vec<String> = Vec::new();
        for c in self.channels.iter().map(|c| text::clean(c)).filter(|c| !c.is_empty()) {
            if channels.contains(&c) {
                errs.push("channels", Msg::new(format!("渠道“{c}”重复了"), format!("channel '{c}' is listed twice")));
            } else {
                channels.push(c);
            }
        }
        if channels.is_empty() {
            errs.push("channels", Msg::new("请至少选择一个发送渠道", "choose at least one channel"));
        } else if channels.len() > MAX_CHANNELS {
            errs.push("channels", Msg::new(format!("最多选择 {MAX_CHANNELS} 个渠道"), format!("choose at most {MAX_CHANNELS} channels")));
        }
        let scheduled_at = match self.scheduled_at.as_deref().map(text::clean).filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => errs.take("scheduled_at", parse_time(&raw, tz)).and_then(|t| {
                if t <= now {
                    errs.push("scheduled_at", Msg::new("排期时间应晚于现在", "the scheduled time must be in the future"));
                    None
                } else {
                    Some(t)
                }
            }),
        };
        let quiet_hours = match self.quiet_hours.as_deref().map(text::clean).filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => errs.take("quiet_hours", QuietHours::parse(&raw)),
        };
        errs.finish(|| CampaignInput {
            name,
            segment_id: self.segment_id.unwrap_or_default(),
            template_id: self.template_id.unwrap_or_default(),
            purpose,
            channels,
            scheduled_at,
            quiet_hours,
        })
    }
}

/// RFC 3339 as is; otherwise a local time as staff type it, read in `tz`.
fn parse_time<Tz: TimeZone>(raw: &str, tz: &Tz) -> Result<DateTime<Utc>, Msg> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = crate::tracking::parse_datetime(raw)?;
    tz.from_local_datetime(&local).earliest().map(|t| t.with_timezone(&Utc)).ok_or_else(|| {
        Msg::new(format!("当地时间中不存在“{raw}”（夏令时切换）"), format!("'{raw}' does not exist in local time (a clock change)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use CampaignAction as A;
    use CampaignStatus as S;

    #[test]
    fn every_legal_transition() {
        let legal = [
            (S::Draft, A::Schedule, S::Scheduled),
            (S::Draft, A::Start, S::Sending),
            (S::Scheduled, A::Start, S::Sending),
            (S::Sending, A::Pause, S::Paused),
            (S::Paused, A::Resume, S::Sending),
            (S::Sending, A::Complete, S::Completed),
            (S::Draft, A::Cancel, S::Cancelled),
            (S::Scheduled, A::Cancel, S::Cancelled),
            (S::Sending, A::Cancel, S::Cancelled),
            (S::Paused, A::Cancel, S::Cancelled),
        ];
        for (from, action, to) in legal {
            assert_eq!(from.after(action), Ok(to), "{from:?} --{action:?}-->");
        }
        // Every other pair is refused, with both languages naming the state.
        for &from in S::ALL {
            for &action in A::ALL {
                if legal.iter().any(|(f, a, _)| *f == from && *a == action) {
                    continue;
                }
                let err = from.after(action).expect_err(&format!("{from:?} --{action:?}--> should be refused"));
                assert!(err.zh.contains(from.label().zh.as_str()), "{}", err.zh);
                assert!(err.en.contains(from.code()), "{}", err.en);
            }
        }
    }

    #[test]
    fn final_states_accept_nothing() {
        for s in [S::Completed, S::Cancelled] {
            assert!(s.is_final() && !s.is_editable());
            assert!(A::ALL.iter().all(|a| s.after(*a).is_err()));
        }
        assert!(S::Draft.is_editable() && S::Scheduled.is_editable() && !S::Sending.is_editable());
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T02:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn draft() -> CampaignDraft {
        CampaignDraft {
            name: " 讲座通知 ".into(),
            segment_id: Some(3),
            template_id: Some(4),
            purpose: Some("news".into()),
            channels: vec!["wecom".into(), " sms ".into(), "email".into()],
            scheduled_at: None,
            quiet_hours: None,
        }
    }

    #[test]
    fn a_draft_parses() {
        let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let mut d = draft();
        d.scheduled_at = Some("2026-12-01 09:00".into());
        let input = d.parse(now(), &beijing).unwrap();
        assert_eq!(input.name, "讲座通知");
        assert_eq!(input.channels, ["wecom", "sms", "email"]);
        assert_eq!(input.purpose, Some(Purpose::News));
        assert_eq!(input.scheduled_at.unwrap().to_rfc3339(), "2026-12-01T01:00:00+00:00");
        d.scheduled_at = Some("2026-12-01T09:00:00+08:00".into());
        assert_eq!(d.parse(now(), &Utc).unwrap().scheduled_at.unwrap().to_rfc3339(), "2026-12-01T01:00:00+00:00");
        d.quiet_hours = Some("22:00-08:00".into());
        assert_eq!(d.parse(now(), &Utc).unwrap().quiet_hours.map(|q| (q.start(), q.end())), Some(("22:00".into(), "08:00".into())));
        d.purpose = Some(" ".into());
        assert_eq!(d.parse(now(), &Utc).unwrap().purpose, None);
    }

    #[test]
    fn bad_drafts_name_their_fields() {
        let d = CampaignDraft {
            name: "".into(),
            segment_id: None,
            template_id: None,
            purpose: Some("spam".into()),
            channels: vec!["email".into(), "email".into()],
            scheduled_at: Some("2020-01-01 08:00".into()),
            quiet_hours: Some("25:00-08:00".into()),
        };
        let errs = d.parse(now(), &Utc).unwrap_err();
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        for f in ["name", "segment_id", "template_id", "purpose", "channels", "scheduled_at", "quiet_hours"] {
            assert!(fields.contains(&f), "{f} not reported: {errs}");
        }
        let mut none = draft();
        none.channels = vec![" ".into()];
        assert!(none.parse(now(), &Utc).unwrap_err().get("channels").is_some());
        let mut garbled = draft();
        garbled.scheduled_at = Some("next tuesday".into());
        assert!(garbled.parse(now(), &Utc).unwrap_err().get("scheduled_at").unwrap().en.contains("next tuesday"));
    }
}
