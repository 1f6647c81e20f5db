//! Telling other hosts: on PostgreSQL, NOTIFY when a job is queued, a job finishes or the
//! active component changes, and one LISTEN connection per host that wakes the matching
//! waiters. SQLite is used by one process, which wakes its own waiters, so there it is a no-op.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Kind, Store};

/// Notification channels: a job is runnable, a job finished (payload: its id), the active
/// component changed.
pub const CHANNEL_JOBS: &str = "edgethumb_jobs";
pub const CHANNEL_FINISHED: &str = "edgethumb_finished";
pub const CHANNEL_COMPONENTS: &str = "edgethumb_components";

/// Where notifications from other hosts go.
#[derive(Clone)]
pub struct Wakers {
    /// Wakes an idle worker.
    pub jobs: Arc<Notify>,
    /// Wakes long-polls waiting for this job.
    pub finished: broadcast::Sender<Uuid>,
    /// Makes the component registry re-read the active component.
    pub components: Arc<Notify>,
}

impl Store {
    /// Tells every host (this one included); a lost notification only costs a poll interval,
    /// so failures are logged, not returned.
    pub(super) async fn notify(&self, channel: &str, payload: &str) {
        if self.kind != Kind::Postgres || !self.notify {
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

    /// Delivers other hosts' notifications to `wakers` until `shutdown`, reconnecting after
    /// errors. Returns at once where there is nothing to listen to.
    pub async fn watch(&self, wakers: Wakers, shutdown: CancellationToken) {
        let Some(url) = self.listen_url.as_deref().filter(|_| self.notify) else {
            return;
        };
        while !shutdown.is_cancelled() {
            let mut listener = match PgListener::connect(url).await {
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
