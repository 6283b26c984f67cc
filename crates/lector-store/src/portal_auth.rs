//! Reader sign-in on the portal (读者登录): a one-time code sent to the email or mobile the library
//! has on file, then a session; and what a signed-in reader reads and does there (their own
//! cases, rating them).
//!
//! Codes are six digits, stored salted and hashed, valid [`CODE_MINUTES`], good for
//! [`CODE_ATTEMPTS`] tries; a new code replaces the reader's earlier one, and a reader gets at
//! most [`CODES_PER_HOUR`]. Session tokens are random 256-bit values kept as their SHA-256, like
//! staff sessions. Sending the code is the caller's job (`Store::enqueue_trigger` with
//! `Trigger::PortalCode`), so that this module does not depend on how messages go out.

use crate::audit::{self, Change};
use crate::cases::Case;
use crate::{now_text, Actor, Result, Store, StoreError};
use lector_domain::contact::{lookup_key, ContactKind, Email, Mobile};
use lector_domain::messaging::Trigger;
use lector_domain::reader::CardNo;
use rand::{Rng, RngCore};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// How long a sign-in code is valid.
pub const CODE_MINUTES: i64 = 10;
/// Tries per code; the code is dead after that many wrong ones.
pub const CODE_ATTEMPTS: i64 = 5;
/// Codes one reader may request per hour.
pub const CODES_PER_HOUR: i64 = 5;
/// How long a reader's session lasts.
pub const SESSION_HOURS: i64 = 12;

/// The signed-in reader.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PortalReader {
    pub id: i64,
    pub card_no: String,
    pub name: String,
    /// `zh` or `en`, when the reader chose.
    pub lang: Option<String>,
}

/// What became of a request for a sign-in code. The caller answers the same way whatever the
/// outcome, so that the form does not tell who is a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRequest {
    /// A new code for this reader, to be sent; `code_id` makes its message's dedupe key.
    Issued { reader_id: i64, code_id: i64, code: String },
    /// The card number and contact do not belong together (or either is unknown).
    NoMatch,
    /// The reader asked for [`CODES_PER_HOUR`] codes within the hour.
    TooMany,
}

/// What became of a sign-in attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// Signed in: `token` goes into the session cookie.
    SignedIn { reader_id: i64, token: String },
    /// Wrong code; this many tries are left.
    Wrong { attempts_left: i64 },
    /// The code was tried [`CODE_ATTEMPTS`] times; a new one is needed.
    Locked,
    /// No valid code: none requested, expired, already used, or an unknown card number.
    Expired,
}

