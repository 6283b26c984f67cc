//! Email against a real SMTP server (`smtp-sink`): what arrives is parsed and checked.

use lector_domain::messaging::{ChannelSettings, SmtpSecurity};
use lector_messaging::send::{Outgoing, SendError, Sender};
use mail_parser::MessageParser;
use smtp_sink::{RcptRule, Received, Sink, SinkOptions, TlsMode};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn settings(sink: &Sink, security: SmtpSecurity, username: Option<&str>, accept_invalid_certs: bool) -> ChannelSettings {
    ChannelSettings::Email {
        host: "127.0.0.1".into(),
        port: sink.addr().port(),
        security,
        username: username.map(Into::into),
        from_address: "library@example.edu.cn".into(),
        from_name: "图书馆".into(),
        qq_mailbox: true,
        accept_invalid_certs,
    }
}

fn outgoing(address: &str) -> Outgoing {
    Outgoing {
        address: address.into(),
        display_name: "王小明".into(),
        subject: "【通知】王小明，您的读者证将于 2026-09-01 到期".into(),
        text: "王小明同学：\n您的读者证即将到期，请及时续办。\n.这一行以句点开头\n".into(),
        html: Some("<html><body><p>王小明同学：</p><p>您的读者证即将到期。</p></body></html>".into()),
        message_id: "<outbox-42.k3j9@lector>".into(),
        unsubscribe_url: Some("https://lib.example.edu.cn/portal/unsubscribe?t=abc.def".into()),
        preferences_url: Some("https://lib.example.edu.cn/portal/preferences".into()),
        extra: serde_json::json!({}),
    }
}

