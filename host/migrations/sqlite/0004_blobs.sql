-- Sources and results stored once under their sha256 and counted by reference (see
-- host/src/store/blobs.rs). `data` holds small blobs; large ones are files beside the database.
-- A staged file's row is leased until the job that references it commits.
CREATE TABLE IF NOT EXISTS blobs (
    hash         TEXT PRIMARY KEY NOT NULL,
    size         INTEGER NOT NULL,
    refs         INTEGER NOT NULL,
    leased_until INTEGER,
    data         BLOB
);
CREATE INDEX IF NOT EXISTS blobs_unreferenced ON blobs (refs) WHERE refs <= 0;

-- The dedup key is set when a job succeeds, so it names the component that really ran it.
DROP INDEX IF EXISTS jobs_cache;
ALTER TABLE jobs DROP COLUMN cache_key;
ALTER TABLE jobs ADD COLUMN dedup_key TEXT;
CREATE INDEX IF NOT EXISTS jobs_dedup ON jobs (dedup_key, owner) WHERE dedup_key IS NOT NULL;

-- Jobs submitted without an API key belong to '', so owner filters are plain equality.
UPDATE jobs SET owner = '' WHERE owner IS NULL;
