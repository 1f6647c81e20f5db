//! `GET /v1/batches/{id}/archive`: a zip of the batch's finished thumbnails, written entry by
//! entry as they are read from the store and streamed as it goes, so a large batch never sits
//! whole in memory. Thumbnails are already compressed (PNG, JPEG, WebP): entries are stored.
//! `batch.json` at the end says what each job became, failures included.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::super::error::ApiError;
use super::super::{AppState, Owner};
use super::{BatchView, owned_batch, parse_batch_id, stream_body};
use crate::jobs::{Batch, JobStatus, Jobs};

/// A zip of the finished thumbnails, named `NNN-name.FORMAT` in the batch's order, and
/// `batch.json`. Jobs still running are left out; fetch it again once `finished` is true.
#[utoipa::path(get, path = "/v1/batches/{id}/archive", tag = "batches", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The zip", content_type = "application/zip", body = Vec<u8>),
        (status = 404, description = "Unknown batch")))]
pub async fn archive(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_batch_id(&id)?;
    let batch = owned_batch(&state, id, &owner).await?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(write_zip(state.jobs.clone(), batch, tx));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"batch-{id}.zip\""),
            ),
        ],
        stream_body(rx),
    )
        .into_response())
}

type Chunks = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// What the zip writer has written and the stream has not sent yet.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Vec<u8>>>);

impl Pending {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(
            &mut *self.0.lock().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

impl Write for Pending {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn write_zip(jobs: Arc<Jobs>, batch: Batch, tx: Chunks) {
    if let Err(e) = try_write_zip(&jobs, batch, &tx).await {
        // The client sees a broken transfer rather than a zip that looks whole.
        tracing::warn!(error = %e, "writing a batch archive failed");
        let _ = tx.send(Err(e)).await;
    }
}

async fn try_write_zip(jobs: &Jobs, batch: Batch, tx: &Chunks) -> std::io::Result<()> {
    let pending = Pending::default();
    let mut zip = ZipWriter::new_stream(pending.clone());
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for member in batch
        .members
        .iter()
        .filter(|m| m.job.status == JobStatus::Succeeded)
    {
        let Some(hash) = &member.job.result_hash else {
            continue;
        };
        // Deleted or expired since the batch was read: left out, like an unfinished job.
        let Some(data) = jobs.thumbnail_bytes(hash).await.map_err(std::io::Error::other)? else {
            continue;
        };
        let name = entry_name(member.position, &member.name, member.job.output_format().name());
        zip.start_file(name, stored).map_err(std::io::Error::other)?;
        zip.write_all(&data)?;
        if tx.send(Ok(pending.take())).await.is_err() {
            return Ok(()); // the client went away
        }
    }
    let manifest = serde_json::to_vec_pretty(&BatchView::from(batch)).map_err(std::io::Error::other)?;
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    zip.start_file("batch.json", deflated)
        .map_err(std::io::Error::other)?;
    zip.write_all(&manifest)?;
    zip.finish().map_err(std::io::Error::other)?;
    let _ = tx.send(Ok(pending.take())).await;
    Ok(())
}

/// `NNN-stem.ext`: the position keeps names unique and in order; the stem keeps only
/// characters that are safe in any file system (no path separators, no `..`).
fn entry_name(position: u64, name: &str, ext: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = base.rsplit_once('.').map_or(base, |(stem, _)| stem);
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let safe = if safe.trim_matches('_').is_empty() {
        "image".to_string()
    } else {
        safe
    };
    format!("{:03}-{safe}.{ext}", position + 1)
}

#[cfg(test)]
mod tests {
    use super::entry_name;

    #[test]
    fn entry_names_are_safe_and_ordered() {
        assert_eq!(entry_name(0, "cat.jpg", "png"), "001-cat.png");
        assert_eq!(entry_name(11, "../../etc/passwd", "webp"), "012-passwd.webp");
        assert_eq!(entry_name(2, "...", "jpeg"), "003-image.jpeg");
        assert_eq!(entry_name(3, "ünïcode name.gif", "png"), "004-_n_code_name.png");
    }
}
