//! Service cases (服务工单): suggestions, complaints, inquiries, purchase requests and praise,
//! followed from receipt to a satisfied reader.
//!
//! CONTRACT: the types and signatures here are what the store and web layers build on.
//!
//! The default workflow: received → triaged (判定) → assigned to a department → solution
//! proposed → awaiting leadership approval → in progress → resolved (reply to the reader) →
//! closed; a reader who is not satisfied reopens a resolved or closed case. Staff may stop a
//! received, assigned or in-progress case to ask the reader a question (awaiting the reader);
//! the reader's answer, or withdrawing the question, returns it to where it was. [`next_status`]
//! is the whole state machine; everything else is bookkeeping in the store.

use crate::{text, FieldErrors, Msg};
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

code_enum!(
    /// What the reader brings.
    CaseKind {
        Suggestion = "suggestion", "建议", "Suggestion";
        Complaint = "complaint", "投诉", "Complaint";
        Inquiry = "inquiry", "咨询", "Inquiry";
        Purchase = "purchase", "荐购", "Purchase request";
        Praise = "praise", "表扬", "Praise";
    } "工单类型", "case kind"
);

code_enum!(
    /// Where a case stands. See [`next_status`] for the moves between them.
    CaseStatus {
        Received = "received", "已受理", "Received";
        Triaged = "triaged", "已判定", "Triaged";
        Assigned = "assigned", "已分派", "Assigned to a department";
        AwaitingApproval = "awaiting_approval", "待领导审批", "Awaiting approval";
        InProgress = "in_progress", "处理中", "In progress";
        AwaitingReader = "awaiting_reader", "待读者补充", "Awaiting the reader";
        Resolved = "resolved", "已答复", "Resolved";
        Closed = "closed", "已关闭", "Closed";
    } "工单状态", "case status"
);

code_enum!(
    Priority {
        Low = "low", "低", "Low";
        Normal = "normal", "普通", "Normal";
        High = "high", "高", "High";
        Urgent = "urgent", "紧急", "Urgent";
    } "优先级", "priority"
);

code_enum!(
    /// The outcome of triage (判定).
    TriageOutcome {
        Accepted = "accepted", "受理", "Accepted";
        Duplicate = "duplicate", "重复", "Duplicate";
        OutOfScope = "out_of_scope", "不属受理范围", "Out of scope";
    } "判定结果", "triage outcome"
);

/// How a kind of case moves. Configurable per kind by admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    /// A proposed solution must be approved by a leader before work starts.
    pub requires_approval: bool,
    /// Days after resolution without a rating before the case closes by itself.
    pub auto_close_days: u32,
}

impl Workflow {
    /// The library's default: complaints, suggestions and purchase requests need approval;
    /// inquiries and praise do not.
    ///
    /// An unrated resolved case closes by itself after 7 days (14 for purchase requests, which
    /// readers often answer only once the book has arrived). `auto_close_days == 0` means never.
    pub fn default_for(kind: CaseKind) -> Workflow {
        match kind {
            CaseKind::Complaint | CaseKind::Suggestion => Workflow { requires_approval: true, auto_close_days: 7 },
            CaseKind::Purchase => Workflow { requires_approval: true, auto_close_days: 14 },
            CaseKind::Inquiry | CaseKind::Praise => Workflow { requires_approval: false, auto_close_days: 7 },
        }
    }
}

/// Something done to a case. Each names what it needs; [`next_status`] says whether it is
/// allowed from a status and where it leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CaseAction {
    /// Received → Triaged (accepted: category and priority set) or Closed (duplicate of
    /// `duplicate_of`, or out of scope).
    Triage { outcome: TriageOutcome, category: Option<String>, priority: Priority, duplicate_of: Option<i64>, comment: Option<String> },
    /// Triaged → Assigned to a department; also Assigned → Assigned (transfer to another
    /// department).
    Assign { department: String, comment: Option<String> },
    /// A department member takes the case (Assigned, stays Assigned).
    Claim,
    /// Assigned → AwaitingApproval (workflow requires approval) or InProgress.
    Propose { solution: String },
    /// AwaitingApproval → InProgress (leaders only).
    Approve { comment: Option<String> },
    /// AwaitingApproval → Assigned with a comment back to the department (leaders only).
    RejectProposal { comment: String },
    /// InProgress → Resolved with the reply to the reader.
    Resolve { reply: String },
    /// Resolved → Closed (after the rating, the waiting period, or by staff).
    Close { comment: Option<String> },
    /// Resolved or Closed → Assigned, when the reader is not satisfied.
    Reopen { reason: String },
    /// Received, Assigned or InProgress → AwaitingReader: staff ask the reader for more
    /// information; the deadline clock stops.
    RequestInfo { question: String },
    /// AwaitingReader → the status the question was asked in, with the reader's answer.
    ReaderReply { text: String },
    /// AwaitingReader → the status the question was asked in, without an answer.
    WithdrawQuestion { comment: Option<String> },
}

