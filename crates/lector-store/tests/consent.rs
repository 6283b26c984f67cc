//! Consent (授权), unsubscribe tokens and the reader's portal sign-in, on SQLite and PostgreSQL.

#[macro_use]
mod common;

use common::{actor, draft, raw_count, raw_pool, today};
use lector_store::audit::AuditQuery;
use lector_store::auth::NewUser;
use lector_store::cases::{Case, CaseSource};
use lector_store::config::NamedInput;
use lector_store::consent::{ConsentChange, TOKEN_SECRET_KEY};
use lector_store::domain::case::{CaseAction, CaseInput, CaseKind, CaseStatus, Priority, RatingDraft, TriageOutcome};
use lector_store::domain::messaging::{ChannelKind, ConsentSource, Purpose, Trigger};
use lector_store::domain::reader::{ContactDraft, ReaderDraft};
use lector_store::domain::role::Role;
use lector_store::portal_auth::{CodeCheck, CodeRequest, CODES_PER_HOUR, CODE_ATTEMPTS};
use lector_store::readers::ReaderRecord;
use lector_store::{Actor, Store, StoreError};

scenarios!(
    consent:
    the_matrix_starts_at_the_defaults,
    changes_are_evented_audited_and_idempotent,
    bulk_changes_are_one_transaction,
    preferences_save_consent_and_language_together,
    unknown_readers_are_not_found,
    concurrent_identical_changes_record_one_event,
);

scenarios!(
    tokens:
    tokens_round_trip_for_every_cell,
    forged_truncated_and_tampered_tokens_are_refused,
    the_secret_is_made_once_even_concurrently,
    a_token_for_a_deleted_reader_changes_nothing,
);

scenarios!(
    portal:
    a_code_is_issued_only_for_a_matching_card_and_contact,
    a_right_code_signs_in_once,
    five_wrong_codes_lock_the_code,
    an_expired_or_replaced_code_is_refused,
    codes_per_reader_are_limited,
    readers_see_and_rate_only_their_own_cases,
);

scenarios!(
    availability:
    sign_in_is_available_only_with_an_enabled_channel,
);

async fn reader_with(store: &Store, card: &str, name: &str, contacts: &[(&str, &str)]) -> ReaderRecord {
    let d = ReaderDraft {
        contacts: contacts.iter().map(|(k, v)| ContactDraft { kind: (*k).into(), value: (*v).into(), ..Default::default() }).collect(),
        ..draft(card, name)
    };
    let input = d.parse(today()).unwrap_or_else(|e| panic!("draft {card}: {e}"));
    store.create_reader(&actor(), &input).await.unwrap_or_else(|e| panic!("create {card}: {e}"))
}

async fn reader(store: &Store) -> ReaderRecord {
    reader_with(store, "R2025001", "张晓明", &[("email", "zhang.xm@pku.edu.cn"), ("mobile", "13800138000")]).await
}

async fn audit_count(store: &Store, action: &str) -> i64 {
    store.audit_log(&AuditQuery { action: Some(action.into()), page: 1, per_page: 1, ..Default::default() }).await.unwrap().total
}

