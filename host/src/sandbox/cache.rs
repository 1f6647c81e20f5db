//! On-disk cache of compiled components, so a restart loads machine code in a millisecond
//! instead of compiling for a second.
//!
//! Keyed by the component's sha256 and the engine's compatibility hash (which covers the
//! wasmtime version, the engine settings and the target), so a stale artefact is never even
//! opened. Files are written under
//! a temporary name and renamed into place, because wasmtime maps them into memory: an
//! artefact is never overwritten in place. The directory must be trusted: wasmtime runs the
//! machine code it finds there.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components live, or nowhere.
#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl CompileCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        CompileCache {
            dir,
            engine_key: format!("{:016x}", h.finish()),
        }
    }

    fn path_for(&self, digest: &str) -> Option<PathBuf> {
        Some(
            self.dir
                .as_ref()?
                .join(format!("{digest}-{}.cwasm", self.engine_key)),
        )
    }

    /// A compiled component for `wasm`: from the cache when present and loadable, otherwise
    /// compiled now and stored for next time. Cache trouble is logged, never fatal.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        if let Some(path) = self.path_for(digest)
            && path.exists()
        {
            // SAFETY: the file was written by this cache, for this engine configuration (its
            // name carries the compatibility hash); wasmtime still checks the header.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unusable compiled component; recompiling")
                }
            }
        }
        let compiled = engine.precompile_component(wasm)?;
        // SAFETY: these bytes were produced just now by this engine.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        if let Some(path) = self.path_for(digest)
            && let Err(e) = write_atomically(&path, &compiled)
        {
            tracing::warn!(path = %path.display(), error = %e, "could not cache the compiled component");
        }
        Ok((component, false))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile_name(path);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn tempfile_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".tmp{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    path.with_file_name(name)
}
