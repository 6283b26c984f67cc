//! The refresh from the operational store, on SQLite and on PostgreSQL: a seeded store is
//! loaded, then queried through the warehouse's SQL.

// The store's scenario harness: a fresh SQLite file and a fresh PostgreSQL database per test.
#[path = "../../lector-store/tests/common/mod.rs"]
#[macro_use]
#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Local, Months, NaiveDateTime, Utc};
use common::{actor, draft, raw_pool, today};
use lector_store::auth::NewUser;
use lector_store::cases::CaseSource;
use lector_store::channels::ChannelInput;
use lector_store::config::NamedInput;
use lector_store::domain::case::{CaseAction, CaseInput, CaseKind, CaseStatus, Priority, RatingDraft, TriageOutcome};
use lector_store::domain::messaging::{ChannelKind, ChannelSettings, ConsentSource, Purpose, SmtpSecurity};
use lector_store::domain::reader::{ContactDraft, ReaderDraft, ReaderInput};
use lector_store::domain::role::Role;
use lector_store::domain::tracking::{Channel, Direction, InteractionInput};
use lector_store::outbox::{Failure, NewMessage, OutboxPolicy};
use lector_store::readers::ReaderRecord;
use lector_store::templates::{TemplateInput, TemplateVariant};
use lector_store::{Actor, Store};
use lector_warehouse::etl::{refresh_with, RefreshError, RefreshOptions, RefreshReport, TABLES};
use lector_warehouse::reader_key::ReaderKeyer;
use lector_warehouse::{Warehouse, WarehouseConfig};
use serde_json::{Map, Value};

scenarios!(
    scenario:
    a_refresh_loads_readers_interactions_cases_and_messages,
    a_changed_category_appends_a_version_and_moves_is_current,
    refreshing_again_loads_only_what_is_new,
    small_pages_and_batches_load_everything_once,
    a_lost_record_of_exported_rows_loads_nothing_twice,
    a_refresh_waits_for_another_to_finish,
);

/// Options for tests: no settling time, so rows just written are loaded at once on PostgreSQL too.
fn options() -> RefreshOptions {
    RefreshOptions { settle: Duration::ZERO, ..RefreshOptions::default() }
}

async fn refresh(store: &Store, wh: &Warehouse) -> RefreshReport {
    refresh_with(store, wh, &options()).await.unwrap_or_else(|e| panic!("refresh: {e}"))
}

/// A warehouse in a fresh folder (kept alive by the returned guard).
async fn warehouse() -> (Warehouse, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let wh = Warehouse::open(WarehouseConfig::new(dir.path())).await.expect("open the warehouse");
    (wh, dir)
}

async fn rows(wh: &Warehouse, sql: &str) -> Vec<Map<String, Value>> {
    wh.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).to_json_rows().expect("JSON rows")
}

async fn count(wh: &Warehouse, sql: &str) -> i64 {
    let r = rows(wh, sql).await;
    r.first().and_then(|row| row.values().next()).and_then(Value::as_i64).unwrap_or_else(|| panic!("{sql}: no count in {r:?}"))
}

/// Row counts of every table the refresh loads.
async fn table_counts(wh: &Warehouse) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        out.insert(t, count(wh, &format!("SELECT COUNT(*) AS n FROM {t}")).await);
    }
    out
}

fn input(card: &str, name: &str, edit: impl FnOnce(&mut ReaderDraft)) -> ReaderInput {
    let mut d = draft(card, name);
    edit(&mut d);
    d.parse(today()).unwrap_or_else(|e| panic!("draft {card}: {e}"))
}

async fn reader(store: &Store, card: &str, name: &str, edit: impl FnOnce(&mut ReaderDraft)) -> ReaderRecord {
    store.create_reader(&actor(), &input(card, name, edit)).await.unwrap_or_else(|e| panic!("create {card}: {e}"))
}

async fn librarian(store: &Store) -> Actor {
    let new = NewUser {
        username: "wang".into(),
        display_name: "王老师".into(),
        role: Role::Admin,
        department: None,
        password: "wang-password-1".into(),
    };
    let user = store.create_user(&actor(), new).await.expect("create the librarian");
    Actor::user(user.id, "wang", "10.0.0.1")
}

