//! Campaigns (群发任务). CONTRACT STUB — the campaigns helper owns this.

use crate::{Result, Store};

impl Store {
    /// Starts scheduled campaigns whose time has come (materialises their recipients into the
    /// outbox) and marks sending campaigns with nothing left to send as completed. Called by the
    /// messaging worker on every tick; safe on several servers at once. Returns campaigns changed.
    pub async fn advance_campaigns(&self) -> Result<usize> {
        todo!("campaigns helper")
    }
}
