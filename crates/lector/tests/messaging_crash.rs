//! Exactly once, end to end with the real binary and a real SMTP sink (see
//! `docs/adr/0005-messaging.md`): a `kill -9` in the middle of sending, then a restart, delivers
//! every message once; two `lector serve` on one PostgreSQL share the outbox without duplicates.

mod common;

use common::*;
use lector_domain::messaging::{ChannelKind, ChannelSettings, OutboxStatus, Purpose, SmtpSecurity};
use lector_domain::reader::ReaderDraft;
use lector_store::channels::ChannelInput;
use lector_store::outbox::NewMessage;
use lector_store::templates::{TemplateInput, TemplateVariant};
use lector_store::{Actor, Store};
use smtp_sink::{Sink, SinkOptions};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    // The sink must answer while the test thread waits on the server process.
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A short lease and quick polls, so a crashed server's claims come back within seconds.
fn write_config(dir: &Path, batch: usize) {
    let toml =
        format!("[messaging]\nlease_secs = 3\npoll_ms = 100\nbatch = {batch}\nconcurrency = 4\nbackoff_secs = 1\nbackoff_cap_secs = 2\n");
    std::fs::write(dir.join("lector.toml"), toml).unwrap();
}

/// `n` readers, an email channel to the sink at `rate` a second, a template, and one outbox row
/// per reader. Returns the outbox ids.
async fn seed(store: &Store, n: usize, port: u16, rate: i64) -> Vec<i64> {
    let actor = Actor::system("test");
    let today = chrono::Local::now().date_naive();
    let inputs: Vec<_> = (0..n)
        .map(|i| {
            ReaderDraft { card_no: format!("X{i:05}"), name: format!("读者{i}"), category: "undergraduate".into(), ..Default::default() }
                .parse(today)
                .unwrap()
        })
        .collect();
    store.bulk_create_readers(&actor, &inputs, &lector_store::now_text()).await.unwrap();
    let settings = ChannelSettings::Email {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::Plain,
        username: None,
        from_address: "library@example.edu.cn".into(),
        from_name: "图书馆".into(),
        qq_mailbox: false,
        accept_invalid_certs: false,
    };
    let channel = store
        .create_channel(
            &actor,
            &ChannelInput { code: "mail".into(), name: "邮件".into(), settings, secret: None, rate_per_second: rate, enabled: true },
        )
        .await
        .unwrap();
    let variant = TemplateVariant {
        channel_kind: ChannelKind::Email,
        lang: "zh".into(),
        subject: "{{ reader.name }}，您好".into(),
        body_text: "{{ reader.name }}（{{ reader.card_no }}）：图书馆通知。".into(),
        body_html: None,
    };
    let template = store
        .create_template(
            &actor,
            &TemplateInput { code: "notice".into(), name: "通知".into(), purpose: Purpose::Service, variants: vec![variant] },
        )
        .await
        .unwrap();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let reader = store.reader_by_card(&format!("X{i:05}")).await.unwrap();
        let msg = NewMessage {
            dedupe_key: format!("crash-test:{i}"),
            campaign_id: None,
            trigger: None,
            reader_id: Some(reader.id),
            channel_id: channel.id,
            address: format!("r{i:05}@example.edu.cn"),
            template_id: template.id,
            vars: serde_json::Value::Null,
            purpose: Purpose::Service,
            lang: "zh".into(),
            not_before: None,
        };
        ids.push(store.enqueue_message(&msg).await.unwrap().expect("a new row"));
    }
    ids
}

async fn count(store: &Store, status: OutboxStatus) -> i64 {
    store.outbox_counts().await.unwrap().get(&status).copied().unwrap_or(0)
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every recipient got exactly one message, and each carries its row's stable Message-ID.
fn assert_each_exactly_once(sink: &Sink, n: usize) {
    let mut per_address: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for m in sink.messages() {
        for rcpt in &m.rcpt_to {
            *per_address.entry(rcpt.clone()).or_default() += 1;
        }
        let data = String::from_utf8_lossy(&m.data);
        let id = data.lines().find_map(|l| l.strip_prefix("Message-ID: ").or_else(|| l.strip_prefix("Message-Id: "))).map(str::to_string);
        let id = id.unwrap_or_else(|| panic!("no Message-ID in {data}"));
        assert!(id.starts_with("<outbox-") && id.ends_with("@lector>"), "{id}");
        ids.insert(id);
    }
    let twice: Vec<_> = per_address.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "recipients not served exactly once: {twice:?}");
    assert_eq!(per_address.len(), n, "every recipient got a message");
    assert_eq!(ids.len(), n, "one Message-ID per message");
}

