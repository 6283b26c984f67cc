-- Identity resolution (读者身份合并): pairs of readers that may be one person, merges (reversible)
-- and the identifiers a survivor keeps from the records it absorbed.
-- Reader ids here carry no foreign key on purpose: a merged or distinct pair and a merge stay on
-- record after one of its readers is gone (absorbed or deleted).

-- One row per unordered pair (left_id < right_id). status: pending, merged, distinct.
CREATE TABLE match_candidates (
    id {id},
    left_id BIGINT NOT NULL,
    right_id BIGINT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    evidence TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    UNIQUE (left_id, right_id)
);
CREATE INDEX match_candidates_queue ON match_candidates(status, score, id);

-- Identifiers a reader is also known by: card numbers of absorbed records (kind card_no) and
-- values of identifier attributes a merge could not keep as attributes (kind = attribute code).
-- merge_id names the merge that added the row, so undoing it removes exactly that row.
CREATE TABLE reader_identifiers (
    id {id},
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    merge_id BIGINT,
    created_at TEXT NOT NULL
);
CREATE INDEX reader_identifiers_value ON reader_identifiers(kind, value);
CREATE INDEX reader_identifiers_reader ON reader_identifiers(reader_id);

-- absorbed_snapshot and survivor_before are whole reader records (JSON), and moved_rows maps each
-- re-pointed table to the keys of the rows that were the absorbed reader's.
CREATE TABLE merges (
    id {id},
    candidate_id BIGINT REFERENCES match_candidates(id),
    survivor_id BIGINT NOT NULL,
    absorbed_id BIGINT NOT NULL,
    absorbed_card_no TEXT NOT NULL,
    absorbed_name TEXT NOT NULL,
    absorbed_snapshot TEXT NOT NULL,
    survivor_before TEXT NOT NULL,
    moved_rows TEXT NOT NULL,
    how TEXT NOT NULL,
    by_id BIGINT,
    by_name TEXT NOT NULL,
    at TEXT NOT NULL,
    undone_at TEXT,
    undone_by TEXT
);
CREATE INDEX merges_survivor ON merges(survivor_id, id);
CREATE INDEX merges_absorbed ON merges(absorbed_id, id);
CREATE INDEX merges_candidate ON merges(candidate_id, id)
