//! The shared backend: PostgreSQL, for many hosts behind a load balancer. Claims take the
//! oldest runnable job with `FOR UPDATE SKIP LOCKED`, so any number of workers on any number
//! of hosts take each job exactly once without waiting on each other; LISTEN/NOTIFY wakes idle
//! workers, long-polls and component registries on every host at once. Migrations run at start
//! under sqlx's advisory lock, so hosts starting together migrate once. The statements are
//! shared with SQLite, in [`super::sql`].

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::sql::{COLUMNS, DELIVERY_COLUMNS, Dialect, sql_store};
use super::*;

pub struct PgStore {
    pool: PgPool,
    /// Off only to measure what polling alone costs (`--no-notify`).
    notify: bool,
}

impl PgStore {
    const DIALECT: Dialect = Dialect::Postgres;

    /// Connects and applies migrations.
    pub async fn open(url: &str, notify: bool) -> Result<Self, QueueError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool, notify })
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, QueueError> {
        Ok(self.pool.begin().await?)
    }

    /// Tells every host (this one included) through NOTIFY; a lost notification only costs a
    /// poll interval, so failures are logged, not returned.
    async fn notify(&self, channel: &str, payload: &str) {
        if !self.notify {
            return;
        }
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, channel, "NOTIFY failed");
        }
    }

    /// Listens on the channels and wakes the matching waiters, reconnecting after errors.
    async fn watch_notifications(&self, wakers: Wakers, shutdown: CancellationToken) {
        if !self.notify {
            return;
        }
        while !shutdown.is_cancelled() {
            let mut listener = match PgListener::connect_with(&self.pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
            };
            if let Err(e) = listener
                .listen_all([CHANNEL_JOBS, CHANNEL_FINISHED, CHANNEL_COMPONENTS])
                .await
            {
                tracing::warn!(error = %e, "LISTEN failed; retrying");
                continue;
            }
            loop {
                let note = tokio::select! {
                    n = listener.recv() => n,
                    _ = shutdown.cancelled() => return,
                };
                match note {
                    Ok(n) => match n.channel() {
                        CHANNEL_JOBS => wakers.jobs.notify_one(),
                        CHANNEL_FINISHED => {
                            if let Ok(id) = Uuid::parse_str(n.payload()) {
                                let _ = wakers.finished.send(id);
                            }
                        }
                        CHANNEL_COMPONENTS => wakers.components.notify_one(),
                        _ => {}
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}

sql_store!(PgStore, sqlx::Postgres, PgRow);
