//! Campaigns and triggered messages on SQLite and PostgreSQL: who is queued (consent, address,
//! fallback order, blocked addresses), exactly once however often a campaign is started, the
//! transitions and their refusals, the scheduler, the sweeps and the case hooks.

#[macro_use]
mod common;

use common::{actor, db_url, draft, raw_count, raw_pool, today};
use lector_store::campaigns::Campaign;
use lector_store::cases::CaseSource;
use lector_store::channels::{Channel, ChannelInput};
use lector_store::domain::campaign::{CampaignDraft, CampaignInput};
use lector_store::domain::case::{CaseAction, CaseInput, CaseKind, Priority, TriageOutcome};
use lector_store::domain::messaging::{CampaignStatus, ChannelKind, ConsentSource, OutboxStatus, Purpose, Trigger};
use lector_store::domain::reader::{ContactDraft, ReaderDraft};
use lector_store::readers::ReaderRecord;
use lector_store::segments::SegmentInput;
use lector_store::templates::{TemplateInput, TemplateVariant};
use lector_store::triggers::{TriggerOutcome, TriggerSettingInput};
use lector_store::{Actor, Store, StoreError};
use serde_json::json;
use sqlx::Row;

scenarios!(
    campaigns:
    consent_defaults_and_withdrawals_are_respected,
    channels_fall_back_in_preference_order,
    blocked_addresses_are_skipped,
    a_segment_matching_nobody_is_refused,
    starting_twice_queues_each_reader_once,
    illegal_transitions_change_nothing,
    pause_keeps_rows_pending_and_cancel_cancels_them,
    the_scheduler_starts_due_campaigns_once_and_completes_them,
    the_report_counts_by_channel_and_status,
    drafts_are_validated_against_the_store,
    history_is_recorded_without_sending,
);

scenarios!(
    triggers:
    settings_are_validated_and_audited,
    a_trigger_goes_to_the_first_reachable_channel,
    an_address_alone_picks_a_channel_of_its_kind,
    welcome_greets_readers_created_since_enabled,
    card_expiry_reminds_once_and_catches_up,
    case_updates_reach_the_reader,
);

// ---- fixtures ----

async fn channel(store: &Store, code: &str, settings: serde_json::Value) -> Channel {
    let input = ChannelInput {
        code: code.into(),
        name: format!("渠道 {code}"),
        settings: serde_json::from_value(settings).expect("channel settings"),
        secret: None,
        rate_per_second: 100,
        enabled: true,
    };
    store.create_channel(&actor(), &input).await.unwrap_or_else(|e| panic!("channel {code}: {e}"))
}

async fn email(store: &Store, code: &str, qq_mailbox: bool) -> Channel {
    let settings = json!({"kind": "email", "host": "127.0.0.1", "port": 2525, "security": "plain", "username": null,
        "from_address": "library@example.edu.cn", "from_name": "图书馆", "qq_mailbox": qq_mailbox});
    channel(store, code, settings).await
}

async fn sms(store: &Store) -> Channel {
    channel(store, "sms", json!({"kind": "sms", "url": "http://127.0.0.1:9/sms", "mobile_field": "mobile", "text_field": "text"})).await
}

async fn wecom(store: &Store) -> Channel {
    channel(store, "wecom", json!({"kind": "wecom", "url": "http://127.0.0.1:9/wecom"})).await
}

async fn template(store: &Store, code: &str, purpose: Purpose) -> i64 {
    let variant = |kind: ChannelKind| TemplateVariant {
        channel_kind: kind,
        lang: "zh".into(),
        subject: "讲座通知".into(),
        body_text: "{{ reader.name }}，您好".into(),
        body_html: None,
    };
    let input = TemplateInput {
        code: code.into(),
        name: format!("模板 {code}"),
        purpose,
        variants: vec![variant(ChannelKind::Email), variant(ChannelKind::Sms), variant(ChannelKind::Wecom)],
    };
    store.create_template(&actor(), &input).await.unwrap_or_else(|e| panic!("template {code}: {e}")).id
}

/// A segment of the readers tagged `tag`.
async fn segment(store: &Store, tag: &str) -> i64 {
    let input = SegmentInput {
        name: format!("标签 {tag}"),
        description: String::new(),
        filter: json!({"all": [{"field": "tag", "op": "eq", "value": tag}]}),
    };
    store.create_segment(&actor(), &input).await.unwrap_or_else(|e| panic!("segment {tag}: {e}")).id
}

async fn reader(store: &Store, card: &str, tag: &str, contacts: &[(&str, &str)]) -> ReaderRecord {
    let d = ReaderDraft {
        tags: vec![tag.into()],
        contacts: contacts
            .iter()
            .enumerate()
            .map(|(i, (k, v))| ContactDraft { kind: (*k).into(), value: (*v).into(), primary: i == 0, verified: false })
            .collect(),
        ..draft(card, "王小明")
    };
    let input = d.parse(today()).unwrap_or_else(|e| panic!("draft {card}: {e}"));
    store.create_reader(&actor(), &input).await.unwrap_or_else(|e| panic!("reader {card}: {e}"))
}

fn input(name: &str, segment_id: i64, template_id: i64, purpose: Option<Purpose>, channels: &[&str]) -> CampaignInput {
    CampaignInput {
        name: name.into(),
        segment_id,
        template_id,
        purpose,
        channels: channels.iter().map(|c| c.to_string()).collect(),
        scheduled_at: None,
        quiet_hours: None,
    }
}

async fn consent(store: &Store, reader_id: i64, purpose: Purpose, kind: ChannelKind, granted: bool) {
    store.set_consent(&actor(), reader_id, purpose, kind, granted, ConsentSource::Staff).await.expect("set consent");
}

/// The campaign's outbox rows as (card number, channel code, address, status), by card number.
async fn rows(campaign_id: i64) -> Vec<(String, String, String, String)> {
    let pool = raw_pool().await;
    let rows = sqlx::query(
        "SELECT r.card_no, ch.code, o.address, o.status, o.dedupe_key FROM outbox o JOIN readers r ON r.id = o.reader_id
         JOIN channels ch ON ch.id = o.channel_id WHERE o.campaign_id = $1 ORDER BY r.card_no",
    )
    .bind(campaign_id)
    .fetch_all(&pool)
    .await
    .expect("outbox rows");
    pool.close().await;
    rows.iter()
        .map(|r| {
            let key: String = r.get("dedupe_key");
            assert!(key.starts_with(&format!("campaign:{campaign_id}:reader:")), "{key}");
            (r.get("card_no"), r.get("code"), r.get("address"), r.get("status"))
        })
        .collect()
}

