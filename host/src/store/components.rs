//! The component registry's rows: every resizer component the deployment knows (with its
//! bytes, so every host sharing the database can load it) and the history of activations.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::notify::CHANNEL_COMPONENTS;
use super::{Store, StoreError, now_ms};

/// A component as the registry stores it, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ComponentRecord {
    /// sha256 of the component, lower-case hex.
    pub digest: String,
    /// Version of the `edgethumb:resizer` package it exports.
    pub wit_version: String,
    pub size: u64,
    /// Milliseconds since the Unix epoch.
    pub uploaded_at: i64,
    /// `builtin`, `upload`, `file` (--component) or `directory` (--component-dir).
    pub origin: String,
}

/// The component registry's storage, in the same database as the jobs so that every host
/// sharing it sees the same components and the same active one.
#[async_trait]
pub trait ComponentStore: Send + Sync + 'static {
    /// Stores a component unless its digest is already there; true if it was new.
    async fn put_component(&self, record: &ComponentRecord, wasm: &[u8]) -> Result<bool, StoreError>;
    async fn component(&self, digest: &str) -> Result<Option<ComponentRecord>, StoreError>;
    async fn component_wasm(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn components(&self) -> Result<Vec<ComponentRecord>, StoreError>;
    /// Makes `digest` the active component (appends to the activation history).
    async fn activate(&self, digest: &str) -> Result<(), StoreError>;
    /// The active component's digest, if any was ever activated.
    async fn active_component(&self) -> Result<Option<String>, StoreError>;
    /// Re-activates the component that was active before the current one; its digest, or
    /// `None` when there is nothing to go back to.
    async fn rollback(&self) -> Result<Option<String>, StoreError>;
    /// Deletes a component that is not active; false if it is active or unknown.
    async fn delete_component(&self, digest: &str) -> Result<bool, StoreError>;
    /// Records that the directory watcher activated `digest`; true if it had not before.
    async fn mark_adopted(&self, digest: &str) -> Result<bool, StoreError>;
    /// Whether the directory watcher ever activated `digest`.
    async fn was_adopted(&self, digest: &str) -> Result<bool, StoreError>;
}

/// The active component's digest: the newest activation.
pub(super) const ACTIVE_DIGEST: &str = "SELECT digest FROM activations ORDER BY seq DESC LIMIT 1";

fn component_from_row(row: &AnyRow) -> Result<ComponentRecord, StoreError> {
    Ok(ComponentRecord {
        digest: row.try_get("digest")?,
        wit_version: row.try_get("wit_version")?,
        size: row.try_get::<i64, _>("size")? as u64,
        uploaded_at: row.try_get("uploaded_at")?,
        origin: row.try_get("origin")?,
    })
}

#[async_trait]
impl ComponentStore for Store {
    async fn put_component(&self, r: &ComponentRecord, wasm: &[u8]) -> Result<bool, StoreError> {
        let done = sqlx::query("INSERT INTO components (digest, wit_version, size, uploaded_at, origin, wasm) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (digest) DO NOTHING")
        .bind(&r.digest)
        .bind(&r.wit_version)
        .bind(r.size as i64)
        .bind(r.uploaded_at)
        .bind(&r.origin)
        .bind(wasm)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn component(&self, digest: &str) -> Result<Option<ComponentRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT digest, wit_version, size, uploaded_at, origin FROM components WHERE digest = $1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(component_from_row).transpose()
    }

    async fn component_wasm(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT wasm FROM components WHERE digest = $1")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn components(&self) -> Result<Vec<ComponentRecord>, StoreError> {
        let rows = sqlx::query("SELECT digest, wit_version, size, uploaded_at, origin FROM components ORDER BY uploaded_at DESC, digest")
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(component_from_row).collect()
    }

    async fn activate(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO activations (digest, activated_at) VALUES ($1, $2)")
            .bind(digest)
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        self.notify(CHANNEL_COMPONENTS, digest).await;
        Ok(())
    }

    async fn active_component(&self) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(ACTIVE_DIGEST)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn rollback(&self) -> Result<Option<String>, StoreError> {
        let mut tx = self.write_tx().await?;
        let current: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, digest FROM activations ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let Some((seq, digest)) = current else {
            return Ok(None);
        };
        let previous: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM activations WHERE seq < $1 AND digest != $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(seq)
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(previous) = previous else { return Ok(None) };
        // Going back forgets the rolled-back activation, so a second rollback goes further back
        // instead of toggling between two versions.
        sqlx::query("DELETE FROM activations WHERE seq >= (SELECT MAX(seq) FROM activations WHERE digest = $1 AND seq < $2)")
            .bind(&previous)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO activations (digest, activated_at) VALUES ($1, $2)")
            .bind(&previous)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.notify(CHANNEL_COMPONENTS, &previous).await;
        Ok(Some(previous))
    }

    async fn delete_component(&self, digest: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let active: Option<String> = sqlx::query_scalar(ACTIVE_DIGEST).fetch_optional(&mut *tx).await?;
        if active.as_deref() == Some(digest) {
            return Ok(false);
        }
        let done = sqlx::query("DELETE FROM components WHERE digest = $1")
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_adopted(&self, digest: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO adopted_files (digest, adopted_at) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn was_adopted(&self, digest: &str) -> Result<bool, StoreError> {
        let found: Option<String> = sqlx::query_scalar("SELECT digest FROM adopted_files WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }
}
