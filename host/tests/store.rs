//! The store on its own, against both backends (a SQLite file in a temp dir; a fresh
//! PostgreSQL database): blobs stored once and reference-counted, the claim and its lease,
//! completion guarded by the claim, expiry. No server, no sandbox.

mod common;

use std::time::Duration;

use bytes::Bytes;
use edgethumb::codes::Code;
use edgethumb::digest::sha256_hex;
use edgethumb::store::{Deleted, JobStatus, Made, NewJob, NewSource, Outcome, Store};
use resizer_core::request::Negotiated as JobOptions;
use uuid::Uuid;

/// The store of the running test's backend, and the temp dir that holds SQLite's files.
async fn open() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = match common::server::database_args().pop() {
        Some(url) => Store::open_postgres(&url, true).await.unwrap(),
        None => Store::open_sqlite(&dir.path().join("edgethumb.sqlite"))
            .await
            .unwrap(),
    };
    (store, dir)
}

/// Bytes that do not compress: a camera photo's worth of entropy, large enough to be a file
/// on SQLite.
fn noise(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn new_job(source: NewSource) -> NewJob {
    NewJob {
        id: Uuid::new_v4(),
        owner: None,
        options: JobOptions::default(),
        source,
        requested_component: None,
        callback_url: None,
        url_key: None,
    }
}

fn made(result: &Bytes, dedup_key: &str) -> Made {
    Made {
        result: result.clone(),
        result_hash: sha256_hex(result),
        format: resizer_core::OutputFormat::Png,
        width: 100,
        height: 67,
        source_format: "jpeg".into(),
        source_width: 4000,
        source_height: 2667,
        component_digest: "c".repeat(64),
        dedup_key: dedup_key.into(),
    }
}

/// Runs the oldest queued job to success with `result`.
async fn run_to_success(store: &Store, result: &Bytes, key: &str) -> Uuid {
    let claimed = store
        .claim(Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a queued job");
    let done = store
        .complete(
            claimed.job.id,
            claimed.token,
            &Outcome::Succeeded(made(result, key)),
        )
        .await
        .unwrap()
        .expect("the claim holds");
    assert_eq!(done.status, JobStatus::Succeeded);
    done.id
}

/// Upload, dedup copy and replay of one source: one stored copy with three references, gone
/// with the last job that uses it.
async fn a_source_is_stored_once_and_deleted_with_its_last_job() {
    let (store, dir) = open().await;
    let source = noise(1 << 20, 7);
    let hash = sha256_hex(&source);
    let upload = store
        .insert(new_job(NewSource::Upload {
            hash: hash.clone(),
            bytes: source.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(upload.source_hash.as_deref(), Some(hash.as_str()));
    let result = noise(5000, 9);
    run_to_success(&store, &result, "key-1").await;

    let copy = store
        .insert_copy(Uuid::new_v4(), None, "key-1", None)
        .await
        .unwrap()
        .expect("an equal finished job");
    assert_eq!(copy.status, JobStatus::Succeeded);
    assert_eq!(copy.deduplicated_from, Some(upload.id));
    assert!(
        store
            .insert_copy(Uuid::new_v4(), Some("someone-else"), "key-1", None)
            .await
            .unwrap()
            .is_none(),
        "dedup never crosses owners"
    );
    let replay = store
        .insert(new_job(NewSource::Stored {
            hash: hash.clone(),
            size: source.len() as u64,
        }))
        .await
        .unwrap();

    let info = store
        .blob_info(&hash)
        .await
        .unwrap()
        .expect("the source is stored");
    assert_eq!(
        info.refs, 3,
        "upload, dedup copy and replay each hold a reference: {info:?}"
    );
    assert_eq!(info.size, source.len() as u64);
    if store.kind() == edgethumb::store::Kind::Sqlite {
        assert!(info.in_file);
        assert_eq!(
            common::blob_files(dir.path()),
            1,
            "one file for the source (the result is inline)"
        );
    }
    assert_eq!(store.blob(&hash).await.unwrap().as_deref(), Some(&source[..]));
    let result_info = store.blob_info(&sha256_hex(&result)).await.unwrap().unwrap();
    assert_eq!(result_info.refs, 2, "the copy shares the original's result");

    assert_eq!(store.delete(replay.id, None).await.unwrap(), Deleted::Cancelled);
    let cancelled = store
        .get(replay.id, None)
        .await
        .unwrap()
        .expect("a cancelled job stays");
    assert_eq!(cancelled.status, edgethumb::store::JobStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());
    assert_eq!(store.delete(replay.id, None).await.unwrap(), Deleted::Removed);
    assert_eq!(store.delete(upload.id, None).await.unwrap(), Deleted::Removed);
    assert_eq!(store.blob_info(&hash).await.unwrap().map(|i| i.refs), Some(1));
    assert_eq!(store.blob(&hash).await.unwrap().as_deref(), Some(&source[..]));
    assert_eq!(store.delete(copy.id, None).await.unwrap(), Deleted::Removed);
    assert_eq!(
        store.blob_info(&hash).await.unwrap(),
        None,
        "gone with its last job"
    );
    assert_eq!(store.blob_info(&sha256_hex(&result)).await.unwrap(), None);
    assert_eq!(store.blob(&hash).await.unwrap(), None);
    assert_eq!(common::blob_files(dir.path()), 0, "and its file too");
    // A replay of a source that is gone is refused, not queued without a source.
    let orphan = store
        .insert(new_job(NewSource::Stored {
            hash,
            size: source.len() as u64,
        }))
        .await;
    assert!(orphan.is_err(), "{orphan:?}");
}

/// A claim holds the job against other claims; completion needs the claim's token; a lease
/// that runs out gives the job to the next claim, and the old token no longer completes it.
async fn claims_leases_and_completion_are_guarded() {
    let (store, _dir) = open().await;
    let small = Bytes::from_static(b"small source");
    let job = store
        .insert(new_job(NewSource::Upload {
            hash: sha256_hex(&small),
            bytes: small.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(store.count_queued().await.unwrap(), 1);
    let first = store.claim(Duration::from_millis(300)).await.unwrap().unwrap();
    assert_eq!((first.job.id, first.job.attempts), (job.id, 1));
    assert!(
        store.claim(Duration::from_secs(30)).await.unwrap().is_none(),
        "claimed once"
    );
    assert!(
        store
            .heartbeat(job.id, first.token, Duration::from_millis(300))
            .await
            .unwrap()
    );

    // Let the lease run out (polling, with a deadline): the next claim takes the job over.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        if let Some(c) = store.claim(Duration::from_secs(30)).await.unwrap() {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((second.job.id, second.job.attempts), (job.id, 2));
    let failed = Outcome::Failed {
        code: Code::MalformedImage,
        message: "truncated".into(),
        component_digest: None,
    };
    assert!(
        store
            .complete(job.id, first.token, &failed)
            .await
            .unwrap()
            .is_none(),
        "stale token"
    );
    assert!(
        !store
            .heartbeat(job.id, first.token, Duration::from_secs(1))
            .await
            .unwrap()
    );
    let done = store
        .complete(job.id, second.token, &failed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.error_code, Some(Code::MalformedImage));
    let read = store.get(job.id, None).await.unwrap().unwrap();
    assert_eq!(read, done, "what complete returns is what is stored");
    assert_eq!(
        store.delete(job.id, Some("another key")).await.unwrap(),
        Deleted::NotFound
    );
}

/// Expiry deletes finished jobs and the blobs only they used; queued jobs stay.
async fn sweeping_expired_jobs_frees_their_blobs() {
    let (store, _dir) = open().await;
    let a = noise(200_000, 1);
    let b = noise(300, 2);
    let upload = |bytes: &Bytes| {
        new_job(NewSource::Upload {
            hash: sha256_hex(bytes),
            bytes: bytes.clone(),
        })
    };
    // The job of `a` runs, the job of `b` stays queued: `b` is queued only after the claim,
    // as two jobs queued in the same millisecond may be claimed in either order.
    store.insert(upload(&a)).await.unwrap();
    let finished = run_to_success(&store, &noise(100, 3), "k").await;
    store.insert(upload(&b)).await.unwrap();
    assert_eq!(
        store.sweep(Duration::from_secs(3600)).await.unwrap(),
        0,
        "not expired yet"
    );
    // Expired once the clock has moved past its finish (polled, with a deadline).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.sweep(Duration::ZERO).await.unwrap() {
            0 => assert!(std::time::Instant::now() < deadline, "never expired"),
            n => break assert_eq!(n, 1),
        }
        tokio::task::yield_now().await;
    }
    assert!(store.get(finished, None).await.unwrap().is_none());
    assert_eq!(store.blob_info(&sha256_hex(&a)).await.unwrap(), None);
    assert_eq!(
        store.blob_info(&sha256_hex(&b)).await.unwrap().map(|i| i.refs),
        Some(1)
    );
    assert_eq!(store.count_queued().await.unwrap(), 1);
}

/// A database from before content-addressed blobs keeps every source and result: they move
/// from the old per-job `job_data` rows into the blob store when the store opens.
async fn blobs_of_an_older_database_are_adopted_on_open() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgethumb.sqlite");
    drop(Store::open_sqlite(&path).await.unwrap());
    let source = noise(100_000, 5);
    let result = noise(2_000, 6);
    let (source_hash, result_hash) = (sha256_hex(&source), sha256_hex(&result));
    let id = Uuid::new_v4();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO jobs (id, owner, status, created_at, finished_at, attempts, options, source_hash,
            source_bytes, result_bytes, result_width, result_height, result_etag)
         VALUES ($1, '', 'succeeded', 1, 2, 1, $2, $3, $4, $5, 100, 67, $6)",
    )
    .bind(id.to_string())
    .bind(serde_json::to_string(&JobOptions::default()).unwrap())
    .bind(&source_hash)
    .bind(source.len() as i64)
    .bind(result.len() as i64)
    .bind(&result_hash)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("INSERT INTO job_data (job_id, source, result) VALUES ($1, $2, $3)")
        .bind(id.to_string())
        .bind(&source[..])
        .bind(&result[..])
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let store = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(
        store.blob(&source_hash).await.unwrap().as_deref(),
        Some(&source[..])
    );
    assert_eq!(
        store.blob(&result_hash).await.unwrap().as_deref(),
        Some(&result[..])
    );
    assert_eq!(
        store
            .blob_info(&source_hash)
            .await
            .unwrap()
            .map(|i| (i.refs, i.in_file)),
        Some((1, true))
    );
    assert_eq!(store.delete(id, None).await.unwrap(), Deleted::Removed);
    assert_eq!(store.blob_info(&source_hash).await.unwrap(), None);
    assert_eq!(store.blob_info(&result_hash).await.unwrap(), None);
}

on_backend!(
    sqlite_only,
    Sqlite,
    blobs_of_an_older_database_are_adopted_on_open
);

both_backends!(
    a_source_is_stored_once_and_deleted_with_its_last_job,
    claims_leases_and_completion_are_guarded,
    sweeping_expired_jobs_frees_their_blobs,
);