fn invalid_field(r: Result<impl std::fmt::Debug, StoreError>) -> (String, String) {
    match r {
        Err(StoreError::Invalid(f)) => {
            let e = f.0.first().expect("one field error");
            (e.field.clone(), e.message.en.clone())
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

mod consent {
    use super::*;

    pub async fn the_matrix_starts_at_the_defaults(store: Store) {
        let r = reader(&store).await;
        let m = store.consent_matrix(r.id).await.unwrap();
        assert_eq!(m.cells.len(), Purpose::ALL.len() * ChannelKind::ALL.len());
        for c in &m.cells {
            assert!(c.is_default && c.source.is_none() && c.changed_at.is_none(), "{c:?}");
            assert_eq!(c.granted, c.purpose == Purpose::Service, "{c:?}");
        }
        assert!(m.granted(Purpose::Service, ChannelKind::Sms));
        assert!(!m.granted(Purpose::News, ChannelKind::Email));
        assert!(store.consent_history(r.id, 50).await.unwrap().is_empty());
    }

    pub async fn changes_are_evented_audited_and_idempotent(store: Store) {
        let r = reader(&store).await;
        let clerk = Actor::user(7, "li.na", "10.0.0.1");
        // Granting news by email: a change.
        assert!(store.set_consent(&clerk, r.id, Purpose::News, ChannelKind::Email, true, ConsentSource::Staff).await.unwrap());
        let cell = store.consent_matrix(r.id).await.unwrap().cell(Purpose::News, ChannelKind::Email).cloned().unwrap();
        assert!(cell.granted && !cell.is_default);
        assert_eq!(cell.source, Some(ConsentSource::Staff));
        assert!(cell.changed_at.is_some());
        let audits = audit_count(&store, "consent.update").await;
        assert_eq!(audits, 1);

        // The same again, and a default asked for explicitly: nothing written.
        assert!(!store.set_consent(&clerk, r.id, Purpose::News, ChannelKind::Email, true, ConsentSource::Portal).await.unwrap());
        assert!(!store.set_consent(&clerk, r.id, Purpose::Service, ChannelKind::Email, true, ConsentSource::Portal).await.unwrap());
        assert!(!store.set_consent(&clerk, r.id, Purpose::Survey, ChannelKind::Sms, false, ConsentSource::Portal).await.unwrap());
        assert_eq!(audit_count(&store, "consent.update").await, 1);
        assert_eq!(store.consent_history(r.id, 50).await.unwrap().len(), 1);
        let still = store.consent_matrix(r.id).await.unwrap();
        assert_eq!(still.cell(Purpose::News, ChannelKind::Email).unwrap().source, Some(ConsentSource::Staff), "a no-op keeps the source");
        assert!(still.cell(Purpose::Service, ChannelKind::Email).unwrap().is_default);

        // Withdrawing a default grant, then the unsubscribe of news.
        let unsub = Actor::system("unsubscribe");
        assert!(store.set_consent(&unsub, r.id, Purpose::Service, ChannelKind::Sms, false, ConsentSource::Unsubscribe).await.unwrap());
        assert!(store.set_consent(&unsub, r.id, Purpose::News, ChannelKind::Email, false, ConsentSource::Unsubscribe).await.unwrap());
        let m = store.consent_matrix(r.id).await.unwrap();
        assert!(!m.granted(Purpose::Service, ChannelKind::Sms) && !m.granted(Purpose::News, ChannelKind::Email));
        assert!(m.granted(Purpose::Service, ChannelKind::Email), "other cells keep their value");

        // History: newest first, with actor, source and the value.
        let h = store.consent_history(r.id, 50).await.unwrap();
        let seen: Vec<_> = h.iter().map(|e| (e.purpose, e.channel, e.granted, e.source, e.actor.as_str())).collect();
        assert_eq!(
            seen,
            vec![
                (Purpose::News, ChannelKind::Email, false, ConsentSource::Unsubscribe, "unsubscribe"),
                (Purpose::Service, ChannelKind::Sms, false, ConsentSource::Unsubscribe, "unsubscribe"),
                (Purpose::News, ChannelKind::Email, true, ConsentSource::Staff, "li.na"),
            ]
        );
        assert_eq!(store.consent_history(r.id, 1).await.unwrap().len(), 1, "the limit is applied");

        // The audit trail of the reader shows each change with before and after.
        let trail: Vec<_> =
            store.audit_trail("reader", &r.id.to_string()).await.unwrap().into_iter().filter(|e| e.action == "consent.update").collect();
        assert_eq!(trail.len(), 3);
        assert_eq!(trail[0].actor_name, "li.na");
        assert_eq!(trail[0].before, Some(serde_json::json!({"news.email": false})));
        assert_eq!(trail[0].after, Some(serde_json::json!({"news.email": true})));
        assert!(trail[1].summary.contains("service.sms: withdrawn") && trail[1].summary.contains("unsubscribe"), "{}", trail[1].summary);
    }

    pub async fn bulk_changes_are_one_transaction(store: Store) {
        let r = reader(&store).await;
        let change = |purpose, channel, granted| ConsentChange { purpose, channel, granted };
        let done = store
            .set_consents(
                &actor(),
                r.id,
                &[
                    change(Purpose::News, ChannelKind::Email, true),
                    change(Purpose::Survey, ChannelKind::Email, true),
                    change(Purpose::Service, ChannelKind::Email, true), // already so
                    change(Purpose::News, ChannelKind::Sms, true),
                    change(Purpose::News, ChannelKind::Sms, false), // the later entry wins: no change
                ],
                ConsentSource::Api,
            )
            .await
            .unwrap();
        let mut got: Vec<_> = done.iter().map(|c| (c.purpose, c.channel, c.granted)).collect();
        got.sort_by_key(|(p, c, _)| (p.code(), c.code()));
        assert_eq!(got, vec![(Purpose::News, ChannelKind::Email, true), (Purpose::Survey, ChannelKind::Email, true)]);
        assert_eq!(audit_count(&store, "consent.update").await, 1, "one audit row for the whole change");
        assert_eq!(store.consent_history(r.id, 50).await.unwrap().len(), 2);
        assert_eq!(raw_count("SELECT COUNT(*) FROM consents WHERE reader_id = $1", r.id).await, 2);

        // A bulk change naming a deleted reader writes nothing at all.
        let other = reader_with(&store, "R2025002", "李四", &[]).await;
        store.delete_reader(&actor(), other.id, None).await.unwrap();
        let gone = store.set_consents(&actor(), other.id, &[change(Purpose::News, ChannelKind::Email, true)], ConsentSource::Api).await;
        assert!(matches!(gone, Err(StoreError::NotFound)), "{gone:?}");
        assert_eq!(audit_count(&store, "consent.update").await, 1);
    }

    pub async fn preferences_save_consent_and_language_together(store: Store) {
        let r = reader(&store).await;
        assert_eq!(store.reader_lang(r.id).await.unwrap(), "zh");
        let me = Actor { user_id: None, name: format!("reader:{}", r.id), origin: "10.1.1.1".into() };
        let changes = [ConsentChange { purpose: Purpose::News, channel: ChannelKind::Wecom, granted: true }];
        let (done, lang) = store.save_preferences(&me, r.id, &changes, ConsentSource::Portal, Some("en")).await.unwrap();
        assert_eq!((done.len(), lang), (1, true));
        assert_eq!(store.reader_lang(r.id).await.unwrap(), "en");
        let trail = store.audit_trail("reader", &r.id.to_string()).await.unwrap();
        let last = trail.last().unwrap();
        assert_eq!(last.action, "consent.update");
        assert_eq!(last.after, Some(serde_json::json!({"news.wecom": true, "lang": "en"})));
        assert_eq!(last.before, Some(serde_json::json!({"news.wecom": false, "lang": null})));
        // Saved again unchanged: nothing.
        let (done, lang) = store.save_preferences(&me, r.id, &changes, ConsentSource::Portal, Some("en")).await.unwrap();
        assert!(done.is_empty() && !lang);
        assert_eq!(audit_count(&store, "consent.update").await, 1);
        // An unknown language is refused and changes nothing.
        let off = [ConsentChange { purpose: Purpose::News, channel: ChannelKind::Wecom, granted: false }];
        let (field, _) = invalid_field(store.save_preferences(&me, r.id, &off, ConsentSource::Portal, Some("fr")).await);
        assert_eq!(field, "lang");
        assert!(store.consent_matrix(r.id).await.unwrap().granted(Purpose::News, ChannelKind::Wecom));
    }

    pub async fn unknown_readers_are_not_found(store: Store) {
        assert!(matches!(store.consent_matrix(999_999).await, Err(StoreError::NotFound)));
        let r = store.set_consent(&actor(), 999_999, Purpose::News, ChannelKind::Email, true, ConsentSource::Staff).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
        assert!(matches!(store.reader_lang(999_999).await, Err(StoreError::NotFound)));
        assert!(store.consent_history(999_999, 10).await.unwrap().is_empty());
    }

    pub async fn concurrent_identical_changes_record_one_event(store: Store) {
        let r = reader(&store).await;
        let mut jobs = Vec::new();
        for i in 0..6 {
            let store = store.clone();
            jobs.push(tokio::spawn(async move {
                let a = Actor::system(&format!("worker{i}"));
                store.set_consent(&a, r.id, Purpose::Survey, ChannelKind::Email, true, ConsentSource::Api).await.unwrap()
            }));
        }
        let mut changed = 0;
        for j in jobs {
            changed += j.await.unwrap() as i32;
        }
        assert_eq!(changed, 1, "exactly one request made the change");
        assert_eq!(store.consent_history(r.id, 50).await.unwrap().len(), 1);
        assert_eq!(audit_count(&store, "consent.update").await, 1);
    }
}

mod tokens {
    use super::*;

    pub async fn tokens_round_trip_for_every_cell(store: Store) {
        let r = reader(&store).await;
        let signer = store.unsubscribe_signer().await.unwrap();
        for &p in Purpose::ALL {
            for &c in ChannelKind::ALL {
                let t = store.unsubscribe_token(r.id, p, c).await.unwrap();
                assert_eq!(t, signer.token(r.id, p, c), "the signer and the store agree");
                assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "URL-safe: {t}");
                assert_eq!(store.verify_unsubscribe_token(&t).await.unwrap(), (r.id, p, c));
            }
        }
        let a = store.unsubscribe_token(r.id, Purpose::News, ChannelKind::Email).await.unwrap();
        let b = store.unsubscribe_token(r.id, Purpose::News, ChannelKind::Sms).await.unwrap();
        assert_ne!(a, b);
    }

    pub async fn forged_truncated_and_tampered_tokens_are_refused(store: Store) {
        let r = reader(&store).await;
        let good = store.unsubscribe_token(r.id, Purpose::News, ChannelKind::Email).await.unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        assert_eq!(parts.len(), 4, "{good}");
        let sig = parts[3];
        let flipped = {
            let mut s: Vec<char> = sig.chars().collect();
            s[5] = if s[5] == 'A' { 'B' } else { 'A' };
            s.into_iter().collect::<String>()
        };
        let forged = [
            format!("{}.{}.{}.{}", r.id + 1, parts[1], parts[2], sig), // another reader
            format!("{}.survey.{}.{}", r.id, parts[2], sig),           // another purpose
            format!("{}.{}.sms.{}", r.id, parts[1], sig),              // another channel
            format!("{}.{}.{}.{flipped}", r.id, parts[1], parts[2]),   // one character of the signature
            format!("{}.{}.{}.{}", r.id, parts[1], parts[2], "A".repeat(43)),
        ];
        for t in &forged {
            let (field, msg) = invalid_field(store.verify_unsubscribe_token(t).await);
            assert_eq!(field, "token");
            assert!(msg.contains("signature"), "{t}: {msg}");
        }
        let malformed = [
            String::new(),
            good[..good.len() - 1].to_string(), // truncated
            good[..good.len() / 2].to_string(),
            format!("{}.{}.{}", parts[0], parts[1], parts[2]),
            format!("{good}.x"),
            format!("x{good}"),
            format!("-1.{}.{}.{sig}", parts[1], parts[2]),
            format!("+{}.{}.{}.{sig}", parts[0], parts[1], parts[2]),
            format!("{}.News.{}.{sig}", parts[0], parts[2]),
            format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], "!".repeat(43)),
            "1.news.email.".to_string() + &"A".repeat(300),
            "../../etc/passwd".to_string(),
            "一.news.email.abc".to_string(),
        ];
        for t in &malformed {
            let (field, msg) = invalid_field(store.verify_unsubscribe_token(t).await);
            assert_eq!(field, "token");
            assert!(msg.contains("incomplete or malformed"), "{t}: {msg}");
        }
        // A token signed by another installation is a forgery here.
        let dir = tempfile::tempdir().unwrap();
        let other = Store::open(&format!("sqlite://{}", dir.path().join("other.db").display())).await.unwrap();
        let foreign = other.unsubscribe_token(r.id, Purpose::News, ChannelKind::Email).await.unwrap();
        other.close().await;
        assert_ne!(foreign, good);
        invalid_field(store.verify_unsubscribe_token(&foreign).await);
        // Nothing was changed by any of it.
        assert!(store.consent_history(r.id, 10).await.unwrap().is_empty());
    }

    pub async fn the_secret_is_made_once_even_concurrently(store: Store) {
        let mut jobs = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            jobs.push(tokio::spawn(async move { store.unsubscribe_token(42, Purpose::Survey, ChannelKind::Qq).await.unwrap() }));
        }
        let mut tokens = Vec::new();
        for j in jobs {
            tokens.push(j.await.unwrap());
        }
        tokens.dedup();
        assert_eq!(tokens.len(), 1, "every caller signs with the same secret");
        let pool = raw_pool().await;
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM settings WHERE key = $1").bind(TOKEN_SECRET_KEY).fetch_one(&pool).await.unwrap();
        pool.close().await;
        assert_eq!(n, 1);
        // And it stays: a later signer makes the same token.
        assert_eq!(store.unsubscribe_token(42, Purpose::Survey, ChannelKind::Qq).await.unwrap(), tokens[0]);
    }

    pub async fn a_token_for_a_deleted_reader_changes_nothing(store: Store) {
        let r = reader(&store).await;
        let t = store.unsubscribe_token(r.id, Purpose::News, ChannelKind::Email).await.unwrap();
        store.delete_reader(&actor(), r.id, None).await.unwrap();
        // The signature is still right …
        let (id, p, c) = store.verify_unsubscribe_token(&t).await.unwrap();
        assert_eq!(id, r.id);
        // … but there is nobody to unsubscribe.
        let res = store.set_consent(&Actor::system("unsubscribe"), id, p, c, false, ConsentSource::Unsubscribe).await;
        assert!(matches!(res, Err(StoreError::NotFound)), "{res:?}");
        assert_eq!(raw_count("SELECT COUNT(*) FROM consent_events WHERE reader_id = $1", r.id).await, 0);
        assert_eq!(audit_count(&store, "consent.update").await, 0);
    }
}

