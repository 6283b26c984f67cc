//! The outbox, channels, templates and messaging settings, on SQLite and PostgreSQL.

#[macro_use]
mod common;

use common::{actor, draft, today};
use lector_store::channels::{Channel, ChannelInput};
use lector_store::domain::messaging::{ChannelKind, ChannelSettings, OutboxStatus, Purpose, SmtpSecurity};
use lector_store::domain::reader::ContactDraft;
use lector_store::outbox::{Failure, NewMessage, OutboxPolicy, DEFAULT_PUBLIC_URL};
use lector_store::templates::{TemplateInput, TemplateVariant};
use lector_store::{Store, StoreError};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

scenarios!(
    scenario:
    enqueueing_is_idempotent,
    two_claimers_never_get_the_same_row,
    a_claim_takes_at_most_its_limit_oldest_first,
    an_expired_lease_makes_a_row_claimable_again,
    transient_failures_back_off_then_fail,
    a_permanent_failure_fails_at_once_and_blocks_the_address,
    transient_failures_in_a_row_block_an_address_and_a_success_resets,
    rows_of_a_campaign_that_is_not_sending_are_not_claimed,
    quiet_hours_defer_without_counting_an_attempt,
    channels_keep_their_secret_to_themselves,
    templates_keep_variants_per_kind_and_language,
    public_url_and_message_id_salt,
    message_readers_in_one_query,
);

fn smtp(host: &str) -> ChannelSettings {
    ChannelSettings::Email {
        host: host.into(),
        port: 2525,
        security: SmtpSecurity::Plain,
        username: Some("lib".into()),
        from_address: "library@example.edu.cn".into(),
        from_name: "图书馆".into(),
        qq_mailbox: false,
        accept_invalid_certs: false,
    }
}

fn channel_input(code: &str, settings: ChannelSettings, secret: Option<&str>) -> ChannelInput {
    ChannelInput {
        code: code.into(),
        name: format!("渠道 {code}"),
        settings,
        secret: secret.map(str::to_string),
        rate_per_second: 50,
        enabled: true,
    }
}

fn variant(kind: ChannelKind, lang: &str, subject: &str, text: &str) -> TemplateVariant {
    TemplateVariant { channel_kind: kind, lang: lang.into(), subject: subject.into(), body_text: text.into(), body_html: None }
}

/// An email channel, an SMS channel and a template; returns (email channel, sms channel, template id).
async fn setup(store: &Store) -> (Channel, Channel, i64) {
    let email = store.create_channel(&actor(), &channel_input("mail", smtp("127.0.0.1"), Some("s3cret-pass"))).await.unwrap();
    let sms = store
        .create_channel(
            &actor(),
            &channel_input(
                "sms",
                ChannelSettings::Sms { url: "http://127.0.0.1:9/sms".into(), mobile_field: "mobile".into(), text_field: "text".into() },
                None,
            ),
        )
        .await
        .unwrap();
    let t = store
        .create_template(
            &actor(),
            &TemplateInput {
                code: "notice".into(),
                name: "通知".into(),
                purpose: Purpose::Service,
                variants: vec![
                    variant(ChannelKind::Email, "zh", "通知", "{{ reader.name }}，您好"),
                    variant(ChannelKind::Sms, "zh", "", "{{ reader.name }}，您好"),
                ],
            },
        )
        .await
        .unwrap();
    (email, sms, t.id)
}

fn msg(key: &str, channel: i64, template: i64, address: &str) -> NewMessage {
    NewMessage {
        dedupe_key: key.into(),
        campaign_id: None,
        trigger: None,
        reader_id: None,
        channel_id: channel,
        address: address.into(),
        template_id: template,
        vars: serde_json::json!({"code": "123456"}),
        purpose: Purpose::Service,
        lang: "zh".into(),
        not_before: None,
    }
}

async fn enqueue(store: &Store, m: &NewMessage) -> i64 {
    store.enqueue_message(m).await.unwrap().expect("a new message")
}

fn fast_policy() -> OutboxPolicy {
    OutboxPolicy {
        lease: Duration::from_secs(60),
        max_attempts: 3,
        backoff_base: Duration::ZERO,
        backoff_cap: Duration::ZERO,
        block_after: 100,
    }
}

fn utc(t: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{t}: {e}")).with_timezone(&chrono::Utc)
}

