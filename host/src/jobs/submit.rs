//! The one submission path. Every job is built here, whatever it came from (an upload, a URL,
//! the synchronous endpoint, a replay): here it is checked against the queue limit, answered
//! from an equal finished job when there is one (dedup), and owned by the submitting key.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{Finished, Jobs, JobsError};
use crate::digest::sha256_hex;
use crate::outbound::{Revalidated, Validators};
use crate::store::{Job, NewJob, NewSource, StoreError, now_ms};
use resizer_core::request::Negotiated;

/// Where a submission's image comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Bytes sent with the request (their format already sniffed).
    Upload(Bytes),
    /// A URL the worker fetches (scheme checked; the SSRF guard runs at fetch time).
    Url(String),
    /// The source and options of an earlier job of the same owner.
    Replay(Uuid),
}

/// A job to submit.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The API key's fingerprint, or `None` when keys are not in use.
    pub owner: Option<String>,
    pub source: Source,
    /// Ignored for a replay, which keeps the original's.
    pub options: Negotiated,
    /// For a replay, `None` keeps the original's.
    pub callback_url: Option<String>,
    /// Run on this component rather than the active one (replays).
    pub component: Option<String>,
    /// The caller will wait for the result (the synchronous endpoint).
    pub wait: bool,
}

/// An accepted submission.
#[derive(Debug)]
pub struct Submitted {
    pub job: Job,
    /// With `wait`: where the finished job arrives if this host runs it.
    waiter: Option<oneshot::Receiver<Finished>>,
}

/// Identifies equal work: the same source, the same options, the same component.
pub fn dedup_key(source_hash: &str, options: &Negotiated, component: &str) -> String {
    let (request, accepts) = (options.request.canonical_query(), options.accepts);
    let accepts = format!("webp={}&avif={}", accepts.webp, accepts.avif);
    sha256_hex(format!("{source_hash}|{request}|{accepts}|{component}").as_bytes())
}

/// Identifies a URL result cache entry: the same URL, options and component.
pub fn url_key(url: &str, options: &Negotiated, component: &str) -> String {
    dedup_key(&format!("url:{url}"), options, component)
}

/// What the stored results make of a submission.
enum Cached {
    /// A stored result answers it.
    Hit(Box<Job>),
    /// The origin served a new version while being revalidated: the job needs no fetch.
    Changed(NewSource),
    Miss,
}

impl Cached {
    /// A copy of a stored job, if the store could make one.
    fn copied(job: Option<Job>) -> Cached {
        job.map_or(Cached::Miss, |job| Cached::Hit(Box::new(job)))
    }
}

impl Jobs {
    /// Builds, checks and queues a job (or answers it from an equal finished one).
    pub async fn submit(&self, sub: Submission) -> Result<Submitted, JobsError> {
        if self.shutdown.is_cancelled() {
            return Err(JobsError::ShuttingDown);
        }
        let Submission {
            owner,
            source,
            mut options,
            mut callback_url,
            component,
            wait,
        } = sub;
        if let Some(digest) = &component {
            self.components.record(digest).await?;
        }
        // Dedup hits create deliveries at almost no cost, so the cap comes before them.
        if callback_url.is_some() {
            let pending = self.store.pending_webhooks(owner.as_deref()).await?;
            if pending >= self.config.max_pending_webhooks {
                return Err(JobsError::TooManyWebhooks(pending));
            }
        }
        let source = match source {
            Source::Upload(bytes) => {
                let hash = super::hash(&bytes).await;
                NewSource::Upload { hash, bytes }
            }
            Source::Url(url) => NewSource::Url(url),
            Source::Replay(of) => {
                let original = self
                    .store
                    .get(of, owner.as_deref())
                    .await?
                    .ok_or(JobsError::NotFound(of))?;
                options = original.options;
                callback_url = callback_url.or(original.callback_url);
                match (original.source_hash, original.source_url) {
                    (Some(hash), _) => NewSource::Stored {
                        hash,
                        size: original.source_bytes,
                    },
                    (None, Some(url)) => NewSource::Url(url),
                    (None, None) => return Err(JobsError::NotFound(of)),
                }
            }
        };
        let id = Uuid::new_v4();
        let digest = match &component {
            Some(d) => d.clone(),
            None => self.components.active().digest().to_string(),
        };
        let (cached, url_cache_key) = self
            .stored_answer(
                id,
                owner.as_deref(),
                &source,
                &options,
                &digest,
                callback_url.as_deref(),
            )
            .await?;
        let source = match cached {
            Cached::Hit(job) => {
                tracing::info!(job_id = %job.id, from = ?job.deduplicated_from, "answered from a stored result");
                metrics::counter!(crate::telemetry::JOBS_SUBMITTED).increment(1);
                let _ = self.finished.send(job.id);
                return Ok(Submitted {
                    job: *job,
                    waiter: None,
                });
            }
            Cached::Changed(fetched) => fetched,
            Cached::Miss => source,
        };
        let queued = self.store.count_queued().await?;
        if queued >= self.config.max_queue {
            return Err(JobsError::QueueFull(queued));
        }
        if let NewSource::Upload { bytes, .. } | NewSource::Fetched { bytes, .. } = &source {
            self.handoff.offer_source(id, bytes);
        }
        let waiter = wait.then(|| self.handoff.wait_for(id));
        let new = NewJob {
            id,
            owner,
            options,
            source,
            requested_component: component,
            callback_url,
            url_key: url_cache_key,
        };
        // The count above is a cheap early refusal; the insert checks the limit again, in
        // the same transaction, so concurrent submissions cannot overshoot it.
        let inserted = match self.store.insert_within(new, self.config.max_queue).await {
            Ok(Ok(job)) => Ok(job),
            Ok(Err(queued)) => Err(JobsError::QueueFull(queued)),
            Err(StoreError::BlobMissing(_)) => Err(JobsError::NotFound(id)),
            Err(e) => Err(e.into()),
        };
        let job = match inserted {
            Ok(job) => job,
            Err(e) => {
                self.handoff.take_source(id);
                self.handoff.forget(id);
                return Err(e);
            }
        };
        tracing::info!(job_id = %job.id, bytes = job.source_bytes, "job queued");
        metrics::counter!(crate::telemetry::JOBS_SUBMITTED).increment(1);
        self.wake.notify_one();
        Ok(Submitted { job, waiter })
    }

