-- The URL result cache: a URL job is found again by its url_key (the URL, the options and the
-- component), is fresh for --url-cache-ttl after fetched_at, and is then revalidated with the
-- origin's validators.
ALTER TABLE jobs ADD COLUMN url_key TEXT;
ALTER TABLE jobs ADD COLUMN fetched_at INTEGER;
ALTER TABLE jobs ADD COLUMN origin_etag TEXT;
ALTER TABLE jobs ADD COLUMN origin_last_modified TEXT;
CREATE INDEX IF NOT EXISTS jobs_url_key ON jobs (url_key, owner) WHERE url_key IS NOT NULL;
