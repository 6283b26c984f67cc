-- Reader tracking: interactions, follow-up tasks, owner history, in-app notifications.
-- Booleans are 0/1 integers. occurred_at is the library's local time as YYYY-MM-DD HH:MM,
-- due_on and reminded_on are local dates YYYY-MM-DD, other times are UTC RFC 3339 text.

CREATE TABLE interactions (
    id {id},
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    direction TEXT NOT NULL,
    subject TEXT NOT NULL,
    notes TEXT,
    occurred_at TEXT NOT NULL,
    staff_id BIGINT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL
);
CREATE INDEX interactions_reader ON interactions(reader_id, occurred_at);
CREATE INDEX interactions_staff ON interactions(staff_id, occurred_at);
CREATE INDEX interactions_occurred ON interactions(occurred_at);

CREATE TABLE tasks (
    id {id},
    reader_id BIGINT REFERENCES readers(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    notes TEXT,
    due_on TEXT NOT NULL,
    assignee_id BIGINT NOT NULL REFERENCES users(id),
    created_by_id BIGINT NOT NULL REFERENCES users(id),
    status TEXT NOT NULL,
    done_at TEXT,
    reminded_on TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX tasks_assignee ON tasks(assignee_id, status, due_on);
CREATE INDEX tasks_status ON tasks(status, due_on);
CREATE INDEX tasks_reader ON tasks(reader_id);
CREATE INDEX tasks_created_by ON tasks(created_by_id);

-- by_name keeps who handed over when that was not a user (the command line, an import).
CREATE TABLE owner_history (
    id {id},
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    from_owner_id BIGINT REFERENCES users(id),
    to_owner_id BIGINT REFERENCES users(id),
    reason TEXT NOT NULL,
    by_id BIGINT REFERENCES users(id),
    by_name TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX owner_history_reader ON owner_history(reader_id, id);

CREATE TABLE notifications (
    id {id},
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    text_zh TEXT NOT NULL,
    text_en TEXT NOT NULL,
    link TEXT,
    created_at TEXT NOT NULL,
    read_at TEXT
);
CREATE INDEX notifications_user ON notifications(user_id, read_at, id)
