//! The outbox worker against a real store (SQLite) and a real SMTP sink: rendering per reader and
//! language with the links and a stable Message-ID, what becomes of template errors, missing
//! variants, refusals, quiet hours and disabled channels, a channel changed between batches, and
//! a clean stop.

use lector_domain::messaging::{ChannelKind, ChannelSettings, OutboxStatus, Purpose, SmtpSecurity};
use lector_domain::reader::{ContactDraft, ReaderDraft};
use lector_messaging::worker::{run_until, Worker, WorkerOptions};
use lector_store::channels::{Channel, ChannelInput};
use lector_store::outbox::NewMessage;
use lector_store::templates::{TemplateInput, TemplateVariant};
use lector_store::{Actor, Store};
use mail_parser::MessageParser;
use smtp_sink::{RcptRule, Sink, SinkOptions};
use std::time::Duration;
use tokio::sync::watch;

struct Fixture {
    store: Store,
    dir: tempfile::TempDir,
    sink: Sink,
    email: Channel,
    template: i64,
    reader_zh: i64,
    reader_en: i64,
}

fn actor() -> Actor {
    Actor::system("test")
}

fn smtp(port: u16) -> ChannelSettings {
    ChannelSettings::Email {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::Plain,
        username: None,
        from_address: "library@example.edu.cn".into(),
        from_name: "示例大学图书馆".into(),
        qq_mailbox: false,
        accept_invalid_certs: false,
    }
}