fn contact(channel: Channel, at: &str) -> InteractionInput {
    InteractionInput {
        channel,
        direction: Direction::Inbound,
        subject: "续借咨询".into(),
        notes: Some("来电询问续借".into()),
        occurred_at: NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M").expect("local time"),
    }
}

/// A complaint by the reader with card `card`, triaged, assigned to `ref`, resolved and rated.
async fn rated_case(store: &Store, staff: &Actor, reader_id: i64, card: &str) -> i64 {
    store
        .create_department(&actor(), &NamedInput { code: "ref".into(), name_zh: "参考咨询部".into(), name_en: "Reference".into() })
        .await
        .expect("department");
    let case = CaseInput {
        kind: CaseKind::Complaint,
        subject: "自习室太吵".into(),
        body: "晚上自习室很吵".into(),
        card_no: Some(card.into()),
        contact_name: None,
        contact: None,
    };
    let (mut c, _) = store.create_case(&actor(), &case, CaseSource::Staff, None).await.expect("case");
    let steps = [
        CaseAction::Triage {
            outcome: TriageOutcome::Accepted,
            category: None,
            priority: Priority::High,
            duplicate_of: None,
            comment: None,
        },
        CaseAction::Assign { department: "ref".into(), comment: None },
        CaseAction::Claim,
        CaseAction::Propose { solution: "增加巡查".into() },
    ];
    for a in steps {
        c = store.act_on_case(staff, c.id, &a, c.version).await.unwrap_or_else(|e| panic!("{}: {e}", a.code()));
    }
    if c.status == CaseStatus::AwaitingApproval {
        c = store.act_on_case(staff, c.id, &CaseAction::Approve { comment: None }, c.version).await.expect("approve");
    }
    c = store.act_on_case(staff, c.id, &CaseAction::Resolve { reply: "已增加巡查".into() }, c.version).await.expect("resolve");
    let rating = RatingDraft { satisfaction: 4, recommend: Some(8), comment: Some("谢谢".into()) };
    store.rate_own_case(reader_id, c.id, &rating, "10.0.0.1").await.expect("rate");
    c.id
}

/// An email channel and a template; returns (channel id, template id).
async fn mail(store: &Store) -> (i64, i64) {
    let settings = ChannelSettings::Email {
        host: "127.0.0.1".into(),
        port: 2525,
        security: SmtpSecurity::Plain,
        username: None,
        from_address: "library@example.edu.cn".into(),
        from_name: "图书馆".into(),
        qq_mailbox: false,
        accept_invalid_certs: false,
    };
    let channel = ChannelInput { code: "mail".into(), name: "邮件".into(), settings, secret: None, rate_per_second: 50, enabled: true };
    let channel = store.create_channel(&actor(), &channel).await.expect("channel");
    let variant = TemplateVariant {
        channel_kind: ChannelKind::Email,
        lang: "zh".into(),
        subject: "通知".into(),
        body_text: "{{ reader.name }}，您好".into(),
        body_html: None,
    };
    let template = TemplateInput { code: "notice".into(), name: "通知".into(), purpose: Purpose::Service, variants: vec![variant] };
    (channel.id, store.create_template(&actor(), &template).await.expect("template").id)
}

async fn enqueue(store: &Store, key: &str, reader: &ReaderRecord, (channel, template): (i64, i64)) -> i64 {
    let address = reader.contacts.iter().find(|c| c.kind.code() == "email").map(|c| c.value.clone()).unwrap_or_default();
    let message = NewMessage {
        dedupe_key: key.into(),
        campaign_id: None,
        trigger: None,
        reader_id: Some(reader.id),
        channel_id: channel,
        address,
        template_id: template,
        vars: Value::Null,
        purpose: Purpose::Service,
        lang: "zh".into(),
        not_before: None,
    };
    store.enqueue_message(&message).await.expect("enqueue").expect("a new message")
}

