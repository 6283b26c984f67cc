-- Import jobs: sources, durable jobs with their rejections, the link of each reader to the
-- records that feed it (with fingerprints for idempotent re-imports and field provenance), the
-- before images that undo restores, and saved mapping profiles.

CREATE TABLE import_sources (
    id {id},
    name TEXT NOT NULL UNIQUE,
    -- How to read the source again for a scheduled re-sync (JSON), NULL when only imported by hand.
    spec TEXT,
    every_minutes BIGINT,
    next_run_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX import_sources_due ON import_sources(next_run_at);

CREATE TABLE import_jobs (
    id {id},
    source_id BIGINT NOT NULL REFERENCES import_sources(id),
    format TEXT NOT NULL,
    label TEXT NOT NULL,
    options TEXT NOT NULL,
    dry_run BIGINT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    counts TEXT NOT NULL,
    error TEXT,
    -- Field codes (and attr.CODE) the job's rows mapped: what a reader it created got from it.
    mapped TEXT NOT NULL DEFAULT '[]',
    created_by_id BIGINT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    undone_at TEXT,
    worker TEXT,
    lease_until TEXT
);
CREATE INDEX import_jobs_status ON import_jobs(status, id);
CREATE INDEX import_jobs_source ON import_jobs(source_id, id);

CREATE TABLE import_rejections (
    job_id BIGINT NOT NULL REFERENCES import_jobs(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    row_no BIGINT NOT NULL,
    column_name TEXT NOT NULL,
    value TEXT NOT NULL,
    reason_zh TEXT NOT NULL,
    reason_en TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- One row per record of a source that feeds a reader. `fingerprint` hashes the record's mapped
-- values as last applied (0: apply it again next time), and `fields` maps field codes to the job
-- that last set them ("*": every field the first job mapped).
CREATE TABLE reader_sources (
    source_id BIGINT NOT NULL REFERENCES import_sources(id),
    external_id TEXT NOT NULL,
    reader_id BIGINT NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    fingerprint BIGINT NOT NULL,
    fields TEXT NOT NULL,
    first_job_id BIGINT NOT NULL,
    last_job_id BIGINT NOT NULL,
    seen_job_id BIGINT NOT NULL,
    PRIMARY KEY (source_id, external_id)
);
CREATE INDEX reader_sources_reader ON reader_sources(reader_id);

-- What a job changed in readers that existed before it (created readers are found through
-- reader_sources.first_job_id): the record and its link before the job, for undo.
CREATE TABLE import_changes (
    id {id},
    job_id BIGINT NOT NULL REFERENCES import_jobs(id) ON DELETE CASCADE,
    reader_id BIGINT NOT NULL,
    action TEXT NOT NULL,
    before_json TEXT NOT NULL
);
CREATE INDEX import_changes_job ON import_changes(job_id, reader_id);
CREATE INDEX import_changes_reader ON import_changes(reader_id, job_id);

CREATE TABLE mapping_profiles (
    name TEXT PRIMARY KEY,
    toml TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
