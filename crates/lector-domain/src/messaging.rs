//! Messaging (群发与通知): channels, purposes of consent, campaign and outbox states, and the
//! settings a channel is configured with. The sending itself lives in `lector-messaging`.

use crate::contact::ContactKind;
use crate::{text, Msg};
use serde::{Deserialize, Serialize};

code_enum!(
    /// A way the library reaches a reader. Consent is given per channel kind.
    ChannelKind {
        Email = "email", "电子邮件", "Email";
        Sms = "sms", "短信", "SMS";
        Wecom = "wecom", "企业微信", "WeCom";
        Dingtalk = "dingtalk", "钉钉", "DingTalk";
        Qq = "qq", "QQ", "QQ";
        Webhook = "webhook", "其他应用（Webhook）", "Other apps (webhook)";
    } "消息渠道", "channel"
);

impl ChannelKind {
    /// The reader's contact point a message on this channel is addressed to. WeCom and DingTalk
    /// group robots @-mention the reader by mobile; the generic webhook names the reader by card
    /// number (`None`: no contact point needed).
    pub fn address_kind(self) -> Option<ContactKind> {
        match self {
            ChannelKind::Email => Some(ContactKind::Email),
            ChannelKind::Sms | ChannelKind::Wecom | ChannelKind::Dingtalk => Some(ContactKind::Mobile),
            ChannelKind::Qq => Some(ContactKind::Qq),
            ChannelKind::Webhook => None,
        }
    }
}

code_enum!(
    /// Why the library writes to a reader. Consent is given per purpose.
    Purpose {
        Service = "service", "服务通知", "Service notices" | "notice";
        News = "news", "新闻与活动", "News and events" | "events";
        Survey = "survey", "问卷调查", "Surveys";
    } "消息用途", "purpose"
);

impl Purpose {
    /// Whether a reader who never said anything counts as consenting. Service notices (about the
    /// reader's own loans, cards and cases) may be sent until the reader withdraws; news and
    /// surveys only after the reader opted in.
    pub fn granted_by_default(self) -> bool {
        matches!(self, Purpose::Service)
    }
}

code_enum!(
    /// Where a consent grant or withdrawal came from.
    ConsentSource {
        Portal = "portal", "读者门户", "Reader portal";
        Unsubscribe = "unsubscribe", "退订链接", "Unsubscribe link";
        Staff = "staff", "馆员录入", "Entered by staff";
        Import = "import", "数据导入", "Import";
        Api = "api", "API", "API";
    } "授权来源", "consent source"
);

code_enum!(
    /// Where a campaign stands. `draft → scheduled|sending → (paused ⇄ sending) → completed`;
    /// any state before `completed` may be `cancelled`.
    CampaignStatus {
        Draft = "draft", "草稿", "Draft";
        Scheduled = "scheduled", "已排期", "Scheduled";
        Sending = "sending", "发送中", "Sending";
        Paused = "paused", "已暂停", "Paused";
        Completed = "completed", "已完成", "Completed";
        Cancelled = "cancelled", "已取消", "Cancelled";
    } "群发状态", "campaign status"
);

code_enum!(
    /// Where one outbox message stands.
    OutboxStatus {
        Pending = "pending", "待发送", "Pending";
        Sending = "sending", "发送中", "Sending";
        Sent = "sent", "已发送", "Sent";
        Failed = "failed", "发送失败", "Failed";
        Cancelled = "cancelled", "已取消", "Cancelled";
    } "发送状态", "delivery status"
);

code_enum!(
    /// Messages the library sends by itself when something happens to a reader.
    Trigger {
        Welcome = "welcome", "新读者欢迎", "Welcome";
        CardExpiry = "card_expiry", "读者证到期提醒", "Card expiry reminder";
        CaseReceived = "case_received", "工单已受理", "Case received";
        CaseNeedsInfo = "case_needs_info", "工单需补充信息", "Case needs information";
        CaseResolved = "case_resolved", "工单已办结（请评价）", "Case resolved (please rate)";
        PortalCode = "portal_code", "门户登录验证码", "Portal sign-in code";
    } "触发消息", "triggered message"
);

code_enum!(
    /// How an SMTP connection is secured.
    SmtpSecurity {
        Plain = "plain", "不加密", "None";
        Starttls = "starttls", "STARTTLS", "STARTTLS";
        Tls = "tls", "SSL/TLS", "SSL/TLS";
    } "加密方式", "security"
);

