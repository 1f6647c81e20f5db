//! edgethumb: a thumbnail service whose image code runs in a wasmtime sandbox.
//!
//! Layout:
//! - [`app`]: the service assembled (`App::build`, `run_until_stopped`) and its shared state.
//! - [`api`]: the HTTP API (axum), one module per resource, errors as problem+json.
//! - [`queue`]: the durable job queue behind the `JobStore` trait; SQLite by default.
//! - [`worker`]: claim, run in the sandbox, complete; lease heartbeats; the sweeper.
//! - [`fetch`]: outbound HTTP (image URLs, webhooks) behind the SSRF guard.
//! - [`webhook`]: signed, retried deliveries of finished jobs to their callback URL.
//! - [`config`]: `edgethumb serve` flags and environment, checked once.
//! - [`sandbox`]: the wasmtime engine, the compiled-component cache and the per-call limits
//!   (memory cap, CPU deadline, no WASI capabilities) around the resizer component.
//! - [`cli`]: the command line (`edgethumb serve`, `thumb`, `probe`, `bench`, `component`).
//! - [`bench`]: `edgethumb bench`, sandboxed and native timings in one run.
//!
//! The image logic itself lives in the `resizer-core` crate, compiled into the resizer
//! component (`resizer-component/`) whose contract is `wit/resizer.wit`.

pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod fetch;
pub mod queue;
pub mod sandbox;
pub mod webhook;
pub mod worker;