impl CaseAction {
    /// The stable code of the action (`triage`, `assign`, …) for events and the API.
    pub fn code(&self) -> &'static str {
        match self {
            CaseAction::Triage { .. } => "triage",
            CaseAction::Assign { .. } => "assign",
            CaseAction::Claim => "claim",
            CaseAction::Propose { .. } => "propose",
            CaseAction::Approve { .. } => "approve",
            CaseAction::RejectProposal { .. } => "reject_proposal",
            CaseAction::Resolve { .. } => "resolve",
            CaseAction::Close { .. } => "close",
            CaseAction::Reopen { .. } => "reopen",
            CaseAction::RequestInfo { .. } => "request_info",
            CaseAction::ReaderReply { .. } => "reader_reply",
            CaseAction::WithdrawQuestion { .. } => "withdraw_question",
        }
    }

    /// What the action is called in messages (zh, en).
    fn label(&self) -> (&'static str, &'static str) {
        action_label(self.code())
    }

    /// Checks the action's own text (non-empty where required, at most 4,000 characters; a
    /// question to the reader and the reader's answer at most 2,000).
    pub fn check(&self) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        match self {
            CaseAction::Triage { outcome, category, duplicate_of, comment, .. } => {
                if let Some(c) = category {
                    if text::clean(c).chars().count() > 32 {
                        errs.push("category", Msg::new("类别代码最多 32 个字符", "the category code has at most 32 characters"));
                    }
                }
                if *outcome == TriageOutcome::Duplicate && duplicate_of.is_none() {
                    errs.push("duplicate_of", Msg::new("判定为重复时请填写与之重复的工单", "name the case this one duplicates"));
                }
                if *outcome != TriageOutcome::Duplicate && duplicate_of.is_some() {
                    errs.push("duplicate_of", Msg::new("只有判定为重复时才填写重复工单", "only a duplicate names the case it duplicates"));
                }
                errs.take("comment", text::optional_prose(comment.as_deref(), MAX_TEXT, "说明", "comment"));
            }
            CaseAction::Assign { department, comment } => {
                if text::clean(department).is_empty() {
                    errs.push("department", Msg::new("请选择负责的部门", "choose the responsible department"));
                }
                errs.take("comment", text::optional_prose(comment.as_deref(), MAX_TEXT, "说明", "comment"));
            }
            CaseAction::Claim => {}
            CaseAction::Propose { solution } => {
                errs.take("solution", text::required_prose(solution, MAX_TEXT, "解决方案", "solution"));
            }
            CaseAction::Approve { comment } | CaseAction::Close { comment } | CaseAction::WithdrawQuestion { comment } => {
                errs.take("comment", text::optional_prose(comment.as_deref(), MAX_TEXT, "说明", "comment"));
            }
            CaseAction::RejectProposal { comment } => {
                errs.take("comment", text::required_prose(comment, MAX_TEXT, "驳回意见", "comment on the rejection"));
            }
            CaseAction::Resolve { reply } => {
                errs.take("reply", text::required_prose(reply, MAX_TEXT, "给读者的答复", "reply to the reader"));
            }
            CaseAction::Reopen { reason } => {
                errs.take("reason", text::required_prose(reason, MAX_TEXT, "重新打开的原因", "reason for reopening"));
            }
            CaseAction::RequestInfo { question } => {
                errs.take("question", text::required_prose(question, MAX_QUESTION, "给读者的问题", "question to the reader"));
            }
            CaseAction::ReaderReply { text: answer } => {
                errs.take("text", text::required_prose(answer, MAX_QUESTION, "补充的信息", "answer"));
            }
        }
        errs.finish(|| ())
    }
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalTransition {
    pub from: CaseStatus,
    pub action: &'static str,
    pub message: Msg,
}

/// The status a case moves to when `action` is taken in `from` under `workflow`, or why it
/// cannot. Pure; the store calls it inside the transaction that records the event.
///
/// `resume` is, for a case awaiting the reader, the status it was in when the question was
/// asked: the reader's answer or a withdrawal returns it there. Ignored in other statuses.
pub fn next_status(
    from: CaseStatus,
    action: &CaseAction,
    workflow: Workflow,
    resume: Option<CaseStatus>,
) -> Result<CaseStatus, IllegalTransition> {
    use CaseStatus::*;
    let to = match (from, action) {
        (Received, CaseAction::Triage { outcome: TriageOutcome::Accepted, .. }) => Some(Triaged),
        (Received, CaseAction::Triage { .. }) => Some(Closed),
        (Triaged | Assigned, CaseAction::Assign { .. }) => Some(Assigned),
        (Assigned, CaseAction::Claim) => Some(Assigned),
        (Assigned, CaseAction::Propose { .. }) => Some(if workflow.requires_approval { AwaitingApproval } else { InProgress }),
        (AwaitingApproval, CaseAction::Approve { .. }) => Some(InProgress),
        (AwaitingApproval, CaseAction::RejectProposal { .. }) => Some(Assigned),
        (InProgress, CaseAction::Resolve { .. }) => Some(Resolved),
        (Resolved, CaseAction::Close { .. }) => Some(Closed),
        (Resolved | Closed, CaseAction::Reopen { .. }) => Some(Assigned),
        (s, CaseAction::RequestInfo { .. }) if ASKS_FROM.contains(&s) => Some(AwaitingReader),
        (AwaitingReader, CaseAction::ReaderReply { .. } | CaseAction::WithdrawQuestion { .. }) => resume.filter(|r| ASKS_FROM.contains(r)),
        _ => None,
    };
    to.ok_or_else(|| illegal(from, action))
}

/// The statuses in which staff may ask the reader a question: before triage, and while the
/// department works on the case.
pub const ASKS_FROM: [CaseStatus; 3] = [CaseStatus::Received, CaseStatus::Assigned, CaseStatus::InProgress];

/// Codes of the actions allowed from `from` (whatever the workflow).
pub fn allowed_actions(from: CaseStatus) -> &'static [&'static str] {
    use CaseStatus::*;
    match from {
        Received => &["triage", "request_info"],
        Triaged => &["assign"],
        Assigned => &["assign", "claim", "propose", "request_info"],
        AwaitingApproval => &["approve", "reject_proposal"],
        InProgress => &["resolve", "request_info"],
        AwaitingReader => &["reader_reply", "withdraw_question"],
        Resolved => &["close", "reopen"],
        Closed => &["reopen"],
    }
}

fn action_label(code: &str) -> (&'static str, &'static str) {
    match code {
        "triage" => ("判定", "triaged"),
        "assign" => ("分派或转交部门", "assigned to a department"),
        "claim" => ("认领", "claimed"),
        "propose" => ("提出解决方案", "given a proposed solution"),
        "approve" => ("审批通过", "approved"),
        "reject_proposal" => ("驳回方案", "have its proposal rejected"),
        "resolve" => ("答复读者", "resolved"),
        "close" => ("关闭", "closed"),
        "reopen" => ("重新打开", "reopened"),
        "request_info" => ("请读者补充信息", "sent to the reader with a question"),
        "reader_reply" => ("由读者补充信息", "answered by the reader"),
        "withdraw_question" => ("撤回给读者的问题", "have a question withdrawn"),
        _ => ("处理", "acted on"),
    }
}