fn variant(kind: ChannelKind, lang: &str, subject: &str, text: &str, html: Option<&str>) -> TemplateVariant {
    TemplateVariant {
        channel_kind: kind,
        lang: lang.into(),
        subject: subject.into(),
        body_text: text.into(),
        body_html: html.map(Into::into),
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    store.set_public_url(&actor(), "https://lector.example.edu.cn").await.unwrap();
    let sink = Sink::start(SinkOptions::default()).await;
    let email = store
        .create_channel(
            &actor(),
            &ChannelInput {
                code: "mail".into(),
                name: "邮件".into(),
                settings: smtp(sink.addr().port()),
                secret: None,
                rate_per_second: 100,
                enabled: true,
            },
        )
        .await
        .unwrap();
    let template = store
        .create_template(
            &actor(),
            &TemplateInput {
                code: "expiry".into(),
                name: "到期提醒".into(),
                purpose: Purpose::Service,
                variants: vec![
                    variant(
                        ChannelKind::Email,
                        "zh",
                        "{{ reader.name }}，读者证到期提醒",
                        "{{ reader.name }}（{{ reader.category }}）：您的读者证将于 {{ reader.expires_on }} 到期。验证码 {{ code }}。",
                        Some("<p>{{ reader.name }}</p>"),
                    ),
                    variant(
                        ChannelKind::Email,
                        "en",
                        "Card expiry: {{ reader.name }}",
                        "Dear {{ reader.name }} ({{ reader.category }})",
                        None,
                    ),
                ],
            },
        )
        .await
        .unwrap();
    let today = chrono::Local::now().date_naive();
    let mut ids = Vec::new();
    for (card, name) in [("2025001", "王芳"), ("2025002", "Li Lei")] {
        let d = ReaderDraft {
            card_no: card.into(),
            name: name.into(),
            category: "undergraduate".into(),
            expires_on: Some("2027-07-01".into()),
            contacts: vec![ContactDraft { kind: "email".into(), value: format!("{card}@example.edu.cn"), ..Default::default() }],
            ..Default::default()
        };
        ids.push(store.create_reader(&actor(), &d.parse(today).unwrap()).await.unwrap().id);
    }
    let pool =
        sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    sqlx::query("UPDATE readers SET lang = 'en' WHERE id = $1").bind(ids[1]).execute(&pool).await.unwrap();
    pool.close().await;
    Fixture { store, dir, sink, email, template: template.id, reader_zh: ids[0], reader_en: ids[1] }
}

fn message(f: &Fixture, key: &str, reader: i64, address: &str, lang: &str) -> NewMessage {
    NewMessage {
        dedupe_key: key.into(),
        campaign_id: None,
        trigger: None,
        reader_id: Some(reader),
        channel_id: f.email.id,
        address: address.into(),
        template_id: f.template,
        vars: serde_json::json!({"code": "482913"}),
        purpose: Purpose::Service,
        lang: lang.into(),
        not_before: None,
    }
}

fn options() -> WorkerOptions {
    WorkerOptions { worker_id: "test-worker".into(), batch: 50, concurrency: 4, ..WorkerOptions::default() }
}

fn worker(f: &Fixture) -> (Worker, watch::Sender<bool>) {
    let (stop, stopped) = watch::channel(false);
    (Worker::new(f.store.clone(), options(), stopped), stop)
}

#[tokio::test]
async fn messages_are_rendered_per_reader_and_language_with_their_links() {
    let f = fixture().await;
    let zh = f.store.enqueue_message(&message(&f, "a", f.reader_zh, "2025001@example.edu.cn", "zh")).await.unwrap().unwrap();
    let en = f.store.enqueue_message(&message(&f, "b", f.reader_en, "2025002@example.edu.cn", "en")).await.unwrap().unwrap();
    let (mut w, _stop) = worker(&f);
    assert_eq!(w.tick().await.unwrap(), 2);
    assert_eq!(f.sink.count(), 2);
    let salt = f.store.message_id_salt().await.unwrap();
    for (id, to, subject, body) in [
        (zh, "2025001@example.edu.cn", "王芳，读者证到期提醒", "王芳（本科生）：您的读者证将于 2027-07-01 到期。验证码 482913。"),
        (en, "2025002@example.edu.cn", "Card expiry: Li Lei", "Dear Li Lei (Undergraduate)"),
    ] {
        let got = f.sink.messages().into_iter().find(|m| m.rcpt_to == vec![to.to_string()]).expect("delivered");
        let parsed = MessageParser::default().parse(&got.data).unwrap();
        assert_eq!(parsed.subject(), Some(subject));
        assert!(parsed.body_text(0).unwrap().contains(body), "{:?}", parsed.body_text(0));
        assert!(parsed.body_text(0).unwrap().contains("https://lector.example.edu.cn/portal/preferences"));
        assert_eq!(parsed.message_id(), Some(format!("outbox-{id}.{salt}@lector").as_str()));
        let raw = String::from_utf8_lossy(&got.data);
        assert!(raw.contains("List-Unsubscribe: <https://lector.example.edu.cn/portal/unsubscribe/"), "{raw}");
        let row = f.store.outbox_message(id).await.unwrap();
        assert_eq!((row.status, row.claimed_by.as_deref()), (OutboxStatus::Sent, Some("test-worker")));
    }
    // Nothing left: the next tick claims nothing and sends nothing.
    assert_eq!(w.tick().await.unwrap(), 0);
    assert_eq!(f.sink.count(), 2);
}

#[tokio::test]
async fn failures_are_recorded_with_their_reason() {
    let f = fixture().await;
    f.sink.set_rcpt_rule("gone@example.edu.cn", Some(RcptRule::Reject));
    f.sink.set_rcpt_rule("busy@example.edu.cn", Some(RcptRule::Defer));
    // A template the web layer would have refused, stored directly: its error fails the message.
    let broken = f
        .store
        .create_template(
            &actor(),
            &TemplateInput {
                code: "broken".into(),
                name: "坏模板".into(),
                purpose: Purpose::Service,
                variants: vec![variant(ChannelKind::Email, "zh", "x", "第一行\n{% for x in %}", None)],
            },
        )
        .await
        .unwrap();
    let sms = f
        .store
        .create_channel(
            &actor(),
            &ChannelInput {
                code: "sms".into(),
                name: "短信".into(),
                settings: ChannelSettings::Sms {
                    url: "http://127.0.0.1:9/send".into(),
                    mobile_field: "mobile".into(),
                    text_field: "text".into(),
                },
                secret: None,
                rate_per_second: 10,
                enabled: true,
            },
        )
        .await
        .unwrap();
    let gone = f.store.enqueue_message(&message(&f, "gone", f.reader_zh, "gone@example.edu.cn", "zh")).await.unwrap().unwrap();
    let busy = f.store.enqueue_message(&message(&f, "busy", f.reader_zh, "busy@example.edu.cn", "zh")).await.unwrap().unwrap();
    let mut m = message(&f, "broken", f.reader_zh, "ok@example.edu.cn", "zh");
    m.template_id = broken.id;
    let bad_template = f.store.enqueue_message(&m).await.unwrap().unwrap();
    let mut m = message(&f, "no-variant", f.reader_zh, "13800138000", "zh");
    m.channel_id = sms.id;
    let no_variant = f.store.enqueue_message(&m).await.unwrap().unwrap();
    let (mut w, _stop) = worker(&f);
    assert_eq!(w.tick().await.unwrap(), 4);
    assert_eq!(f.sink.count(), 0, "nothing was accepted");

    let row = f.store.outbox_message(gone).await.unwrap();
    assert_eq!(row.status, OutboxStatus::Failed);
    assert!(row.last_error.unwrap().contains("550"));
    assert!(f.store.address_health("email", "gone@example.edu.cn").await.unwrap().unwrap().blocked_at.is_some());
    let row = f.store.outbox_message(busy).await.unwrap();
    assert_eq!((row.status, row.attempts), (OutboxStatus::Pending, 1), "a 451 is retried later");
    assert!(row.last_error.unwrap().contains("451"));
    let row = f.store.outbox_message(bad_template).await.unwrap();
    assert_eq!(row.status, OutboxStatus::Failed);
    let why = row.last_error.unwrap();
    assert!(why.contains("line 2"), "the template error names its line: {why}");
    let row = f.store.outbox_message(no_variant).await.unwrap();
    assert_eq!(row.status, OutboxStatus::Failed);
    assert!(row.last_error.unwrap().contains("no variant for SMS"));
}

#[tokio::test]
async fn quiet_hours_and_a_disabled_channel_hold_messages_back() {
    let f = fixture().await;
    let url = format!("sqlite://{}/t.db", f.dir.path().display());
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    let now = lector_store::now_text();
    sqlx::query("INSERT INTO segments (name, description, filter_json, created_at, updated_at) VALUES ('s', '', '{}', $1, $1)")
        .bind(now.clone())
        .execute(&pool)
        .await
        .unwrap();
    // Quiet from an hour ago to an hour from now, local time: it is quiet now.
    let local = chrono::Local::now();
    let hhmm = |t: chrono::DateTime<chrono::Local>| t.format("%H:%M").to_string();
    sqlx::query(
        "INSERT INTO campaigns (name, segment_id, template_id, purpose, channels, status, quiet_start, quiet_end, created_at, updated_at)
         VALUES ('夜间', (SELECT id FROM segments), $1, 'service', 'mail', 'sending', $2, $3, $4, $4)",
    )
    .bind(f.template)
    .bind(hhmm(local - chrono::Duration::hours(1)))
    .bind(hhmm(local + chrono::Duration::hours(1)))
    .bind(now)
    .execute(&pool)
    .await
    .unwrap();
    let campaign: i64 = sqlx::query_scalar("SELECT id FROM campaigns").fetch_one(&pool).await.unwrap();
    pool.close().await;
    let mut m = message(&f, "quiet", f.reader_zh, "2025001@example.edu.cn", "zh");
    m.campaign_id = Some(campaign);
    let quiet = f.store.enqueue_message(&m).await.unwrap().unwrap();
    let (mut w, _stop) = worker(&f);
    assert_eq!(w.tick().await.unwrap(), 1);
    let row = f.store.outbox_message(quiet).await.unwrap();
    assert_eq!((row.status, row.attempts), (OutboxStatus::Pending, 0));
    assert!(row.last_error.unwrap().contains("quiet hours"));
    let until = chrono::DateTime::parse_from_rfc3339(&row.next_attempt_at).unwrap();
    assert!(until > chrono::Utc::now() + chrono::Duration::minutes(50), "held until the quiet hours end: {until}");

    // A disabled channel keeps its messages waiting, without counting an attempt.
    f.store.set_channel_enabled(&actor(), f.email.id, false).await.unwrap();
    let held = f.store.enqueue_message(&message(&f, "held", f.reader_zh, "2025001@example.edu.cn", "zh")).await.unwrap().unwrap();
    assert_eq!(w.tick().await.unwrap(), 1);
    let row = f.store.outbox_message(held).await.unwrap();
    assert_eq!((row.status, row.attempts), (OutboxStatus::Pending, 0));
    assert!(row.last_error.unwrap().contains("disabled"));
    assert_eq!(f.sink.count(), 0);
}

#[tokio::test]
async fn a_changed_channel_is_picked_up_and_the_worker_stops_cleanly() {
    let f = fixture().await;
    let (mut w, _stop) = worker(&f);
    f.store.enqueue_message(&message(&f, "first", f.reader_zh, "one@example.edu.cn", "zh")).await.unwrap();
    assert_eq!(w.tick().await.unwrap(), 1);
    assert_eq!(f.sink.count(), 1);
    // The channel now points at another server: the next batch goes there.
    let other = Sink::start(SinkOptions::default()).await;
    let input = ChannelInput {
        code: "mail".into(),
        name: "邮件".into(),
        settings: smtp(other.addr().port()),
        secret: None,
        rate_per_second: 100,
        enabled: true,
    };
    f.store.update_channel(&actor(), f.email.id, None, &input).await.unwrap();
    f.store.enqueue_message(&message(&f, "second", f.reader_zh, "two@example.edu.cn", "zh")).await.unwrap();
    assert_eq!(w.tick().await.unwrap(), 1);
    assert_eq!((f.sink.count(), other.count()), (1, 1));

    // The loop: sends what arrives, and returns once told to stop.
    let (stop, stopped) = watch::channel(false);
    let opts = WorkerOptions { poll: Duration::from_millis(20), ..options() };
    let task = tokio::spawn(run_until(f.store.clone(), opts, stopped));
    f.store.enqueue_message(&message(&f, "third", f.reader_zh, "three@example.edu.cn", "zh")).await.unwrap();
    assert!(other.wait_for(2, Duration::from_secs(20)).await, "the running worker sent the new message");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), task).await.expect("the worker stops when told").unwrap();
}
