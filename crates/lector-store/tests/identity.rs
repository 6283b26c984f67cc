//! Identity resolution: blocking, scoring, the review queue, merges and their undo. Every
//! scenario runs on a fresh SQLite file and a fresh PostgreSQL database (see `common`).

#[macro_use]
mod common;

use common::{actor, draft, today};
use lector_store::audit::AuditQuery;
use lector_store::auth::NewUser;
use lector_store::cases::CaseSource;
use lector_store::config::NewAttribute;
use lector_store::domain::attribute::AttrInput;
use lector_store::domain::case::{CaseInput, CaseKind};
use lector_store::domain::identity::{Evidence, MatchRules};
use lector_store::domain::reader::{ContactDraft, ReaderDraft, ReaderInput, RelatedDraft};
use lector_store::domain::role::Role;
use lector_store::domain::tracking::{Channel, Direction, InteractionInput, TaskInput};
use lector_store::identity::{MatchCandidate, MergeChoices};
use lector_store::readers::{ReaderQuery, ReaderRecord};
use lector_store::tracking::{InteractionQuery, TaskQuery};
use lector_store::{Actor, Store, StoreError};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

scenarios!(
    scenario:
    variations_merge_or_queue_with_the_default_rules,
    saved_rules_decide_and_are_checked,
    a_pair_marked_distinct_is_not_proposed_again,
    a_merge_keeps_both_records_and_undo_restores_them,
    undo_waits_for_later_merges_of_the_survivor,
    blocking_compares_only_readers_sharing_a_key,
);

// ---------------------------------------------------------------------------------------------
// Fixtures

fn contact(kind: &str, v: &str) -> ContactDraft {
    ContactDraft { kind: kind.into(), value: v.into(), ..Default::default() }
}

fn input(d: &ReaderDraft) -> ReaderInput {
    d.parse(today()).unwrap_or_else(|e| panic!("draft {} does not parse: {e}", d.card_no))
}

async fn create(store: &Store, d: ReaderDraft) -> ReaderRecord {
    store.create_reader(&actor(), &input(&d)).await.unwrap_or_else(|e| panic!("create {}: {e}", d.card_no))
}

async fn resolve(store: &Store) -> lector_store::identity::ResolveReport {
    store.resolve_identities(&actor()).await.expect("resolve identities")
}

async fn pending(store: &Store) -> Vec<MatchCandidate> {
    store.match_candidates("pending", 1, 100).await.expect("pending candidates").items
}

/// The candidate pairing readers with cards `a` and `b` (either side).
fn pair<'a>(list: &'a [MatchCandidate], a: &str, b: &str) -> &'a MatchCandidate {
    list.iter()
        .find(|c| {
            let cards = [c.left.card_no.as_str(), c.right.card_no.as_str()];
            cards.contains(&a) && cards.contains(&b)
        })
        .unwrap_or_else(|| panic!("no candidate pairing {a} and {b} among {}", list.len()))
}

async fn reader_count(store: &Store) -> i64 {
    store.readers(&ReaderQuery { page: 1, per_page: 1, ..Default::default() }).await.unwrap().total
}

async fn audit_actions(store: &Store, action: &str) -> i64 {
    store.audit_log(&AuditQuery { action: Some(action.into()), page: 1, per_page: 1, ..Default::default() }).await.unwrap().total
}

/// A record with the fields every write moves on (version, updated_at) blanked, for comparing
/// a record before and after a merge and its undo.
fn settled(mut r: ReaderRecord) -> ReaderRecord {
    r.version = 0;
    r.updated_at.clear();
    r
}

fn talk(subject: &str) -> InteractionInput {
    InteractionInput {
        channel: Channel::Phone,
        direction: Direction::Inbound,
        subject: subject.into(),
        notes: None,
        occurred_at: chrono::NaiveDateTime::parse_from_str("2025-02-01 10:00", "%Y-%m-%d %H:%M").unwrap(),
    }
}