fn illegal(from: CaseStatus, action: &CaseAction) -> IllegalTransition {
    let (zh, en) = action.label();
    let status = from.label();
    let allowed = allowed_actions(from);
    let allowed_zh: Vec<&str> = allowed.iter().map(|c| action_label(c).0).collect();
    let no_proposal = matches!(action, CaseAction::Approve { .. } | CaseAction::RejectProposal { .. })
        && matches!(from, CaseStatus::Received | CaseStatus::Triaged | CaseStatus::Assigned);
    let no_question =
        matches!(action, CaseAction::ReaderReply { .. } | CaseAction::WithdrawQuestion { .. }) && from != CaseStatus::AwaitingReader;
    let message = if no_proposal {
        Msg::new(
            format!("工单当前为“{}”，尚未提出解决方案，不能{zh}；请部门先提出方案", status.zh),
            format!(
                "the case is {} ({}) and no solution has been proposed yet, so it cannot be {en}; the department must propose one first",
                from.code(),
                status.en
            ),
        )
    } else if no_question {
        Msg::new(
            format!("工单当前为“{}”，没有等待读者回答的问题，不能{zh}", status.zh),
            format!("the case is {} ({}) and has no open question for the reader, so it cannot be {en}", from.code(), status.en),
        )
    } else {
        Msg::new(
            format!("工单当前为“{}”，不能{zh}；此状态下可以：{}", status.zh, allowed_zh.join("、")),
            format!(
                "a case that is {} ({}) cannot be {en}; from {} the allowed actions are: {}",
                from.code(),
                status.en,
                from.code(),
                allowed.join(", ")
            ),
        )
    };
    IllegalTransition { from, action: action.code(), message }
}

/// Longest free text in a case (body, proposal, reply, comments).
pub const MAX_TEXT: usize = 4000;

/// Longest question to the reader, and longest answer from the reader.
pub const MAX_QUESTION: usize = 2000;

/// A case as a reader or staff member files it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseDraft {
    pub kind: String,
    pub subject: String,
    pub body: String,
    /// The reader's card number, when known.
    #[serde(default)]
    pub card_no: Option<String>,
    /// Name and a way to reach the submitter (required from the portal without an account).
    #[serde(default)]
    pub contact_name: Option<String>,
    #[serde(default)]
    pub contact: Option<String>,
}

/// A checked case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseInput {
    pub kind: CaseKind,
    pub subject: String,
    pub body: String,
    pub card_no: Option<String>,
    pub contact_name: Option<String>,
    /// An email or a mobile, in canonical form.
    pub contact: Option<String>,
}

impl CaseDraft {
    /// `require_contact`: the portal without an account needs a name and an email or mobile.
    pub fn parse(&self, require_contact: bool) -> Result<CaseInput, FieldErrors> {
        let mut errs = FieldErrors::default();
        let kind = errs.take("kind", CaseKind::parse(&self.kind));
        let subject = errs.take("subject", text::required_prose(&self.subject, 200, "标题", "subject"));
        let body = errs.take("body", text::required_prose(&self.body, MAX_TEXT, "内容", "text of the case"));
        let card_no = match self.card_no.as_deref().filter(|s| !text::clean(s).is_empty()) {
            None => None,
            Some(raw) => errs.take("card_no", crate::reader::CardNo::parse(raw)).map(|c| c.as_str().to_string()),
        };
        let contact_name =
            errs.take("contact_name", text::optional_prose(self.contact_name.as_deref(), 64, "联系人姓名", "contact name")).flatten();
        let contact = match self.contact.as_deref().map(text::clean).filter(|s| !s.is_empty()) {
            None => None,
            Some(v) => errs.take("contact", parse_contact(&v)),
        };
        if require_contact {
            if contact_name.is_none() && errs.get("contact_name").is_none() {
                errs.push("contact_name", Msg::new("请填写您的姓名，以便我们答复", "enter your name so that we can reply"));
            }
            if contact.is_none() && errs.get("contact").is_none() {
                errs.push(
                    "contact",
                    Msg::new("请填写电子邮箱或手机号，以便我们答复", "enter an email address or a mobile number so that we can reply"),
                );
            }
        }
        errs.finish(|| CaseInput {
            kind: kind.expect("checked"),
            subject: subject.expect("checked"),
            body: body.expect("checked"),
            card_no,
            contact_name,
            contact,
        })
    }
}

/// An email address or a mainland mobile number, in canonical form.
fn parse_contact(v: &str) -> Result<String, Msg> {
    if v.contains('@') {
        crate::contact::Email::parse(v).map(|e| e.as_str().to_string())
    } else {
        crate::contact::Mobile::parse(v).map(|m| m.as_str().to_string()).map_err(|_| {
            Msg::new(format!("“{v}”既不是电子邮箱也不是手机号"), format!("'{v}' is neither an email address nor a mobile number"))
        })
    }
}

/// A satisfaction rating (满意度) given by the reader when a case is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingDraft {
    /// 1 (very dissatisfied) to 5 (very satisfied).
    pub satisfaction: u8,
    /// How likely the reader is to recommend the library, 0 to 10 (NPS).
    #[serde(default)]
    pub recommend: Option<u8>,
    #[serde(default)]
    pub comment: Option<String>,
}

impl RatingDraft {
    pub fn check(&self) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        if !(1..=5).contains(&self.satisfaction) {
            errs.push(
                "satisfaction",
                Msg::new(
                    format!("满意度应为 1 到 5（收到 {}）", self.satisfaction),
                    format!("satisfaction is 1 to 5 (got {})", self.satisfaction),
                ),
            );
        }
        if let Some(r) = self.recommend.filter(|r| *r > 10) {
            errs.push(
                "recommend",
                Msg::new(format!("推荐意愿应为 0 到 10（收到 {r}）"), format!("how likely to recommend is 0 to 10 (got {r})")),
            );
        }
        errs.take("comment", text::optional_prose(self.comment.as_deref(), 2000, "评价", "comment"));
        errs.finish(|| ())
    }
}