mod portal {
    use super::*;

    /// The code of an issued request.
    fn issued(r: CodeRequest) -> (i64, String) {
        match r {
            CodeRequest::Issued { code_id, code, .. } => {
                assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
                (code_id, code)
            }
            other => panic!("expected a code, got {other:?}"),
        }
    }

    fn wrong(code: &str) -> String {
        format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
    }

    pub async fn a_code_is_issued_only_for_a_matching_card_and_contact(store: Store) {
        let r = reader(&store).await;
        reader_with(&store, "R2025009", "王五", &[("email", "wang@pku.edu.cn")]).await;
        for (card, contact) in [
            ("R2025001", "other@pku.edu.cn"), // not this reader's
            ("R2025001", "wang@pku.edu.cn"),  // another reader's
            ("R2025001", "13900000000"),
            ("R9999999", "zhang.xm@pku.edu.cn"), // unknown card
            ("", "zhang.xm@pku.edu.cn"),
            ("R2025001", ""),
            ("R2025001", "not a contact"),
            ("R2025001 OR 1=1", "zhang.xm@pku.edu.cn"),
        ] {
            assert_eq!(store.request_portal_code(card, contact, "10.0.0.1").await.unwrap(), CodeRequest::NoMatch, "{card} / {contact}");
        }
        assert_eq!(raw_count("SELECT COUNT(*) FROM portal_codes WHERE reader_id = $1", r.id).await, 0);
        // Card numbers and contacts are matched as the library stores them: case, +86, spaces.
        issued(store.request_portal_code("r2025001", "Zhang.XM@PKU.edu.cn", "10.0.0.1").await.unwrap());
        issued(store.request_portal_code(" R2025001 ", "+86 138-0013-8000", "10.0.0.1").await.unwrap());
        assert_eq!(raw_count("SELECT COUNT(*) FROM portal_codes WHERE reader_id = $1", r.id).await, 2);
        // Only the hash is kept.
        let pool = raw_pool().await;
        let hashes: Vec<String> =
            sqlx::query_scalar("SELECT code_hash FROM portal_codes WHERE reader_id = $1").bind(r.id).fetch_all(&pool).await.unwrap();
        pool.close().await;
        assert!(hashes.iter().all(|h| h.len() > 60 && h.contains('$')), "{hashes:?}");
        assert_eq!(audit_count(&store, "portal.code").await, 2);
    }

