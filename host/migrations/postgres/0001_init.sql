-- The PostgreSQL schema: the same tables as the SQLite backend (see migrations/sqlite), with
-- times in milliseconds since the Unix epoch and blobs as bytea.
CREATE TABLE IF NOT EXISTS jobs (
    id                  TEXT PRIMARY KEY NOT NULL,
    owner               TEXT,
    status              TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    started_at          BIGINT,
    finished_at         BIGINT,
    attempts            BIGINT NOT NULL DEFAULT 0,
    lease_until         BIGINT,
    lease_token         TEXT,
    options             TEXT NOT NULL,
    cache_key           TEXT NOT NULL,
    source_hash         TEXT NOT NULL,
    source_bytes        BIGINT NOT NULL,
    source_format       TEXT,
    source_width        BIGINT,
    source_height       BIGINT,
    result_bytes        BIGINT,
    result_width        BIGINT,
    result_height       BIGINT,
    result_etag         TEXT,
    component_digest    TEXT,
    error_code          TEXT,
    error_message       TEXT,
    deduplicated_from   TEXT,
    requested_component TEXT,
    source_url          TEXT,
    callback_url        TEXT,
    not_before          BIGINT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_cache ON jobs (cache_key, status);
CREATE INDEX IF NOT EXISTS jobs_owner_created ON jobs (owner, created_at);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);

CREATE TABLE IF NOT EXISTS job_data (
    job_id TEXT PRIMARY KEY NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    source BYTEA,
    result BYTEA
);

CREATE TABLE IF NOT EXISTS components (
    digest      TEXT PRIMARY KEY NOT NULL,
    wit_version TEXT NOT NULL,
    size        BIGINT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    origin      TEXT NOT NULL,
    wasm        BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS activations (
    seq          BIGSERIAL PRIMARY KEY,
    digest       TEXT NOT NULL REFERENCES components (digest) ON DELETE CASCADE,
    activated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_job ON deliveries (job_id);