/// The library's working time: weekdays from `day_start` to `day_end`, except holidays, plus
/// make-up working days (调休) on weekends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkCalendar {
    pub day_start: chrono::NaiveTime,
    pub day_end: chrono::NaiveTime,
    pub holidays: Vec<NaiveDate>,
    pub extra_workdays: Vec<NaiveDate>,
}

impl WorkCalendar {
    /// 08:30–17:30, Monday to Friday, no holidays.
    pub fn standard() -> WorkCalendar {
        WorkCalendar {
            day_start: chrono::NaiveTime::from_hms_opt(8, 30, 0).expect("valid time"),
            day_end: chrono::NaiveTime::from_hms_opt(17, 30, 0).expect("valid time"),
            holidays: Vec::new(),
            extra_workdays: Vec::new(),
        }
    }

    /// Whether `day` is a working day: a make-up working day, or a weekday that is no holiday.
    pub fn is_workday(&self, day: NaiveDate) -> bool {
        use chrono::Datelike;
        if self.extra_workdays.contains(&day) {
            return true;
        }
        !self.holidays.contains(&day) && day.weekday().number_from_monday() <= 5
    }

    /// Checks the calendar makes sense: a working day that ends after it starts.
    pub fn check(&self) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        if self.day_end <= self.day_start {
            errs.push("day_end", Msg::new("下班时间应晚于上班时间", "the working day must end after it starts"));
        }
        errs.finish(|| ())
    }

    /// The moment `hours` working hours after `start` (local time). Time outside working hours
    /// does not count: a case received at night starts counting the next working morning. A
    /// deadline that falls exactly at the end of a working day stays there.
    pub fn add_working_hours(&self, start: NaiveDateTime, hours: u32) -> NaiveDateTime {
        self.add_working_time(start, chrono::Duration::hours(hours as i64))
    }

    /// The moment `time` of working time after `start`, counted as [`Self::add_working_hours`]
    /// does (to the minute and below).
    pub fn add_working_time(&self, start: NaiveDateTime, time: chrono::Duration) -> NaiveDateTime {
        if time <= chrono::Duration::zero() || self.day_end <= self.day_start {
            return start + time.max(chrono::Duration::zero());
        }
        let mut remaining = time;
        let mut day = start.date();
        let mut from = start;
        for _ in 0..MAX_CALENDAR_DAYS {
            if self.is_workday(day) {
                let open = day.and_time(self.day_start);
                let close = day.and_time(self.day_end);
                let begin = from.max(open);
                if begin < close {
                    let available = close - begin;
                    if remaining <= available {
                        return begin + remaining;
                    }
                    remaining -= available;
                }
            }
            let Some(next) = day.succ_opt() else { break };
            day = next;
            from = day.and_time(self.day_start);
        }
        start + time
    }

    /// The working time between `from` and `to` (zero when `to` is not later): what a case
    /// waiting for the reader over that stretch owes its deadline. The inverse of
    /// [`Self::add_working_time`] for a start inside working hours.
    pub fn working_time_between(&self, from: NaiveDateTime, to: NaiveDateTime) -> chrono::Duration {
        if to <= from {
            return chrono::Duration::zero();
        }
        if self.day_end <= self.day_start {
            return to - from;
        }
        let mut total = chrono::Duration::zero();
        let mut day = from.date();
        for _ in 0..MAX_CALENDAR_DAYS {
            if day > to.date() {
                break;
            }
            if self.is_workday(day) {
                let begin = from.max(day.and_time(self.day_start));
                let end = to.min(day.and_time(self.day_end));
                if begin < end {
                    total += end - begin;
                }
            }
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
        total
    }
}

/// Bound on the days a calendar walk visits: even a calendar of holidays ends; 100 years of
/// days is far beyond any deadline or wait.
const MAX_CALENDAR_DAYS: usize = 36_600;

/// Working hours allowed to resolve a case of `kind` and `priority` (the default service
/// levels; admins override them per kind with [`ServiceLevels`]).
///
/// A working day is 9 hours. Complaints are answered fastest after inquiries; suggestions and
/// purchase requests need more time (a purchase goes through acquisitions).
///
/// | kind | urgent | high | normal | low |
/// |---|---|---|---|---|
/// | inquiry | 4 | 8 | 16 | 40 |
/// | complaint | 8 | 16 | 40 | 80 |
/// | praise | 8 | 16 | 40 | 80 |
/// | suggestion | 16 | 40 | 80 | 160 |
/// | purchase | 24 | 80 | 120 | 200 |
pub fn default_service_hours(kind: CaseKind, priority: Priority) -> u32 {
    let table: [u32; 4] = match kind {
        CaseKind::Inquiry => [4, 8, 16, 40],
        CaseKind::Complaint | CaseKind::Praise => [8, 16, 40, 80],
        CaseKind::Suggestion => [16, 40, 80, 160],
        CaseKind::Purchase => [24, 80, 120, 200],
    };
    match priority {
        Priority::Urgent => table[0],
        Priority::High => table[1],
        Priority::Normal => table[2],
        Priority::Low => table[3],
    }
}

/// Most working hours a service level may allow (about a year of 9-hour working days).
pub const MAX_SERVICE_HOURS: u32 = 2000;

/// The service levels (服务时限) of one kind of case: working hours allowed per priority, from
/// triage to resolution. Admins set them per kind; a deadline is computed once, at triage, so a
/// change applies to cases triaged afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLevels {
    pub urgent: u32,
    pub high: u32,
    pub normal: u32,
    pub low: u32,
}

impl ServiceLevels {
    /// The library's defaults ([`default_service_hours`]).
    pub fn default_for(kind: CaseKind) -> ServiceLevels {
        let h = |p| default_service_hours(kind, p);
        ServiceLevels { urgent: h(Priority::Urgent), high: h(Priority::High), normal: h(Priority::Normal), low: h(Priority::Low) }
    }