fn choices(survivor: &str, fields: &[(&str, &str)]) -> MergeChoices {
    MergeChoices {
        survivor: survivor.into(),
        fields: fields.iter().map(|(f, s)| (f.to_string(), s.to_string())).collect::<BTreeMap<_, _>>(),
    }
}

#[track_caller]
fn conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Conflict(msg)) => {
            assert!(!msg.zh.is_empty(), "conflict without a Chinese message");
            msg.en
        }
        other => panic!("expected StoreError::Conflict, got {other:?}"),
    }
}

async fn text_attribute(store: &Store, code: &str, repeatable: bool) {
    let new = NewAttribute {
        code: code.into(),
        label_zh: code.into(),
        label_en: code.into(),
        kind: "text".into(),
        choices: vec![],
        repeatable,
        unique: false,
        searchable: true,
    };
    store.create_attribute(&actor(), &new).await.unwrap_or_else(|e| panic!("attribute {code}: {e}"));
}

/// Rows of `table` whose `column` is `reader_id`, counted directly.
async fn rows_of(table: &str, reader_id: i64) -> i64 {
    common::raw_count(&format!("SELECT COUNT(*) FROM {table} WHERE reader_id = $1"), reader_id).await
}

mod scenario {
    use super::*;

    pub async fn variations_merge_or_queue_with_the_default_rules(store: Store) {
        text_attribute(&store, "student_no", false).await;
        // Same email in another case and the name with a space: 0.6 + 0.3 reaches 0.9, merged.
        let mut a = draft("R001", "张伟");
        a.contacts = vec![contact("email", "Zhang.Wei@PKU.edu.cn")];
        let a = create(&store, a).await;
        let mut b = draft("R002", "张 伟");
        b.contacts = vec![contact("email", "zhang.wei@pku.edu.cn"), contact("mobile", "13911112222")];
        let b = create(&store, b).await;
        // A student number typed with full-width digits is the other record's card number.
        let c = create(&store, draft("2021001", "王芳")).await;
        let mut d = draft("R004", "王芳");
        d.attributes.insert("student_no".into(), AttrInput::One("２０２１００１".into()));
        let d = create(&store, d).await;
        // Pinyin with the same birth date: queued for review, not merged.
        let mut e = draft("R005", "张伟");
        e.birth_date = Some("1990-05-01".into());
        create(&store, e).await;
        let mut f = draft("R006", "ZHANG Wei");
        f.birth_date = Some("1990/5/1".into());
        create(&store, f).await;
        // A shared mailbox and nothing else: review.
        let mut g = draft("R007", "李娜");
        g.contacts = vec![contact("email", "office@lib.edu.cn")];
        create(&store, g).await;
        let mut h = draft("R008", "赵敏");
        h.contacts = vec![contact("email", "OFFICE@lib.edu.cn")];
        create(&store, h).await;
        // Nothing in common with anyone.
        create(&store, draft("R009", "孙丽")).await;
        // History of the absorbed records follows them (both merges in one batch).
        let staff = store
            .create_user(
                &actor(),
                NewUser {
                    username: "wang".into(),
                    display_name: "王".into(),
                    role: Role::Librarian,
                    department: None,
                    password: "wang-password-1".into(),
                },
            )
            .await
            .unwrap();
        let librarian = Actor::user(staff.id, "wang", "10.0.0.1");
        for id in [b.id, d.id, d.id] {
            store.record_interaction(&librarian, id, &talk("问借期")).await.unwrap();
        }

        let report = resolve(&store).await;
        assert_eq!(report.readers, 9);
        assert_eq!((report.merged, report.queued), (2, 2), "{report:?}");
        assert_eq!(reader_count(&store).await, 7);
        assert!(report.seconds >= 0.0);

        // The older record survives an automatic merge and answers to both card numbers.
        let survivor = store.reader_by_card("R002").await.expect("absorbed card finds the survivor");
        assert_eq!(survivor.id, a.id);
        assert!(matches!(store.reader(b.id).await, Err(StoreError::NotFound)));
        let values: Vec<&str> = survivor.contacts.iter().map(|c| c.value.as_str()).collect();
        assert_eq!(values, vec!["zhang.wei@pku.edu.cn", "13911112222"], "the duplicate email is kept once");
        assert_eq!(store.reader_by_card("R004").await.unwrap().id, c.id);
        assert_eq!(store.reader(c.id).await.unwrap().attributes.get("student_no"), Some(&vec!["2021001".to_string()]));
        assert!(store.reader(d.id).await.is_err());
        assert_eq!((rows_of("interactions", a.id).await, rows_of("interactions", c.id).await), (1, 2));

        let queue = pending(&store).await;
        assert_eq!(queue.len(), 2);
        assert_eq!(queue[0].score, 0.6, "highest score first");
        assert_eq!(queue[0].evidence, vec![Evidence::SameEmail]);
        let py = pair(&queue, "R005", "R006");
        assert_eq!(py.evidence, vec![Evidence::SamePinyin, Evidence::SameBirthDate]);
        assert_eq!(py.score, 0.5);
        assert_eq!(py.status, "pending");
        assert!(py.left.id < py.right.id);
        assert_eq!(store.match_candidate(py.id).await.unwrap(), *py);

        let merges = store.merges(1, 20).await.unwrap();
        assert_eq!(merges.total, 2);
        assert!(merges.items.iter().all(|m| m.how == "auto" && m.by == "test" && m.undone_at.is_none()));
        assert_eq!(store.match_candidates("merged", 1, 20).await.unwrap().total, 2);
        assert_eq!(audit_actions(&store, "identity.merge").await, 2);
        assert_eq!(audit_actions(&store, "identity.resolve").await, 1);

        // A second run finds nothing new: merged and queued pairs are not proposed again.
        let again = resolve(&store).await;
        assert_eq!((again.merged, again.queued), (0, 0), "{again:?}");
        assert_eq!(pending(&store).await.len(), 2);
        assert!(matches!(store.match_candidates("bogus", 1, 20).await, Err(StoreError::Invalid(_))));
    }

