-- Sources and results stored once under their sha256 and counted by reference (see
-- host/src/store/blobs.rs), in the database so every host can read them.
CREATE TABLE IF NOT EXISTS blobs (
    hash         TEXT PRIMARY KEY NOT NULL,
    size         BIGINT NOT NULL,
    refs         BIGINT NOT NULL,
    leased_until BIGINT,
    data         BYTEA
);
CREATE INDEX IF NOT EXISTS blobs_unreferenced ON blobs (refs) WHERE refs <= 0;

-- The dedup key is set when a job succeeds, so it names the component that really ran it.
ALTER TABLE jobs DROP COLUMN IF EXISTS cache_key;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS dedup_key TEXT;
CREATE INDEX IF NOT EXISTS jobs_dedup ON jobs (dedup_key, owner) WHERE dedup_key IS NOT NULL;

-- Jobs submitted without an API key belong to '', so owner filters are plain equality.
UPDATE jobs SET owner = '' WHERE owner IS NULL;
