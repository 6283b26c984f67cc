//! Consent (授权): per reader, purpose and channel kind, with the time and source of every grant
//! and withdrawal, and the signed tokens of one-click unsubscribe links.
//!
//! `consents` holds the reader's current answer per cell; no row means the purpose's default
//! ([`Purpose::granted_by_default`]). Every change appends to `consent_events` and writes an audit
//! row (`consent.update` on the reader) in the same transaction; asking for what is already so
//! writes nothing, so a preferences form saved unchanged or an unsubscribe link clicked twice
//! leaves no trace.
//!
//! Unsubscribe tokens are `READER.PURPOSE.CHANNEL.MAC`, where MAC is HMAC-SHA256 over the three
//! fields under a secret kept in the `settings` table (`messaging.token_secret`, made on first
//! use), base64url without padding. They carry no expiry: an unsubscribe link must keep working
//! for as long as the message sits in someone's mailbox.

use crate::audit::{self, Change};
use crate::db::flag;
use crate::{now_text, Actor, Result, Store, StoreError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use lector_domain::messaging::{ChannelKind, ConsentSource, Purpose};
use lector_domain::Msg;
use rand::RngCore;
use serde::Serialize;
use sha2::Sha256;
use sqlx::Row;
use std::collections::BTreeMap;

/// The `settings` key of the secret that signs unsubscribe links.
pub const TOKEN_SECRET_KEY: &str = "messaging.token_secret";
/// Longest token worth looking at; real ones are about 70 characters.
const MAX_TOKEN: usize = 200;
/// The languages a reader can be written to in.
pub const READER_LANGS: [&str; 2] = ["zh", "en"];

/// One purpose × channel cell of a reader's consent.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConsentCell {
    pub purpose: Purpose,
    pub channel: ChannelKind,
    pub granted: bool,
    /// The reader never answered: `granted` is the purpose's default.
    pub is_default: bool,
    /// Where the last answer came from, and when (both `None` for a default).
    pub source: Option<ConsentSource>,
    pub changed_at: Option<String>,
}

/// Every purpose × channel kind of one reader, purposes in [`Purpose::ALL`] order, channels in
/// [`ChannelKind::ALL`] order within each purpose.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConsentMatrix {
    pub reader_id: i64,
    pub cells: Vec<ConsentCell>,
}

impl ConsentMatrix {
    pub fn cell(&self, purpose: Purpose, channel: ChannelKind) -> Option<&ConsentCell> {
        self.cells.iter().find(|c| c.purpose == purpose && c.channel == channel)
    }

    /// Whether the reader may be written to for `purpose` on `channel`.
    pub fn granted(&self, purpose: Purpose, channel: ChannelKind) -> bool {
        self.cell(purpose, channel).map_or(purpose.granted_by_default(), |c| c.granted)
    }
}

/// One cell to set.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ConsentChange {
    pub purpose: Purpose,
    pub channel: ChannelKind,
    pub granted: bool,
}

/// One grant or withdrawal in a reader's history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConsentEvent {
    pub id: i64,
    pub reader_id: i64,
    pub purpose: Purpose,
    pub channel: ChannelKind,
    pub granted: bool,
    pub source: ConsentSource,
    /// Who made the change: a user name, `portal`, `unsubscribe`, `api` …
    pub actor: String,
    pub at: String,
}

fn exact<T: Copy>(all: &[T], code: impl Fn(T) -> &'static str, raw: &str) -> Option<T> {
    all.iter().copied().find(|v| code(*v) == raw)
}

fn stored<T: Copy>(all: &[T], code: impl Fn(T) -> &'static str, raw: &str, what: &str) -> Result<T> {
    exact(all, code, raw).ok_or_else(|| StoreError::Other(format!("stored {what} '{raw}' is unknown")))
}

fn cell_key(purpose: Purpose, channel: ChannelKind) -> String {
    format!("{}.{}", purpose.code(), channel.code())
}

/// Signs and checks unsubscribe tokens with the store's secret. Get one with
/// [`Store::unsubscribe_signer`] to sign many tokens (a campaign) with one look-up.
#[derive(Clone)]
pub struct UnsubscribeSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for UnsubscribeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeSigner(…)")
    }
}