fn minutes_from_now(m: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(m)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The CSRF token of a reader's session: derived from the session token (which stays in its
/// HttpOnly cookie) by a one-way hash, so a page can carry it without revealing the session.
pub fn session_csrf(token: &str) -> String {
    sha256_hex(&format!("portal-csrf\n{}", token.to_ascii_lowercase()))[..32].to_string()
}

fn code_hash(salt: &str, reader_id: i64, code: &str) -> String {
    sha256_hex(&format!("portal-code\n{salt}\n{reader_id}\n{code}"))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The contact the reader typed, as `(kind, lookup key)`: an email address or a mobile number.
fn contact_lookup(raw: &str) -> Option<(ContactKind, String)> {
    if raw.contains('@') || raw.contains('＠') {
        Email::parse(raw).ok().map(|e| (ContactKind::Email, lookup_key(ContactKind::Email, e.as_str())))
    } else {
        Mobile::parse(raw).ok().map(|m| (ContactKind::Mobile, lookup_key(ContactKind::Mobile, m.as_str())))
    }
}

/// The actor of what a reader does on the portal (`reader:ID`, from their address).
pub fn reader_actor(reader_id: i64, origin: &str) -> Actor {
    Actor { user_id: None, name: format!("reader:{reader_id}"), origin: origin.to_string() }
}

impl Store {
    /// Whether sign-in codes can go out at all: the `portal_code` trigger is switched on and names
    /// an enabled channel. Answered the same for every reader, so saying "unavailable" tells
    /// nothing about who is a reader.
    pub async fn portal_sign_in_available(&self) -> Result<bool> {
        let setting = self.trigger_setting(Trigger::PortalCode).await?;
        if !setting.enabled || setting.template_id.is_none() {
            return Ok(false);
        }
        let mut conn = self.pool.acquire().await?;
        Ok(crate::campaigns::channels_by_code(&mut conn, &setting.channels).await?.into_iter().flatten().any(|c| c.enabled))
    }

    /// A reader asks for a sign-in code with their card number and an email or mobile the
    /// library has for them. On a match a new code replaces any earlier one (audited as
    /// `portal.code`).
    pub async fn request_portal_code(&self, card_no: &str, contact: &str, origin: &str) -> Result<CodeRequest> {
        let Ok(card) = CardNo::parse(card_no) else { return Ok(CodeRequest::NoMatch) };
        let Some((kind, lookup)) = contact_lookup(contact) else { return Ok(CodeRequest::NoMatch) };
        let reader = match self.reader_by_card(card.as_str()).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => return Ok(CodeRequest::NoMatch),
            Err(e) => return Err(e),
        };
        let known = sqlx::query("SELECT id FROM reader_contacts WHERE reader_id = $1 AND kind = $2 AND lookup = $3")
            .bind(reader.id)
            .bind(kind.code())
            .bind(lookup)
            .fetch_optional(&self.pool)
            .await?;
        if known.is_none() {
            return Ok(CodeRequest::NoMatch);
        }
        let now = now_text();
        let hour_ago = minutes_from_now(-60);
        let mut tx = self.begin().await?;
        // Replaces the earlier code first: on PostgreSQL this also queues concurrent requests
        // of the same reader behind this one.
        sqlx::query("UPDATE portal_codes SET expires_at = $1 WHERE reader_id = $2 AND used_at IS NULL AND expires_at > $1")
            .bind(now.clone())
            .bind(reader.id)
            .execute(&mut *tx)
            .await?;
        let recent: i64 = sqlx::query("SELECT COUNT(*) AS n FROM portal_codes WHERE reader_id = $1 AND created_at > $2")
            .bind(reader.id)
            .bind(hour_ago.clone())
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if recent >= CODES_PER_HOUR {
            tx.rollback().await?;
            return Ok(CodeRequest::TooMany);
        }
        sqlx::query("DELETE FROM portal_codes WHERE reader_id = $1 AND created_at < $2")
            .bind(reader.id)
            .bind(hour_ago)
            .execute(&mut *tx)
            .await?;
        let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let salt = hex::encode(salt);
        let code_id: i64 = sqlx::query(
            "INSERT INTO portal_codes (reader_id, code_hash, expires_at, attempts, created_at) VALUES ($1, $2, $3, 0, $4) RETURNING id",
        )
        .bind(reader.id)
        .bind(format!("{salt}${}", code_hash(&salt, reader.id, &code)))
        .bind(minutes_from_now(CODE_MINUTES))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        audit::record(
            &mut tx,
            &reader_actor(reader.id, origin),
            Change {
                action: "portal.code",
                entity: "portal",
                entity_id: Some(reader.id.to_string()),
                summary: format!("{}: sign-in code requested ({})", reader.card_no, kind.code()),
                before: None,
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(CodeRequest::Issued { reader_id: reader.id, code_id, code })
    }

    /// A reader signs in with their card number and the code they received. Every try counts
    /// against the code (in the same transaction as the check, so parallel tries all count);
    /// a success uses the code up and starts a session. Audited as `portal.sign_in` or
    /// `portal.sign_in_failed`.
    pub async fn verify_portal_code(&self, card_no: &str, code: &str, origin: &str) -> Result<CodeCheck> {
        let code = code.trim();
        let Ok(card) = CardNo::parse(card_no) else { return Ok(CodeCheck::Expired) };
        let reader = match self.reader_by_card(card.as_str()).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => return Ok(CodeCheck::Expired),
            Err(e) => return Err(e),
        };
        let now = now_text();
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT id, code_hash, expires_at, attempts FROM portal_codes WHERE reader_id = $1 AND used_at IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(reader.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(CodeCheck::Expired);
        };
        let id: i64 = row.try_get("id")?;
        if row.try_get::<String, _>("expires_at")? <= now {
            tx.rollback().await?;
            return Ok(CodeCheck::Expired);
        }
        if row.try_get::<i64, _>("attempts")? >= CODE_ATTEMPTS {
            tx.rollback().await?;
            return Ok(CodeCheck::Locked);
        }
        let counted = sqlx::query(
            "UPDATE portal_codes SET attempts = attempts + 1 WHERE id = $1 AND attempts < $2 AND used_at IS NULL RETURNING attempts",
        )
        .bind(id)
        .bind(CODE_ATTEMPTS)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(counted) = counted else {
            tx.rollback().await?;
            return Ok(CodeCheck::Locked);
        };
        let attempts: i64 = counted.try_get("attempts")?;
        let stored: String = row.try_get("code_hash")?;
        let (salt, hash) = stored.split_once('$').unwrap_or(("", ""));
        let good = code.len() == 6
            && code.bytes().all(|b| b.is_ascii_digit())
            && constant_time_eq(code_hash(salt, reader.id, code).as_bytes(), hash.as_bytes());
        let actor = reader_actor(reader.id, origin);
        let outcome = if good {
            sqlx::query("UPDATE portal_codes SET used_at = $1 WHERE id = $2").bind(now.clone()).bind(id).execute(&mut *tx).await?;
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let token = hex::encode(bytes);
            sqlx::query("DELETE FROM portal_sessions WHERE reader_id = $1 AND expires_at <= $2")
                .bind(reader.id)
                .bind(now.clone())
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO portal_sessions (token_hash, reader_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(sha256_hex(&token))
                .bind(reader.id)
                .bind(now)
                .bind(minutes_from_now(SESSION_HOURS * 60))
                .execute(&mut *tx)
                .await?;
            CodeCheck::SignedIn { reader_id: reader.id, token }
        } else if attempts >= CODE_ATTEMPTS {
            CodeCheck::Locked
        } else {
            CodeCheck::Wrong { attempts_left: CODE_ATTEMPTS - attempts }
        };
        let (action, what) = match &outcome {
            CodeCheck::SignedIn { .. } => ("portal.sign_in", "signed in".to_string()),
            _ => ("portal.sign_in_failed", format!("wrong code ({attempts}/{CODE_ATTEMPTS})")),
        };
        audit::record(
            &mut tx,
            &actor,
            Change {
                action,
                entity: "portal",
                entity_id: Some(reader.id.to_string()),
                summary: format!("{}: {what}", reader.card_no),
                before: None,
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The reader behind a portal session token, while the session lasts.
    pub async fn portal_session(&self, token: &str) -> Result<Option<PortalReader>> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT r.id, r.card_no, r.name, r.lang FROM portal_sessions s JOIN readers r ON r.id = s.reader_id
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(sha256_hex(&token.to_ascii_lowercase()))
        .bind(now_text())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(PortalReader { id: r.try_get("id")?, card_no: r.try_get("card_no")?, name: r.try_get("name")?, lang: r.try_get("lang")? })
        })
        .transpose()
    }

    pub async fn end_portal_session(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM portal_sessions WHERE token_hash = $1")
            .bind(sha256_hex(&token.to_ascii_lowercase()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The reader's case with this number; `NotFound` when there is none or it is someone else's,
    /// so the two cannot be told apart.
    pub async fn reader_case(&self, reader_id: i64, number: &str) -> Result<Case> {
        let row = sqlx::query("SELECT id FROM cases WHERE number = $1 AND reader_id = $2")
            .bind(number.trim().to_ascii_uppercase())
            .bind(reader_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        self.case(row.try_get("id")?).await
    }
}
