//! The store's scenario suite. Every scenario is an `async fn(Store)`; the harness in
//! `common` runs each against a fresh SQLite file and a fresh PostgreSQL database.

#[macro_use]
mod common;

use chrono::NaiveDate;
use common::{actor, draft, today};
use lector_store::audit::{AuditEntry, AuditQuery};
use lector_store::auth::{Login, NewUser, User};
use lector_store::config::{NamedInput, NewAttribute};
use lector_store::domain::attribute::AttrInput;
use lector_store::domain::contact::ContactKind;
use lector_store::domain::reader::{ContactDraft, Gender, ReaderDraft, ReaderInput, ReaderStatus, RelatedDraft};
use lector_store::domain::role::Role;
use lector_store::domain::search::SearchTerm;
use lector_store::domain::tracking::{Channel, Direction, InteractionInput, TaskInput, TaskStatus};
use lector_store::domain::FieldErrors;
use lector_store::readers::{ReaderQuery, ReaderSort, ReaderSummary};
use lector_store::tracking::{Interaction, InteractionQuery, Task, TaskQuery};
use lector_store::{Actor, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};

scenarios!(
    scenario:
    migrations_are_idempotent_and_seed_categories,
    create_and_read_back_a_full_reader,
    duplicate_card_number_is_a_conflict,
    update_checks_the_version_and_audits_the_change,
    unknown_references_are_invalid,
    custom_attributes,
    search_filters_sorts_and_pages,
    delete_removes_the_reader_and_keeps_the_audit,
    users_logins_sessions_and_tokens,
    bulk_create_two_thousand_readers,
    audit_log_filters_and_pages,
    concurrent_writers,
    interactions_are_recorded_filtered_and_paged,
    tasks_are_created_listed_and_moved,
    hand_over_moves_readers_in_one_transaction,
    reminders_are_sent_once_per_day,
    notifications_are_read_and_unread,
    deleting_a_reader_removes_its_tracking,
);

scenarios!(
    case_scenario:
    cases_are_filed_from_staff_portal_and_api,
    the_default_case_path_with_events_and_audit,
    illegal_case_moves_and_stale_versions_change_nothing,
    case_transfer_and_queues,
    escalation_happens_once_per_case_even_concurrently,
    unrated_cases_close_after_the_waiting_period,
    service_stats_on_a_known_set,
    service_levels_are_configured_per_kind,
    asking_the_reader_stops_the_clock_until_the_answer,
    answers_are_idempotent_and_refused_without_a_question,
);

// ---------------------------------------------------------------------------------------------
// Fixtures

fn email(v: &str) -> ContactDraft {
    ContactDraft { kind: "email".into(), value: v.into(), ..Default::default() }
}

fn mobile(v: &str) -> ContactDraft {
    ContactDraft { kind: "mobile".into(), value: v.into(), ..Default::default() }
}

fn input(d: &ReaderDraft) -> ReaderInput {
    d.parse(today()).unwrap_or_else(|e| panic!("draft {} does not parse: {e}", d.card_no))
}

