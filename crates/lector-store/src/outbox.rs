//! The outbox: one row per message, recipient and channel. CONTRACT STUB — the outbox helper owns this.

use crate::{Result, Store};
use lector_domain::messaging::{Purpose, Trigger};

/// A message to put in the outbox. Rendering happens when it is sent.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Makes enqueueing idempotent: a second message with the same key is not added.
    pub dedupe_key: String,
    pub campaign_id: Option<i64>,
    pub trigger: Option<Trigger>,
    pub reader_id: Option<i64>,
    pub channel_id: i64,
    pub address: String,
    pub template_id: i64,
    /// Extra template variables (case number, tracking link, sign-in code).
    pub vars: serde_json::Value,
    pub purpose: Purpose,
    /// `zh` or `en`.
    pub lang: String,
    /// Not before this time (UTC RFC 3339); now when `None`.
    pub not_before: Option<String>,
}

impl Store {
    /// Adds `msg` to the outbox; `None` when a message with its dedupe key is already there.
    pub async fn enqueue_message(&self, _msg: &NewMessage) -> Result<Option<i64>> {
        todo!("outbox helper")
    }

    /// Lector's public address (`https://lector.example.edu.cn`), for links in messages.
    pub async fn public_url(&self) -> Result<String> {
        todo!("outbox helper")
    }
}
