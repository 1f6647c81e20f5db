//! The wasmtime sandbox that runs resizer components.
//!
//! One [`Sandbox`] per process owns the wasmtime `Engine`, the WASI linker and an epoch ticker.
//! [`Sandbox::load`] checks that bytes are a component exporting the `edgethumb:resizer` world,
//! compiles it once (through the on-disk [`cache`]) and pre-instantiates it into a [`Resizer`].
//! Every call on a [`Resizer`] gets a fresh `Store` and instance with:
//! - a memory cap, enforced by a `ResourceLimiter` that also records the peak;
//! - a deadline, enforced by epoch interruption (a ticker thread bumps the epoch) in wasm code
//!   and by a timeout on the WASI calls that can wait ([`waits`]);
//! - a WASI context that grants nothing: no preopened directories, no sockets, no environment,
//!   no arguments, stdin closed; stdout is discarded and stderr (where a guest panic writes) is
//!   captured into the trace.
//!
//! A trap, an out-of-memory or a deadline ends that one call with a typed [`SandboxError`];
//! the store is dropped and nothing of it outlives the call.

mod bindings;
mod budget;
mod cache;
pub mod registry;
pub mod validate;
mod waits;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use resizer_core::request::{Backend, Negotiated};
use resizer_core::{ImageInfo, Options, Thumbnail};
use wasmtime::component::{Instance, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use budget::default_budget;

use bindings::{
    error_from_wit, info_from_wit, options_to_wit, request_to_wit, thumbnail_from_v11, thumbnail_from_wit,
    v11, wit,
};
use budget::CallGate;
use cache::CompileCache;

use crate::codes::Code;

/// The resizer component built from this workspace, embedded so the binary needs no files.
pub const BUILTIN_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/resizer.wasm"));

/// Set to `1` to have wasmtime write a perf map of the compiled guest code (for `perf report`).
const PERF_MAP_ENV: &str = "EDGETHUMB_PERF_MAP";

/// How often the epoch advances; a deadline is accurate to about this much.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Guest memory beyond the pixel budget: the input bytes, the encoded output, allocator slack.
const MEMORY_SLACK_BYTES: u64 = 128 << 20;
/// wasm32 cannot address more.
const WASM32_MAX_MEMORY: u64 = 4 << 30;
/// Pool slots when nobody says otherwise: a few workers plus validation and probes.
pub const DEFAULT_CONCURRENT_CALLS: u32 = 16;
/// Per-component ceilings of the pool. A Rust wasm32-wasip2 component has one memory and a
/// handful of core instances (its module plus the canonical-ABI shims); these leave room for
/// other toolchains while keeping the reservation bounded. A component over them is refused
/// when it is loaded, with the pool's message.
const POOL_CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const POOL_MEMORIES_PER_COMPONENT: u32 = 4;
const POOL_TABLES_PER_COMPONENT: u32 = 16;
/// Linear memory a pool slot keeps resident between calls.
const KEEP_RESIDENT_BYTES: usize = 16 << 20;
/// Bytes of guest stderr kept for the log.
const STDERR_CAPTURE_BYTES: usize = 16 << 10;

/// The memory cap under which every image up to `max_pixels` can be thumbnailed.
pub fn default_memory_for(max_pixels: u64) -> u64 {
    max_pixels
        .saturating_mul(resizer_core::BYTES_PER_PIXEL_BUDGET)
        .saturating_add(MEMORY_SLACK_BYTES)
        .min(WASM32_MAX_MEMORY)
}

/// Limits and storage for the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Sources with more pixels are refused from their header.
    pub max_pixels: u64,
    /// Linear memory one call may grow to.
    pub max_memory_bytes: u64,
    /// Wall time one call may run; the guest is interrupted past it.
    pub deadline: Duration,
    /// Where compiled components are cached; `None` compiles on every start.
    pub cache_dir: Option<PathBuf>,
    /// Calls that may run at once (the pooling allocator's slots); more wait for a slot.
    pub max_concurrent_calls: u32,
    /// Guest memory all calls together may reserve; each reserves `max_memory_bytes`.
    pub memory_budget: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_pixels: resizer_core::DEFAULT_MAX_PIXELS,
            max_memory_bytes: default_memory_for(resizer_core::DEFAULT_MAX_PIXELS),
            deadline: Duration::from_secs(10),
            cache_dir: None,
            max_concurrent_calls: DEFAULT_CONCURRENT_CALLS,
            memory_budget: default_budget(default_memory_for(resizer_core::DEFAULT_MAX_PIXELS)),
        }
    }
}

