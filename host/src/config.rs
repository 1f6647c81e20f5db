//! Configuration of `edgethumb serve`: flags with `EDGETHUMB_*` environment fallbacks, turned
//! into a checked [`ServeConfig`] in one step.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use anyhow::Context;

use crate::sandbox::{Resizer, Sandbox, SandboxConfig, default_budget, default_memory_for};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the log says which).
    #[arg(long, env = "EDGETHUMB_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Directory for the job database and the compiled-component cache.
    #[arg(long, env = "EDGETHUMB_DATA_DIR", default_value = "./edgethumb-data")]
    pub data_dir: PathBuf,
    /// The job database: `sqlite://PATH`, or `postgres://user@host/db` for several hosts
    /// sharing one queue [default: a SQLite file in --data-dir].
    #[arg(long, env = "EDGETHUMB_DATABASE", value_name = "URL", hide_env_values = true)]
    pub database: Option<String>,
    /// PostgreSQL: do not use LISTEN/NOTIFY, only poll (to measure what it saves).
    #[arg(long)]
    pub no_notify: bool,
    /// Workers running the sandbox [default: number of cores]; 0 makes an API-only host that
    /// queues jobs for other hosts sharing the database.
    #[arg(long, env = "EDGETHUMB_WORKERS")]
    pub workers: Option<usize>,
    /// Largest request body in bytes (an upload, or the JSON around a base64 image).
    #[arg(long, env = "EDGETHUMB_MAX_BODY_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Request bodies (uploads, raw images, base64 JSON) read at once; more wait their turn,
    /// so memory for bodies in flight stays bounded whatever the number of clients.
    #[arg(long, env = "EDGETHUMB_MAX_UPLOADS", default_value_t = 8)]
    pub max_uploads: usize,
    /// Images one `POST /v1/batches` may hold.
    #[arg(long, env = "EDGETHUMB_MAX_BATCH_ITEMS", default_value_t = 100)]
    pub max_batch_items: usize,
    /// Largest `POST /v1/batches` body in bytes; each image in it is also held to
    /// --max-body-bytes. A batch body is read in one of the --max-uploads turns.
    #[arg(long, env = "EDGETHUMB_MAX_BATCH_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_batch_bytes: usize,
    /// Time a client has to send a whole request body once its turn has come.
    #[arg(long, env = "EDGETHUMB_BODY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,
    /// Queued jobs beyond which submissions get 429.
    #[arg(long, env = "EDGETHUMB_MAX_QUEUE", default_value_t = 10_000)]
    pub max_queue: u64,
    /// How long finished jobs and their data are kept (e.g. 24h, 7d).
    #[arg(long, env = "EDGETHUMB_JOB_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub job_ttl: Duration,
    /// API keys; when given, every /v1 call needs `Authorization: Bearer KEY` and sees only its
    /// own jobs. Repeat the flag, or comma-separate in the environment variable.
    #[arg(
        long = "api-key",
        env = "EDGETHUMB_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// Key for signed thumbnail URLs (`GET /v1/thumbnail?...&sig=`, made by `edgethumb sign`):
    /// a link with the right signature works without an API key. At least 16 bytes.
    #[arg(long, env = "EDGETHUMB_URL_SIGNING_KEY", hide_env_values = true)]
    pub url_signing_key: Option<String>,
    /// `max-age` of the public `Cache-Control` on thumbnails answered without an API key
    /// (signed URLs, or everything when keys are off), so CDNs and browsers can keep them.
    #[arg(long, env = "EDGETHUMB_CACHE_MAX_AGE", default_value = "1d", value_parser = humantime::parse_duration)]
    pub cache_max_age: Duration,
    /// The URL result cache: a URL job with the same URL, options and owner as one whose
    /// source was fetched within this long is answered from that job's result, without
    /// contacting the origin; after it, the origin is asked (with its ETag/Last-Modified)
    /// whether the source changed. 0 turns the cache off.
    #[arg(long, env = "EDGETHUMB_URL_CACHE_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub url_cache_ttl: Duration,
    /// How long `POST /v1/thumbnail` waits for its job before answering 504.
    #[arg(long, env = "EDGETHUMB_SYNC_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub sync_timeout: Duration,
    /// Attempts before a job whose sandbox (or host) keeps crashing is failed.
    #[arg(long, env = "EDGETHUMB_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// How long a claimed job stays claimed without a heartbeat (a dead host's jobs come
    /// back after this).
    #[arg(long, env = "EDGETHUMB_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub lease: Duration,
    /// Token for the admin API (`/v1/admin`, component lifecycle), sent as
    /// `Authorization: Bearer TOKEN`. Without one the admin API is disabled.
    #[arg(long, env = "EDGETHUMB_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Watch this directory: a new valid .wasm component dropped there is stored and activated
    /// (for edge nodes without the admin API).
    #[arg(long, env = "EDGETHUMB_COMPONENT_DIR", value_name = "DIR")]
    pub component_dir: Option<PathBuf>,
    /// How often this host checks the database for a component activated by another host.
    #[arg(long, env = "EDGETHUMB_COMPONENT_SYNC", default_value = "1s", value_parser = humantime::parse_duration)]
    pub component_sync: Duration,
    /// Hosts or CIDRs that image URLs and callbacks may reach despite the SSRF guard
    /// (e.g. `images.internal`, `10.1.0.0/16`, `127.0.0.1`). Repeatable; comma-separated in the
    /// environment variable.
    #[arg(
        long = "fetch-allow",
        env = "EDGETHUMB_FETCH_ALLOW",
        value_delimiter = ',',
        value_name = "HOST_OR_CIDR"
    )]
    pub fetch_allow: Vec<String>,
    /// Contact only these hosts (names, matched by name without a lookup), IP addresses or
    /// CIDRs, for image URLs and callbacks alike; anything else is refused before any DNS
    /// lookup [default: any public host].
    #[arg(
        long = "fetch-sources",
        env = "EDGETHUMB_FETCH_SOURCES",
        value_delimiter = ',',
        value_name = "HOST_OR_CIDR"
    )]
    pub fetch_sources: Vec<String>,
    /// Connect timeout for image URLs and callbacks.
    #[arg(long, env = "EDGETHUMB_FETCH_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub fetch_connect_timeout: Duration,
    /// Total time for one fetch (redirects, headers and body) or one delivery.
    #[arg(long, env = "EDGETHUMB_FETCH_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub fetch_timeout: Duration,
    /// Largest image a URL may serve, in bytes [default: --max-body-bytes].
    #[arg(long, env = "EDGETHUMB_FETCH_MAX_BYTES")]
    pub fetch_max_bytes: Option<u64>,
    /// First wait before retrying a failed fetch or webhook delivery; doubled each time, with
    /// jitter.
    #[arg(long, env = "EDGETHUMB_RETRY_BACKOFF", default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_backoff: Duration,
    /// Secret for signing webhooks, Standard Webhooks style: `whsec_` + base64.
    #[arg(long, env = "EDGETHUMB_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// How long a webhook delivery is retried before it is given up.
    #[arg(long, env = "EDGETHUMB_WEBHOOK_RETRY_FOR", default_value = "24h", value_parser = humantime::parse_duration)]
    pub webhook_retry_for: Duration,
    /// Webhooks one owner (API key) may have waiting; a submission with a `callback_url`
    /// beyond it is refused, so one client cannot fill the delivery queue.
    #[arg(long, env = "EDGETHUMB_MAX_PENDING_WEBHOOKS", default_value_t = 1000)]
    pub max_pending_webhooks: u64,
    /// Time one webhook delivery attempt may take; a receiver slower than this is retried
    /// later, like one that fails.
    #[arg(long, env = "EDGETHUMB_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Duration,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// Where jobs are stored.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres { url: String, notify: bool },
}

