-- Batches (POST /v1/batches): a batch owns an ordered list of jobs. A member row outlives its
-- job (deleted or expired) until the sweep; the batch goes when it has no job left.
CREATE TABLE IF NOT EXISTS batches (
    id         TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_jobs (
    batch_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    job_id   TEXT NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (batch_id, position)
);
CREATE INDEX IF NOT EXISTS batch_jobs_job ON batch_jobs (job_id);
