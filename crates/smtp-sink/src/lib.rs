//! A small SMTP server that accepts mail and keeps it, for Lector's tests and benchmarks.
//!
//! It speaks enough ESMTP for real clients (lettre, Python's smtplib): EHLO/HELO with
//! PIPELINING, 8BITMIME, SMTPUTF8, AUTH PLAIN/LOGIN and STARTTLS, implicit TLS, MAIL/RCPT/DATA
//! with dot-unstuffing, RSET, NOOP, QUIT. Tests steer it: chosen recipients are refused with a
//! permanent (550) or transient (451) reply, and new transactions can be stalled to freeze a
//! sender between two messages. Waiting is condition-based ([`Sink::wait_for`]), never a sleep.
//!
//! The TLS certificate is self-signed and made at start: dev-grade, for loopback only.

use base64::Engine;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Longest command line accepted (RFC 5321 says 512; AUTH lines may be longer).
const MAX_LINE: usize = 4096;
/// Largest message accepted; more is answered 552 and dropped.
const MAX_MESSAGE: usize = 32 * 1024 * 1024;

/// How the sink offers TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain text only.
    #[default]
    None,
    /// Plain text, upgraded by `STARTTLS` (advertised in EHLO).
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465 style).
    Implicit,
}

/// How the sink is set up.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    pub tls: TlsMode,
    /// When set, AUTH PLAIN/LOGIN is offered and required before MAIL FROM.
    pub credentials: Option<(String, String)>,
    /// Count messages without keeping them (benchmarks).
    pub count_only: bool,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions { listen: SocketAddr::from(([127, 0, 0, 1], 0)), tls: TlsMode::None, credentials: None, count_only: false }
    }
}

/// One message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The MAIL FROM address (without angle brackets).
    pub mail_from: String,
    /// The accepted RCPT TO addresses.
    pub rcpt_to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
    /// The user that authenticated on this connection, if any.
    pub auth_user: Option<String>,
    /// Whether the connection was encrypted.
    pub tls: bool,
}

/// How RCPT TO is answered for a chosen address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcptRule {
    /// `550 5.1.1 No such user`.
    Reject,
    /// `451 4.3.0 Try again later`.
    Defer,
}

struct Shared {
    options: SinkOptions,
    tls: Option<TlsAcceptor>,
    count: AtomicU64,
    messages: Mutex<Vec<Received>>,
    arrived: Notify,
    rules: Mutex<HashMap<String, RcptRule>>,
    stall: watch::Sender<bool>,
}

/// A running sink. Dropping it stops the server and closes its connections.
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Sink {
    /// Starts a sink; panics when it cannot listen (a test cannot go on without it).
    pub async fn start(options: SinkOptions) -> Sink {
        Sink::try_start(options).await.expect("the SMTP sink can listen")
    }

    /// Starts a sink, reporting a busy address or a TLS set-up failure.
    pub async fn try_start(options: SinkOptions) -> io::Result<Sink> {
        let tls = match options.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Implicit => Some(self_signed_acceptor()?),
        };
        let listener = TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            options,
            tls,
            count: AtomicU64::new(0),
            messages: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            rules: Mutex::new(HashMap::new()),
            stall: watch::Sender::new(false),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Sink { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The messages received so far (empty in count-only mode).
    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().expect("sink lock").clone()
    }

    /// How many messages were accepted.
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages were accepted; `false` when `timeout` passed first.
    pub async fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.count() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.count() >= n;
            }
        }
    }

    /// Answers RCPT TO for `address` (case-insensitive) by `rule`; `None` accepts it again.
    pub fn set_rcpt_rule(&self, address: &str, rule: Option<RcptRule>) {
        let mut rules = self.shared.rules.lock().expect("sink lock");
        match rule {
            Some(rule) => rules.insert(address.to_ascii_lowercase(), rule),
            None => rules.remove(&address.to_ascii_lowercase()),
        };
    }

    /// While `true`, MAIL FROM is not answered: clients hang between messages (their earlier
    /// messages are already accepted). Setting it back to `false` answers the waiting ones.
    pub fn stall_new_transactions(&self, stall: bool) {
        self.shared.stall.send_replace(stall);
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections; the JoinSet ties their tasks to this one, so aborting it closes them.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(stream, Arc::clone(&shared)));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn self_signed_acceptor() -> io::Result<TlsAcceptor> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(io::Error::other)?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(io::Error::other)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What a session ended with.
enum End {
    Closed,
    /// The client asked for STARTTLS: this stream is to be wrapped and the session restarted.
    StartTls(Box<dyn Io>),
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let mut io: Box<dyn Io> = Box::new(stream);
    let mut tls = false;
    if shared.options.tls == TlsMode::Implicit {
        let Some(acceptor) = &shared.tls else { return };
        match acceptor.accept(io).await {
            Ok(s) => io = Box::new(s),
            Err(_) => return,
        }
        tls = true;
    }
    let mut greet = true;
    loop {
        match session(io, tls, greet, &shared).await {
            Ok(End::StartTls(raw)) => {
                let Some(acceptor) = &shared.tls else { return };
                match acceptor.accept(raw).await {
                    Ok(s) => io = Box::new(s),
                    Err(_) => return,
                }
                tls = true;
                greet = false;
            }
            Ok(End::Closed) | Err(_) => return,
        }
    }
}