    pub fn hours(&self, priority: Priority) -> u32 {
        match priority {
            Priority::Urgent => self.urgent,
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }

    /// Each level is 1 to [`MAX_SERVICE_HOURS`] working hours, and a more urgent priority never
    /// gets more time than a less urgent one (which catches swapped entries).
    pub fn check(&self) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        let levels =
            [(Priority::Urgent, self.urgent), (Priority::High, self.high), (Priority::Normal, self.normal), (Priority::Low, self.low)];
        for (p, h) in levels {
            if !(1..=MAX_SERVICE_HOURS).contains(&h) {
                errs.push(
                    p.code(),
                    Msg::new(
                        format!("“{}”的时限应为 1 到 {MAX_SERVICE_HOURS} 个工作小时（收到 {h}）", p.label().zh),
                        format!("the {} service level is 1 to {MAX_SERVICE_HOURS} working hours (got {h})", p.code()),
                    ),
                );
            }
        }
        if errs.is_empty() {
            for pair in levels.windows(2) {
                let ((more, h1), (less, h2)) = (pair[0], pair[1]);
                if h1 > h2 {
                    errs.push(
                        more.code(),
                        Msg::new(
                            format!("“{}”的时限（{h1}）不能长于“{}”（{h2}）", more.label().zh, less.label().zh),
                            format!("the {} service level ({h1} h) cannot be longer than the {} one ({h2} h)", more.code(), less.code()),
                        ),
                    );
                }
            }
        }
        errs.finish(|| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    #[test]
    fn json_spells_every_code_as_code_does() {
        let json = |v: serde_json::Value| v.as_str().unwrap().to_string();
        for s in CaseStatus::ALL {
            assert_eq!(json(serde_json::to_value(s).unwrap()), s.code());
        }
        for o in TriageOutcome::ALL {
            assert_eq!(json(serde_json::to_value(o).unwrap()), o.code());
        }
    }

    fn triage(outcome: TriageOutcome) -> CaseAction {
        let duplicate_of = (outcome == TriageOutcome::Duplicate).then_some(1);
        CaseAction::Triage { outcome, category: None, priority: Priority::Normal, duplicate_of, comment: None }
    }

    /// One action of every kind (triage in each outcome).
    fn all_actions() -> Vec<CaseAction> {
        vec![
            triage(TriageOutcome::Accepted),
            triage(TriageOutcome::Duplicate),
            triage(TriageOutcome::OutOfScope),
            CaseAction::Assign { department: "circulation".into(), comment: None },
            CaseAction::Claim,
            CaseAction::Propose { solution: "buy more chairs".into() },
            CaseAction::Approve { comment: None },
            CaseAction::RejectProposal { comment: "too expensive".into() },
            CaseAction::Resolve { reply: "done".into() },
            CaseAction::Close { comment: None },
            CaseAction::Reopen { reason: "still noisy".into() },
            CaseAction::RequestInfo { question: "which floor?".into() },
            CaseAction::ReaderReply { text: "the third".into() },
            CaseAction::WithdrawQuestion { comment: None },
        ]
    }

    /// The legal moves, written out by hand: the status reached with and without approval. A
    /// case awaiting the reader was asked while `resume`.
    fn expected(from: CaseStatus, action: &CaseAction, resume: CaseStatus) -> Option<(CaseStatus, CaseStatus)> {
        use CaseStatus::*;
        match (from, action) {
            (Received, CaseAction::Triage { outcome: TriageOutcome::Accepted, .. }) => Some((Triaged, Triaged)),
            (Received, CaseAction::Triage { .. }) => Some((Closed, Closed)),
            (Triaged, CaseAction::Assign { .. }) => Some((Assigned, Assigned)),
            (Assigned, CaseAction::Assign { .. }) => Some((Assigned, Assigned)),
            (Assigned, CaseAction::Claim) => Some((Assigned, Assigned)),
            (Assigned, CaseAction::Propose { .. }) => Some((AwaitingApproval, InProgress)),
            (AwaitingApproval, CaseAction::Approve { .. }) => Some((InProgress, InProgress)),
            (AwaitingApproval, CaseAction::RejectProposal { .. }) => Some((Assigned, Assigned)),
            (InProgress, CaseAction::Resolve { .. }) => Some((Resolved, Resolved)),
            (Resolved, CaseAction::Close { .. }) => Some((Closed, Closed)),
            (Resolved, CaseAction::Reopen { .. }) => Some((Assigned, Assigned)),
            (Closed, CaseAction::Reopen { .. }) => Some((Assigned, Assigned)),
            (Received, CaseAction::RequestInfo { .. }) => Some((AwaitingReader, AwaitingReader)),
            (Assigned, CaseAction::RequestInfo { .. }) => Some((AwaitingReader, AwaitingReader)),
            (InProgress, CaseAction::RequestInfo { .. }) => Some((AwaitingReader, AwaitingReader)),
            (AwaitingReader, CaseAction::ReaderReply { .. }) => Some((resume, resume)),
            (AwaitingReader, CaseAction::WithdrawQuestion { .. }) => Some((resume, resume)),
            _ => None,
        }
    }

    #[test]
    fn every_status_and_action_pair() {
        let with = Workflow { requires_approval: true, auto_close_days: 7 };
        let without = Workflow { requires_approval: false, auto_close_days: 7 };
        // Each pair is tried for every status a question may have been asked in.
        for resume in ASKS_FROM {
            let mut legal = 0;
            let mut illegal = 0;
            for &from in CaseStatus::ALL {
                for action in all_actions() {
                    assert!(action.check().is_ok(), "{action:?}");
                    let got = (next_status(from, &action, with, Some(resume)), next_status(from, &action, without, Some(resume)));
                    match expected(from, &action, resume) {
                        Some((a, b)) => {
                            assert_eq!(got.0, Ok(a), "{from:?} {action:?} with approval");
                            assert_eq!(got.1, Ok(b), "{from:?} {action:?} without approval");
                            assert!(allowed_actions(from).contains(&action.code()), "{from:?} {}", action.code());
                            legal += 1;
                        }
                        None => {
                            for r in [got.0, got.1] {
                                let e = r.expect_err("illegal move accepted");
                                assert_eq!((e.from, e.action), (from, action.code()));
                                assert!(e.message.en.contains(from.code()), "{}", e.message.en);
                                assert!(e.message.zh.contains(from.label().zh.as_str()), "{}", e.message.zh);
                            }
                            assert!(!allowed_actions(from).contains(&action.code()) || matches!(action, CaseAction::Triage { .. }));
                            illegal += 1;
                        }
                    }
                }
            }
            assert_eq!(legal + illegal, CaseStatus::ALL.len() * 14);
            assert_eq!(legal, 18);
        }
    }

    #[test]
    fn a_question_returns_the_case_where_it_was_asked() {
        let wf = Workflow::default_for(CaseKind::Complaint);
        let ask = CaseAction::RequestInfo { question: "哪一层？".into() };
        let reply = CaseAction::ReaderReply { text: "三层".into() };
        let withdraw = CaseAction::WithdrawQuestion { comment: Some("已电话联系".into()) };
        for from in ASKS_FROM {
            let waiting = next_status(from, &ask, wf, None).unwrap();
            assert_eq!(waiting, CaseStatus::AwaitingReader);
            assert_eq!(next_status(waiting, &reply, wf, Some(from)), Ok(from));
            assert_eq!(next_status(waiting, &withdraw, wf, Some(from)), Ok(from));
        }
        // Without a status to go back to (or a nonsensical one) nothing moves.
        assert!(next_status(CaseStatus::AwaitingReader, &reply, wf, None).is_err());
        assert!(next_status(CaseStatus::AwaitingReader, &reply, wf, Some(CaseStatus::Closed)).is_err());
        // Asking twice, on a closed case, or before assignment is refused and says what is allowed.
        let e = next_status(CaseStatus::AwaitingReader, &ask, wf, Some(CaseStatus::Assigned)).unwrap_err();
        assert!(e.message.en.contains("reader_reply, withdraw_question"), "{}", e.message.en);
        let e = next_status(CaseStatus::Closed, &ask, wf, None).unwrap_err();
        assert!(e.message.en.contains("cannot be sent to the reader with a question"), "{}", e.message.en);
        assert!(next_status(CaseStatus::Triaged, &ask, wf, None).is_err());
        // Answering when no question is open names that.
        let e = next_status(CaseStatus::Assigned, &reply, wf, Some(CaseStatus::Assigned)).unwrap_err();
        assert!(e.message.en.contains("no open question"), "{}", e.message.en);
        assert!(e.message.zh.contains("没有等待读者回答的问题"), "{}", e.message.zh);
    }

    #[test]
    fn illegal_messages_say_what_is_allowed() {
        let wf = Workflow::default_for(CaseKind::Complaint);
        let e = next_status(CaseStatus::Received, &CaseAction::Resolve { reply: "x".into() }, wf, None).unwrap_err();
        assert!(e.message.en.contains("allowed actions are: triage, request_info"), "{}", e.message.en);
        assert!(e.message.zh.contains("判定"), "{}", e.message.zh);
        let e = next_status(CaseStatus::Assigned, &CaseAction::Approve { comment: None }, wf, None).unwrap_err();
        assert!(e.message.en.contains("no solution has been proposed"), "{}", e.message.en);
        assert_eq!(e.action, "approve");
    }

    #[test]
    fn workflows() {
        assert!(Workflow::default_for(CaseKind::Complaint).requires_approval);
        assert!(Workflow::default_for(CaseKind::Suggestion).requires_approval);
        assert!(Workflow::default_for(CaseKind::Purchase).requires_approval);
        assert!(!Workflow::default_for(CaseKind::Inquiry).requires_approval);
        assert!(!Workflow::default_for(CaseKind::Praise).requires_approval);
        let quick = Workflow { requires_approval: false, auto_close_days: 3 };
        assert_eq!(
            next_status(CaseStatus::Assigned, &CaseAction::Propose { solution: "s".into() }, quick, None),
            Ok(CaseStatus::InProgress)
        );
        // A case already awaiting approval when the workflow changed can still be approved.
        assert_eq!(
            next_status(CaseStatus::AwaitingApproval, &CaseAction::Approve { comment: None }, quick, None),
            Ok(CaseStatus::InProgress)
        );
    }

    #[test]
    fn action_text_is_checked() {
        let long = "长".repeat(4001);
        for (action, field) in [
            (CaseAction::Propose { solution: "  ".into() }, "solution"),
            (CaseAction::Propose { solution: long.clone() }, "solution"),
            (CaseAction::RejectProposal { comment: "".into() }, "comment"),
            (CaseAction::Resolve { reply: "".into() }, "reply"),
            (CaseAction::Reopen { reason: " ".into() }, "reason"),
            (CaseAction::Assign { department: "".into(), comment: None }, "department"),
            (CaseAction::Close { comment: Some(long.clone()) }, "comment"),
            (CaseAction::RequestInfo { question: " ".into() }, "question"),
            (CaseAction::RequestInfo { question: "问".repeat(2001) }, "question"),
            (CaseAction::ReaderReply { text: "".into() }, "text"),
            (CaseAction::ReaderReply { text: "答".repeat(2001) }, "text"),
            (CaseAction::WithdrawQuestion { comment: Some(long.clone()) }, "comment"),
            (
                CaseAction::Triage {
                    outcome: TriageOutcome::Duplicate,
                    category: None,
                    priority: Priority::Low,
                    duplicate_of: None,
                    comment: None,
                },
                "duplicate_of",
            ),
        ] {
            let e = action.check().expect_err("accepted");
            let m = e.get(field).unwrap_or_else(|| panic!("{field}: {e}"));
            assert!(!m.zh.is_empty() && !m.en.is_empty());
        }
        assert!(CaseAction::Propose { solution: "长".repeat(4000) }.check().is_ok());
        assert!(CaseAction::RequestInfo { question: "问".repeat(2000) }.check().is_ok());
        assert!(CaseAction::ReaderReply { text: "答".repeat(2000) }.check().is_ok());
        let codes: Vec<&str> = all_actions().iter().map(|a| a.code()).collect();
        assert_eq!(
            codes[3..],
            [
                "assign",
                "claim",
                "propose",
                "approve",
                "reject_proposal",
                "resolve",
                "close",
                "reopen",
                "request_info",
                "reader_reply",
                "withdraw_question"
            ]
        );
    }

    #[test]
    fn actions_round_trip_as_json() {
        let a: CaseAction = serde_json::from_str(r#"{"action":"resolve","reply":"ok"}"#).unwrap();
        assert_eq!(a, CaseAction::Resolve { reply: "ok".into() });
        let t: CaseAction = serde_json::from_str(
            r#"{"action":"triage","outcome":"accepted","category":"noise","priority":"high","duplicate_of":null,"comment":null}"#,
        )
        .unwrap();
        assert_eq!(t.code(), "triage");
        for a in all_actions() {
            let v = serde_json::to_value(&a).unwrap();
            assert_eq!(v["action"], a.code(), "the JSON tag is the action's code");
            assert_eq!(serde_json::from_value::<CaseAction>(v).unwrap(), a);
        }
    }

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn calendar_arithmetic() {
        let cal = WorkCalendar::standard();
        assert_eq!((cal.day_start, cal.day_end), (NaiveTime::from_hms_opt(8, 30, 0).unwrap(), NaiveTime::from_hms_opt(17, 30, 0).unwrap()));
        // 2026-11-30 is a Monday.
        assert_eq!(cal.add_working_hours(at("2026-11-30 09:00"), 4), at("2026-11-30 13:00"));
        // Across the night: 17:00 + 2h = 1h today (to 17:30 is 0.5h) … 1.5h tomorrow.
        assert_eq!(cal.add_working_hours(at("2026-11-30 17:00"), 2), at("2026-12-01 10:00"));
        // Ends exactly at the close of the day.
        assert_eq!(cal.add_working_hours(at("2026-11-30 08:30"), 9), at("2026-11-30 17:30"));
        // Received at night or before opening: counting starts the next working morning.
        assert_eq!(cal.add_working_hours(at("2026-11-30 22:00"), 1), at("2026-12-01 09:30"));
        assert_eq!(cal.add_working_hours(at("2026-12-01 06:00"), 1), at("2026-12-01 09:30"));
        // Across the weekend: Friday 16:30 + 2h → Monday 09:30.
        assert_eq!(cal.add_working_hours(at("2026-12-04 16:30"), 2), at("2026-12-07 09:30"));
        // Received on Saturday.
        assert_eq!(cal.add_working_hours(at("2026-12-05 11:00"), 8), at("2026-12-07 16:30"));
        // 40 hours from Monday morning: 4 days of 9 h plus 4 h → Friday 12:30.
        assert_eq!(cal.add_working_hours(at("2026-11-30 08:30"), 40), at("2026-12-04 12:30"));
        assert_eq!(cal.add_working_hours(at("2026-11-30 10:00"), 0), at("2026-11-30 10:00"));

        // National Day: 2026-10-01 (Thu) to 10-07 holidays, 10-10 (Sat) a make-up working day.
        let mut golden = WorkCalendar::standard();
        golden.holidays = (1..=7).map(|n| d(&format!("2026-10-{n:02}"))).collect();
        golden.extra_workdays = vec![d("2026-10-10")];
        assert!(!golden.is_workday(d("2026-10-05")) && golden.is_workday(d("2026-10-10")) && !golden.is_workday(d("2026-10-11")));
        // Wednesday 30 September 17:00 + 1h → 0.5h that day, then the holiday week, then Thursday 8th.
        assert_eq!(golden.add_working_hours(at("2026-09-30 17:00"), 1), at("2026-10-08 09:00"));
        // Friday the 9th 17:00 + 2h: 0.5h Friday, 1.5h on the make-up Saturday.
        assert_eq!(golden.add_working_hours(at("2026-10-09 17:00"), 2), at("2026-10-10 10:00"));
        // Without the make-up day it would be Monday.
        golden.extra_workdays.clear();
        assert_eq!(golden.add_working_hours(at("2026-10-09 17:00"), 2), at("2026-10-12 10:00"));

        let mut broken = WorkCalendar::standard();
        broken.day_end = broken.day_start;
        assert!(broken.check().unwrap_err().get("day_end").is_some());
        assert!(cal.check().is_ok());
    }

    #[test]
    fn service_levels() {
        assert_eq!(default_service_hours(CaseKind::Complaint, Priority::Urgent), 8);
        assert_eq!(default_service_hours(CaseKind::Complaint, Priority::High), 16);
        assert_eq!(default_service_hours(CaseKind::Complaint, Priority::Normal), 40);
        assert_eq!(default_service_hours(CaseKind::Complaint, Priority::Low), 80);
        for &kind in CaseKind::ALL {
            let h: Vec<u32> = [Priority::Urgent, Priority::High, Priority::Normal, Priority::Low]
                .iter()
                .map(|p| default_service_hours(kind, *p))
                .collect();
            assert!(h.windows(2).all(|w| w[0] < w[1]), "{kind:?}: {h:?}");
        }
        assert!(
            default_service_hours(CaseKind::Suggestion, Priority::Normal) > default_service_hours(CaseKind::Complaint, Priority::Normal)
        );
        assert!(default_service_hours(CaseKind::Purchase, Priority::Normal) > default_service_hours(CaseKind::Complaint, Priority::Normal));
    }

    #[test]
    fn waiting_time_counts_working_hours_only() {
        let cal = WorkCalendar::standard();
        let h = chrono::Duration::hours;
        let m = chrono::Duration::minutes;
        // Within one day, and a stretch entirely outside working hours.
        assert_eq!(cal.working_time_between(at("2026-11-30 09:00"), at("2026-11-30 11:30")), h(2) + m(30));
        assert_eq!(cal.working_time_between(at("2026-11-30 18:00"), at("2026-12-01 08:00")), h(0));
        // Friday 16:30 to Monday 09:30: one hour on Friday, one on Monday.
        assert_eq!(cal.working_time_between(at("2026-12-04 16:30"), at("2026-12-07 09:30")), h(2));
        // Reversed or empty stretches owe nothing.
        assert_eq!(cal.working_time_between(at("2026-12-07 09:30"), at("2026-12-04 16:30")), h(0));
        // A week of holidays in the middle does not count.
        let mut golden = WorkCalendar::standard();
        golden.holidays = (1..=7).map(|n| d(&format!("2026-10-{n:02}"))).collect();
        assert_eq!(golden.working_time_between(at("2026-09-30 17:00"), at("2026-10-08 09:00")), m(30) + m(30));
        // Adding the wait back: a deadline of Friday 17:00 moved by 2 h is half an hour on Friday and
        // 1.5 h on Monday. Minutes count.
        assert_eq!(cal.add_working_time(at("2026-12-04 17:00"), h(2)), at("2026-12-07 10:00"));
        assert_eq!(cal.add_working_time(at("2026-11-30 09:00"), m(95)), at("2026-11-30 10:35"));
        assert_eq!(cal.add_working_time(at("2026-11-30 09:00"), h(0)), at("2026-11-30 09:00"));
        // The inverse within working hours.
        let start = at("2026-12-03 15:10");
        for hours in [1, 7, 9, 23, 100] {
            let end = cal.add_working_hours(start, hours);
            assert_eq!(cal.working_time_between(start, end), h(hours as i64), "{hours} h from {start}");
        }
    }

    #[test]
    fn service_levels_are_checked() {
        for &kind in CaseKind::ALL {
            let levels = ServiceLevels::default_for(kind);
            assert!(levels.check().is_ok(), "{kind:?}");
            for &p in Priority::ALL {
                assert_eq!(levels.hours(p), default_service_hours(kind, p));
            }
        }
        let ok = ServiceLevels { urgent: 2, high: 2, normal: 24, low: MAX_SERVICE_HOURS };
        assert!(ok.check().is_ok(), "equal levels are fine");
        let e = ServiceLevels { urgent: 0, high: 8, normal: 16, low: MAX_SERVICE_HOURS + 1 }.check().unwrap_err();
        assert!(e.get("urgent").is_some() && e.get("low").is_some() && e.get("high").is_none(), "{e}");
        assert!(e.get("urgent").unwrap().en.contains("got 0"));
        // Swapped entries: urgent longer than high.
        let e = ServiceLevels { urgent: 40, high: 8, normal: 80, low: 160 }.check().unwrap_err();
        let m = e.get("urgent").unwrap_or_else(|| panic!("{e}"));
        assert!(m.en.contains("cannot be longer than the high one") && m.zh.contains("不能长于"), "{m:?}");
        let json = serde_json::to_value(ok).unwrap();
        assert_eq!(json, serde_json::json!({"urgent": 2, "high": 2, "normal": 24, "low": 2000}));
    }

    #[test]
    fn drafts() {
        let ok = CaseDraft {
            kind: "投诉".into(),
            subject: " 自习室太吵 ".into(),
            body: "三楼自习室晚上很吵。".into(),
            card_no: Some("r2024001".into()),
            contact_name: Some("张三".into()),
            contact: Some("+86 138-0013-8000".into()),
        };
        let c = ok.parse(true).unwrap();
        assert_eq!(
            (c.kind, c.subject.as_str(), c.card_no.as_deref(), c.contact.as_deref()),
            (CaseKind::Complaint, "自习室太吵", Some("R2024001"), Some("13800138000"))
        );
        let e = CaseDraft { contact: Some("ZHANG@PKU.EDU.CN".into()), ..ok.clone() }.parse(true).unwrap();
        assert_eq!(e.contact.as_deref(), Some("zhang@pku.edu.cn"));

        // The portal without an account needs a name and a contact; staff do not.
        let anonymous = CaseDraft { contact_name: None, contact: None, card_no: None, ..ok.clone() };
        let e = anonymous.parse(true).unwrap_err();
        assert!(e.get("contact").is_some() && e.get("contact_name").is_some(), "{e}");
        assert!(anonymous.parse(false).is_ok());

        let bad = CaseDraft {
            kind: "rant".into(),
            subject: "".into(),
            body: "字".repeat(4001),
            card_no: Some("卡 1".into()),
            contact_name: None,
            contact: Some("call me".into()),
        };
        let e = bad.parse(false).unwrap_err();
        for f in ["kind", "subject", "body", "card_no", "contact"] {
            let m = e.get(f).unwrap_or_else(|| panic!("{f}: {e}"));
            assert!(!m.zh.is_empty() && !m.en.is_empty());
        }
        assert!(e.get("body").unwrap().en.contains("4000"));
        assert!(CaseDraft { body: "字".repeat(4000), ..ok.clone() }.parse(false).is_ok());
        assert!(serde_json::from_str::<CaseDraft>(r#"{"kind":"praise","subject":"s","body":"b","extra":1}"#).is_err());
    }

    #[test]
    fn ratings() {
        let ok = RatingDraft { satisfaction: 5, recommend: Some(10), comment: Some("谢谢".into()) };
        assert!(ok.check().is_ok());
        assert!(RatingDraft { satisfaction: 1, recommend: Some(0), comment: None }.check().is_ok());
        for (r, field) in [
            (RatingDraft { satisfaction: 0, ..ok.clone() }, "satisfaction"),
            (RatingDraft { satisfaction: 6, ..ok.clone() }, "satisfaction"),
            (RatingDraft { recommend: Some(11), ..ok.clone() }, "recommend"),
            (RatingDraft { comment: Some("长".repeat(2001)), ..ok.clone() }, "comment"),
        ] {
            let e = r.check().unwrap_err();
            assert!(e.get(field).is_some(), "{field}: {e}");
        }
    }
}
