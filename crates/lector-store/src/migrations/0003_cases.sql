-- Service cases (服务工单): cases, their event history, categories per kind, and the settings
-- (workflows per kind, the working calendar) they are handled under.
-- Booleans are 0/1 integers. Times ending in _at are UTC RFC 3339 text, except due_at, which is
-- the library's local time YYYY-MM-DD HH:MM like the *_local columns (local copies of created_at
-- and resolved_at, for date filters, deadlines and the waiting period before closing).

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE case_categories (
    id {id},
    kind TEXT NOT NULL,
    code TEXT NOT NULL,
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (kind, code)
);

CREATE TABLE cases (
    id {id},
    number TEXT UNIQUE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    category TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    source TEXT NOT NULL,
    reader_id BIGINT REFERENCES readers(id) ON DELETE SET NULL,
    card_no TEXT,
    contact_name TEXT,
    contact TEXT,
    department_id BIGINT REFERENCES departments(id),
    assignee_id BIGINT REFERENCES users(id),
    proposal TEXT,
    reply TEXT,
    duplicate_of BIGINT REFERENCES cases(id),
    due_at TEXT,
    escalated BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    created_local TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    first_response_at TEXT,
    resolved_at TEXT,
    resolved_local TEXT,
    closed_at TEXT,
    rating_satisfaction BIGINT,
    rating_recommend BIGINT,
    rating_comment TEXT,
    rated_at TEXT,
    token_hash TEXT UNIQUE,
    token_expires_at TEXT,
    idempotency_key TEXT UNIQUE,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX cases_department_queue ON cases(department_id, status, due_at);
CREATE INDEX cases_status_due ON cases(status, due_at);
CREATE INDEX cases_kind_created ON cases(kind, created_local);
CREATE INDEX cases_created ON cases(created_local);
CREATE INDEX cases_reader ON cases(reader_id, id);
CREATE INDEX cases_assignee ON cases(assignee_id, status, due_at);

CREATE TABLE case_events (
    id {id},
    case_id BIGINT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    comment TEXT
);
CREATE INDEX case_events_case ON case_events(case_id, id)
