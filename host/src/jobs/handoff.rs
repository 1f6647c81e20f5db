//! What this host hands from one side of the queue to the other in memory, with the job still
//! persisted: a submission's source to the worker that claims it (no read-back from the
//! store), and a finished thumbnail to the synchronous caller waiting for it. Either side may
//! be on another host (PostgreSQL); then the store is the way, and this is only a shortcut.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::store::Job;

/// Source bytes held for this host's workers at most, beyond which they read the store.
const SOURCE_BUDGET: usize = 256 << 20;
/// A source not claimed by then was taken by another host, or its job cancelled.
const SOURCE_KEEP: Duration = Duration::from_secs(120);

/// A finished job and, if it succeeded, its thumbnail.
#[derive(Debug)]
pub struct Finished {
    pub job: Job,
    pub result: Option<Bytes>,
}

#[derive(Default)]
pub(super) struct Handoff {
    sources: Mutex<Sources>,
    waiters: Mutex<HashMap<Uuid, oneshot::Sender<Finished>>>,
}

#[derive(Default)]
struct Sources {
    by_job: HashMap<Uuid, (Instant, Bytes)>,
    bytes: usize,
}

impl Handoff {
    /// Keeps a new job's source for this host's workers, if it fits the budget.
    pub(super) fn offer_source(&self, id: Uuid, source: &Bytes) {
        let mut s = self.sources.lock().expect("handoff lock");
        let now = Instant::now();
        let Sources { by_job, bytes } = &mut *s;
        by_job.retain(|_, (at, b)| {
            let keep = now.duration_since(*at) < SOURCE_KEEP;
            if !keep {
                *bytes -= b.len();
            }
            keep
        });
        if *bytes + source.len() <= SOURCE_BUDGET {
            *bytes += source.len();
            by_job.insert(id, (now, source.clone()));
        }
    }

    /// The source of a job this host submitted, if it is still held.
    pub(super) fn take_source(&self, id: Uuid) -> Option<Bytes> {
        let mut s = self.sources.lock().expect("handoff lock");
        let (_, bytes) = s.by_job.remove(&id)?;
        s.bytes -= bytes.len();
        Some(bytes)
    }

    /// Registers a caller waiting for job `id` to finish.
    pub(super) fn wait_for(&self, id: Uuid) -> oneshot::Receiver<Finished> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("handoff lock").insert(id, tx);
        rx
    }

    /// Gives up waiting for `id` (the caller timed out or went away).
    pub(super) fn forget(&self, id: Uuid) {
        self.waiters.lock().expect("handoff lock").remove(&id);
    }

    /// Hands a finished job to its waiting caller, if it has one on this host.
    pub(super) fn deliver(&self, finished: Finished) {
        let waiter = self
            .waiters
            .lock()
            .expect("handoff lock")
            .remove(&finished.job.id);
        if let Some(tx) = waiter {
            let _ = tx.send(finished);
        }
    }
}