/// Why loading or calling a component failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The bytes are not a WebAssembly component (garbage, or a core module).
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// A component, but wasmtime cannot compile it.
    #[error("the component does not compile: {0}")]
    Compile(String),
    /// It imports something the sandbox does not provide.
    #[error("the component needs imports the sandbox does not provide: {0}")]
    Imports(String),
    /// It does not export a compatible `edgethumb:resizer/resizer` interface.
    #[error("the component does not export edgethumb:resizer/resizer@1: {0}")]
    World(String),
    /// The call ran past the deadline and was interrupted.
    #[error("the component ran past its deadline of {0:?}")]
    Deadline(Duration),
    /// The call tried to grow memory past the cap.
    #[error("the component needed more than its memory cap of {cap} bytes")]
    MemoryLimit { cap: u64 },
    /// The component trapped (a bug or a crash in the image code).
    #[error("the component crashed: {0}")]
    Trap(String),
    /// The component ran fine and refused the input with a typed error.
    #[error(transparent)]
    Image(#[from] resizer_core::Error),
    /// The engine could not be set up.
    #[error("sandbox setup failed: {0}")]
    Engine(String),
}

impl SandboxError {
    /// The stable error code.
    pub fn code(&self) -> Code {
        match self {
            SandboxError::NotAComponent(_) => Code::NotAComponent,
            SandboxError::Compile(_) => Code::ComponentCompileFailed,
            SandboxError::Imports(_) => Code::ComponentImportsUnavailable,
            SandboxError::World(_) => Code::ComponentWorldMismatch,
            SandboxError::Deadline(_) => Code::DeadlineExceeded,
            SandboxError::MemoryLimit { .. } => Code::MemoryLimitExceeded,
            SandboxError::Trap(_) => Code::ComponentCrashed,
            SandboxError::Image(e) => e.code(),
            SandboxError::Engine(_) => Code::SandboxUnavailable,
        }
    }
}

/// Measurements of one call.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallStats {
    /// Creating the store and instance.
    pub instantiate: Duration,
    /// The whole call, instantiation included.
    pub total: Duration,
    /// The largest linear memory the instance reached.
    pub peak_memory_bytes: u64,
}