fn local_month(utc_text: &str) -> String {
    let t: DateTime<Utc> = utc_text.parse().unwrap_or_else(|e| panic!("{utc_text}: {e}"));
    t.with_timezone(&Local).format("%Y-%m").to_string()
}

/// Every text value of every row of `table`.
async fn text_values(wh: &Warehouse, table: &str) -> Vec<String> {
    let all = rows(wh, &format!("SELECT * FROM {table}")).await;
    all.into_iter().flat_map(|row| row.into_values()).filter_map(|v| v.as_str().map(str::to_string)).collect()
}

mod scenario {
    use super::*;

    pub async fn a_refresh_loads_readers_interactions_cases_and_messages(store: Store) {
        // Twenty years old on the day of the refresh: the age band is taken as of that day.
        let twenty_years_ago = Local::now().date_naive().checked_sub_months(Months::new(240)).expect("a valid date");
        let a = reader(&store, "R2025001", "张晓明", |d| {
            d.gender = Some("女".into());
            d.birth_date = Some(twenty_years_ago.format("%Y-%m-%d").to_string());
            d.affiliation = Some("信息科学技术学院".into());
            d.enrolled_on = Some("2023-09-01".into());
            d.contacts = vec![
                ContactDraft { kind: "email".into(), value: "zhang.xm@pku.edu.cn".into(), primary: true, ..Default::default() },
                ContactDraft { kind: "mobile".into(), value: "13912345678".into(), ..Default::default() },
            ];
        })
        .await;
        let b = reader(&store, "R2025002", "李四", |d| {
            d.category = "faculty".into();
            d.contacts = vec![ContactDraft { kind: "email".into(), value: "lisi@pku.edu.cn".into(), ..Default::default() }];
        })
        .await;
        let c = reader(&store, "R2025003", "欧阳娜娜", |_| {}).await;
        let staff = librarian(&store).await;
        let phone = store.record_interaction(&staff, a.id, &contact(Channel::Phone, "2025-02-01 10:00")).await.unwrap();
        store.record_interaction(&staff, a.id, &contact(Channel::Visit, "2025-03-15 14:30")).await.unwrap();
        store.record_interaction(&staff, b.id, &contact(Channel::Email, "2025-03-16 09:00")).await.unwrap();
        let case_id = rated_case(&store, &staff, a.id, "R2025001").await;
        let ch = mail(&store).await;
        let sent = enqueue(&store, "m1", &a, ch).await;
        let failed = enqueue(&store, "m2", &b, ch).await;
        store.claim_messages("w1", 10, Duration::from_secs(60)).await.unwrap();
        store.mark_sent(sent, "w1").await.unwrap();
        store.mark_failed(failed, "w1", &Failure::Permanent("550 no such user".into()), &OutboxPolicy::default()).await.unwrap();
        enqueue(&store, "m3", &c, ch).await;
        store
            .set_consent(&Actor::system("unsubscribe"), b.id, Purpose::Service, ChannelKind::Email, false, ConsentSource::Unsubscribe)
            .await
            .unwrap();

        let (wh, _dir) = warehouse().await;
        let report = refresh(&store, &wh).await;
        let events = store.case_events(case_id).await.unwrap();
        let stored: BTreeMap<&str, u64> = report.tables.iter().map(|(t, c)| (*t, c.stored)).collect();
        let expected: BTreeMap<&str, u64> =
            [("dim_reader", 3), ("fact_interaction", 3), ("fact_case_event", events.len() as u64), ("fact_message_event", 3)].into();
        assert_eq!(stored, expected, "{report:?}");
        assert_eq!(report.batches.len(), 5, "one batch per source");
        assert_eq!(table_counts(&wh).await.into_iter().map(|(t, n)| (t, n as u64)).collect::<BTreeMap<_, _>>(), expected);

        let keys = ReaderKeyer::from_store(&store).await.unwrap();
        let call = rows(&wh, &format!("SELECT * FROM fact_interaction WHERE event_key = 'store:interaction:{}'", phone.id)).await;
        assert_eq!(call.len(), 1);
        assert_eq!(call[0]["channel"], "phone");
        assert_eq!(call[0]["direction"], "inbound");
        assert_eq!(call[0]["staff"], "wang");
        assert_eq!(call[0]["month"], "2025-02");
        assert_eq!(call[0]["source"], "store");
        assert_eq!(call[0]["reader_key"], Value::String(keys.key(a.id)));
        let at_ten = "SELECT COUNT(*) AS n FROM fact_interaction WHERE occurred_at = TIMESTAMP '2025-02-01 10:00:00'";
        assert_eq!(count(&wh, at_ten).await, 1, "occurred_at is the local time as recorded");
        let march = "SELECT COUNT(*) AS n FROM fact_interaction WHERE month = '2025-03'";
        assert_eq!(count(&wh, march).await, 2);

        let rated = rows(&wh, "SELECT * FROM fact_case_event WHERE rating_satisfaction IS NOT NULL").await;
        assert_eq!(rated.len(), 1, "only the rating event carries the rating");
        assert_eq!((rated[0]["rating_satisfaction"].as_i64(), rated[0]["rating_recommend"].as_i64()), (Some(4), Some(8)));
        assert_eq!(
            (&rated[0]["action"], &rated[0]["to_status"], &rated[0]["kind"]),
            (&Value::from("rate"), &Value::from("closed"), &Value::from("complaint"))
        );
        assert_eq!((&rated[0]["department"], &rated[0]["priority"]), (&Value::from("ref"), &Value::from("high")));
        assert_eq!(rated[0]["case_id"].as_i64(), Some(case_id));
        assert_eq!(rated[0]["reader_key"], Value::String(keys.key(a.id)));
        let last = events.last().unwrap();
        assert_eq!(rated[0]["event_key"], Value::String(format!("store:case_event:{}", last.id)));
        assert_eq!(rated[0]["month"], Value::String(local_month(&last.at)));

        let outcomes = rows(&wh, "SELECT status, COUNT(*) AS n FROM fact_message_event GROUP BY status ORDER BY status").await;
        let outcomes: Vec<(String, i64)> =
            outcomes.iter().map(|r| (r["status"].as_str().unwrap_or_default().to_string(), r["n"].as_i64().unwrap_or(0))).collect();
        assert_eq!(outcomes, [("failed".to_string(), 1), ("sent".to_string(), 1), ("unsubscribed".to_string(), 1)]);
        let sent_row = rows(&wh, &format!("SELECT * FROM fact_message_event WHERE event_key = 'store:message:{sent}'")).await;
        assert_eq!((&sent_row[0]["channel"], &sent_row[0]["purpose"]), (&Value::from("email"), &Value::from("service")));
        assert_eq!(sent_row[0]["attempts"].as_i64(), Some(1));
        assert_eq!(sent_row[0]["reader_key"], Value::String(keys.key(a.id)));

        let dim = rows(&wh, &format!("SELECT * FROM dim_reader WHERE reader_key = '{}'", keys.key(a.id))).await;
        assert_eq!(dim.len(), 1);
        let v = &dim[0];
        assert_eq!(
            (&v["category"], &v["status"], &v["gender"]),
            (&Value::from("undergraduate"), &Value::from("active"), &Value::from("f"))
        );
        assert_eq!((&v["affiliation"], &v["age_band"]), (&Value::from("信息科学技术学院"), &Value::from("18-22")));
        assert_eq!(v["is_current"], Value::Bool(true));
        assert!(v["enrolled_on"].as_str().is_some_and(|d| d.starts_with("2023-09-01")), "{v:?}");
        let faculty = format!("SELECT COUNT(*) AS n FROM dim_reader WHERE category = 'faculty' AND reader_key = '{}'", keys.key(b.id));
        assert_eq!(count(&wh, &faculty).await, 1);

        // No name, card number or contact of any reader went into the warehouse.
        let personal: Vec<String> = [&a, &b, &c]
            .iter()
            .flat_map(|r| {
                let mut p = vec![r.name.clone(), r.card_no.clone()];
                p.extend(r.contacts.iter().map(|c| c.value.clone()));
                p
            })
            .collect();
        assert!(personal.len() >= 9);
        for table in TABLES {
            let values = text_values(&wh, table).await;
            assert!(!values.is_empty(), "{table} holds text");
            for v in &values {
                for p in &personal {
                    assert!(!v.contains(p.as_str()), "{table} holds personal data '{p}' in '{v}'");
                }
            }
        }
    }

