-- Finished jobs by time: the retention sweep and the throughput figures of /v1/stats and
-- /metrics (jobs finished in the last minute) read them this way.
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);