    pub async fn saved_rules_decide_and_are_checked(store: Store) {
        assert_eq!(store.match_rules().await.unwrap(), MatchRules::default());
        let bad = MatchRules { merge_at: 0.4, ..MatchRules::default() };
        match store.save_match_rules(&actor(), &bad).await {
            Err(StoreError::Invalid(errs)) => assert!(errs.get("review_at").is_some(), "{errs}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        let mut strict = MatchRules { merge_at: 1.0, ..MatchRules::default() };
        strict.weights.same_email = 0.65;
        store.save_match_rules(&actor(), &strict).await.unwrap();
        assert_eq!(store.match_rules().await.unwrap(), strict);
        assert_eq!(audit_actions(&store, "settings.match_rules").await, 1);

        let mut a = draft("R001", "张伟");
        a.contacts = vec![contact("email", "zw@pku.edu.cn")];
        create(&store, a).await;
        let mut b = draft("R002", "张伟");
        b.contacts = vec![contact("email", "ZW@pku.edu.cn")];
        create(&store, b).await;
        let report = resolve(&store).await;
        assert_eq!((report.merged, report.queued), (0, 1), "0.65 + 0.3 is below merge_at 1.0");
        assert_eq!(pending(&store).await[0].score, 0.95);
    }

    pub async fn a_pair_marked_distinct_is_not_proposed_again(store: Store) {
        let mut a = draft("R001", "李娜");
        a.contacts = vec![contact("mobile", "13800138000")];
        create(&store, a).await;
        let mut b = draft("R002", "李娜娜");
        b.contacts = vec![contact("mobile", "+86 138 0013 8000")];
        create(&store, b).await;
        let report = resolve(&store).await;
        assert_eq!(report.queued, 1);
        let candidate = pending(&store).await.remove(0);
        assert_eq!(candidate.evidence, vec![Evidence::SameMobile]);

        store.mark_distinct(&actor(), candidate.id).await.unwrap();
        assert!(pending(&store).await.is_empty());
        let distinct = store.match_candidates("distinct", 1, 20).await.unwrap();
        assert_eq!(distinct.items.len(), 1);
        assert_eq!(distinct.items[0].status, "distinct");
        assert_eq!(audit_actions(&store, "identity.distinct").await, 1);
        // Marking twice changes nothing.
        store.mark_distinct(&actor(), candidate.id).await.unwrap();
        assert_eq!(audit_actions(&store, "identity.distinct").await, 1);

        let again = resolve(&store).await;
        assert_eq!((again.pairs_scored, again.queued, again.merged), (1, 0, 0), "{again:?}");
        assert!(pending(&store).await.is_empty());
        assert!(matches!(store.mark_distinct(&actor(), 999_999).await, Err(StoreError::NotFound)));
    }

    pub async fn a_merge_keeps_both_records_and_undo_restores_them(store: Store) {
        text_attribute(&store, "student_no", false).await;
        text_attribute(&store, "hobby", true).await;
        let staff = store
            .create_user(
                &actor(),
                NewUser {
                    username: "li.na".into(),
                    display_name: "李娜".into(),
                    role: Role::Librarian,
                    department: None,
                    password: "li.na-password-1".into(),
                },
            )
            .await
            .unwrap();
        let librarian = Actor::user(staff.id, "li.na", "10.0.0.1");
        let mut a = draft("A100", "张伟");
        a.contacts = vec![contact("email", "zw@pku.edu.cn"), contact("mobile", "13800000001")];
        a.tags = vec!["研究生会".into()];
        a.attributes.insert("student_no".into(), AttrInput::One("S-1".into()));
        a.attributes.insert("hobby".into(), AttrInput::Many(vec!["围棋".into()]));
        a.notes = Some("左边的备注".into());
        let a = create(&store, a).await;
        let mut b = draft("B200", "张小伟");
        b.gender = Some("male".into());
        b.birth_date = Some("1999-09-09".into());
        b.affiliation = Some("物理学院".into());
        b.contacts = vec![contact("email", "ZW@PKU.edu.cn"), contact("email", "xiaowei@gmail.com")];
        b.related = vec![RelatedDraft { name: "张父".into(), relation: "父亲".into(), phone: Some("13900000000".into()), email: None }];
        b.tags = vec!["志愿者".into()];
        b.attributes.insert("student_no".into(), AttrInput::One("S-2".into()));
        b.attributes.insert("hobby".into(), AttrInput::Many(vec!["书法".into(), "围棋".into()]));
        b.owner = Some("li.na".into());
        let b = create(&store, b).await;

        // History on both: interactions, tasks, a case each, a hand-over, import links.
        store.record_interaction(&librarian, a.id, &talk("问借期")).await.unwrap();
        store.record_interaction(&librarian, b.id, &talk("问续借")).await.unwrap();
        let task = |title: &str| TaskInput { title: title.into(), notes: None, due_on: today(), assignee: "li.na".into() };
        store.create_task(&librarian, Some(a.id), &task("回电")).await.unwrap();
        store.create_task(&librarian, Some(b.id), &task("寄书")).await.unwrap();
        let case = |card: &str| CaseInput {
            kind: CaseKind::Inquiry,
            subject: "咨询".into(),
            body: "请问开馆时间".into(),
            card_no: Some(card.into()),
            contact_name: None,
            contact: None,
        };
        let (case_a, _) = store.create_case(&actor(), &case("A100"), CaseSource::Staff, None).await.unwrap();
        let (case_b, _) = store.create_case(&actor(), &case("B200"), CaseSource::Staff, None).await.unwrap();
        store.hand_over(&actor(), &[b.id], None, "毕业").await.unwrap();
        let pool = common::raw_pool().await;
        let now = "2025-03-01T00:00:00.000Z";
        sqlx::query("INSERT INTO import_sources (name, created_at) VALUES ('教务处', $1)").bind(now).execute(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO import_jobs (source_id, format, label, options, dry_run, spec, status, counts, created_by, created_at)
             SELECT id, 'csv', 'students.csv', '{}', 0, '{}', 'succeeded', '{}', 'test', $1 FROM import_sources",
        )
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
        for (ext, reader) in [("stu-1", a.id), ("stu-2", b.id)] {
            sqlx::query(
                "INSERT INTO reader_sources (source_id, external_id, reader_id, fingerprint, fields, first_job_id, last_job_id, seen_job_id)
                 SELECT s.id, $1, $2, 0, '{}', j.id, j.id, j.id FROM import_sources s, import_jobs j",
            )
            .bind(ext)
            .bind(reader)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query("INSERT INTO import_changes (job_id, reader_id, action, before_json) SELECT id, $1, 'updated', '{}' FROM import_jobs")
            .bind(b.id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let (a, b) = (store.reader(a.id).await.unwrap(), store.reader(b.id).await.unwrap());

        assert_eq!(resolve(&store).await.queued, 1, "a shared email alone is only a candidate");
        let candidate = pending(&store).await.remove(0);
        assert_eq!((candidate.left.id, candidate.right.id), (a.id, b.id));
        let bad = store.merge_candidate(&actor(), candidate.id, &choices("middle", &[("colour", "left"), ("notes", "up")])).await;
        match bad {
            Err(StoreError::Invalid(errs)) => {
                assert!(
                    errs.get("survivor").is_some() && errs.get("fields.colour").is_some() && errs.get("fields.notes").is_some(),
                    "{errs}"
                )
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let picks = [("birth_date", "right"), ("gender", "right"), ("affiliation", "right"), ("attributes.student_no", "right")];
        let merged = store.merge_candidate(&librarian, candidate.id, &choices("left", &picks)).await.unwrap();

        assert_eq!(merged.id, a.id);
        assert_eq!((merged.name.as_str(), merged.card_no.as_str()), ("张伟", "A100"), "unchosen fields keep the survivor's value");
        assert_eq!(merged.birth_date.as_deref(), Some("1999-09-09"));
        assert_eq!(merged.affiliation.as_deref(), Some("物理学院"));
        assert_eq!(merged.gender, b.gender);
        assert_eq!(merged.notes, a.notes);
        let values: Vec<&str> = merged.contacts.iter().map(|c| c.value.as_str()).collect();
        assert_eq!(values, vec!["zw@pku.edu.cn", "13800000001", "xiaowei@gmail.com"]);
        assert_eq!(merged.contacts.iter().filter(|c| c.primary && c.kind == a.contacts[0].kind).count(), 1, "one primary email");
        assert_eq!(merged.related, b.related);
        let mut tags = merged.tags.clone();
        tags.sort();
        assert_eq!(tags, vec!["志愿者".to_string(), "研究生会".to_string()]);
        assert_eq!(merged.attributes["student_no"], vec!["S-2".to_string()]);
        assert_eq!(merged.attributes["hobby"], vec!["围棋".to_string(), "书法".to_string()]);
        assert_eq!(merged.version, a.version + 1);

        // Both card numbers and both names find the survivor; the absorbed record is gone.
        assert_eq!(store.reader_by_card("B200").await.unwrap().id, a.id);
        assert!(matches!(store.reader(b.id).await, Err(StoreError::NotFound)));
        let found =
            |q: &str| ReaderQuery { q: lector_store::domain::search::SearchTerm::parse(q), page: 1, per_page: 20, ..Default::default() };
        for q in ["张小伟", "B200", "zhangxiaowei"] {
            let ids: Vec<i64> = store.readers(&found(q)).await.unwrap().items.iter().map(|r| r.id).collect();
            assert_eq!(ids, vec![a.id], "search {q}");
        }
        // The absorbed student number, which lost to the chosen one, is kept as an identifier.
        assert_eq!(rows_of("reader_identifiers", a.id).await, 2);
        // All history of both now belongs to the survivor.
        let interactions =
            store.interactions(&InteractionQuery { reader_id: Some(a.id), page: 1, per_page: 20, ..Default::default() }).await.unwrap();
        assert_eq!(interactions.total, 2);
        let tasks = store.tasks(&TaskQuery { reader_id: Some(a.id), page: 1, per_page: 20, ..Default::default() }).await.unwrap();
        assert_eq!(tasks.total, 2);
        assert_eq!(store.case(case_b.id).await.unwrap().reader_id, Some(a.id));
        assert_eq!(store.owner_history(a.id).await.unwrap().len(), 1);
        assert_eq!(rows_of("reader_sources", a.id).await, 2);
        assert_eq!(rows_of("import_changes", a.id).await, 1);

        let merges = store.merges(1, 20).await.unwrap().items;
        assert_eq!(merges.len(), 1);
        let m = &merges[0];
        assert_eq!((m.survivor_id, m.absorbed_id, m.absorbed_card_no.as_str(), m.absorbed_name.as_str()), (a.id, b.id, "B200", "张小伟"));
        assert_eq!((m.how.as_str(), m.by.as_str()), ("manual", "li.na"));
        let shown = store.match_candidate(candidate.id).await.unwrap();
        assert_eq!(shown.status, "merged");
        assert_eq!(
            (settled(shown.left), settled(shown.right)),
            (settled(a.clone()), settled(b.clone())),
            "a merged pair shows both records as they were"
        );
        assert!(conflict(store.merge_candidate(&librarian, candidate.id, &choices("left", &[])).await).contains("already been merged"));
        assert!(conflict(store.mark_distinct(&librarian, candidate.id).await).contains("undo the merge"));
        let trail = store.audit_trail("reader", &a.id.to_string()).await.unwrap();
        let entry = trail.iter().find(|e| e.action == "identity.merge").expect("merge audited on the survivor");
        assert!(entry.before.is_some() && entry.after.is_some());

        // Undo: both records exactly as they were, each with its own history.
        store.undo_merge(&librarian, m.id).await.unwrap();
        assert_eq!(settled(store.reader(a.id).await.unwrap()), settled(a.clone()));
        assert_eq!(settled(store.reader(b.id).await.unwrap()), settled(b.clone()));
        assert_eq!(store.reader_by_card("B200").await.unwrap().id, b.id);
        for (table, id, n) in [("interactions", a.id, 1), ("interactions", b.id, 1), ("tasks", a.id, 1), ("tasks", b.id, 1)] {
            assert_eq!(rows_of(table, id).await, n, "{table} of {id}");
        }
        assert_eq!(store.case(case_a.id).await.unwrap().reader_id, Some(a.id));
        assert_eq!(store.case(case_b.id).await.unwrap().reader_id, Some(b.id));
        assert_eq!(store.owner_history(b.id).await.unwrap().len(), 1);
        assert_eq!(store.owner_history(a.id).await.unwrap().len(), 0);
        for (table, n_a, n_b) in [("reader_sources", 1, 1), ("import_changes", 0, 1), ("reader_identifiers", 0, 0)] {
            assert_eq!((rows_of(table, a.id).await, rows_of(table, b.id).await), (n_a, n_b), "{table}");
        }
        let ids: Vec<i64> = store.readers(&found("张小伟")).await.unwrap().items.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![b.id]);
        assert_eq!(audit_actions(&store, "identity.unmerge").await, 1);
        assert!(store.merges(1, 20).await.unwrap().items[0].undone_at.is_some());
        assert!(conflict(store.undo_merge(&librarian, m.id).await).contains("already been undone"));
        // The pair is back in the review queue, not merged again by the next run.
        assert_eq!(pending(&store).await.len(), 1);
        let again = resolve(&store).await;
        assert_eq!((again.merged, again.queued), (0, 0));
        assert_eq!(reader_count(&store).await, 2);
    }

    pub async fn undo_waits_for_later_merges_of_the_survivor(store: Store) {
        let mut a = draft("R001", "陈静");
        a.contacts = vec![contact("email", "cj@lib.edu.cn")];
        let a = create(&store, a).await;
        let mut b = draft("R002", "陈 静");
        b.contacts = vec![contact("email", "CJ@lib.edu.cn"), contact("mobile", "13700000000")];
        let b = create(&store, b).await;
        let mut c = draft("R003", "陈静怡");
        c.contacts = vec![contact("mobile", "13700000000")];
        let c = create(&store, c).await;
        let report = resolve(&store).await;
        // b is absorbed into a; the b–c pair (b's mobile) is not queued, b being gone.
        assert_eq!((report.merged, report.queued), (1, 0), "{report:?}");
        assert!(pending(&store).await.is_empty());
        let again = resolve(&store).await;
        assert_eq!(again.queued, 1, "the survivor carries b's mobile into the next run");
        let candidate = pending(&store).await.remove(0);
        assert_eq!((candidate.left.id, candidate.right.id), (a.id, c.id));
        // a is absorbed into c this time.
        store.merge_candidate(&actor(), candidate.id, &choices("right", &[])).await.unwrap();
        let merges = store.merges(1, 20).await.unwrap().items;
        let (second, first) = (&merges[0], &merges[1]);
        assert_eq!((first.survivor_id, first.absorbed_id), (a.id, b.id));
        assert_eq!((second.survivor_id, second.absorbed_id), (c.id, a.id));
        assert_eq!(store.reader_by_card("R002").await.unwrap().id, c.id, "identifiers follow the survivor");
        assert!(conflict(store.undo_merge(&actor(), first.id).await).contains("later merge"));
        store.undo_merge(&actor(), second.id).await.unwrap();
        store.undo_merge(&actor(), first.id).await.unwrap();
        for r in [&a, &b, &c] {
            assert_eq!(settled(store.reader(r.id).await.unwrap()), settled(r.clone()));
        }
        assert!(matches!(store.undo_merge(&actor(), 999_999).await, Err(StoreError::NotFound)));
    }

    pub async fn blocking_compares_only_readers_sharing_a_key(store: Store) {
        let mut inputs = Vec::new();
        for i in 0..400 {
            let mut d = draft(&format!("U{i:04}"), &format!("读者{i}"));
            d.contacts = vec![contact("email", &format!("u{i}@example.edu.cn"))];
            d.birth_date = Some(format!("19{:02}-01-01", i % 100));
            inputs.push(input(&d));
        }
        // 60 readers sharing one department mailbox: a block too large to say anything.
        for i in 0..60 {
            let mut d = draft(&format!("M{i:04}"), &format!("馆员{i}"));
            d.contacts = vec![contact("email", "dept@example.edu.cn")];
            inputs.push(input(&d));
        }
        // One real duplicate.
        let mut d = draft("U9999", "读者7");
        d.contacts = vec![contact("email", "U7@Example.edu.cn")];
        inputs.push(input(&d));
        store.bulk_create_readers(&actor(), &inputs, "2025-03-01T00:00:00.000Z").await.unwrap();
        let report = resolve(&store).await;
        assert_eq!(report.readers, 461);
        assert_eq!(report.pairs_scored, 1, "{report:?}");
        assert_eq!(report.giant_blocks, 1);
        assert_eq!(report.merged, 1);
        assert_eq!(report.queued, 0);
    }
}

/// Heap bytes in use and their peak, counted for the million-reader figure (SQLite's own page
/// cache, bounded by its `cache_size`, is allocated outside Rust and not counted).
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    pub static HEAP: AtomicUsize = AtomicUsize::new(0);
    pub static PEAK: AtomicUsize = AtomicUsize::new(0);

    pub struct Counting;

    fn grew(by: usize) {
        let now = HEAP.fetch_add(by, Relaxed) + by;
        PEAK.fetch_max(now, Relaxed);
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = System.alloc(layout);
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout);
            HEAP.fetch_sub(layout.size(), Relaxed);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = System.realloc(ptr, layout, new_size);
            if !p.is_null() {
                if new_size >= layout.size() {
                    grew(new_size - layout.size());
                } else {
                    HEAP.fetch_sub(layout.size() - new_size, Relaxed);
                }
            }
            p
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;
}

/// Resolution over 1,000,000 readers (about 2% planted duplicates) on SQLite. Run in release:
/// `cargo test --release -p lector-store --test identity -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn resolve_a_million_readers() {
    use lector_store::domain::name::pinyin_of;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const TOTAL: usize = 1_000_000;
    const FAMILY: &[&str] = &[
        "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林", "罗", "郑", "梁",
        "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡",
    ];
    const GIVEN: &str = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国新文斌宇浩凯健俊帆思晨阳雪梅琳欣怡佳子涵博瑞泽轩雨婷晓东海波峰云飞亮";
    const PLACES: &[&str] =
        &["计算机学院", "物理学院", "化学学院", "数学科学学院", "外国语学院", "法学院", "经济学院", "医学部", "历史学系", "哲学系"];
    let given: Vec<char> = GIVEN.chars().collect();
    let mut rng = StdRng::seed_from_u64(2026);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("big.db").display())).await.unwrap();
    let started = std::time::Instant::now();
    let originals = TOTAL * 98 / 100;
    let mut drafts: Vec<ReaderDraft> = Vec::with_capacity(TOTAL);
    for i in 0..originals {
        let family = FAMILY[rng.gen_range(0..FAMILY.len())];
        let n = rng.gen_range(1..=2);
        let name: String =
            std::iter::once(family.to_string()).chain((0..n).map(|_| given[rng.gen_range(0..given.len())].to_string())).collect();
        let mut d = draft(&format!("C{i:07}"), &name);
        if rng.gen_bool(0.8) {
            d.birth_date = Some(format!("{}-{:02}-{:02}", rng.gen_range(1960..2006), rng.gen_range(1..=12), rng.gen_range(1..=28)));
        }
        if rng.gen_bool(0.7) {
            d.affiliation = Some(PLACES[rng.gen_range(0..PLACES.len())].into());
        }
        d.contacts = vec![contact("email", &format!("u{i}@example.edu.cn")), contact("mobile", &format!("13{i:09}"))];
        drafts.push(d);
    }
    for j in 0..TOTAL - originals {
        let k = rng.gen_range(0..originals);
        let o = drafts[k].clone();
        let mut d = draft(&format!("D{j:07}"), &o.name);
        d.birth_date = o.birth_date.clone();
        match j % 3 {
            0 => {
                d.name = o.name.chars().map(String::from).collect::<Vec<_>>().join(" ");
                d.contacts = vec![contact("email", &o.contacts[0].value.to_uppercase())];
            }
            1 => {
                d.contacts = vec![contact("mobile", &format!("+86 {}", o.contacts[1].value))];
                d.birth_date = o.birth_date.clone().or(Some("1980-01-01".into()));
            }
            _ => {
                let mut chars = o.name.chars();
                let family = chars.next().map(String::from).unwrap_or_default();
                let cap = |s: String| s[..1].to_uppercase() + &s[1..];
                d.name = format!("{} {}", cap(pinyin_of(&family).full), cap(pinyin_of(chars.as_str()).full));
                d.birth_date = o.birth_date.clone().or(Some("1980-01-01".into()));
            }
        }
        if j % 3 != 0 && o.birth_date.is_none() {
            // The original gets the birth date the duplicate carries.
            drafts[k].birth_date = d.birth_date.clone();
        }
        drafts.push(d);
    }
    for chunk in drafts.chunks(20_000) {
        let inputs: Vec<ReaderInput> = chunk.iter().map(input).collect();
        store.bulk_create_readers(&actor(), &inputs, "2025-03-01T00:00:00.000Z").await.unwrap();
    }
    drop(drafts);
    println!("loaded {TOTAL} readers in {:.1} s", started.elapsed().as_secs_f64());
    let baseline = heap::HEAP.load(Ordering::Relaxed);
    heap::PEAK.store(baseline, Ordering::Relaxed);
    let report = store.resolve_identities(&actor()).await.unwrap();
    let peak_mb = (heap::PEAK.load(Ordering::Relaxed) - baseline) >> 20;
    println!("{report:?}; heap peak during resolution {peak_mb} MB above the {} MB held before", baseline >> 20);
    assert_eq!(report.readers, TOTAL as u64);
    assert!(report.merged >= 13_000, "{report:?}");
    assert!(report.queued >= 6_000, "{report:?}");
    store.close().await;
}
