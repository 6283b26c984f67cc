//! Sending one message on one channel: SMTP, an SMS gateway, the WeCom and DingTalk group
//! robots, a QQ bot relay, or a generic JSON webhook.
//!
//! A [`Sender`] is built once per channel (an SMTP connection pool, one HTTP client) and shared
//! by the worker's tasks. Failures come back classified: [`SendError::Transient`] is retried
//! later, [`SendError::Permanent`] marks the message failed and counts against the address.
//! Secrets (SMTP password, signing keys, gateway tokens) never appear in errors or `Debug`.

mod email;
mod http;
mod tls;

use lector_domain::messaging::ChannelSettings;
use lector_domain::Msg;
use std::fmt;
use std::time::Duration;

/// How long one network step (connect, one SMTP command, one HTTP request) may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

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

/// Why a message did not leave. The text is bilingual ("中文 (English)") and safe to show staff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (connection refused, timeout, 4xx SMTP reply, HTTP 5xx/429).
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Will not succeed for this address (5xx SMTP reply to RCPT, invalid address, HTTP 4xx).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }

    /// The reason without the transient/permanent prefix, for the outbox row.
    pub fn reason(&self) -> &str {
        match self {
            SendError::Transient(r) | SendError::Permanent(r) => r,
        }
    }
}

/// A channel ready to send: built once from its settings and secret, reused for many messages
/// (an SMTP connection pool, an HTTP client).
pub struct Sender {
    inner: Inner,
}

enum Inner {
    Email(email::EmailSender),
    Http(http::HttpSender),
}

impl Sender {
    /// Builds the channel. Fails (with a message for the admin) when the settings cannot work:
    /// a bad sender address or URL, or no TLS configuration.
    pub fn new(settings: &ChannelSettings, secret: Option<&str>) -> Result<Sender, Msg> {
        Sender::with_timeout(settings, secret, TIMEOUT)
    }

    /// Like [`Sender::new`] with another limit for each network step than [`TIMEOUT`].
    pub fn with_timeout(settings: &ChannelSettings, secret: Option<&str>, timeout: Duration) -> Result<Sender, Msg> {
        settings.validate()?;
        let secret = secret.filter(|s| !s.is_empty()).map(|s| Secret(s.to_owned()));
        let inner = match settings {
            ChannelSettings::Email { .. } => Inner::Email(email::EmailSender::new(settings, secret, timeout)?),
            _ => Inner::Http(http::HttpSender::new(settings, secret, timeout)?),
        };
        Ok(Sender { inner })
    }

    /// Sends `msg`; returns once the server or endpoint accepted it.
    pub async fn send(&self, msg: &Outgoing) -> Result<(), SendError> {
        match &self.inner {
            Inner::Email(s) => s.send(msg).await,
            Inner::Http(s) => s.send(msg).await,
        }
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Email(s) => s.fmt(f),
            Inner::Http(s) => s.fmt(f),
        }
    }
}

/// A channel secret. Its `Debug` hides it, and [`Secret::scrub`] removes it from any text that
/// leaves the sender (an error body that echoes the request, for instance).
#[derive(Clone)]
struct Secret(String);

impl Secret {
    fn expose(&self) -> &str {
        &self.0
    }

    fn scrub(secret: Option<&Secret>, text: &str) -> String {
        match secret {
            Some(s) if s.0.len() >= 4 => text.replace(&s.0, "***"),
            _ => text.to_owned(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The footer lines naming the unsubscribe and preferences pages, bilingual.
fn footer_lines(msg: &Outgoing) -> Vec<(&'static str, &str)> {
    let mut lines = Vec::new();
    if let Some(u) = msg.unsubscribe_url.as_deref() {
        lines.push(("退订此类消息 / Unsubscribe", u));
    }
    if let Some(p) = msg.preferences_url.as_deref() {
        lines.push(("管理消息偏好 / Manage preferences", p));
    }
    lines
}
