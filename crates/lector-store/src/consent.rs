//! Consent (授权): per reader, purpose and channel. CONTRACT STUB — the consent helper owns this.

use crate::{Result, Store};
use lector_domain::messaging::{ChannelKind, Purpose};

impl Store {
    /// A signed token for the one-click unsubscribe link of a message (purpose × channel kind for
    /// this reader). Verified by the portal; forging one needs the store's secret.
    pub async fn unsubscribe_token(&self, _reader_id: i64, _purpose: Purpose, _channel: ChannelKind) -> Result<String> {
        todo!("consent helper")
    }
}