async fn staff(store: &Store, username: &str, role: Role) -> User {
    store
        .create_user(
            &actor(),
            NewUser {
                username: username.into(),
                display_name: String::new(),
                role,
                department: None,
                password: format!("{username}-password-1"),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create user {username}: {e}"))
}

fn query(q: &str) -> ReaderQuery {
    ReaderQuery { q: SearchTerm::parse(q), page: 1, per_page: 100, ..Default::default() }
}

async fn find(store: &Store, q: ReaderQuery) -> Vec<ReaderSummary> {
    store.readers(&q).await.unwrap_or_else(|e| panic!("search {q:?}: {e}")).items
}

async fn names(store: &Store, q: &str) -> Vec<String> {
    find(store, query(q)).await.into_iter().map(|r| r.name).collect()
}

async fn reader_count(store: &Store) -> i64 {
    store.readers(&ReaderQuery { page: 1, per_page: 1, ..Default::default() }).await.unwrap().total
}

async fn audit_count(store: &Store) -> i64 {
    store.audit_log(&AuditQuery { page: 1, per_page: 1, ..Default::default() }).await.unwrap().total
}

#[track_caller]
fn invalid(result: Result<impl std::fmt::Debug, StoreError>) -> FieldErrors {
    match result {
        Err(StoreError::Invalid(errs)) => errs,
        other => panic!("expected StoreError::Invalid, got {other:?}"),
    }
}

#[track_caller]
fn conflict(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    match result {
        Err(StoreError::Conflict(msg)) => msg.en,
        other => panic!("expected StoreError::Conflict, got {other:?}"),
    }
}

#[track_caller]
fn not_found(result: Result<impl std::fmt::Debug, StoreError>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("expected StoreError::NotFound, got {other:?}"),
    }
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn task_input(title: &str, due: &str, assignee: &str) -> TaskInput {
    TaskInput { title: title.into(), notes: None, due_on: day(due), assignee: assignee.into() }
}

fn contact(channel: Channel, subject: &str, at: &str) -> InteractionInput {
    InteractionInput {
        channel,
        direction: Direction::Inbound,
        subject: subject.into(),
        notes: None,
        occurred_at: chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M").unwrap_or_else(|e| panic!("{at}: {e}")),
    }
}

async fn user_with_name(store: &Store, username: &str, display_name: &str) -> User {
    store
        .create_user(
            &actor(),
            NewUser {
                username: username.into(),
                display_name: display_name.into(),
                role: Role::Librarian,
                department: None,
                password: format!("{username}-password-1"),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create user {username}: {e}"))
}

/// Rows in `table` (one of the tracking tables, whose ids are positive).
async fn rows(table: &str) -> i64 {
    common::raw_count(&format!("SELECT COUNT(*) FROM {table} WHERE id > $1"), 0).await
}

#[track_caller]
fn other_error(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    match result {
        Err(StoreError::Other(msg)) => msg,
        other => panic!("expected StoreError::Other, got {other:?}"),
    }
}

fn field_names(errs: &FieldErrors) -> BTreeSet<String> {
    errs.0.iter().map(|e| e.field.clone()).collect()
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.into_iter().map(String::from).collect()
}

mod scenario {
    use super::*;

    // 1 ----------------------------------------------------------------------------------------
    pub async fn migrations_are_idempotent_and_seed_categories(store: Store) {
        // Opening again (and migrating again) changes nothing.
        let again = Store::open(&common::db_url()).await.expect("second open");
        again.migrate().await.expect("third migration run");
        store.migrate().await.expect("migrate on the first store");
        again.close().await;
        let applied = common::raw_count("SELECT COUNT(*) FROM schema_migrations WHERE version >= $1", 0).await;
        assert_eq!(applied, 9, "each migration is recorded once");

        let codes: Vec<String> = store.categories().await.unwrap().into_iter().map(|c| c.code).collect();
        assert_eq!(codes, ["undergraduate", "graduate", "doctoral", "faculty", "staff", "external"]);
        let categories = store.categories().await.unwrap();
        assert!(categories.iter().all(|c| c.active));
        assert_eq!(categories[0].name_zh, "本科生");
        assert_eq!(categories[5].name_en, "External reader");
        store.ping().await.unwrap();
        // Seeding did not run twice.
        assert_eq!(common::raw_count("SELECT COUNT(*) FROM categories WHERE id > $1", 0).await, 6);
    }

    // 2 ----------------------------------------------------------------------------------------
    pub async fn create_and_read_back_a_full_reader(store: Store) {
        let owner = staff(&store, "li.na", Role::Librarian).await;
        assert_eq!(owner.role, Role::Librarian);
        let d = ReaderDraft {
            card_no: "r2024001".into(),
            name: "张晓明".into(),
            gender: Some("女".into()),
            birth_date: Some("2003/5/17".into()),
            category: "graduate".into(),
            affiliation: Some("信息管理系".into()),
            status: Some("suspended".into()),
            enrolled_on: Some("2024年9月1日".into()),
            expires_on: Some("2027-07-01".into()),
            contacts: vec![
                email("Zhang.XM@PKU.edu.cn"),
                mobile("+86 138-0013-8000"),
                ContactDraft { kind: "mobile".into(), value: "13912345678".into(), primary: true, verified: true },
                ContactDraft { kind: "qq".into(), value: "12345678".into(), primary: false, verified: true },
            ],
            related: vec![
                RelatedDraft {
                    name: "王老师".into(),
                    relation: "导师".into(),
                    phone: Some("010-62751234".into()),
                    email: Some("Wang@PKU.edu.cn".into()),
                },
                RelatedDraft { name: "张父".into(), relation: "父亲".into(), phone: None, email: None },
            ],
            tags: vec!["新生".into(), "研究生会".into(), "新生".into()],
            owner: Some("LI.NA".into()),
            notes: Some("第一行\n第二行".into()),
            ..Default::default()
        };
        let created = store.create_reader(&actor(), &input(&d)).await.expect("create");

        assert!(created.id > 0);
        assert_eq!(created.card_no, "R2024001");
        assert_eq!(created.name, "张晓明");
        assert_eq!(created.pinyin, "zhangxiaoming");
        assert_eq!(created.initials, "zxm");
        assert_eq!(created.gender, Gender::Female);
        assert_eq!(created.birth_date.as_deref(), Some("2003-05-17"));
        assert_eq!(created.category.code, "graduate");
        assert_eq!(created.category.name_zh, "研究生");
        assert_eq!(created.affiliation.as_deref(), Some("信息管理系"));
        assert_eq!(created.status, ReaderStatus::Suspended);
        assert_eq!(created.enrolled_on.as_deref(), Some("2024-09-01"));
        assert_eq!(created.expires_on.as_deref(), Some("2027-07-01"));
        let contacts: Vec<(ContactKind, &str, bool, bool)> =
            created.contacts.iter().map(|c| (c.kind, c.value.as_str(), c.primary, c.verified)).collect();
        assert_eq!(
            contacts,
            [
                (ContactKind::Email, "zhang.xm@pku.edu.cn", true, false),
                (ContactKind::Mobile, "13800138000", false, false),
                (ContactKind::Mobile, "13912345678", true, true),
                (ContactKind::Qq, "12345678", true, true),
            ]
        );
        assert_eq!(created.related.len(), 2);
        assert_eq!(created.related[0].name, "王老师");
        assert_eq!(created.related[0].relation, "导师");
        assert_eq!(created.related[0].phone.as_deref(), Some("010-62751234"));
        assert_eq!(created.related[0].email.as_deref(), Some("wang@pku.edu.cn"));
        assert_eq!(created.related[1].name, "张父");
        assert_eq!(created.related[1].phone, None);
        assert_eq!(created.tags.iter().cloned().collect::<BTreeSet<_>>(), set(["新生", "研究生会"]));
        assert_eq!(created.tags.len(), 2);
        assert!(created.attributes.is_empty());
        assert_eq!(created.owner.as_deref(), Some("li.na"));
        assert_eq!(created.notes.as_deref(), Some("第一行\n第二行"));
        assert_eq!(created.version, 1);
        assert_eq!(created.created_at, created.updated_at);
        assert!(created.created_at.ends_with('Z') && created.created_at.len() == 24, "{}", created.created_at);

        assert_eq!(store.reader(created.id).await.unwrap(), created);
        assert_eq!(store.reader_by_card("R2024001").await.unwrap(), created);
        not_found(store.reader(created.id + 1000).await);
        not_found(store.reader_by_card("R2024002").await);

        let trail = store.audit_trail("reader", &created.id.to_string()).await.unwrap();
        assert_eq!(trail.len(), 1, "{trail:?}");
        let entry = &trail[0];
        assert_eq!(entry.action, "reader.create");
        assert_eq!(entry.entity, "reader");
        assert_eq!(entry.actor_name, "test");
        assert!(entry.before.is_none());
        let after = entry.after.as_ref().expect("after json");
        assert_eq!(after["card_no"], "R2024001");
        assert_eq!(after["owner"], "li.na");
        assert_eq!(after["contacts"][0]["value"], "zhang.xm@pku.edu.cn");
        assert!(entry.summary.contains("R2024001"));

        // A second, minimal reader: every optional field comes back empty.
        let plain = store.create_reader(&actor(), &input(&draft("R2024002", "Anna Smith"))).await.unwrap();
        assert_eq!(plain.pinyin, "annasmith");
        assert_eq!(plain.initials, "as");
        assert_eq!((plain.gender, plain.status), (Gender::Unknown, ReaderStatus::Active));
        assert!(plain.birth_date.is_none() && plain.affiliation.is_none() && plain.owner.is_none() && plain.notes.is_none());
        assert!(plain.contacts.is_empty() && plain.related.is_empty() && plain.tags.is_empty());
        assert_eq!(store.reader(plain.id).await.unwrap(), plain);
    }

    // 3 ----------------------------------------------------------------------------------------
    pub async fn duplicate_card_number_is_a_conflict(store: Store) {
        let mut first = draft("S100", "王芳");
        first.contacts = vec![email("wf@x.cn")];
        let a = store.create_reader(&actor(), &input(&first)).await.unwrap();
        let (readers, audits) = (reader_count(&store).await, audit_count(&store).await);

        let mut second = draft("s100", "赵宏");
        second.contacts = vec![email("zh@x.cn")];
        second.tags = vec!["重复".into()];
        let msg = conflict(store.create_reader(&actor(), &input(&second)).await);
        assert!(msg.contains("S100"), "conflict names the card: {msg}");

        assert_eq!(reader_count(&store).await, readers, "no reader written");
        assert_eq!(audit_count(&store).await, audits, "no audit row written");
        assert!(names(&store, "zh@x.cn").await.is_empty(), "no contact of the rejected reader");
        assert!(names(&store, "赵宏").await.is_empty(), "no search key of the rejected reader");
        assert_eq!(store.reader(a.id).await.unwrap(), a);

        // Renaming another reader's card onto an existing one is a conflict too.
        let b = store.create_reader(&actor(), &input(&draft("S200", "赵宏"))).await.unwrap();
        let msg = conflict(store.update_reader(&actor(), b.id, b.version, &input(&draft("S100", "赵宏"))).await);
        assert!(msg.contains("S100"), "{msg}");
        assert_eq!(store.reader(b.id).await.unwrap(), b);
        // And the store still works after the failed statements.
        store.create_reader(&actor(), &input(&draft("S300", "张辉"))).await.unwrap();
        assert_eq!(reader_count(&store).await, readers + 2);
    }

    // 4 ----------------------------------------------------------------------------------------
    pub async fn update_checks_the_version_and_audits_the_change(store: Store) {
        let mut d = draft("U1", "张辉");
        d.affiliation = Some("物理学院".into());
        d.tags = vec!["志愿者".into()];
        d.contacts = vec![email("zh@pku.edu.cn")];
        let v1 = store.create_reader(&actor(), &input(&d)).await.unwrap();

        d.affiliation = Some("化学学院".into());
        d.notes = Some("转专业".into());
        d.tags.push("转专业".into());
        let v2 = store.update_reader(&actor(), v1.id, 1, &input(&d)).await.expect("update at the current version");
        assert_eq!(v2.version, 2);
        assert_eq!(v2.affiliation.as_deref(), Some("化学学院"));
        assert_eq!(v2.notes.as_deref(), Some("转专业"));
        assert_eq!(v2.created_at, v1.created_at);
        assert!(v2.updated_at >= v1.updated_at);
        assert_eq!(v2.contacts, v1.contacts);
        assert_eq!(store.reader(v1.id).await.unwrap(), v2);

        let trail = store.audit_trail("reader", &v1.id.to_string()).await.unwrap();
        let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["reader.create", "reader.update"]);
        let update: &AuditEntry = &trail[1];
        assert_eq!(update.before.as_ref().unwrap()["version"], 1);
        assert_eq!(update.after.as_ref().unwrap()["version"], 2);
        assert_eq!(update.before.as_ref().unwrap()["affiliation"], "物理学院");
        assert_eq!(update.changed_fields(), ["affiliation", "notes", "tags"]);

        // Stale: based on version 1, but the record is at 2.
        let mut stale = d.clone();
        stale.name = "张辉辉".into();
        let msg = conflict(store.update_reader(&actor(), v1.id, 1, &input(&stale)).await);
        assert!(msg.contains("version 2"), "{msg}");
        assert_eq!(store.reader(v1.id).await.unwrap(), v2, "record unchanged");
        assert_eq!(store.audit_trail("reader", &v1.id.to_string()).await.unwrap().len(), 2);
        assert!(names(&store, "张辉辉").await.is_empty());
        // A version from the future is stale as well.
        conflict(store.update_reader(&actor(), v1.id, 3, &input(&stale)).await);
        not_found(store.update_reader(&actor(), v1.id + 99, 1, &input(&stale)).await);

        // A rename re-derives pinyin and search keys.
        let v3 = store.update_reader(&actor(), v1.id, 2, &input(&stale)).await.unwrap();
        assert_eq!((v3.version, v3.pinyin.as_str(), v3.initials.as_str()), (3, "zhanghuihui", "zhh"));
        assert_eq!(names(&store, "zhh").await, ["张辉辉"]);
        assert_eq!(names(&store, "辉辉").await, ["张辉辉"]);
        let trail = store.audit_trail("reader", &v1.id.to_string()).await.unwrap();
        assert_eq!(trail[2].changed_fields(), ["initials", "name", "pinyin"]);
    }

    // 5 ----------------------------------------------------------------------------------------
    pub async fn unknown_references_are_invalid(store: Store) {
        let mut d = draft("X1", "王芳");
        d.category = "alien".into();
        d.owner = Some("nobody".into());
        d.attributes.insert("nosuch".into(), AttrInput::One("x".into()));
        let audits = audit_count(&store).await;
        let errs = invalid(store.create_reader(&actor(), &input(&d)).await);
        assert_eq!(field_names(&errs), set(["attributes.nosuch", "category", "owner"]), "{errs}");
        assert!(errs.get("category").unwrap().en.contains("alien"));
        assert!(errs.get("owner").unwrap().en.contains("nobody"));
        assert_eq!(reader_count(&store).await, 0);
        assert_eq!(audit_count(&store).await, audits);

        // A disabled user cannot own readers.
        let gone = staff(&store, "gone", Role::Librarian).await;
        store.set_user_active(&actor(), gone.id, false).await.unwrap();
        let mut d = draft("X1", "王芳");
        d.owner = Some("gone".into());
        assert_eq!(field_names(&invalid(store.create_reader(&actor(), &input(&d)).await)), set(["owner"]));

        // A retired category is refused for new readers but kept by the readers already in it.
        let ok = store.create_reader(&actor(), &input(&draft("X2", "赵宏"))).await.unwrap();
        let undergrad = store.categories().await.unwrap().into_iter().find(|c| c.code == "undergraduate").unwrap();
        store.set_category_active(&actor(), undergrad.id, false).await.unwrap();
        assert_eq!(field_names(&invalid(store.create_reader(&actor(), &input(&draft("X3", "张辉"))).await)), set(["category"]));
        let mut renamed = draft("X2", "赵宏伟");
        let v2 = store.update_reader(&actor(), ok.id, 1, &input(&renamed)).await.expect("kept category");
        assert_eq!(v2.category.code, "undergraduate");

        // Invalid references on update write nothing.
        renamed.category = "alien".into();
        renamed.owner = Some("nobody".into());
        let errs = invalid(store.update_reader(&actor(), ok.id, 2, &input(&renamed)).await);
        assert_eq!(field_names(&errs), set(["category", "owner"]));
        assert_eq!(store.reader(ok.id).await.unwrap(), v2);
        assert_eq!(reader_count(&store).await, 1);
    }

    // 6 ----------------------------------------------------------------------------------------
    pub async fn custom_attributes(store: Store) {
        let new = |code: &str, kind: &str| NewAttribute {
            code: code.into(),
            label_zh: format!("{code}标签"),
            label_en: format!("{code} label"),
            kind: kind.into(),
            choices: Vec::new(),
            repeatable: false,
            unique: false,
            searchable: false,
        };
        store.create_attribute(&actor(), &NewAttribute { unique: true, searchable: true, ..new("student_no", "text") }).await.unwrap();
        store
            .create_attribute(&actor(), &NewAttribute { choices: vec!["本部".into(), "医学部".into()], ..new("campus", "choice") })
            .await
            .unwrap();
        store.create_attribute(&actor(), &NewAttribute { repeatable: true, ..new("research", "text") }).await.unwrap();
        conflict(store.create_attribute(&actor(), &new("campus", "text")).await);
        assert_eq!(field_names(&invalid(store.create_attribute(&actor(), &new("empty_choice", "choice")).await)), set(["choices"]));
        let defs = store.attribute_defs().await.unwrap();
        assert_eq!(defs.len(), 3);
        let student_no = &defs.iter().find(|(_, d)| d.code == "student_no").unwrap().1;
        assert!(student_no.unique && student_no.searchable && !student_no.repeatable);
        assert_eq!(defs.iter().find(|(_, d)| d.code == "campus").unwrap().1.choices, ["本部", "医学部"]);

        let mut a = draft("A1", "王芳");
        a.attributes.insert("student_no".into(), AttrInput::One("XS2024-77".into()));
        a.attributes.insert("campus".into(), AttrInput::One("医学部".into()));
        a.attributes.insert("research".into(), AttrInput::Many(vec!["信息检索".into(), "数据挖掘".into()]));
        let ra = store.create_reader(&actor(), &input(&a)).await.unwrap();
        let expected: BTreeMap<String, Vec<String>> = [
            ("campus".to_string(), vec!["医学部".to_string()]),
            ("research".to_string(), vec!["信息检索".to_string(), "数据挖掘".to_string()]),
            ("student_no".to_string(), vec!["XS2024-77".to_string()]),
        ]
        .into();
        assert_eq!(ra.attributes, expected);
        assert_eq!(store.reader(ra.id).await.unwrap().attributes, expected);

        // Saving the same reader again keeps its own unique value.
        let ra2 = store.update_reader(&actor(), ra.id, 1, &input(&a)).await.expect("own unique value");
        assert_eq!(ra2.attributes, expected);

        // Another reader with the same unique value.
        let mut b = draft("B1", "赵宏");
        b.attributes.insert("student_no".into(), AttrInput::One("XS2024-77".into()));
        let errs = invalid(store.create_reader(&actor(), &input(&b)).await);
        assert_eq!(field_names(&errs), set(["attributes.student_no"]));
        assert!(errs.get("attributes.student_no").unwrap().en.contains("A1"), "{errs}");
        assert_eq!(reader_count(&store).await, 1);

        // Kind rules: a choice outside its list, several values for a single-valued attribute.
        let mut c = draft("C1", "张辉");
        c.attributes.insert("campus".into(), AttrInput::One("工学部".into()));
        c.attributes.insert("student_no".into(), AttrInput::Many(vec!["X1".into(), "X2".into()]));
        let errs = invalid(store.create_reader(&actor(), &input(&c)).await);
        assert_eq!(field_names(&errs), set(["attributes.campus", "attributes.student_no"]));

        // A distinct value is fine; the unique value can move once its holder lets go of it.
        b.attributes.insert("student_no".into(), AttrInput::One("XS2024-78".into()));
        let rb = store.create_reader(&actor(), &input(&b)).await.unwrap();
        a.attributes.remove("student_no");
        store.update_reader(&actor(), ra.id, 2, &input(&a)).await.unwrap();
        let mut b2 = b.clone();
        b2.attributes.insert("student_no".into(), AttrInput::One("XS2024-77".into()));
        store.update_reader(&actor(), rb.id, 1, &input(&b2)).await.expect("value released by A1");

        // Searchable values are found; others are not.
        assert_eq!(names(&store, "XS2024-77").await, ["赵宏"]);
        assert_eq!(names(&store, "xs2024").await, ["赵宏"]);
        assert!(names(&store, "XS2024-78").await.is_empty(), "old value no longer indexed");
        assert!(names(&store, "数据挖掘").await.is_empty(), "research is not searchable");
    }

    // 7 ----------------------------------------------------------------------------------------
    pub async fn search_filters_sorts_and_pages(store: Store) {
        staff(&store, "li.na", Role::Librarian).await;
        staff(&store, "wang.wei", Role::Librarian).await;
        let mut specials = Vec::new();
        let mut zxm = draft("S2024001", "张晓明");
        zxm.contacts = vec![email("Zhang.XM@pku.edu.cn"), mobile("13800138000")];
        zxm.tags = vec!["新生".into()];
        zxm.owner = Some("li.na".into());
        zxm.affiliation = Some("信息管理系".into());
        specials.push(zxm);
        let mut zh = draft("S2024002", "张辉");
        zh.category = "graduate".into();
        zh.affiliation = Some("物理学院".into());
        zh.tags = vec!["志愿者".into()];
        zh.contacts = vec![ContactDraft { kind: "phone".into(), value: "010-6275 1234".into(), ..Default::default() }];
        specials.push(zh);
        let mut hong = draft("T1001", "赵宏");
        hong.category = "faculty".into();
        hong.status = Some("suspended".into());
        hong.owner = Some("wang.wei".into());
        specials.push(hong);
        let mut fang = draft("S2024003", "王芳");
        fang.affiliation = Some("信息管理系".into());
        fang.tags = vec!["志愿者".into()];
        specials.push(fang);
        let mut oy = draft("E9001", "欧阳明月");
        oy.category = "external".into();
        oy.owner = Some("li.na".into());
        specials.push(oy);

        let surnames = ["李", "刘", "陈", "杨", "黄", "吴", "徐", "孙", "马", "胡"];
        let given = ["伟", "静", "磊", "洋", "丽"];
        let mut fillers = Vec::new();
        for i in 0..45 {
            let mut d = draft(&format!("2023{i:04}"), &format!("{}{}", surnames[i % 10], given[i / 10 % 5]));
            d.category = if i % 3 == 0 { "graduate".into() } else { "undergraduate".into() };
            d.contacts = vec![email(&format!("f{i}@example.cn"))];
            if i % 5 == 0 {
                d.tags = vec!["志愿者".into()];
            }
            fillers.push(d);
        }
        for d in specials.iter().chain(&fillers) {
            store.create_reader(&actor(), &input(d)).await.unwrap();
        }
        assert_eq!(reader_count(&store).await, 50);

        // Pinyin, initials, name fragments.
        assert_eq!(names(&store, "zhanghui").await, ["张辉"]);
        assert_eq!(names(&store, "Zhang Hui").await, ["张辉"]);
        assert_eq!(names(&store, "zxm").await, ["张晓明"]);
        assert_eq!(names(&store, "zh").await, ["张辉", "张晓明", "赵宏"], "by pinyin: zhanghui, zhangxiaoming, zhaohong");
        assert_eq!(names(&store, "zhang").await, ["张辉", "张晓明"]);
        assert_eq!(names(&store, "晓明").await, ["张晓明"]);
        assert_eq!(names(&store, "明").await, ["欧阳明月", "张晓明"]);
        assert_eq!(names(&store, "欧阳").await, ["欧阳明月"]);
        assert_eq!(names(&store, "oymy").await, ["欧阳明月"]);
        assert!(names(&store, "zhangxiaomingx").await.is_empty());
        assert!(names(&store, "明日").await.is_empty());

        // Card number prefixes: letters and digits, and digits only.
        let cards: Vec<String> = find(&store, query("s2024")).await.into_iter().map(|r| r.card_no).collect();
        assert_eq!(cards.iter().cloned().collect::<BTreeSet<_>>(), set(["S2024001", "S2024002", "S2024003"]));
        assert_eq!(names(&store, "T1001").await, ["赵宏"]);
        let page = store.readers(&query("2023")).await.unwrap();
        assert_eq!(page.total, 45);
        assert!(page.items.iter().all(|r| r.card_no.starts_with("2023")));
        assert_eq!(store.readers(&query("20230044")).await.unwrap().total, 1);

        // Contacts: exact email (any case), mobile and phone with separators.
        assert_eq!(names(&store, "ZHANG.xm@PKU.EDU.CN").await, ["张晓明"]);
        assert!(names(&store, "zhang.xm@pku").await.is_empty(), "email is exact");
        assert_eq!(names(&store, "138-0013-8000").await, ["张晓明"]);
        assert_eq!(names(&store, "+86 138 0013 8000").await, ["张晓明"]);
        assert_eq!(names(&store, "01062751234").await, ["张辉"]);
        assert!(names(&store, "1380013").await.is_empty(), "phone numbers are exact");

        // Filters, alone and with a search.
        let by = |f: fn(&mut ReaderQuery)| {
            let mut q = ReaderQuery { page: 1, per_page: 100, ..Default::default() };
            f(&mut q);
            q
        };
        let graduate = find(&store, by(|q| q.category = Some("graduate".into()))).await;
        assert_eq!(graduate.len(), 1 + 15, "张辉 and every third filler");
        assert!(graduate.iter().all(|r| r.category.code == "graduate"));
        let suspended = find(&store, by(|q| q.status = Some(ReaderStatus::Suspended))).await;
        assert_eq!(suspended.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["赵宏"]);
        assert_eq!(find(&store, by(|q| q.status = Some(ReaderStatus::Active))).await.len(), 49);
        let volunteers = find(&store, by(|q| q.tag = Some("志愿者".into()))).await;
        assert_eq!(volunteers.len(), 2 + 9);
        let mine: BTreeSet<String> = find(&store, by(|q| q.owner = Some("LI.NA".into()))).await.into_iter().map(|r| r.name).collect();
        assert_eq!(mine, set(["张晓明", "欧阳明月"]));
        assert!(find(&store, by(|q| q.owner = Some("nobody".into()))).await.is_empty());
        let dept: BTreeSet<String> =
            find(&store, by(|q| q.affiliation = Some("信息管理系".into()))).await.into_iter().map(|r| r.name).collect();
        assert_eq!(dept, set(["张晓明", "王芳"]));
        let mut q = query("zh");
        q.category = Some("graduate".into());
        assert_eq!(find(&store, q).await.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["张辉"]);
        let mut q = query("zh");
        q.tag = Some("新生".into());
        q.status = Some(ReaderStatus::Active);
        assert_eq!(find(&store, q).await.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["张晓明"]);
        assert!(find(&store, by(|q| q.category = Some("nosuch".into()))).await.is_empty());

        // Sort orders.
        let sorted = |sort: ReaderSort, desc: bool| {
            let store = store.clone();
            async move { find(&store, ReaderQuery { sort: Some(sort), desc, page: 1, per_page: 100, ..Default::default() }).await }
        };
        let by_card: Vec<String> = sorted(ReaderSort::CardNo, false).await.into_iter().map(|r| r.card_no).collect();
        let mut expected = by_card.clone();
        expected.sort();
        assert_eq!(by_card, expected);
        assert_eq!((by_card[0].as_str(), by_card[49].as_str()), ("20230000", "T1001"));
        let mut by_card_desc: Vec<String> = sorted(ReaderSort::CardNo, true).await.into_iter().map(|r| r.card_no).collect();
        by_card_desc.reverse();
        assert_eq!(by_card_desc, by_card);
        let by_name: Vec<String> = sorted(ReaderSort::Name, false).await.into_iter().map(|r| r.pinyin).collect();
        assert!(by_name.windows(2).all(|w| w[0] <= w[1]), "{by_name:?}");
        assert_eq!(by_name.last().map(String::as_str), Some("zhaohong"));
        let created: Vec<i64> = sorted(ReaderSort::Created, false).await.into_iter().map(|r| r.id).collect();
        assert!(created.windows(2).all(|w| w[0] < w[1]));
        let created_desc: Vec<i64> = sorted(ReaderSort::Created, true).await.into_iter().map(|r| r.id).collect();
        assert!(created_desc.windows(2).all(|w| w[0] > w[1]));
        // A list without a search shows the most recently updated first.
        let recent = find(&store, ReaderQuery { page: 1, per_page: 5, ..Default::default() }).await;
        assert_eq!(recent[0].card_no, "20230044");
        assert!(recent.windows(2).all(|w| w[0].updated_at >= w[1].updated_at));

        // Paging: disjoint pages, right totals, a short last page.
        let page = |n: i64| {
            let store = store.clone();
            async move {
                let mut q = query("2023");
                q.per_page = 20;
                q.page = n;
                q.sort = Some(ReaderSort::CardNo);
                store.readers(&q).await.unwrap()
            }
        };
        let (p1, p2, p3, p4) = (page(1).await, page(2).await, page(3).await, page(4).await);
        assert_eq!((p1.items.len(), p2.items.len(), p3.items.len(), p4.items.len()), (20, 20, 5, 0));
        assert_eq!((p1.total, p2.total, p3.total), (45, 45, 45));
        assert!(!p1.total_capped);
        assert_eq!(p1.pages(), 3);
        let ids = |p: &lector_store::Page<ReaderSummary>| p.items.iter().map(|r| r.id).collect::<BTreeSet<_>>();
        assert!(ids(&p1).is_disjoint(&ids(&p2)) && ids(&p2).is_disjoint(&ids(&p3)));
        assert_eq!(ids(&p1).len() + ids(&p2).len() + ids(&p3).len(), 45);
        assert_eq!(p1.items[0].card_no, "20230000");
        assert_eq!(p2.items[0].card_no, "20230020");
        assert_eq!(p3.items[4].card_no, "20230044");
        let all = store.readers(&ReaderQuery { page: 3, per_page: 20, ..Default::default() }).await.unwrap();
        assert_eq!((all.items.len(), all.total), (10, 50));
    }

    // 8 ----------------------------------------------------------------------------------------
    pub async fn delete_removes_the_reader_and_keeps_the_audit(store: Store) {
        store
            .create_attribute(
                &actor(),
                &NewAttribute {
                    code: "student_no".into(),
                    label_zh: "学号".into(),
                    label_en: "Student no.".into(),
                    kind: "text".into(),
                    choices: Vec::new(),
                    repeatable: false,
                    unique: true,
                    searchable: true,
                },
            )
            .await
            .unwrap();
        let mut d = draft("D1", "王芳");
        d.contacts = vec![email("del@x.cn"), mobile("13700000001")];
        d.related = vec![RelatedDraft { name: "王父".into(), relation: "父亲".into(), ..Default::default() }];
        d.tags = vec!["待删".into()];
        d.attributes.insert("student_no".into(), AttrInput::One("XS1".into()));
        let r = store.create_reader(&actor(), &input(&d)).await.unwrap();
        let keep = store.create_reader(&actor(), &input(&draft("D2", "王芳芳"))).await.unwrap();

        let msg = conflict(store.delete_reader(&actor(), r.id, Some(7)).await);
        assert!(msg.contains("version 1"), "{msg}");
        assert_eq!(store.reader(r.id).await.unwrap(), r, "a stale delete deletes nothing");

        store.delete_reader(&actor(), r.id, Some(1)).await.expect("delete");
        not_found(store.reader(r.id).await);
        not_found(store.reader_by_card("D1").await);
        not_found(store.delete_reader(&actor(), r.id, None).await);
        not_found(store.update_reader(&actor(), r.id, 1, &input(&d)).await);
        assert!(names(&store, "del@x.cn").await.is_empty());
        assert!(names(&store, "13700000001").await.is_empty());
        assert_eq!(names(&store, "王芳").await, ["王芳芳"]);
        for table in ["reader_contacts", "reader_related", "reader_tags", "reader_attributes", "reader_search_keys"] {
            let left = common::raw_count(&format!("SELECT COUNT(*) FROM {table} WHERE reader_id = $1"), r.id).await;
            assert_eq!(left, 0, "{table} rows left behind");
        }
        // The unique value and the contact are free for a new reader, found alone.
        let again = store.create_reader(&actor(), &input(&d)).await.expect("same card, email and student number again");
        assert_ne!(again.id, r.id);
        let found = store.readers(&query("del@x.cn")).await.unwrap();
        assert_eq!(found.total, 1);
        assert_eq!(found.items[0].id, again.id);
        assert_eq!(names(&store, "XS1").await, ["王芳"]);

        let trail = store.audit_trail("reader", &r.id.to_string()).await.unwrap();
        let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["reader.create", "reader.delete"]);
        let before = trail[1].before.as_ref().expect("before kept");
        assert_eq!(before["card_no"], "D1");
        assert_eq!(before["contacts"][0]["value"], "del@x.cn");
        assert_eq!(before["attributes"]["student_no"][0], "XS1");
        assert!(trail[1].after.is_none());

        // Deleting without a version works too.
        store.delete_reader(&actor(), keep.id, None).await.unwrap();
        assert_eq!(reader_count(&store).await, 1);
    }

    // 9 ----------------------------------------------------------------------------------------
    pub async fn users_logins_sessions_and_tokens(store: Store) {
        let pw = "correct horse battery";
        let new = |username: &str, role: Role, department: Option<&str>| NewUser {
            username: username.into(),
            display_name: "李娜".into(),
            role,
            department: department.map(String::from),
            password: pw.into(),
        };
        let lina = store.create_user(&actor(), new("Li.Na", Role::Librarian, None)).await.unwrap();
        assert_eq!((lina.username.as_str(), lina.display_name.as_str(), lina.active), ("li.na", "李娜", true));
        assert!(lina.last_login_at.is_none());
        let pool = common::raw_pool().await;
        let hash: String =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1").bind(lina.id).fetch_one(&pool).await.unwrap();
        pool.close().await;
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(pw));
        let trail = store.audit_trail("user", &lina.id.to_string()).await.unwrap();
        assert_eq!(trail[0].action, "user.create");
        assert!(!trail[0].after.as_ref().unwrap().to_string().contains("argon2"), "no hash in the audit log");

        let msg = conflict(store.create_user(&actor(), new("LI.NA", Role::Admin, None)).await);
        assert!(msg.contains("li.na"), "{msg}");
        assert_eq!(field_names(&invalid(store.create_user(&actor(), new("dept", Role::Department, None)).await)), set(["department"]));
        assert_eq!(
            field_names(&invalid(store.create_user(&actor(), new("dept", Role::Department, Some("nosuch"))).await)),
            set(["department"])
        );
        assert_eq!(field_names(&invalid(store.create_user(&actor(), new("x", Role::Librarian, None)).await)), set(["username"]));
        let mut short = new("shorty", Role::Librarian, None);
        short.password = "short".into();
        assert_eq!(field_names(&invalid(store.create_user(&actor(), short).await)), set(["password"]));
        assert_eq!(store.users().await.unwrap().len(), 1, "no rejected user written");
        let circ = store
            .create_department(
                &actor(),
                &NamedInput { code: "circulation".into(), name_zh: "流通部".into(), name_en: "Circulation".into() },
            )
            .await
            .unwrap();
        let dept = store.create_user(&actor(), new("dept", Role::Department, Some("circulation"))).await.unwrap();
        assert_eq!((dept.department_id, dept.department_code.as_deref()), (Some(circ.id), Some("circulation")));
        assert_eq!(store.user_by_name(" DEPT ").await.unwrap(), dept);

        // Sign-in.
        match store.login(" LI.NA ", pw, "127.0.0.1").await.unwrap() {
            Login::Ok(u) => {
                assert_eq!(u.id, lina.id);
                assert!(u.last_login_at.is_some());
            }
            other => panic!("expected Ok, got {other:?}"),
        }
        assert!(matches!(store.login("li.na", "wrong password!", "127.0.0.1").await.unwrap(), Login::BadCredentials));
        assert!(matches!(store.login("nobody", pw, "127.0.0.1").await.unwrap(), Login::BadCredentials));
        let outcomes: Vec<String> = store
            .audit_log(&AuditQuery { action: Some("auth".into()), page: 1, per_page: 10, ..Default::default() })
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(outcomes, ["auth.login_failed", "auth.login"], "unknown users are not audited against an account");

        // A success resets the failure count; five failures in a row lock even the right password out.
        assert!(matches!(store.login("li.na", pw, "x").await.unwrap(), Login::Ok(_)));
        for _ in 0..4 {
            assert!(matches!(store.login("li.na", "wrong password!", "x").await.unwrap(), Login::BadCredentials));
        }
        assert!(matches!(store.login("li.na", pw, "x").await.unwrap(), Login::Ok(_)));
        for i in 1..5 {
            let outcome = store.login("li.na", "wrong password!", "x").await.unwrap();
            assert!(matches!(outcome, Login::BadCredentials), "failure {i}: {outcome:?}");
        }
        match store.login("li.na", "wrong password!", "x").await.unwrap() {
            Login::Locked { until } => assert!(until > lector_store::now_text(), "{until}"),
            other => panic!("fifth failure should lock, got {other:?}"),
        }
        assert!(matches!(store.login("li.na", pw, "x").await.unwrap(), Login::Locked { .. }));
        assert_eq!(
            store
                .audit_log(&AuditQuery { action: Some("auth.locked".into()), page: 1, per_page: 10, ..Default::default() })
                .await
                .unwrap()
                .total,
            1
        );
        // An admin resetting the password unlocks.
        store.set_password(&actor(), lina.id, "another good password".into()).await.unwrap();
        assert!(matches!(store.login("li.na", pw, "x").await.unwrap(), Login::BadCredentials));
        assert!(matches!(store.login("li.na", "another good password", "x").await.unwrap(), Login::Ok(_)));

        // Sessions.
        let (token, csrf) = store.create_session(lina.id).await.unwrap();
        let (token2, csrf2) = store.create_session(lina.id).await.unwrap();
        assert_ne!(token, token2);
        assert_ne!(csrf, csrf2);
        let (u, c) = store.session_user(&token).await.unwrap().expect("session");
        assert_eq!((u.id, c.as_str()), (lina.id, csrf.as_str()));
        assert!(store.session_user("not-a-token").await.unwrap().is_none());
        store.end_session(&token).await.unwrap();
        assert!(store.session_user(&token).await.unwrap().is_none());
        assert!(store.session_user(&token2).await.unwrap().is_some(), "other sessions live on");
        let (dept_token, _) = store.create_session(dept.id).await.unwrap();
        let disabled = store.set_user_active(&actor(), lina.id, false).await.unwrap();
        assert!(!disabled.active);
        assert!(store.session_user(&token2).await.unwrap().is_none(), "disabling ends sessions");
        assert!(store.session_user(&dept_token).await.unwrap().is_some(), "only the disabled user's");
        assert!(matches!(store.login("li.na", "another good password", "x").await.unwrap(), Login::BadCredentials));
        store.set_user_active(&actor(), lina.id, true).await.unwrap();
        assert!(store.session_user(&token2).await.unwrap().is_none(), "re-enabling revives nothing");

        // API tokens.
        let (tok, secret) = store.create_token(&actor(), "LI.NA", " sync job ").await.unwrap();
        assert!(secret.starts_with("lec_") && secret.len() > 40, "{secret}");
        assert_eq!((tok.username.as_str(), tok.name.as_str()), ("li.na", "sync job"));
        assert!(secret.starts_with(&tok.prefix) && tok.prefix.len() == 10);
        assert!(tok.last_used_at.is_none() && tok.revoked_at.is_none());
        assert_eq!(store.token_user(&secret).await.unwrap().map(|u| u.id), Some(lina.id));
        assert!(store.tokens().await.unwrap()[0].last_used_at.is_some(), "use is recorded");
        assert!(store.token_user("lec_0000").await.unwrap().is_none());
        assert_eq!(field_names(&invalid(store.create_token(&actor(), "nobody", "x").await)), set(["user"]));
        store.set_user_active(&actor(), lina.id, false).await.unwrap();
        assert!(store.token_user(&secret).await.unwrap().is_none(), "a disabled user's token does not work");
        store.set_user_active(&actor(), lina.id, true).await.unwrap();
        assert!(store.token_user(&secret).await.unwrap().is_some());
        store.revoke_token(&actor(), tok.id).await.unwrap();
        assert!(store.token_user(&secret).await.unwrap().is_none());
        assert!(store.tokens().await.unwrap()[0].revoked_at.is_some());
        not_found(store.revoke_token(&actor(), tok.id).await);
        not_found(store.revoke_token(&actor(), tok.id + 100).await);
        let actions: Vec<String> =
            store.audit_trail("api_token", &tok.id.to_string()).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["token.create", "token.revoke"]);
    }

    // 10 ---------------------------------------------------------------------------------------
    pub async fn bulk_create_two_thousand_readers(store: Store) {
        staff(&store, "li.na", Role::Librarian).await;
        let surnames = ["李", "刘", "陈", "杨", "黄", "吴", "徐", "孙", "马", "胡", "郭", "何", "高", "林", "罗"];
        let given = ["伟", "静", "磊", "洋", "丽", "强", "军", "敏", "杰", "娟", "涛", "超", "秀英", "桂兰", "海燕"];
        let inputs: Vec<ReaderInput> = (0..2000usize)
            .map(|i| {
                let name = if i == 777 { "司马相如".to_string() } else { format!("{}{}", surnames[i % 15], given[i / 15 % 15]) };
                let mut d = draft(&format!("B{i:05}"), &name);
                d.category = ["undergraduate", "graduate", "doctoral"][i % 3].into();
                d.contacts = vec![email(&format!("b{i}@bulk.cn")), mobile(&format!("139{i:08}"))];
                if i % 10 == 0 {
                    d.tags = vec!["批量".into()];
                    d.related = vec![RelatedDraft { name: "家长".into(), relation: "父母".into(), ..Default::default() }];
                }
                if i % 100 == 0 {
                    d.owner = Some("li.na".into());
                }
                input(&d)
            })
            .collect();
        let n = store.bulk_create_readers(&actor(), &inputs, "2025-01-01T00:00:00.000Z").await.expect("bulk create");
        assert_eq!(n, 2000);
        assert_eq!(reader_count(&store).await, 2000);

        let found = store.readers(&query("B1234@BULK.CN")).await.unwrap();
        assert_eq!(found.items.iter().map(|r| r.card_no.as_str()).collect::<Vec<_>>(), ["B01234"]);
        assert_eq!(names(&store, "139-0000-1999").await.len(), 1);
        assert_eq!(names(&store, "simaxiangru").await, ["司马相如"]);
        assert_eq!(names(&store, "相如").await, ["司马相如"]);
        assert_eq!(store.readers(&query("B019")).await.unwrap().total, 100);
        let tagged = store.readers(&ReaderQuery { tag: Some("批量".into()), page: 1, per_page: 10, ..Default::default() }).await.unwrap();
        assert_eq!(tagged.total, 200);
        let owned = store.readers(&ReaderQuery { owner: Some("li.na".into()), page: 1, per_page: 50, ..Default::default() }).await.unwrap();
        assert_eq!(owned.total, 20);
        let doctoral =
            store.readers(&ReaderQuery { category: Some("doctoral".into()), page: 1, per_page: 10, ..Default::default() }).await.unwrap();
        assert_eq!(doctoral.total, 666);
        // Pinyin search across many readers: every 李 (i % 15 == 0) except none renamed.
        let li = store.readers(&ReaderQuery { q: SearchTerm::parse("李"), page: 1, per_page: 10, ..Default::default() }).await.unwrap();
        assert_eq!(li.total, 2000 / 15 + 1);
        assert!(!li.total_capped);
        // Every card number starts with B0: more candidates than a search collects, so the total
        // is a lower bound and says so; a filter on top still pages through what was collected.
        let broad = store.readers(&ReaderQuery { q: SearchTerm::parse("B0"), page: 1, per_page: 10, ..Default::default() }).await.unwrap();
        assert!(broad.total_capped, "{} readers, not capped", broad.total);
        assert_eq!(broad.total, lector_store::readers::SEARCH_CANDIDATE_CAP);
        assert_eq!(broad.items.len(), 10);

        let full = store.reader_by_card("B00010").await.unwrap();
        assert_eq!(full.contacts.len(), 2);
        assert_eq!(full.related.len(), 1);
        assert_eq!(full.tags, ["批量"]);
        assert_eq!(full.created_at, "2025-01-01T00:00:00.000Z");
        assert_eq!(full.version, 1);
        assert_eq!(full.pinyin, lector_store::domain::name::pinyin_of(&full.name).full);

        let bulk = store
            .audit_log(&AuditQuery { action: Some("reader.bulk_create".into()), page: 1, per_page: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(bulk.total, 1);
        assert!(bulk.items[0].summary.contains("2000"), "{}", bulk.items[0].summary);
        assert_eq!(
            store
                .audit_log(&AuditQuery { action: Some("reader.create".into()), page: 1, per_page: 1, ..Default::default() })
                .await
                .unwrap()
                .total,
            0
        );

        // A batch with a card already taken writes nothing.
        let clash = vec![input(&draft("N00001", "新人")), input(&draft("B00001", "重复"))];
        conflict(store.bulk_create_readers(&actor(), &clash, "2025-01-02T00:00:00.000Z").await);
        assert_eq!(reader_count(&store).await, 2000);
        not_found(store.reader_by_card("N00001").await);
        assert_eq!(store.bulk_create_readers(&actor(), &[], "2025-01-02T00:00:00.000Z").await.unwrap(), 0);
    }

    // 11 ---------------------------------------------------------------------------------------
    pub async fn audit_log_filters_and_pages(store: Store) {
        let alice = staff(&store, "alice", Role::Librarian).await;
        let bob = staff(&store, "bob", Role::Admin).await;
        let as_alice = Actor::user(alice.id, "alice", "10.0.0.1");
        let as_bob = Actor::user(bob.id, "bob", "10.0.0.2");
        let mut ids = Vec::new();
        for (i, name) in ["张晓明", "张辉", "赵宏"].iter().enumerate() {
            ids.push(store.create_reader(&as_alice, &input(&draft(&format!("A{i}"), name))).await.unwrap().id);
        }
        store.update_reader(&as_bob, ids[0], 1, &input(&draft("A0", "张晓明明"))).await.unwrap();
        store
            .create_department(&as_bob, &NamedInput { code: "ref".into(), name_zh: "参考咨询部".into(), name_en: "Reference".into() })
            .await
            .unwrap();

        let q = |f: fn(&mut AuditQuery)| {
            let store = store.clone();
            async move {
                let mut q = AuditQuery { page: 1, per_page: 50, ..Default::default() };
                f(&mut q);
                store.audit_log(&q).await.unwrap()
            }
        };
        let everything = q(|_| {}).await;
        assert_eq!(everything.total, 2 + 3 + 1 + 1);
        assert!(everything.items.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert_eq!(everything.items[0].action, "department.create");

        let by_alice = q(|q| q.actor = Some("alice".into())).await;
        assert_eq!(by_alice.total, 3);
        assert!(by_alice.items.iter().all(|e| e.actor_id == Some(alice.id) && e.origin == "10.0.0.1" && e.action == "reader.create"));
        assert_eq!(q(|q| q.actor = Some("bob".into())).await.total, 2);
        assert_eq!(q(|q| q.actor = Some("test".into())).await.total, 2);

        let readers = q(|q| q.action = Some("reader".into())).await;
        assert_eq!(
            readers.items.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["reader.update", "reader.create", "reader.create", "reader.create"]
        );
        assert_eq!(q(|q| q.action = Some("reader.update".into())).await.total, 1);
        assert_eq!(q(|q| q.action = Some("read".into())).await.total, 0, "prefixes match whole segments");
        assert_eq!(q(|q| q.action = Some("user".into())).await.total, 2);
        assert_eq!(q(|q| q.action = Some("department".into())).await.total, 1);

        let first = ids[0].to_string();
        let about = store
            .audit_log(&AuditQuery {
                entity: Some("reader".into()),
                entity_id: Some(first.clone()),
                page: 1,
                per_page: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(about.items.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["reader.update", "reader.create"]);
        let combined = store
            .audit_log(&AuditQuery {
                actor: Some("bob".into()),
                action: Some("reader".into()),
                entity_id: Some(first),
                page: 1,
                per_page: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(combined.total, 1);
        assert_eq!(combined.items[0].changed_fields(), ["initials", "name", "pinyin"]);

        assert_eq!(q(|q| (q.from, q.to) = (Some("2000-01-01".into()), Some("2999-01-01".into()))).await.total, 7);
        assert_eq!(q(|q| q.from = Some("2999-01-01".into())).await.total, 0);
        assert_eq!(q(|q| q.to = Some("2000-01-01".into())).await.total, 0);

        // Paging.
        let page = |n: i64| {
            let store = store.clone();
            async move { store.audit_log(&AuditQuery { page: n, per_page: 3, ..Default::default() }).await.unwrap() }
        };
        let (p1, p2, p3, p4) = (page(1).await, page(2).await, page(3).await, page(4).await);
        assert_eq!((p1.items.len(), p2.items.len(), p3.items.len(), p4.items.len()), (3, 3, 1, 0));
        assert_eq!((p1.total, p3.total, p1.pages()), (7, 7, 3));
        let all: Vec<i64> = [&p1, &p2, &p3].iter().flat_map(|p| p.items.iter().map(|e| e.id)).collect();
        assert_eq!(all, everything.items.iter().map(|e| e.id).collect::<Vec<_>>());
        // Out-of-range paging parameters are clamped.
        let clamped = store.audit_log(&AuditQuery { page: 0, per_page: 0, ..Default::default() }).await.unwrap();
        assert_eq!((clamped.page, clamped.per_page, clamped.items.len()), (1, 1, 1));
    }

    // 12 ---------------------------------------------------------------------------------------
    pub async fn concurrent_writers(store: Store) {
        store
            .create_attribute(
                &actor(),
                &NewAttribute {
                    code: "student_no".into(),
                    label_zh: "学号".into(),
                    label_en: "Student no.".into(),
                    kind: "text".into(),
                    choices: Vec::new(),
                    repeatable: false,
                    unique: true,
                    searchable: true,
                },
            )
            .await
            .unwrap();
        let base = store.create_reader(&actor(), &input(&draft("C0", "张晓明"))).await.unwrap();

        // Eight editors save the same version at once: one wins, seven are told to reload.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            let mut d = draft("C0", "张晓明");
            d.notes = Some(format!("editor {i}"));
            tasks.push(tokio::spawn(async move { store.update_reader(&actor(), base.id, 1, &input(&d)).await }));
        }
        let (mut won, mut lost) = (Vec::new(), 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => won.push(r),
                Err(StoreError::Conflict(_)) => lost += 1,
                Err(e) => {
                    panic!("a concurrent update failed with something other than a conflict: {e:?}")
                }
            }
        }
        assert_eq!((won.len(), lost), (1, 7));
        let now = store.reader(base.id).await.unwrap();
        assert_eq!(now.version, 2);
        assert_eq!(now.notes, won[0].notes);
        let trail = store.audit_trail("reader", &base.id.to_string()).await.unwrap();
        assert_eq!(trail.len(), 2, "one create and one update audited");

        // Twenty creates at once (each with a unique, searchable attribute): all succeed.
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            let mut d = draft(&format!("P{i:02}"), &format!("并发{i}"));
            d.contacts = vec![email(&format!("p{i}@x.cn"))];
            d.attributes.insert("student_no".into(), AttrInput::One(format!("SN{i:02}")));
            tasks.push(tokio::spawn(async move { store.create_reader(&actor(), &input(&d)).await }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            t.await.unwrap().unwrap_or_else(|e| panic!("concurrent create {i} failed: {e:?}"));
        }
        assert_eq!(reader_count(&store).await, 21);
        assert_eq!(store.readers(&query("并发")).await.unwrap().total, 20);
        assert_eq!(names(&store, "SN07").await, ["并发7"]);
        assert_eq!(
            store
                .audit_log(&AuditQuery { action: Some("reader.create".into()), page: 1, per_page: 1, ..Default::default() })
                .await
                .unwrap()
                .total,
            21
        );

        // Concurrent creates racing for one card number: exactly one wins, the rest conflict.
        let mut tasks = Vec::new();
        for i in 0..6 {
            let store = store.clone();
            let d = draft("RACE1", &format!("抢号{i}"));
            tasks.push(tokio::spawn(async move { store.create_reader(&actor(), &input(&d)).await }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(StoreError::Conflict(m)) => assert!(m.en.contains("RACE1")),
                Err(e) => {
                    panic!("racing create failed with something other than a conflict: {e:?}")
                }
            }
        }
        assert_eq!(ok, 1);
        assert_eq!(reader_count(&store).await, 22);
    }

    // 13 ---------------------------------------------------------------------------------------
    pub async fn interactions_are_recorded_filtered_and_paged(store: Store) {
        let lina = staff(&store, "li.na", Role::Librarian).await;
        let wang = user_with_name(&store, "wang.lei", "王磊").await;
        let as_lina = Actor::user(lina.id, "li.na", "10.0.0.1");
        let as_wang = Actor::user(wang.id, "wang.lei", "10.0.0.2");
        let a = store.create_reader(&actor(), &input(&draft("I1", "张晓明"))).await.unwrap();
        let b = store.create_reader(&actor(), &input(&draft("I2", "赵宏"))).await.unwrap();

        // Only a user records contacts; an unknown reader is not found; neither writes anything.
        let msg = other_error(store.record_interaction(&actor(), a.id, &contact(Channel::Phone, "x", "2025-03-01 09:30")).await);
        assert!(msg.contains("staff member"), "{msg}");
        not_found(store.record_interaction(&as_lina, a.id + b.id + 100, &contact(Channel::Phone, "x", "2025-03-01 09:30")).await);
        assert_eq!(rows("interactions").await, 0);
        let audits = audit_count(&store).await;

        let mut first = contact(Channel::Phone, "催还图书", "2025-03-01 09:30");
        first.direction = Direction::Outbound;
        first.notes = Some("已电话提醒，周五前归还".into());
        let created = store.record_interaction(&as_lina, a.id, &first).await.expect("record");
        assert_eq!((created.reader_id, created.reader_card_no.as_str(), created.reader_name.as_str()), (a.id, "I1", "张晓明"));
        assert_eq!((created.channel, created.direction), (Channel::Phone, Direction::Outbound));
        assert_eq!((created.subject.as_str(), created.notes.as_deref()), ("催还图书", Some("已电话提醒，周五前归还")));
        assert_eq!(created.occurred_at, "2025-03-01 09:30");
        assert_eq!((created.staff.as_str(), created.staff_name.as_str()), ("li.na", "li.na"));
        assert!(created.created_at.ends_with('Z'), "{}", created.created_at);
        let trail = store.audit_trail("interaction", &created.id.to_string()).await.unwrap();
        assert_eq!(trail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["interaction.create"]);
        assert_eq!(trail[0].actor_id, Some(lina.id));
        assert_eq!(trail[0].after.as_ref().unwrap()["subject"], "催还图书");
        assert_eq!(audit_count(&store).await, audits + 1);

        // Days 2 to 13: li.na sees reader a on even days, wang.lei reader b on odd days; e-mail
        // on days divisible by 3, visits otherwise.
        for d in 2..=13u32 {
            let (who, reader) = if d % 2 == 0 { (&as_lina, a.id) } else { (&as_wang, b.id) };
            let channel = if d % 3 == 0 { Channel::Email } else { Channel::Visit };
            let at = format!("2025-03-{d:02} {:02}:{:02}", 8 + d % 5, d * 4 % 60);
            store.record_interaction(who, reader, &contact(channel, &format!("第{d}天"), &at)).await.unwrap();
        }
        // Two contacts at the same minute come out newest recorded first.
        let same1 = store.record_interaction(&as_wang, b.id, &contact(Channel::Chat, "同一时刻一", "2025-03-14 10:00")).await.unwrap();
        let same2 = store.record_interaction(&as_wang, b.id, &contact(Channel::Chat, "同一时刻二", "2025-03-14 10:00")).await.unwrap();

        let list = |f: fn(&mut InteractionQuery)| {
            let store = store.clone();
            async move {
                let mut q = InteractionQuery { page: 1, per_page: 100, ..Default::default() };
                f(&mut q);
                store.interactions(&q).await.unwrap()
            }
        };
        let all = list(|_| {}).await;
        assert_eq!((all.total, all.items.len()), (15, 15));
        assert_eq!((all.items[0].id, all.items[1].id), (same2.id, same1.id));
        assert!(all.items.windows(2).all(|w| w[0].occurred_at >= w[1].occurred_at), "newest first");
        assert_eq!(all.items.last().unwrap(), &created);
        assert_eq!(all.items[2].subject, "第13天");
        assert_eq!(all.items[2].staff_name, "王磊");

        fn subjects(items: &[Interaction]) -> Vec<String> {
            items.iter().map(|i| i.subject.clone()).collect()
        }
        let by_reader =
            store.interactions(&InteractionQuery { reader_id: Some(a.id), page: 1, per_page: 100, ..Default::default() }).await.unwrap();
        assert_eq!(by_reader.total, 7);
        assert!(by_reader.items.iter().all(|i| i.reader_id == a.id && i.staff == "li.na"));
        assert_eq!(list(|q| q.staff = Some("WANG.LEI".into())).await.total, 8);
        assert_eq!(list(|q| q.staff = Some("nobody".into())).await.total, 0);
        assert_eq!(subjects(&list(|q| q.channel = Some(Channel::Email)).await.items), ["第12天", "第9天", "第6天", "第3天"]);
        assert_eq!(subjects(&list(|q| q.channel = Some(Channel::Phone)).await.items), ["催还图书"]);
        assert_eq!(list(|q| q.channel = Some(Channel::Training)).await.total, 0);
        // Dates are inclusive on both ends.
        let window = list(|q| (q.from, q.to) = (Some(day("2025-03-05")), Some(day("2025-03-07")))).await;
        assert_eq!(subjects(&window.items), ["第7天", "第6天", "第5天"]);
        assert_eq!(subjects(&list(|q| q.from = Some(day("2025-03-13"))).await.items), ["同一时刻二", "同一时刻一", "第13天"]);
        assert_eq!(subjects(&list(|q| q.to = Some(day("2025-03-01"))).await.items), ["催还图书"]);
        assert_eq!(list(|q| q.from = Some(day("2025-04-01"))).await.total, 0);
        let combined = list(|q| {
            q.staff = Some("li.na".into());
            q.channel = Some(Channel::Email);
            q.from = Some(day("2025-03-07"));
        })
        .await;
        assert_eq!(subjects(&combined.items), ["第12天"]);

        // Paging: disjoint pages in the order of the whole list, with the total on each.
        let page = |n: i64| {
            let store = store.clone();
            async move { store.interactions(&InteractionQuery { page: n, per_page: 6, ..Default::default() }).await.unwrap() }
        };
        let (p1, p2, p3, p4) = (page(1).await, page(2).await, page(3).await, page(4).await);
        assert_eq!((p1.items.len(), p2.items.len(), p3.items.len(), p4.items.len()), (6, 6, 3, 0));
        assert_eq!((p1.total, p2.total, p3.total, p4.total), (15, 15, 15, 15));
        assert_eq!(p1.pages(), 3);
        let paged: Vec<i64> = [&p1, &p2, &p3].iter().flat_map(|p| p.items.iter().map(|i| i.id)).collect();
        assert_eq!(paged, all.items.iter().map(|i| i.id).collect::<Vec<_>>());
        let clamped = store.interactions(&InteractionQuery { page: 0, per_page: 0, ..Default::default() }).await.unwrap();
        assert_eq!((clamped.page, clamped.per_page, clamped.items.len(), clamped.total), (1, 1, 1, 15));
        let reader_page =
            store.interactions(&InteractionQuery { reader_id: Some(b.id), page: 2, per_page: 5, ..Default::default() }).await.unwrap();
        assert_eq!((reader_page.items.len(), reader_page.total), (3, 8));
    }

    // 14 ---------------------------------------------------------------------------------------
    pub async fn tasks_are_created_listed_and_moved(store: Store) {
        let lina = staff(&store, "li.na", Role::Librarian).await;
        let wang = user_with_name(&store, "wang.lei", "王磊").await;
        let gone = staff(&store, "gone", Role::Librarian).await;
        store.set_user_active(&actor(), gone.id, false).await.unwrap();
        let as_lina = Actor::user(lina.id, "li.na", "10.0.0.1");
        let as_wang = Actor::user(wang.id, "wang.lei", "10.0.0.2");
        let r = store.create_reader(&actor(), &input(&draft("T1", "张晓明"))).await.unwrap();

        // Refusals write nothing.
        let audits = audit_count(&store).await;
        let msg = other_error(store.create_task(&actor(), None, &task_input("x", "2025-03-05", "li.na")).await);
        assert!(msg.contains("staff member"), "{msg}");
        assert_eq!(
            field_names(&invalid(store.create_task(&as_lina, None, &task_input("x", "2025-03-05", "nobody")).await)),
            set(["assignee"])
        );
        assert_eq!(
            field_names(&invalid(store.create_task(&as_lina, None, &task_input("x", "2025-03-05", "gone")).await)),
            set(["assignee"])
        );
        not_found(store.create_task(&as_lina, Some(r.id + 100), &task_input("x", "2025-03-05", "wang.lei")).await);
        assert_eq!((rows("tasks").await, rows("notifications").await, audit_count(&store).await), (0, 0, audits));

        let mut call_back = task_input("回电确认借阅", "2025-03-05", "wang.lei");
        call_back.notes = Some("读者想续借两本书".into());
        let t1 = store.create_task(&as_lina, Some(r.id), &call_back).await.expect("create");
        assert_eq!((t1.reader_id, t1.reader_card_no.as_deref(), t1.reader_name.as_deref()), (Some(r.id), Some("T1"), Some("张晓明")));
        assert_eq!((t1.title.as_str(), t1.notes.as_deref(), t1.due_on.as_str()), ("回电确认借阅", Some("读者想续借两本书"), "2025-03-05"));
        assert_eq!((t1.assignee.as_str(), t1.assignee_name.as_str(), t1.created_by.as_str()), ("wang.lei", "王磊", "li.na"));
        assert_eq!((t1.status, t1.version, t1.done_at.clone()), (TaskStatus::Open, 1, None));
        let told = store.notifications(wang.id, false, 10).await.unwrap();
        assert_eq!(told.len(), 1);
        assert!(told[0].text_zh.contains("回电确认借阅") && told[0].text_zh.contains("li.na"), "{}", told[0].text_zh);
        assert!(told[0].text_en.contains("assigned you") && told[0].text_en.contains("2025-03-05"), "{}", told[0].text_en);
        assert_eq!(told[0].link.as_deref(), Some("/tasks"));
        let t2 = store.create_task(&as_lina, None, &task_input("整理书目", "2025-03-01", "li.na")).await.unwrap();
        assert_eq!((t2.reader_id, t2.reader_name.clone()), (None, None));
        assert_eq!(store.unread_notifications(lina.id).await.unwrap(), 0, "nobody is told of their own task");
        let t3 = store.create_task(&as_wang, Some(r.id), &task_input("续借提醒", "2025-03-10", "LI.NA")).await.unwrap();
        assert_eq!(t3.assignee, "li.na");
        assert_eq!(store.unread_notifications(lina.id).await.unwrap(), 1);
        assert_eq!(store.task(t1.id).await.unwrap(), t1);
        not_found(store.task(t3.id + 100).await);
        let trail = store.audit_trail("task", &t1.id.to_string()).await.unwrap();
        assert_eq!(trail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["task.create"]);

        let ids = |f: fn(&mut TaskQuery)| {
            let store = store.clone();
            async move {
                let mut q = TaskQuery { page: 1, per_page: 100, ..Default::default() };
                f(&mut q);
                store.tasks(&q).await.unwrap().items.into_iter().map(|t| t.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(ids(|_| {}).await, [t2.id, t1.id, t3.id], "earliest due first");
        assert_eq!(ids(|q| q.assignee = Some("wang.lei".into())).await, [t1.id]);
        assert_eq!(ids(|q| q.assignee = Some(" Li.Na ".into())).await, [t2.id, t3.id]);
        assert_eq!(ids(|q| q.assignee = Some("nobody".into())).await, Vec::<i64>::new());
        let by_reader = store.tasks(&TaskQuery { reader_id: Some(r.id), page: 1, per_page: 100, ..Default::default() }).await.unwrap();
        assert_eq!(by_reader.items.iter().map(|t| t.id).collect::<Vec<_>>(), [t1.id, t3.id]);
        assert_eq!(ids(|q| q.overdue_on = Some(day("2025-03-06"))).await, [t2.id, t1.id]);
        assert_eq!(ids(|q| q.overdue_on = Some(day("2025-03-05"))).await, [t2.id], "due today is not overdue");
        assert_eq!(ids(|q| q.overdue_on = Some(day("2025-03-01"))).await, Vec::<i64>::new());
        assert_eq!(ids(|q| q.status = Some(TaskStatus::Open)).await.len(), 3);
        let p1 = store.tasks(&TaskQuery { page: 1, per_page: 2, ..Default::default() }).await.unwrap();
        let p2 = store.tasks(&TaskQuery { page: 2, per_page: 2, ..Default::default() }).await.unwrap();
        assert_eq!((p1.items.len(), p2.items.len(), p1.total, p2.total), (2, 1, 3, 3));
        assert_eq!(p2.items[0].id, t3.id);

        // Every transition: the legal ones move the task, the rest change nothing.
        let id1 = t1.id;
        let refused = |status: TaskStatus, version: i64, expected: &'static str| {
            let store = store.clone();
            let as_lina = as_lina.clone();
            async move {
                let before = store.task(id1).await.unwrap();
                let audits = audit_count(&store).await;
                let msg = conflict(store.set_task_status(&as_lina, id1, status, version).await);
                assert!(msg.contains(expected), "{msg} should say {expected}");
                assert_eq!(store.task(id1).await.unwrap(), before, "a refused change changes nothing");
                assert_eq!(audit_count(&store).await, audits);
            }
        };
        let moved = |status: TaskStatus, version: i64| {
            let store = store.clone();
            let as_lina = as_lina.clone();
            async move {
                let t: Task = store.set_task_status(&as_lina, id1, status, version).await.unwrap();
                assert_eq!((t.status, t.version), (status, version + 1));
                assert_eq!(t.done_at.is_some(), status == TaskStatus::Done);
                assert_eq!(store.task(id1).await.unwrap(), t);
                t
            }
        };
        refused(TaskStatus::Done, 7, "version 1").await;
        refused(TaskStatus::Open, 1, "from open to open").await;
        let done = moved(TaskStatus::Done, 1).await;
        assert_eq!(ids(|q| q.overdue_on = Some(day("2025-03-06"))).await, [t2.id], "a done task is not overdue");
        assert_eq!(ids(|q| q.status = Some(TaskStatus::Done)).await, [t1.id]);
        refused(TaskStatus::Cancelled, 2, "from done to cancelled").await;
        refused(TaskStatus::Done, 2, "from done to done").await;
        refused(TaskStatus::Open, 1, "version 2").await;
        let reopened = moved(TaskStatus::Open, 2).await;
        assert_eq!(reopened.done_at, None);
        assert_eq!((reopened.title.clone(), reopened.created_at.clone()), (done.title.clone(), done.created_at.clone()));
        moved(TaskStatus::Cancelled, 3).await;
        refused(TaskStatus::Done, 4, "from cancelled to done").await;
        refused(TaskStatus::Cancelled, 4, "from cancelled to cancelled").await;
        assert_eq!(ids(|q| q.status = Some(TaskStatus::Cancelled)).await, [t1.id]);
        moved(TaskStatus::Open, 4).await;
        refused(TaskStatus::Done, 4, "version 5").await;
        not_found(store.set_task_status(&as_lina, t3.id + 100, TaskStatus::Done, 1).await);
        // A conflict speaks both languages.
        match store.set_task_status(&as_lina, t1.id, TaskStatus::Open, 5).await {
            Err(StoreError::Conflict(m)) => assert!(m.zh.contains("待办"), "{}", m.zh),
            other => panic!("expected a conflict, got {other:?}"),
        }

        let trail = store.audit_trail("task", &t1.id.to_string()).await.unwrap();
        assert_eq!(
            trail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["task.create", "task.status", "task.status", "task.status", "task.status"]
        );
        assert_eq!(
            (trail[1].before.as_ref().unwrap()["status"].as_str(), trail[1].after.as_ref().unwrap()["status"].as_str()),
            (Some("open"), Some("done"))
        );
        assert_eq!(trail[3].after.as_ref().unwrap()["status"], "cancelled");
        assert_eq!(trail[1].actor_id, Some(lina.id));
    }

    // 15 ---------------------------------------------------------------------------------------
    pub async fn hand_over_moves_readers_in_one_transaction(store: Store) {
        let lina = staff(&store, "li.na", Role::Librarian).await;
        let wang = user_with_name(&store, "wang.lei", "王磊").await;
        let zhao = staff(&store, "zhao", Role::Librarian).await;
        let gone = staff(&store, "gone", Role::Librarian).await;
        store.set_user_active(&actor(), gone.id, false).await.unwrap();
        let as_wang = Actor::user(wang.id, "wang.lei", "10.0.0.2");
        let mut readers = Vec::new();
        for (i, owner) in [None, Some("zhao"), None, Some("li.na")].into_iter().enumerate() {
            let mut d = draft(&format!("H{i}"), &format!("移交{i}"));
            d.owner = owner.map(String::from);
            readers.push(store.create_reader(&actor(), &input(&d)).await.unwrap());
        }
        let [r0, r1, r2, r3] = [readers[0].id, readers[1].id, readers[2].id, readers[3].id];

        let n = store.hand_over(&as_wang, &[r0, r1, r2, r3, r0], Some(" LI.NA "), " 毕业离校 ").await.expect("hand over");
        assert_eq!(n, 3, "the reader already with li.na is skipped, the repeated one counted once");
        for id in [r0, r1, r2] {
            let r = store.reader(id).await.unwrap();
            assert_eq!((r.owner.as_deref(), r.version), (Some("li.na"), 2), "{}", r.card_no);
            assert!(r.updated_at > readers[0].updated_at);
        }
        assert_eq!(store.reader(r3).await.unwrap(), readers[3], "untouched");
        let history = store.owner_history(r1).await.unwrap();
        assert_eq!(history.len(), 1);
        let h = &history[0];
        assert_eq!((h.reader_id, h.from_owner.as_deref(), h.to_owner.as_deref()), (r1, Some("zhao"), Some("li.na")));
        assert_eq!((h.reason.as_str(), h.by.as_str()), ("毕业离校", "wang.lei"));
        assert_eq!(store.owner_history(r0).await.unwrap()[0].from_owner, None);
        assert!(store.owner_history(r3).await.unwrap().is_empty());
        let handovers = store
            .audit_log(&AuditQuery { action: Some("reader.handover".into()), page: 1, per_page: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(handovers.total, 3);
        assert!(handovers.items.iter().all(|e| e.actor_id == Some(wang.id) && e.summary.contains("毕业离校")));
        let trail = store.audit_trail("reader", &r1.to_string()).await.unwrap();
        let last = trail.last().unwrap();
        assert_eq!(last.action, "reader.handover");
        assert_eq!(last.before.as_ref().unwrap()["owner"], "zhao");
        assert_eq!(last.after.as_ref().unwrap()["owner"], "li.na");
        assert_eq!(last.changed_fields(), ["owner"]);
        let told = store.notifications(lina.id, false, 10).await.unwrap();
        assert_eq!(told.len(), 1, "one notification for the whole hand-over");
        assert_eq!(told[0].text_zh, "王磊 把 3 位读者移交给你：毕业离校");
        assert_eq!(told[0].text_en, "王磊 handed 3 readers over to you: 毕业离校");
        assert_eq!(told[0].link.as_deref(), Some("/readers?owner=li.na"));
        // Someone editing the version they loaded before the hand-over is told to reload.
        conflict(store.update_reader(&actor(), r0, 1, &input(&draft("H0", "移交0"))).await);
        assert_eq!(
            store.readers(&ReaderQuery { owner: Some("li.na".into()), page: 1, per_page: 10, ..Default::default() }).await.unwrap().total,
            4
        );

        // Refusals write nothing at all.
        let snapshot = || {
            let store = store.clone();
            async move {
                let mut versions = Vec::new();
                for id in [r0, r1, r2, r3] {
                    let r = store.reader(id).await.unwrap();
                    versions.push((r.owner, r.version));
                }
                (versions, audit_count(&store).await, rows("owner_history").await, rows("notifications").await)
            }
        };
        let before = snapshot().await;
        assert_eq!(field_names(&invalid(store.hand_over(&as_wang, &[r0, r1], Some("nobody"), "调岗").await)), set(["owner"]));
        assert_eq!(field_names(&invalid(store.hand_over(&as_wang, &[r0, r1], Some("gone"), "调岗").await)), set(["owner"]));
        assert_eq!(field_names(&invalid(store.hand_over(&as_wang, &[r0, r1], Some("zhao"), "  ").await)), set(["reason"]));
        not_found(store.hand_over(&as_wang, &[r0, r1, r3 + 100], Some("zhao"), "调岗").await);
        assert_eq!(snapshot().await, before);
        assert_eq!(store.hand_over(&as_wang, &[r0, r1], Some("li.na"), "再次").await.unwrap(), 0, "nothing to move");
        assert_eq!(store.hand_over(&as_wang, &[], Some("li.na"), "空").await.unwrap(), 0);
        assert_eq!(snapshot().await, before);

        // Leaving readers without an owner, and a hand-over from the command line.
        assert_eq!(store.hand_over(&as_wang, &[r0], None, "调岗").await.unwrap(), 1);
        let r = store.reader(r0).await.unwrap();
        assert_eq!((r.owner, r.version), (None, 3));
        let history = store.owner_history(r0).await.unwrap();
        assert_eq!(history.iter().map(|h| h.to_owner.clone()).collect::<Vec<_>>(), [Some("li.na".to_string()), None]);
        assert!(history[0].id < history[1].id);
        assert_eq!(rows("notifications").await, before.3, "nobody to tell");
        assert_eq!(store.hand_over(&actor(), &[r2], Some("zhao"), "负责人调整").await.unwrap(), 1);
        assert_eq!(store.owner_history(r2).await.unwrap()[1].by, "test");
        let told = store.notifications(zhao.id, true, 10).await.unwrap();
        assert_eq!(told.len(), 1);
        assert_eq!(
            (told[0].text_zh.as_str(), told[0].text_en.as_str()),
            ("test 把 1 位读者移交给你：负责人调整", "test handed 1 reader over to you: 负责人调整")
        );
        assert_eq!(told[0].link.as_deref(), Some("/readers?owner=zhao"));
    }

    // 16 ---------------------------------------------------------------------------------------
    pub async fn reminders_are_sent_once_per_day(store: Store) {
        let lina = staff(&store, "li.na", Role::Librarian).await;
        let wang = user_with_name(&store, "wang.lei", "王磊").await;
        let as_lina = Actor::user(lina.id, "li.na", "10.0.0.1");
        let overdue = store.create_task(&as_lina, None, &task_input("逾期任务", "2025-02-20", "wang.lei")).await.unwrap();
        let today_wang = store.create_task(&as_lina, None, &task_input("今天到期", "2025-03-01", "wang.lei")).await.unwrap();
        store.create_task(&as_lina, None, &task_input("自己的任务", "2025-03-01", "li.na")).await.unwrap();
        store.create_task(&as_lina, None, &task_input("以后的任务", "2025-03-05", "wang.lei")).await.unwrap();
        let cancelled = store.create_task(&as_lina, None, &task_input("取消的任务", "2025-02-25", "wang.lei")).await.unwrap();
        store.set_task_status(&as_lina, cancelled.id, TaskStatus::Cancelled, 1).await.unwrap();
        store.mark_notifications_read(wang.id, None).await.unwrap();

        assert_eq!(store.remind_due_tasks(today()).await.unwrap(), 3);
        let wang_told = store.notifications(wang.id, true, 10).await.unwrap();
        assert_eq!(wang_told.len(), 2);
        assert!(wang_told.iter().any(|n| n.text_zh.contains("逾期") && n.text_zh.contains("逾期任务") && n.text_en.contains("overdue")));
        assert!(wang_told.iter().any(|n| n.text_zh.contains("今天到期") && n.text_en.contains("due today")));
        assert!(wang_told.iter().all(|n| n.link.as_deref() == Some("/tasks")));
        assert_eq!(store.unread_notifications(lina.id).await.unwrap(), 1);
        assert_eq!(store.remind_due_tasks(today()).await.unwrap(), 0, "once a day");
        assert_eq!(store.remind_due_tasks(day("2025-02-28")).await.unwrap(), 0, "an earlier day sends nothing again");
        assert_eq!(store.unread_notifications(wang.id).await.unwrap(), 2);
        let reminds = |store: Store| async move {
            store
                .audit_log(&AuditQuery { action: Some("task.remind".into()), page: 1, per_page: 1, ..Default::default() })
                .await
                .unwrap()
                .total
        };
        assert_eq!(reminds(store.clone()).await, 1, "one audit entry per run that sent something");

        // The next day, what is still open is reminded again.
        store.set_task_status(&as_lina, overdue.id, TaskStatus::Done, 1).await.unwrap();
        assert_eq!(store.remind_due_tasks(day("2025-03-02")).await.unwrap(), 2);
        assert_eq!(store.remind_due_tasks(day("2025-03-02")).await.unwrap(), 0);
        assert_eq!(store.unread_notifications(wang.id).await.unwrap(), 3);
        store.set_task_status(&as_lina, today_wang.id, TaskStatus::Done, 1).await.unwrap();

        // Several servers at once: each due task is reminded exactly once.
        for i in 0..12 {
            let who = if i % 3 == 0 { "li.na" } else { "wang.lei" };
            store.create_task(&as_lina, None, &task_input(&format!("批量{i}"), &format!("2025-03-{:02}", 3 + i % 5), who)).await.unwrap();
        }
        let open_due = store
            .tasks(&TaskQuery {
                status: Some(TaskStatus::Open),
                overdue_on: Some(day("2025-03-11")),
                page: 1,
                per_page: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .items;
        assert_eq!(open_due.len(), 2 + 12);
        let expect_wang = open_due.iter().filter(|t| t.assignee == "wang.lei").count() as i64;
        let expect_lina = open_due.len() as i64 - expect_wang;
        store.mark_notifications_read(wang.id, None).await.unwrap();
        store.mark_notifications_read(lina.id, None).await.unwrap();
        let second = Store::open(&common::db_url()).await.expect("a second server");
        let mut runs = Vec::new();
        for i in 0..4 {
            let s = if i % 2 == 0 { store.clone() } else { second.clone() };
            runs.push(tokio::spawn(async move { s.remind_due_tasks(day("2025-03-10")).await }));
        }
        let mut sent = 0;
        for r in runs {
            sent += r.await.unwrap().expect("a concurrent reminder run");
        }
        second.close().await;
        assert_eq!(sent, open_due.len(), "every due task reminded exactly once");
        assert_eq!(store.unread_notifications(wang.id).await.unwrap(), expect_wang);
        assert_eq!(store.unread_notifications(lina.id).await.unwrap(), expect_lina);
        let reminded = common::raw_count("SELECT COUNT(*) FROM tasks WHERE reminded_on = '2025-03-10' AND id > $1", 0).await;
        assert_eq!(reminded, open_due.len() as i64);
        assert_eq!(store.remind_due_tasks(day("2025-03-10")).await.unwrap(), 0);
    }

    // 17 ---------------------------------------------------------------------------------------
    pub async fn notifications_are_read_and_unread(store: Store) {
        let lina = staff(&store, "li.na", Role::Librarian).await;
        let wang = user_with_name(&store, "wang.lei", "王磊").await;
        let as_wang = Actor::user(wang.id, "wang.lei", "10.0.0.2");
        let as_lina = Actor::user(lina.id, "li.na", "10.0.0.1");
        for i in 0..3 {
            store.create_task(&as_wang, None, &task_input(&format!("任务{i}"), "2025-03-05", "li.na")).await.unwrap();
        }
        assert_eq!(store.unread_notifications(lina.id).await.unwrap(), 3);
        assert_eq!(store.unread_notifications(wang.id).await.unwrap(), 0);
        let all = store.notifications(lina.id, false, 10).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert!(all[0].text_zh.contains("任务2") && all[0].text_zh.starts_with("王磊"), "{}", all[0].text_zh);
        assert!(all.iter().all(|n| n.read_at.is_none() && n.created_at.ends_with('Z')));
        assert_eq!(store.notifications(lina.id, false, 2).await.unwrap(), all[..2].to_vec());

        store.mark_notifications_read(lina.id, Some(all[1].id)).await.unwrap();
        assert_eq!(store.unread_notifications(lina.id).await.unwrap(), 2);
        let unread = store.notifications(lina.id, true, 10).await.unwrap();
        assert_eq!(unread.iter().map(|n| n.id).collect::<Vec<_>>(), [all[0].id, all[2].id]);
        let read = store.notifications(lina.id, false, 10).await.unwrap();
        let read_at = read[1].read_at.clone().expect("marked read");
        store.mark_notifications_read(lina.id, Some(all[1].id)).await.unwrap();
        assert_eq!(store.notifications(lina.id, false, 10).await.unwrap()[1].read_at.as_deref(), Some(read_at.as_str()), "read once");
        not_found(store.mark_notifications_read(wang.id, Some(all[0].id)).await);
        not_found(store.mark_notifications_read(lina.id, Some(all[0].id + 100)).await);
        assert_eq!(store.unread_notifications(lina.id).await.unwrap(), 2, "another user cannot mark them");

        store.create_task(&as_lina, None, &task_input("给王磊", "2025-03-05", "wang.lei")).await.unwrap();
        store.mark_notifications_read(lina.id, None).await.unwrap();
        assert_eq!(store.unread_notifications(lina.id).await.unwrap(), 0);
        assert!(store.notifications(lina.id, true, 10).await.unwrap().is_empty());
        assert_eq!(store.notifications(lina.id, false, 10).await.unwrap().len(), 3);
        assert_eq!(store.unread_notifications(wang.id).await.unwrap(), 1, "only the user's own");
        store.mark_notifications_read(lina.id, None).await.unwrap();
    }

    // 18 ---------------------------------------------------------------------------------------
    pub async fn deleting_a_reader_removes_its_tracking(store: Store) {
        let lina = staff(&store, "li.na", Role::Librarian).await;
        staff(&store, "wang.lei", Role::Librarian).await;
        let as_lina = Actor::user(lina.id, "li.na", "10.0.0.1");
        let r = store.create_reader(&actor(), &input(&draft("X1", "张晓明"))).await.unwrap();
        let keep = store.create_reader(&actor(), &input(&draft("X2", "赵宏"))).await.unwrap();
        for (reader, subject) in [(r.id, "一"), (r.id, "二"), (keep.id, "三")] {
            store.record_interaction(&as_lina, reader, &contact(Channel::Visit, subject, "2025-03-01 10:00")).await.unwrap();
        }
        store.create_task(&as_lina, Some(r.id), &task_input("关于要删的读者", "2025-03-05", "wang.lei")).await.unwrap();
        let kept_task = store.create_task(&as_lina, Some(keep.id), &task_input("关于留下的读者", "2025-03-05", "wang.lei")).await.unwrap();
        let free_task = store.create_task(&as_lina, None, &task_input("与读者无关", "2025-03-06", "wang.lei")).await.unwrap();
        store.hand_over(&as_lina, &[r.id, keep.id], Some("wang.lei"), "调岗").await.unwrap();

        store.delete_reader(&actor(), r.id, None).await.expect("delete");
        let left = store.interactions(&InteractionQuery { page: 1, per_page: 10, ..Default::default() }).await.unwrap();
        assert_eq!(left.items.iter().map(|i| i.subject.as_str()).collect::<Vec<_>>(), ["三"]);
        assert_eq!(
            store
                .interactions(&InteractionQuery { reader_id: Some(r.id), page: 1, per_page: 10, ..Default::default() })
                .await
                .unwrap()
                .total,
            0
        );
        let tasks = store.tasks(&TaskQuery { page: 1, per_page: 10, ..Default::default() }).await.unwrap();
        assert_eq!(tasks.items.iter().map(|t| t.id).collect::<Vec<_>>(), [kept_task.id, free_task.id]);
        for table in ["interactions", "tasks", "owner_history"] {
            let left = common::raw_count(&format!("SELECT COUNT(*) FROM {table} WHERE reader_id = $1"), r.id).await;
            assert_eq!(left, 0, "{table} rows left behind");
        }
        assert!(store.owner_history(r.id).await.unwrap().is_empty());
        assert_eq!(store.owner_history(keep.id).await.unwrap().len(), 1);
        // The audit log keeps what happened.
        let actions: Vec<String> = store.audit_trail("reader", &r.id.to_string()).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["reader.create", "reader.handover", "reader.delete"]);
    }
}

mod case_scenario {
    use super::*;
    use lector_store::cases::{Case, CaseQuery, CaseSource};
    use lector_store::config::NamedInput;
    use lector_store::domain::case::{
        CaseAction, CaseInput, CaseKind, CaseStatus, Priority, RatingDraft, ServiceLevels, TriageOutcome, WorkCalendar, Workflow,
    };

    fn case_input(kind: CaseKind, subject: &str) -> CaseInput {
        CaseInput {
            kind,
            subject: subject.into(),
            body: format!("{subject}：详细情况"),
            card_no: None,
            contact_name: Some("张三".into()),
            contact: Some("13800138000".into()),
        }
    }

    fn accept(category: Option<&str>, priority: Priority) -> CaseAction {
        CaseAction::Triage {
            outcome: TriageOutcome::Accepted,
            category: category.map(String::from),
            priority,
            duplicate_of: None,
            comment: None,
        }
    }

    fn assign(dept: &str) -> CaseAction {
        CaseAction::Assign { department: dept.into(), comment: None }
    }

    fn propose() -> CaseAction {
        CaseAction::Propose { solution: "增加静音区标识并加强巡查".into() }
    }

    fn resolve() -> CaseAction {
        CaseAction::Resolve { reply: "已在三楼设置静音区，欢迎使用！".into() }
    }

    fn rating(s: u8, r: Option<u8>) -> RatingDraft {
        RatingDraft { satisfaction: s, recommend: r, comment: None }
    }

    fn local_now() -> chrono::NaiveDateTime {
        chrono::Local::now().naive_local()
    }

    async fn dept(store: &Store, code: &str) {
        store
            .create_department(&actor(), &NamedInput { code: code.into(), name_zh: format!("{code}部"), name_en: code.into() })
            .await
            .unwrap();
    }

    async fn member(store: &Store, username: &str, role: Role, department: Option<&str>) -> Actor {
        let u = store
            .create_user(
                &actor(),
                NewUser {
                    username: username.into(),
                    display_name: String::new(),
                    role,
                    department: department.map(String::from),
                    password: format!("{username}-password-1"),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("create user {username}: {e}"));
        Actor::user(u.id, username, "10.0.0.1")
    }

    async fn act(store: &Store, who: &Actor, case: &Case, action: CaseAction) -> Case {
        store.act_on_case(who, case.id, &action, case.version).await.unwrap_or_else(|e| panic!("{} on {}: {e}", action.code(), case.number))
    }

    async fn file(store: &Store, kind: CaseKind, subject: &str) -> (Case, String) {
        let (c, token) = store.create_case(&actor(), &case_input(kind, subject), CaseSource::Portal, None).await.unwrap();
        (c, token.expect("a portal case has a token"))
    }

    /// The case, its events and the audit log size: what a refused change must leave alone.
    async fn snapshot(store: &Store, id: i64) -> (Case, usize, i64) {
        (store.case(id).await.unwrap(), store.case_events(id).await.unwrap().len(), audit_count(store).await)
    }

    fn q() -> CaseQuery {
        CaseQuery { page: 1, per_page: 50, ..Default::default() }
    }

    async fn numbers(store: &Store, query: CaseQuery) -> Vec<String> {
        store.cases(&query).await.unwrap().items.into_iter().map(|c| c.subject).collect()
    }

    // C1 ---------------------------------------------------------------------------------------
    pub async fn cases_are_filed_from_staff_portal_and_api(store: Store) {
        let reader = store.create_reader(&actor(), &input(&draft("R2024001", "张晓明"))).await.unwrap();
        let clerk = member(&store, "li.na", Role::Librarian, None).await;
        let mut staff_input = case_input(CaseKind::Inquiry, "借书期限");
        staff_input.card_no = Some("R2024001".into());
        let (by_staff, no_token) = store.create_case(&clerk, &staff_input, CaseSource::Staff, None).await.unwrap();
        assert!(no_token.is_none());
        assert_eq!(by_staff.reader_id, Some(reader.id));
        assert_eq!((by_staff.reader_card_no.as_deref(), by_staff.reader_name.as_deref()), (Some("R2024001"), Some("张晓明")));
        let year = local_now().format("%Y").to_string();
        assert_eq!(by_staff.number, format!("GD{year}-{:06}", by_staff.id));
        assert_eq!(
            (by_staff.status, by_staff.priority, by_staff.source, by_staff.version),
            (CaseStatus::Received, Priority::Normal, CaseSource::Staff, 1)
        );

        // An unknown card number is kept but links nobody.
        let mut unknown = case_input(CaseKind::Praise, "感谢馆员");
        unknown.card_no = Some("X9".into());
        let (api_case, t) = store.create_case(&actor(), &unknown, CaseSource::Api, None).await.unwrap();
        assert!(t.is_none());
        assert_eq!((api_case.reader_id, api_case.reader_card_no.as_deref()), (None, Some("X9")));

        // The portal: a token, and the same form twice makes one case.
        let portal = Actor::system("portal");
        let form = case_input(CaseKind::Suggestion, "延长开放时间");
        let (first, token) = store.create_case(&portal, &form, CaseSource::Portal, Some("form-123")).await.unwrap();
        let token = token.expect("token");
        assert_eq!(token.len(), 64);
        let (again, second_token) = store.create_case(&portal, &form, CaseSource::Portal, Some("form-123")).await.unwrap();
        assert_eq!((again.id, second_token), (first.id, None));
        assert_eq!(common::raw_count("SELECT COUNT(*) FROM cases WHERE id > $1", 0).await, 3);
        // Concurrent double submits still make one case.
        let mut handles = Vec::new();
        for _ in 0..4 {
            let (s, f) = (store.clone(), form.clone());
            handles.push(tokio::spawn(async move {
                s.create_case(&Actor::system("portal"), &f, CaseSource::Portal, Some("form-456")).await.unwrap().0.id
            }));
        }
        let mut ids = Vec::new();
        for h in handles {
            ids.push(h.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(common::raw_count("SELECT COUNT(*) FROM cases WHERE id > $1", 0).await, 4);

        // Only the hash of the token is stored; the token finds the case, a forged one nothing.
        assert_eq!(common::raw_count("SELECT COUNT(*) FROM cases WHERE token_hash IS NOT NULL AND id > $1", 0).await, 2);
        let pool = common::raw_pool().await;
        let stored: Option<String> =
            sqlx::query_scalar("SELECT token_hash FROM cases WHERE id = $1").bind(first.id).fetch_one(&pool).await.unwrap();
        pool.close().await;
        assert_ne!(stored.as_deref(), Some(token.as_str()));
        assert_eq!(store.case_by_token(&token).await.unwrap().id, first.id);
        not_found(store.case_by_token(&"0".repeat(64)).await);
        not_found(store.case_by_token("not-a-token").await);

        let events = store.case_events(first.id).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].action.as_str(), events[0].actor.as_str(), events[0].from, events[0].to),
            ("create", "portal", None, CaseStatus::Received)
        );
        let trail = store.audit_trail("case", &first.id.to_string()).await.unwrap();
        assert_eq!(trail.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), ["case.create"]);

        // On the portal a card number is a claim: a stranger typing it links nobody (so their
        // case and contact never show on that reader's portal page); the contact the library has
        // on file for the card, or the reader signed in, links the reader.
        let mut claim = case_input(CaseKind::Complaint, "冒用证号");
        claim.card_no = Some("R2024001".into());
        claim.contact = Some("stranger@example.com".into());
        let (stranger, _) = store.create_case(&portal, &claim, CaseSource::Portal, None).await.unwrap();
        assert_eq!((stranger.reader_id, stranger.reader_card_no.as_deref()), (None, Some("R2024001")));
        let mut with_contact = store.reader(reader.id).await.unwrap();
        let draft_with_email = ReaderDraft { contacts: vec![email("zxm@pku.edu.cn")], ..draft("R2024001", "张晓明") };
        with_contact = store.update_reader(&actor(), reader.id, with_contact.version, &input(&draft_with_email)).await.unwrap();
        assert_eq!(with_contact.contacts.len(), 1);
        claim.contact = Some("ZXM@pku.edu.cn".into());
        let (proven, _) = store.create_case(&portal, &claim, CaseSource::Portal, None).await.unwrap();
        assert_eq!(proven.reader_id, Some(reader.id));
        claim.contact = None;
        let (signed_in, _) = store.create_case(&Actor::reader("R2024001"), &claim, CaseSource::Portal, None).await.unwrap();
        assert_eq!(signed_in.reader_id, Some(reader.id));
        let (other_card, _) = store.create_case(&Actor::reader("R0000000"), &claim, CaseSource::Portal, None).await.unwrap();
        assert_eq!(other_card.reader_id, None, "a session for another card proves nothing about this one");
        let pool = common::raw_pool().await;
        for c in [stranger.id, proven.id, signed_in.id, other_card.id] {
            sqlx::query("DELETE FROM cases WHERE id = $1").bind(c).execute(&pool).await.unwrap();
        }
        pool.close().await;

        // A signed-in reader sees their own cases.
        let mine = store.cases(&CaseQuery { reader_id: Some(reader.id), ..q() }).await.unwrap();
        assert_eq!(mine.items.iter().map(|c| c.id).collect::<Vec<_>>(), [by_staff.id]);
        // Newest first; an over-long idempotency key is refused.
        assert_eq!(store.cases(&q()).await.unwrap().items[0].id, ids[0]);
        let errs = invalid(store.create_case(&portal, &form, CaseSource::Portal, Some(&"k".repeat(201))).await);
        assert_eq!(field_names(&errs), set(["idempotency_key"]));
    }

    // C2 ---------------------------------------------------------------------------------------
    pub async fn the_default_case_path_with_events_and_audit(store: Store) {
        dept(&store, "circulation").await;
        let clerk = member(&store, "li.na", Role::Librarian, None).await;
        let worker = member(&store, "zhao", Role::Department, Some("circulation")).await;
        let leader = member(&store, "boss", Role::Leader, None).await;
        let noise = lector_store::cases::CaseCategory {
            kind: CaseKind::Complaint,
            code: "noise".into(),
            name_zh: "噪音".into(),
            name_en: "Noise".into(),
        };
        store.create_case_category(&actor(), &noise).await.unwrap();
        conflict(store.create_case_category(&actor(), &noise).await);
        assert_eq!(store.case_categories(Some(CaseKind::Complaint)).await.unwrap(), vec![noise.clone()]);
        assert!(store.case_categories(Some(CaseKind::Inquiry)).await.unwrap().is_empty());

        let (c, token) = file(&store, CaseKind::Complaint, "自习室太吵").await;
        let before_triage = local_now();
        // The kind has categories, so accepting needs one.
        assert_eq!(field_names(&invalid(store.act_on_case(&clerk, c.id, &accept(None, Priority::High), 1).await)), set(["category"]));
        let c = act(&store, &clerk, &c, accept(Some("noise"), Priority::High)).await;
        assert_eq!((c.status, c.priority, c.category.as_deref(), c.version), (CaseStatus::Triaged, Priority::High, Some("noise"), 2));
        assert!(c.first_response_at.is_some());
        let due = chrono::NaiveDateTime::parse_from_str(c.due_at.as_deref().unwrap(), "%Y-%m-%d %H:%M").unwrap();
        let cal = WorkCalendar::standard();
        let lo = cal.add_working_hours(before_triage - chrono::Duration::minutes(1), 16);
        let hi = cal.add_working_hours(local_now() + chrono::Duration::minutes(1), 16);
        assert!(lo <= due && due <= hi, "{lo} <= {due} <= {hi}");
        let first_response = c.first_response_at.clone();

        let c = act(&store, &clerk, &c, assign("circulation")).await;
        assert_eq!((c.status, c.department.as_deref(), c.assignee.as_deref()), (CaseStatus::Assigned, Some("circulation"), None));
        let c = act(&store, &worker, &c, CaseAction::Claim).await;
        assert_eq!(c.assignee.as_deref(), Some("zhao"));
        let c = act(&store, &worker, &c, propose()).await;
        assert_eq!((c.status, c.proposal.as_deref()), (CaseStatus::AwaitingApproval, Some("增加静音区标识并加强巡查")));
        let c = act(&store, &leader, &c, CaseAction::RejectProposal { comment: "请先评估成本".into() }).await;
        assert_eq!(c.status, CaseStatus::Assigned);
        let c = act(&store, &worker, &c, propose()).await;
        let c = act(&store, &leader, &c, CaseAction::Approve { comment: Some("同意".into()) }).await;
        assert_eq!(c.status, CaseStatus::InProgress);
        // Rating before resolution is refused.
        conflict(store.rate_case(&token, &rating(5, Some(10))).await);
        let c = act(&store, &worker, &c, resolve()).await;
        assert_eq!((c.status, c.reply.as_deref()), (CaseStatus::Resolved, Some("已在三楼设置静音区，欢迎使用！")));
        assert!(c.resolved_at.is_some());
        assert_eq!(c.first_response_at, first_response, "the first response stays the first");

        // The reader rates through the token: the case closes. Twice is a conflict.
        let invalid_rating = invalid(store.rate_case(&token, &rating(6, None)).await);
        assert_eq!(field_names(&invalid_rating), set(["satisfaction"]));
        not_found(store.rate_case(&"ab".repeat(32), &rating(4, None)).await);
        let rated =
            store.rate_case(&token, &RatingDraft { satisfaction: 4, recommend: Some(9), comment: Some("满意".into()) }).await.unwrap();
        assert_eq!(rated.status, CaseStatus::Closed);
        assert!(rated.closed_at.is_some());
        let r = rated.rating.clone().unwrap();
        assert_eq!((r.satisfaction, r.recommend, r.comment.as_deref()), (4, Some(9), Some("满意")));
        let twice = conflict(store.rate_case(&token, &rating(5, None)).await);
        assert!(twice.contains("already been rated"), "{twice}");
        // The token still works after closing (for 180 days).
        assert_eq!(store.case_by_token(&token).await.unwrap().status, CaseStatus::Closed);

        // Not satisfied after all: reopen goes back to the department, the rating is cleared.
        let reopened = act(&store, &clerk, &rated, CaseAction::Reopen { reason: "还是很吵".into() }).await;
        assert_eq!(
            (reopened.status, reopened.department.as_deref(), reopened.rating.clone(), reopened.closed_at.clone()),
            (CaseStatus::Assigned, Some("circulation"), None, None)
        );

        let events = store.case_events(c.id).await.unwrap();
        let steps: Vec<(&str, Option<CaseStatus>, CaseStatus)> = events.iter().map(|e| (e.action.as_str(), e.from, e.to)).collect();
        use CaseStatus::*;
        assert_eq!(
            steps,
            [
                ("create", None, Received),
                ("triage", Some(Received), Triaged),
                ("assign", Some(Triaged), Assigned),
                ("claim", Some(Assigned), Assigned),
                ("propose", Some(Assigned), AwaitingApproval),
                ("reject_proposal", Some(AwaitingApproval), Assigned),
                ("propose", Some(Assigned), AwaitingApproval),
                ("approve", Some(AwaitingApproval), InProgress),
                ("resolve", Some(InProgress), Resolved),
                ("rate", Some(Resolved), Closed),
                ("reopen", Some(Closed), Assigned),
            ]
        );
        assert_eq!(events[5].actor, "boss");
        assert_eq!(events[5].comment.as_deref(), Some("请先评估成本"));
        assert_eq!(events[9].comment.as_deref(), Some("4/5, recommend 9/10: 满意"));
        assert!(events.windows(2).all(|w| w[0].at <= w[1].at && w[0].id < w[1].id));
        let trail: Vec<String> = store.audit_trail("case", &c.id.to_string()).await.unwrap().into_iter().map(|a| a.action).collect();
        assert_eq!(
            trail,
            [
                "case.create",
                "case.triage",
                "case.assign",
                "case.claim",
                "case.propose",
                "case.reject_proposal",
                "case.propose",
                "case.approve",
                "case.resolve",
                "case.rate",
                "case.reopen"
            ]
        );

        // A kind without approval: propose goes straight to work.
        let (i, _) = file(&store, CaseKind::Inquiry, "数据库使用").await;
        let i = act(&store, &clerk, &i, accept(None, Priority::Normal)).await;
        let i = act(&store, &clerk, &i, assign("circulation")).await;
        let i = act(&store, &worker, &i, CaseAction::Propose { solution: "电话指导".into() }).await;
        assert_eq!(i.status, CaseStatus::InProgress);
        // An admin changes the complaint workflow: no approval.
        store.set_workflow(&actor(), CaseKind::Complaint, Workflow { requires_approval: false, auto_close_days: 3 }).await.unwrap();
        assert_eq!(store.workflow(CaseKind::Complaint).await.unwrap(), Workflow { requires_approval: false, auto_close_days: 3 });
        assert_eq!(store.workflow(CaseKind::Purchase).await.unwrap(), Workflow::default_for(CaseKind::Purchase));
        let (p, _) = file(&store, CaseKind::Complaint, "空调太冷").await;
        let p = act(&store, &clerk, &p, accept(Some("noise"), Priority::Low)).await;
        let p = act(&store, &clerk, &p, assign("circulation")).await;
        assert_eq!(act(&store, &worker, &p, propose()).await.status, CaseStatus::InProgress);
        let errs =
            invalid(store.set_workflow(&actor(), CaseKind::Complaint, Workflow { requires_approval: true, auto_close_days: 400 }).await);
        assert_eq!(field_names(&errs), set(["auto_close_days"]));

        // Triage as a duplicate or out of scope closes the case at once; such a case cannot be reopened.
        let (d, _) = file(&store, CaseKind::Complaint, "自习室太吵（重复）").await;
        let dup = CaseAction::Triage {
            outcome: TriageOutcome::Duplicate,
            category: None,
            priority: Priority::Normal,
            duplicate_of: Some(c.id),
            comment: None,
        };
        let d = act(&store, &clerk, &d, dup).await;
        assert_eq!((d.status, d.duplicate_of), (CaseStatus::Closed, Some(c.id)));
        assert_eq!(
            store.case_events(d.id).await.unwrap()[1].comment.as_deref(),
            Some(format!("duplicate: duplicate of {}", c.number).as_str())
        );
        conflict(store.act_on_case(&clerk, d.id, &CaseAction::Reopen { reason: "x".into() }, d.version).await);
    }

    // C3 ---------------------------------------------------------------------------------------
    pub async fn illegal_case_moves_and_stale_versions_change_nothing(store: Store) {
        dept(&store, "circulation").await;
        dept(&store, "reference").await;
        let clerk = member(&store, "li.na", Role::Librarian, None).await;
        let outsider = member(&store, "qian", Role::Department, Some("reference")).await;
        let (c, _) = file(&store, CaseKind::Suggestion, "增加座位").await;
        let (other, _) = file(&store, CaseKind::Suggestion, "另一个").await;

        let check = |before: (Case, usize, i64)| {
            let store = store.clone();
            async move {
                let id = before.0.id;
                assert_eq!(snapshot(&store, id).await, before, "a refused change changed something");
            }
        };
        let before = snapshot(&store, c.id).await;
        // Wrong state: every action but triage from received.
        for action in [
            assign("circulation"),
            CaseAction::Claim,
            propose(),
            CaseAction::Approve { comment: None },
            resolve(),
            CaseAction::Close { comment: None },
            CaseAction::Reopen { reason: "r".into() },
        ] {
            let msg = conflict(store.act_on_case(&clerk, c.id, &action, 1).await);
            assert!(msg.contains("received"), "{msg}");
        }
        check(before.clone()).await;
        // A stale version.
        let msg = conflict(store.act_on_case(&clerk, c.id, &accept(None, Priority::Normal), 7).await);
        assert!(msg.contains("you saw version 7"), "{msg}");
        // Bad references.
        invalid(store.act_on_case(&clerk, c.id, &accept(Some("nope"), Priority::Normal), 1).await);
        let to_self = CaseAction::Triage {
            outcome: TriageOutcome::Duplicate,
            category: None,
            priority: Priority::Normal,
            duplicate_of: Some(c.id),
            comment: None,
        };
        assert_eq!(field_names(&invalid(store.act_on_case(&clerk, c.id, &to_self, 1).await)), set(["duplicate_of"]));
        let to_none = CaseAction::Triage {
            outcome: TriageOutcome::Duplicate,
            category: None,
            priority: Priority::Normal,
            duplicate_of: Some(other.id + 100),
            comment: None,
        };
        invalid(store.act_on_case(&clerk, c.id, &to_none, 1).await);
        // Bad text.
        assert_eq!(
            field_names(&invalid(store.act_on_case(&clerk, c.id, &CaseAction::Propose { solution: "x".repeat(4001) }, 1).await)),
            set(["solution"])
        );
        not_found(store.act_on_case(&clerk, c.id + 100, &accept(None, Priority::Normal), 1).await);
        check(before).await;

        let c = act(&store, &clerk, &c, accept(None, Priority::Normal)).await;
        let before = snapshot(&store, c.id).await;
        assert_eq!(field_names(&invalid(store.act_on_case(&clerk, c.id, &assign("nowhere"), c.version).await)), set(["department"]));
        check(before).await;
        let c = act(&store, &clerk, &c, assign("circulation")).await;
        let before = snapshot(&store, c.id).await;
        // Approving before a proposal.
        let msg = conflict(store.act_on_case(&clerk, c.id, &CaseAction::Approve { comment: None }, c.version).await);
        assert!(msg.contains("no solution has been proposed"), "{msg}");
        // Resolving without approval, a claim from another department, a transfer to the same one.
        conflict(store.act_on_case(&clerk, c.id, &resolve(), c.version).await);
        assert_eq!(field_names(&invalid(store.act_on_case(&outsider, c.id, &CaseAction::Claim, c.version).await)), set(["assignee"]));
        invalid(store.act_on_case(&clerk, c.id, &assign("circulation"), c.version).await);
        conflict(store.act_on_case(&clerk, c.id, &propose(), c.version - 1).await);
        check(before).await;
        // Two staff race on one version: one wins, the other gets a conflict.
        let (p, t) = (propose(), assign("reference"));
        let (a, b) = tokio::join!(store.act_on_case(&clerk, c.id, &p, c.version), store.act_on_case(&clerk, c.id, &t, c.version));
        assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
        assert_eq!(store.case(c.id).await.unwrap().version, c.version + 1);
    }

    // C4 ---------------------------------------------------------------------------------------
    pub async fn case_transfer_and_queues(store: Store) {
        dept(&store, "circulation").await;
        dept(&store, "reference").await;
        let clerk = member(&store, "li.na", Role::Librarian, None).await;
        let zhao = member(&store, "zhao", Role::Department, Some("circulation")).await;
        let qian = member(&store, "qian", Role::Department, Some("reference")).await;
        let mut made = Vec::new();
        for (subject, priority) in [("普通", Priority::Normal), ("紧急", Priority::Urgent), ("低", Priority::Low), ("高", Priority::High)]
        {
            let (c, _) = file(&store, CaseKind::Complaint, subject).await;
            let c = act(&store, &clerk, &c, accept(None, priority)).await;
            made.push(act(&store, &clerk, &c, assign("circulation")).await);
        }
        let (untriaged, _) = file(&store, CaseKind::Inquiry, "未判定").await;

        // Transfer: the claim is dropped and the case lands in the other queue.
        let claimed = act(&store, &zhao, &made[0], CaseAction::Claim).await;
        let moved =
            act(&store, &zhao, &claimed, CaseAction::Assign { department: "reference".into(), comment: Some("属参考咨询".into()) }).await;
        assert_eq!((moved.status, moved.department.as_deref(), moved.assignee.as_deref()), (CaseStatus::Assigned, Some("reference"), None));
        assert_eq!(store.case_events(moved.id).await.unwrap().last().unwrap().comment.as_deref(), Some("reference: 属参考咨询"));
        let moved = act(&store, &qian, &moved, CaseAction::Claim).await;

        let circ = CaseQuery { department: Some("circulation".into()), by_due: true, ..q() };
        assert_eq!(numbers(&store, circ.clone()).await, ["紧急", "高", "低"], "earliest deadline first");
        assert_eq!(numbers(&store, CaseQuery { department: Some("reference".into()), ..q() }).await, ["普通"]);
        assert_eq!(numbers(&store, CaseQuery { assignee: Some("QIAN".into()), ..q() }).await, ["普通"]);
        assert!(numbers(&store, CaseQuery { assignee: Some("zhao".into()), ..q() }).await.is_empty());
        // Everything by deadline; the case without one comes last.
        assert_eq!(numbers(&store, CaseQuery { by_due: true, ..q() }).await, ["紧急", "高", "普通", "低", "未判定"]);
        assert_eq!(numbers(&store, CaseQuery { status: Some(CaseStatus::Received), ..q() }).await, ["未判定"]);
        assert_eq!(numbers(&store, CaseQuery { kind: Some(CaseKind::Inquiry), ..q() }).await, ["未判定"]);
        // Overdue: none now, all triaged ones in a month; a resolved case is no longer overdue.
        assert!(numbers(&store, CaseQuery { overdue_at: Some(local_now()), ..q() }).await.is_empty());
        let later = local_now() + chrono::Duration::days(60);
        assert_eq!(numbers(&store, CaseQuery { overdue_at: Some(later), by_due: true, ..q() }).await, ["紧急", "高", "普通", "低"]);
        let in_progress = act(&store, &qian, &moved, propose()).await;
        let in_progress = act(&store, &clerk, &in_progress, CaseAction::Approve { comment: None }).await;
        act(&store, &qian, &in_progress, resolve()).await;
        assert_eq!(numbers(&store, CaseQuery { overdue_at: Some(later), by_due: true, ..q() }).await, ["紧急", "高", "低"]);
        // Dates and paging.
        let today = local_now().date();
        assert_eq!(store.cases(&CaseQuery { from: Some(today), to: Some(today), ..q() }).await.unwrap().total, 5);
        assert_eq!(store.cases(&CaseQuery { to: Some(today.pred_opt().unwrap()), ..q() }).await.unwrap().total, 0);
        let page = store.cases(&CaseQuery { per_page: 2, page: 2, ..q() }).await.unwrap();
        assert_eq!((page.items.len(), page.total, page.pages()), (2, 5, 3));
        assert_eq!(store.cases(&CaseQuery { open_only: true, ..q() }).await.unwrap().total, 5);
        assert_eq!(untriaged.status, CaseStatus::Received);
    }

    // C5 ---------------------------------------------------------------------------------------
    pub async fn escalation_happens_once_per_case_even_concurrently(store: Store) {
        dept(&store, "circulation").await;
        dept(&store, "reference").await;
        let clerk = member(&store, "li.na", Role::Librarian, None).await;
        let zhao = member(&store, "zhao", Role::Department, Some("circulation")).await;
        let sun = member(&store, "sun", Role::Department, Some("circulation")).await;
        let gone = member(&store, "gone", Role::Department, Some("circulation")).await;
        let qian = member(&store, "qian", Role::Department, Some("reference")).await;
        let boss = member(&store, "boss", Role::Leader, None).await;
        store.set_user_active(&actor(), gone.user_id.unwrap(), false).await.unwrap();
        for i in 0..3 {
            let (c, _) = file(&store, CaseKind::Complaint, &format!("投诉{i}")).await;
            let c = act(&store, &clerk, &c, accept(None, Priority::Urgent)).await;
            act(&store, &clerk, &c, assign("circulation")).await;
        }
        // A triaged case not yet assigned goes to leadership only; a received one has no deadline.
        let (lone, _) = file(&store, CaseKind::Complaint, "未分派").await;
        act(&store, &clerk, &lone, accept(None, Priority::Urgent)).await;
        file(&store, CaseKind::Complaint, "未判定").await;

        assert_eq!(store.escalate_overdue_cases(local_now()).await.unwrap(), 0, "nothing overdue yet");
        let later = local_now() + chrono::Duration::days(30);
        let mut handles = Vec::new();
        for _ in 0..4 {
            let s = store.clone();
            handles.push(tokio::spawn(async move { s.escalate_overdue_cases(later).await.unwrap() }));
        }
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap();
        }
        assert_eq!(total, 4);
        assert_eq!(store.escalate_overdue_cases(later).await.unwrap(), 0);
        let unread = |a: Actor| {
            let store = store.clone();
            async move { store.unread_notifications(a.user_id.unwrap()).await.unwrap() }
        };
        assert_eq!(unread(zhao.clone()).await, 3);
        assert_eq!(unread(sun).await, 3);
        assert_eq!(unread(boss.clone()).await, 4);
        assert_eq!(unread(gone).await, 0);
        assert_eq!(unread(qian).await, 0);
        assert_eq!(unread(clerk).await, 0);
        let n = store.notifications(zhao.user_id.unwrap(), true, 10).await.unwrap();
        assert!(n[0].text_en.contains("past its deadline") && n[0].text_zh.contains("超过处理时限"), "{:?}", n[0]);
        assert!(n[0].link.as_deref().unwrap().starts_with("/cases/"));
        let escalated = store.cases(&CaseQuery { overdue_at: Some(later), ..q() }).await.unwrap().items;
        assert_eq!(escalated.len(), 4);
        for c in &escalated {
            assert!(c.escalated);
            assert_eq!(c.version, if c.department.is_some() { 3 } else { 2 }, "escalation leaves the version alone");
            let ev: Vec<String> = store.case_events(c.id).await.unwrap().into_iter().map(|e| e.action).collect();
            assert_eq!(ev.iter().filter(|a| *a == "escalate").count(), 1);
        }
        assert_eq!(
            store
                .audit_log(&AuditQuery { action: Some("case.escalate".into()), page: 1, per_page: 50, ..Default::default() })
                .await
                .unwrap()
                .total,
            4
        );
    }

    // C6 ---------------------------------------------------------------------------------------
    pub async fn unrated_cases_close_after_the_waiting_period(store: Store) {
        dept(&store, "circulation").await;
        let clerk = member(&store, "li.na", Role::Librarian, None).await;
        store.set_workflow(&actor(), CaseKind::Inquiry, Workflow { requires_approval: false, auto_close_days: 0 }).await.unwrap();
        let mut resolved = Vec::new();
        for kind in [CaseKind::Complaint, CaseKind::Purchase, CaseKind::Inquiry] {
            let (c, token) = file(&store, kind, kind.code()).await;
            let c = act(&store, &clerk, &c, accept(None, Priority::Normal)).await;
            let c = act(&store, &clerk, &c, assign("circulation")).await;
            let c = act(&store, &clerk, &c, propose()).await;
            let c = if c.status == CaseStatus::AwaitingApproval {
                act(&store, &clerk, &c, CaseAction::Approve { comment: None }).await
            } else {
                c
            };
            resolved.push((act(&store, &clerk, &c, resolve()).await, token));
        }
        let now = local_now();
        assert_eq!(store.close_unrated_cases(now + chrono::Duration::days(3)).await.unwrap(), 0);
        // Complaints wait 7 days, purchase requests 14, inquiries (set to 0) never.
        assert_eq!(store.close_unrated_cases(now + chrono::Duration::days(8)).await.unwrap(), 1);
        assert_eq!(store.close_unrated_cases(now + chrono::Duration::days(8)).await.unwrap(), 0);
        let complaint = store.case(resolved[0].0.id).await.unwrap();
        assert_eq!((complaint.status, complaint.version), (CaseStatus::Closed, resolved[0].0.version + 1));
        let last = store.case_events(complaint.id).await.unwrap().pop().unwrap();
        assert_eq!((last.action.as_str(), last.actor.as_str(), last.to), ("close", "system", CaseStatus::Closed));
        // Too late to rate now.
        conflict(store.rate_case(&resolved[0].1, &rating(3, None)).await);
        assert_eq!(store.close_unrated_cases(now + chrono::Duration::days(400)).await.unwrap(), 1);
        assert_eq!(store.case(resolved[1].0.id).await.unwrap().status, CaseStatus::Closed);
        assert_eq!(store.case(resolved[2].0.id).await.unwrap().status, CaseStatus::Resolved);
        // Rated cases are not touched, and staff may close a resolved case themselves.
        let inquiry = store.rate_case(&resolved[2].1, &rating(5, None)).await.unwrap();
        assert_eq!(inquiry.status, CaseStatus::Closed);
        // An expired token finds nothing: pretend the case closed long ago.
        let pool = common::raw_pool().await;
        sqlx::query("UPDATE cases SET token_expires_at = '2000-01-01T00:00:00.000Z' WHERE id = $1")
            .bind(inquiry.id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        not_found(store.case_by_token(&resolved[2].1).await);

        // The working calendar is a setting.
        assert_eq!(store.work_calendar().await.unwrap(), WorkCalendar::standard());
        let mut cal = WorkCalendar::standard();
        cal.holidays = vec![day("2026-10-02"), day("2026-10-01"), day("2026-10-01")];
        cal.extra_workdays = vec![day("2026-10-10")];
        store.set_work_calendar(&actor(), &cal).await.unwrap();
        assert_eq!(store.work_calendar().await.unwrap().holidays, [day("2026-10-01"), day("2026-10-02")]);
        let mut bad = cal.clone();
        bad.day_end = bad.day_start;
        assert_eq!(field_names(&invalid(store.set_work_calendar(&actor(), &bad).await)), set(["day_end"]));
    }

    // C7 ---------------------------------------------------------------------------------------
    pub async fn service_stats_on_a_known_set(store: Store) {
        dept(&store, "circulation").await;
        dept(&store, "reference").await;
        let clerk = member(&store, "li.na", Role::Librarian, None).await;
        for (kind, code) in [(CaseKind::Complaint, "noise"), (CaseKind::Suggestion, "space")] {
            let cat = lector_store::cases::CaseCategory { kind, code: code.into(), name_zh: code.into(), name_en: code.into() };
            store.create_case_category(&actor(), &cat).await.unwrap();
        }
        // (kind, category, department, created, first response h, resolution h, resolved local, due, satisfaction, recommend)
        type Row = (CaseKind, &'static str, &'static str, &'static str, i64, i64, &'static str, &'static str, u8, u8);
        let closed: [Row; 3] = [
            (CaseKind::Complaint, "noise", "circulation", "2025-03-03", 1, 10, "2025-03-04 10:00", "2025-03-04 12:00", 5, 10),
            (CaseKind::Complaint, "noise", "circulation", "2025-03-04", 3, 20, "2025-03-05 11:00", "2025-03-05 09:00", 2, 9),
            (CaseKind::Suggestion, "space", "reference", "2025-03-05", 2, 30, "2025-03-06 10:00", "2025-03-06 10:00", 4, 3),
        ];
        let pool = common::raw_pool().await;
        for (kind, cat, dept_code, created, first, resolution, res_local, due, s, r) in closed {
            let (c, token) = file(&store, kind, cat).await;
            let c = act(&store, &clerk, &c, accept(Some(cat), Priority::Normal)).await;
            let c = act(&store, &clerk, &c, assign(dept_code)).await;
            let c = act(&store, &clerk, &c, propose()).await;
            let c = act(&store, &clerk, &c, CaseAction::Approve { comment: None }).await;
            act(&store, &clerk, &c, resolve()).await;
            store.rate_case(&token, &rating(s, Some(r))).await.unwrap();
            let t0 = chrono::NaiveDateTime::parse_from_str(&format!("{created} 09:00"), "%Y-%m-%d %H:%M").unwrap().and_utc();
            let utc = |h: i64| (t0 + chrono::Duration::hours(h)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            sqlx::query(
                "UPDATE cases SET created_at = $1, created_local = $2, first_response_at = $3, resolved_at = $4, resolved_local = $5, due_at = $6 WHERE id = $7",
            )
            .bind(utc(0))
            .bind(format!("{created} 17:00"))
            .bind(utc(first))
            .bind(utc(resolution))
            .bind(res_local)
            .bind(due)
            .bind(c.id)
            .execute(&pool)
            .await
            .unwrap();
        }
        // One inquiry still received in the period, one complaint outside it.
        for (subject, created) in [("inside", "2025-03-06 08:00"), ("outside", "2025-04-01 08:00")] {
            let (c, _) = file(&store, if subject == "inside" { CaseKind::Inquiry } else { CaseKind::Complaint }, subject).await;
            sqlx::query("UPDATE cases SET created_local = $1 WHERE id = $2").bind(created).bind(c.id).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let s = store.service_stats(day("2025-03-01"), day("2025-03-31")).await.unwrap();
        let counts = |v: &Vec<lector_store::cases::Count>| v.iter().map(|c| (c.key.clone(), c.count)).collect::<Vec<_>>();
        assert_eq!(s.total, 4);
        assert_eq!(counts(&s.by_kind), [("complaint".to_string(), 2), ("inquiry".to_string(), 1), ("suggestion".to_string(), 1)]);
        assert_eq!(
            counts(&s.by_category),
            [("complaint/noise".to_string(), 2), ("inquiry/-".to_string(), 1), ("suggestion/space".to_string(), 1)]
        );
        assert_eq!(counts(&s.by_status), [("closed".to_string(), 3), ("received".to_string(), 1)]);
        assert_eq!(s.median_first_response_hours, Some(2.0));
        assert_eq!(s.median_resolution_hours, Some(20.0));
        assert_eq!(s.deadline_compliance, Some(2.0 / 3.0));
        let sat = |v: &Vec<lector_store::cases::SatisfactionRow>| v.iter().map(|r| (r.key.clone(), r.ratings, r.mean)).collect::<Vec<_>>();
        assert_eq!(sat(&s.satisfaction_by_department), [("circulation".to_string(), 2, 3.5), ("reference".to_string(), 1, 4.0)]);
        assert_eq!(sat(&s.satisfaction_by_category), [("complaint/noise".to_string(), 2, 3.5), ("suggestion/space".to_string(), 1, 4.0)]);
        // Promoters 10 and 9, a detractor 3: (2 − 1) / 3.
        assert!((s.nps.unwrap() - 100.0 / 3.0).abs() < 1e-9, "{:?}", s.nps);

        // The inclusive end date, and an empty period.
        assert_eq!(store.service_stats(day("2025-03-01"), day("2025-03-05")).await.unwrap().total, 3);
        let empty = store.service_stats(day("2024-01-01"), day("2024-01-31")).await.unwrap();
        assert_eq!((empty.total, empty.median_first_response_hours, empty.deadline_compliance, empty.nps), (0, None, None, None));

        // The cached figures are reused for the same period, even after a new case; the
        // uncached ones and another period see it.
        let now = chrono::Local::now().date_naive();
        let before = store.service_stats_cached(now, now).await.unwrap();
        let input = lector_domain::case::CaseInput {
            kind: CaseKind::Praise,
            subject: "谢谢".into(),
            body: "服务很好。".into(),
            card_no: None,
            contact_name: None,
            contact: None,
        };
        store.create_case(&actor(), &input, lector_store::cases::CaseSource::Staff, None).await.unwrap();
        assert_eq!(store.service_stats_cached(now, now).await.unwrap(), before);
        assert_eq!(store.service_stats(now, now).await.unwrap().total, before.total + 1);
        let yesterday = now.pred_opt().unwrap();
        assert_eq!(store.service_stats_cached(yesterday, now).await.unwrap().total, before.total + 1);
    }

    fn local_text(t: chrono::NaiveDateTime) -> String {
        t.format("%Y-%m-%d %H:%M").to_string()
    }

    fn local(v: &str) -> chrono::NaiveDateTime {
        chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M").unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    fn ask(question: &str) -> CaseAction {
        CaseAction::RequestInfo { question: question.into() }
    }

    /// Sets a case's deadline and the moment its clock stopped, to known local times.
    async fn set_clock(id: i64, due: &str, paused: &str) {
        let pool = common::raw_pool().await;
        sqlx::query("UPDATE cases SET due_at = $1, paused_local = $2 WHERE id = $3")
            .bind(due)
            .bind(paused)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    // C8 ---------------------------------------------------------------------------------------
    pub async fn service_levels_are_configured_per_kind(store: Store) {
        let clerk = member(&store, "li.na", Role::Librarian, None).await;
        for &kind in CaseKind::ALL {
            assert_eq!(store.service_levels(kind).await.unwrap(), ServiceLevels::default_for(kind));
        }
        let (early, _) = file(&store, CaseKind::Complaint, "早先的投诉").await;
        let early = act(&store, &clerk, &early, accept(None, Priority::Normal)).await;

        let audits = audit_count(&store).await;
        let quick = ServiceLevels { urgent: 2, high: 4, normal: 6, low: 8 };
        store.set_service_levels(&actor(), CaseKind::Complaint, quick).await.unwrap();
        assert_eq!(store.service_levels(CaseKind::Complaint).await.unwrap(), quick);
        assert_eq!(store.service_levels(CaseKind::Inquiry).await.unwrap(), ServiceLevels::default_for(CaseKind::Inquiry));
        let trail = store.audit_trail("settings", "case.service_levels.complaint").await.unwrap();
        assert_eq!(trail.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), ["settings.case_service_levels"]);
        assert_eq!(audit_count(&store).await, audits + 1);
        // Refused levels change nothing and name the priority.
        let zero = ServiceLevels { urgent: 0, ..quick };
        assert_eq!(field_names(&invalid(store.set_service_levels(&actor(), CaseKind::Complaint, zero).await)), set(["urgent"]));
        let swapped = ServiceLevels { urgent: 9, ..quick };
        assert_eq!(field_names(&invalid(store.set_service_levels(&actor(), CaseKind::Complaint, swapped).await)), set(["urgent"]));
        assert_eq!(store.service_levels(CaseKind::Complaint).await.unwrap(), quick);
        assert_eq!(audit_count(&store).await, audits + 1);

        // The case triaged before keeps its deadline; the next one gets the configured level,
        // another kind its default.
        assert_eq!(store.case(early.id).await.unwrap().due_at, early.due_at);
        let cal = WorkCalendar::standard();
        for (kind, hours) in [(CaseKind::Complaint, 6), (CaseKind::Inquiry, 16)] {
            let (c, _) = file(&store, kind, "之后的工单").await;
            let before = local_now() - chrono::Duration::minutes(1);
            let c = act(&store, &clerk, &c, accept(None, Priority::Normal)).await;
            let after = local_now() + chrono::Duration::minutes(1);
            let due = local(c.due_at.as_deref().unwrap());
            let (lo, hi) = (cal.add_working_hours(before, hours), cal.add_working_hours(after, hours));
            assert!(lo <= due && due <= hi, "{kind:?}: {lo} <= {due} <= {hi}");
        }
    }

    // C9 ---------------------------------------------------------------------------------------
    pub async fn asking_the_reader_stops_the_clock_until_the_answer(store: Store) {
        dept(&store, "circulation").await;
        let clerk = member(&store, "li.na", Role::Librarian, None).await;
        let worker = member(&store, "zhao", Role::Department, Some("circulation")).await;
        let (c, token) = file(&store, CaseKind::Complaint, "座位被占").await;

        // Before triage: no deadline yet, so nothing to move; the answer returns it to received.
        let asked = act(&store, &clerk, &c, ask("请问是哪一层的座位？")).await;
        assert_eq!(
            (asked.status, asked.resume_status, asked.question.as_deref()),
            (CaseStatus::AwaitingReader, Some(CaseStatus::Received), Some("请问是哪一层的座位？"))
        );
        assert!(asked.awaiting_since.is_some() && asked.due_at.is_none() && asked.first_response_at.is_some());
        assert_eq!(store.case_by_token(&token).await.unwrap().question.as_deref(), Some("请问是哪一层的座位？"));
        let answered = store.answer_case_question(&token, "  三楼东侧，\n晚上七点以后。 ", None).await.unwrap();
        assert_eq!(
            (answered.status, answered.resume_status, answered.question.clone(), answered.awaiting_since.clone(), answered.due_at.clone()),
            (CaseStatus::Received, None, None, None, None)
        );
        assert_eq!(answered.version, asked.version + 1);
        let last = store.case_events(c.id).await.unwrap().pop().unwrap();
        assert_eq!(
            (last.action.as_str(), last.actor.as_str(), last.from, last.to, last.comment.as_deref()),
            ("reader_reply", "reader", Some(CaseStatus::AwaitingReader), CaseStatus::Received, Some("三楼东侧，\n晚上七点以后。"))
        );
        // The librarian who asked is told.
        assert_eq!(store.unread_notifications(clerk.user_id.unwrap()).await.unwrap(), 1);
        let n = store.notifications(clerk.user_id.unwrap(), true, 5).await.unwrap();
        assert!(n[0].text_en.contains("answered your question") && n[0].link.as_deref() == Some(&*format!("/cases/{}", c.id)), "{n:?}");

        // Assigned: the department asks; while it waits the case is neither overdue nor escalated.
        let c = act(&store, &clerk, &answered, accept(None, Priority::Urgent)).await;
        let c = act(&store, &clerk, &c, assign("circulation")).await;
        let c = act(&store, &worker, &c, CaseAction::Claim).await;
        let asked = act(&store, &worker, &c, ask("能否提供座位号？")).await;
        assert_eq!((asked.resume_status, asked.assignee.as_deref()), (Some(CaseStatus::Assigned), Some("zhao")));
        let now = local_now();
        let paused = local_text(now - chrono::Duration::days(3));
        set_clock(c.id, "2020-01-06 10:00", &paused).await;
        let q_overdue = CaseQuery { overdue_at: Some(now), ..q() };
        assert!(numbers(&store, q_overdue.clone()).await.is_empty(), "a waiting case is not overdue");
        assert_eq!(store.escalate_overdue_cases(now).await.unwrap(), 0, "nor escalated");
        assert_eq!(store.cases(&CaseQuery { open_only: true, department: Some("circulation".into()), ..q() }).await.unwrap().total, 1);

        // The answer restarts the clock: the deadline moves later by the working time waited.
        let cal = WorkCalendar::standard();
        let before = local_now();
        let answered = store.answer_case_question(&token, "A-312", None).await.unwrap();
        let after = local_now() + chrono::Duration::minutes(1);
        assert_eq!((answered.status, answered.assignee.as_deref()), (CaseStatus::Assigned, Some("zhao")));
        let due = local(answered.due_at.as_deref().unwrap());
        let moved =
            |to: chrono::NaiveDateTime| cal.add_working_time(local("2020-01-06 10:00"), cal.working_time_between(local(&paused), to));
        let (lo, hi) = (moved(before - chrono::Duration::minutes(1)), moved(after));
        assert!(lo <= due && due <= hi, "{lo} <= {due} <= {hi}");
        assert!(due > local("2020-01-06 10:00"), "three days contain working time whatever the weekday");
        let trail = store.audit_trail("case", &c.id.to_string()).await.unwrap();
        let last = trail.last().unwrap();
        assert_eq!((last.action.as_str(), last.actor_name.as_str()), ("case.reader_reply", "portal"));
        assert!(last.summary.contains("deadline 2020-01-06 10:00 →"), "{}", last.summary);
        // Now it runs again (and is long overdue).
        assert_eq!(numbers(&store, q_overdue).await, ["座位被占"]);

        // In progress: asked, then withdrawn by staff; the deadline moves the same way.
        let c = act(&store, &worker, &answered, propose()).await;
        let c = act(&store, &clerk, &c, CaseAction::Approve { comment: None }).await;
        let asked = act(&store, &worker, &c, ask("还需要吗？")).await;
        set_clock(c.id, "2020-01-06 10:00", &local_text(local_now() - chrono::Duration::days(3))).await;
        let asked = store.case(asked.id).await.unwrap();
        let back = act(&store, &worker, &asked, CaseAction::WithdrawQuestion { comment: Some("读者已来电说明".into()) }).await;
        assert_eq!((back.status, back.question.clone()), (CaseStatus::InProgress, None));
        assert!(local(back.due_at.as_deref().unwrap()) > local("2020-01-06 10:00"));
        let last = store.case_events(c.id).await.unwrap().pop().unwrap();
        assert_eq!(
            (last.action.as_str(), last.actor.as_str(), last.comment.as_deref()),
            ("withdraw_question", "zhao", Some("读者已来电说明 (question: 还需要吗？)"))
        );
        let c = act(&store, &worker, &back, resolve()).await;
        assert_eq!(c.status, CaseStatus::Resolved);
        let events = store.case_events(c.id).await.unwrap();
        let steps: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            steps,
            [
                "create",
                "request_info",
                "reader_reply",
                "triage",
                "assign",
                "claim",
                "request_info",
                "reader_reply",
                "propose",
                "approve",
                "request_info",
                "withdraw_question",
                "resolve"
            ]
        );
    }

    // C10 --------------------------------------------------------------------------------------
    pub async fn answers_are_idempotent_and_refused_without_a_question(store: Store) {
        dept(&store, "circulation").await;
        let clerk = member(&store, "li.na", Role::Librarian, None).await;
        let (c, token) = file(&store, CaseKind::Inquiry, "借阅规则").await;
        let before = snapshot(&store, c.id).await;
        // No question open: answering and withdrawing are conflicts that change nothing.
        let msg = conflict(store.answer_case_question(&token, "补充", Some("key-0000000000000001")).await);
        assert!(msg.contains("no open question"), "{msg}");
        conflict(store.act_on_case(&clerk, c.id, &CaseAction::WithdrawQuestion { comment: None }, c.version).await);
        not_found(store.answer_case_question(&"ab".repeat(32), "补充", None).await);
        assert_eq!(field_names(&invalid(store.answer_case_question(&token, " ", None).await)), set(["text"]));
        assert_eq!(field_names(&invalid(store.answer_case_question(&token, &"字".repeat(2001), None).await)), set(["text"]));
        assert_eq!(field_names(&invalid(store.act_on_case(&clerk, c.id, &ask(&"问".repeat(2001)), c.version).await)), set(["question"]));
        assert_eq!(snapshot(&store, c.id).await, before);

        // Asked once; asking again, or on a stale version, is refused.
        let asked = act(&store, &clerk, &c, ask("您的读者证号是多少？")).await;
        let before = snapshot(&store, c.id).await;
        let msg = conflict(store.act_on_case(&clerk, c.id, &ask("再问一次"), asked.version).await);
        assert!(msg.contains("awaiting_reader"), "{msg}");
        conflict(store.act_on_case(&clerk, c.id, &CaseAction::WithdrawQuestion { comment: None }, asked.version - 1).await);
        conflict(store.act_on_case(&clerk, c.id, &accept(None, Priority::Normal), asked.version).await);
        assert_eq!(snapshot(&store, c.id).await, before);

        // The same form sent four times at once records one answer; all four see the case answered.
        let mut handles = Vec::new();
        for _ in 0..4 {
            let (s, t) = (store.clone(), token.clone());
            handles.push(tokio::spawn(async move { s.answer_case_question(&t, "2024001", Some("form-key-0000001")).await }));
        }
        for h in handles {
            let got = h.await.unwrap().unwrap_or_else(|e| panic!("a repeated answer was refused: {e}"));
            assert_eq!(got.id, c.id);
        }
        let answered = store.case(c.id).await.unwrap();
        assert_eq!((answered.status, answered.version), (CaseStatus::Received, asked.version + 1));
        let replies = store.case_events(c.id).await.unwrap().into_iter().filter(|e| e.action == "reader_reply").count();
        assert_eq!(replies, 1);
        // Sent again later: still one answer, nothing changes.
        let before = snapshot(&store, c.id).await;
        assert_eq!(store.answer_case_question(&token, "2024001", Some("form-key-0000001")).await.unwrap(), before.0);
        assert_eq!(snapshot(&store, c.id).await, before);
        // Another form after the answer: no question is open any more.
        conflict(store.answer_case_question(&token, "再补充", Some("form-key-0000002")).await);
        // A case filed by staff has no tracking page: its reader cannot be asked there.
        let (by_staff, _) = store.create_case(&clerk, &case_input(CaseKind::Inquiry, "电话咨询"), CaseSource::Staff, None).await.unwrap();
        let before_staff = snapshot(&store, by_staff.id).await;
        let msg = conflict(store.act_on_case(&clerk, by_staff.id, &ask("您的邮箱？"), by_staff.version).await);
        assert!(msg.contains("tracking page"), "{msg}");
        assert_eq!(snapshot(&store, by_staff.id).await, before_staff);
        // A closed case cannot be asked about.
        let closed = act(
            &store,
            &clerk,
            &answered,
            CaseAction::Triage {
                outcome: TriageOutcome::OutOfScope,
                category: None,
                priority: Priority::Normal,
                duplicate_of: None,
                comment: None,
            },
        )
        .await;
        let before = snapshot(&store, c.id).await;
        let msg = conflict(store.act_on_case(&clerk, c.id, &ask("还在吗？"), closed.version).await);
        assert!(msg.contains("closed"), "{msg}");
        assert_eq!(snapshot(&store, c.id).await, before);
    }
}