#[track_caller]
fn invalid_fields(result: Result<impl std::fmt::Debug, StoreError>) -> BTreeSet<String> {
    match result {
        Err(StoreError::Invalid(errs)) => errs.0.into_iter().map(|e| e.field).collect(),
        other => panic!("expected StoreError::Invalid, got {other:?}"),
    }
}

mod scenario {
    use super::*;

    pub async fn enqueueing_is_idempotent(store: Store) {
        let (email, _, t) = setup(&store).await;
        let m = msg("trigger:welcome:reader:1", email.id, t, " wang@example.edu.cn ");
        let id = enqueue(&store, &m).await;
        assert_eq!(store.enqueue_message(&m).await.unwrap(), None, "the same key again adds nothing");
        let mut other = m.clone();
        other.dedupe_key = "trigger:welcome:reader:2".into();
        assert!(store.enqueue_message(&other).await.unwrap().is_some());
        let row = store.outbox_message(id).await.unwrap();
        assert_eq!((row.status, row.attempts, row.address.as_str()), (OutboxStatus::Pending, 0, "wang@example.edu.cn"));
        assert_eq!(store.outbox_counts().await.unwrap()[&OutboxStatus::Pending], 2);
        let mut blank = m.clone();
        blank.dedupe_key = "  ".into();
        assert!(invalid_fields(store.enqueue_message(&blank).await).contains("dedupe_key"));
        // A message for later is not due yet.
        let mut later = m.clone();
        later.dedupe_key = "later".into();
        later.not_before = Some("2999-01-01T00:00:00.000Z".into());
        let later_id = enqueue(&store, &later).await;
        let claimed: Vec<i64> = store.claim_messages("w1", 10, Duration::from_secs(60)).await.unwrap().iter().map(|c| c.id).collect();
        assert_eq!(claimed.len(), 2);
        assert!(!claimed.contains(&later_id));
        let c = store.claim_messages("w2", 10, Duration::from_secs(60)).await.unwrap();
        assert!(c.is_empty(), "claimed rows are not claimed twice: {c:?}");
    }

    pub async fn two_claimers_never_get_the_same_row(store: Store) {
        let (email, _, t) = setup(&store).await;
        for i in 0..300 {
            enqueue(&store, &msg(&format!("k{i}"), email.id, t, &format!("r{i}@example.edu.cn"))).await;
        }
        // Two servers: separate connection pools on one database, claiming in parallel.
        let mut tasks = Vec::new();
        for w in ["server-a", "server-b", "server-c"] {
            let s = Store::open(&common::db_url()).await.unwrap();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = s.claim_messages(w, 7, Duration::from_secs(60)).await.unwrap();
                    if got.is_empty() {
                        break;
                    }
                    mine.extend(got.into_iter().map(|m| m.id));
                }
                s.close().await;
                mine
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        let unique: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!(all.len(), 300, "every row claimed once");
        assert_eq!(unique.len(), 300, "no row claimed twice");
        let holders = common::raw_count("SELECT COUNT(DISTINCT claimed_by) FROM outbox WHERE status = 'sending' AND id > $1", 0).await;
        assert!(holders >= 2, "the work was shared: {holders} claimer(s)");
    }