/// One transaction's state.
#[derive(Default)]
struct Envelope {
    from: Option<String>,
    rcpt: Vec<String>,
}

async fn session(io: Box<dyn Io>, tls: bool, greet: bool, shared: &Shared) -> io::Result<End> {
    let mut conn = BufReader::with_capacity(64 * 1024, io);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    if greet {
        out.extend_from_slice(b"220 smtp-sink ESMTP ready\r\n");
    }
    let needs_auth = shared.options.credentials.is_some();
    let mut auth_user: Option<String> = None;
    let mut env = Envelope::default();
    let mut line = Vec::with_capacity(256);
    loop {
        // Answers go out in one write once the client's pipelined commands are all read.
        if conn.buffer().is_empty() && !out.is_empty() {
            conn.get_mut().write_all(&out).await?;
            conn.get_mut().flush().await?;
            out.clear();
        }
        line.clear();
        if read_line(&mut conn, &mut line, MAX_LINE).await? == 0 {
            return Ok(End::Closed);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
            None => (text.to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "EHLO" => {
                env = Envelope::default();
                out.extend_from_slice(b"250-smtp-sink greets you\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n");
                if shared.options.tls == TlsMode::Starttls && !tls {
                    out.extend_from_slice(b"250-STARTTLS\r\n");
                }
                if needs_auth {
                    out.extend_from_slice(b"250-AUTH PLAIN LOGIN\r\n");
                }
                out.extend_from_slice(b"250 SIZE 33554432\r\n");
            }
            "HELO" => {
                env = Envelope::default();
                out.extend_from_slice(b"250 smtp-sink\r\n");
            }
            "STARTTLS" if shared.options.tls == TlsMode::Starttls && !tls => {
                out.extend_from_slice(b"220 2.0.0 Ready to start TLS\r\n");
                conn.get_mut().write_all(&out).await?;
                conn.get_mut().flush().await?;
                // Anything the client pipelined after STARTTLS is discarded (RFC 3207).
                return Ok(End::StartTls(conn.into_inner()));
            }
            "AUTH" if needs_auth => {
                conn.get_mut().write_all(&out).await?;
                out.clear();
                match authenticate(&mut conn, arg, shared).await? {
                    Some(user) => {
                        auth_user = Some(user);
                        out.extend_from_slice(b"235 2.7.0 Authentication successful\r\n");
                    }
                    None => out.extend_from_slice(b"535 5.7.8 Authentication credentials invalid\r\n"),
                }
            }
            "MAIL" => {
                if needs_auth && auth_user.is_none() {
                    out.extend_from_slice(b"530 5.7.0 Authentication required\r\n");
                    continue;
                }
                if *shared.stall.borrow() {
                    conn.get_mut().write_all(&out).await?;
                    conn.get_mut().flush().await?;
                    out.clear();
                    let mut stall = shared.stall.subscribe();
                    let _ = stall.wait_for(|s| !*s).await;
                }
                match path_arg(arg, "FROM:") {
                    Some(from) => {
                        env = Envelope { from: Some(from), rcpt: Vec::new() };
                        out.extend_from_slice(b"250 2.1.0 Ok\r\n");
                    }
                    None => out.extend_from_slice(b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
                }
            }
            "RCPT" => {
                if env.from.is_none() {
                    out.extend_from_slice(b"503 5.5.1 MAIL first\r\n");
                    continue;
                }
                let Some(to) = path_arg(arg, "TO:") else {
                    out.extend_from_slice(b"501 5.5.4 Syntax: RCPT TO:<address>\r\n");
                    continue;
                };
                let rule = shared.rules.lock().expect("sink lock").get(&to.to_ascii_lowercase()).copied();
                match rule {
                    Some(RcptRule::Reject) => out.extend_from_slice(b"550 5.1.1 No such user here\r\n"),
                    Some(RcptRule::Defer) => out.extend_from_slice(b"451 4.3.0 Mailbox busy, try again later\r\n"),
                    None => {
                        env.rcpt.push(to);
                        out.extend_from_slice(b"250 2.1.5 Ok\r\n");
                    }
                }
            }
            "DATA" => {
                if env.rcpt.is_empty() {
                    out.extend_from_slice(b"554 5.5.1 No valid recipients\r\n");
                    continue;
                }
                out.extend_from_slice(b"354 End data with <CR><LF>.<CR><LF>\r\n");
                conn.get_mut().write_all(&out).await?;
                conn.get_mut().flush().await?;
                out.clear();
                let keep = !shared.options.count_only;
                match read_data(&mut conn, keep).await? {
                    Some(data) => {
                        let env = std::mem::take(&mut env);
                        if keep {
                            let received = Received {
                                mail_from: env.from.unwrap_or_default(),
                                rcpt_to: env.rcpt,
                                data,
                                auth_user: auth_user.clone(),
                                tls,
                            };
                            shared.messages.lock().expect("sink lock").push(received);
                        }
                        // The reply leaves before the message counts, so whoever waits for the
                        // count (a test, `--exit-after`) never cuts the sender off before it.
                        let replied = async {
                            conn.get_mut().write_all(b"250 2.0.0 Ok: queued\r\n").await?;
                            conn.get_mut().flush().await
                        }
                        .await;
                        shared.count.fetch_add(1, Ordering::SeqCst);
                        shared.arrived.notify_waiters();
                        replied?;
                    }
                    None => {
                        env = Envelope::default();
                        out.extend_from_slice(b"552 5.3.4 Message too big\r\n");
                    }
                }
            }
            "RSET" => {
                env = Envelope::default();
                out.extend_from_slice(b"250 2.0.0 Ok\r\n");
            }
            "NOOP" => out.extend_from_slice(b"250 2.0.0 Ok\r\n"),
            "VRFY" => out.extend_from_slice(b"252 2.5.0 Cannot VRFY user\r\n"),
            "QUIT" => {
                out.extend_from_slice(b"221 2.0.0 Bye\r\n");
                conn.get_mut().write_all(&out).await?;
                conn.get_mut().flush().await?;
                return Ok(End::Closed);
            }
            _ => out.extend_from_slice(b"502 5.5.2 Command not recognized\r\n"),
        }
    }
}

/// Reads one line (up to and including `\n`); a longer line than `max` is cut there.
async fn read_line(conn: &mut BufReader<Box<dyn Io>>, line: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = conn.fill_buf().await?;
        if buf.is_empty() {
            return Ok(total);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        conn.consume(take);
        total += take;
        if done {
            return Ok(total);
        }
    }
}

/// Reads DATA up to the lone `.` line, undoing dot-stuffing. `None` when it was too big.
async fn read_data(conn: &mut BufReader<Box<dyn Io>>, keep: bool) -> io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut size = 0usize;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if read_line(conn, &mut line, MAX_MESSAGE).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((size <= MAX_MESSAGE).then_some(data));
        }
        let content = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
        size += content.len();
        if keep && size <= MAX_MESSAGE {
            data.extend_from_slice(content);
        }
    }
}

