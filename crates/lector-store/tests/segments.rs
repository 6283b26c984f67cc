//! Segments (读者分组): every field and operator family compiled to SQL, nested groups, consent
//! defaults, frozen snapshots, audited exports, bulk tag and hand-over, deletion refused while a
//! campaign uses the segment. Every scenario runs on SQLite and on PostgreSQL (see `common`).

#[macro_use]
#[allow(dead_code)]
mod common;

use common::{actor, raw_pool};
use lector_store::audit::AuditQuery;
use lector_store::auth::NewUser;
use lector_store::config::NewAttribute;
use lector_store::domain::attribute::AttrInput;
use lector_store::domain::reader::{ContactDraft, ReaderDraft};
use lector_store::domain::role::Role;
use lector_store::readers::{ReaderRecord, ReaderSort};
use lector_store::segments::{MemberQuery, Segment, SegmentInput};
use lector_store::{Store, StoreError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

scenarios!(
    scenario:
    every_field_and_operator_family,
    nested_any_and_all_groups,
    consent_counts_the_purpose_default_for_readers_without_an_answer,
    a_frozen_segment_keeps_its_snapshot,
    create_update_and_their_errors,
    members_are_paged_and_sorted_with_contacts,
    export_pages_through_members_and_is_audited,
    bulk_tag_and_hand_over_are_audited_per_reader,
    delete_is_refused_while_a_campaign_uses_the_segment,
    a_segment_that_matches_nobody,
);

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

fn day(offset: i64) -> String {
    (today() + chrono::Duration::days(offset)).to_string()
}

/// The fixture's readers by card number.
struct Fixture {
    ids: BTreeMap<String, i64>,
}

impl Fixture {
    fn id(&self, card: &str) -> i64 {
        self.ids[card]
    }
}

fn contact(kind: &str, value: &str) -> ContactDraft {
    ContactDraft { kind: kind.into(), value: value.into(), primary: false, verified: false }
}

/// Four readers that differ in every field a filter can look at, three custom attributes and a
/// staff member `wang` who owns S001.
async fn fixture(store: &Store) -> Fixture {
    for (code, kind, choices) in [("college", "text", vec![]), ("graduation", "date", vec![]), ("track", "choice", vec!["理科", "文科"])]
    {
        store
            .create_attribute(
                &actor(),
                &NewAttribute {
                    code: code.into(),
                    label_zh: code.into(),
                    label_en: code.into(),
                    kind: kind.into(),
                    choices: choices.into_iter().map(String::from).collect(),
                    repeatable: false,
                    unique: false,
                    searchable: false,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("attribute {code}: {e}"));
    }
    store
        .create_user(
            &actor(),
            NewUser {
                username: "wang".into(),
                display_name: "王老师".into(),
                role: Role::Librarian,
                department: None,
                password: "wang-password-1".into(),
            },
        )
        .await
        .expect("create wang");
    let attrs = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), AttrInput::One(v.to_string()))).collect();
    let drafts = vec![
        ReaderDraft {
            card_no: "S001".into(),
            name: "张晓明".into(),
            gender: Some("male".into()),
            category: "undergraduate".into(),
            affiliation: Some("计算机学院".into()),
            enrolled_on: Some("2021-09-01".into()),
            expires_on: Some(day(10)),
            birth_date: Some("2003-05-01".into()),
            contacts: vec![
                contact("email", "zxm@example.edu.cn"),
                contact("mobile", "13800138001"),
                contact("email", "zxm2@example.edu.cn"),
            ],
            tags: vec!["志愿者".into()],
            attributes: attrs(&[("college", "计算机科学"), ("track", "理科"), ("graduation", "2025-07-01")]),
            owner: Some("wang".into()),
            ..Default::default()
        },
        ReaderDraft {
            card_no: "S002".into(),
            name: "李华".into(),
            gender: Some("female".into()),
            category: "graduate".into(),
            affiliation: Some("物理学院".into()),
            enrolled_on: Some("2020-09-01".into()),
            expires_on: Some(day(100)),
            birth_date: Some("1999-01-01".into()),
            contacts: vec![contact("email", "lh@example.edu.cn")],
            tags: vec!["读书会".into()],
            attributes: attrs(&[("college", "物理")]),
            ..Default::default()
        },
        ReaderDraft {
            card_no: "S003".into(),
            name: "王芳".into(),
            gender: Some("female".into()),
            category: "undergraduate".into(),
            affiliation: Some("文学院".into()),
            status: Some("expired".into()),
            enrolled_on: Some("2018-09-01".into()),
            expires_on: Some(day(-30)),
            birth_date: Some("2000-02-02".into()),
            contacts: vec![contact("mobile", "13900139003")],
            attributes: attrs(&[("track", "文科")]),
            ..Default::default()
        },
        ReaderDraft {
            card_no: "T100".into(),
            name: "赵老师".into(),
            category: "faculty".into(),
            status: Some("suspended".into()),
            tags: vec!["志愿者".into(), "读书会".into()],
            ..Default::default()
        },
    ];
    let mut ids = BTreeMap::new();
    for d in drafts {
        let input = d.parse(today()).unwrap_or_else(|e| panic!("{}: {e}", d.card_no));
        let r = store.create_reader(&actor(), &input).await.unwrap_or_else(|e| panic!("{}: {e}", d.card_no));
        ids.insert(r.card_no, r.id);
    }
    Fixture { ids }
}

