//! Background tasks under watch. Every long-running task (workers, sweeper, webhooks,
//! component sync, directory watch, notifications) runs until shutdown; one that ends before
//! then, or panics, is logged with its cause and recorded, and readiness reports it, so
//! nothing fails silently.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The running tasks and the ones that died.
pub struct Supervisor {
    shutdown: CancellationToken,
    handles: Mutex<Vec<JoinHandle<()>>>,
    /// `"name: what happened"` for each task that ended before shutdown.
    failed: Arc<Mutex<Vec<String>>>,
}

impl Supervisor {
    pub fn new(shutdown: CancellationToken) -> Supervisor {
        Supervisor {
            shutdown,
            handles: Mutex::default(),
            failed: Arc::default(),
        }
    }

    /// Runs `task`, which should run until shutdown, and records it if it does not.
    pub fn spawn(&self, name: impl Into<String>, task: impl Future<Output = ()> + Send + 'static) {
        let name = name.into();
        let (shutdown, failed) = (self.shutdown.clone(), self.failed.clone());
        let handle = tokio::spawn(async move {
            let ended = AssertUnwindSafe(task).catch_unwind().await;
            let what = match ended {
                Ok(()) if shutdown.is_cancelled() => return,
                Ok(()) => "stopped".to_string(),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    format!("panicked: {message}")
                }
            };
            tracing::error!(task = %name, "background task {what}; the host is not ready");
            failed
                .lock()
                .expect("supervisor lock")
                .push(format!("{name}: {what}"));
        });
        self.handles.lock().expect("supervisor lock").push(handle);
    }

    /// Tasks that ended before shutdown.
    pub fn failures(&self) -> Vec<String> {
        self.failed.lock().expect("supervisor lock").clone()
    }

    /// Waits up to `grace` for every task to end; true if they all did.
    pub async fn drain(&self, grace: Duration) -> bool {
        let handles = std::mem::take(&mut *self.handles.lock().expect("supervisor lock"));
        tokio::time::timeout(grace, futures::future::join_all(handles))
            .await
            .is_ok()
    }
}
