//! Durable storage: jobs, their blobs, webhook deliveries and components, in SQLite (the
//! embedded default) or PostgreSQL (many hosts sharing one queue).
//!
//! One [`Store`] serves both databases through sqlx's `Any` driver: the statements are plain
//! SQL with `$N` placeholders, written where they are used, and only the claim differs
//! between the two (PostgreSQL adds `FOR UPDATE SKIP LOCKED`). It is split by concern:
//! - [`jobs`]: the queue (insert, claim with a lease, heartbeat, complete), reads and
//!   listings, deletes and expiry;
//! - [`blobs`]: sources and results, content-addressed by sha256 and reference-counted, so
//!   each is stored once however many jobs use it;
//! - [`deliveries`]: webhook deliveries;
//! - [`components`]: the component registry's rows ([`ComponentStore`]);
//! - [`notify`]: PostgreSQL's LISTEN/NOTIFY between hosts.
//!
//! A job is claimed with a **lease**: a worker that dies leaves a lease that runs out, and the
//! job is claimed again (attempts are counted, so a job that kills its worker every time ends
//! as failed instead of looping). Completion is guarded by the claim's token, so a worker whose
//! lease ran out cannot overwrite the result of the worker that took over.

// `jobs` first: its `job_columns!` is used by `batches`.
#[macro_use]
mod jobs;
mod batches;
pub mod blobs;
mod components;
mod deliveries;
mod direct;
mod notify;
mod types;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor};

pub use batches::{Batch, Member};
pub use components::{ComponentRecord, ComponentStore};
pub use notify::{CHANNEL_COMPONENTS, CHANNEL_FINISHED, CHANNEL_JOBS, Wakers};
pub use types::*;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// Storage failures. Callers log them and answer 503: they are never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
    /// A job refers to a blob that is no longer stored (its jobs were deleted meanwhile).
    #[error("blob {0} is no longer stored")]
    BlobMissing(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// The database and the blob files beside it.
pub struct Store {
    /// Reads (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// Writes. On SQLite one connection: SQLite has one writer at a time, and a second
    /// connection that asks for the lock waits in SQLite's busy handler, which sleeps in steps
    /// of up to 100 ms; waiting here instead wakes the next writer the moment the lock is free.
    writer: AnyPool,
    kind: Kind,
    blobs: blobs::Placement,
    /// PostgreSQL: tell other hosts through NOTIFY (off only to measure polling alone).
    notify: bool,
    /// PostgreSQL: where the LISTEN connection goes.
    listen_url: Option<String>,
}

impl Store {
    /// Opens (creating if needed) a SQLite file in WAL mode, with large blobs as files in a
    /// `blobs` directory beside it, and applies migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .to_url_lossy();
        let options = AnyConnectOptions::from_url(&url)?;
        let connect = |max| {
            AnyPoolOptions::new()
                .max_connections(max)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // WAL lets readers run beside the one writer; NORMAL syncs at checkpoints,
                        // which keeps every commit through a process crash (kill -9).
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 10000",
                        ] {
                            conn.execute(pragma).await?;
                        }
                        Ok(())
                    })
                })
        };
        let pool = connect(8).connect_with(options.clone()).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let writer = connect(1).connect_with(options).await?;
        let dir = path.parent().unwrap_or(Path::new(".")).join("blobs");
        let store = Store {
            pool,
            writer,
            kind: Kind::Sqlite,
            blobs: blobs::Placement::files(dir)?,
            notify: false,
            listen_url: None,
        };
        store.adopt_legacy_blobs().await?;
        Ok(store)
    }

    /// Connects to PostgreSQL and applies migrations (under sqlx's advisory lock, so hosts
    /// starting together migrate once). Blobs live in the database, where every host reads them.
    pub async fn open_postgres(url: &str, notify: bool) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let store = Store {
            writer: pool.clone(),
            pool,
            kind: Kind::Postgres,
            blobs: blobs::Placement::Inline,
            notify,
            listen_url: Some(url.to_string()),
        };
        store.adopt_legacy_blobs().await?;
        Ok(store)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A write transaction. SQLite's takes the write lock up front: a deferred one that reads
    /// first would have to upgrade its lock later, and SQLite refuses that at once
    /// (SQLITE_BUSY, no busy wait) when another writer got in between.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.kind {
            Kind::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Kind::Postgres => self.writer.begin().await?,
        })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}
