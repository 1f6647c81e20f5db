-- Jobs and their data. Times are milliseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS jobs (
    id                TEXT PRIMARY KEY NOT NULL,
    owner             TEXT,
    status            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,
    lease_until       INTEGER,
    lease_token       TEXT,
    options           TEXT NOT NULL,
    cache_key         TEXT NOT NULL,
    source_hash       TEXT NOT NULL,
    source_bytes      INTEGER NOT NULL,
    source_format     TEXT,
    source_width      INTEGER,
    source_height     INTEGER,
    result_bytes      INTEGER,
    result_width      INTEGER,
    result_height     INTEGER,
    result_etag       TEXT,
    component_digest  TEXT,
    error_code        TEXT,
    error_message     TEXT,
    deduplicated_from TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_cache ON jobs (cache_key, status);
CREATE INDEX IF NOT EXISTS jobs_owner_created ON jobs (owner, created_at);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);

-- Blobs live apart so status polls and listings never read them.
CREATE TABLE IF NOT EXISTS job_data (
    job_id TEXT PRIMARY KEY NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    source BLOB,
    result BLOB
);