    /// Waits up to `timeout` for a submitted job to finish: handed over in memory when this
    /// host runs it, read from the store when another host does. `Ok(None)` when time ran out.
    pub async fn wait_result(
        &self,
        submitted: Submitted,
        owner: Option<&str>,
        timeout: Duration,
    ) -> Result<Option<Finished>, JobsError> {
        let Submitted { job, waiter } = submitted;
        let id = job.id;
        if job.status.is_finished() {
            return self.finished_from_store(job).await.map(Some);
        }
        // The worker's hand-over; if it cannot come (another host runs the job), the store.
        let handed = async move {
            match waiter {
                Some(rx) => match rx.await {
                    Ok(done) => done,
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            biased;
            done = handed => Ok(Some(done)),
            polled = self.poll(id, owner, timeout) => match polled {
                Ok(job) if job.status.is_finished() => self.finished_from_store(job).await.map(Some),
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            },
        };
        self.handoff.forget(id);
        outcome
    }

    /// A finished job with its thumbnail read from the store.
    async fn finished_from_store(&self, job: Job) -> Result<Finished, JobsError> {
        let result = match &job.result_hash {
            Some(hash) => Some(self.store.blob(hash).await?.ok_or(JobsError::NotFound(job.id))?),
            None => None,
        };
        Ok(Finished { job, result })
    }
}

impl Jobs {
    /// A finished job that answers this submission: an equal one (dedup) for a stored source,
    /// or the URL result cache's for a URL, with the key the new job is filed under there.
    async fn stored_answer(
        &self,
        id: Uuid,
        owner: Option<&str>,
        source: &NewSource,
        options: &Negotiated,
        digest: &str,
        callback_url: Option<&str>,
    ) -> Result<(Cached, Option<String>), JobsError> {
        // What a URL serves can change, so URL jobs are never deduplicated by their URL alone:
        // they go through the URL result cache, with its TTL and revalidation.
        Ok(match source {
            NewSource::Upload { hash, .. } | NewSource::Stored { hash, .. } => {
                let key = dedup_key(hash, options, digest);
                let hit = self.store.insert_copy(id, owner, &key, callback_url).await?;
                if hit.is_some() {
                    metrics::counter!(crate::telemetry::DEDUP_HITS).increment(1);
                }
                (Cached::copied(hit), None)
            }
            NewSource::Url(url) if !self.config.url_cache_ttl.is_zero() => {
                let key = url_key(url, options, digest);
                let cached = self.url_cache(id, owner, url, &key, callback_url).await?;
                (cached, Some(key))
            }
            _ => (Cached::Miss, None),
        })
    }

    /// The URL result cache: a stored result of the same URL, options and owner whose source
    /// was fetched within the TTL answers without contacting the origin. An older one is
    /// revalidated with the origin's validators: a 304 renews it; a new version comes back
    /// as the job's source, so it is not fetched twice. Anything else (no validators, an
    /// origin that fails) is a miss, and the job fetches as any URL job does.
    async fn url_cache(
        &self,
        id: Uuid,
        owner: Option<&str>,
        url: &str,
        key: &str,
        callback_url: Option<&str>,
    ) -> Result<Cached, JobsError> {
        let Some(stored) = self.store.find_url_result(owner, key).await? else {
            return Ok(Cached::Miss);
        };
        let age = Duration::from_millis(now_ms().saturating_sub(stored.fetched_at).max(0) as u64);
        let copy = |fetched_at| self.store.copy(id, owner, stored.id, callback_url, fetched_at);
        if age < self.config.url_cache_ttl {
            metrics::counter!(crate::telemetry::URL_CACHE, "outcome" => "fresh").increment(1);
            return Ok(Cached::copied(copy(None).await?));
        }
        let since = Validators {
            etag: stored.etag.clone(),
            last_modified: stored.last_modified.clone(),
        };
        if since.is_empty() {
            return Ok(Cached::Miss);
        }
        match self.config.fetch.fetch_image_if(url, &since).await {
            Ok(Revalidated::NotModified) => {
                metrics::counter!(crate::telemetry::URL_CACHE, "outcome" => "revalidated").increment(1);
                Ok(Cached::copied(copy(Some(now_ms())).await?))
            }
            Ok(Revalidated::Changed(fetched)) => {
                metrics::counter!(crate::telemetry::URL_CACHE, "outcome" => "changed").increment(1);
                let bytes = Bytes::from(fetched.body);
                Ok(Cached::Changed(NewSource::Fetched {
                    url: url.to_string(),
                    hash: super::hash(&bytes).await,
                    bytes,
                    etag: fetched.validators.etag,
                    last_modified: fetched.validators.last_modified,
                }))
            }
            Err(e) => {
                tracing::info!(error = %e, "revalidating a stored URL result failed; the job fetches it");
                Ok(Cached::Miss)
            }
        }
    }
}