#[test]
fn a_crash_in_the_middle_sends_every_message_exactly_once() {
    const N: usize = 300;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), 20);
    let sink = rt.block_on(Sink::start(SinkOptions::default()));
    let url = format!("sqlite://{}", dir.path().join("lector.db").display());
    let store = rt.block_on(Store::open(&url)).unwrap();
    rt.block_on(seed(&store, N, sink.addr().port(), 40));

    let mut server = spawn_serve(dir.path(), &[]);
    assert!(rt.block_on(sink.wait_for(100, Duration::from_secs(120))), "the first 100 messages never arrived");
    // Freeze the sender between messages; once every accepted message is recorded (and stays
    // so), kill the server without warning.
    sink.stall_new_transactions(true);
    rt.block_on(until("every accepted message is recorded", Duration::from_secs(60), || async {
        let mut stable = 0;
        while stable < 3 {
            if count(&store, OutboxStatus::Sent).await != sink.count() as i64 {
                return false;
            }
            stable += 1;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        true
    }));
    server.child.kill().expect("kill -9 the server");
    server.child.wait().unwrap();
    let sent_before = rt.block_on(count(&store, OutboxStatus::Sent));
    let claimed_unsent = rt.block_on(count(&store, OutboxStatus::Sending));
    assert!(sent_before >= 100 && (sent_before as usize) < N, "sent before the crash: {sent_before}");
    assert!(claimed_unsent > 0, "the crash left claimed, unsent rows for the lease to hand back");
    sink.stall_new_transactions(false);

    let _server = spawn_serve(dir.path(), &[]);
    assert!(rt.block_on(sink.wait_for(N as u64, Duration::from_secs(180))), "only {} of {N} arrived after the restart", sink.count());
    rt.block_on(until("every row is sent", Duration::from_secs(60), || async { count(&store, OutboxStatus::Sent).await == N as i64 }));
    let counts = rt.block_on(store.outbox_counts()).unwrap();
    assert_eq!(counts.len(), 1, "nothing pending, sending or failed: {counts:?}");
    assert_each_exactly_once(&sink, N);
    assert_eq!(sink.count(), N as u64);
    rt.block_on(store.close());
}

#[test]
fn two_servers_on_postgresql_share_the_outbox_without_duplicates() {
    const N: usize = 500;
    let Some(db) = PgDatabase::create() else { return };
    let rt = runtime();
    let url = db.url();
    let sink = rt.block_on(Sink::start(SinkOptions::default()));
    let store = rt.block_on(Store::open(&url)).unwrap();
    rt.block_on(seed(&store, N, sink.addr().port(), 60));
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_config(a.path(), 10);
    write_config(b.path(), 10);

    let first = spawn_serve(a.path(), &["--database-url", &url]);
    let second = spawn_serve(b.path(), &["--database-url", &url]);
    assert!(rt.block_on(sink.wait_for(N as u64, Duration::from_secs(180))), "only {} of {N} arrived", sink.count());
    rt.block_on(until("every row is sent", Duration::from_secs(60), || async { count(&store, OutboxStatus::Sent).await == N as i64 }));
    drop((first, second));
    assert_each_exactly_once(&sink, N);
    assert_eq!(sink.count(), N as u64);
    let out = std::process::Command::new("psql")
        .args([url.as_str(), "-tAc", "SELECT claimed_by, COUNT(*) FROM outbox WHERE status = 'sent' GROUP BY claimed_by"])
        .output()
        .expect("run psql");
    let per_worker: Vec<(String, i64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('|').map(|(w, n)| (w.to_string(), n.trim().parse().unwrap_or(0))))
        .collect();
    assert_eq!(per_worker.len(), 2, "both servers sent some: {per_worker:?}");
    assert!(per_worker.iter().all(|(_, n)| *n > 0), "{per_worker:?}");
    rt.block_on(store.close());
}