impl Database {
    fn parse(url: Option<&str>, data_dir: &std::path::Path, notify: bool) -> anyhow::Result<Database> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Database::Sqlite(data_dir.join("edgethumb.sqlite")));
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres {
                url: url.to_string(),
                notify,
            });
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            anyhow::ensure!(!path.is_empty(), "--database sqlite:// needs a path");
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        anyhow::bail!("--database must be sqlite://PATH or postgres://..., got {url:?}")
    }
}

/// Everything the server needs, checked.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    pub database: Database,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub max_uploads: usize,
    pub max_batch_items: usize,
    pub max_batch_bytes: usize,
    pub body_timeout: Duration,
    pub max_queue: u64,
    pub job_ttl: Duration,
    pub api_keys: Vec<String>,
    /// The key signed URLs are checked with.
    pub url_signing_key: Option<Vec<u8>>,
    pub cache_max_age: Duration,
    pub url_cache_ttl: Duration,
    pub sync_timeout: Duration,
    pub max_attempts: u32,
    pub lease: Duration,
    pub sandbox: SandboxConfig,
    pub component: Option<PathBuf>,
    pub admin_token: Option<String>,
    pub component_dir: Option<PathBuf>,
    pub component_sync: Duration,
    pub fetch: crate::outbound::FetchPolicy,
    pub retry_backoff: Duration,
    /// Decoded webhook signing key.
    pub webhook_key: Option<Vec<u8>>,
    pub webhook_retry_for: Duration,
    pub webhook_timeout: Duration,
    pub max_pending_webhooks: u64,
}

/// Parses a flag's list of host names, addresses and CIDRs.
fn rules(list: &[String], flag: &str) -> anyhow::Result<Vec<crate::outbound::AllowRule>> {
    list.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| crate::outbound::AllowRule::parse(s).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
        .collect()
}

