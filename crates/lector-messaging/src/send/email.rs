//! Email over SMTP with lettre: a pooled async transport, plain / STARTTLS / implicit TLS.

use super::{footer_lines, Outgoing, Secret, SendError, TIMEOUT};
use lector_domain::messaging::{ChannelSettings, SmtpSecurity};
use lector_domain::Msg;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::fmt;

/// Connections kept open per channel; the worker's concurrency should not exceed it.
const POOL_SIZE: u32 = 16;

pub(super) struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    port: u16,
    security: SmtpSecurity,
    qq_mailbox: bool,
    secret: Option<Secret>,
}

impl EmailSender {
    pub(super) fn new(settings: &ChannelSettings, secret: Option<Secret>) -> Result<EmailSender, Msg> {
        let ChannelSettings::Email { host, port, security, username, from_address, from_name, qq_mailbox, accept_invalid_certs } = settings
        else {
            unreachable!("EmailSender built from email settings only")
        };
        let host = host.trim().to_owned();
        let address: Address = from_address.trim().parse().map_err(|_| {
            Msg::new(format!("发件地址“{from_address}”无效"), format!("the sender address '{from_address}' is not valid"))
        })?;
        let from = Mailbox::new(Some(from_name.trim().to_owned()).filter(|n| !n.is_empty()), address.clone());
        let tls = || {
            TlsParameters::builder(host.clone()).dangerous_accept_invalid_certs(*accept_invalid_certs).build_rustls().map_err(|e| {
                Msg::new(format!("无法建立 TLS 配置：{e}"), format!("cannot set up TLS: {e}"))
            })
        };
        let tls = match security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::Starttls => Tls::Required(tls()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(*port)
            .tls(tls)
            .timeout(Some(TIMEOUT))
            .hello_name(ClientId::Domain(address.domain().to_owned()))
            .pool_config(PoolConfig::new().max_size(POOL_SIZE));
        if let (Some(user), Some(secret)) = (username.as_deref().filter(|u| !u.trim().is_empty()), secret.as_ref()) {
            builder = builder.credentials(Credentials::new(user.trim().to_owned(), secret.expose().to_owned()));
        }
        Ok(EmailSender { transport: builder.build(), from, host, port: *port, security: *security, qq_mailbox: *qq_mailbox, secret })
    }

    pub(super) async fn send(&self, msg: &Outgoing) -> Result<(), SendError> {
        let email = self.build(msg)?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify(&e)),
        }
    }

    /// The MIME message: encoded headers, text (+ HTML) with the footer, list headers.
    fn build(&self, msg: &Outgoing) -> Result<Message, SendError> {
        let to = self.recipient(msg)?;
        let mut builder = Message::builder().from(self.from.clone()).to(to).subject(&msg.subject);
        let id = msg.message_id.trim();
        if !id.is_empty() {
            let id = if id.starts_with('<') { id.to_owned() } else { format!("<{id}>") };
            builder = builder.message_id(Some(id));
        }
        if let Some(url) = msg.unsubscribe_url.as_deref() {
            builder = builder
                .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe"), format!("<{url}>")))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
        }
        let text = text_with_footer(msg);
        let built = match msg.html.as_deref() {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html_with_footer(html, msg))),
            None => builder.singlepart(SinglePart::plain(text)),
        };
        built.map_err(|e| SendError::Permanent(format!("邮件无法生成 (the email cannot be built: {e})")))
    }

    fn recipient(&self, msg: &Outgoing) -> Result<Mailbox, SendError> {
        let raw = msg.address.trim();
        let is_qq_number = (5..=11).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0');
        let address = if self.qq_mailbox && is_qq_number { format!("{raw}@qq.com") } else { raw.to_owned() };
        let address: Address = address
            .parse()
            .map_err(|_| SendError::Permanent(format!("收件地址“{raw}”无效 (invalid recipient address '{raw}')")))?;
        let name = msg.display_name.trim();
        Ok(Mailbox::new(Some(name.to_owned()).filter(|n| !n.is_empty()), address))
    }

    /// 4xx, network, TLS and timeouts are worth retrying; a 5xx reply is final. Authentication
    /// replies (530/534/535/538) are the channel's problem, not the address's: transient, so the
    /// address is not blamed while an admin fixes the password.
    fn classify(&self, e: &lettre::transport::smtp::Error) -> SendError {
        let text = Secret::scrub(self.secret.as_ref(), &e.to_string());
        if let Some(code) = e.status() {
            let code = code.to_string();
            if e.is_permanent() && !matches!(code.as_str(), "530" | "534" | "535" | "538") {
                return SendError::Permanent(format!("SMTP 服务器拒收 (the SMTP server refused: {text})"));
            }
            return SendError::Transient(format!("SMTP 服务器暂时拒绝 (the SMTP server deferred: {text})"));
        }
        if e.is_timeout() {
            return SendError::Transient(format!("连接 SMTP 服务器超时 (the SMTP server timed out: {text})"));
        }
        if e.is_tls() {
            return SendError::Transient(format!("与 SMTP 服务器的 TLS 握手失败 (TLS with the SMTP server failed: {text})"));
        }
        SendError::Transient(format!("无法连接 SMTP 服务器 (cannot reach the SMTP server: {text})"))
    }
}

impl fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSender")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from.email.to_string())
            .field("secret", &self.secret)
            .finish()
    }
}

fn text_with_footer(msg: &Outgoing) -> String {
    let lines = footer_lines(msg);
    if lines.is_empty() {
        return msg.text.clone();
    }
    let mut out = msg.text.trim_end().to_owned();
    out.push_str("\n\n-- \n");
    for (label, url) in lines {
        out.push_str(&format!("{label}: {url}\n"));
    }
    out
}

fn html_with_footer(html: &str, msg: &Outgoing) -> String {
    let lines = footer_lines(msg);
    if lines.is_empty() {
        return html.to_owned();
    }
    let links: Vec<String> =
        lines.iter().map(|(label, url)| format!("<a href=\"{}\">{}</a>", escape_html(url), escape_html(label))).collect();
    let footer = format!(
        "<hr style=\"border:none;border-top:1px solid #ddd;margin-top:2em\"><p style=\"color:#777;font-size:12px\">{}</p>",
        links.join(" · ")
    );
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(at) => format!("{}{footer}{}", &html[..at], &html[at..]),
        None => format!("{html}{footer}"),
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
