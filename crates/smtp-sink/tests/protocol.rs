//! The sink's SMTP dialogue, driven by hand over a raw socket.

use base64::Engine;
use smtp_sink::{Sink, SinkOptions};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Client {
    conn: BufReader<TcpStream>,
}

impl Client {
    async fn connect(sink: &Sink) -> Client {
        let mut c = Client { conn: BufReader::new(TcpStream::connect(sink.addr()).await.unwrap()) };
        assert!(c.reply().await.starts_with("220 "));
        c
    }

    async fn send(&mut self, text: &str) {
        self.conn.get_mut().write_all(text.as_bytes()).await.unwrap();
    }

    /// One reply, all its lines joined.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(self.conn.read_line(&mut line).await.unwrap() > 0, "the sink closed the connection");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn command(&mut self, text: &str) -> String {
        self.send(&format!("{text}\r\n")).await;
        self.reply().await
    }
}

#[tokio::test]
async fn pipelined_transaction_with_dot_stuffing() {
    let sink = Sink::start(SinkOptions::default()).await;
    let mut c = Client::connect(&sink).await;
    let ehlo = c.command("EHLO client.example").await;
    for ext in ["PIPELINING", "8BITMIME", "SMTPUTF8"] {
        assert!(ehlo.contains(ext), "{ehlo}");
    }
    assert!(!ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"), "{ehlo}");

    // Everything up to DATA in one write, as a pipelining client does.
    c.send("MAIL FROM:<lib@example.edu.cn> BODY=8BITMIME\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n").await;
    for expected in ["250 ", "250 ", "250 ", "354 "] {
        let r = c.reply().await;
        assert!(r.starts_with(expected), "{r}");
    }
    c.send("Subject: 你好\r\n\r\n..starts with a dot\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 "));
    assert!(sink.wait_for(1, Duration::from_secs(10)).await);
    let m = &sink.messages()[0];
    assert_eq!(m.mail_from, "lib@example.edu.cn");
    assert_eq!(m.rcpt_to, vec!["a@example.com".to_owned(), "b@example.com".to_owned()]);
    assert_eq!(m.data, "Subject: 你好\r\n\r\n.starts with a dot\r\n".as_bytes());
    assert!(!m.tls && m.auth_user.is_none());

    // Order and unknown commands.
    assert!(c.command("RCPT TO:<x@example.com>").await.starts_with("503 "));
    assert!(c.command("MAIL FROM:<a@b.c>").await.starts_with("250 "));
    assert!(c.command("RSET").await.starts_with("250 "));
    assert!(c.command("DATA").await.starts_with("554 "));
    assert!(c.command("NOOP").await.starts_with("250 "));
    assert!(c.command("TURN").await.starts_with("502 "));
    assert!(c.command("QUIT").await.starts_with("221 "));
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn auth_login_and_plain() {
    let sink = Sink::start(SinkOptions { credentials: Some(("lib".into(), "pw".into())), ..SinkOptions::default() }).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut c = Client::connect(&sink).await;
    assert!(c.command("EHLO x").await.contains("AUTH PLAIN LOGIN"));
    assert!(c.command("MAIL FROM:<a@b.c>").await.starts_with("530 "));
    assert!(c.command("AUTH LOGIN").await.starts_with("334 "));
    assert!(c.command(&b64("lib")).await.starts_with("334 "));
    assert!(c.command(&b64("wrong")).await.starts_with("535 "));
    assert!(c.command(&format!("AUTH PLAIN {}", b64("\0lib\0pw"))).await.starts_with("235 "));
    assert!(c.command("MAIL FROM:<a@b.c>").await.starts_with("250 "));
}

#[tokio::test]
async fn count_only_keeps_no_bodies() {
    let sink = Sink::start(SinkOptions { count_only: true, ..SinkOptions::default() }).await;
    let mut c = Client::connect(&sink).await;
    c.command("HELO x").await;
    for _ in 0..3 {
        c.command("MAIL FROM:<a@b.c>").await;
        c.command("RCPT TO:<d@e.f>").await;
        assert!(c.command("DATA").await.starts_with("354 "));
        assert!(c.command("hello\r\n.").await.starts_with("250 "));
    }
    assert!(sink.wait_for(3, Duration::from_secs(10)).await);
    assert!(sink.messages().is_empty());
}
