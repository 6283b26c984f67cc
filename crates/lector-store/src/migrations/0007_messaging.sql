-- Segments, consent, channels, templates, campaigns, the outbox and reader sign-in (issue 5).
-- Booleans are 0/1 integers; times ending in _at are UTC RFC 3339 text (text order = time order).

-- A staff member's own address, for "send a test to yourself".
ALTER TABLE users ADD COLUMN email TEXT;
-- The language a reader is written to in (zh when unset).
ALTER TABLE readers ADD COLUMN lang TEXT;

-- A saved filter over readers (filter_json: lector_domain::segment::Filter). A frozen segment's
-- members are the snapshot in segment_members, taken at frozen_at.
CREATE TABLE segments (
    id {id},
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    filter_json TEXT NOT NULL,
    frozen_at TEXT,
    member_count BIGINT,
    created_by BIGINT REFERENCES users(id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE segment_members (
    segment_id BIGINT NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    PRIMARY KEY (segment_id, reader_id)
);

-- The reader's current answer per purpose and channel kind; no row means the purpose's default
-- (Purpose::granted_by_default). Every grant and withdrawal is also kept in consent_events.
CREATE TABLE consents (
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    channel TEXT NOT NULL,
    granted BIGINT NOT NULL,
    source TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (reader_id, purpose, channel)
);

CREATE TABLE consent_events (
    id {id},
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    channel TEXT NOT NULL,
    granted BIGINT NOT NULL,
    source TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX consent_events_reader ON consent_events(reader_id, id);

-- A configured way of sending (settings_json: lector_domain::messaging::ChannelSettings). The
-- secret is never shown back; rate_per_second caps the worker's pace on this channel.
CREATE TABLE channels (
    id {id},
    code TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    secret TEXT,
    rate_per_second BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);

-- A message template; its text per channel kind and language lives in template_variants
-- (minijinja source; body_html only for email).
CREATE TABLE message_templates (
    id {id},
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    purpose TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE template_variants (
    template_id BIGINT NOT NULL REFERENCES message_templates(id) ON DELETE CASCADE,
    channel_kind TEXT NOT NULL,
    lang TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT,
    PRIMARY KEY (template_id, channel_kind, lang)
);

-- Which template each triggered message (welcome, card expiry, case updates, sign-in code) uses,
-- on which channels in order of preference (comma-separated channel codes); off when disabled.
-- enabled_at: sweeps (welcome) only consider readers created since the trigger was switched on.
CREATE TABLE trigger_settings (
    trigger_code TEXT PRIMARY KEY,
    template_id BIGINT REFERENCES message_templates(id),
    channels TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    enabled_at TEXT,
    updated_at TEXT NOT NULL
);

-- A message to a segment. channels: channel codes in order of preference (first that the reader
-- has an address for and consented to). quiet_start/quiet_end: local HH:MM, no sending between.
CREATE TABLE campaigns (
    id {id},
    name TEXT NOT NULL,
    segment_id BIGINT NOT NULL REFERENCES segments(id),
    template_id BIGINT NOT NULL REFERENCES message_templates(id),
    purpose TEXT NOT NULL,
    channels TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_at TEXT,
    quiet_start TEXT,
    quiet_end TEXT,
    recipients BIGINT NOT NULL DEFAULT 0,
    excluded_consent BIGINT NOT NULL DEFAULT 0,
    excluded_address BIGINT NOT NULL DEFAULT 0,
    created_by BIGINT REFERENCES users(id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX campaigns_status ON campaigns(status, scheduled_at);

-- One message to one reader on one channel. dedupe_key makes enqueueing idempotent
-- (campaign:ID:reader:ID, trigger:CODE:…). A worker claims a row by setting claimed_by and
-- lease_until; a row whose lease ran out is claimable again. Rendering happens at sending time
-- from the template, the reader and vars_json (extra variables: case number, link, code).
CREATE TABLE outbox (
    id {id},
    dedupe_key TEXT NOT NULL UNIQUE,
    campaign_id BIGINT REFERENCES campaigns(id) ON DELETE CASCADE,
    trigger_code TEXT,
    reader_id BIGINT REFERENCES readers(id) ON DELETE SET NULL,
    channel_id BIGINT NOT NULL REFERENCES channels(id),
    address TEXT NOT NULL,
    template_id BIGINT NOT NULL REFERENCES message_templates(id),
    vars_json TEXT,
    purpose TEXT NOT NULL,
    lang TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_by TEXT,
    lease_until TEXT,
    sent_at TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at, id);
CREATE INDEX outbox_campaign ON outbox(campaign_id, status);
CREATE INDEX outbox_reader ON outbox(reader_id, id);

-- Failures per address; an address is no longer used once blocked (bad address, hard bounce,
-- or too many failures in a row). A success resets the count.
CREATE TABLE address_health (
    channel_kind TEXT NOT NULL,
    address TEXT NOT NULL,
    failures BIGINT NOT NULL,
    last_error TEXT,
    blocked_at TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (channel_kind, address)
);

-- Reader sign-in on the portal: a one-time code sent to the reader's email or mobile (stored
-- hashed), then a session cookie.
CREATE TABLE portal_codes (
    id {id},
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    used_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX portal_codes_reader ON portal_codes(reader_id, id);

CREATE TABLE portal_sessions (
    token_hash TEXT PRIMARY KEY,
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
)
