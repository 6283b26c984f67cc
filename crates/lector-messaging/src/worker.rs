//! The outbox worker: runs inside `lector serve`, advances campaigns, sweeps triggered messages,
//! and sends what the outbox holds — rendered at sending time, paced per channel, with bounded
//! concurrency, each outcome recorded in its own commit right after it happened (the
//! exactly-once argument in `docs/adr/0005-messaging.md` depends on that).

use crate::render::{self, Variant};
use crate::send::{Outgoing, SendError, Sender};
use chrono::{Local, TimeZone, Utc};
use futures_util::stream::{self, StreamExt};
use lector_domain::messaging::{ChannelKind, OutboxStatus, Trigger};
use lector_domain::quiet::QuietHours;
use lector_domain::Msg;
use lector_store::channels::Channel;
use lector_store::consent::UnsubscribeSigner;
use lector_store::outbox::{ClaimedMessage, Failure, MessageCampaign, MessageReader, OutboxPolicy};
use lector_store::templates::TemplateVariant;
use lector_store::{Store, StoreError};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How the worker paces itself and retries. `Default` suits production; tests shorten the lease
/// and the poll.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Names this process in `outbox.claimed_by`; unique per process.
    pub worker_id: String,
    /// The wait between two looks at an empty outbox.
    pub poll: Duration,
    /// Messages claimed at once.
    pub batch: usize,
    /// Messages in flight at once (over all channels).
    pub concurrency: usize,
    /// How long a claim lasts without renewal; renewed every third of it while sending.
    pub lease: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Transient failures in a row after which an address is no longer used.
    pub block_after: u32,
    /// How often the triggered-message sweeps (welcome, card expiry) run.
    pub sweep_every: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        let p = OutboxPolicy::default();
        WorkerOptions {
            worker_id: new_worker_id(),
            poll: Duration::from_secs(1),
            batch: 200,
            concurrency: 16,
            lease: p.lease,
            max_attempts: p.max_attempts,
            backoff_base: p.backoff_base,
            backoff_cap: p.backoff_cap,
            block_after: p.block_after,
            sweep_every: Duration::from_secs(60),
        }
    }
}

impl WorkerOptions {
    pub fn policy(&self) -> OutboxPolicy {
        OutboxPolicy {
            lease: self.lease,
            max_attempts: self.max_attempts,
            backoff_base: self.backoff_base,
            backoff_cap: self.backoff_cap,
            block_after: self.block_after,
        }
    }
}

/// A worker id no other process has: the process id and 32 random bits.
pub fn new_worker_id() -> String {
    format!("lector-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

/// Runs the worker until the task is dropped.
pub async fn run(store: Store, options: WorkerOptions) {
    let (_keep, stop) = watch::channel(false);
    run_until(store, options, stop).await
}

/// Runs the worker until `stop` turns true: then it sends nothing new, lets the messages in
/// flight finish and be recorded, releases the rest of its batch, and returns.
pub async fn run_until(store: Store, options: WorkerOptions, mut stop: watch::Receiver<bool>) {
    tracing::info!(worker = %options.worker_id, "messaging worker started");
    let mut worker = Worker::new(store, options, stop.clone());
    loop {
        if *stop.borrow() {
            break;
        }
        let idle = match worker.tick().await {
            Ok(n) => n < worker.options.batch,
            Err(e) => {
                tracing::error!(error = %e, "messaging worker tick failed");
                true
            }
        };
        if idle {
            tokio::select! {
                _ = tokio::time::sleep(worker.options.poll) => {}
                _ = stop.changed() => {}
            }
        }
    }
    tracing::info!(worker = %worker.options.worker_id, "messaging worker stopped");
}

/// A token bucket: `rate` messages a second, bursts of up to a second's worth.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: i64) -> Bucket {
        let rate = rate.max(1) as f64;
        Bucket { rate, tokens: 1.0, last: Instant::now() }
    }

    /// Takes a token, or says how long until one is there.
    fn try_take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate.max(1.0));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