    pub async fn a_changed_category_appends_a_version_and_moves_is_current(store: Store) {
        let r = reader(&store, "R001", "张三", |_| {}).await;
        let (wh, _dir) = warehouse().await;
        refresh(&store, &wh).await;
        let mut changed = input("R001", "张三", |_| {});
        changed.category = "graduate".into();
        store.update_reader(&actor(), r.id, r.version, &changed).await.unwrap();
        let report = refresh(&store, &wh).await;
        assert_eq!(report.tables["dim_reader"].stored, 1);

        let key = ReaderKeyer::from_store(&store).await.unwrap().key(r.id);
        let versions = rows(&wh, &format!("SELECT * FROM dim_reader WHERE reader_key = '{key}' ORDER BY valid_from")).await;
        let seen: Vec<(&Value, &Value)> = versions.iter().map(|v| (&v["category"], &v["is_current"])).collect();
        assert_eq!(seen, [(&Value::from("undergraduate"), &Value::Bool(false)), (&Value::from("graduate"), &Value::Bool(true))]);
        assert_eq!(versions[0]["valid_to"], versions[1]["valid_from"], "the old version ends where the new one starts");
        assert_eq!(versions[1]["valid_to"], Value::Null);
        assert!(versions[0]["batch_id"].as_i64() < versions[1]["batch_id"].as_i64());

        let again = refresh(&store, &wh).await;
        assert!(again.batches.is_empty(), "nothing changed: {again:?}");
        assert_eq!(count(&wh, "SELECT COUNT(*) AS n FROM dim_reader").await, 2);
    }