/// A channel's settings apart from its secret (SMTP password, robot signing secret, gateway
/// token), which is stored separately and never shown back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelSettings {
    /// SMTP. With `qq_mailbox`, a reader with no email but a QQ number is written to at
    /// `<QQ number>@qq.com` (the QQ mailbox every QQ account has).
    Email {
        host: String,
        port: u16,
        security: SmtpSecurity,
        username: Option<String>,
        from_address: String,
        from_name: String,
        #[serde(default)]
        qq_mailbox: bool,
        /// Accept a self-signed or otherwise unverifiable server certificate (campus SMTP
        /// servers often have one). The connection is still encrypted, but not authenticated.
        #[serde(default)]
        accept_invalid_certs: bool,
    },
    /// An HTTP SMS gateway: the message is POSTed as JSON `{"mobile", "text"}` (or the fields
    /// named here) with `Authorization: Bearer SECRET` when a secret is set.
    Sms { url: String, mobile_field: String, text_field: String },
    /// A WeCom group robot (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`).
    Wecom { url: String },
    /// A DingTalk robot; with a secret, requests are signed (`timestamp` + `sign`).
    Dingtalk { url: String },
    /// QQ through a bot webhook that takes `{"qq", "text"}` (for example a go-cqhttp / OneBot
    /// relay). Email to QQ mailboxes is an option of the email channel.
    Qq { url: String },
    /// Any JSON endpoint; with a secret, the body is signed (`X-Lector-Signature: sha256=HEX`).
    Webhook { url: String },
}

impl ChannelSettings {
    pub fn kind(&self) -> ChannelKind {
        match self {
            ChannelSettings::Email { .. } => ChannelKind::Email,
            ChannelSettings::Sms { .. } => ChannelKind::Sms,
            ChannelSettings::Wecom { .. } => ChannelKind::Wecom,
            ChannelSettings::Dingtalk { .. } => ChannelKind::Dingtalk,
            ChannelSettings::Qq { .. } => ChannelKind::Qq,
            ChannelSettings::Webhook { .. } => ChannelKind::Webhook,
        }
    }

    /// Checks the settings make sense (an http(s) URL, a host and a sender address for email).
    pub fn validate(&self) -> Result<(), Msg> {
        let url_ok = |u: &str| {
            let u = text::clean(u);
            if u.starts_with("http://") || u.starts_with("https://") {
                Ok(())
            } else {
                Err(Msg::new(
                    format!("“{u}”不是有效的网址，应以 http:// 或 https:// 开头"),
                    format!("'{u}' is not a URL; start it with http:// or https://"),
                ))
            }
        };
        match self {
            ChannelSettings::Email { host, from_address, port, .. } => {
                if text::clean(host).is_empty() {
                    return Err(Msg::new("请填写 SMTP 服务器地址", "enter the SMTP server's host name"));
                }
                if *port == 0 {
                    return Err(Msg::new("SMTP 端口不能为 0", "the SMTP port cannot be 0"));
                }
                crate::contact::Email::parse(from_address).map(|_| ())
            }
            ChannelSettings::Sms { url, mobile_field, text_field } => {
                if text::clean(mobile_field).is_empty() || text::clean(text_field).is_empty() {
                    return Err(Msg::new("请填写短信网关的手机号字段和内容字段", "name the gateway's mobile and text fields"));
                }
                url_ok(url)
            }
            ChannelSettings::Wecom { url }
            | ChannelSettings::Dingtalk { url }
            | ChannelSettings::Webhook { url }
            | ChannelSettings::Qq { url } => url_ok(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_validate() {
        let s = ChannelSettings::Email {
            host: "smtp.example.edu.cn".into(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: Some("lib".into()),
            from_address: "library@example.edu.cn".into(),
            from_name: "图书馆".into(),
            qq_mailbox: true,
            accept_invalid_certs: false,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"kind\":\"email\""), "{json}");
        assert_eq!(serde_json::from_str::<ChannelSettings>(&json).unwrap(), s);
        assert!(s.validate().is_ok());
        assert!(ChannelSettings::Wecom { url: "ftp://x".into() }.validate().is_err());
        assert!(ChannelSettings::Qq { url: "".into() }.validate().is_err());
        assert_eq!(ChannelKind::Sms.address_kind(), Some(ContactKind::Mobile));
        assert!(Purpose::Service.granted_by_default() && !Purpose::News.granted_by_default());
    }
}
