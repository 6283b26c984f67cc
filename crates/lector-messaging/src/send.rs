//! Sending one message on one channel. CONTRACT STUB — the senders helper replaces this file.

use lector_domain::messaging::ChannelSettings;
use lector_domain::Msg;

/// One message ready to leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Email address, mobile, or QQ number (by channel kind); for webhooks the reader's card no.
    pub address: String,
    /// The reader's name, for the `To:` header and @-mentions.
    pub display_name: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// Stable per outbox row (`<outbox-ID.SALT@lector>`), so a re-send is recognisable.
    pub message_id: String,
    /// One-click unsubscribe (email: `List-Unsubscribe` + `List-Unsubscribe-Post`, and a footer).
    pub unsubscribe_url: Option<String>,
    /// The portal page where the reader manages all preferences.
    pub preferences_url: Option<String>,
    /// Extra JSON for webhook payloads (card number, campaign, purpose).
    pub extra: serde_json::Value,
}

/// Why a message did not leave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (connection refused, timeout, 4xx SMTP reply, HTTP 5xx/429).
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Will not succeed for this address (5xx SMTP reply to RCPT, invalid address, HTTP 4xx).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// A channel ready to send: built once from its settings and secret, reused for many messages
/// (an SMTP connection pool, an HTTP client).
pub struct Sender {
    _private: (),
}

impl Sender {
    pub fn new(_settings: &ChannelSettings, _secret: Option<&str>) -> Result<Sender, Msg> {
        todo!("senders helper")
    }

    pub async fn send(&self, _msg: &Outgoing) -> Result<(), SendError> {
        todo!("senders helper")
    }
}
