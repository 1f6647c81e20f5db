-- The component registry: every resizer component this deployment knows, and the history of
-- which one was active (the last row is the active one; rollback steps back through it).
CREATE TABLE IF NOT EXISTS components (
    digest      TEXT PRIMARY KEY NOT NULL,
    wit_version TEXT NOT NULL,
    size        INTEGER NOT NULL,
    uploaded_at INTEGER NOT NULL,
    origin      TEXT NOT NULL,
    wasm        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS activations (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    digest       TEXT NOT NULL REFERENCES components (digest) ON DELETE CASCADE,
    activated_at INTEGER NOT NULL
);
-- A job may ask for a particular component (a replay on another version).
ALTER TABLE jobs ADD COLUMN requested_component TEXT;
