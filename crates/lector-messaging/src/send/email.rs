//! Email over SMTP: lettre builds the MIME message and speaks the protocol on connections this
//! module opens and pools itself. Lettre's own transport cannot switch Nagle's algorithm off —
//! with it, the final `.` of every message waits ~40 ms for a delayed ACK — and it puts no
//! timeout on commands, so a stalled server would hang a worker task for good.

use super::{footer_lines, tls, Outgoing, Secret, SendError};
use lector_domain::messaging::{ChannelSettings, SmtpSecurity};
use lector_domain::Msg;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, Message};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

/// Connections open at once per channel; more concurrent sends wait for one.
const POOL_SIZE: usize = 16;
/// An idle connection older than this is closed rather than reused.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// An idle connection older than this is checked with NOOP before it is reused.
const CHECK_AFTER: Duration = Duration::from_secs(5);

pub(super) struct EmailSender {
    server: Server,
    from: Mailbox,
    qq_mailbox: bool,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    slots: Semaphore,
}

/// Where and how to connect.
struct Server {
    host: String,
    port: u16,
    security: SmtpSecurity,
    /// For STARTTLS (lettre upgrades the connection).
    starttls: Option<TlsParameters>,
    /// For implicit TLS (this module wraps the socket before the greeting).
    implicit: Option<TlsConnector>,
    credentials: Option<Credentials>,
    hello: ClientId,
    secret: Option<Secret>,
    /// For connecting (through AUTH) and for each message's transaction.
    timeout: Duration,
}

impl EmailSender {
    pub(super) fn new(settings: &ChannelSettings, secret: Option<Secret>, timeout: Duration) -> Result<EmailSender, Msg> {
        let ChannelSettings::Email { host, port, security, username, from_address, from_name, qq_mailbox, accept_invalid_certs } = settings
        else {
            unreachable!("EmailSender built from email settings only")
        };
        let host = host.trim().to_owned();
        let address: Address = from_address
            .trim()
            .parse()
            .map_err(|_| Msg::new(format!("发件地址“{from_address}”无效"), format!("the sender address '{from_address}' is not valid")))?;
        let from = Mailbox::new(Some(from_name.trim().to_owned()).filter(|n| !n.is_empty()), address.clone());
        let starttls = match security {
            SmtpSecurity::Starttls => Some(
                TlsParameters::builder(host.clone())
                    .dangerous_accept_invalid_certs(*accept_invalid_certs)
                    .build_rustls()
                    .map_err(|e| Msg::new(format!("无法建立 TLS 配置：{e}"), format!("cannot set up TLS: {e}")))?,
            ),
            _ => None,
        };
        let implicit = (*security == SmtpSecurity::Tls).then(|| TlsConnector::from(tls::client_config(*accept_invalid_certs)));
        let credentials = match (username.as_deref().map(str::trim).filter(|u| !u.is_empty()), secret.as_ref()) {
            (Some(user), Some(secret)) => Some(Credentials::new(user.to_owned(), secret.expose().to_owned())),
            _ => None,
        };
        let server = Server {
            host,
            port: *port,
            security: *security,
            starttls,
            implicit,
            credentials,
            hello: ClientId::Domain(address.domain().to_owned()),
            secret,
            timeout,
        };
        Ok(EmailSender { server, from, qq_mailbox: *qq_mailbox, idle: Mutex::new(Vec::new()), slots: Semaphore::new(POOL_SIZE) })
    }

    pub(super) async fn send(&self, msg: &Outgoing) -> Result<(), SendError> {
        let email = self.build(msg)?;
        let envelope = email.envelope().clone();
        let bytes = email.formatted();
        let _slot = self.slots.acquire().await.expect("the pool's semaphore is never closed");
        let mut conn = match self.reuse().await {
            Some(conn) => conn,
            None => self.server.connect().await?,
        };
        match tokio::time::timeout(self.server.timeout, conn.send(&envelope, &bytes)).await {
            Ok(Ok(_)) => {
                self.idle.lock().expect("pool lock").push((conn, Instant::now()));
                Ok(())
            }
            // Lettre has already closed a connection that failed.
            Ok(Err(e)) => Err(self.server.classify(&e)),
            Err(_) => {
                let t = self.server.timeout;
                Err(SendError::Transient(format!("SMTP 服务器 {t:?} 内未应答 (the SMTP server did not answer within {t:?})")))
            }
        }
    }

    /// An idle pooled connection that still works, if there is one.
    async fn reuse(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (mut conn, since) = self.idle.lock().expect("pool lock").pop()?;
            let idle = since.elapsed();
            if idle > MAX_IDLE || conn.has_broken() {
                continue;
            }
            if idle < CHECK_AFTER || matches!(tokio::time::timeout(self.server.timeout, conn.test_connected()).await, Ok(true)) {
                return Some(conn);
            }
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
            builder =
                builder.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe"), format!("<{url}>"))).raw_header(
                    HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click".to_owned()),
                );
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
        let address: Address =
            address.parse().map_err(|_| SendError::Permanent(format!("收件地址“{raw}”无效 (invalid recipient address '{raw}')")))?;
        let name = msg.display_name.trim();
        Ok(Mailbox::new(Some(name.to_owned()).filter(|n| !n.is_empty()), address))
    }
}

impl fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSender")
            .field("host", &self.server.host)
            .field("port", &self.server.port)
            .field("security", &self.server.security)
            .field("from", &self.from.email.to_string())
            .field("secret", &self.server.secret)
            .finish()
    }
}

impl Server {
    /// A new connection: TCP without Nagle's delay, TLS when asked, greeting, EHLO, STARTTLS,
    /// AUTH — all within the timeout.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        match tokio::time::timeout(self.timeout, self.open()).await {
            Ok(result) => result,
            Err(_) => {
                let t = self.timeout;
                Err(SendError::Transient(format!("连接 SMTP 服务器超时（{t:?}） (connecting to the SMTP server timed out after {t:?})")))
            }
        }
    }

    async fn open(&self) -> Result<AsyncSmtpConnection, SendError> {
        let unreachable = |e: io::Error| SendError::Transient(format!("无法连接 SMTP 服务器 (cannot reach the SMTP server: {e})"));
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(unreachable)?;
        tcp.set_nodelay(true).map_err(unreachable)?;
        let stream: Box<dyn AsyncTokioStream> = match &self.implicit {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| SendError::Transient(format!("SMTP 服务器名称无效 (invalid SMTP host name: {e})")))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| SendError::Transient(format!("与 SMTP 服务器的 TLS 握手失败 (TLS with the SMTP server failed: {e})")))?;
                Box::new(Tls(tls))
            }
            None => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await.map_err(|e| self.classify(&e))?;
        if let Some(params) = &self.starttls {
            conn.starttls(params.clone(), &self.hello).await.map_err(|e| self.classify(&e))?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await.map_err(|e| self.classify(&e))?;
        }
        Ok(conn)
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

/// An implicit-TLS socket, in the shape lettre takes an existing stream in.
#[derive(Debug)]
struct Tls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for Tls {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
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
