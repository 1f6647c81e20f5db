//! The component registry: every resizer component the deployment knows (persisted with the
//! jobs, so all hosts sharing a database see the same set), which one is active, and the
//! compiled, pre-instantiated [`Resizer`] for each one this host has used.
//!
//! Activation is atomic: the database records it, then this host swaps its active handle;
//! jobs already running keep the handle they started with. Other hosts notice within their
//! poll interval ([`Registry::sync`]). A component is validated (including the canary run)
//! before it is stored, so nothing invalid can ever become active.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::validate::{CanaryReport, ValidationError, validate};
use super::{BUILTIN_COMPONENT, Resizer, Sandbox, SandboxError, sha256_hex};
use crate::store::{ComponentRecord, ComponentStore, StoreError, now_ms};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("no component with digest {0}")]
    NotFound(String),
    #[error("component {0} is active; activate another one before deleting it")]
    Active(String),
    #[error("there is no earlier active component to roll back to")]
    NothingToRollBack,
    /// A stored component could not be loaded (e.g. a newer host wrote it).
    #[error("component {digest} cannot be loaded on this host: {source}")]
    Load { digest: String, source: SandboxError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Components known to this host.
pub struct Registry {
    sandbox: Sandbox,
    store: Arc<dyn ComponentStore>,
    loaded: Mutex<HashMap<String, Resizer>>,
    active: RwLock<Resizer>,
}

fn record(resizer: &Resizer, origin: &str) -> ComponentRecord {
    ComponentRecord {
        digest: resizer.digest().to_string(),
        wit_version: resizer.wit_version().to_string(),
        size: resizer.size(),
        uploaded_at: now_ms(),
        origin: origin.to_string(),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("sandbox tasks do not panic")
}

impl Registry {
    /// The sandbox every component here runs in.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Registers the built-in component (and `initial`, from `--component`, validated and
    /// activated), activates the built-in one if nothing ever was, and loads the active one.
    pub async fn open(
        sandbox: Sandbox,
        store: Arc<dyn ComponentStore>,
        initial: Option<Vec<u8>>,
    ) -> Result<Arc<Registry>, RegistryError> {
        let sb = sandbox.clone();
        let builtin = blocking(move || sb.load_builtin())
            .await
            .map_err(|source| RegistryError::Load {
                digest: sha256_hex(BUILTIN_COMPONENT),
                source,
            })?;
        store
            .put_component(&record(&builtin, "builtin"), BUILTIN_COMPONENT)
            .await?;
        let registry = Arc::new(Registry {
            sandbox,
            store,
            loaded: Mutex::new(HashMap::from([(builtin.digest().to_string(), builtin.clone())])),
            active: RwLock::new(builtin.clone()),
        });
        if let Some(wasm) = initial {
            let (record, _, _) = registry.upload(wasm, "file").await?;
            if registry.store.active_component().await?.as_deref() != Some(record.digest.as_str()) {
                registry.activate(&record.digest).await?;
            }
        }
        let active = registry.store.active_component().await?;
        let active_origin = match &active {
            Some(d) => registry.store.component(d).await?.map(|r| r.origin),
            None => None,
        };
        // A host whose built-in component is newer than an active built-in one upgrades it;
        // a component an operator chose stays active until they choose another.
        if active_origin.as_deref() == Some("builtin") && active.as_deref() != Some(builtin.digest()) {
            registry.activate(builtin.digest()).await?;
        }
        match registry.store.active_component().await? {
            Some(digest) => {
                let resizer = registry.get(&digest).await?;
                *registry.active.write().unwrap() = resizer;
            }
            None => registry.store.activate(builtin.digest()).await?,
        }
        Ok(registry)
    }

    /// The component new jobs run on.
    pub fn active(&self) -> Resizer {
        self.active.read().unwrap().clone()
    }

    /// A registered component, compiled on first use.
    pub async fn get(&self, digest: &str) -> Result<Resizer, RegistryError> {
        if let Some(r) = self.loaded.lock().unwrap().get(digest) {
            return Ok(r.clone());
        }
        let wasm = self
            .store
            .component_wasm(digest)
            .await?
            .ok_or_else(|| RegistryError::NotFound(digest.to_string()))?;
        let sandbox = self.sandbox.clone();
        let resizer = blocking(move || sandbox.load(&wasm))
            .await
            .map_err(|source| RegistryError::Load {
                digest: digest.to_string(),
                source,
            })?;
        self.loaded
            .lock()
            .unwrap()
            .insert(digest.to_string(), resizer.clone());
        Ok(resizer)
    }

    /// Validates and stores a component without activating it. Returns its record, the canary
    /// report, and whether it was new.
    pub async fn upload(
        &self,
        wasm: Vec<u8>,
        origin: &str,
    ) -> Result<(ComponentRecord, CanaryReport, bool), RegistryError> {
        let sandbox = self.sandbox.clone();
        let (wasm, validated) = blocking(move || {
            let v = validate(&sandbox, &wasm);
            (wasm, v)
        })
        .await;
        let (resizer, report) = validated?;
        let record = record(&resizer, origin);
        let new = self.store.put_component(&record, &wasm).await?;
        self.loaded.lock().unwrap().insert(record.digest.clone(), resizer);
        let stored = self.store.component(&record.digest).await?.unwrap_or(record);
        tracing::info!(digest = %stored.digest, new, canary_ms = report.total_ms, "component validated and stored");
        Ok((stored, report, new))
    }

    /// Makes a registered component the active one, here at once and on other hosts at their
    /// next sync.
    pub async fn activate(&self, digest: &str) -> Result<ComponentRecord, RegistryError> {
        let record = self
            .store
            .component(digest)
            .await?
            .ok_or_else(|| RegistryError::NotFound(digest.to_string()))?;
        let resizer = self.get(digest).await?;
        self.store.activate(digest).await?;
        *self.active.write().unwrap() = resizer;
        tracing::info!(%digest, "component activated");
        Ok(record)
    }

    /// Re-activates the previously active component.
    pub async fn rollback(&self) -> Result<ComponentRecord, RegistryError> {
        let digest = self
            .store
            .rollback()
            .await?
            .ok_or(RegistryError::NothingToRollBack)?;
        let resizer = self.get(&digest).await?;
        *self.active.write().unwrap() = resizer;
        tracing::info!(%digest, "rolled back");
        self.store
            .component(&digest)
            .await?
            .ok_or(RegistryError::NotFound(digest))
    }

    /// Deletes a component that is not active.
    pub async fn delete(&self, digest: &str) -> Result<(), RegistryError> {
        if self.store.component(digest).await?.is_none() {
            return Err(RegistryError::NotFound(digest.to_string()));
        }
        if !self.store.delete_component(digest).await? {
            return Err(RegistryError::Active(digest.to_string()));
        }
        self.loaded.lock().unwrap().remove(digest);
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<ComponentRecord>, RegistryError> {
        Ok(self.store.components().await?)
    }

    pub async fn record(&self, digest: &str) -> Result<ComponentRecord, RegistryError> {
        self.store
            .component(digest)
            .await?
            .ok_or_else(|| RegistryError::NotFound(digest.to_string()))
    }

    pub async fn wasm(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        self.store
            .component_wasm(digest)
            .await?
            .ok_or_else(|| RegistryError::NotFound(digest.to_string()))
    }

    /// Adopts the active component recorded in the database, if another host changed it.
    pub async fn sync(&self) -> Result<(), RegistryError> {
        let Some(digest) = self.store.active_component().await? else {
            return Ok(());
        };
        if self.active().digest() != digest {
            let resizer = self.get(&digest).await?;
            *self.active.write().unwrap() = resizer;
            tracing::info!(%digest, "adopted the component activated elsewhere");
        }
        Ok(())
    }

    /// Follows the database's active component until shutdown: at once when `changed` is
    /// signalled (another host's activation, through the database's notifications), and every
    /// `every` in case a notification was lost.
    pub async fn follow(
        self: Arc<Self>,
        every: Duration,
        changed: Arc<tokio::sync::Notify>,
        shutdown: CancellationToken,
    ) {
        while !shutdown.is_cancelled() {
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e, "component sync failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = changed.notified() => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// Watches `dir` for `.wasm` files; a new file that validates is stored and activated.
    /// For edge nodes without the admin API. Invalid files are logged once and skipped.
    pub async fn watch_dir(self: Arc<Self>, dir: PathBuf, every: Duration, shutdown: CancellationToken) {
        let mut seen: HashSet<(PathBuf, SystemTime, u64)> = HashSet::new();
        while !shutdown.is_cancelled() {
            for (path, stamp) in wasm_files(&dir) {
                if seen.insert((path.clone(), stamp.0, stamp.1)) {
                    self.adopt_file(&path).await;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    async fn adopt_file(&self, path: &Path) {
        let wasm = match std::fs::read(path) {
            Ok(w) => w,
            Err(e) => return tracing::warn!(path = %path.display(), error = %e, "cannot read component file"),
        };
        let digest = sha256_hex(&wasm);
        if self.active().digest() == digest {
            return;
        }
        // Once adopted, a file is the operator's to roll back or delete: a restart, or the
        // file's timestamp changing, must not undo that.
        match self.store.was_adopted(&digest).await {
            Ok(false) => {}
            Ok(true) => {
                return tracing::info!(path = %path.display(), %digest, "component from directory was adopted before; leaving it as the operator left it");
            }
            Err(e) => {
                return tracing::warn!(path = %path.display(), error = %e, "cannot check the component file's history");
            }
        }
        let result = async {
            let (record, _, _) = self.upload(wasm, "directory").await?;
            let active = self.activate(&record.digest).await?;
            self.store.mark_adopted(&record.digest).await?;
            Ok::<_, RegistryError>(active)
        }
        .await;
        match result {
            Ok(r) => {
                tracing::info!(path = %path.display(), digest = %r.digest, "component from directory activated")
            }
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "component from directory refused"),
        }
    }
}

/// `.wasm` files in `dir` with their modification time and size, oldest first, so the newest
/// file dropped in is the one left active.
fn wasm_files(dir: &Path) -> Vec<(PathBuf, (SystemTime, u64))> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file().then(|| {
                (
                    e.path(),
                    (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()),
                )
            })
        })
        .collect();
    files.sort_by_key(|(_, (t, _))| *t);
    files
}
