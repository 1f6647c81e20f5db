//! The service assembled: open the store, load the component, start workers and the sweeper,
//! bind the listener, serve until a shutdown signal, then drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{Database, ServeConfig};
use crate::queue::postgres::PgStore;
use crate::queue::sqlite::SqliteStore;
use crate::queue::{ComponentStore, JobStore, Wakers};
use crate::sandbox::Sandbox;
use crate::sandbox::registry::Registry;

/// What handlers and workers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn JobStore>,
    /// The components; `components.active()` runs new jobs.
    pub components: Arc<Registry>,
    pub config: Arc<ServeConfig>,
    /// Wakes an idle worker when a job is queued.
    pub wake: Arc<Notify>,
    /// Announces finished jobs to long-polls.
    pub finished: broadcast::Sender<Uuid>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Outbound HTTP policy (image URLs, webhooks).
    pub fetch: Arc<crate::fetch::FetchPolicy>,
    /// Signalled when another host changed the active component.
    pub components_changed: Arc<Notify>,
    /// Worker loops currently running, for /readyz.
    pub workers_alive: Arc<AtomicUsize>,
}

/// A built, bound, not yet serving application.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    pub async fn build(config: ServeConfig) -> anyhow::Result<App> {
        let (store, component_store): (Arc<dyn JobStore>, Arc<dyn ComponentStore>) = match &config.database {
            Database::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                }
                let s = Arc::new(
                    SqliteStore::open(path)
                        .await
                        .with_context(|| format!("opening {}", path.display()))?,
                );
                (s.clone(), s)
            }
            Database::Postgres { url, notify } => {
                let s = Arc::new(
                    PgStore::open(url, *notify)
                        .await
                        .context("connecting to PostgreSQL")?,
                );
                (s.clone(), s)
            }
        };
        let sandbox = Sandbox::new(config.sandbox.clone())?;
        let initial = match &config.component {
            Some(path) => Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?),
            None => None,
        };
        let components = Registry::open(sandbox, component_store, initial)
            .await
            .context("setting up the component registry")?;
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {}", config.bind))?;
        let (finished, _) = broadcast::channel(1024);
        let fetch = config.fetch.clone();
        let state = AppState {
            store,
            components,
            config: Arc::new(config),
            wake: Arc::new(Notify::new()),
            finished,
            shutdown: CancellationToken::new(),
            fetch: Arc::new(fetch),
            components_changed: Arc::new(Notify::new()),
            workers_alive: Arc::new(AtomicUsize::new(0)),
        };
        Ok(App { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then stops taking requests and jobs, lets running jobs
    /// finish (their leases would return them to the queue anyway), and returns.
    pub async fn run_until_stopped(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App { listener, state } = self;
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..state.config.workers {
            tasks.spawn(crate::worker::run(state.clone(), n));
        }
        tasks.spawn(crate::worker::sweeper(state.clone()));
        tasks.spawn(crate::webhook::deliver(state.clone()));
        tasks.spawn(state.components.clone().follow(
            state.config.component_sync,
            state.components_changed.clone(),
            state.shutdown.clone(),
        ));
        let wakers = Wakers {
            jobs: state.wake.clone(),
            finished: state.finished.clone(),
            components: state.components_changed.clone(),
        };
        let (store, token) = (state.store.clone(), state.shutdown.clone());
        tasks.spawn(async move { store.watch(wakers, token).await });
        if let Some(dir) = state.config.component_dir.clone() {
            tasks.spawn(state.components.clone().watch_dir(
                dir,
                Duration::from_secs(2),
                state.shutdown.clone(),
            ));
        }
        let token = state.shutdown.clone();
        tokio::spawn(async move {
            signal.await;
            tracing::info!("shutting down: no new requests or jobs; finishing running jobs");
            token.cancel();
        });
        let router = crate::api::router(state.clone());
        let token = state.shutdown.clone();
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await?;
        // Running jobs end within the sandbox deadline; give them that and a little more.
        let grace = state.config.sandbox.deadline + Duration::from_secs(5);
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!(
                "workers did not stop in {grace:?}; their leases will return the jobs to the queue"
            );
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