impl UnsubscribeSigner {
    fn mac(&self, reader_id: i64, purpose: Purpose, channel: ChannelKind) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(format!("unsubscribe\n{reader_id}\n{}\n{}", purpose.code(), channel.code()).as_bytes());
        mac
    }

    /// The token of the unsubscribe link for this reader, purpose and channel kind (URL-safe).
    pub fn token(&self, reader_id: i64, purpose: Purpose, channel: ChannelKind) -> String {
        let sig = URL_SAFE_NO_PAD.encode(self.mac(reader_id, purpose, channel).finalize().into_bytes());
        format!("{reader_id}.{}.{}.{sig}", purpose.code(), channel.code())
    }

    /// What a token stands for; `Invalid` (field `token`) when it is malformed, or when its
    /// signature does not match (forged, or any part changed). The comparison is constant-time.
    pub fn verify(&self, token: &str) -> Result<(i64, Purpose, ChannelKind)> {
        let malformed = || {
            StoreError::invalid(
                "token",
                Msg::new(
                    "退订链接不完整或格式不对，请从邮件中完整复制链接",
                    "the unsubscribe link is incomplete or malformed; copy the whole link from the message",
                ),
            )
        };
        if token.len() > MAX_TOKEN {
            return Err(malformed());
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [id, purpose, channel, sig] = parts[..] else { return Err(malformed()) };
        let reader_id = match id.parse::<i64>() {
            Ok(n) if n > 0 && id.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(malformed()),
        };
        let purpose = exact(Purpose::ALL, Purpose::code, purpose).ok_or_else(malformed)?;
        let channel = exact(ChannelKind::ALL, ChannelKind::code, channel).ok_or_else(malformed)?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| malformed())?;
        if sig.len() != 32 {
            return Err(malformed());
        }
        self.mac(reader_id, purpose, channel).verify_slice(&sig).map_err(|_| {
            StoreError::invalid(
                "token",
                Msg::new(
                    "退订链接无效：签名不符（链接可能被改动过）",
                    "the unsubscribe link is not valid: its signature does not match (the link may have been altered)",
                ),
            )
        })?;
        Ok((reader_id, purpose, channel))
    }
}

