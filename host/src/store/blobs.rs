//! Sources and results, stored once each under their sha256 and counted by reference: the
//! jobs that use a blob (an upload, its dedup copies and replays, a result shared by dedup
//! copies) each hold one reference, taken in the transaction that writes the job and given back
//! in the one that deletes it. A blob with no references left is deleted at once, or by the
//! next sweep.
//!
//! Where the bytes live, chosen by measurement (see BENCHMARKS.md): on PostgreSQL in the
//! `blobs` row, where every host can read them; on SQLite small blobs (results, icons) in the
//! row too, and large ones (camera photos) as files in a `blobs` directory beside the database,
//! which costs one write instead of SQLite's two (the WAL, then the checkpoint).
//!
//! A file is written (and fsynced, then renamed into place) before the transaction that
//! references it commits. Its row is **leased** first, in a transaction of its own, so that a
//! concurrent delete of the last reference cannot remove the file between the write and the
//! reference; deletes move the file aside inside their transaction, which SQLite serialises
//! with the lease.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use sqlx::Row;

use super::{Store, StoreError, ms, now_ms};

/// Blobs up to this size stay in the database row even on SQLite.
pub const INLINE_MAX: u64 = 64 << 10;
/// How many times a blob is staged again after losing a race with a delete.
const STAGE_ATTEMPTS: usize = 3;
/// How long a staged file is protected before its reference must have committed.
const LEASE: Duration = Duration::from_secs(600);

/// Where blob bytes are kept.
pub(crate) enum Placement {
    /// Always in the row (PostgreSQL).
    Inline,
    /// Large blobs as files under `dir` (SQLite).
    Files { dir: PathBuf },
}

impl Placement {
    /// Files under `dir`, clearing writes a crash left half done.
    pub(crate) fn files(dir: PathBuf) -> Result<Placement, StoreError> {
        let tmp = dir.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        Ok(Placement::Files { dir })
    }

    fn file_dir(&self, size: u64) -> Option<&Path> {
        match self {
            Placement::Files { dir } if size > INLINE_MAX => Some(dir),
            _ => None,
        }
    }
}

fn blob_path(dir: &Path, hash: &str) -> PathBuf {
    dir.join(hash.get(..2).unwrap_or("xx")).join(hash)
}

/// Writes `bytes` to a temporary file, syncs it and renames it into place, unless the file
/// is already there (content-addressed: same name, same bytes).
fn write_file(dir: &Path, hash: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = blob_path(dir, hash);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
        return Ok(());
    }
    let tmp = dir.join("tmp").join(uuid::Uuid::new_v4().simple().to_string());
    super::direct::write_synced(&tmp, bytes)?;
    std::fs::create_dir_all(path.parent().expect("blob paths have a parent"))?;
    std::fs::rename(&tmp, &path)
}

/// A blob's bookkeeping, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub size: u64,
    pub refs: i64,
    /// Stored as a file rather than in the row.
    pub in_file: bool,
}

