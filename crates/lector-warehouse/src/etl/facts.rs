//! Extracted store rows as the rows of the fact tables: each with its stable event key
//! (`store:interaction:77`), the month of its local time, and the reader's key instead of the
//! reader. Subjects, notes, comments, addresses and message content are never read.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use lector_store::domain::messaging::OutboxStatus;
use lector_store::warehouse_extract::{CaseEventRow, InteractionRow, MessageOutcome, UnsubscribeRow};

use super::columns::{constant, int, local, month, text, timestamps, STORE};
use crate::reader_key::ReaderKeyer;

pub fn interactions(rows: &[InteractionRow], keys: &ReaderKeyer) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_from_iter([
        ("event_key", text(rows.iter().map(|r| Some(format!("store:interaction:{}", r.id))))),
        ("month", text(rows.iter().map(|r| Some(month(r.occurred_at))))),
        ("reader_key", text(rows.iter().map(|r| Some(keys.key(r.reader_id))))),
        ("occurred_at", timestamps(rows.iter().map(|r| r.occurred_at))),
        ("channel", text(rows.iter().map(|r| Some(&r.channel)))),
        ("direction", text(rows.iter().map(|r| Some(&r.direction)))),
        ("staff", text(rows.iter().map(|r| r.staff.as_ref()))),
        ("source", constant(STORE, rows.len())),
    ])
}

pub fn case_events(rows: &[CaseEventRow], keys: &ReaderKeyer) -> Result<RecordBatch, ArrowError> {
    let at: Vec<_> = rows.iter().map(|r| local(r.at)).collect();
    RecordBatch::try_from_iter([
        ("event_key", text(rows.iter().map(|r| Some(format!("store:case_event:{}", r.id))))),
        ("month", text(at.iter().map(|t| Some(month(*t))))),
        ("reader_key", text(rows.iter().map(|r| r.reader_id.map(|id| keys.key(id))))),
        ("case_id", int(rows.iter().map(|r| Some(r.case_id)))),
        ("occurred_at", timestamps(at.iter().copied())),
        ("kind", text(rows.iter().map(|r| Some(&r.kind)))),
        ("category", text(rows.iter().map(|r| r.category.as_ref()))),
        ("priority", text(rows.iter().map(|r| Some(&r.priority)))),
        ("department", text(rows.iter().map(|r| r.department.as_ref()))),
        ("action", text(rows.iter().map(|r| Some(&r.action)))),
        ("from_status", text(rows.iter().map(|r| r.from_status.as_ref()))),
        ("to_status", text(rows.iter().map(|r| Some(&r.to_status)))),
        ("rating_satisfaction", int(rows.iter().map(|r| r.rating_satisfaction))),
        ("rating_recommend", int(rows.iter().map(|r| r.rating_recommend))),
        ("source", constant(STORE, rows.len())),
    ])
}

/// One row of `fact_message_event`: a message's outcome or an unsubscribe.
pub struct MessageEvent {
    event_key: String,
    reader_id: Option<i64>,
    at: chrono::DateTime<chrono::Utc>,
    campaign_id: Option<i64>,
    trigger: Option<String>,
    channel_kind: String,
    purpose: String,
    status: &'static str,
    attempts: i64,
}

impl MessageEvent {
    /// The event of a sent or failed message; `None` for a cancelled one, which never left
    /// and is no outcome.
    pub fn outcome(m: &MessageOutcome) -> Option<MessageEvent> {
        let (status, attempts) = match m.status {
            OutboxStatus::Sent => ("sent", m.failed_attempts + 1),
            OutboxStatus::Failed => ("failed", m.failed_attempts),
            _ => return None,
        };
        Some(MessageEvent {
            event_key: format!("store:message:{}", m.id),
            reader_id: m.reader_id,
            at: m.finished_at,
            campaign_id: m.campaign_id,
            trigger: m.trigger.clone(),
            channel_kind: m.channel_kind.clone(),
            purpose: m.purpose.clone(),
            status,
            attempts,
        })
    }

    pub fn unsubscribe(u: &UnsubscribeRow) -> MessageEvent {
        MessageEvent {
            event_key: format!("store:unsubscribe:{}", u.id),
            reader_id: Some(u.reader_id),
            at: u.at,
            campaign_id: None,
            trigger: None,
            channel_kind: u.channel_kind.clone(),
            purpose: u.purpose.clone(),
            status: "unsubscribed",
            attempts: 0,
        }
    }
}

pub fn message_events(rows: &[MessageEvent], keys: &ReaderKeyer) -> Result<RecordBatch, ArrowError> {
    let at: Vec<_> = rows.iter().map(|r| local(r.at)).collect();
    RecordBatch::try_from_iter([
        ("event_key", text(rows.iter().map(|r| Some(&r.event_key)))),
        ("month", text(at.iter().map(|t| Some(month(*t))))),
        ("reader_key", text(rows.iter().map(|r| r.reader_id.map(|id| keys.key(id))))),
        ("occurred_at", timestamps(at.iter().copied())),
        ("campaign_id", int(rows.iter().map(|r| r.campaign_id))),
        ("trigger", text(rows.iter().map(|r| r.trigger.as_ref()))),
        ("channel", text(rows.iter().map(|r| Some(&r.channel_kind)))),
        ("purpose", text(rows.iter().map(|r| Some(&r.purpose)))),
        ("status", text(rows.iter().map(|r| Some(r.status)))),
        ("attempts", int(rows.iter().map(|r| Some(r.attempts)))),
        ("source", constant(STORE, rows.len())),
    ])
}