async fn take(bucket: &Mutex<Bucket>) {
    loop {
        let wait = match bucket.lock().expect("bucket lock").try_take() {
            Ok(()) => return,
            Err(wait) => wait,
        };
        tokio::time::sleep(wait).await;
    }
}

/// A channel ready to send on (or why it is not).
struct Ready {
    channel: Channel,
    sender: Result<Sender, Msg>,
}

/// The outbox worker's state between ticks: senders per channel (rebuilt when a channel's
/// version moves) and their token buckets.
pub struct Worker {
    store: Store,
    options: WorkerOptions,
    policy: OutboxPolicy,
    ready: HashMap<i64, Arc<Ready>>,
    buckets: HashMap<i64, Arc<Mutex<Bucket>>>,
    salt: Option<String>,
    last_sweep: Option<Instant>,
    stop: watch::Receiver<bool>,
}

/// What a batch shares between its messages.
struct BatchContext {
    store: Store,
    worker_id: String,
    policy: OutboxPolicy,
    salt: String,
    public_url: String,
    /// Signs the batch's unsubscribe links (one look-up of the store's secret per batch).
    signer: UnsubscribeSigner,
    readers: HashMap<i64, MessageReader>,
    campaigns: HashMap<i64, MessageCampaign>,
    variants: HashMap<(i64, ChannelKind, String), Option<TemplateVariant>>,
    /// Rows not yet finished, whose lease the batch keeps renewing.
    outstanding: Mutex<HashSet<i64>>,
    /// Until when a send may start: half a lease after the claim or the last renewal.
    lease_valid_until: Mutex<Instant>,
    stop: watch::Receiver<bool>,
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Retry,
    Failed,
    Deferred,
    /// Left to the lease: the worker stopped or could not keep its claim.
    Released,
}

impl Worker {
    pub fn new(store: Store, options: WorkerOptions, stop: watch::Receiver<bool>) -> Worker {
        let policy = options.policy();
        Worker { store, options, policy, ready: HashMap::new(), buckets: HashMap::new(), salt: None, last_sweep: None, stop }
    }

    /// One round: advances campaigns, sweeps triggers when due, then claims and sends one batch.
    /// Returns how many messages it claimed.
    pub async fn tick(&mut self) -> Result<usize, StoreError> {
        if let Err(e) = self.store.advance_campaigns().await {
            tracing::error!(error = %e, "advancing campaigns failed");
        }
        if self.last_sweep.is_none_or(|t| t.elapsed() >= self.options.sweep_every) {
            self.last_sweep = Some(Instant::now());
            match self.store.sweep_triggers(Local::now().date_naive()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(queued = n, "queued triggered messages"),
                Err(e) => tracing::error!(error = %e, "sweeping triggered messages failed"),
            }
        }
        let salt = match &self.salt {
            Some(s) => s.clone(),
            None => {
                let s = self.store.message_id_salt().await?;
                self.salt = Some(s.clone());
                s
            }
        };
        let claimed = self.store.claim_messages(&self.options.worker_id, self.options.batch, self.options.lease).await?;
        let n = claimed.len();
        if n > 0 {
            self.send_batch(claimed, salt).await?;
        }
        Ok(n)
    }

    /// Refreshes the sender of every channel in the batch whose version moved.
    async fn prepare_channels(&mut self, ids: &BTreeSet<i64>) -> Result<(), StoreError> {
        for &id in ids {
            let current = self.store.channel(id).await?;
            if self.ready.get(&id).is_some_and(|r| r.channel.version == current.version) {
                continue;
            }
            let (channel, secret) = self.store.channel_for_sending(id).await?;
            let sender = Sender::new(&channel.settings, secret.as_deref());
            if let Err(m) = &sender {
                tracing::warn!(channel = %channel.code, error = %m.en, "channel cannot send");
            }
            self.buckets.insert(id, Arc::new(Mutex::new(Bucket::new(channel.rate_per_second))));
            self.ready.insert(id, Arc::new(Ready { channel, sender }));
        }
        Ok(())
    }

