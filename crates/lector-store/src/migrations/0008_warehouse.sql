-- The warehouse's bookkeeping in the operational store (ADR 0006). Times are UTC RFC 3339 text.

-- The attribute hash of each reader's last dimension version written to the warehouse: a
-- refresh appends a version only for readers whose hash changed. No foreign key: a reader
-- deleted while a refresh runs must not fail recording the others, and the row of a deleted
-- reader is harmless.
CREATE TABLE warehouse_reader_state (
    reader_id BIGINT PRIMARY KEY,
    attr_hash TEXT NOT NULL,
    exported_at TEXT NOT NULL
);

-- When an outbox row's outcome was written to the warehouse. Outcomes are exported by this
-- marker, not by a watermark: a message finishes long after messages with larger ids (retries,
-- quiet hours), and failed rows keep no finishing time. The partial index holds only the rows
-- not yet exported, so finding them never walks the history.
ALTER TABLE outbox ADD COLUMN warehouse_exported_at TEXT;
CREATE INDEX outbox_warehouse_unexported ON outbox(id) WHERE warehouse_exported_at IS NULL;

-- Keeps two servers from refreshing the warehouse at once: taken by a conditional update while
-- free or expired, renewed by its holder while it works.
CREATE TABLE warehouse_lease (
    name TEXT PRIMARY KEY,
    holder TEXT,
    expires_at TEXT NOT NULL
);
INSERT INTO warehouse_lease (name, holder, expires_at) VALUES ('refresh', NULL, '')