impl Store {
    /// The random secret kept in `settings` under `key` (hex in a JSON string), made on first
    /// use. Concurrent first uses (several servers) all end up with the one stored first.
    pub(crate) async fn secret(&self, key: &str) -> Result<Vec<u8>> {
        let read = |row: sqlx::any::AnyRow| -> Result<Vec<u8>> {
            let v: String = row.try_get("value")?;
            let hex_text: String = serde_json::from_str(&v).map_err(|e| StoreError::Other(format!("stored {key}: {e}")))?;
            hex::decode(hex_text).map_err(|e| StoreError::Other(format!("stored {key}: {e}")))
        };
        let select = "SELECT value FROM settings WHERE key = $1";
        if let Some(row) = sqlx::query(select).bind(key).fetch_optional(&self.pool).await? {
            return read(row);
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(serde_json::Value::String(hex::encode(bytes)).to_string())
            .bind(now_text())
            .execute(&self.pool)
            .await?;
        read(sqlx::query(select).bind(key).fetch_one(&self.pool).await?)
    }

    /// A signer holding the store's secret, for signing or checking many tokens.
    pub async fn unsubscribe_signer(&self) -> Result<UnsubscribeSigner> {
        Ok(UnsubscribeSigner { key: self.secret(TOKEN_SECRET_KEY).await? })
    }

    /// A signed token for the one-click unsubscribe link of a message (purpose × channel kind for
    /// this reader). Verified by the portal; forging one needs the store's secret.
    pub async fn unsubscribe_token(&self, reader_id: i64, purpose: Purpose, channel: ChannelKind) -> Result<String> {
        Ok(self.unsubscribe_signer().await?.token(reader_id, purpose, channel))
    }

    /// What an unsubscribe token stands for: `(reader_id, purpose, channel)`; `Invalid` (field
    /// `token`, a message saying what is wrong) for a malformed, forged or altered token. The
    /// reader may since have been deleted: the change itself then reports `NotFound`.
    pub async fn verify_unsubscribe_token(&self, token: &str) -> Result<(i64, Purpose, ChannelKind)> {
        self.unsubscribe_signer().await?.verify(token)
    }

    /// The reader's whole consent matrix; `NotFound` for an unknown reader.
    pub async fn consent_matrix(&self, reader_id: i64) -> Result<ConsentMatrix> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT id FROM readers WHERE id = $1")
            .bind(reader_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
        let rows = sqlx::query("SELECT purpose, channel, granted, source, changed_at FROM consents WHERE reader_id = $1")
            .bind(reader_id)
            .fetch_all(&mut *conn)
            .await?;
        let mut answered = BTreeMap::new();
        for r in &rows {
            let purpose: String = r.try_get("purpose")?;
            let channel: String = r.try_get("channel")?;
            let source: String = r.try_get("source")?;
            // Rows of purposes or channels this version does not know are left out.
            if let (Some(p), Some(c)) = (exact(Purpose::ALL, Purpose::code, &purpose), exact(ChannelKind::ALL, ChannelKind::code, &channel))
            {
                let source = stored(ConsentSource::ALL, ConsentSource::code, &source, "consent source")?;
                answered.insert(cell_key(p, c), (flag(r, "granted")?, source, r.try_get::<String, _>("changed_at")?));
            }
        }
        let mut cells = Vec::with_capacity(Purpose::ALL.len() * ChannelKind::ALL.len());
        for &purpose in Purpose::ALL {
            for &channel in ChannelKind::ALL {
                cells.push(match answered.remove(&cell_key(purpose, channel)) {
                    Some((granted, source, at)) => {
                        ConsentCell { purpose, channel, granted, is_default: false, source: Some(source), changed_at: Some(at) }
                    }
                    None => ConsentCell {
                        purpose,
                        channel,
                        granted: purpose.granted_by_default(),
                        is_default: true,
                        source: None,
                        changed_at: None,
                    },
                });
            }
        }
        Ok(ConsentMatrix { reader_id, cells })
    }

    /// Grants or withdraws one cell. `Ok(true)` when it changed; `Ok(false)` (nothing written)
    /// when it already was so. `NotFound` for an unknown reader.
    pub async fn set_consent(
        &self,
        actor: &Actor,
        reader_id: i64,
        purpose: Purpose,
        channel: ChannelKind,
        granted: bool,
        source: ConsentSource,
    ) -> Result<bool> {
        let changed = self.set_consents(actor, reader_id, &[ConsentChange { purpose, channel, granted }], source).await?;
        Ok(!changed.is_empty())
    }

    /// Sets several cells in one transaction (a later entry for the same cell wins) and returns
    /// the ones that changed. The changed cells get one consent event each and the whole change one
    /// audit row (`consent.update` on the reader, before and after per `purpose.channel`); when
    /// nothing changes, nothing is written.
    ///
    /// Each cell changes with one conditional upsert, so two concurrent requests for the same
    /// change record it once.
    pub async fn set_consents(
        &self,
        actor: &Actor,
        reader_id: i64,
        changes: &[ConsentChange],
        source: ConsentSource,
    ) -> Result<Vec<ConsentChange>> {
        Ok(self.write_preferences(actor, reader_id, changes, source, None).await?.0)
    }

    /// The reader's own preferences form: consents as [`Store::set_consents`], and the language
    /// the library writes to them in (`zh` or `en`; `None` leaves it), in one transaction and one
    /// audit row. Returns the cells that changed and whether the language did.
    pub async fn save_preferences(
        &self,
        actor: &Actor,
        reader_id: i64,
        changes: &[ConsentChange],
        source: ConsentSource,
        lang: Option<&str>,
    ) -> Result<(Vec<ConsentChange>, bool)> {
        if let Some(l) = lang {
            if !READER_LANGS.contains(&l) {
                return Err(StoreError::invalid(
                    "lang",
                    Msg::new("语言应为 zh（中文）或 en（English）", "the language is zh (Chinese) or en (English)"),
                ));
            }
        }
        self.write_preferences(actor, reader_id, changes, source, lang).await
    }

    /// The language the library writes to the reader in: `zh` when never set.
    pub async fn reader_lang(&self, reader_id: i64) -> Result<String> {
        let row = sqlx::query("SELECT lang FROM readers WHERE id = $1")
            .bind(reader_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(row.try_get::<Option<String>, _>("lang")?.filter(|l| READER_LANGS.contains(&l.as_str())).unwrap_or_else(|| "zh".to_string()))
    }

    async fn write_preferences(
        &self,
        actor: &Actor,
        reader_id: i64,
        changes: &[ConsentChange],
        source: ConsentSource,
        lang: Option<&str>,
    ) -> Result<(Vec<ConsentChange>, bool)> {
        let mut wanted: BTreeMap<String, ConsentChange> = BTreeMap::new();
        for c in changes {
            wanted.insert(cell_key(c.purpose, c.channel), *c);
        }
        let mut tx = self.begin().await?;
        let reader = sqlx::query("SELECT lang FROM readers WHERE id = $1")
            .bind(reader_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let now = now_text();
        let mut done = Vec::new();
        let (mut before, mut after) = (serde_json::Map::new(), serde_json::Map::new());
        let mut summary = Vec::new();
        for (key, c) in wanted {
            let current = sqlx::query("SELECT granted FROM consents WHERE reader_id = $1 AND purpose = $2 AND channel = $3")
                .bind(reader_id)
                .bind(c.purpose.code())
                .bind(c.channel.code())
                .fetch_optional(&mut *tx)
                .await?;
            let was = match &current {
                Some(r) => flag(r, "granted")?,
                None => c.purpose.granted_by_default(),
            };
            if was == c.granted {
                continue;
            }
            let written = sqlx::query(
                "INSERT INTO consents (reader_id, purpose, channel, granted, source, changed_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (reader_id, purpose, channel) DO UPDATE
                     SET granted = excluded.granted, source = excluded.source, changed_at = excluded.changed_at
                     WHERE consents.granted <> excluded.granted
                 RETURNING granted",
            )
            .bind(reader_id)
            .bind(c.purpose.code())
            .bind(c.channel.code())
            .bind(c.granted as i64)
            .bind(source.code())
            .bind(now.clone())
            .fetch_optional(&mut *tx)
            .await?;
            if written.is_none() {
                // A concurrent request made the same change first.
                continue;
            }
            sqlx::query(
                "INSERT INTO consent_events (reader_id, purpose, channel, granted, source, actor, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(reader_id)
            .bind(c.purpose.code())
            .bind(c.channel.code())
            .bind(c.granted as i64)
            .bind(source.code())
            .bind(actor.name.clone())
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
            summary.push(format!("{key}: {}", if c.granted { "granted" } else { "withdrawn" }));
            before.insert(key.clone(), serde_json::Value::Bool(was));
            after.insert(key, serde_json::Value::Bool(c.granted));
            done.push(c);
        }
        let old_lang: Option<String> = reader.try_get("lang")?;
        let lang_changed = match lang {
            Some(l) if old_lang.as_deref() != Some(l) => {
                sqlx::query("UPDATE readers SET lang = $1 WHERE id = $2").bind(l).bind(reader_id).execute(&mut *tx).await?;
                summary.push(format!("lang: {l}"));
                before.insert("lang".into(), old_lang.map_or(serde_json::Value::Null, serde_json::Value::String));
                after.insert("lang".into(), serde_json::Value::String(l.to_string()));
                true
            }
            _ => false,
        };
        if done.is_empty() && !lang_changed {
            tx.rollback().await?;
            return Ok((done, false));
        }
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "consent.update",
                entity: "reader",
                entity_id: Some(reader_id.to_string()),
                summary: format!("{} ({})", summary.join(", "), source.code()),
                before: Some(serde_json::Value::Object(before)),
                after: Some(serde_json::Value::Object(after)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((done, lang_changed))
    }

    /// The reader's grants and withdrawals, newest first, at most `limit`.
    pub async fn consent_history(&self, reader_id: i64, limit: i64) -> Result<Vec<ConsentEvent>> {
        let rows = sqlx::query(
            "SELECT id, reader_id, purpose, channel, granted, source, actor, at FROM consent_events
             WHERE reader_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(reader_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentEvent {
                    id: r.try_get("id")?,
                    reader_id: r.try_get("reader_id")?,
                    purpose: stored(Purpose::ALL, Purpose::code, &r.try_get::<String, _>("purpose")?, "purpose")?,
                    channel: stored(ChannelKind::ALL, ChannelKind::code, &r.try_get::<String, _>("channel")?, "channel")?,
                    granted: flag(r, "granted")?,
                    source: stored(ConsentSource::ALL, ConsentSource::code, &r.try_get::<String, _>("source")?, "consent source")?,
                    actor: r.try_get("actor")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }
}
