//! Every stable error code edgethumb answers or records, in one enum, with its HTTP status:
//! the API's own, the job outcomes from the sandbox and the fetcher, the component
//! registry's. The host and the edge component both answer with these. Clients
//! match on these strings, so a code is never renamed. Decisions (HTTP status, retries) match
//! on the variants, never on the strings; the strings exist only at the edges (problem JSON,
//! the job row, logs).

use std::fmt;

macro_rules! codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $text:literal,)+) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Code {
            /// Every code, in declaration order (for documentation and its test).
            pub const ALL: &'static [Code] = &[$(Code::$variant,)+];

            /// The code as clients see it, snake_case.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)+
                }
            }

            /// The code for its text; `None` for text this version never wrote.
            pub fn parse(text: &str) -> Option<Code> {
                match text {
                    $($text => Some(Code::$variant),)+
                    _ => None,
                }
            }

            /// What the code means, from its doc comment.
            pub fn description(self) -> &'static str {
                match self {
                    $(Code::$variant => concat!($($doc),+).trim_ascii(),)+
                }
            }
        }
    };
}

codes! {
    // Requests the API refuses.
    /// Malformed request: bad JSON, bad base64, no image, unknown form field, bad cursor or `wait`.
    BadRequest = "bad_request",
    /// API keys are configured and the request has none or a wrong one (also a wrong admin token).
    Unauthorized = "unauthorized",
    /// The admin API is off: no `--admin-token`.
    AdminDisabled = "admin_disabled",
    /// A signed URL whose `sig` does not match its parameters, or one sent to a server without `--url-signing-key`.
    InvalidSignature = "invalid_signature",
    /// Unknown job, another key's job, or one deleted or expired.
    JobNotFound = "job_not_found",
    /// Unknown batch, or another key's.
    BatchNotFound = "batch_not_found",
    /// No such route.
    NotFound = "not_found",
    /// The route exists, but not for this method.
    MethodNotAllowed = "method_not_allowed",
    /// The thumbnail of an unfinished or failed job.
    NotReady = "not_ready",
    /// Deleting a job while it runs.
    JobRunning = "job_running",
    /// The body is over `--max-body-bytes`.
    PayloadTooLarge = "payload_too_large",
    /// The request body did not arrive within `--body-timeout`.
    BodyTimeout = "body_timeout",
    /// Not an image, or a format we do not decode (sniffed from the bytes).
    UnsupportedFormat = "unsupported_format",
    /// Options out of range.
    InvalidOptions = "invalid_options",
    /// A `callback_url` that is malformed or not http(s).
    InvalidCallbackUrl = "invalid_callback_url",
    /// More than `--max-queue` jobs are waiting.
    QueueFull = "queue_full",
    /// The submitter has `--max-pending-webhooks` webhooks waiting already.
    TooManyWebhooks = "too_many_webhooks",
    /// Draining after SIGTERM.
    ShuttingDown = "shutting_down",
    /// The database (or blob storage) failed; the cause is in the log.
    StoreUnavailable = "store_unavailable",
    /// `/v1/thumbnail` waited `--sync-timeout`; the job goes on.
    Timeout = "timeout",
    /// An uploaded component failed validation (`step` says where).
    ComponentInvalid = "component_invalid",
    /// No component with that digest.
    ComponentNotFound = "component_not_found",
    /// The active component cannot be deleted, or there is nothing to roll back to.
    ComponentConflict = "component_conflict",

    // How jobs fail: the image, the sandbox, the host.
    /// The image is damaged or truncated.
    MalformedImage = "malformed_image",
    /// The image has more pixels than the limit.
    ImageTooLarge = "image_too_large",
    /// The component ran past its CPU deadline.
    DeadlineExceeded = "deadline_exceeded",
    /// The component needed more than its memory cap.
    MemoryLimitExceeded = "memory_limit_exceeded",
    /// The component trapped (a bug or a crash in the image code).
    ComponentCrashed = "component_crashed",
    /// The component reported a bug of its own.
    ComponentInternalError = "component_internal_error",
    /// The job's host or sandbox kept dying; it was given up.
    TooManyAttempts = "too_many_attempts",
    /// The component the job needs cannot be loaded on this host.
    ComponentUnavailable = "component_unavailable",
    /// The worker failed unexpectedly; the cause is in the log.
    InternalError = "internal_error",

    // URL sources.
    /// The URL or an address it resolves to is refused by the SSRF guard, or is not http(s).
    SourceRefused = "source_refused",
    /// The source's host could not be reached.
    SourceUnreachable = "source_unreachable",
    /// The source did not answer in `--fetch-timeout`.
    SourceTimeout = "source_timeout",
    /// The source is larger than `--fetch-max-bytes`.
    SourceTooLarge = "source_too_large",
    /// The source answered with an HTTP error status.
    SourceHttpStatus = "source_http_status",
    /// The source served something that is not an image.
    NotAnImage = "not_an_image",

    // Loading a component.
    /// The bytes are not a WebAssembly component.
    NotAComponent = "not_a_component",
    /// wasmtime cannot compile the component.
    ComponentCompileFailed = "component_compile_failed",
    /// The component imports what the sandbox does not provide.
    ComponentImportsUnavailable = "component_imports_unavailable",
    /// The component does not export `edgethumb:resizer/resizer@1`.
    ComponentWorldMismatch = "component_world_mismatch",
    /// The sandbox engine could not be set up.
    SandboxUnavailable = "sandbox_unavailable",
}

impl Code {
    /// The HTTP status a request that fails with this code is answered with. A job's own
    /// failure (the image, the sandbox, the source) is the request's problem to see, so 422,
    /// except an image in a format we do not read, which is 415 as when it is uploaded.
    pub fn status(self) -> u16 {
        match self {
            Code::BadRequest => 400,
            Code::Unauthorized => 401,
            Code::AdminDisabled | Code::InvalidSignature => 403,
            Code::JobNotFound | Code::BatchNotFound | Code::NotFound | Code::ComponentNotFound => 404,
            Code::MethodNotAllowed => 405,
            Code::BodyTimeout => 408,
            Code::NotReady | Code::JobRunning | Code::ComponentConflict => 409,
            Code::PayloadTooLarge => 413,
            Code::UnsupportedFormat => 415,
            Code::QueueFull | Code::TooManyWebhooks => 429,
            Code::ShuttingDown | Code::StoreUnavailable => 503,
            Code::Timeout => 504,
            _ => 422,
        }
    }

    /// Job failures worth another attempt. A crash may be the host's doing (a lost pool
    /// slot, a signal) and not recur. A deadline or a memory kill is the image's own: the
    /// same bytes would be killed again on every attempt, at the same cost, so those fail at
    /// once.
    pub fn is_worth_retrying(self) -> bool {
        matches!(self, Code::ComponentCrashed)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
