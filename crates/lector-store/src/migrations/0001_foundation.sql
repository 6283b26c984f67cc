-- Foundation: staff, sessions, tokens, configuration, readers, audit.
-- Booleans are 0/1 integers and times are UTC RFC 3339 text on both backends.

CREATE TABLE departments (
    id {id},
    code TEXT NOT NULL UNIQUE,
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE users (
    id {id},
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    department_id BIGINT REFERENCES departments(id),
    password_hash TEXT NOT NULL,
    active BIGINT NOT NULL DEFAULT 1,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until TEXT,
    created_at TEXT NOT NULL,
    last_login_at TEXT
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id {id},
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);

CREATE TABLE categories (
    id {id},
    code TEXT NOT NULL UNIQUE,
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    sort_order BIGINT NOT NULL DEFAULT 0,
    active BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE attribute_defs (
    id {id},
    code TEXT NOT NULL UNIQUE,
    label_zh TEXT NOT NULL,
    label_en TEXT NOT NULL,
    kind TEXT NOT NULL,
    choices TEXT NOT NULL,
    repeatable BIGINT NOT NULL,
    is_unique BIGINT NOT NULL,
    searchable BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE readers (
    id {id},
    card_no TEXT{bytes} NOT NULL UNIQUE,
    name TEXT NOT NULL,
    pinyin TEXT{bytes} NOT NULL,
    initials TEXT NOT NULL,
    gender TEXT NOT NULL,
    birth_date TEXT,
    category_id BIGINT NOT NULL REFERENCES categories(id),
    affiliation TEXT,
    status TEXT NOT NULL,
    enrolled_on TEXT,
    expires_on TEXT,
    owner_id BIGINT REFERENCES users(id),
    notes TEXT,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX readers_category ON readers(category_id);
CREATE INDEX readers_status ON readers(status);
CREATE INDEX readers_owner ON readers(owner_id);
CREATE INDEX readers_affiliation ON readers(affiliation);
CREATE INDEX readers_pinyin ON readers(pinyin, id);
CREATE INDEX readers_updated ON readers(updated_at);
CREATE INDEX readers_created ON readers(created_at);

CREATE TABLE reader_contacts (
    id {id},
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    lookup TEXT NOT NULL,
    is_primary BIGINT NOT NULL,
    verified BIGINT NOT NULL,
    position BIGINT NOT NULL
);
CREATE INDEX reader_contacts_reader ON reader_contacts(reader_id);
CREATE INDEX reader_contacts_lookup ON reader_contacts(lookup);

CREATE TABLE reader_related (
    id {id},
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    relation TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    position BIGINT NOT NULL
);
CREATE INDEX reader_related_reader ON reader_related(reader_id);

CREATE TABLE reader_tags (
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (reader_id, tag)
);
CREATE INDEX reader_tags_tag ON reader_tags(tag, reader_id);

CREATE TABLE reader_attributes (
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    attr_id BIGINT NOT NULL REFERENCES attribute_defs(id) ON DELETE CASCADE,
    value TEXT NOT NULL,
    position BIGINT NOT NULL
);
CREATE INDEX reader_attributes_reader ON reader_attributes(reader_id);
CREATE INDEX reader_attributes_value ON reader_attributes(attr_id, value);

-- Prefix keys a reader is found by: full pinyin, initials, suffixes of the name, searchable
-- attribute values. A range scan on this index answers name and pinyin searches.
CREATE TABLE reader_search_keys (
    key TEXT{bytes} NOT NULL,
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE
);
CREATE INDEX reader_search_keys_key ON reader_search_keys(key, reader_id);
CREATE INDEX reader_search_keys_reader ON reader_search_keys(reader_id);

CREATE TABLE audit_log (
    id {id},
    at TEXT NOT NULL,
    actor_id BIGINT,
    actor_name TEXT NOT NULL,
    origin TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT,
    summary TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT
);
CREATE INDEX audit_entity ON audit_log(entity, entity_id, id);
CREATE INDEX audit_actor ON audit_log(actor_id, id);
CREATE INDEX audit_action ON audit_log(action, id);


INSERT INTO categories (code, name_zh, name_en, sort_order, active) VALUES
    ('undergraduate', '本科生', 'Undergraduate', 10, 1),
    ('graduate', '研究生', 'Graduate student', 20, 1),
    ('doctoral', '博士生', 'Doctoral student', 30, 1),
    ('faculty', '教师', 'Faculty', 40, 1),
    ('staff', '职工', 'Staff', 50, 1),
    ('external', '校外读者', 'External reader', 60, 1);