impl Store {
    /// Makes sure a new blob's bytes are stored before the transaction that references it
    /// commits. Only large blobs on SQLite need this (they become files); others go into the
    /// row inside that transaction, see [`Store::add_ref`].
    pub(super) async fn stage(&self, hash: &str, bytes: &Bytes) -> Result<(), StoreError> {
        let Some(dir) = self.blobs.file_dir(bytes.len() as u64) else {
            return Ok(());
        };
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO blobs (hash, size, refs, leased_until) VALUES ($1, $2, 0, $3)
             ON CONFLICT (hash) DO UPDATE SET leased_until = $3",
        )
        .bind(hash)
        .bind(bytes.len() as i64)
        .bind(now_ms() + ms(LEASE))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let (dir, hash, bytes) = (dir.to_path_buf(), hash.to_string(), bytes.clone());
        tokio::task::spawn_blocking(move || write_file(&dir, &hash, &bytes))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        Ok(())
    }

    /// Takes a reference to blob `hash` inside `tx`. With `bytes`, a blob that is not stored
    /// yet is inserted (into the row, or as the row of a file [`Store::stage`] wrote); without,
    /// it must exist. False when it does not (deleted meanwhile): the caller stages again or
    /// gives up.
    pub(super) async fn add_ref(
        &self,
        tx: &mut sqlx::AnyConnection,
        hash: &str,
        bytes: Option<&Bytes>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE blobs SET refs = refs + 1, leased_until = NULL WHERE hash = $1")
            .bind(hash)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        let Some(bytes) = bytes else { return Ok(false) };
        if self.blobs.file_dir(bytes.len() as u64).is_some() {
            // Its staged row is gone: a delete won the race; stage again.
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO blobs (hash, size, refs, data) VALUES ($1, $2, 1, $3)
             ON CONFLICT (hash) DO UPDATE SET refs = blobs.refs + 1",
        )
        .bind(hash)
        .bind(bytes.len() as i64)
        .bind(&bytes[..])
        .execute(&mut *tx)
        .await?;
        Ok(true)
    }

    /// A write transaction that already holds a reference to blob `hash`, storing `bytes`
    /// first if they are not stored yet. A staged file can lose a race with the delete of its
    /// last reference; then it is staged again, a bounded number of times.
    pub(super) async fn tx_with_blob(
        &self,
        hash: &str,
        bytes: &Bytes,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        for _ in 0..STAGE_ATTEMPTS {
            self.stage(hash, bytes).await?;
            let mut tx = self.write_tx().await?;
            if self.add_ref(&mut tx, hash, Some(bytes)).await? {
                return Ok(tx);
            }
        }
        Err(StoreError::Corrupt(format!(
            "blob {hash} kept disappearing while it was stored"
        )))
    }

    /// Gives back one reference to each of `hashes` inside `tx`.
    pub(super) async fn release_refs(
        &self,
        tx: &mut sqlx::AnyConnection,
        hashes: impl IntoIterator<Item = &str>,
    ) -> Result<(), StoreError> {
        for hash in hashes {
            sqlx::query("UPDATE blobs SET refs = refs - 1 WHERE hash = $1")
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// A blob's bytes.
    pub async fn blob(&self, hash: &str) -> Result<Option<Bytes>, StoreError> {
        let row = sqlx::query("SELECT size, data FROM blobs WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        if let Some(data) = row.try_get::<Option<Vec<u8>>, _>("data")? {
            return Ok(Some(Bytes::from(data)));
        }
        let Placement::Files { dir } = &self.blobs else {
            return Err(StoreError::Corrupt(format!("blob {hash} has no data")));
        };
        match tokio::fs::read(blob_path(dir, hash)).await {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A blob's size, reference count and place, if it is stored.
    pub async fn blob_info(&self, hash: &str) -> Result<Option<BlobInfo>, StoreError> {
        let row = sqlx::query("SELECT size, refs FROM blobs WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| -> Result<BlobInfo, StoreError> {
            let size = r.try_get::<i64, _>("size")? as u64;
            Ok(BlobInfo {
                size,
                refs: r.try_get("refs")?,
                in_file: self.blobs.file_dir(size).is_some(),
            })
        })
        .transpose()
    }

    /// Deletes blobs that no job references (and whose lease has run out); returns how many.
    pub async fn collect_garbage(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let mut tx = self.write_tx().await?;
            let rows = sqlx::query(
                "DELETE FROM blobs WHERE hash IN (
                     SELECT hash FROM blobs WHERE refs <= 0 AND (leased_until IS NULL OR leased_until < $1)
                     LIMIT 200)
                 RETURNING hash, size",
            )
            .bind(now_ms())
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                return Ok(total);
            }
            total += rows.len() as u64;
            // Files are moved aside inside the transaction (which holds SQLite's write lock
            // against a concurrent lease), and removed once it commits.
            let mut moved = Vec::new();
            if let Placement::Files { dir } = &self.blobs {
                for row in &rows {
                    let hash: String = row.try_get("hash")?;
                    if self
                        .blobs
                        .file_dir(row.try_get::<i64, _>("size")? as u64)
                        .is_none()
                    {
                        continue;
                    }
                    let (from, to) = (blob_path(dir, &hash), dir.join("tmp").join(&hash));
                    match std::fs::rename(&from, &to) {
                        Ok(()) => moved.push((from, to)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if let Err(e) = tx.commit().await {
                for (from, to) in moved {
                    let _ = std::fs::rename(to, from);
                }
                return Err(e.into());
            }
            for (_, to) in moved {
                let _ = std::fs::remove_file(to);
            }
        }
    }

    /// Moves blobs from the `job_data` table of earlier versions (one copy per job) into the
    /// blob store, one job at a time, so an upgraded database keeps every source and result.
    pub(super) async fn adopt_legacy_blobs(&self) -> Result<(), StoreError> {
        loop {
            let row = sqlx::query(
                "SELECT d.job_id, j.source_hash, j.result_etag, d.source, d.result
                 FROM job_data d JOIN jobs j ON j.id = d.job_id LIMIT 1",
            )
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(()) };
            let job_id: String = row.try_get("job_id")?;
            let mut blobs = Vec::new();
            for (hash, data) in [("source_hash", "source"), ("result_etag", "result")] {
                let hash: Option<String> = row.try_get(hash)?;
                let data: Option<Vec<u8>> = row.try_get(data)?;
                if let (Some(hash), Some(data)) = (hash.filter(|h| !h.is_empty()), data) {
                    blobs.push((hash, Bytes::from(data)));
                }
            }
            for (hash, bytes) in &blobs {
                self.stage(hash, bytes).await?;
            }
            let mut tx = self.write_tx().await?;
            for (hash, bytes) in &blobs {
                self.add_ref(&mut tx, hash, Some(bytes)).await?;
            }
            sqlx::query("DELETE FROM job_data WHERE job_id = $1")
                .bind(&job_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(
                job_id,
                blobs = blobs.len(),
                "moved a job's data into the blob store"
            );
        }
    }
}
