//! What the warehouse reads from the store and the bookkeeping of its loads, on SQLite and
//! PostgreSQL.

#[macro_use]
#[allow(dead_code)]
mod common;

use chrono::{Duration as Span, NaiveDate, Utc};
use common::{actor, draft, raw_pool, today};
use lector_store::auth::NewUser;
use lector_store::cases::CaseSource;
use lector_store::channels::ChannelInput;
use lector_store::config::NamedInput;
use lector_store::consent::TOKEN_SECRET_KEY;
use lector_store::domain::case::{CaseAction, CaseInput, CaseKind, CaseStatus, Priority, RatingDraft, TriageOutcome};
use lector_store::domain::messaging::{ChannelKind, ChannelSettings, ConsentSource, OutboxStatus, Purpose, SmtpSecurity};
use lector_store::domain::reader::ReaderDraft;
use lector_store::domain::role::Role;
use lector_store::domain::tracking::{Channel, Direction, InteractionInput};
use lector_store::outbox::{Failure, NewMessage, OutboxPolicy};
use lector_store::readers::ReaderRecord;
use lector_store::templates::{TemplateInput, TemplateVariant};
use lector_store::warehouse_extract::{Lease, PageRequest, READER_KEY_SECRET_KEY};
use lector_store::{Actor, Store};
use std::time::Duration;

scenarios!(
    scenario:
    interactions_are_read_in_id_pages_up_to_the_settled_ones,
    case_events_carry_their_case_and_the_rating,
    message_outcomes_are_read_until_marked_exported,
    only_unsubscribe_link_withdrawals_are_read,
    reader_versions_are_recorded_with_their_generation,
    the_reader_key_secret_is_made_once_and_kept_apart,
    one_server_at_a_time_holds_the_refresh_lease,
);

async fn reader(store: &Store, card: &str, name: &str, edit: impl FnOnce(&mut ReaderDraft)) -> ReaderRecord {
    let mut d = draft(card, name);
    edit(&mut d);
    let input = d.parse(today()).unwrap_or_else(|e| panic!("draft {card}: {e}"));
    store.create_reader(&actor(), &input).await.unwrap_or_else(|e| panic!("create {card}: {e}"))
}

async fn librarian(store: &Store) -> Actor {
    let user = store
        .create_user(
            &actor(),
            NewUser {
                username: "wang".into(),
                display_name: "王老师".into(),
                role: Role::Admin,
                department: None,
                password: "wang-password-1".into(),
            },
        )
        .await
        .unwrap();
    Actor::user(user.id, "wang", "10.0.0.1")
}

fn page(after_id: i64, limit: i64) -> PageRequest {
    PageRequest { after_id, limit, settled_before: Utc::now() + Span::minutes(1) }
}

fn contact(channel: Channel, at: &str) -> InteractionInput {
    InteractionInput {
        channel,
        direction: Direction::Inbound,
        subject: "续借咨询".into(),
        notes: Some("读者张三来电".into()),
        occurred_at: chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M").unwrap(),
    }
}

/// An email channel and a template; returns (channel id, template id).
async fn mail_setup(store: &Store) -> (i64, i64) {
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
    let channel = store
        .create_channel(
            &actor(),
            &ChannelInput { code: "mail".into(), name: "邮件".into(), settings, secret: None, rate_per_second: 50, enabled: true },
        )
        .await
        .unwrap();
    let template = store
        .create_template(
            &actor(),
            &TemplateInput {
                code: "notice".into(),
                name: "通知".into(),
                purpose: Purpose::News,
                variants: vec![TemplateVariant {
                    channel_kind: ChannelKind::Email,
                    lang: "zh".into(),
                    subject: "通知".into(),
                    body_text: "您好".into(),
                    body_html: None,
                }],
            },
        )
        .await
        .unwrap();
    (channel.id, template.id)
}

fn message(key: &str, reader_id: i64, channel: i64, template: i64) -> NewMessage {
    NewMessage {
        dedupe_key: key.into(),
        campaign_id: None,
        trigger: None,
        reader_id: Some(reader_id),
        channel_id: channel,
        address: format!("{key}@example.edu.cn"),
        template_id: template,
        vars: serde_json::Value::Null,
        purpose: Purpose::News,
        lang: "zh".into(),
        not_before: None,
    }
}

mod scenario {
    use super::*;