impl ServeArgs {
    pub fn into_config(self) -> anyhow::Result<ServeConfig> {
        anyhow::ensure!(self.max_attempts >= 1, "--max-attempts must be at least 1");
        anyhow::ensure!(
            self.lease >= Duration::from_secs(1),
            "--lease must be at least 1s"
        );
        anyhow::ensure!(self.max_body_bytes > 0, "--max-body-bytes must be positive");
        anyhow::ensure!(self.max_uploads > 0, "--max-uploads must be at least 1");
        anyhow::ensure!(self.max_batch_items > 0, "--max-batch-items must be at least 1");
        let keys: Vec<String> = self
            .api_keys
            .into_iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect();
        let allow = rules(&self.fetch_allow, "--fetch-allow")?;
        let sources = rules(&self.fetch_sources, "--fetch-sources")?;
        let url_signing_key = self
            .url_signing_key
            .as_deref()
            .map(crate::urlsig::decode_key)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let webhook_key = self
            .webhook_secret
            .as_deref()
            .map(crate::outbound::signing::decode_secret)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let mut sandbox = self.sandbox.sandbox_config();
        if self.sandbox.cache_dir.is_none() && !self.sandbox.no_cache {
            sandbox.cache_dir = Some(self.data_dir.join("compiled"));
        }
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
        // Room for every worker plus canary runs of uploaded components.
        sandbox.max_concurrent_calls = (workers as u32).saturating_add(8);
        Ok(ServeConfig {
            bind: self.bind,
            database: Database::parse(self.database.as_deref(), &self.data_dir, !self.no_notify)?,
            workers,
            max_body_bytes: self.max_body_bytes,
            max_uploads: self.max_uploads,
            max_batch_items: self.max_batch_items,
            max_batch_bytes: self.max_batch_bytes,
            body_timeout: self.body_timeout,
            max_queue: self.max_queue,
            job_ttl: self.job_ttl,
            api_keys: keys,
            url_signing_key,
            cache_max_age: self.cache_max_age,
            url_cache_ttl: self.url_cache_ttl,
            sync_timeout: self.sync_timeout,
            max_attempts: self.max_attempts,
            lease: self.lease,
            sandbox,
            component: self.sandbox.component,
            admin_token: self
                .admin_token
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            component_dir: self.component_dir,
            component_sync: self.component_sync.max(Duration::from_millis(100)),
            fetch: crate::outbound::FetchPolicy {
                allow,
                sources,
                connect_timeout: self.fetch_connect_timeout,
                total_timeout: self.fetch_timeout,
                max_bytes: self.fetch_max_bytes.unwrap_or(self.max_body_bytes as u64),
                ..crate::outbound::FetchPolicy::default()
            },
            retry_backoff: self.retry_backoff,
            webhook_key,
            webhook_retry_for: self.webhook_retry_for,
            webhook_timeout: self.webhook_timeout,
            max_pending_webhooks: self.max_pending_webhooks,
        })
    }
}

/// Sandbox settings shared by every command.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Run this resizer component (.wasm) instead of the one built into the binary.
    #[arg(long, env = "EDGETHUMB_COMPONENT", value_name = "PATH")]
    pub component: Option<PathBuf>,
    /// Refuse images with more pixels than this (read from the header, before decoding).
    #[arg(long, env = "EDGETHUMB_MAX_PIXELS", default_value_t = resizer_core::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Linear memory one sandboxed call may use, in bytes [default: sized to --max-pixels].
    #[arg(long, env = "EDGETHUMB_MAX_MEMORY", value_name = "BYTES")]
    pub max_memory: Option<u64>,
    /// Guest memory all sandboxed calls together may hold, in bytes; each call reserves its
    /// --max-memory before it starts and waits while the budget is used up [default: half of
    /// the machine's memory (cgroup limit or RAM) above 1 GiB, at least one call's].
    #[arg(long, env = "EDGETHUMB_MEMORY_BUDGET", value_name = "BYTES")]
    pub memory_budget: Option<u64>,
    /// Wall time one sandboxed call may run, waits inside WASI included (e.g. 10s, 500ms).
    #[arg(long, env = "EDGETHUMB_DEADLINE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub deadline: Duration,
    /// Directory for compiled components [default: DATA_DIR/compiled for serve; otherwise the
    /// user's cache dir, e.g. ~/.cache/edgethumb/compiled].
    #[arg(long, env = "EDGETHUMB_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write compiled components on disk.
    #[arg(long)]
    pub no_cache: bool,
}

impl SandboxArgs {
    pub fn sandbox_config(&self) -> SandboxConfig {
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir
                .clone()
                .or_else(|| dirs::cache_dir().map(|d| d.join("edgethumb").join("compiled")))
        };
        let max_memory_bytes = self
            .max_memory
            .unwrap_or_else(|| default_memory_for(self.max_pixels));
        SandboxConfig {
            max_pixels: self.max_pixels,
            max_memory_bytes,
            deadline: self.deadline,
            cache_dir,
            memory_budget: self
                .memory_budget
                .unwrap_or_else(|| default_budget(max_memory_bytes)),
            ..SandboxConfig::default()
        }
    }

    /// Starts the sandbox and loads the chosen component.
    pub fn load(&self) -> anyhow::Result<Resizer> {
        let sandbox = Sandbox::new(self.sandbox_config())?;
        Ok(match &self.component {
            Some(path) => {
                let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                sandbox
                    .load(&wasm)
                    .with_context(|| format!("loading {}", path.display()))?
            }
            None => sandbox.load_builtin()?,
        })
    }
}