fn only_message(sink: &Sink) -> Received {
    let mut all = sink.messages();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

#[tokio::test]
async fn chinese_multipart_message_with_list_headers() {
    let sink = Sink::start(SinkOptions::default()).await;
    let sender = Sender::new(&settings(&sink, SmtpSecurity::Plain, None, false), None).unwrap();
    sender.send(&outgoing("xiaoming@example.edu.cn")).await.unwrap();

    let got = only_message(&sink);
    assert_eq!(got.mail_from, "library@example.edu.cn");
    assert_eq!(got.rcpt_to, vec!["xiaoming@example.edu.cn".to_owned()]);
    assert!(!got.tls);

    // Headers are ASCII on the wire: the Chinese subject and names are RFC 2047 encoded.
    let raw = String::from_utf8(got.data.clone()).expect("the sender writes UTF-8 safe MIME");
    let head = &raw[..raw.find("\r\n\r\n").unwrap()];
    assert!(head.is_ascii(), "{head}");
    assert!(head.contains("=?utf-8?"), "{head}");

    let msg = MessageParser::default().parse(&got.data).unwrap();
    assert_eq!(msg.subject(), Some("【通知】王小明，您的读者证将于 2026-09-01 到期"));
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!((from.name(), from.address()), (Some("图书馆"), Some("library@example.edu.cn")));
    let to = msg.to().unwrap().first().unwrap();
    assert_eq!((to.name(), to.address()), (Some("王小明"), Some("xiaoming@example.edu.cn")));
    assert_eq!(msg.message_id(), Some("outbox-42.k3j9@lector"));
    assert!(msg.header_raw("Content-Type").unwrap().contains("multipart/alternative"));
    assert_eq!(msg.header_raw("List-Unsubscribe").unwrap().trim(), "<https://lib.example.edu.cn/portal/unsubscribe?t=abc.def>");
    assert_eq!(msg.header_raw("List-Unsubscribe-Post").unwrap().trim(), "List-Unsubscribe=One-Click");
    assert!(msg.date().is_some());

    assert_eq!((msg.text_body_count(), msg.html_body_count()), (1, 1));
    let text = msg.body_text(0).unwrap();
    assert!(text.contains("您的读者证即将到期，请及时续办。"), "{text}");
    assert!(text.contains("\n.这一行以句点开头"), "dot-stuffing round trip: {text}");
    assert!(text.contains("退订此类消息 / Unsubscribe: https://lib.example.edu.cn/portal/unsubscribe?t=abc.def"), "{text}");
    assert!(text.contains("管理消息偏好 / Manage preferences: https://lib.example.edu.cn/portal/preferences"), "{text}");
    let html = msg.body_html(0).unwrap();
    assert!(html.contains("<p>您的读者证即将到期。</p>"), "{html}");
    assert!(html.contains("<a href=\"https://lib.example.edu.cn/portal/unsubscribe?t=abc.def\">退订此类消息 / Unsubscribe</a>"), "{html}");
    assert!(html.contains("href=\"https://lib.example.edu.cn/portal/preferences\""), "{html}");
    // The footer goes inside the body element.
    assert!(html.find("管理消息偏好").unwrap() < html.find("</body>").unwrap(), "{html}");
}

#[tokio::test]
async fn plain_text_without_unsubscribe_link() {
    let sink = Sink::start(SinkOptions::default()).await;
    let sender = Sender::new(&settings(&sink, SmtpSecurity::Plain, None, false), None).unwrap();
    let out =
        Outgoing { html: None, unsubscribe_url: None, preferences_url: None, display_name: String::new(), ..outgoing("a@example.com") };
    sender.send(&out).await.unwrap();
    let got = only_message(&sink);
    let msg = MessageParser::default().parse(&got.data).unwrap();
    assert!(msg.header_raw("Content-Type").unwrap().contains("text/plain"));
    assert!(msg.header_raw("List-Unsubscribe").is_none());
    assert_eq!(msg.to().unwrap().first().unwrap().name(), None);
    let text = msg.body_text(0).unwrap();
    assert!(!text.contains("Unsubscribe") && !text.contains("-- "), "{text}");
}

#[tokio::test]
async fn qq_numbers_go_to_the_qq_mailbox() {
    let sink = Sink::start(SinkOptions::default()).await;
    let sender = Sender::new(&settings(&sink, SmtpSecurity::Plain, None, false), None).unwrap();
    sender.send(&outgoing("123456789")).await.unwrap();
    assert_eq!(only_message(&sink).rcpt_to, vec!["123456789@qq.com".to_owned()]);
}

#[tokio::test]
async fn authentication_required_and_given() {
    let options = SinkOptions { credentials: Some(("lib".into(), "s3cret-pass".into())), ..SinkOptions::default() };
    let sink = Sink::start(options).await;

    let good = Sender::new(&settings(&sink, SmtpSecurity::Plain, Some("lib"), false), Some("s3cret-pass")).unwrap();
    good.send(&outgoing("a@example.com")).await.unwrap();
    assert_eq!(only_message(&sink).auth_user.as_deref(), Some("lib"));

    // A wrong password is the channel's problem: transient, and the password is not echoed.
    let bad = Sender::new(&settings(&sink, SmtpSecurity::Plain, Some("lib"), false), Some("wrong-password")).unwrap();
    let err = bad.send(&outgoing("b@example.com")).await.unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert!(!err.to_string().contains("wrong-password"), "{err}");
    assert!(!format!("{bad:?}").contains("wrong-password"), "{bad:?}");

    // No credentials at all: the server's 530 is not the reader's fault either.
    let none = Sender::new(&settings(&sink, SmtpSecurity::Plain, None, false), None).unwrap();
    let err = none.send(&outgoing("c@example.com")).await.unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert!(err.to_string().contains("530"), "{err}");
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn starttls_with_a_self_signed_certificate() {
    let options = SinkOptions { tls: TlsMode::Starttls, credentials: Some(("lib".into(), "pw-123456".into())), ..SinkOptions::default() };
    let sink = Sink::start(options).await;
    let sender = Sender::new(&settings(&sink, SmtpSecurity::Starttls, Some("lib"), true), Some("pw-123456")).unwrap();
    sender.send(&outgoing("a@example.com")).await.unwrap();
    let got = only_message(&sink);
    assert!(got.tls);
    assert_eq!(got.auth_user.as_deref(), Some("lib"));

    // Without accepting the self-signed certificate the handshake fails: transient (a channel
    // setting to fix), nothing delivered.
    let strict = Sender::new(&settings(&sink, SmtpSecurity::Starttls, Some("lib"), false), Some("pw-123456")).unwrap();
    let err = strict.send(&outgoing("b@example.com")).await.unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert_eq!(sink.count(), 1);

    // A server without STARTTLS is refused when it is required.
    let plain = Sink::start(SinkOptions::default()).await;
    let sender = Sender::new(&settings(&plain, SmtpSecurity::Starttls, None, true), None).unwrap();
    assert!(matches!(sender.send(&outgoing("c@example.com")).await, Err(SendError::Transient(_))));
    assert_eq!(plain.count(), 0);
}

#[tokio::test]
async fn implicit_tls() {
    let sink = Sink::start(SinkOptions { tls: TlsMode::Implicit, ..SinkOptions::default() }).await;
    let sender = Sender::new(&settings(&sink, SmtpSecurity::Tls, None, true), None).unwrap();
    sender.send(&outgoing("a@example.com")).await.unwrap();
    let got = only_message(&sink);
    assert!(got.tls);
    let msg = MessageParser::default().parse(&got.data).unwrap();
    assert_eq!(msg.subject(), Some("【通知】王小明，您的读者证将于 2026-09-01 到期"));
}

#[tokio::test]
async fn refusals_are_classified() {
    let sink = Sink::start(SinkOptions::default()).await;
    sink.set_rcpt_rule("Gone@Example.com", Some(RcptRule::Reject));
    sink.set_rcpt_rule("busy@example.com", Some(RcptRule::Defer));
    let sender = Sender::new(&settings(&sink, SmtpSecurity::Plain, None, false), None).unwrap();

    let err = sender.send(&outgoing("gone@example.com")).await.unwrap_err();
    assert!(matches!(&err, SendError::Permanent(r) if r.contains("550")), "{err:?}");
    let err = sender.send(&outgoing("busy@example.com")).await.unwrap_err();
    assert!(matches!(&err, SendError::Transient(r) if r.contains("451")), "{err:?}");
    let err = sender.send(&outgoing("not an address")).await.unwrap_err();
    assert!(matches!(&err, SendError::Permanent(r) if r.contains("not an address")), "{err:?}");
    assert_eq!(sink.count(), 0);

    // The same sender keeps working after refusals; a lifted rule delivers.
    sink.set_rcpt_rule("busy@example.com", None);
    sender.send(&outgoing("busy@example.com")).await.unwrap();
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn unreachable_server_is_transient() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = ChannelSettings::Email {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::Plain,
        username: None,
        from_address: "library@example.edu.cn".into(),
        from_name: "图书馆".into(),
        qq_mailbox: false,
        accept_invalid_certs: false,
    };
    let err = Sender::new(&s, None).unwrap().send(&outgoing("a@example.com")).await.unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn bad_settings_are_refused_when_building() {
    let s = ChannelSettings::Email {
        host: "smtp.example.edu.cn".into(),
        port: 25,
        security: SmtpSecurity::Plain,
        username: None,
        from_address: "not-an-address".into(),
        from_name: "图书馆".into(),
        qq_mailbox: false,
        accept_invalid_certs: false,
    };
    assert!(Sender::new(&s, None).is_err());
}

#[tokio::test]
async fn many_concurrent_messages_share_the_pool() {
    let sink = Sink::start(SinkOptions::default()).await;
    let sender = std::sync::Arc::new(Sender::new(&settings(&sink, SmtpSecurity::Plain, None, false), None).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let sender = sender.clone();
        tasks.spawn(async move {
            let out = Outgoing { message_id: format!("<outbox-{i}.x@lector>"), ..outgoing(&format!("r{i}@example.com")) };
            sender.send(&out).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert!(sink.wait_for(200, WAIT).await);
    let mut ids: Vec<String> =
        sink.messages().iter().map(|m| MessageParser::default().parse(&m.data).unwrap().message_id().unwrap().to_owned()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
}

#[tokio::test]
async fn stalled_transactions_resume() {
    let sink = Sink::start(SinkOptions::default()).await;
    let sender = std::sync::Arc::new(Sender::new(&settings(&sink, SmtpSecurity::Plain, None, false), None).unwrap());
    sender.send(&outgoing("first@example.com")).await.unwrap();
    sink.stall_new_transactions(true);
    let task = tokio::spawn({
        let sender = sender.clone();
        async move { sender.send(&outgoing("second@example.com")).await }
    });
    assert!(!sink.wait_for(2, Duration::from_millis(300)).await, "a stalled sink accepts nothing new");
    assert!(!task.is_finished());
    sink.stall_new_transactions(false);
    assert!(sink.wait_for(2, WAIT).await);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stalled_server_times_out_as_transient() {
    let sink = Sink::start(SinkOptions::default()).await;
    let sender = Sender::with_timeout(&settings(&sink, SmtpSecurity::Plain, None, false), None, Duration::from_secs(2)).unwrap();
    sender.send(&outgoing("first@example.com")).await.unwrap();
    sink.stall_new_transactions(true);
    let err = sender.send(&outgoing("second@example.com")).await.unwrap_err();
    assert!(matches!(&err, SendError::Transient(r) if r.contains("did not answer")), "{err:?}");
    sink.stall_new_transactions(false);
    // The timed-out connection is not reused: the next message goes through on a fresh one.
    sender.send(&outgoing("third@example.com")).await.unwrap();
    let rcpts: Vec<String> = sink.messages().into_iter().flat_map(|m| m.rcpt_to).collect();
    assert_eq!(rcpts, vec!["first@example.com".to_owned(), "third@example.com".to_owned()]);
}