    pub async fn a_right_code_signs_in_once(store: Store) {
        let r = reader(&store).await;
        let (_, code) = issued(store.request_portal_code("R2025001", "zhang.xm@pku.edu.cn", "10.0.0.1").await.unwrap());
        let token = match store.verify_portal_code("R2025001", &code, "10.0.0.1").await.unwrap() {
            CodeCheck::SignedIn { reader_id, token } => {
                assert_eq!(reader_id, r.id);
                token
            }
            other => panic!("expected a session, got {other:?}"),
        };
        let me = store.portal_session(&token).await.unwrap().expect("the session is valid");
        assert_eq!((me.id, me.card_no.as_str(), me.name.as_str()), (r.id, "R2025001", "张晓明"));
        // The code is used up.
        assert_eq!(store.verify_portal_code("R2025001", &code, "10.0.0.1").await.unwrap(), CodeCheck::Expired);
        // Only the token's hash is stored; forged tokens find nobody.
        assert_eq!(raw_count("SELECT COUNT(*) FROM portal_sessions WHERE reader_id = $1", r.id).await, 1);
        for forged in ["", "abc", &"0".repeat(64), &token[..63], &format!("{token}0")] {
            assert!(store.portal_session(forged).await.unwrap().is_none(), "{forged}");
        }
        // Expired sessions end.
        let pool = raw_pool().await;
        sqlx::query("UPDATE portal_sessions SET expires_at = $1 WHERE reader_id = $2")
            .bind("2000-01-01T00:00:00.000Z")
            .bind(r.id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert!(store.portal_session(&token).await.unwrap().is_none());
        // Sign out ends a live one.
        let (_, code) = issued(store.request_portal_code("R2025001", "13800138000", "10.0.0.1").await.unwrap());
        let CodeCheck::SignedIn { token, .. } = store.verify_portal_code("R2025001", &code, "10.0.0.1").await.unwrap() else {
            panic!("a fresh code signs in")
        };
        assert!(store.portal_session(&token).await.unwrap().is_some());
        store.end_portal_session(&token).await.unwrap();
        assert!(store.portal_session(&token).await.unwrap().is_none());
        assert_eq!(audit_count(&store, "portal.sign_in").await, 2);
    }

    pub async fn five_wrong_codes_lock_the_code(store: Store) {
        reader(&store).await;
        let (_, code) = issued(store.request_portal_code("R2025001", "zhang.xm@pku.edu.cn", "10.0.0.1").await.unwrap());
        for i in 1..CODE_ATTEMPTS {
            assert_eq!(
                store.verify_portal_code("R2025001", &wrong(&code), "10.0.0.1").await.unwrap(),
                CodeCheck::Wrong { attempts_left: CODE_ATTEMPTS - i }
            );
        }
        // Rubbish counts too.
        assert_eq!(store.verify_portal_code("R2025001", "12ab", "10.0.0.1").await.unwrap(), CodeCheck::Locked);
        // Now even the right code is refused.
        assert_eq!(store.verify_portal_code("R2025001", &code, "10.0.0.1").await.unwrap(), CodeCheck::Locked);
        assert_eq!(audit_count(&store, "portal.sign_in_failed").await, CODE_ATTEMPTS);
        assert_eq!(audit_count(&store, "portal.sign_in").await, 0);
        // A new code works.
        let (_, code) = issued(store.request_portal_code("R2025001", "zhang.xm@pku.edu.cn", "10.0.0.1").await.unwrap());
        assert!(matches!(store.verify_portal_code("R2025001", &code, "10.0.0.1").await.unwrap(), CodeCheck::SignedIn { .. }));
    }

    pub async fn an_expired_or_replaced_code_is_refused(store: Store) {
        let r = reader(&store).await;
        let (id, code) = issued(store.request_portal_code("R2025001", "zhang.xm@pku.edu.cn", "10.0.0.1").await.unwrap());
        let pool = raw_pool().await;
        sqlx::query("UPDATE portal_codes SET expires_at = $1 WHERE id = $2")
            .bind("2000-01-01T00:00:00.000Z")
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert_eq!(store.verify_portal_code("R2025001", &code, "10.0.0.1").await.unwrap(), CodeCheck::Expired);
        // Asking again replaces the code: the first one no longer works, the second does.
        let (_, first) = issued(store.request_portal_code("R2025001", "zhang.xm@pku.edu.cn", "10.0.0.1").await.unwrap());
        let (_, second) = issued(store.request_portal_code("R2025001", "zhang.xm@pku.edu.cn", "10.0.0.1").await.unwrap());
        if first != second {
            assert!(matches!(store.verify_portal_code("R2025001", &first, "10.0.0.1").await.unwrap(), CodeCheck::Wrong { .. }));
        }
        assert!(matches!(store.verify_portal_code("R2025001", &second, "10.0.0.1").await.unwrap(), CodeCheck::SignedIn { .. }));
        let pool = raw_pool().await;
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let active: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM portal_codes WHERE reader_id = $1 AND used_at IS NULL AND expires_at > $2")
                .bind(r.id)
                .bind(now)
                .fetch_one(&pool)
                .await
                .unwrap();
        pool.close().await;
        assert_eq!(active, 0, "no code is left active");
        // No code at all, or an unknown card: expired.
        assert_eq!(store.verify_portal_code("R2025001", &second, "10.0.0.1").await.unwrap(), CodeCheck::Expired);
        assert_eq!(store.verify_portal_code("NOBODY", "123456", "10.0.0.1").await.unwrap(), CodeCheck::Expired);
    }

    pub async fn codes_per_reader_are_limited(store: Store) {
        let r = reader(&store).await;
        for _ in 0..CODES_PER_HOUR {
            issued(store.request_portal_code("R2025001", "zhang.xm@pku.edu.cn", "10.0.0.1").await.unwrap());
        }
        assert_eq!(store.request_portal_code("R2025001", "zhang.xm@pku.edu.cn", "10.0.0.9").await.unwrap(), CodeRequest::TooMany);
        assert_eq!(raw_count("SELECT COUNT(*) FROM portal_codes WHERE reader_id = $1", r.id).await, CODES_PER_HOUR);
        // Another reader is not affected.
        reader_with(&store, "R2025002", "李四", &[("mobile", "13900001111")]).await;
        issued(store.request_portal_code("R2025002", "13900001111", "10.0.0.9").await.unwrap());
    }

    async fn resolved_case(store: &Store, card: &str, subject: &str) -> Case {
        let input = CaseInput {
            kind: CaseKind::Inquiry,
            subject: subject.into(),
            body: "开放时间是什么？".into(),
            card_no: Some(card.into()),
            contact_name: Some("读者".into()),
            contact: Some("13800138000".into()),
        };
        let (mut c, _) = store.create_case(&actor(), &input, CaseSource::Staff, None).await.unwrap();
        let admin = match store.user_by_name("admin").await {
            Ok(u) => u,
            Err(_) => store
                .create_user(
                    &actor(),
                    NewUser {
                        username: "admin".into(),
                        display_name: String::new(),
                        role: Role::Admin,
                        department: None,
                        password: "admin-password-1".into(),
                    },
                )
                .await
                .unwrap(),
        };
        let staff = Actor::user(admin.id, "admin", "10.0.0.1");
        let steps = [
            CaseAction::Triage {
                outcome: TriageOutcome::Accepted,
                category: None,
                priority: Priority::Normal,
                duplicate_of: None,
                comment: None,
            },
            CaseAction::Assign { department: "ref".into(), comment: None },
            CaseAction::Claim,
            CaseAction::Propose { solution: "答复开放时间".into() },
        ];
        for a in steps {
            c = store.act_on_case(&staff, c.id, &a, c.version).await.unwrap_or_else(|e| panic!("{}: {e}", a.code()));
        }
        if c.status == CaseStatus::AwaitingApproval {
            c = store.act_on_case(&staff, c.id, &CaseAction::Approve { comment: None }, c.version).await.unwrap();
        }
        store.act_on_case(&staff, c.id, &CaseAction::Resolve { reply: "每天 8:00–22:00".into() }, c.version).await.unwrap()
    }

    pub async fn readers_see_and_rate_only_their_own_cases(store: Store) {
        store
            .create_department(&actor(), &NamedInput { code: "ref".into(), name_zh: "参考咨询部".into(), name_en: "Reference".into() })
            .await
            .unwrap();
        let me = reader(&store).await;
        let other = reader_with(&store, "R2025002", "李四", &[]).await;
        let mine = resolved_case(&store, "R2025001", "开放时间").await;
        let theirs = resolved_case(&store, "R2025002", "借阅期限").await;
        assert_eq!(mine.reader_id, Some(me.id));
        assert_eq!(store.reader_case(me.id, &mine.number).await.unwrap().id, mine.id);
        assert_eq!(store.reader_case(me.id, &mine.number.to_lowercase()).await.unwrap().id, mine.id);
        assert!(matches!(store.reader_case(me.id, &theirs.number).await, Err(StoreError::NotFound)));
        assert!(matches!(store.reader_case(me.id, "GD2000-999999").await, Err(StoreError::NotFound)));

        let rating = RatingDraft { satisfaction: 5, recommend: Some(9), comment: Some("谢谢".into()) };
        assert!(matches!(store.rate_own_case(me.id, theirs.id, &rating, "10.0.0.1").await, Err(StoreError::NotFound)));
        assert_eq!(store.case(theirs.id).await.unwrap().status, CaseStatus::Resolved, "someone else's case is untouched");
        let bad = RatingDraft { satisfaction: 0, ..rating.clone() };
        assert_eq!(invalid_field(store.rate_own_case(me.id, mine.id, &bad, "10.0.0.1").await).0, "satisfaction");

        let rated = store.rate_own_case(me.id, mine.id, &rating, "10.0.0.1").await.unwrap();
        assert_eq!(rated.status, CaseStatus::Closed);
        let r = rated.rating.clone().unwrap();
        assert_eq!((r.satisfaction, r.recommend, r.comment.as_deref()), (5, Some(9), Some("谢谢")));
        assert_eq!(store.case(mine.id).await.unwrap(), rated, "what is returned is what is stored");
        let events = store.case_events(mine.id).await.unwrap();
        let last = events.last().unwrap();
        assert_eq!((last.action.as_str(), last.actor.as_str(), last.to), ("rate", "portal", CaseStatus::Closed));
        let trail = store.audit_trail("case", &mine.id.to_string()).await.unwrap();
        let audit = trail.last().unwrap();
        assert_eq!(audit.action, "case.rate");
        assert_eq!(audit.actor_name, format!("reader:{}", me.id));
        assert!(matches!(store.rate_own_case(me.id, mine.id, &rating, "10.0.0.1").await, Err(StoreError::Conflict(_))), "rating twice");
        let _ = other;
    }
}

mod availability {
    use super::*;
    use lector_store::channels::ChannelInput;
    use lector_store::domain::messaging::ChannelSettings;
    use lector_store::templates::{TemplateInput, TemplateVariant};
    use lector_store::triggers::TriggerSettingInput;