    async fn send_batch(&mut self, claimed: Vec<ClaimedMessage>, salt: String) -> Result<(), StoreError> {
        let channel_ids: BTreeSet<i64> = claimed.iter().map(|m| m.channel_id).collect();
        self.prepare_channels(&channel_ids).await?;
        let reader_ids: Vec<i64> = claimed.iter().filter_map(|m| m.reader_id).collect::<BTreeSet<_>>().into_iter().collect();
        let campaign_ids: Vec<i64> = claimed.iter().filter_map(|m| m.campaign_id).collect::<BTreeSet<_>>().into_iter().collect();
        let mut variants = HashMap::new();
        for m in &claimed {
            let Some(ready) = self.ready.get(&m.channel_id) else { continue };
            if let std::collections::hash_map::Entry::Vacant(slot) = variants.entry((m.template_id, ready.channel.kind, m.lang.clone())) {
                slot.insert(self.store.template_variant(m.template_id, ready.channel.kind, &m.lang).await?);
            }
        }
        let ctx = Arc::new(BatchContext {
            store: self.store.clone(),
            worker_id: self.options.worker_id.clone(),
            policy: self.policy,
            salt,
            public_url: self.store.public_url().await?.trim_end_matches('/').to_string(),
            signer: self.store.unsubscribe_signer().await?,
            readers: self.store.message_readers(&reader_ids).await?,
            campaigns: self.store.message_campaigns(&campaign_ids).await?,
            variants,
            outstanding: Mutex::new(claimed.iter().map(|m| m.id).collect()),
            lease_valid_until: Mutex::new(Instant::now() + self.options.lease / 2),
            stop: self.stop.clone(),
        });
        let jobs: Vec<_> = claimed
            .into_iter()
            .map(|m| {
                let ready = self.ready.get(&m.channel_id).cloned();
                let bucket = self.buckets.get(&m.channel_id).cloned();
                (m, ready, bucket)
            })
            .collect();
        let sends = stream::iter(jobs)
            .map(|(m, ready, bucket)| {
                let ctx = ctx.clone();
                async move {
                    let id = m.id;
                    let outcome = match (ready, bucket) {
                        (Some(ready), Some(bucket)) => deliver(&ctx, m, &ready, &bucket).await,
                        _ => Outcome::Released,
                    };
                    ctx.outstanding.lock().expect("outstanding lock").remove(&id);
                    outcome
                }
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect::<Vec<Outcome>>();
        let renew = keep_lease(ctx.clone(), self.options.lease);
        let outcomes = tokio::select! {
            outcomes = sends => outcomes,
            never = renew => match never {},
        };
        let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
        tracing::debug!(
            sent = count(Outcome::Sent),
            retry = count(Outcome::Retry),
            failed = count(Outcome::Failed),
            deferred = count(Outcome::Deferred),
            released = count(Outcome::Released),
            "outbox batch done"
        );
        Ok(())
    }
}

/// Renews the batch's lease every third of its length, for as long as the batch runs. Sends start
/// only within half a lease of the last renewal, so each has half a lease to finish before
/// another worker could take its row; a failed renewal leaves that deadline where it was.
async fn keep_lease(ctx: Arc<BatchContext>, lease: Duration) -> std::convert::Infallible {
    let every = (lease / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        let ids: Vec<i64> = ctx.outstanding.lock().expect("outstanding lock").iter().copied().collect();
        let asked = Instant::now();
        match ctx.store.renew_lease(&ids, &ctx.worker_id, lease).await {
            Ok(_) => *ctx.lease_valid_until.lock().expect("lease lock") = asked + lease / 2,
            Err(e) => tracing::warn!(error = %e, "renewing the outbox lease failed"),
        }
    }
}

/// The links every message carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    pub unsubscribe_url: Option<String>,
    pub preferences_url: Option<String>,
}

/// The variables a template is rendered with: every key of [`render::sample_vars`] (what a template
/// was checked against), blank by default, filled from the reader (blank when there is none),
/// the campaign and the links; then `extras` (the row's `vars_json`: case, code, link …) merged
/// over them.
pub fn message_vars(
    reader: Option<&MessageReader>,
    lang: &str,
    campaign: Option<&str>,
    library: &str,
    extras: &Value,
    links: &Links,
) -> Value {
    let en = lang == "en";
    let mut vars = blank(&render::sample_vars());
    let reader = match reader {
        Some(r) => json!({
            "name": r.name,
            "card_no": r.card_no,
            "category": if en { &r.category_en } else { &r.category_zh },
            "affiliation": r.affiliation.clone().unwrap_or_default(),
            "expires_on": r.expires_on.clone().unwrap_or_default(),
            "email": r.email.clone().unwrap_or_default(),
            "mobile": r.mobile.clone().unwrap_or_default(),
            "lang": r.lang,
        }),
        None => json!({ "lang": lang }),
    };
    let known = json!({
        "reader": reader,
        "campaign": { "name": campaign.unwrap_or_default() },
        "library": { "name": library },
        "link": links.preferences_url.clone().unwrap_or_default(),
        "unsubscribe_url": links.unsubscribe_url.clone().unwrap_or_default(),
        "preferences_url": links.preferences_url.clone().unwrap_or_default(),
    });
    merge(&mut vars, &known);
    merge(&mut vars, extras);
    vars
}

/// The same shape with every value an empty text.
fn blank(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), blank(v))).collect()),
        _ => Value::String(String::new()),
    }
}