    pub async fn interactions_are_read_in_id_pages_up_to_the_settled_ones(store: Store) {
        let r = reader(&store, "R001", "张三", |_| {}).await;
        let staff = librarian(&store).await;
        let mut ids = Vec::new();
        for (channel, at) in
            [(Channel::Phone, "2025-02-01 10:00"), (Channel::Visit, "2025-02-03 15:30"), (Channel::Email, "2025-03-01 09:05")]
        {
            ids.push(store.record_interaction(&staff, r.id, &contact(channel, at)).await.unwrap().id);
        }
        let first = store.interactions_since(page(0, 2)).await.unwrap();
        assert_eq!(first.iter().map(|i| i.id).collect::<Vec<_>>(), ids[..2]);
        assert_eq!((first[0].channel.as_str(), first[0].direction.as_str()), ("phone", "inbound"));
        assert_eq!(first[0].staff.as_deref(), Some("wang"));
        assert_eq!(first[0].reader_id, r.id);
        assert_eq!(first[1].occurred_at.format("%Y-%m-%d %H:%M").to_string(), "2025-02-03 15:30");
        let rest = store.interactions_since(page(ids[1], 2)).await.unwrap();
        assert_eq!(rest.iter().map(|i| (i.id, i.channel.as_str())).collect::<Vec<_>>(), vec![(ids[2], "email")]);
        assert!(store.interactions_since(page(ids[2], 2)).await.unwrap().is_empty());
        // Rows recorded after the settling point wait for a later refresh.
        let unsettled = PageRequest { settled_before: Utc::now() - Span::minutes(5), ..page(0, 10) };
        assert!(store.interactions_since(unsettled).await.unwrap().is_empty());
    }

    pub async fn case_events_carry_their_case_and_the_rating(store: Store) {
        store
            .create_department(&actor(), &NamedInput { code: "ref".into(), name_zh: "参考咨询部".into(), name_en: "Reference".into() })
            .await
            .unwrap();
        let r = reader(&store, "R001", "张三", |_| {}).await;
        let staff = librarian(&store).await;
        let input = CaseInput {
            kind: CaseKind::Complaint,
            subject: "自习室太吵".into(),
            body: "晚上自习室很吵".into(),
            card_no: Some("R001".into()),
            contact_name: Some("张三".into()),
            contact: Some("13800138000".into()),
        };
        let (mut c, _) = store.create_case(&actor(), &input, CaseSource::Staff, None).await.unwrap();
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
            c = store.act_on_case(&staff, c.id, &a, c.version).await.unwrap_or_else(|e| panic!("{}: {e}", a.code()));
        }
        if c.status == CaseStatus::AwaitingApproval {
            c = store.act_on_case(&staff, c.id, &CaseAction::Approve { comment: None }, c.version).await.unwrap();
        }
        store.act_on_case(&staff, c.id, &CaseAction::Resolve { reply: "已增加巡查".into() }, c.version).await.unwrap();
        let rating = RatingDraft { satisfaction: 4, recommend: Some(8), comment: Some("谢谢".into()) };
        store.rate_own_case(r.id, c.id, &rating, "10.0.0.1").await.unwrap();