/// The process's wasmtime engine, linker and limits. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    engine: Engine,
    linker: Arc<Linker<GuestState>>,
    cache: CompileCache,
    /// Pool slots and the memory budget: a call holds both while its instance lives.
    gate: Arc<CallGate>,
    config: Arc<SandboxConfig>,
    _ticker: Arc<EpochTicker>,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        if config.memory_budget < config.max_memory_bytes {
            return Err(SandboxError::Engine(format!(
                "the memory budget ({} bytes) is smaller than one call's memory cap ({} bytes); \
                 raise --memory-budget or lower --max-memory",
                config.memory_budget, config.max_memory_bytes
            )));
        }
        let mut cfg = Config::new();
        // Epochs cost ~10% of guest speed, fuel ~20%; a deadline needs no finer accounting.
        cfg.epoch_interruption(true);
        cfg.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // `perf record` can name the guest's functions when wasmtime writes /tmp/perf-PID.map.
        if std::env::var_os(PERF_MAP_ENV).is_some_and(|v| v == "1") {
            cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        // The pooling allocator reserves every slot's address space once, so an instance per
        // call costs no mmap/munmap, and memories start from the component's copy-on-write
        // image. Only address space is reserved; pages are committed as a call touches them
        // and handed back when it ends.
        let slots = config.max_concurrent_calls.max(1);
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots * POOL_CORE_INSTANCES_PER_COMPONENT)
            .total_memories(slots * POOL_MEMORIES_PER_COMPONENT)
            .total_tables(slots * POOL_TABLES_PER_COMPONENT)
            .total_stacks(slots)
            .max_core_instances_per_component(POOL_CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(POOL_MEMORIES_PER_COMPONENT)
            .max_tables_per_component(POOL_TABLES_PER_COMPONENT)
            .max_memory_size(config.max_memory_bytes.min(WASM32_MAX_MEMORY) as usize);
        // Zeroing the first pages of a freed slot with memset is cheaper than faulting them
        // in again on the next call (~8% of a 12 MP JPEG job here, measured under Firecracker),
        // and a typical job stays within this much. Kept per used slot, so it costs
        // about this much resident memory per worker.
        pool.linear_memory_keep_resident(KEEP_RESIDENT_BYTES);
        cfg.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        // std for wasm32-wasip2 imports WASI even for pure computation; the context grants
        // nothing, so linking it gives the guest no capability.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| waits::bound_waits(&mut linker))
            .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let cache = CompileCache::new(&engine, config.cache_dir.clone());
        let ticker = EpochTicker::start(engine.clone());
        Ok(Sandbox {
            engine,
            linker: Arc::new(linker),
            cache,
            gate: Arc::new(CallGate::new(slots as usize, config.memory_budget)),
            config: Arc::new(config),
            _ticker: Arc::new(ticker),
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Guest memory reserved by the calls running now, in bytes.
    pub fn memory_in_use(&self) -> u64 {
        self.gate.in_use()
    }

    /// The host-wide guest memory budget, in bytes.
    pub fn memory_budget(&self) -> u64 {
        self.gate.budget()
    }

    /// Loads the component embedded in this binary.
    pub fn load_builtin(&self) -> Result<Resizer, SandboxError> {
        self.load(BUILTIN_COMPONENT)
    }

    /// Validates, compiles (or loads from cache) and pre-instantiates a component.
    pub fn load(&self, wasm: &[u8]) -> Result<Resizer, SandboxError> {
        check_component_header(wasm)?;
        let digest = sha256_hex(wasm);
        let started = Instant::now();
        let (component, from_cache) = self
            .cache
            .load_or_compile(&self.engine, &digest, wasm)
            .map_err(|e| SandboxError::Compile(format!("{e:#}")))?;
        let load_time = started.elapsed();
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| SandboxError::Imports(format!("{e:#}")))?;
        let wit_version = exported_version(&self.engine, &component)?;
        let resizer = wit::GuestIndices::new(&pre).map_err(|e| SandboxError::World(format!("{e:#}")))?;
        // Added in WIT 1.1: without it, crops are centred and AVIF cannot be made.
        let thumbnails = v11::GuestIndices::new(&pre).ok();
        tracing::info!(%digest, size = wasm.len(), from_cache, ?load_time, "component loaded");
        Ok(Resizer {
            inner: Arc::new(ResizerInner {
                digest,
                wit_version,
                size: wasm.len() as u64,
                from_cache,
                load_time,
                pre,
                resizer,
                thumbnails,
                sandbox: self.clone(),
            }),
        })
    }
}

/// A loaded, pre-instantiated component. Cheap to clone; each call is isolated.
#[derive(Clone)]
pub struct Resizer {
    inner: Arc<ResizerInner>,
}

struct ResizerInner {
    digest: String,
    wit_version: String,
    size: u64,
    from_cache: bool,
    load_time: Duration,
    pre: InstancePre<GuestState>,
    resizer: wit::GuestIndices,
    thumbnails: Option<v11::GuestIndices>,
    sandbox: Sandbox,
}

impl Resizer {
    /// sha256 of the component's bytes, lower-case hex.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// Version of the `edgethumb:resizer` package the component exports.
    pub fn wit_version(&self) -> &str {
        &self.inner.wit_version
    }

    /// Whether the component has WIT 1.1's `thumbnails` (gravity, AVIF); without it, crops
    /// are centred and AVIF is refused.
    pub fn has_v11(&self) -> bool {
        self.inner.thumbnails.is_some()
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// Time to compile or load the compiled code.
    pub fn load_time(&self) -> Duration {
        self.inner.load_time
    }

    /// Makes the thumbnail a request asks for (see [`resizer_core::request::make`]): the
    /// same choices, and so the same bytes, as the edge component and the CLI make.
    pub fn make(&self, image: &[u8], options: &Negotiated) -> Result<(Thumbnail, CallStats), SandboxError> {
        // The pixel limit passed here is replaced by the sandbox's own in `thumbnail`.
        let max_pixels = self.inner.sandbox.config.max_pixels;
        resizer_core::request::make(self, image, &options.request, options.accepts, max_pixels)
    }

    /// Reads an image's header in the sandbox.
    pub fn probe(&self, image: &[u8]) -> Result<(ImageInfo, CallStats), SandboxError> {
        let resizer = &self.inner.resizer;
        let (r, stats) = self.call(|store, i| resizer.load(&mut *store, i)?.call_probe(store, image))?;
        Ok((r.map(info_from_wit).map_err(error_from_wit)?, stats))
    }

    /// Makes a thumbnail in the sandbox. The pixel limit is the sandbox's, whatever `options`
    /// says, because the memory cap was sized for it. A component without the `thumbnails`
    /// interface (WIT 1.0) centres every crop, whatever the gravity, and cannot make AVIF.
    pub fn thumbnail(&self, image: &[u8], options: &Options) -> Result<(Thumbnail, CallStats), SandboxError> {
        let mut options = options.clone();
        options.max_pixels = self.inner.sandbox.config.max_pixels;
        options.validate()?;
        let (r, stats) = match &self.inner.thumbnails {
            Some(v11) => {
                let request = request_to_wit(&options);
                let (r, stats) =
                    self.call(|store, i| v11.load(&mut *store, i)?.call_make(store, image, request))?;
                (r.map(thumbnail_from_v11), stats)
            }
            None => {
                let Some(wit_options) = options_to_wit(&options) else {
                    return Err(SandboxError::Image(resizer_core::Error::InvalidOptions(format!(
                        "the active component speaks WIT {}, which cannot make {}; it needs 1.1",
                        self.inner.wit_version,
                        options.format.name()
                    ))));
                };
                let resizer = &self.inner.resizer;
                let (r, stats) = self.call(|store, i| {
                    resizer
                        .load(&mut *store, i)?
                        .call_thumbnail(store, image, wit_options)
                })?;
                (r.map(thumbnail_from_wit), stats)
            }
        };
        Ok((r.map_err(error_from_wit)?, stats))
    }

    fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<GuestState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<(R, CallStats), SandboxError> {
        let sandbox = &self.inner.sandbox;
        let config = &sandbox.config;
        // Waiting here, rather than failing in the pool, keeps a burst of calls (canaries
        // during a busy moment, say) from turning into failed jobs.
        let _admission = sandbox.gate.admit(config.max_memory_bytes);
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        let started = Instant::now();
        let state = GuestState {
            deadline: started + config.deadline,
            wasi: WasiCtxBuilder::new().stderr(stderr.clone()).build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                cap: config.max_memory_bytes,
                peak: 0,
                refused: false,
            },
        };
        let mut store = Store::new(&sandbox.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(config.deadline.as_millis().div_ceil(EPOCH_TICK.as_millis()) as u64 + 1);

        let instance = self.inner.pre.instantiate(&mut store);
        let instantiate = started.elapsed();
        let result = instance.and_then(|i| f(&mut store, &i));
        let stats = CallStats {
            instantiate,
            total: started.elapsed(),
            peak_memory_bytes: store.data().limiter.peak,
        };
        let output = stderr.contents();
        if !output.is_empty() {
            tracing::warn!(digest = %self.inner.digest, stderr = %String::from_utf8_lossy(&output), "component wrote to stderr");
        }
        match result {
            Ok(r) => Ok((r, stats)),
            Err(e) => {
                let (kind, err) = if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
                    || e.is::<waits::WaitedPastDeadline>()
                {
                    ("deadline", SandboxError::Deadline(config.deadline))
                } else if store.data().limiter.refused {
                    let cap = config.max_memory_bytes;
                    ("memory", SandboxError::MemoryLimit { cap })
                } else {
                    ("trap", SandboxError::Trap(format!("{e:#}")))
                };
                metrics::counter!(crate::telemetry::SANDBOX_KILLS, "kind" => kind).increment(1);
                tracing::warn!(digest = %self.inner.digest, error = %err, "sandboxed call failed");
                Err(err)
            }
        }
    }
}

/// What one store holds: the empty WASI context and the memory accounting.
struct GuestState {
    /// When the call must end, waits in WASI included.
    deadline: Instant,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Refuses memory growth past the cap and remembers that it did, so the trap that follows
/// (Rust guests abort when allocation fails) can be reported as what it is.
struct Limiter {
    cap: u64,
    peak: u64,
    refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.cap {
            self.refused = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired as u64);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("edgethumb-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch ticker thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub use crate::digest::sha256_hex;

impl Backend for Resizer {
    type Error = SandboxError;
    type Stats = CallStats;

    fn probe(&self, image: &[u8]) -> Result<ImageInfo, SandboxError> {
        Resizer::probe(self, image).map(|(info, _)| info)
    }

    fn thumbnail(&self, image: &[u8], options: &Options) -> Result<(Thumbnail, CallStats), SandboxError> {
        Resizer::thumbnail(self, image, options)
    }
}

/// The interface this host speaks; components must export a version of it with the same major.
const RESIZER_INTERFACE: &str = "edgethumb:resizer/resizer@";
const RESIZER_MAJOR: &str = "1";

/// The version of `edgethumb:resizer/resizer` a component exports, checked for compatibility.
fn exported_version(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Result<String, SandboxError> {
    let ty = component.component_type();
    let versions: Vec<String> = ty
        .exports(engine)
        .filter_map(|(name, _)| name.strip_prefix(RESIZER_INTERFACE).map(str::to_string))
        .collect();
    match versions.first() {
        None => {
            let names: Vec<&str> = ty.exports(engine).map(|(n, _)| n).collect();
            Err(SandboxError::World(format!(
                "it exports {names:?}, not {RESIZER_INTERFACE}{RESIZER_MAJOR}.x"
            )))
        }
        Some(v) if v.split('.').next() != Some(RESIZER_MAJOR) => Err(SandboxError::World(format!(
            "it exports {RESIZER_INTERFACE}{v}; this host speaks major version {RESIZER_MAJOR}"
        ))),
        Some(v) => Ok(v.clone()),
    }
}

/// Cheap checks of the preamble, so garbage and core modules get a precise message.
fn check_component_header(wasm: &[u8]) -> Result<(), SandboxError> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(SandboxError::NotAComponent(
            "the bytes do not start with the wasm magic number".into(),
        ));
    }
    match &wasm[4..8] {
        [1, 0, 0, 0] => Err(SandboxError::NotAComponent(
            "this is a core WebAssembly module; a component (wasm32-wasip2, or wasm-tools component new) is needed".into(),
        )),
        [_, _, 1, 0] => Ok(()),
        other => Err(SandboxError::NotAComponent(format!("unknown wasm version/layer {other:?}"))),
    }
}
