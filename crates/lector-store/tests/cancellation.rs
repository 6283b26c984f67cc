//! A client that disconnects mid-request drops the request's future, and with it any open
//! transaction. The connection goes back to the pool while its rollback is pending; the store must
//! keep working on it.

use lector_domain::reader::ReaderDraft;
use lector_store::{Actor, Store};
use std::time::Duration;

fn draft(card: &str) -> lector_domain::reader::ReaderInput {
    ReaderDraft { card_no: card.into(), name: "王芳".into(), category: "undergraduate".into(), ..Default::default() }
        .parse(chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_keep_working_after_cancelled_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    let actor = Actor::system("test");
    // Cancel creates at every point of their progress, many times over.
    let mut cancelled = 0;
    for i in 0..200u64 {
        let input = draft(&format!("C{i:04}"));
        if tokio::time::timeout(Duration::from_micros(i * 20), store.create_reader(&actor, &input)).await.is_err() {
            cancelled += 1;
        }
    }
    assert!(cancelled > 0, "no create was cancelled: the test proves nothing");
    // Every connection of the pool must still take write transactions.
    let mut done = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        let actor = actor.clone();
        done.push(tokio::spawn(async move { store.create_reader(&actor, &draft(&format!("D{i:04}"))).await }));
    }
    for d in done {
        d.await.unwrap().expect("a write after cancelled transactions");
    }
    let stats = store.reader_stats().await.unwrap();
    assert!(stats.total >= 32);
}