fn cards(rows: &[(String, String, String, String)]) -> Vec<&str> {
    rows.iter().map(|r| r.0.as_str()).collect()
}

async fn audit_count(action: &str, id: i64) -> i64 {
    let pool = raw_pool().await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1 AND entity_id = $2")
        .bind(action.to_string())
        .bind(id.to_string())
        .fetch_one(&pool)
        .await
        .expect("audit count");
    pool.close().await;
    n
}

async fn execute(sql: &str) {
    let pool = raw_pool().await;
    sqlx::query(sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
}

fn conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> lector_store::domain::Msg {
    match r {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

mod campaigns {
    use super::*;

    pub async fn consent_defaults_and_withdrawals_are_respected(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "lecture", Purpose::News).await;
        let seg = segment(&store, "讲座").await;
        let opted_in = reader(&store, "C001", "讲座", &[("email", "a@pku.edu.cn")]).await;
        reader(&store, "C002", "讲座", &[("email", "b@pku.edu.cn")]).await; // never said anything
        let withdrew = reader(&store, "C003", "讲座", &[("email", "c@pku.edu.cn")]).await;
        reader(&store, "C004", "其他", &[("email", "d@pku.edu.cn")]).await; // not in the segment
        consent(&store, opted_in.id, Purpose::News, ChannelKind::Email, true).await;
        consent(&store, withdrew.id, Purpose::News, ChannelKind::Email, true).await;
        consent(&store, withdrew.id, Purpose::News, ChannelKind::Email, false).await;
        // Opted in by SMS only: no consent for email.
        consent(&store, withdrew.id, Purpose::News, ChannelKind::Sms, true).await;

        // News needs an opt-in: only C001. The campaign takes the template's purpose.
        let news = store.create_campaign(&actor(), &input("讲座通知", seg, tpl, None, &["email"])).await.unwrap();
        assert_eq!(news.purpose, Purpose::News);
        let audience = store.campaign_audience(news.id).await.unwrap();
        assert_eq!((audience.members, audience.recipients, audience.excluded_consent, audience.excluded_address), (3, 1, 2, 0));
        let started = store.start_campaign(&actor(), news.id).await.unwrap();
        assert_eq!(started.status, CampaignStatus::Sending);
        assert_eq!((started.recipients, started.excluded_consent, started.excluded_address), (1, 2, 0));
        assert_eq!(cards(&rows(news.id).await), ["C001"]);

        // Service notices go to everyone who has not withdrawn them.
        consent(&store, opted_in.id, Purpose::Service, ChannelKind::Email, false).await;
        let service = store.create_campaign(&actor(), &input("闭馆通知", seg, tpl, Some(Purpose::Service), &["email"])).await.unwrap();
        let started = store.start_campaign(&actor(), service.id).await.unwrap();
        assert_eq!(started.recipients, 2);
        let queued = rows(service.id).await;
        assert_eq!(cards(&queued), ["C002", "C003"]);
        assert!(queued.iter().all(|r| r.3 == "pending"));
    }

    pub async fn channels_fall_back_in_preference_order(store: Store) {
        wecom(&store).await;
        sms(&store).await;
        email(&store, "email", true).await;
        let tpl = template(&store, "notice", Purpose::Service).await;
        let seg = segment(&store, "全体").await;
        // Mobile and email: WeCom first.
        reader(&store, "F001", "全体", &[("mobile", "13800000001"), ("email", "f1@pku.edu.cn")]).await;
        // Withdrew WeCom service notices: SMS to the same mobile.
        let no_wecom = reader(&store, "F002", "全体", &[("mobile", "13800000002"), ("email", "f2@pku.edu.cn")]).await;
        consent(&store, no_wecom.id, Purpose::Service, ChannelKind::Wecom, false).await;
        // No mobile: email.
        reader(&store, "F003", "全体", &[("email", "f3@pku.edu.cn")]).await;
        // Only a QQ number: the email channel writes to the QQ mailbox.
        reader(&store, "F004", "全体", &[("qq", "123456789")]).await;
        // Two emails: the primary one.
        reader(&store, "F005", "全体", &[("email", "primary@pku.edu.cn"), ("email", "second@pku.edu.cn")]).await;
        // Nothing to write to.
        reader(&store, "F006", "全体", &[("phone", "010-62751234")]).await;

        let c = store.create_campaign(&actor(), &input("通知", seg, tpl, None, &["wecom", "sms", "email"])).await.unwrap();
        let audience = store.campaign_audience(c.id).await.unwrap();
        let per: Vec<(&str, i64)> = audience.per_channel.iter().map(|p| (p.code.as_str(), p.count)).collect();
        assert_eq!(per, [("wecom", 1), ("sms", 1), ("email", 3)]);
        assert_eq!((audience.members, audience.recipients, audience.excluded_address), (6, 5, 1));
        store.start_campaign(&actor(), c.id).await.unwrap();
        let queued: Vec<(String, String, String)> = rows(c.id).await.into_iter().map(|r| (r.0, r.1, r.2)).collect();
        let expect = [
            ("F001", "wecom", "13800000001"),
            ("F002", "sms", "13800000002"),
            ("F003", "email", "f3@pku.edu.cn"),
            ("F004", "email", "123456789@qq.com"),
            ("F005", "email", "primary@pku.edu.cn"),
        ];
        assert_eq!(queued.len(), expect.len(), "{queued:?}");
        for (got, want) in queued.iter().zip(expect) {
            assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str()), want);
        }
        let after = store.campaign(c.id).await.unwrap();
        assert_eq!((after.recipients, after.excluded_address, after.excluded_consent), (5, 1, 0));
    }

    pub async fn blocked_addresses_are_skipped(store: Store) {
        sms(&store).await;
        email(&store, "email", false).await;
        let tpl = template(&store, "notice", Purpose::Service).await;
        let seg = segment(&store, "B").await;
        reader(&store, "B001", "B", &[("email", "bounced@pku.edu.cn"), ("mobile", "13900000001")]).await;
        reader(&store, "B002", "B", &[("email", "gone@pku.edu.cn")]).await;
        reader(&store, "B003", "B", &[("email", "fine@pku.edu.cn")]).await;
        execute(&format!(
            "INSERT INTO address_health (channel_kind, address, failures, last_error, blocked_at, updated_at) VALUES
             ('email', 'bounced@pku.edu.cn', 1, '550 no such user', '{0}', '{0}'),
             ('email', 'gone@pku.edu.cn', 1, '550 no such user', '{0}', '{0}'),
             ('email', 'fine@pku.edu.cn', 2, 'timeout', NULL, '{0}')",
            lector_store::now_text()
        ))
        .await;
        let c = store.create_campaign(&actor(), &input("通知", seg, tpl, None, &["email", "sms"])).await.unwrap();
        let audience = store.campaign_audience(c.id).await.unwrap();
        assert_eq!((audience.recipients, audience.excluded_blocked, audience.excluded_address), (2, 1, 0));
        store.start_campaign(&actor(), c.id).await.unwrap();
        let queued: Vec<(String, String)> = rows(c.id).await.into_iter().map(|r| (r.0, r.1)).collect();
        // B001's email bounced: SMS instead. B002 has nowhere else to go. Failures short of a
        // block (B003) do not stop anything.
        assert_eq!(queued, [("B001".to_string(), "sms".to_string()), ("B003".into(), "email".into())]);
        let after = store.campaign(c.id).await.unwrap();
        assert_eq!((after.recipients, after.excluded_address), (2, 1), "blocked counts with no address on the campaign");
    }

    pub async fn a_segment_matching_nobody_is_refused(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "notice", Purpose::News).await;
        let nobody = segment(&store, "无人").await;
        let c = store.create_campaign(&actor(), &input("空", nobody, tpl, None, &["email"])).await.unwrap();
        let audience = store.campaign_audience(c.id).await.unwrap();
        assert_eq!((audience.members, audience.recipients), (0, 0));
        let m = conflict(store.start_campaign(&actor(), c.id).await);
        assert!(m.en.contains("matches no reader") && m.zh.contains("没有任何读者"), "{m}");
        // Members, but nobody consented to news: refused too, saying why.
        let seg = segment(&store, "未授权").await;
        reader(&store, "N001", "未授权", &[("email", "n1@pku.edu.cn")]).await;
        reader(&store, "N002", "未授权", &[("phone", "010-62751234")]).await;
        let c2 = store.create_campaign(&actor(), &input("无授权", seg, tpl, None, &["email"])).await.unwrap();
        let m = conflict(store.start_campaign(&actor(), c2.id).await);
        assert!(m.en.contains("1 without consent, 1 without an address"), "{m}");
        for id in [c.id, c2.id] {
            let after = store.campaign(id).await.unwrap();
            assert_eq!((after.status, after.version), (CampaignStatus::Draft, 1));
            assert_eq!(raw_count("SELECT COUNT(*) FROM outbox WHERE campaign_id = $1", id).await, 0);
        }
        // Scheduling is refused as well.
        let mut later = input("稍后", nobody, tpl, None, &["email"]);
        later.scheduled_at = Some(chrono::Utc::now() + chrono::Duration::hours(2));
        let c3 = store.create_campaign(&actor(), &later).await.unwrap();
        conflict(store.schedule_campaign(&actor(), c3.id).await);
        assert_eq!(store.campaign(c3.id).await.unwrap().status, CampaignStatus::Draft);
    }

    pub async fn starting_twice_queues_each_reader_once(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "notice", Purpose::Service).await;
        let seg = segment(&store, "D").await;
        for i in 0..30 {
            reader(&store, &format!("D{i:03}"), "D", &[("email", &format!("d{i}@pku.edu.cn"))]).await;
        }
        let c = store.create_campaign(&actor(), &input("一次", seg, tpl, None, &["email"])).await.unwrap();
        store.start_campaign(&actor(), c.id).await.unwrap();
        let m = conflict(store.start_campaign(&actor(), c.id).await);
        assert!(m.en.contains("is sending"), "{m}");
        assert_eq!(raw_count("SELECT COUNT(*) FROM outbox WHERE campaign_id = $1", c.id).await, 30);

        // Two servers press "send" at the same moment: one starts it, the other is refused.
        let second = Store::open(&db_url()).await.unwrap();
        let c2 = store.create_campaign(&actor(), &input("并发", seg, tpl, None, &["email"])).await.unwrap();
        let who = actor();
        let (a, b) = tokio::join!(store.start_campaign(&who, c2.id), second.start_campaign(&who, c2.id));
        assert_eq!([a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(), 1, "{a:?} / {b:?}");
        second.close().await;
        assert_eq!(raw_count("SELECT COUNT(*) FROM outbox WHERE campaign_id = $1", c2.id).await, 30);
        assert_eq!(raw_count("SELECT COUNT(DISTINCT reader_id) FROM outbox WHERE campaign_id = $1", c2.id).await, 30);
        assert_eq!(store.campaign(c2.id).await.unwrap().recipients, 30);
        assert_eq!(audit_count("campaign.start", c2.id).await, 1);
    }

    pub async fn illegal_transitions_change_nothing(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "notice", Purpose::Service).await;
        let seg = segment(&store, "I").await;
        reader(&store, "I001", "I", &[("email", "i1@pku.edu.cn")]).await;
        let c = store.create_campaign(&actor(), &input("非法", seg, tpl, None, &["email"])).await.unwrap();
        for r in [store.pause_campaign(&actor(), c.id).await, store.resume_campaign(&actor(), c.id).await] {
            let m = conflict(r);
            assert!(m.zh.contains("草稿"), "{m}");
        }
        assert_eq!(store.campaign(c.id).await.unwrap().version, 1);
        // No schedule time: scheduling is refused as invalid.
        assert!(matches!(store.schedule_campaign(&actor(), c.id).await, Err(StoreError::Invalid(_))));
        let started = store.start_campaign(&actor(), c.id).await.unwrap();
        // A sending campaign can no longer be edited, deleted or resumed.
        let m = conflict(store.update_campaign(&actor(), c.id, started.version, &input("改名", seg, tpl, None, &["email"])).await);
        assert!(m.en.contains("can no longer be changed"), "{m}");
        conflict(store.delete_campaign(&actor(), c.id).await);
        conflict(store.resume_campaign(&actor(), c.id).await);
        let now = store.campaign(c.id).await.unwrap();
        assert_eq!((now.status, now.version, now.name.as_str()), (CampaignStatus::Sending, started.version, "非法"));
        store.cancel_campaign(&actor(), c.id).await.unwrap();
        for r in [
            store.start_campaign(&actor(), c.id).await,
            store.pause_campaign(&actor(), c.id).await,
            store.resume_campaign(&actor(), c.id).await,
            store.cancel_campaign(&actor(), c.id).await,
        ] {
            assert!(conflict(r).en.contains("cancelled"));
        }
        let end = store.campaign(c.id).await.unwrap();
        assert_eq!(end.status, CampaignStatus::Cancelled);
        assert_eq!(audit_count("campaign.cancel", c.id).await, 1);
        // An edit on a stale version is refused; a draft can be deleted.
        let d = store.create_campaign(&actor(), &input("草稿", seg, tpl, None, &["email"])).await.unwrap();
        let edited = store.update_campaign(&actor(), d.id, 1, &input("草稿二", seg, tpl, None, &["email"])).await.unwrap();
        assert_eq!((edited.version, edited.name.as_str()), (2, "草稿二"));
        conflict(store.update_campaign(&actor(), d.id, 1, &input("草稿三", seg, tpl, None, &["email"])).await);
        store.delete_campaign(&actor(), d.id).await.unwrap();
        assert!(matches!(store.campaign(d.id).await, Err(StoreError::NotFound)));
        assert_eq!(audit_count("campaign.delete", d.id).await, 1);
    }

    pub async fn pause_keeps_rows_pending_and_cancel_cancels_them(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "notice", Purpose::Service).await;
        let seg = segment(&store, "P").await;
        for i in 0..5 {
            reader(&store, &format!("P{i:03}"), "P", &[("email", &format!("p{i}@pku.edu.cn"))]).await;
        }
        let c = store.create_campaign(&actor(), &input("暂停", seg, tpl, None, &["email"])).await.unwrap();
        store.start_campaign(&actor(), c.id).await.unwrap();
        let paused = store.pause_campaign(&actor(), c.id).await.unwrap();
        assert_eq!(paused.status, CampaignStatus::Paused);
        // The worker claims nothing of a paused campaign: its rows stay pending, and it does not
        // complete however often the scheduler runs.
        let claimed = store.claim_messages("test-worker", 100, std::time::Duration::from_secs(60)).await.unwrap();
        assert!(claimed.is_empty(), "claimed rows of a paused campaign: {claimed:?}");
        store.advance_campaigns().await.unwrap();
        assert!(rows(c.id).await.iter().all(|r| r.3 == "pending"));
        assert_eq!(store.campaign(c.id).await.unwrap().progress.pending, 5);
        let resumed = store.resume_campaign(&actor(), c.id).await.unwrap();
        assert_eq!(resumed.status, CampaignStatus::Sending);
        let cancelled = store.cancel_campaign(&actor(), c.id).await.unwrap();
        assert_eq!((cancelled.status, cancelled.progress.cancelled, cancelled.progress.pending), (CampaignStatus::Cancelled, 5, 0));
        assert!(cancelled.finished_at.is_some());
        assert!(rows(c.id).await.iter().all(|r| r.3 == OutboxStatus::Cancelled.code()));
    }

    pub async fn the_scheduler_starts_due_campaigns_once_and_completes_them(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "notice", Purpose::Service).await;
        let seg = segment(&store, "S").await;
        for i in 0..4 {
            reader(&store, &format!("S{i:03}"), "S", &[("email", &format!("s{i}@pku.edu.cn"))]).await;
        }
        let draft = CampaignDraft {
            name: "排期".into(),
            segment_id: Some(seg),
            template_id: Some(tpl),
            channels: vec!["email".into()],
            scheduled_at: Some((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()),
            quiet_hours: Some("22:00-08:00".into()),
            ..Default::default()
        };
        let parsed = draft.parse(chrono::Utc::now(), &chrono::Local).unwrap();
        let c = store.create_campaign(&actor(), &parsed).await.unwrap();
        assert_eq!((c.quiet_start.as_deref(), c.quiet_end.as_deref()), (Some("22:00"), Some("08:00")));
        let scheduled = store.schedule_campaign(&actor(), c.id).await.unwrap();
        assert_eq!(scheduled.status, CampaignStatus::Scheduled);
        // Not due yet: nothing happens.
        assert_eq!(store.advance_campaigns().await.unwrap(), 0);
        assert_eq!(raw_count("SELECT COUNT(*) FROM outbox WHERE campaign_id = $1", c.id).await, 0);
        // Its time comes; two servers' schedulers run at once.
        execute(&format!("UPDATE campaigns SET scheduled_at = '2020-01-01T00:00:00.000Z' WHERE id = {}", c.id)).await;
        let second = Store::open(&db_url()).await.unwrap();
        let (a, b) = tokio::join!(store.advance_campaigns(), second.advance_campaigns());
        second.close().await;
        assert_eq!(a.unwrap() + b.unwrap(), 1, "exactly one server starts it");
        let started = store.campaign(c.id).await.unwrap();
        assert_eq!((started.status, started.recipients), (CampaignStatus::Sending, 4));
        assert_eq!(raw_count("SELECT COUNT(*) FROM outbox WHERE campaign_id = $1", c.id).await, 4);
        let start_audit = raw_count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'campaign.start' AND actor_name = 'scheduler' AND entity_id = CAST($1 AS TEXT)",
            c.id,
        )
        .await;
        assert_eq!(start_audit, 1);
        // Still pending: not complete.
        assert_eq!(store.advance_campaigns().await.unwrap(), 0);
        // Everything sent or failed: the next tick completes it, once.
        execute(&format!("UPDATE outbox SET status = 'sent', sent_at = '2026-01-01T00:00:00.000Z' WHERE campaign_id = {}", c.id)).await;
        execute(&format!(
            "UPDATE outbox SET status = 'failed', last_error = '550 no such user' WHERE campaign_id = {} AND address = 's0@pku.edu.cn'",
            c.id
        ))
        .await;
        assert_eq!(store.advance_campaigns().await.unwrap(), 1);
        assert_eq!(store.advance_campaigns().await.unwrap(), 0);
        let done = store.campaign(c.id).await.unwrap();
        assert_eq!((done.status, done.progress.sent, done.progress.failed), (CampaignStatus::Completed, 3, 1));
        assert!(done.finished_at.is_some());
        assert_eq!(audit_count("campaign.complete", c.id).await, 1);

        // A scheduled campaign whose segment emptied in the meantime starts with nobody and
        // completes at the next tick, its counts saying why.
        let seg2 = segment(&store, "空了").await;
        let lonely = reader(&store, "S999", "空了", &[("email", "s999@pku.edu.cn")]).await;
        let mut later = input("空了", seg2, tpl, None, &["email"]);
        later.scheduled_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
        let c2 = store.create_campaign(&actor(), &later).await.unwrap();
        store.schedule_campaign(&actor(), c2.id).await.unwrap();
        consent(&store, lonely.id, Purpose::Service, ChannelKind::Email, false).await;
        execute(&format!("UPDATE campaigns SET scheduled_at = '2020-01-01T00:00:00.000Z' WHERE id = {}", c2.id)).await;
        assert_eq!(store.advance_campaigns().await.unwrap(), 2, "started, then completed in the same tick");
        let c2 = store.campaign(c2.id).await.unwrap();
        assert_eq!((c2.status, c2.recipients, c2.excluded_consent), (CampaignStatus::Completed, 0, 1));
    }

    pub async fn the_report_counts_by_channel_and_status(store: Store) {
        sms(&store).await;
        email(&store, "email", false).await;
        let tpl = template(&store, "notice", Purpose::Service).await;
        let seg = segment(&store, "R").await;
        let r1 = reader(&store, "R001", "R", &[("mobile", "13700000001")]).await;
        reader(&store, "R002", "R", &[("email", "r2@pku.edu.cn")]).await;
        reader(&store, "R003", "R", &[("email", "r3@pku.edu.cn")]).await;
        let c = store.create_campaign(&actor(), &input("报告", seg, tpl, None, &["sms", "email"])).await.unwrap();
        store.start_campaign(&actor(), c.id).await.unwrap();
        execute(&format!(
            "UPDATE outbox SET status = 'sent', sent_at = '2026-01-01T00:00:00.000Z' WHERE campaign_id = {} AND address <> 'r3@pku.edu.cn'",
            c.id
        ))
        .await;
        execute(&format!("UPDATE outbox SET status = 'failed', attempts = 1, last_error = '550 5.1.1 no such user' WHERE campaign_id = {} AND address = 'r3@pku.edu.cn'", c.id)).await;
        let report = store.campaign_report(c.id).await.unwrap();
        let by: Vec<(&str, OutboxStatus, i64)> = report.by_channel.iter().map(|b| (b.channel.as_str(), b.status, b.count)).collect();
        assert_eq!(by, [("email", OutboxStatus::Failed, 1), ("email", OutboxStatus::Sent, 1), ("sms", OutboxStatus::Sent, 1)]);
        assert_eq!(report.failures.len(), 1);
        assert_eq!((report.failures[0].reason.as_str(), report.failures[0].count), ("550 5.1.1 no such user", 1));
        assert_eq!((report.campaign.progress.sent, report.campaign.progress.failed, report.campaign.progress.percent()), (2, 1, 100));
        let failed = store.campaign_recipients(c.id, Some(OutboxStatus::Failed), 1, 10).await.unwrap();
        assert_eq!(failed.total, 1);
        assert_eq!(failed.items[0].card_no.as_deref(), Some("R003"));
        assert_eq!(failed.items[0].last_error.as_deref(), Some("550 5.1.1 no such user"));
        let page2 = store.campaign_recipients(c.id, None, 2, 2).await.unwrap();
        assert_eq!((page2.total, page2.items.len()), (3, 1));
        let list = store.campaigns(None, 1, 20).await.unwrap();
        assert_eq!(list.items.iter().map(|c| c.id).collect::<Vec<_>>(), [c.id]);
        assert_eq!(list.items[0].progress.total(), 3);
        let mine = store.reader_messages(r1.id, 10).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!((mine[0].campaign_name.as_deref(), mine[0].channel.as_str(), mine[0].status), (Some("报告"), "sms", OutboxStatus::Sent));
        assert!(matches!(store.campaign_report(999_999).await, Err(StoreError::NotFound)));
    }

    pub async fn drafts_are_validated_against_the_store(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "notice", Purpose::Survey).await;
        let seg = segment(&store, "V").await;
        let bad = input("坏", 424242, 535353, None, &["email", "carrier-pigeon"]);
        let Err(StoreError::Invalid(errs)) = store.create_campaign(&actor(), &bad).await else { panic!("accepted a bad campaign") };
        for f in ["segment_id", "template_id", "channels"] {
            assert!(errs.get(f).is_some(), "{f}: {errs}");
        }
        assert!(errs.get("channels").unwrap().en.contains("carrier-pigeon"));
        assert_eq!(raw_count("SELECT COUNT(*) FROM campaigns WHERE id > $1", 0).await, 0);
        let ok: Campaign = store.create_campaign(&actor(), &input("好", seg, tpl, None, &["email"])).await.unwrap();
        assert_eq!((ok.purpose, ok.status, ok.created_by.as_deref()), (Purpose::Survey, CampaignStatus::Draft, None));
        assert_eq!(audit_count("campaign.create", ok.id).await, 1);
        // A disabled channel is skipped; with none enabled, sending is refused.
        reader(&store, "V001", "V", &[("email", "v1@pku.edu.cn")]).await;
        let ch = store.channel_by_code("email").await.unwrap();
        store.set_channel_enabled(&actor(), ch.id, false).await.unwrap();
        let audience = store.campaign_audience(ok.id).await.unwrap();
        assert_eq!((audience.recipients, audience.per_channel[0].enabled), (0, false));
        let m = conflict(store.start_campaign(&actor(), ok.id).await);
        assert!(m.en.contains("disabled"), "{m}");
    }

    pub async fn history_is_recorded_without_sending(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "notice", Purpose::Service).await;
        let seg = segment(&store, "H").await;
        let h1 = reader(&store, "H001", "H", &[("email", "h1@pku.edu.cn")]).await;
        reader(&store, "H002", "H", &[("email", "h2@pku.edu.cn")]).await;
        let c = store.create_campaign(&actor(), &input("往期", seg, tpl, None, &["email"])).await.unwrap();
        // Only a campaign that just started.
        conflict(store.record_campaign_history(&actor(), c.id, chrono::Utc::now(), &[]).await);
        store.start_campaign(&actor(), c.id).await.unwrap();
        let at = chrono::Utc::now() - chrono::Duration::days(10);
        let failed = [(h1.id, "550 5.1.1 no such user".to_string())];
        let done = store.record_campaign_history(&actor(), c.id, at, &failed).await.unwrap();
        assert_eq!((done.status, done.progress.sent, done.progress.failed), (CampaignStatus::Completed, 1, 1));
        assert!(done.started_at.as_deref().unwrap() < lector_store::now_text().as_str());
        // Nothing is left for a worker, and recording twice is refused.
        let claimed = store.claim_messages("test-worker", 100, std::time::Duration::from_secs(60)).await.unwrap();
        assert!(claimed.is_empty(), "{claimed:?}");
        conflict(store.record_campaign_history(&actor(), c.id, at, &[]).await);
        assert_eq!(audit_count("campaign.history", c.id).await, 1);
        let report = store.campaign_report(c.id).await.unwrap();
        assert_eq!(report.failures[0].reason, "550 5.1.1 no such user");
    }
}