fn input(name: &str, filter: Value) -> SegmentInput {
    SegmentInput { name: name.into(), description: String::new(), filter }
}

/// The card numbers of a segment's members (all of them, one page).
async fn member_cards(store: &Store, id: i64) -> BTreeSet<String> {
    let page = store.segment_members(id, &MemberQuery { page: 1, per_page: 200, ..Default::default() }).await.expect("members");
    assert_eq!(page.total, page.items.len() as i64, "one page holds every member");
    page.items.into_iter().map(|m| m.reader.card_no).collect()
}

fn cards(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Checks `filter` matches exactly `expected`: by the live count, and by the members of a
/// segment saved with it.
async fn expect(store: &Store, filter: Value, expected: &[&str]) {
    let count = store.count_filter(&filter).await.unwrap_or_else(|e| panic!("count {filter}: {e}"));
    assert_eq!(count, expected.len() as i64, "live count of {filter}");
    let name = format!("seg {}", rand_suffix());
    let seg = store.create_segment(&actor(), &input(&name, filter.clone())).await.unwrap_or_else(|e| panic!("save {filter}: {e}"));
    assert_eq!(member_cards(store, seg.id).await, cards(expected), "members of {filter}");
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn cond(field: &str, op: &str, value: Value) -> Value {
    if value.is_null() {
        json!({"all": [{"field": field, "op": op}]})
    } else {
        json!({"all": [{"field": field, "op": op, "value": value}]})
    }
}

async fn set_lang(reader_id: i64, lang: &str) {
    let pool = raw_pool().await;
    sqlx::query("UPDATE readers SET lang = $1 WHERE id = $2")
        .bind(lang.to_string())
        .bind(reader_id)
        .execute(&pool)
        .await
        .expect("set lang");
    pool.close().await;
}

async fn set_consent(reader_id: i64, purpose: &str, channel: &str, granted: bool) {
    let pool = raw_pool().await;
    sqlx::query(
        "INSERT INTO consents (reader_id, purpose, channel, granted, source, changed_at) VALUES ($1, $2, $3, $4, 'staff', '2025-01-01T00:00:00.000Z')",
    )
    .bind(reader_id)
    .bind(purpose.to_string())
    .bind(channel.to_string())
    .bind(granted as i64)
    .execute(&pool)
    .await
    .expect("insert consent");
    pool.close().await;
}

async fn reader(store: &Store, id: i64) -> ReaderRecord {
    store.reader(id).await.expect("reader")
}

/// Saves `r` with `change` applied.
async fn edit(store: &Store, r: &ReaderRecord, change: impl FnOnce(&mut ReaderDraft)) {
    let mut d = ReaderDraft {
        card_no: r.card_no.clone(),
        name: r.name.clone(),
        category: r.category.code.clone(),
        affiliation: r.affiliation.clone(),
        status: Some(r.status.code().into()),
        tags: r.tags.clone(),
        owner: r.owner.clone(),
        ..Default::default()
    };
    change(&mut d);
    let input = d.parse(today()).expect("edited draft parses");
    store.update_reader(&actor(), r.id, r.version, &input).await.expect("update reader");
}

fn invalid_fields(e: StoreError) -> Vec<String> {
    match e {
        StoreError::Invalid(f) => f.0.into_iter().map(|e| e.field).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

mod scenario {
    use super::*;

    pub async fn every_field_and_operator_family(store: Store) {
        let f = fixture(&store).await;
        set_lang(f.id("S002"), "en").await;
        let all = ["S001", "S002", "S003", "T100"];
        let cases: Vec<(Value, Vec<&str>)> = vec![
            // Text on columns.
            (cond("card_no", "starts_with", json!("s00")), vec!["S001", "S002", "S003"]),
            (cond("card_no", "eq", json!("T100")), vec!["T100"]),
            (cond("card_no", "contains", json!("10")), vec!["T100"]),
            (cond("name", "contains", json!("晓")), vec!["S001"]),
            (cond("name", "ne", json!("李华")), vec!["S001", "S003", "T100"]),
            (cond("name", "in", json!(["李华", "王芳"])), vec!["S002", "S003"]),
            (cond("affiliation", "is_empty", Value::Null), vec!["T100"]),
            (cond("affiliation", "not_empty", Value::Null), vec!["S001", "S002", "S003"]),
            (cond("affiliation", "starts_with", json!("计算")), vec!["S001"]),
            (cond("affiliation", "contains", json!("学院")), vec!["S001", "S002", "S003"]),
            (cond("affiliation", "ne", json!("文学院")), vec!["S001", "S002", "T100"]),
            (cond("affiliation", "not_in", json!(["计算机学院", "物理学院"])), vec!["S003", "T100"]),
            // A LIKE wildcard in the value is a literal character.
            (cond("affiliation", "contains", json!("%")), vec![]),
            // Text on child rows: tags and attributes.
            (cond("tag", "eq", json!("志愿者")), vec!["S001", "T100"]),
            (cond("tag", "ne", json!("志愿者")), vec!["S002", "S003"]),
            (cond("tag", "in", json!(["读书会"])), vec!["S002", "T100"]),
            (cond("tag", "not_in", json!(["志愿者", "读书会"])), vec!["S003"]),
            (cond("tag", "contains", json!("书")), vec!["S002", "T100"]),
            (cond("tag", "starts_with", json!("志")), vec!["S001", "T100"]),
            (cond("tag", "is_empty", Value::Null), vec!["S003"]),
            (cond("tag", "not_empty", Value::Null), vec!["S001", "S002", "T100"]),
            (cond("attr.college", "starts_with", json!("计算机")), vec!["S001"]),
            (cond("attr.college", "eq", json!("物理")), vec!["S002"]),
            (cond("attr.college", "is_empty", Value::Null), vec!["S003", "T100"]),
            // Enums.
            (cond("gender", "eq", json!("female")), vec!["S002", "S003"]),
            (cond("gender", "in", json!(["male", "unknown"])), vec!["S001", "T100"]),
            (cond("gender", "ne", json!("女")), vec!["S001", "T100"]),
            (cond("category", "in", json!(["undergraduate", "graduate"])), vec!["S001", "S002", "S003"]),
            (cond("category", "ne", json!("undergraduate")), vec!["S002", "T100"]),
            (cond("status", "eq", json!("expired")), vec!["S003"]),
            (cond("status", "not_in", json!(["active"])), vec!["S003", "T100"]),
            (cond("owner", "eq", json!("wang")), vec!["S001"]),
            (cond("owner", "ne", json!("wang")), vec!["S002", "S003", "T100"]),
            (cond("owner", "is_empty", Value::Null), vec!["S002", "S003", "T100"]),
            (cond("owner", "not_empty", Value::Null), vec!["S001"]),
            (cond("lang", "eq", json!("zh")), vec!["S001", "S003", "T100"]),
            (cond("lang", "eq", json!("en")), vec!["S002"]),
            (cond("has_contact", "eq", json!("email")), vec!["S001", "S002"]),
            (cond("has_contact", "in", json!(["email", "mobile"])), vec!["S001", "S002", "S003"]),
            (cond("has_contact", "not_in", json!(["email", "mobile"])), vec!["T100"]),
            (cond("has_contact", "ne", json!("mobile")), vec!["S002", "T100"]),
            (cond("attr.track", "eq", json!("理科")), vec!["S001"]),
            (cond("attr.track", "ne", json!("理科")), vec!["S002", "S003", "T100"]),
            (cond("attr.track", "is_empty", Value::Null), vec!["S002", "T100"]),
            // Dates.
            (cond("enrolled_on", "before", json!("2020-09-01")), vec!["S003"]),
            (cond("enrolled_on", "after", json!("2020-09-01")), vec!["S001"]),
            (cond("enrolled_on", "between", json!(["2020-09-01", "2021/9/1"])), vec!["S001", "S002"]),
            (cond("enrolled_on", "is_empty", Value::Null), vec!["T100"]),
            (cond("expires_on", "within_next_days", json!(30)), vec!["S001"]),
            (cond("expires_on", "within_last_days", json!(60)), vec!["S003"]),
            (cond("expires_on", "not_empty", Value::Null), vec!["S001", "S002", "S003"]),
            (cond("birth_date", "before", json!("2000-01-01")), vec!["S002"]),
            (cond("birth_date", "between", json!(["2000-02-02", "2003-05-01"])), vec!["S001", "S003"]),
            (cond("attr.graduation", "before", json!("2026-01-01")), vec!["S001"]),
            (cond("attr.graduation", "after", json!("2025-07-01")), vec![]),
            (cond("attr.graduation", "between", json!(["2025-07-01", "2025-07-01"])), vec!["S001"]),
            (cond("attr.graduation", "is_empty", Value::Null), vec!["S002", "S003", "T100"]),
            // created_at is a stored UTC time compared by local day.
            (cond("created_at", "within_last_days", json!(1)), all.to_vec()),
            (cond("created_at", "between", json!([day(0), day(0)])), all.to_vec()),
            (cond("created_at", "after", json!(day(-1))), all.to_vec()),
            (cond("created_at", "before", json!(day(0))), vec![]),
            (cond("created_at", "after", json!(day(0))), vec![]),
            (cond("created_at", "is_empty", Value::Null), vec![]),
        ];
        for (filter, expected) in cases {
            expect(&store, filter, &expected).await;
        }
    }

    pub async fn nested_any_and_all_groups(store: Store) {
        fixture(&store).await;
        let example = json!({"all": [
            {"field": "category", "op": "in", "value": ["undergraduate", "graduate"]},
            {"any": [{"field": "tag", "op": "eq", "value": "志愿者"}, {"field": "attr.college", "op": "starts_with", "value": "物理"}]}
        ]});
        expect(&store, example, &["S001", "S002"]).await;
        let any_of_alls = json!({"any": [
            {"all": [{"field": "gender", "op": "eq", "value": "female"}, {"field": "status", "op": "eq", "value": "expired"}]},
            {"all": [{"field": "tag", "op": "eq", "value": "志愿者"}, {"field": "category", "op": "eq", "value": "faculty"}]}
        ]});
        expect(&store, any_of_alls, &["S003", "T100"]).await;
        let deep = json!({"all": [{"any": [{"all": [{"any": [
            {"field": "card_no", "op": "eq", "value": "S002"},
            {"all": [{"field": "has_contact", "op": "eq", "value": "mobile"}, {"field": "tag", "op": "is_empty"}]}
        ]}]}]}]});
        expect(&store, deep, &["S002", "S003"]).await;
    }

    pub async fn consent_counts_the_purpose_default_for_readers_without_an_answer(store: Store) {
        let f = fixture(&store).await;
        let all = ["S001", "S002", "S003", "T100"];
        // Service notices are granted until withdrawn; news only once granted.
        expect(&store, cond("consent.service", "eq", json!("email")), &all).await;
        expect(&store, cond("consent.news", "eq", json!("email")), &[]).await;
        set_consent(f.id("S001"), "service", "email", false).await;
        set_consent(f.id("S002"), "news", "email", true).await;
        set_consent(f.id("S003"), "news", "sms", true).await;
        set_consent(f.id("T100"), "news", "email", false).await;
        expect(&store, cond("consent.service", "eq", json!("email")), &["S002", "S003", "T100"]).await;
        expect(&store, cond("consent.service", "ne", json!("email")), &["S001"]).await;
        expect(&store, cond("consent.service", "eq", json!("sms")), &all).await;
        expect(&store, cond("consent.news", "eq", json!("email")), &["S002"]).await;
        expect(&store, cond("consent.news", "in", json!(["email", "sms"])), &["S002", "S003"]).await;
        expect(&store, cond("consent.news", "not_in", json!(["email", "sms"])), &["S001", "T100"]).await;
        expect(&store, cond("consent.news", "ne", json!("email")), &["S001", "S003", "T100"]).await;
        expect(&store, cond("consent.survey", "in", json!(["email", "sms", "wecom"])), &[]).await;
    }

    pub async fn a_frozen_segment_keeps_its_snapshot(store: Store) {
        let f = fixture(&store).await;
        let seg = store.create_segment(&actor(), &input("志愿者", cond("tag", "eq", json!("志愿者")))).await.unwrap();
        assert_eq!(seg.frozen_at, None);
        let frozen = store.freeze_segment(&actor(), seg.id).await.expect("freeze");
        assert!(frozen.frozen_at.is_some());
        assert_eq!(frozen.frozen_count, Some(2));
        assert_eq!(frozen.version, seg.version + 1);
        assert!(matches!(store.freeze_segment(&actor(), seg.id).await, Err(StoreError::Conflict(_))), "freezing twice");

        // T100 loses the tag and S002 gains it: the live filter changes, the snapshot does not.
        edit(&store, &reader(&store, f.id("T100")).await, |d| d.tags = vec!["读书会".into()]).await;
        edit(&store, &reader(&store, f.id("S002")).await, |d| d.tags.push("志愿者".into())).await;
        assert_eq!(store.count_filter(&cond("tag", "eq", json!("志愿者"))).await.unwrap(), 2);
        assert_eq!(member_cards(&store, seg.id).await, cards(&["S001", "T100"]));
        let listed = store.segments().await.unwrap();
        let row = listed.iter().find(|l| l.segment.id == seg.id).unwrap();
        assert_eq!(row.members, Some(2), "the list counts the snapshot");

        // Its filter is fixed while frozen; its name is not.
        let err = store.update_segment(&actor(), seg.id, frozen.version, &input("志愿者", cond("tag", "eq", json!("读书会")))).await;
        assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
        let renamed = store.update_segment(&actor(), seg.id, frozen.version, &input("志愿者（冻结）", seg.filter.clone())).await.unwrap();
        assert!(renamed.frozen_at.is_some());

        let live = store.unfreeze_segment(&actor(), seg.id).await.expect("unfreeze");
        assert_eq!((live.frozen_at, live.frozen_count), (None, None));
        assert_eq!(member_cards(&store, seg.id).await, cards(&["S001", "S002"]));
        assert!(matches!(store.unfreeze_segment(&actor(), seg.id).await, Err(StoreError::Conflict(_))));
        let pool = raw_pool().await;
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM segment_members WHERE segment_id = $1").bind(seg.id).fetch_one(&pool).await.unwrap();
        pool.close().await;
        assert_eq!(left, 0, "unfreezing drops the snapshot");
        let trail: Vec<String> = store.audit_trail("segment", &seg.id.to_string()).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(trail, vec!["segment.create", "segment.freeze", "segment.update", "segment.unfreeze"]);
    }

    pub async fn create_update_and_their_errors(store: Store) {
        fixture(&store).await;
        let seg = store
            .create_segment(
                &actor(),
                &SegmentInput {
                    name: " 本科生 ".into(),
                    description: "全部本科生".into(),
                    filter: cond("category", "eq", json!("undergraduate")),
                },
            )
            .await
            .unwrap();
        assert_eq!(seg.name, "本科生");
        assert_eq!(seg.version, 1);
        assert_eq!(store.segment(seg.id).await.unwrap(), seg);
        // Duplicate names conflict.
        let dup = store.create_segment(&actor(), &input("本科生", cond("tag", "is_empty", Value::Null))).await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        // Everything wrong is named at once, the filter by path.
        let bad = SegmentInput {
            name: "  ".into(),
            description: String::new(),
            filter: json!({"all": [{"field": "category", "op": "eq", "value": "alien"}, {"any": []}]}),
        };
        let fields = invalid_fields(store.create_segment(&actor(), &bad).await.unwrap_err());
        assert_eq!(fields, vec!["name", "all[0].value", "all[1].any"]);
        let fields =
            invalid_fields(store.count_filter(&json!({"any": [{"field": "attr.nope", "op": "eq", "value": "x"}]})).await.unwrap_err());
        assert_eq!(fields, vec!["any[0].field"]);

        // Updates check the version.
        let updated = store
            .update_segment(&actor(), seg.id, 1, &input("本科生和研究生", cond("category", "in", json!(["undergraduate", "graduate"]))))
            .await
            .unwrap();
        assert_eq!(updated.version, 2);
        assert_eq!(updated.filter, cond("category", "in", json!(["undergraduate", "graduate"])));
        let stale = store.update_segment(&actor(), seg.id, 1, &input("又改", seg.filter.clone())).await;
        assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
        assert_eq!(store.segment(seg.id).await.unwrap().name, "本科生和研究生", "a stale update changes nothing");
        assert!(matches!(store.update_segment(&actor(), 999_999, 1, &input("x", seg.filter.clone())).await, Err(StoreError::NotFound)));

        let entries =
            store.audit_log(&AuditQuery { action: Some("segment".into()), page: 1, per_page: 50, ..Default::default() }).await.unwrap();
        let update = entries.items.iter().find(|e| e.action == "segment.update").expect("update audited");
        assert_eq!(update.changed_fields(), vec!["description", "filter", "name"]);
        // The list shows live counts.
        let listed = store.segments().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].members, Some(3));
    }

    pub async fn members_are_paged_and_sorted_with_contacts(store: Store) {
        fixture(&store).await;
        let seg = store.create_segment(&actor(), &input("学生", cond("card_no", "starts_with", json!("S")))).await.unwrap();
        let q = |page, sort, desc| MemberQuery { page, per_page: 2, sort, desc };
        let first = store.segment_members(seg.id, &q(1, Some(ReaderSort::CardNo), false)).await.unwrap();
        assert_eq!(first.total, 3);
        assert_eq!(first.pages(), 2);
        let cards: Vec<&str> = first.items.iter().map(|m| m.reader.card_no.as_str()).collect();
        assert_eq!(cards, vec!["S001", "S002"]);
        // The primary (first) email and mobile come with each member.
        assert_eq!(first.items[0].email.as_deref(), Some("zxm@example.edu.cn"));
        assert_eq!(first.items[0].mobile.as_deref(), Some("13800138001"));
        assert_eq!(first.items[1].mobile, None);
        let second = store.segment_members(seg.id, &q(2, Some(ReaderSort::CardNo), false)).await.unwrap();
        assert_eq!(second.items.iter().map(|m| m.reader.card_no.as_str()).collect::<Vec<_>>(), vec!["S003"]);
        assert_eq!(second.total, 3);
        let desc = store.segment_members(seg.id, &q(1, Some(ReaderSort::CardNo), true)).await.unwrap();
        assert_eq!(desc.items[0].reader.card_no, "S003");
        let by_name = store.segment_members(seg.id, &q(1, Some(ReaderSort::Name), false)).await.unwrap();
        assert_eq!(by_name.items[0].reader.name, "李华", "pinyin order: li < wang < zhang");
        assert!(matches!(store.segment_members(999_999, &q(1, None, false)).await, Err(StoreError::NotFound)));
    }

    pub async fn export_pages_through_members_and_is_audited(store: Store) {
        fixture(&store).await;
        // More members than one export page.
        let extra: Vec<_> = (0..1100)
            .map(|i| {
                ReaderDraft { card_no: format!("X{i:05}"), name: "批量读者".into(), category: "external".into(), ..Default::default() }
                    .parse(today())
                    .unwrap()
            })
            .collect();
        store.bulk_create_readers(&actor(), &extra, &lector_store::now_text()).await.unwrap();
        let seg =
            store.create_segment(&actor(), &input("校外", cond("category", "in", json!(["external", "undergraduate"])))).await.unwrap();
        let who = lector_store::Actor::user(1, "exporter", "10.0.0.1");
        let mut rows = Vec::new();
        let n = store.export_segment(&who, seg.id, |r| rows.push(r)).await.expect("export");
        assert_eq!(n, 1102);
        assert_eq!(rows.len(), 1102);
        let mut seen = BTreeSet::new();
        assert!(rows.iter().all(|r| seen.insert(r.card_no.clone())), "no reader twice");
        let s001 = rows.iter().find(|r| r.card_no == "S001").unwrap();
        assert_eq!((s001.email.as_deref(), s001.mobile.as_deref()), (Some("zxm@example.edu.cn"), Some("13800138001")));
        assert_eq!(s001.category.code, "undergraduate");
        assert_eq!(s001.affiliation.as_deref(), Some("计算机学院"));
        assert!(rows.iter().any(|r| r.card_no == "S003" && r.status.code() == "expired"));
        let trail = store.audit_trail("segment", &seg.id.to_string()).await.unwrap();
        let export = trail.iter().find(|e| e.action == "segment.export").expect("export audited");
        assert_eq!(export.actor_name, "exporter");
        assert_eq!(export.origin, "10.0.0.1");
        assert!(export.summary.contains("1102"), "{}", export.summary);
        assert_eq!(export.after.as_ref().unwrap()["count"], json!(1102));
    }

    pub async fn bulk_tag_and_hand_over_are_audited_per_reader(store: Store) {
        let f = fixture(&store).await;
        let seg = store.create_segment(&actor(), &input("本科生", cond("category", "eq", json!("undergraduate")))).await.unwrap();
        let before = reader(&store, f.id("S001")).await;
        assert_eq!(store.tag_segment(&actor(), seg.id, "新生").await.unwrap(), 2);
        let after = reader(&store, f.id("S001")).await;
        assert_eq!(after.tags.iter().cloned().collect::<BTreeSet<_>>(), cards(&["志愿者", "新生"]));
        assert_eq!(after.version, before.version + 1);
        assert!(reader(&store, f.id("S003")).await.tags.contains(&"新生".to_string()));
        assert!(!reader(&store, f.id("S002")).await.tags.contains(&"新生".to_string()));
        let trail = store.audit_trail("reader", &f.id("S001").to_string()).await.unwrap();
        let tagged = trail.last().unwrap();
        assert_eq!(tagged.action, "reader.update");
        assert_eq!(tagged.changed_fields(), vec!["tags"]);
        assert!(tagged.summary.contains("+新生"), "{}", tagged.summary);
        // Again: nobody lacks the tag any more.
        assert_eq!(store.tag_segment(&actor(), seg.id, "新生").await.unwrap(), 0);
        assert_eq!(invalid_fields(store.tag_segment(&actor(), seg.id, "a,b").await.unwrap_err()), vec!["tag"]);
        let segment_trail: Vec<String> =
            store.audit_trail("segment", &seg.id.to_string()).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(segment_trail, vec!["segment.create", "segment.tag", "segment.tag"]);

        // Hand-over goes through the tracking rules: S001 already belongs to wang.
        assert_eq!(store.hand_over_segment(&actor(), seg.id, Some("wang"), "分组移交").await.unwrap(), 1);
        assert_eq!(reader(&store, f.id("S003")).await.owner.as_deref(), Some("wang"));
        let history = store.owner_history(f.id("S003")).await.unwrap();
        assert_eq!(history.last().unwrap().reason, "分组移交");
        assert!(matches!(store.hand_over_segment(&actor(), seg.id, Some("nobody"), "x").await, Err(StoreError::Invalid(_))));
    }

    pub async fn delete_is_refused_while_a_campaign_uses_the_segment(store: Store) {
        fixture(&store).await;
        let seg = store.create_segment(&actor(), &input("待删除", cond("tag", "eq", json!("志愿者")))).await.unwrap();
        store.freeze_segment(&actor(), seg.id).await.unwrap();
        let pool = raw_pool().await;
        let now = lector_store::now_text();
        let template: i64 = sqlx::query_scalar(
            "INSERT INTO message_templates (code, name, purpose, created_at, updated_at) VALUES ('t1', '通知', 'news', $1, $1) RETURNING id",
        )
        .bind(now.clone())
        .fetch_one(&pool)
        .await
        .unwrap();
        let campaign: i64 = sqlx::query_scalar(
            "INSERT INTO campaigns (name, segment_id, template_id, purpose, channels, status, created_at, updated_at) VALUES ('读书节通知', $1, $2, 'news', 'email', 'draft', $3, $3) RETURNING id",
        )
        .bind(seg.id)
        .bind(template)
        .bind(now)
        .fetch_one(&pool)
        .await
        .unwrap();
        match store.delete_segment(&actor(), seg.id, None).await {
            Err(StoreError::Conflict(m)) => assert!(m.zh.contains("读书节通知") && m.en.contains("campaign"), "{m}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(store.segment(seg.id).await.unwrap().id, seg.id, "still there");
        sqlx::query("DELETE FROM campaigns WHERE id = $1").bind(campaign).execute(&pool).await.unwrap();
        let current = store.segment(seg.id).await.unwrap();
        assert!(
            matches!(store.delete_segment(&actor(), seg.id, Some(current.version - 1)).await, Err(StoreError::Conflict(_))),
            "stale version"
        );
        store.delete_segment(&actor(), seg.id, Some(current.version)).await.expect("delete");
        assert!(matches!(store.segment(seg.id).await, Err(StoreError::NotFound)));
        let members: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM segment_members WHERE segment_id = $1").bind(seg.id).fetch_one(&pool).await.unwrap();
        assert_eq!(members, 0, "the snapshot goes with the segment");
        pool.close().await;
        let trail = store.audit_trail("segment", &seg.id.to_string()).await.unwrap();
        assert_eq!(trail.last().unwrap().action, "segment.delete");
        assert!(matches!(store.delete_segment(&actor(), seg.id, None).await, Err(StoreError::NotFound)));
    }

    pub async fn a_segment_that_matches_nobody(store: Store) {
        fixture(&store).await;
        let nobody =
            json!({"all": [{"field": "status", "op": "eq", "value": "deactivated"}, {"field": "tag", "op": "eq", "value": "志愿者"}]});
        assert_eq!(store.count_filter(&nobody).await.unwrap(), 0);
        let seg: Segment = store.create_segment(&actor(), &input("无人", nobody)).await.unwrap();
        let page = store.segment_members(seg.id, &MemberQuery { page: 1, per_page: 25, ..Default::default() }).await.unwrap();
        assert_eq!((page.total, page.items.len(), page.pages()), (0, 0, 1));
        let mut rows = 0;
        assert_eq!(store.export_segment(&actor(), seg.id, |_| rows += 1).await.unwrap(), 0);
        assert_eq!(rows, 0);
        assert_eq!(store.tag_segment(&actor(), seg.id, "空").await.unwrap(), 0);
        assert_eq!(store.hand_over_segment(&actor(), seg.id, Some("wang"), "无人可移交").await.unwrap(), 0);
        let frozen = store.freeze_segment(&actor(), seg.id).await.unwrap();
        assert_eq!(frozen.frozen_count, Some(0));
        assert!(member_cards(&store, seg.id).await.is_empty());
        let export = store.audit_trail("segment", &seg.id.to_string()).await.unwrap();
        assert!(export.iter().any(|e| e.action == "segment.export" && e.summary.starts_with("0 readers")));
    }
}
