//! Triggered messages (welcome, card expiry, case updates, portal sign-in codes). CONTRACT STUB —
//! the campaigns helper owns this.

use crate::{Result, Store};
use lector_domain::messaging::Trigger;

/// What became of a triggered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerOutcome {
    /// Queued as outbox row `id` on the channel with this code.
    Queued { outbox_id: i64, channel: String },
    /// Already queued before (same dedupe key).
    AlreadyQueued,
    /// Not sent, and why (trigger disabled, no consent, no address on any configured channel).
    Skipped(lector_domain::Msg),
}

impl Store {
    /// Queues `trigger` for a reader (address from their contact points) or, with `reader_id`
    /// `None`, for `address` alone (a portal case filed without an account). `vars` are extra
    /// template variables; `dedupe` makes a repeat a no-op.
    pub async fn enqueue_trigger(
        &self,
        _trigger: Trigger,
        _reader_id: Option<i64>,
        _address: Option<&str>,
        _vars: serde_json::Value,
        _dedupe: &str,
    ) -> Result<TriggerOutcome> {
        todo!("campaigns helper")
    }

    /// Queues the sweeps' messages: welcome for readers created since the trigger was enabled,
    /// card expiry reminders 30 days before `today`'s expiring cards. Returns how many were queued.
    pub async fn sweep_triggers(&self, _today: chrono::NaiveDate) -> Result<usize> {
        todo!("campaigns helper")
    }
}