        let stored = store.case_events(c.id).await.unwrap();
        let events = store.case_events_since(page(0, 100)).await.unwrap();
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), stored.iter().map(|e| e.id).collect::<Vec<_>>());
        assert!(events.iter().all(|e| e.case_id == c.id && e.reader_id == Some(r.id) && e.kind == "complaint"));
        assert!(events.iter().all(|e| e.department.as_deref() == Some("ref") && e.priority == "high"));
        assert_eq!(events[0].action, "create");
        assert_eq!((events[0].from_status.as_deref(), events[0].to_status.as_str()), (None, "received"));
        let rated: Vec<_> = events.iter().filter(|e| e.rating_satisfaction.is_some()).collect();
        assert_eq!(rated.len(), 1, "only the rating event carries the rating");
        assert_eq!((rated[0].action.as_str(), rated[0].rating_satisfaction, rated[0].rating_recommend), ("rate", Some(4), Some(8)));
        assert_eq!(rated[0].to_status, "closed");
        let last_two = store.case_events_since(page(events[events.len() - 3].id, 100)).await.unwrap();
        assert_eq!(last_two.len(), 2);
    }

    pub async fn message_outcomes_are_read_until_marked_exported(store: Store) {
        let r = reader(&store, "R001", "张三", |_| {}).await;
        let (channel, template) = mail_setup(&store).await;
        let sent = store.enqueue_message(&message("a", r.id, channel, template)).await.unwrap().unwrap();
        let failed = store.enqueue_message(&message("b", r.id, channel, template)).await.unwrap().unwrap();
        let claimed = store.claim_messages("w1", 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), vec![sent, failed]);
        let waiting = store.enqueue_message(&message("c", r.id, channel, template)).await.unwrap().unwrap();
        store.mark_sent(sent, "w1").await.unwrap();
        let status =
            store.mark_failed(failed, "w1", &Failure::Permanent("550 no such user".into()), &OutboxPolicy::default()).await.unwrap();
        assert_eq!(status, OutboxStatus::Failed);

        let outcomes = store.unexported_message_outcomes(0, 10).await.unwrap();
        assert_eq!(
            outcomes.iter().map(|o| (o.id, o.status)).collect::<Vec<_>>(),
            vec![(sent, OutboxStatus::Sent), (failed, OutboxStatus::Failed)]
        );
        let first = &outcomes[0];
        assert_eq!((first.reader_id, first.channel_kind.as_str(), first.purpose.as_str()), (Some(r.id), "email", "news"));
        assert_eq!((first.failed_attempts, outcomes[1].failed_attempts), (0, 1));
        let stored = store.outbox_message(sent).await.unwrap();
        assert_eq!(first.finished_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(), stored.sent_at.unwrap());
        // Paging within one refresh, before anything is marked.
        assert_eq!(store.unexported_message_outcomes(sent, 10).await.unwrap().len(), 1);

        assert_eq!(store.mark_messages_exported(&[sent, failed]).await.unwrap(), 2);
        assert_eq!(store.mark_messages_exported(&[sent]).await.unwrap(), 0, "marking twice changes nothing");
        assert!(store.unexported_message_outcomes(0, 10).await.unwrap().is_empty());
        // The message that finishes later is found although its neighbours were marked.
        store.claim_messages("w1", 10, Duration::from_secs(60)).await.unwrap();
        store.mark_sent(waiting, "w1").await.unwrap();
        let later = store.unexported_message_outcomes(0, 10).await.unwrap();
        assert_eq!(later.iter().map(|o| o.id).collect::<Vec<_>>(), vec![waiting]);
    }

    pub async fn only_unsubscribe_link_withdrawals_are_read(store: Store) {
        let r = reader(&store, "R001", "张三", |_| {}).await;
        let other = reader(&store, "R002", "李四", |_| {}).await;
        // Withdrawn by staff: not an unsubscribe.
        assert!(store.set_consent(&actor(), r.id, Purpose::Service, ChannelKind::Sms, false, ConsentSource::Staff).await.unwrap());
        assert!(store.set_consent(&actor(), other.id, Purpose::News, ChannelKind::Sms, true, ConsentSource::Portal).await.unwrap());
        let unsub = Actor::system("unsubscribe");
        assert!(store.set_consent(&unsub, other.id, Purpose::News, ChannelKind::Sms, false, ConsentSource::Unsubscribe).await.unwrap());
        assert!(store.set_consent(&unsub, r.id, Purpose::Service, ChannelKind::Email, false, ConsentSource::Unsubscribe).await.unwrap());
        let rows = store.unsubscribes_since(page(0, 10)).await.unwrap();
        let seen: Vec<_> = rows.iter().map(|u| (u.reader_id, u.purpose.as_str(), u.channel_kind.as_str())).collect();
        assert_eq!(seen, vec![(other.id, "news", "sms"), (r.id, "service", "email")]);
        assert!(store.unsubscribes_since(page(rows[1].id, 10)).await.unwrap().is_empty());
    }

    pub async fn reader_versions_are_recorded_with_their_generation(store: Store) {
        let a = reader(&store, "R001", "张三", |d| {
            d.gender = Some("女".into());
            d.birth_date = Some("2003-05-17".into());
            d.affiliation = Some("信息科学技术学院".into());
            d.enrolled_on = Some("2021-09-01".into());
            d.expires_on = Some("2025-07-01".into());
        })
        .await;
        let b = reader(&store, "R002", "李四", |d| d.category = "faculty".into()).await;
        let c = reader(&store, "R003", "王五", |_| {}).await;

        let all = store.readers_for_warehouse(0, 10).await.unwrap();
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a.id, b.id, c.id]);
        let first = &all[0];
        assert_eq!((first.category.as_str(), first.gender.as_str(), first.status.as_str()), ("undergraduate", "female", "active"));
        assert_eq!(first.affiliation.as_deref(), Some("信息科学技术学院"));
        assert_eq!((first.birth_date, first.enrolled_on), (NaiveDate::from_ymd_opt(2003, 5, 17), NaiveDate::from_ymd_opt(2021, 9, 1)));
        assert_eq!(all[1].category, "faculty");
        assert!(all.iter().all(|r| r.exported.is_none()), "nothing exported yet");
        assert_eq!(store.exported_reader_generation().await.unwrap(), 0);

        store.record_exported_readers(1, &[(a.id, "h-a1".into()), (b.id, "h-b1".into())]).await.unwrap();
        assert_eq!(store.exported_reader_generation().await.unwrap(), 1);
        // A new hash replaces the old one; a reader deleted meanwhile does not fail the record.
        store.record_exported_readers(2, &[(a.id, "h-a2".into()), (999_999, "h-gone".into())]).await.unwrap();
        assert_eq!(store.exported_reader_generation().await.unwrap(), 2);
        let page = store.readers_for_warehouse(0, 2).await.unwrap();
        let hashes: Vec<_> = page.iter().map(|r| r.exported.as_ref().map(|e| e.attr_hash.as_str())).collect();
        assert_eq!(hashes, vec![Some("h-a2"), Some("h-b1")]);
        assert!(page[0].exported.as_ref().unwrap().exported_at >= page[1].exported.as_ref().unwrap().exported_at);
        let rest = store.readers_for_warehouse(b.id, 10).await.unwrap();
        assert_eq!((rest.len(), rest[0].id, rest[0].exported.is_none()), (1, c.id, true));
    }

    pub async fn the_reader_key_secret_is_made_once_and_kept_apart(store: Store) {
        let secret = store.reader_key_secret().await.unwrap();
        assert_eq!(secret.len(), 32);
        let again = Store::open(&common::db_url()).await.unwrap();
        assert_eq!(again.reader_key_secret().await.unwrap(), secret, "another server gets the same secret");
        again.close().await;
        store.unsubscribe_token(1, Purpose::News, ChannelKind::Email).await.unwrap();
        let pool = raw_pool().await;
        let stored = |key: &'static str| {
            let pool = pool.clone();
            async move {
                let v: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_one(&pool).await.unwrap();
                v
            }
        };
        let (reader_key, token) = (stored(READER_KEY_SECRET_KEY).await, stored(TOKEN_SECRET_KEY).await);
        assert_ne!(reader_key, token, "each purpose has its own secret");
        assert_eq!(reader_key, serde_json::Value::String(hex_of(&secret)).to_string());
        pool.close().await;
    }

    pub async fn one_server_at_a_time_holds_the_refresh_lease(store: Store) {
        let minute = Duration::from_secs(60);
        assert_eq!(store.take_refresh_lease("server-a", minute).await.unwrap(), Lease::Taken);
        match store.take_refresh_lease("server-b", minute).await.unwrap() {
            Lease::HeldBy { holder, until } => {
                assert_eq!(holder, "server-a");
                assert!(until > lector_store::now_text(), "{until}");
            }
            Lease::Taken => panic!("a held lease was taken by another server"),
        }
        assert_eq!(store.take_refresh_lease("server-a", minute).await.unwrap(), Lease::Taken, "the holder renews");
        store.release_refresh_lease("server-b").await.unwrap();
        assert!(matches!(store.take_refresh_lease("server-b", minute).await.unwrap(), Lease::HeldBy { .. }), "only the holder releases");
        store.release_refresh_lease("server-a").await.unwrap();
        assert_eq!(store.take_refresh_lease("server-b", minute).await.unwrap(), Lease::Taken);

        // A holder that died: its lease runs out and another server takes over.
        let pool = raw_pool().await;
        sqlx::query("UPDATE warehouse_lease SET expires_at = '2000-01-01T00:00:00.000Z'").execute(&pool).await.unwrap();
        pool.close().await;
        assert_eq!(store.take_refresh_lease("server-c", minute).await.unwrap(), Lease::Taken);
        store.release_refresh_lease("server-c").await.unwrap();

        // Servers asking at once: exactly one gets it.
        let mut tasks = Vec::new();
        for i in 0..4 {
            let s = Store::open(&common::db_url()).await.unwrap();
            tasks.push(tokio::spawn(async move {
                let got = s.take_refresh_lease(&format!("racer-{i}"), minute).await.unwrap();
                s.close().await;
                got
            }));
        }
        let mut taken = 0;
        for t in tasks {
            taken += usize::from(t.await.unwrap() == Lease::Taken);
        }
        assert_eq!(taken, 1);
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