    pub async fn sign_in_is_available_only_with_an_enabled_channel(store: Store) {
        assert!(!store.portal_sign_in_available().await.unwrap(), "nothing set up");
        let sms = store
            .create_channel(
                &actor(),
                &ChannelInput {
                    code: "sms".into(),
                    name: "短信".into(),
                    settings: ChannelSettings::Sms {
                        url: "http://127.0.0.1:9/sms".into(),
                        mobile_field: "mobile".into(),
                        text_field: "text".into(),
                    },
                    secret: None,
                    rate_per_second: 10,
                    enabled: true,
                },
            )
            .await
            .unwrap();
        let template = store
            .create_template(
                &actor(),
                &TemplateInput {
                    code: "portal_code".into(),
                    name: "登录验证码".into(),
                    purpose: Purpose::Service,
                    variants: vec![TemplateVariant {
                        channel_kind: ChannelKind::Sms,
                        lang: "zh".into(),
                        subject: String::new(),
                        body_text: "您的验证码是 {{ code }}".into(),
                        body_html: None,
                    }],
                },
            )
            .await
            .unwrap();
        let off = TriggerSettingInput { template_id: Some(template.id), channels: vec!["sms".into()], enabled: false };
        store.set_trigger_setting(&actor(), Trigger::PortalCode, &off).await.unwrap();
        assert!(!store.portal_sign_in_available().await.unwrap(), "the trigger is off");
        store.set_trigger_setting(&actor(), Trigger::PortalCode, &TriggerSettingInput { enabled: true, ..off }).await.unwrap();
        assert!(store.portal_sign_in_available().await.unwrap());
        store.set_channel_enabled(&actor(), sms.id, false).await.unwrap();
        assert!(!store.portal_sign_in_available().await.unwrap(), "its only channel is disabled");
    }
}
