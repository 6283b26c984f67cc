//! The HTTP channels: SMS gateway, WeCom and DingTalk group robots, QQ bot relay, generic
//! webhook. One reqwest client per channel, rustls with the system's root certificates.

use super::{footer_lines, tls, Outgoing, Secret, SendError};
use base64::Engine;
use hmac::{Hmac, Mac};
use lector_domain::messaging::{ChannelKind, ChannelSettings};
use lector_domain::Msg;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use std::fmt;
use std::time::Duration;

/// WeCom: the robot sends more than 20 messages a minute.
const WECOM_RATE_LIMITED: i64 = 45009;
/// DingTalk: the robot sends too fast.
const DINGTALK_RATE_LIMITED: i64 = 130101;

pub(super) struct HttpSender {
    kind: ChannelKind,
    url: reqwest::Url,
    /// SMS gateway field names.
    fields: Option<(String, String)>,
    secret: Option<Secret>,
    client: reqwest::Client,
}

type HmacSha256 = Hmac<Sha256>;

impl HttpSender {
    pub(super) fn new(settings: &ChannelSettings, secret: Option<Secret>, timeout: Duration) -> Result<HttpSender, Msg> {
        let (url, fields) = match settings {
            ChannelSettings::Sms { url, mobile_field, text_field } => {
                (url, Some((mobile_field.trim().to_owned(), text_field.trim().to_owned())))
            }
            ChannelSettings::Wecom { url }
            | ChannelSettings::Dingtalk { url }
            | ChannelSettings::Qq { url }
            | ChannelSettings::Webhook { url } => (url, None),
            ChannelSettings::Email { .. } => unreachable!("HttpSender built from HTTP channel settings only"),
        };
        let url = reqwest::Url::parse(url.trim())
            .map_err(|e| Msg::new(format!("网址“{url}”无效：{e}"), format!("the URL '{url}' is not valid: {e}")))?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(rustls::ClientConfig::clone(&tls::client_config(false)))
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("Lector/", env!("CARGO_PKG_VERSION")))
            // A redirect is a misconfigured URL (answered as a 3xx, final), and following it
            // would replay the token and body to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Msg::new(format!("无法创建 HTTP 客户端：{e}"), format!("cannot create the HTTP client: {e}")))?;
        Ok(HttpSender { kind: settings.kind(), url, fields, secret, client })
    }

    pub(super) async fn send(&self, msg: &Outgoing) -> Result<(), SendError> {
        let mut url = self.url.clone();
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        let body = match self.kind {
            ChannelKind::Sms => {
                let (mobile, text) = self.fields.as_ref().expect("SMS settings carry field names");
                self.bearer(&mut headers);
                json!({ mobile.as_str(): msg.address, text.as_str(): chat_text(msg, false) })
            }
            ChannelKind::Wecom => json!({
                "msgtype": "text",
                "text": { "content": chat_text(msg, true), "mentioned_mobile_list": mentions(msg) },
            }),
            ChannelKind::Dingtalk => {
                if let Some(secret) = &self.secret {
                    let timestamp = chrono::Utc::now().timestamp_millis();
                    url.query_pairs_mut()
                        .append_pair("timestamp", &timestamp.to_string())
                        .append_pair("sign", &dingtalk_sign(secret.expose(), timestamp));
                }
                json!({
                    "msgtype": "text",
                    "text": { "content": chat_text(msg, true) },
                    "at": { "atMobiles": mentions(msg) },
                })
            }
            ChannelKind::Qq => {
                self.bearer(&mut headers);
                json!({ "qq": msg.address, "text": chat_text(msg, true) })
            }
            ChannelKind::Webhook | ChannelKind::Email => json!({
                "message_id": msg.message_id,
                "address": msg.address,
                "display_name": msg.display_name,
                "subject": msg.subject,
                "text": msg.text,
                "html": msg.html,
                "unsubscribe_url": msg.unsubscribe_url,
                "preferences_url": msg.preferences_url,
                "extra": msg.extra,
            }),
        };
        let body = serde_json::to_vec(&body).expect("JSON values serialize");
        if self.kind == ChannelKind::Webhook {
            headers.push(("X-Lector-Message-Id", msg.message_id.clone()));
            if let Some(secret) = &self.secret {
                headers.push(("X-Lector-Signature", format!("sha256={}", webhook_signature(secret.expose(), &body))));
            }
        }
        let mut request = self.client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| self.request_error(e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.request_error(e))?;
        self.check_response(status, &text)
    }

    fn bearer(&self, headers: &mut Vec<(&'static str, String)>) {
        if let Some(secret) = &self.secret {
            headers.push(("Authorization", format!("Bearer {}", secret.expose())));
        }
    }

    /// HTTP 2xx is accepted (the robots also need `errcode` 0); 429 and 5xx are retried; any
    /// other status is final.
    fn check_response(&self, status: StatusCode, body: &str) -> Result<(), SendError> {
        let peer = self.peer();
        let excerpt = Secret::scrub(self.secret.as_ref(), &excerpt(body));
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(SendError::Transient(format!(
                "{} 返回 HTTP {} ({} answered HTTP {}: {excerpt})",
                peer.0,
                status.as_u16(),
                peer.1,
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(SendError::Permanent(format!(
                "{} 返回 HTTP {} ({} answered HTTP {}: {excerpt})",
                peer.0,
                status.as_u16(),
                peer.1,
                status.as_u16()
            )));
        }
        let rate_limited = match self.kind {
            ChannelKind::Wecom => WECOM_RATE_LIMITED,
            ChannelKind::Dingtalk => DINGTALK_RATE_LIMITED,
            _ => return Ok(()),
        };
        let reply: Value = serde_json::from_str(body)
            .map_err(|_| SendError::Transient(format!("{} 的应答无法识别 ({} gave an unreadable answer: {excerpt})", peer.0, peer.1)))?;
        let code = reply.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        let errmsg = Secret::scrub(self.secret.as_ref(), reply.get("errmsg").and_then(Value::as_str).unwrap_or(""));
        match code {
            0 => Ok(()),
            c if c == rate_limited => {
                Err(SendError::Transient(format!("{} 发送过于频繁，稍后重试 ({} is rate limited: errcode {c} {errmsg})", peer.0, peer.1)))
            }
            c => Err(SendError::Permanent(format!("{} 拒绝了消息 ({} refused the message: errcode {c} {errmsg})", peer.0, peer.1))),
        }
    }

    /// Connection problems and timeouts are transient. The URL is left out: robot URLs carry
    /// their access key.
    fn request_error(&self, e: reqwest::Error) -> SendError {
        let peer = self.peer();
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        let e = e.without_url();
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        let detail = Secret::scrub(self.secret.as_ref(), &detail);
        SendError::Transient(format!("无法送达{} ({} {what}: {detail})", peer.0, peer.1))
    }

    fn peer(&self) -> (&'static str, &'static str) {
        match self.kind {
            ChannelKind::Sms => ("短信网关", "the SMS gateway"),
            ChannelKind::Wecom => ("企业微信机器人", "the WeCom robot"),
            ChannelKind::Dingtalk => ("钉钉机器人", "the DingTalk robot"),
            ChannelKind::Qq => ("QQ 机器人", "the QQ bot"),
            ChannelKind::Webhook | ChannelKind::Email => ("Webhook", "the webhook"),
        }
    }
}

impl fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only scheme, host and path: robot URLs carry their access key in the query.
        let mut url = self.url.clone();
        url.set_query(None);
        f.debug_struct("HttpSender").field("kind", &self.kind).field("url", &url.as_str()).field("secret", &self.secret).finish()
    }
}

/// The text a chat or SMS message carries: for chats the subject as a first line, and for all
/// a line pointing at the preferences page.
fn chat_text(msg: &Outgoing, with_subject: bool) -> String {
    let mut out = String::new();
    if with_subject && !msg.subject.trim().is_empty() {
        out.push_str(msg.subject.trim());
        out.push_str("\n\n");
    }
    out.push_str(msg.text.trim_end());
    for (label, url) in footer_lines(msg) {
        out.push_str(&format!("\n{label}: {url}"));
    }
    out
}

fn mentions(msg: &Outgoing) -> Vec<&str> {
    let mobile = msg.address.trim();
    if mobile.is_empty() {
        Vec::new()
    } else {
        vec![mobile]
    }
}

/// DingTalk's robot signature: base64(HMAC-SHA256(secret, "{timestamp}\n{secret}")); the URL
/// encoding happens when it is appended to the query.
fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The generic webhook's signature: hex(HMAC-SHA256(secret, body)).
fn webhook_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &body[..at]),
        None => body.to_owned(),
    }
}
