//! The embedded backend: one SQLite file in WAL mode, so a laptop needs no other process and
//! a restart loses nothing. SQLite has one writer at a time, which makes a claim (a single
//! `UPDATE ... RETURNING` over the oldest runnable row) atomic without row locks. The
//! statements themselves are shared with PostgreSQL, in [`super::sql`].

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::sql::{COLUMNS, DELIVERY_COLUMNS, Dialect, sql_store};
use super::*;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, QueueError> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

impl SqliteStore {
    const DIALECT: Dialect = Dialect::Sqlite;

    /// A transaction that takes the write lock up front. A deferred one that reads first
    /// would have to upgrade its lock later, and SQLite refuses that at once (SQLITE_BUSY,
    /// no busy wait) when another writer got in between.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, QueueError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Everything runs in this process, which wakes its own workers and long-polls.
    async fn notify(&self, _channel: &str, _payload: &str) {}

    async fn watch_notifications(&self, _wakers: Wakers, _shutdown: tokio_util::sync::CancellationToken) {}
}

sql_store!(SqliteStore, sqlx::Sqlite, SqliteRow);