mod triggers {
    use super::*;

    async fn enable(store: &Store, trigger: Trigger, template_id: i64, channels: &[&str]) {
        let input = TriggerSettingInput {
            template_id: Some(template_id),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            enabled: true,
        };
        store.set_trigger_setting(&actor(), trigger, &input).await.unwrap();
    }

    /// Outbox rows of `trigger` as (dedupe key, channel code, address).
    async fn queued(trigger: Trigger) -> Vec<(String, String, String)> {
        let pool = raw_pool().await;
        let rows = sqlx::query(
            "SELECT o.dedupe_key, ch.code, o.address FROM outbox o JOIN channels ch ON ch.id = o.channel_id
             WHERE o.trigger_code = $1 ORDER BY o.dedupe_key",
        )
        .bind(trigger.code().to_string())
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.iter().map(|r| (r.get("dedupe_key"), r.get("code"), r.get("address"))).collect()
    }

    pub async fn settings_are_validated_and_audited(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "welcome", Purpose::Service).await;
        let all = store.trigger_settings().await.unwrap();
        assert_eq!(all.len(), Trigger::ALL.len());
        assert!(all.iter().all(|s| !s.enabled && s.template_id.is_none()));
        let bad = TriggerSettingInput { template_id: None, channels: vec!["fax".into()], enabled: true };
        let Err(StoreError::Invalid(errs)) = store.set_trigger_setting(&actor(), Trigger::Welcome, &bad).await else { panic!("accepted") };
        assert!(errs.get("channels").is_some() && errs.get("template_id").is_some(), "{errs}");
        let on = TriggerSettingInput { template_id: Some(tpl), channels: vec!["email".into(), "email".into()], enabled: true };
        let s = store.set_trigger_setting(&actor(), Trigger::Welcome, &on).await.unwrap();
        assert!(s.enabled && s.enabled_at.is_some());
        assert_eq!((s.channels.clone(), s.template_name.as_deref()), (vec!["email".to_string()], Some("模板 welcome")));
        // Saving again while on keeps the time it was switched on; switching off clears it.
        let again = store.set_trigger_setting(&actor(), Trigger::Welcome, &on).await.unwrap();
        assert_eq!(again.enabled_at, s.enabled_at);
        let off = store.set_trigger_setting(&actor(), Trigger::Welcome, &TriggerSettingInput { enabled: false, ..on }).await.unwrap();
        assert!(!off.enabled && off.enabled_at.is_none());
        let n = raw_count("SELECT COUNT(*) FROM audit_log WHERE action = 'trigger.update' AND id > $1", 0).await;
        assert_eq!(n, 3);
        let outcome = store.enqueue_trigger(Trigger::Welcome, None, Some("x@pku.edu.cn"), json!({}), "k1").await.unwrap();
        assert!(matches!(outcome, TriggerOutcome::Skipped(ref m) if m.en.contains("switched off")), "{outcome:?}");
    }

    pub async fn a_trigger_goes_to_the_first_reachable_channel(store: Store) {
        sms(&store).await;
        email(&store, "email", false).await;
        let tpl = template(&store, "code", Purpose::Service).await;
        enable(&store, Trigger::CaseReceived, tpl, &["sms", "email"]).await;
        enable(&store, Trigger::PortalCode, tpl, &["sms", "email"]).await;
        let both = reader(&store, "T001", "T", &[("email", "t1@pku.edu.cn"), ("mobile", "13600000001")]).await;
        let vars = json!({"case": {"number": "GD2026-000001"}});
        let first = store.enqueue_trigger(Trigger::CaseReceived, Some(both.id), None, vars.clone(), "case:1").await.unwrap();
        let TriggerOutcome::Queued { outbox_id, channel } = first else { panic!("{first:?}") };
        assert_eq!(channel, "sms");
        let again = store.enqueue_trigger(Trigger::CaseReceived, Some(both.id), None, vars.clone(), "case:1").await.unwrap();
        assert_eq!(again, TriggerOutcome::AlreadyQueued);
        let stored_vars: String = {
            let pool = raw_pool().await;
            let v = sqlx::query_scalar("SELECT vars_json FROM outbox WHERE id = $1").bind(outbox_id).fetch_one(&pool).await.unwrap();
            pool.close().await;
            v
        };
        assert!(stored_vars.contains("GD2026-000001"), "{stored_vars}");
        // Withdrew SMS service notices: email.
        consent(&store, both.id, Purpose::Service, ChannelKind::Sms, false).await;
        let second = store.enqueue_trigger(Trigger::CaseReceived, Some(both.id), None, vars.clone(), "case:2").await.unwrap();
        assert!(matches!(second, TriggerOutcome::Queued { ref channel, .. } if channel == "email"), "{second:?}");
        // Withdrew everywhere: skipped, saying why — but a sign-in code the reader asked for
        // still goes out.
        consent(&store, both.id, Purpose::Service, ChannelKind::Email, false).await;
        let third = store.enqueue_trigger(Trigger::CaseReceived, Some(both.id), None, vars.clone(), "case:3").await.unwrap();
        assert!(matches!(third, TriggerOutcome::Skipped(ref m) if m.en.contains("withdrew")), "{third:?}");
        let code = store.enqueue_trigger(Trigger::PortalCode, Some(both.id), None, json!({"code": "123456"}), "portal:1").await.unwrap();
        assert!(matches!(code, TriggerOutcome::Queued { ref channel, .. } if channel == "sms"), "{code:?}");
        // No address at all.
        let none = reader(&store, "T002", "T", &[("phone", "010-62751234")]).await;
        let fourth = store.enqueue_trigger(Trigger::CaseReceived, Some(none.id), None, vars.clone(), "case:4").await.unwrap();
        assert!(matches!(fourth, TriggerOutcome::Skipped(ref m) if m.en.contains("no address")), "{fourth:?}");
        assert!(matches!(
            store.enqueue_trigger(Trigger::CaseReceived, Some(987_654), None, vars, "case:5").await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(queued(Trigger::CaseReceived).await.len(), 2);
    }

    pub async fn an_address_alone_picks_a_channel_of_its_kind(store: Store) {
        sms(&store).await;
        email(&store, "email", false).await;
        let tpl = template(&store, "received", Purpose::Service).await;
        enable(&store, Trigger::CaseReceived, tpl, &["sms", "email"]).await;
        let by_mail = store.enqueue_trigger(Trigger::CaseReceived, None, Some(" Li.Lei@PKU.edu.cn "), json!({}), "a:1").await.unwrap();
        assert!(matches!(by_mail, TriggerOutcome::Queued { ref channel, .. } if channel == "email"), "{by_mail:?}");
        let by_phone = store.enqueue_trigger(Trigger::CaseReceived, None, Some("+86 139-1234-5678"), json!({}), "a:2").await.unwrap();
        assert!(matches!(by_phone, TriggerOutcome::Queued { ref channel, .. } if channel == "sms"), "{by_phone:?}");
        let nonsense = store.enqueue_trigger(Trigger::CaseReceived, None, Some("三楼前台"), json!({}), "a:3").await.unwrap();
        assert!(matches!(nonsense, TriggerOutcome::Skipped(_)), "{nonsense:?}");
        let rows = queued(Trigger::CaseReceived).await;
        assert_eq!(
            rows,
            [("a:1".to_string(), "email".to_string(), "li.lei@pku.edu.cn".to_string()), ("a:2".into(), "sms".into(), "13912345678".into())]
        );
        // Only SMS configured: an email address has no channel.
        enable(&store, Trigger::CaseResolved, tpl, &["sms"]).await;
        let no_channel = store.enqueue_trigger(Trigger::CaseResolved, None, Some("x@pku.edu.cn"), json!({}), "a:4").await.unwrap();
        assert!(matches!(no_channel, TriggerOutcome::Skipped(ref m) if m.en.contains("no Email channel")), "{no_channel:?}");
    }

    pub async fn welcome_greets_readers_created_since_enabled(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "welcome", Purpose::Service).await;
        let before = reader(&store, "W000", "W", &[("email", "w0@pku.edu.cn")]).await;
        enable(&store, Trigger::Welcome, tpl, &["email"]).await;
        let new1 = reader(&store, "W001", "W", &[("email", "w1@pku.edu.cn")]).await;
        let new2 = reader(&store, "W002", "W", &[("phone", "010-62751234")]).await;
        assert_eq!(store.sweep_triggers(today()).await.unwrap(), 1);
        assert_eq!(store.sweep_triggers(today()).await.unwrap(), 0, "a second sweep queues nothing");
        let rows = queued(Trigger::Welcome).await;
        assert_eq!(rows, [(format!("trigger:welcome:{}", new1.id), "email".to_string(), "w1@pku.edu.cn".to_string())]);
        assert!(!rows.iter().any(|r| r.0.ends_with(&format!(":{}", before.id)) || r.0.ends_with(&format!(":{}", new2.id))));
        assert_eq!(raw_count("SELECT COUNT(*) FROM audit_log WHERE action = 'trigger.sweep' AND id > $1", 0).await, 1);
    }

    pub async fn card_expiry_reminds_once_and_catches_up(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "expiry", Purpose::Service).await;
        let day = |n: i64| (today() + chrono::Duration::days(n)).format("%Y-%m-%d").to_string();
        let expiring = |card: &'static str, days: i64, status: &'static str| {
            let store = store.clone();
            let expires = day(days);
            async move {
                let d = ReaderDraft {
                    expires_on: Some(expires),
                    status: Some(status.into()),
                    contacts: vec![ContactDraft {
                        kind: "email".into(),
                        value: format!("{card}@pku.edu.cn"),
                        primary: true,
                        verified: false,
                    }],
                    ..draft(card, "赵六")
                };
                store.create_reader(&actor(), &d.parse(today()).unwrap()).await.unwrap()
            }
        };
        let in30 = expiring("E030", 30, "active").await;
        let in12 = expiring("E012", 12, "active").await; // its day was missed: caught up
        expiring("E031", 31, "active").await; // not yet
        expiring("E000", 0, "active").await; // expires today: too late
        expiring("E020", 20, "suspended").await; // not active
        assert_eq!(store.sweep_triggers(today()).await.unwrap(), 0, "switched off");
        enable(&store, Trigger::CardExpiry, tpl, &["email"]).await;
        assert_eq!(store.sweep_triggers(today()).await.unwrap(), 2);
        assert_eq!(store.sweep_triggers(today()).await.unwrap(), 0);
        let keys: Vec<String> = queued(Trigger::CardExpiry).await.into_iter().map(|r| r.0).collect();
        let mut want = vec![format!("trigger:card_expiry:{}:{}", in30.id, day(30)), format!("trigger:card_expiry:{}:{}", in12.id, day(12))];
        want.sort();
        assert_eq!(keys, want);
        // The next day, the card 31 days out comes due; a renewed card is reminded again.
        assert_eq!(store.sweep_triggers(today() + chrono::Duration::days(1)).await.unwrap(), 1);
        execute(&format!("UPDATE readers SET expires_on = '{}' WHERE id = {}", day(25), in30.id)).await;
        assert_eq!(store.sweep_triggers(today()).await.unwrap(), 1);
    }

    pub async fn case_updates_reach_the_reader(store: Store) {
        email(&store, "email", false).await;
        let tpl = template(&store, "case", Purpose::Service).await;
        for t in [Trigger::CaseReceived, Trigger::CaseNeedsInfo, Trigger::CaseResolved] {
            enable(&store, t, tpl, &["email"]).await;
        }
        let r = reader(&store, "K001", "K", &[("email", "k1@pku.edu.cn")]).await;
        let input = CaseInput {
            kind: CaseKind::Inquiry,
            subject: "校外访问数据库".into(),
            body: "在家里怎么访问知网？".into(),
            card_no: Some("K001".into()),
            contact_name: None,
            contact: None,
        };
        // Filed by the reader signed in on the portal: the case is theirs.
        let (case, token) = store.create_case(&Actor::reader("K001"), &input, CaseSource::Portal, None).await.unwrap();
        let token = token.expect("a portal case has a token");
        let vars = |key: &str| {
            let key = key.to_string();
            async move {
                let pool = raw_pool().await;
                let v: Option<String> =
                    sqlx::query_scalar("SELECT vars_json FROM outbox WHERE dedupe_key = $1").bind(key).fetch_optional(&pool).await.unwrap();
                pool.close().await;
                v.map(|v| serde_json::from_str::<serde_json::Value>(&v).unwrap())
            }
        };
        let received = vars(&format!("trigger:case_received:{}", case.id)).await.expect("received message queued");
        assert_eq!(received["case"]["number"], json!(case.number));
        assert_eq!(received["case"]["subject"], json!("校外访问数据库"));
        assert_eq!(received["case"]["status"], json!("已受理"));
        assert!(received["link"].as_str().unwrap().ends_with(&format!("/portal/track/{token}")), "{received}");
        let asked = store
            .act_on_case(&actor(), case.id, &CaseAction::RequestInfo { question: "请问您用的是哪个浏览器？".into() }, case.version)
            .await
            .unwrap();
        let needs = vars(&format!("trigger:case_needs_info:{}:v{}", case.id, asked.version)).await.expect("needs-info message queued");
        assert!(needs["link"].as_str().unwrap().ends_with("/portal/login"), "{needs}");
        let answered = store.answer_case_question(&token, "Chrome", None).await.unwrap();
        let mut c = store
            .act_on_case(
                &actor(),
                case.id,
                &CaseAction::Triage {
                    outcome: TriageOutcome::Accepted,
                    category: None,
                    priority: Priority::Normal,
                    duplicate_of: None,
                    comment: None,
                },
                answered.version,
            )
            .await
            .unwrap();
        let dept = store.departments().await.unwrap();
        let dept = match dept.first() {
            Some(d) => d.code.clone(),
            None => {
                let n =
                    lector_store::config::NamedInput { code: "ref".into(), name_zh: "参考咨询部".into(), name_en: "Reference".into() };
                store.create_department(&actor(), &n).await.unwrap().code
            }
        };
        for action in [CaseAction::Assign { department: dept, comment: None }, CaseAction::Propose { solution: "发送 VPN 使用说明".into() }]
        {
            c = store.act_on_case(&actor(), case.id, &action, c.version).await.unwrap();
        }
        if c.status == lector_store::domain::case::CaseStatus::AwaitingApproval {
            c = store.act_on_case(&actor(), case.id, &CaseAction::Approve { comment: None }, c.version).await.unwrap();
        }
        let resolved =
            store.act_on_case(&actor(), case.id, &CaseAction::Resolve { reply: "请使用学校 VPN。".into() }, c.version).await.unwrap();
        let done = vars(&format!("trigger:case_resolved:{}:v{}", case.id, resolved.version)).await.expect("resolved message queued");
        assert_eq!(done["case"]["status"], json!("已答复"), "{done}");
        assert_eq!(raw_count("SELECT COUNT(*) FROM outbox WHERE reader_id = $1", r.id).await, 3);
        // A reader who withdrew service email gets nothing, and the case goes on regardless.
        consent(&store, r.id, Purpose::Service, ChannelKind::Email, false).await;
        let (second, _) = store.create_case(&actor(), &input, CaseSource::Staff, None).await.unwrap();
        assert!(vars(&format!("trigger:case_received:{}", second.id)).await.is_none());
        // Without a reader, the contact given on the form is written to.
        let anon = CaseInput { card_no: None, contact: Some("visitor@example.com".into()), ..input };
        let (third, _) = store.create_case(&actor(), &anon, CaseSource::Portal, None).await.unwrap();
        let pool = raw_pool().await;
        let addr: String = sqlx::query_scalar("SELECT address FROM outbox WHERE dedupe_key = $1")
            .bind(format!("trigger:case_received:{}", third.id))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert_eq!(addr, "visitor@example.com");
    }
}

