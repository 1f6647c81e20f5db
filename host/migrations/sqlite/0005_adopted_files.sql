-- Components the --component-dir watcher has activated once (host/src/sandbox/registry.rs).
-- An operator may roll such a component back or delete it while its file stays in the
-- directory; remembering the digest keeps a restart from activating it again.
CREATE TABLE IF NOT EXISTS adopted_files (
    digest     TEXT PRIMARY KEY NOT NULL,
    adopted_at INTEGER NOT NULL
);
