//! The service assembled: open the store, load the component, start workers and the sweeper,
//! bind the listener, serve until a shutdown signal, then drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::api::AppState;
use crate::config::{Database, ServeConfig};
use crate::jobs::{Jobs, webhooks, worker};
use crate::sandbox::Sandbox;
use crate::sandbox::registry::Registry;
use crate::store::{ComponentStore, Kind, Store};
use crate::supervise::Supervisor;

/// A built, bound, not yet serving application.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    pub async fn build(config: ServeConfig) -> anyhow::Result<App> {
        // Installed before anything is counted.
        crate::telemetry::handle();
        let store = Arc::new(match &config.database {
            Database::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                }
                Store::open_sqlite(path)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?
            }
            Database::Postgres { url, notify } => Store::open_postgres(url, *notify)
                .await
                .context("connecting to PostgreSQL")?,
        });
        let sandbox = Sandbox::new(config.sandbox.clone())?;
        let initial = match &config.component {
            Some(path) => Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?),
            None => None,
        };
        let components = Registry::open(sandbox, store.clone() as Arc<dyn ComponentStore>, initial)
            .await
            .context("setting up the component registry")?;
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {}", config.bind))?;
        let shutdown = CancellationToken::new();
        let state = AppState {
            tasks: Arc::new(Supervisor::new(shutdown.clone())),
            uploads: Arc::new(tokio::sync::Semaphore::new(config.max_uploads)),
            jobs: Jobs::new(store, components, Arc::new(config), shutdown),
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
        start_tasks(&state);
        let token = state.jobs.shutdown.clone();
        tokio::spawn(async move {
            signal.await;
            tracing::info!("shutting down: no new requests or jobs; finishing running jobs");
            token.cancel();
        });
        let router = crate::api::router(state.clone());
        let token = state.jobs.shutdown.clone();
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await?;
        // Running jobs end within the sandbox deadline; give them that and a little more.
        let grace = state.jobs.config.sandbox.deadline + Duration::from_secs(5);
        if !state.tasks.drain(grace).await {
            tracing::warn!(
                "workers did not stop in {grace:?}; their leases will return the jobs to the queue"
            );
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Starts the background tasks under the supervisor.
fn start_tasks(state: &AppState) {
    let (jobs, tasks) = (&state.jobs, &state.tasks);
    for n in 0..jobs.config.workers {
        tasks.spawn(format!("worker {n}"), worker::run(jobs.clone(), n));
    }
    tasks.spawn("sweeper", worker::sweeper(jobs.clone()));
    tasks.spawn("metrics upkeep", crate::telemetry::upkeep(jobs.shutdown.clone()));
    tasks.spawn("webhooks", webhooks::deliver(jobs.clone()));
    tasks.spawn(
        "component sync",
        jobs.components.clone().follow(
            jobs.config.component_sync,
            jobs.components_changed.clone(),
            jobs.shutdown.clone(),
        ),
    );
    if jobs.store.kind() == Kind::Postgres {
        let (store, wakers, token) = (jobs.store.clone(), jobs.wakers(), jobs.shutdown.clone());
        tasks.spawn("notifications", async move { store.watch(wakers, token).await });
    }
    if let Some(dir) = jobs.config.component_dir.clone() {
        tasks.spawn(
            "component directory",
            jobs.components
                .clone()
                .watch_dir(dir, Duration::from_secs(2), jobs.shutdown.clone()),
        );
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