    pub async fn refreshing_again_loads_only_what_is_new(store: Store) {
        let r = reader(&store, "R001", "张三", |_| {}).await;
        let staff = librarian(&store).await;
        store.record_interaction(&staff, r.id, &contact(Channel::Phone, "2025-02-01 10:00")).await.unwrap();
        let ch = mail(&store).await;
        let m = enqueue(&store, "m1", &r, ch).await;
        store.claim_messages("w1", 10, Duration::from_secs(60)).await.unwrap();
        store.mark_sent(m, "w1").await.unwrap();
        let (wh, _dir) = warehouse().await;
        let first = refresh(&store, &wh).await;
        assert!(!first.batches.is_empty());
        let before = table_counts(&wh).await;
        let batches = wh.batches().await.unwrap().len();

        let second = refresh(&store, &wh).await;
        assert!(second.batches.is_empty(), "{second:?}");
        assert!(second.tables.values().all(|t| t.extracted == 0 && t.stored == 0), "{second:?}");
        assert_eq!(wh.batches().await.unwrap().len(), batches, "no batch, not even an empty one");
        assert_eq!(table_counts(&wh).await, before);

        let newer = store.record_interaction(&staff, r.id, &contact(Channel::Visit, "2025-04-02 08:30")).await.unwrap();
        let third = refresh(&store, &wh).await;
        assert_eq!(third.tables["fact_interaction"].stored, 1);
        assert_eq!(third.batches.len(), 1);
        assert_eq!(count(&wh, "SELECT COUNT(*) AS n FROM fact_interaction").await, before["fact_interaction"] + 1);
        let watermark = wh.last_watermark("store:interactions").await.unwrap();
        assert_eq!(watermark.and_then(|w| w["after_id"].as_i64()), Some(newer.id));
    }