/// A campaign to 100,000 readers is materialised by set-based statements, not reader by reader:
/// on SQLite it queues every reader once, with the exclusions counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_members_are_queued_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/big.db", dir.path().display())).await.unwrap();
    email(&store, "email", false).await;
    sms(&store).await;
    let tpl = template(&store, "big", Purpose::Service).await;
    let started = std::time::Instant::now();
    const N: usize = 100_000;
    for chunk in 0..N / 10_000 {
        let inputs: Vec<_> = (chunk * 10_000..(chunk + 1) * 10_000)
            .map(|i| {
                let mut contacts = vec![];
                if i % 10 != 0 {
                    contacts.push(ContactDraft { kind: "email".into(), value: format!("r{i}@pku.edu.cn"), primary: true, verified: false });
                }
                if i % 3 == 0 {
                    contacts.push(ContactDraft { kind: "mobile".into(), value: format!("139{i:08}"), primary: false, verified: false });
                }
                ReaderDraft { tags: vec!["全体".into()], contacts, ..draft(&format!("H{i:06}"), "李华") }.parse(today()).unwrap()
            })
            .collect();
        store.bulk_create_readers(&actor(), &inputs, &lector_store::now_text()).await.unwrap();
    }
    eprintln!("readers: {:.1} s", started.elapsed().as_secs_f64());
    let seg = segment(&store, "全体").await;
    let c = store.create_campaign(&actor(), &input("十万", seg, tpl, None, &["email", "sms"])).await.unwrap();
    let t = std::time::Instant::now();
    let audience = store.campaign_audience(c.id).await.unwrap();
    eprintln!("audience: {:.1} s", t.elapsed().as_secs_f64());
    // Every tenth has no email; of those, a third have a mobile.
    let no_email = N / 10;
    let sms_only = (0..N).filter(|i| i % 10 == 0 && i % 3 == 0).count();
    assert_eq!((audience.members as usize, audience.recipients as usize), (N, N - no_email + sms_only));
    let t = std::time::Instant::now();
    let started = store.start_campaign(&actor(), c.id).await.unwrap();
    eprintln!("start: {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(started.recipients as usize, N - no_email + sms_only);
    assert_eq!(started.excluded_address as usize, no_email - sms_only);
    assert_eq!(started.progress.pending, started.recipients);
    store.close().await;
}
