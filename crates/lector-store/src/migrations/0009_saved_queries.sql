-- Saved warehouse queries (数据仓库查询): per staff member, optionally shared with everyone who
-- may query the warehouse. Names are unique per owner. Times are UTC RFC 3339 text.
CREATE TABLE saved_queries (
    id {id},
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    sql_text TEXT NOT NULL,
    description TEXT NOT NULL,
    shared BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (owner_id, name)
);
CREATE INDEX saved_queries_shared ON saved_queries(shared, name)