    pub async fn small_pages_and_batches_load_everything_once(store: Store) {
        let r = reader(&store, "R001", "张三", |_| {}).await;
        for i in 2..=5 {
            reader(&store, &format!("R00{i}"), "李四", |_| {}).await;
        }
        let staff = librarian(&store).await;
        let mut ids = Vec::new();
        for day in 1..=7 {
            ids.push(store.record_interaction(&staff, r.id, &contact(Channel::Chat, &format!("2025-05-0{day} 12:00"))).await.unwrap().id);
        }
        let (wh, _dir) = warehouse().await;
        let opts = RefreshOptions { page_rows: 2, batch_rows: 3, ..options() };
        let report = refresh_with(&store, &wh, &opts).await.unwrap();
        assert_eq!((report.tables["fact_interaction"].stored, report.tables["dim_reader"].stored), (7, 5));
        let batches = wh.batches().await.unwrap();
        let sizes = |source: &str| -> Vec<u64> { batches.iter().filter(|b| b.source == source).map(|b| b.rows_out).collect() };
        assert_eq!(sizes("store:interactions"), [4, 3], "batches close once they hold batch_rows");
        assert_eq!(sizes("store:readers"), [4, 1]);
        let keys = rows(&wh, "SELECT DISTINCT event_key FROM fact_interaction").await;
        assert_eq!(keys.len(), 7);
        assert_eq!(wh.last_watermark("store:interactions").await.unwrap().and_then(|w| w["after_id"].as_i64()), ids.last().copied());
        assert!(refresh_with(&store, &wh, &opts).await.unwrap().batches.is_empty());
    }

    pub async fn a_lost_record_of_exported_rows_loads_nothing_twice(store: Store) {
        let r = reader(&store, "R001", "张三", |_| {}).await;
        reader(&store, "R002", "李四", |_| {}).await;
        let ch = mail(&store).await;
        let m = enqueue(&store, "m1", &r, ch).await;
        store.claim_messages("w1", 10, Duration::from_secs(60)).await.unwrap();
        store.mark_sent(m, "w1").await.unwrap();
        let (wh, _dir) = warehouse().await;
        refresh(&store, &wh).await;
        let before = table_counts(&wh).await;

        // As after a crash between the commits and their records in the store.
        let pool = raw_pool().await;
        for sql in [
            "DELETE FROM warehouse_reader_state",
            "DELETE FROM settings WHERE key = 'warehouse.reader_generation'",
            "UPDATE outbox SET warehouse_exported_at = NULL",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        pool.close().await;
        let report = refresh(&store, &wh).await;
        assert_eq!(report.tables["dim_reader"].stored, 0, "versions already in the warehouse are not appended again: {report:?}");
        assert_eq!((report.tables["fact_message_event"].stored, report.tables["fact_message_event"].duplicates), (0, 1));
        assert_eq!(table_counts(&wh).await, before);

        // The store's record is whole again: the next refresh trusts it and finds nothing.
        assert!(refresh(&store, &wh).await.batches.is_empty());
        let mut changed = input("R001", "张三", |_| {});
        changed.category = "faculty".into();
        store.update_reader(&actor(), r.id, r.version, &changed).await.unwrap();
        assert_eq!(refresh(&store, &wh).await.tables["dim_reader"].stored, 1);
    }

    pub async fn a_refresh_waits_for_another_to_finish(store: Store) {
        reader(&store, "R001", "张三", |_| {}).await;
        let (wh, _dir) = warehouse().await;
        store.take_refresh_lease("another server", Duration::from_secs(60)).await.unwrap();
        match refresh_with(&store, &wh, &options()).await {
            Err(RefreshError::Busy { holder, .. }) => assert_eq!(holder, "another server"),
            other => panic!("expected Busy, got {other:?}"),
        }
        assert!(wh.batches().await.unwrap().is_empty(), "a refresh that did not get the lease wrote nothing");
        store.release_refresh_lease("another server").await.unwrap();
        assert_eq!(refresh(&store, &wh).await.tables["dim_reader"].stored, 1);
        let after = store.take_refresh_lease("another server", Duration::from_secs(60)).await.unwrap();
        assert_eq!(after, lector_store::warehouse_extract::Lease::Taken, "a finished refresh gives the lease back");
    }
}