/// AUTH PLAIN (initial response or challenge) and AUTH LOGIN. Returns the user when the
/// credentials match.
async fn authenticate(conn: &mut BufReader<Box<dyn Io>>, arg: &str, shared: &Shared) -> io::Result<Option<String>> {
    let Some((want_user, want_pass)) = &shared.options.credentials else { return Ok(None) };
    let (mechanism, initial) = match arg.split_once(' ') {
        Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_owned())),
        None => (arg.to_ascii_uppercase(), None),
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let (user, pass) = match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(i) => i,
                None => challenge(conn, "").await?,
            };
            let decoded = b64.decode(response.as_bytes()).unwrap_or_default();
            let mut parts = decoded.split(|&b| b == 0).skip(1);
            let user = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let pass = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            (user, pass)
        }
        "LOGIN" => {
            let user = match initial {
                Some(i) => i,
                None => challenge(conn, "VXNlcm5hbWU6").await?,
            };
            let pass = challenge(conn, "UGFzc3dvcmQ6").await?;
            let decode = |s: &str| String::from_utf8_lossy(&b64.decode(s.as_bytes()).unwrap_or_default()).into_owned();
            (decode(&user), decode(&pass))
        }
        _ => return Ok(None),
    };
    Ok((user == *want_user && pass == *want_pass).then_some(user))
}

async fn challenge(conn: &mut BufReader<Box<dyn Io>>, prompt: &str) -> io::Result<String> {
    conn.get_mut().write_all(format!("334 {prompt}\r\n").as_bytes()).await?;
    conn.get_mut().flush().await?;
    let mut line = Vec::new();
    if read_line(conn, &mut line, MAX_LINE).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(String::from_utf8_lossy(&line).trim().to_owned())
}

/// The address in `FROM:<a@b> PARAMS` / `TO:<a@b>`.
fn path_arg(arg: &str, keyword: &str) -> Option<String> {
    let rest = arg.get(..keyword.len()).filter(|k| k.eq_ignore_ascii_case(keyword)).map(|_| arg[keyword.len()..].trim_start())?;
    if let Some(inner) = rest.strip_prefix('<') {
        inner.split_once('>').map(|(a, _)| a.to_owned())
    } else {
        rest.split_whitespace().next().map(str::to_owned)
    }
}
