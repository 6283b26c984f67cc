// TEMPORARY experiment, deleted after measuring.
use sqlx::{Connection, Executor};
use std::time::Instant;

async fn run(label: &str, pragmas: &str, drop: &[&str], returning: bool, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let store = lector_store::Store::open(&url).await.unwrap();
    store.close().await;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&format!("{url}?mode=rwc")).await.unwrap();
    c.execute("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32000;").await.unwrap();
    if !pragmas.is_empty() { c.execute(pragmas).await.unwrap(); }
    for d in drop { c.execute(*d).await.unwrap(); }
    let mut tx = c.begin().await.unwrap();
    let per = 31;
    let mut text = String::from("INSERT INTO readers (card_no, name, pinyin, initials, gender, birth_date, category_id, affiliation, status, enrolled_on, expires_on, owner_id, notes, version, created_at, updated_at) VALUES ");
    for r in 0..per { if r > 0 { text.push_str(", "); } text.push('('); text.push_str(&vec!["?"; 16].join(", ")); text.push(')'); }
    if returning { text.push_str(" RETURNING id, card_no"); }
    let t = Instant::now();
    for chunk in 0..n / per {
        let mut q = sqlx::query(&text);
        for r in 0..per {
            let i = chunk * per + r;
            let h = (i as u64).wrapping_mul(0x9E3779B97F4A7C15);
            q = q.bind(format!("2024{i:08}")).bind(format!("名字{}", h % 1000)).bind(format!("py{:016x}", h)).bind("xyz").bind("unknown").bind(None::<String>)
                .bind(1i64).bind("数学科学学院").bind("active").bind(None::<String>).bind(None::<String>).bind(None::<i64>).bind(None::<String>).bind(1i64)
                .bind("2025-01-01T00:00:00.000Z").bind("2025-01-01T00:00:00.000Z");
        }
        let rows = q.fetch_all(&mut *tx).await.unwrap();
        std::hint::black_box(rows);
    }
    let ins = t.elapsed().as_secs_f64();
    // search keys: 5 per reader, random keys
    let per = 250;
    let mut text = String::from("INSERT INTO reader_search_keys (key, reader_id) VALUES ");
    for r in 0..per { if r > 0 { text.push_str(", "); } text.push_str("(?, ?)"); }
    let t = Instant::now();
    for chunk in 0..(n * 5) / per {
        let mut q = sqlx::query(&text);
        for r in 0..per {
            let i = chunk * per + r;
            let h = (i as u64).wrapping_mul(0x9E3779B97F4A7C15);
            q = q.bind(format!("k{:016x}", h)).bind(((i / 5) % (n / 31 * 31) + 1) as i64);
        }
        q.execute(&mut *tx).await.unwrap();
    }
    let keys = t.elapsed().as_secs_f64();
    let t = Instant::now();
    tx.commit().await.unwrap();
    eprintln!("{label:40} readers {:.0}/s  keys {:.0}/s  commit {:.2}s", n as f64 / ins, (n * 5) as f64 / keys, t.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn scratch() {
    let n = 100_000;
    run("baseline (RETURNING)", "", &[], true, n).await;
    run("no RETURNING", "", &[], false, n).await;
    run("temp_store memory", "PRAGMA temp_store = MEMORY", &[], false, n).await;
    run("bigger cache 256MB", "PRAGMA cache_size = -262144", &[], false, n).await;
    run("no pinyin index", "", &["DROP INDEX readers_pinyin"], false, n).await;
    run("no FK", "PRAGMA foreign_keys = OFF", &[], false, n).await;
    run("keys: one index only", "", &["DROP INDEX reader_search_keys_reader"], false, n).await;
    run("readers: no secondary idx", "", &["DROP INDEX readers_pinyin", "DROP INDEX readers_category", "DROP INDEX readers_status", "DROP INDEX readers_owner", "DROP INDEX readers_affiliation", "DROP INDEX readers_updated", "DROP INDEX readers_created"], false, n).await;
}