    pub async fn a_claim_takes_at_most_its_limit_oldest_first(store: Store) {
        let (email, _, t) = setup(&store).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(enqueue(&store, &msg(&format!("k{i}"), email.id, t, &format!("r{i}@example.edu.cn"))).await);
        }
        let mut taken = Vec::new();
        for expected in [2, 2, 1, 0] {
            let got: Vec<i64> = store.claim_messages("w", 2, Duration::from_secs(60)).await.unwrap().iter().map(|m| m.id).collect();
            assert_eq!(got.len(), expected, "a claim of 2 after {taken:?}: {got:?}");
            taken.extend(got);
        }
        assert_eq!(taken, ids, "claimed in order, each once");
    }

    pub async fn an_expired_lease_makes_a_row_claimable_again(store: Store) {
        let (email, _, t) = setup(&store).await;
        let id = enqueue(&store, &msg("k", email.id, t, "a@example.edu.cn")).await;
        let first = store.claim_messages("w1", 10, Duration::from_millis(300)).await.unwrap();
        assert_eq!(first.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id]);
        assert!(store.claim_messages("w2", 10, Duration::from_secs(60)).await.unwrap().is_empty(), "a live lease is respected");
        // Once w1's lease runs out without news, w2 takes the row over.
        let deadline = Instant::now() + Duration::from_secs(20);
        let taken = loop {
            let got = store.claim_messages("w2", 10, Duration::from_secs(60)).await.unwrap();
            if !got.is_empty() {
                break got;
            }
            assert!(Instant::now() < deadline, "the row never became claimable again");
            tokio::task::yield_now().await;
        };
        assert_eq!(taken[0].id, id);
        let row = store.outbox_message(id).await.unwrap();
        assert_eq!((row.status, row.claimed_by.as_deref()), (OutboxStatus::Sending, Some("w2")));
        // w1 no longer holds it: its late failure report and renewal change nothing.
        let s = store.mark_failed(id, "w1", &Failure::Transient("timeout".into()), &fast_policy()).await.unwrap();
        assert_eq!(s, OutboxStatus::Sending);
        assert_eq!(store.outbox_message(id).await.unwrap().attempts, 0);
        assert_eq!(store.renew_lease(&[id], "w1", Duration::from_secs(60)).await.unwrap(), 0);
        assert_eq!(store.renew_lease(&[id], "w2", Duration::from_secs(600)).await.unwrap(), 1);
        let renewed = store.outbox_message(id).await.unwrap().lease_until.unwrap();
        assert!(utc(&renewed) > chrono::Utc::now() + chrono::Duration::seconds(500), "{renewed}");
        store.mark_sent(id, "w2").await.unwrap();
        let row = store.outbox_message(id).await.unwrap();
        assert_eq!((row.status, row.claimed_by.as_deref(), row.lease_until), (OutboxStatus::Sent, Some("w2"), None));
        assert!(row.sent_at.is_some());
    }

    pub async fn transient_failures_back_off_then_fail(store: Store) {
        let (email, _, t) = setup(&store).await;
        let id = enqueue(&store, &msg("k", email.id, t, "a@example.edu.cn")).await;
        let policy = OutboxPolicy {
            lease: Duration::from_secs(60),
            max_attempts: 3,
            backoff_base: Duration::from_secs(100),
            backoff_cap: Duration::from_secs(300),
            block_after: 100,
        };
        let make_due = || async {
            let pool = common::raw_pool().await;
            sqlx::query("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00.000Z' WHERE status = 'pending'")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        };
        let mut waits = Vec::new();
        for attempt in 1..=2 {
            assert_eq!(store.claim_messages("w", 10, policy.lease).await.unwrap().len(), 1);
            let before = chrono::Utc::now();
            let s = store.mark_failed(id, "w", &Failure::Transient(format!("451 try later #{attempt}")), &policy).await.unwrap();
            assert_eq!(s, OutboxStatus::Pending);
            let row = store.outbox_message(id).await.unwrap();
            assert_eq!(row.attempts, attempt);
            assert_eq!(row.last_error.as_deref(), Some(format!("451 try later #{attempt}").as_str()));
            waits.push((utc(&row.next_attempt_at) - before).num_milliseconds());
            // Not due yet: nobody claims it.
            assert!(store.claim_messages("w", 10, policy.lease).await.unwrap().is_empty());
            make_due().await;
        }
        // 100 s then 200 s, each with up to a quarter more, never beyond the cap.
        assert!((99_000..=126_000).contains(&waits[0]), "{waits:?}");
        assert!((199_000..=300_500).contains(&waits[1]), "{waits:?}");
        assert_eq!(store.claim_messages("w", 10, policy.lease).await.unwrap().len(), 1);
        let s = store.mark_failed(id, "w", &Failure::Transient("connection refused".into()), &policy).await.unwrap();
        assert_eq!(s, OutboxStatus::Failed, "the third transient failure is the last");
        let row = store.outbox_message(id).await.unwrap();
        assert_eq!((row.status, row.attempts, row.last_error.as_deref()), (OutboxStatus::Failed, 3, Some("connection refused")));
        make_due().await;
        assert!(store.claim_messages("w", 10, policy.lease).await.unwrap().is_empty(), "a failed row is never claimed");
        // The cap holds however many attempts there were.
        assert!(policy.backoff(30) <= policy.backoff_cap);
        assert!(policy.backoff(1) >= policy.backoff_base);
    }

    pub async fn a_permanent_failure_fails_at_once_and_blocks_the_address(store: Store) {
        let (email, sms, t) = setup(&store).await;
        let first = enqueue(&store, &msg("k1", email.id, t, "gone@example.edu.cn")).await;
        assert_eq!(store.claim_messages("w", 10, Duration::from_secs(60)).await.unwrap().len(), 1);
        let s = store.mark_failed(first, "w", &Failure::Permanent("550 no such user".into()), &fast_policy()).await.unwrap();
        assert_eq!(s, OutboxStatus::Failed);
        let row = store.outbox_message(first).await.unwrap();
        assert_eq!((row.attempts, row.last_error.as_deref()), (1, Some("550 no such user")));
        let health = store.address_health("email", "gone@example.edu.cn").await.unwrap().expect("a health row");
        assert!(health.blocked_at.is_some(), "{health:?}");
        // The next message to that address is failed when claimed, with the reason; a message to
        // another address, and one to the same text on another channel kind, go ahead.
        let second = enqueue(&store, &msg("k2", email.id, t, "gone@example.edu.cn")).await;
        let fine = enqueue(&store, &msg("k3", email.id, t, "here@example.edu.cn")).await;
        let other_kind = enqueue(&store, &msg("k4", sms.id, t, "gone@example.edu.cn")).await;
        let claimed: Vec<i64> = store.claim_messages("w", 10, Duration::from_secs(60)).await.unwrap().iter().map(|m| m.id).collect();
        assert_eq!(claimed, vec![fine, other_kind]);
        let row = store.outbox_message(second).await.unwrap();
        assert_eq!(row.status, OutboxStatus::Failed);
        let why = row.last_error.unwrap();
        assert!(why.contains("blocked") && why.contains("550 no such user"), "{why}");
        assert_eq!(row.attempts, 0, "never attempted");
    }

    pub async fn transient_failures_in_a_row_block_an_address_and_a_success_resets(store: Store) {
        let (email, _, t) = setup(&store).await;
        let policy = OutboxPolicy { max_attempts: 10, block_after: 3, ..fast_policy() };
        let addr = "flaky@example.edu.cn";
        let id = enqueue(&store, &msg("k1", email.id, t, addr)).await;
        for _ in 0..2 {
            assert_eq!(store.claim_messages("w", 10, policy.lease).await.unwrap().len(), 1);
            assert_eq!(store.mark_failed(id, "w", &Failure::Transient("421 busy".into()), &policy).await.unwrap(), OutboxStatus::Pending);
        }
        let h = store.address_health("email", addr).await.unwrap().unwrap();
        assert_eq!((h.failures, h.blocked_at.is_none()), (2, true));
        // A success resets the count.
        assert_eq!(store.claim_messages("w", 10, policy.lease).await.unwrap().len(), 1);
        store.mark_sent(id, "w").await.unwrap();
        assert_eq!(store.address_health("email", addr).await.unwrap(), None);
        // Three failures in a row (over two messages) block it.
        let a = enqueue(&store, &msg("k2", email.id, t, addr)).await;
        for _ in 0..2 {
            assert_eq!(store.claim_messages("w", 10, policy.lease).await.unwrap().len(), 1);
            store.mark_failed(a, "w", &Failure::Transient("421 busy".into()), &policy).await.unwrap();
        }
        let b = enqueue(&store, &msg("k3", email.id, t, addr)).await;
        let got = store.claim_messages("w", 10, policy.lease).await.unwrap();
        assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a, b]);
        store.mark_failed(b, "w", &Failure::Transient("421 busy".into()), &policy).await.unwrap();
        let h = store.address_health("email", addr).await.unwrap().unwrap();
        assert_eq!(h.failures, 3);
        assert!(h.blocked_at.is_some());
        // `a` is still claimed by w; b is back to pending and is failed at its next claim.
        store.mark_failed(a, "w", &Failure::Transient("421 busy".into()), &policy).await.unwrap();
        assert!(store.claim_messages("w", 10, policy.lease).await.unwrap().is_empty());
        for id in [a, b] {
            let row = store.outbox_message(id).await.unwrap();
            assert_eq!(row.status, OutboxStatus::Failed, "{row:?}");
            assert!(row.last_error.unwrap().contains("blocked"));
        }
    }

    pub async fn rows_of_a_campaign_that_is_not_sending_are_not_claimed(store: Store) {
        let (email, _, t) = setup(&store).await;
        let pool = common::raw_pool().await;
        let now = lector_store::now_text();
        sqlx::query("INSERT INTO segments (name, description, filter_json, created_at, updated_at) VALUES ('s', '', '{}', $1, $1)")
            .bind(now.clone())
            .execute(&pool)
            .await
            .unwrap();
        let segment: i64 = sqlx::query_scalar("SELECT id FROM segments WHERE name = 's'").fetch_one(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO campaigns (name, segment_id, template_id, purpose, channels, status, created_at, updated_at)
             VALUES ('c', $1, $2, 'service', 'mail', 'paused', $3, $3)",
        )
        .bind(segment)
        .bind(t)
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
        let campaign: i64 = sqlx::query_scalar("SELECT id FROM campaigns WHERE name = 'c'").fetch_one(&pool).await.unwrap();
        let mut m = msg("campaign:1:reader:1", email.id, t, "a@example.edu.cn");
        m.campaign_id = Some(campaign);
        let id = enqueue(&store, &m).await;
        let loose = enqueue(&store, &msg("trigger", email.id, t, "b@example.edu.cn")).await;
        let claimed: Vec<i64> = store.claim_messages("w", 10, Duration::from_secs(60)).await.unwrap().iter().map(|m| m.id).collect();
        assert_eq!(claimed, vec![loose], "the paused campaign's row waits");
        for status in ["scheduled", "cancelled"] {
            sqlx::query("UPDATE campaigns SET status = $1").bind(status).execute(&pool).await.unwrap();
            assert!(store.claim_messages("w", 10, Duration::from_secs(60)).await.unwrap().is_empty(), "{status}");
        }
        sqlx::query("UPDATE campaigns SET status = 'sending'").execute(&pool).await.unwrap();
        let claimed = store.claim_messages("w", 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].id, claimed[0].campaign_id), (id, Some(campaign)));
        // What the worker reads about the campaign: its name and quiet hours, in one query.
        let found = store.message_campaigns(&[campaign, 999_999]).await.unwrap();
        assert_eq!((found.len(), found[&campaign].name.as_str(), found[&campaign].quiet_start.as_deref()), (1, "c", None));
        sqlx::query("UPDATE campaigns SET quiet_start = '22:00', quiet_end = '08:00'").execute(&pool).await.unwrap();
        let found = store.message_campaigns(&[campaign]).await.unwrap();
        assert_eq!((found[&campaign].quiet_start.as_deref(), found[&campaign].quiet_end.as_deref()), (Some("22:00"), Some("08:00")));
        pool.close().await;
    }

    pub async fn quiet_hours_defer_without_counting_an_attempt(store: Store) {
        let (email, _, t) = setup(&store).await;
        let id = enqueue(&store, &msg("k", email.id, t, "a@example.edu.cn")).await;
        store.claim_messages("w", 10, Duration::from_secs(60)).await.unwrap();
        assert!(!store.defer_message(id, "someone-else", "2999-01-01T00:00:00.000Z", None).await.unwrap(), "only the holder defers");
        assert!(store.defer_message(id, "w", "2999-01-01T00:00:00.000Z", Some("quiet hours")).await.unwrap());
        let row = store.outbox_message(id).await.unwrap();
        assert_eq!(
            (row.status, row.attempts, row.next_attempt_at.as_str(), row.last_error.as_deref()),
            (OutboxStatus::Pending, 0, "2999-01-01T00:00:00.000Z", Some("quiet hours"))
        );
        assert!(store.claim_messages("w", 10, Duration::from_secs(60)).await.unwrap().is_empty());
    }

    pub async fn channels_keep_their_secret_to_themselves(store: Store) {
        let (email, sms, _) = setup(&store).await;
        assert!(email.has_secret && !sms.has_secret);
        assert_eq!(email.kind, ChannelKind::Email);
        let listed = store.channels().await.unwrap();
        assert_eq!(listed.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(), vec!["mail", "sms"]);
        assert!(!format!("{listed:?}").contains("s3cret-pass"));
        let (_, secret) = store.channel_for_sending(email.id).await.unwrap();
        assert_eq!(secret.as_deref(), Some("s3cret-pass"));

        // An empty secret keeps the stored one; a new one replaces it.
        let mut edit = channel_input("mail", smtp("smtp.example.edu.cn"), Some(""));
        edit.rate_per_second = 200;
        assert!(!format!("{edit:?}").contains("s3cret"));
        let updated = store.update_channel(&actor(), email.id, Some(email.version), &edit).await.unwrap();
        assert_eq!((updated.version, updated.rate_per_second, updated.has_secret), (email.version + 1, 200, true));
        assert_eq!(store.channel_for_sending(email.id).await.unwrap().1.as_deref(), Some("s3cret-pass"));
        edit.secret = Some("n3w-pass".into());
        let updated = store.update_channel(&actor(), email.id, None, &edit).await.unwrap();
        assert_eq!(store.channel_for_sending(email.id).await.unwrap().1.as_deref(), Some("n3w-pass"));
        // A stale version, a changed kind, a bad rate, a bad URL and a taken code are refused.
        assert!(matches!(store.update_channel(&actor(), email.id, Some(email.version), &edit).await, Err(StoreError::Conflict(_))));
        let wrong_kind = channel_input("mail", ChannelSettings::Wecom { url: "https://qyapi.weixin.qq.com/x".into() }, None);
        assert!(invalid_fields(store.update_channel(&actor(), email.id, None, &wrong_kind).await).contains("settings"));
        for rate in [0, 10_001] {
            let mut bad = channel_input("fast", smtp("h"), None);
            bad.rate_per_second = rate;
            assert!(invalid_fields(store.create_channel(&actor(), &bad).await).contains("rate_per_second"));
        }
        let bad_url = channel_input("hook", ChannelSettings::Webhook { url: "ftp://x".into() }, None);
        assert!(invalid_fields(store.create_channel(&actor(), &bad_url).await).contains("settings"));
        assert!(matches!(store.create_channel(&actor(), &channel_input("sms", smtp("h"), None)).await, Err(StoreError::Conflict(_))));
        // Disable and enable, each a new version.
        let off = store.set_channel_enabled(&actor(), email.id, false).await.unwrap();
        assert!(!off.enabled && off.version == updated.version + 1);
        assert!(matches!(store.set_channel_enabled(&actor(), 9999, true).await, Err(StoreError::NotFound)));
        // The audit trail names the changes but never the secret.
        let trail = store.audit_trail("channel", &email.id.to_string()).await.unwrap();
        let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, vec!["channel.create", "channel.update", "channel.update", "channel.disable"]);
        let text = serde_json::to_string(&trail.iter().map(|e| (&e.before, &e.after)).collect::<Vec<_>>()).unwrap();
        assert!(!text.contains("s3cret") && !text.contains("n3w-pass"), "{text}");
        assert!(text.contains("(changed)"), "a secret change is noted: {text}");
    }

    pub async fn templates_keep_variants_per_kind_and_language(store: Store) {
        let (_, _, t) = setup(&store).await;
        let tpl = store.template(t).await.unwrap();
        assert_eq!(tpl.variants.len(), 2);
        let mut input = TemplateInput {
            code: "notice".into(),
            name: "通知（新）".into(),
            purpose: Purpose::News,
            variants: vec![
                variant(ChannelKind::Email, "en", "Notice", "Dear {{ reader.name }}"),
                TemplateVariant { body_html: Some("<p>您好</p>".into()), ..variant(ChannelKind::Email, "zh", "通知", "您好") },
                TemplateVariant { body_html: Some("<p>ignored</p>".into()), ..variant(ChannelKind::Sms, "zh", "", "短信") },
            ],
        };
        let updated = store.update_template(&actor(), t, Some(tpl.version), &input).await.unwrap();
        assert_eq!((updated.purpose, updated.version, updated.name.as_str()), (Purpose::News, tpl.version + 1, "通知(新)"));
        let keys: Vec<(ChannelKind, &str)> = updated.variants.iter().map(|v| (v.channel_kind, v.lang.as_str())).collect();
        assert_eq!(keys, vec![(ChannelKind::Email, "zh"), (ChannelKind::Email, "en"), (ChannelKind::Sms, "zh")]);
        assert_eq!(updated.variants[2].body_html, None, "HTML is for email only");
        // English where there is one, else Chinese; nothing for a kind without a variant.
        assert_eq!(store.template_variant(t, ChannelKind::Email, "en").await.unwrap().unwrap().subject, "Notice");
        assert_eq!(store.template_variant(t, ChannelKind::Sms, "en").await.unwrap().unwrap().body_text, "短信");
        assert_eq!(store.template_variant(t, ChannelKind::Wecom, "zh").await.unwrap(), None);
        // Mistakes name their variant.
        input.variants.push(variant(ChannelKind::Sms, "zh", "", "again"));
        input.variants.push(variant(ChannelKind::Email, "fr", "x", "y"));
        input.variants.push(variant(ChannelKind::Wecom, "zh", "", " "));
        let fields = invalid_fields(store.update_template(&actor(), t, None, &input).await);
        assert_eq!(fields, BTreeSet::from(["variants[3].lang".into(), "variants[4].lang".into(), "variants[5].body_text".into()]));
        assert!(matches!(store.update_template(&actor(), t, Some(tpl.version), &input).await, Err(StoreError::Invalid(_))));
        input.variants.truncate(3);
        assert!(matches!(store.update_template(&actor(), t, Some(tpl.version), &input).await, Err(StoreError::Conflict(_))));
        assert!(matches!(store.create_template(&actor(), &input).await, Err(StoreError::Conflict(_))), "code taken");
        assert_eq!(store.template_by_code("notice").await.unwrap().id, t);
        assert_eq!(store.templates().await.unwrap().len(), 1);
        let trail = store.audit_trail("template", &t.to_string()).await.unwrap();
        assert_eq!(trail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), vec!["template.create", "template.update"]);
    }

    pub async fn public_url_and_message_id_salt(store: Store) {
        assert_eq!(store.public_url().await.unwrap(), DEFAULT_PUBLIC_URL);
        let set = store.set_public_url(&actor(), " https://lector.example.edu.cn/ ").await.unwrap();
        assert_eq!(set, "https://lector.example.edu.cn");
        assert_eq!(store.public_url().await.unwrap(), "https://lector.example.edu.cn");
        for bad in ["lector.example.edu.cn", "https://", "javascript:alert(1)", "http://a b"] {
            assert!(invalid_fields(store.set_public_url(&actor(), bad).await).contains("public_url"), "{bad}");
        }
        assert_eq!(store.audit_trail("settings", "messaging.public_url").await.unwrap().len(), 1);
        let salt = store.message_id_salt().await.unwrap();
        assert_eq!(salt.len(), 16);
        assert_eq!(store.message_id_salt().await.unwrap(), salt, "stable per store");
    }

    pub async fn message_readers_in_one_query(store: Store) {
        let mut d = draft("2025001", "王芳");
        d.affiliation = Some("历史学系".into());
        d.expires_on = Some("2027-07-01".into());
        d.contacts = vec![
            ContactDraft { kind: "mobile".into(), value: "13800138000".into(), ..Default::default() },
            ContactDraft { kind: "email".into(), value: "wf@example.edu.cn".into(), ..Default::default() },
        ];
        let a = store.create_reader(&actor(), &d.parse(today()).unwrap()).await.unwrap();
        let b = store.create_reader(&actor(), &draft("2025002", "李雷").parse(today()).unwrap()).await.unwrap();
        let pool = common::raw_pool().await;
        sqlx::query("UPDATE readers SET lang = 'en' WHERE id = $1").bind(b.id).execute(&pool).await.unwrap();
        pool.close().await;
        let found = store.message_readers(&[a.id, b.id, 999_999]).await.unwrap();
        assert_eq!(found.len(), 2);
        let ra = &found[&a.id];
        assert_eq!((ra.card_no.as_str(), ra.name.as_str(), ra.lang.as_str()), ("2025001", "王芳", "zh"));
        assert_eq!((ra.affiliation.as_deref(), ra.expires_on.as_deref()), (Some("历史学系"), Some("2027-07-01")));
        assert_eq!(ra.category_zh, "本科生");
        assert_eq!((ra.email.as_deref(), ra.mobile.as_deref()), (Some("wf@example.edu.cn"), Some("13800138000")));
        assert_eq!((found[&b.id].email.as_deref(), found[&b.id].mobile.as_deref()), (None, None));
        assert_eq!(found[&b.id].lang, "en");
        assert!(store.message_readers(&[]).await.unwrap().is_empty());
    }
}