/// Merges `extra` into `base`: objects key by key, anything else replaces.
fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) if !v.is_null() => *slot = v.clone(),
        _ => {}
    }
}

/// The library's name as a message signs it: the email channel's sender name, else generic.
pub fn library_name(channel: &Channel, lang: &str) -> String {
    match &channel.settings {
        lector_domain::messaging::ChannelSettings::Email { from_name, .. } if !from_name.trim().is_empty() => from_name.clone(),
        _ if lang == "en" => "The Library".into(),
        _ => "图书馆".into(),
    }
}

/// The store's variant as the renderer takes it.
pub fn to_variant(v: &TemplateVariant) -> Variant {
    Variant { subject: v.subject.clone(), body_text: v.body_text.clone(), body_html: v.body_html.clone() }
}

fn utc_text(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Renders, paces, sends and records one message.
async fn deliver(ctx: &BatchContext, m: ClaimedMessage, ready: &Ready, bucket: &Mutex<Bucket>) -> Outcome {
    let channel = &ready.channel;
    let code = channel.code.clone();
    if *ctx.stop.borrow() {
        return release(ctx, &m).await;
    }
    if !channel.enabled {
        let until = utc_text(Utc::now() + chrono::Duration::seconds(60));
        let note = Msg::new("渠道已停用，恢复后发送", "the channel is disabled; waiting until it is enabled again");
        return defer(ctx, &m, &code, &until, &note, "channel_disabled").await;
    }
    let sender = match &ready.sender {
        Ok(s) => s,
        Err(why) => return record_failure(ctx, &m, &code, Failure::Transient(why.to_string())).await,
    };
    let key = (m.template_id, channel.kind, m.lang.clone());
    let Some(variant) = ctx.variants.get(&key).cloned().flatten() else {
        let why = Msg::new(
            format!("模板没有{}的内容", channel.kind.label().zh),
            format!("the template has no variant for {}", channel.kind.label().en),
        );
        return record_failure(ctx, &m, &code, Failure::Permanent(why.to_string())).await;
    };
    let campaign = m.campaign_id.and_then(|id| ctx.campaigns.get(&id));
    if let Some(c) = campaign {
        if let (Some(start), Some(end)) = (&c.quiet_start, &c.quiet_end) {
            match QuietHours::new(start, end) {
                Ok(q) => {
                    let now = Local::now().naive_local();
                    if q.contains(now.time()) {
                        let next = q.next_allowed(now);
                        let until = Local.from_local_datetime(&next).earliest().map(|t| t.with_timezone(&Utc)).unwrap_or_else(Utc::now);
                        let note = Msg::new(format!("免打扰时段 {q}，稍后发送"), format!("quiet hours {q}; sending later"));
                        return defer(ctx, &m, &code, &utc_text(until), &note, "quiet_hours").await;
                    }
                }
                Err(e) => tracing::warn!(campaign = c.id, error = %e.en, "ignoring a campaign's malformed quiet hours"),
            }
        }
    }
    let reader = m.reader_id.and_then(|id| ctx.readers.get(&id));
    let unsubscribe = match m.reader_id {
        // A sign-in code is requested by the reader; withdrawing from it would lock them out.
        Some(id) if m.trigger_code.as_deref() != Some(Trigger::PortalCode.code()) => {
            Some(format!("{}/portal/unsubscribe/{}", ctx.public_url, ctx.signer.token(id, m.purpose, channel.kind)))
        }
        _ => None,
    };
    let links = Links { unsubscribe_url: unsubscribe, preferences_url: Some(format!("{}/portal/preferences", ctx.public_url)) };
    let vars = message_vars(reader, &m.lang, campaign.map(|c| c.name.as_str()), &library_name(channel, &m.lang), &m.vars, &links);
    let rendered = match render::render(&to_variant(&variant), &vars) {
        Ok(r) => r,
        Err(e) => return record_failure(ctx, &m, &code, Failure::Permanent(e.msg().to_string())).await,
    };
    let outgoing = Outgoing {
        address: m.address.clone(),
        display_name: reader.map(|r| r.name.clone()).unwrap_or_default(),
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        message_id: format!("<outbox-{}.{}@lector>", m.id, ctx.salt),
        unsubscribe_url: links.unsubscribe_url,
        preferences_url: links.preferences_url,
        extra: json!({
            "outbox_id": m.id,
            "card_no": reader.map(|r| r.card_no.clone()),
            "campaign_id": m.campaign_id,
            "trigger": m.trigger_code,
            "purpose": m.purpose.code(),
        }),
    };
    take(bucket).await;
    // Send only while this worker surely still holds the row: past the lease another worker may
    // have taken it, and both would send.
    if *ctx.stop.borrow() || Instant::now() >= *ctx.lease_valid_until.lock().expect("lease lock") {
        return release(ctx, &m).await;
    }
    match sender.send(&outgoing).await {
        Ok(()) => {
            record_sent(ctx, &m).await;
            metrics::counter!("lector_messages_sent_total", "channel" => code).increment(1);
            Outcome::Sent
        }
        Err(SendError::Transient(why)) => record_failure(ctx, &m, &code, Failure::Transient(why)).await,
        Err(SendError::Permanent(why)) => record_failure(ctx, &m, &code, Failure::Permanent(why)).await,
    }
}

/// Marks the message sent, retrying a few times: an acceptance that is never recorded is the one
/// way a message goes out twice (after the lease runs out).
async fn record_sent(ctx: &BatchContext, m: &ClaimedMessage) {
    let mut wait = Duration::from_millis(50);
    for attempt in 1..=6 {
        match ctx.store.mark_sent(m.id, &ctx.worker_id).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(outbox_id = m.id, attempt, error = %e, "recording a sent message failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    tracing::error!(outbox_id = m.id, "a sent message could not be recorded; it may be sent again after its lease");
}

async fn record_failure(ctx: &BatchContext, m: &ClaimedMessage, channel: &str, failure: Failure) -> Outcome {
    let kind = if matches!(failure, Failure::Permanent(_)) { "permanent" } else { "transient" };
    match ctx.store.mark_failed(m.id, &ctx.worker_id, &failure, &ctx.policy).await {
        Ok(OutboxStatus::Failed) => {
            tracing::info!(outbox_id = m.id, channel, ?failure, "message failed");
            metrics::counter!("lector_messages_failed_total", "channel" => channel.to_string(), "kind" => kind).increment(1);
            Outcome::Failed
        }
        Ok(_) => {
            tracing::debug!(outbox_id = m.id, channel, ?failure, "message will be retried");
            metrics::counter!("lector_messages_retried_total", "channel" => channel.to_string()).increment(1);
            Outcome::Retry
        }
        Err(e) => {
            tracing::error!(outbox_id = m.id, error = %e, "recording a failed message failed; it is retried after its lease");
            Outcome::Released
        }
    }
}

async fn defer(ctx: &BatchContext, m: &ClaimedMessage, channel: &str, until: &str, note: &Msg, reason: &'static str) -> Outcome {
    match ctx.store.defer_message(m.id, &ctx.worker_id, until, Some(&note.to_string())).await {
        Ok(_) => {
            metrics::counter!("lector_messages_deferred_total", "channel" => channel.to_string(), "reason" => reason).increment(1);
            Outcome::Deferred
        }
        Err(e) => {
            tracing::error!(outbox_id = m.id, error = %e, "deferring a message failed; it is retried after its lease");
            Outcome::Released
        }
    }
}

/// Hands an unsent message back for any worker to take now.
async fn release(ctx: &BatchContext, m: &ClaimedMessage) -> Outcome {
    if let Err(e) = ctx.store.defer_message(m.id, &ctx.worker_id, &utc_text(Utc::now()), None).await {
        tracing::warn!(outbox_id = m.id, error = %e, "releasing a message failed; it is taken again after its lease");
    }
    Outcome::Released
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_have_every_sample_key_and_extras_win() {
        let reader = MessageReader {
            id: 1,
            card_no: "2025001".into(),
            name: "王芳".into(),
            category_zh: "本科生".into(),
            category_en: "Undergraduate".into(),
            affiliation: None,
            status: "active".into(),
            expires_on: Some("2027-07-01".into()),
            email: Some("wf@example.edu.cn".into()),
            mobile: None,
            lang: "en".into(),
        };
        let links = Links { unsubscribe_url: Some("https://l/u/t".into()), preferences_url: Some("https://l/portal/preferences".into()) };
        let extras = json!({"case": {"number": "C-1", "status_code": "received"}, "code": "123456"});
        let v = message_vars(Some(&reader), "en", Some("开学通知"), "图书馆", &extras, &links);
        assert_eq!(v["reader"]["category"], "Undergraduate");
        assert_eq!(v["reader"]["affiliation"], "");
        assert_eq!(v["case"]["number"], "C-1");
        assert_eq!(v["case"]["status_code"], "received");
        assert_eq!(v["case"]["title"], "", "defaults stay where extras say nothing");
        assert_eq!((v["code"].as_str(), v["campaign"]["name"].as_str()), (Some("123456"), Some("开学通知")));
        assert_eq!(v["unsubscribe_url"], "https://l/u/t");
        // Every key a template may use at check time is there at sending time.
        fn keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
            if let Value::Object(m) = v {
                for (k, x) in m {
                    let p = format!("{prefix}{k}");
                    keys(x, &format!("{p}."), out);
                    out.push(p);
                }
            }
        }
        let (mut want, mut have) = (Vec::new(), Vec::new());
        keys(&render::sample_vars(), "", &mut want);
        keys(&v, "", &mut have);
        let missing: Vec<_> = want.iter().filter(|k| !have.contains(k)).collect();
        assert!(missing.is_empty(), "missing {missing:?}");
        let none = message_vars(None, "zh", None, "图书馆", &Value::Null, &Links::default());
        assert_eq!((none["reader"]["name"].as_str(), none["unsubscribe_url"].as_str()), (Some(""), Some("")));
    }

    #[test]
    fn the_bucket_paces() {
        let mut b = Bucket::new(2);
        assert!(b.try_take().is_ok());
        let wait = b.try_take().unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
    }
}
