//! edgethumb: a thumbnail service whose image code runs in a wasmtime sandbox.
//!
//! Layout (dependencies point down: the API uses the job layer, which uses the store, the
//! sandbox and outbound HTTP; nothing imports `api` but `app`):
//! - [`app`]: the service assembled (`App::build`, `run_until_stopped`), its tasks supervised.
//! - [`api`]: the HTTP API (axum), one module per resource, errors as problem+json.
//! - [`jobs`]: the one submission path, the workers, webhooks, and the job as clients see it.
//! - [`store`]: jobs, content-addressed blobs, deliveries and components, in SQLite or
//!   PostgreSQL.
//! - [`sandbox`]: the wasmtime engine, the compiled-component cache, the per-call limits
//!   (memory cap, CPU deadline, no WASI capabilities) and the component registry.
//! - [`outbound`]: outbound HTTP (image URLs, webhooks) behind the SSRF guard; signatures.
//! - [`codes`]: every stable error code.
//! - [`config`]: every flag (`serve` and the sandbox's), environment fallbacks, checked once.
//! - [`telemetry`]: the metric names and the Prometheus recorder; [`logging`]: filter, format.
//! - [`supervise`]: background tasks whose death is logged and reported by `/readyz`.
//! - [`digest`], [`backoff`]: hashing and retry timing, shared.
//! - [`cli`], [`bench`]: the command line (`serve`, `thumb`, `probe`, `bench`, `component`).
//!
//! The image logic itself lives in the `resizer-core` crate, compiled into the resizer
//! component (`resizer-component/`) whose contract is `wit/resizer.wit`.

pub mod api;
pub mod app;
pub mod backoff;
pub mod bench;
pub mod cli;
pub mod codes;
pub mod config;
pub mod digest;
pub mod jobs;
pub mod logging;
pub mod outbound;
pub mod sandbox;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod urlsig;
