//! The one place errors become HTTP: every failure is an RFC 9457 `application/problem+json`
//! body with a stable `code` (also the last segment of `type`) and a `detail` written for the
//! client. Storage failures are logged with their cause and answered with a generic 503.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::codes::Code;
use crate::jobs::JobsError;
use crate::jobs::StoreError;
use crate::sandbox::SandboxError;
use crate::sandbox::registry::RegistryError;
use crate::sandbox::validate::Step;

/// Why a request failed. Each variant's doc names its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, bad base64, no image, bad cursor).
    #[error("{0}")]
    BadRequest(String),
    /// 401: API keys are in use and this request has none or a wrong one.
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    /// 403: a signed URL's signature does not match.
    #[error("{0}")]
    InvalidSignature(String),
    /// 404: no such job (or not this key's).
    #[error("no job with id {0}")]
    JobNotFound(String),
    /// 404: no such batch (or not this key's).
    #[error("no batch with id {0}")]
    BatchNotFound(String),
    /// 403: the admin API is disabled (no admin token configured).
    #[error(
        "the admin API is disabled; start the server with --admin-token (or EDGETHUMB_ADMIN_TOKEN) to use it"
    )]
    AdminDisabled,
    /// 401: the admin token is missing or wrong.
    #[error("a valid admin token is required: send `Authorization: Bearer <admin token>`")]
    AdminUnauthorized,
    /// 422: an uploaded component failed validation; `step` says where.
    #[error("the component was refused at the {} step: {reason}", step.name())]
    ComponentInvalid { step: Step, reason: String },
    /// 404: no component with that digest.
    #[error("no component with digest {0}")]
    ComponentNotFound(String),
    /// 409: the active component cannot be deleted; nothing to roll back to.
    #[error("{0}")]
    ComponentConflict(String),
    /// 404: no such route.
    #[error("no such resource: {0}")]
    NoRoute(String),
    /// 408: the body did not arrive in time.
    #[error("the request body did not arrive within {0} s; send it faster, or in a smaller request")]
    BodyTimeout(u64),
    /// 405: the route exists, but not for this method.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// 409: the job has no thumbnail yet (or failed).
    #[error("{detail}")]
    NotReady {
        detail: String,
        retry_after: Option<u64>,
    },
    /// 409: a running job cannot be deleted.
    #[error("job {0} is running; delete it once it has finished")]
    Running(String),
    /// 413: the body is larger than the limit.
    #[error("the request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// 415: not an image, or not a format we decode, or a content type we do not take.
    #[error("{0}")]
    Unsupported(String),
    /// 422: a URL field is malformed or not http(s).
    #[error("{}: {detail}", field.name())]
    InvalidUrl { field: UrlField, detail: String },
    /// 422: options out of range.
    #[error("{0}")]
    InvalidOptions(String),
    /// 422 (or 415 for format problems): the job ran and failed; for the synchronous endpoint.
    #[error("{message}")]
    JobFailed { code: Code, message: String },
    /// 429: the queue is full.
    #[error("the queue is full ({0} jobs waiting); retry later")]
    QueueFull(u64),
    /// 429: this submitter's webhooks are backed up.
    #[error("{0} webhooks of yours are waiting to be delivered; retry when some have gone out")]
    TooManyWebhooks(u64),
    /// 503: the server is shutting down.
    #[error("the server is shutting down; retry on another instance or shortly")]
    ShuttingDown,
    /// 503: the database failed; the cause is in the log.
    #[error("the job store is unavailable; retry shortly")]
    Store(#[from] StoreError),
    /// 504: the synchronous endpoint's wait ran out; the job goes on.
    #[error("the thumbnail was not ready within {seconds} s; poll {location}")]
    Timeout { seconds: u64, location: String },
}

/// The URL fields a submission may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlField {
    /// `url`: where the image is fetched from.
    Source,
    /// `callback_url`: where the finished job is POSTed.
    Callback,
}

impl UrlField {
    pub fn name(self) -> &'static str {
        match self {
            UrlField::Source => "url",
            UrlField::Callback => "callback_url",
        }
    }
}

/// An RFC 9457 problem: how every error is answered, as `application/problem+json`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// `https://edgethumb.dev/problems/{code}`.
    #[serde(rename = "type")]
    kind: String,
    /// The HTTP status's reason phrase.
    title: &'a str,
    status: u16,
    /// What went wrong and what to do about it, for people.
    detail: String,
    /// The stable code, for programs (see the README's table).
    #[schema(value_type = String, example = "invalid_options")]
    code: Code,
    /// For `component_invalid`: the validation step that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'static str>,
}

impl ApiError {
    /// The status, which the code decides ([`Code::status`]), as at the edge.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
    }

    pub fn code(&self) -> Code {
        match self {
            ApiError::BadRequest(_) => Code::BadRequest,
            ApiError::Unauthorized | ApiError::AdminUnauthorized => Code::Unauthorized,
            ApiError::AdminDisabled => Code::AdminDisabled,
            ApiError::InvalidSignature(_) => Code::InvalidSignature,
            ApiError::ComponentInvalid { .. } => Code::ComponentInvalid,
            ApiError::ComponentNotFound(_) => Code::ComponentNotFound,
            ApiError::ComponentConflict(_) => Code::ComponentConflict,
            ApiError::JobNotFound(_) => Code::JobNotFound,
            ApiError::BatchNotFound(_) => Code::BatchNotFound,
            ApiError::NoRoute(_) => Code::NotFound,
            ApiError::MethodNotAllowed { .. } => Code::MethodNotAllowed,
            ApiError::BodyTimeout(_) => Code::BodyTimeout,
            ApiError::NotReady { .. } => Code::NotReady,
            ApiError::Running(_) => Code::JobRunning,
            ApiError::TooLarge(_) => Code::PayloadTooLarge,
            ApiError::Unsupported(_) => Code::UnsupportedFormat,
            ApiError::InvalidOptions(_) => Code::InvalidOptions,
            ApiError::InvalidUrl {
                field: UrlField::Source,
                ..
            } => Code::SourceRefused,
            ApiError::InvalidUrl {
                field: UrlField::Callback,
                ..
            } => Code::InvalidCallbackUrl,
            ApiError::JobFailed { code, .. } => *code,
            ApiError::QueueFull(_) => Code::QueueFull,
            ApiError::TooManyWebhooks(_) => Code::TooManyWebhooks,
            ApiError::ShuttingDown => Code::ShuttingDown,
            ApiError::Store(_) => Code::StoreUnavailable,
            ApiError::Timeout { .. } => Code::Timeout,
        }
    }

    fn title(&self) -> &'static str {
        self.status().canonical_reason().unwrap_or("Error")
    }
}

impl From<SandboxError> for ApiError {
    fn from(e: SandboxError) -> Self {
        ApiError::JobFailed {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(v) => ApiError::ComponentInvalid {
                step: v.step,
                reason: v.reason,
            },
            RegistryError::NotFound(d) => ApiError::ComponentNotFound(d),
            RegistryError::Active(_) | RegistryError::NothingToRollBack => {
                ApiError::ComponentConflict(e.to_string())
            }
            RegistryError::Load { .. } => ApiError::JobFailed {
                code: Code::ComponentUnavailable,
                message: e.to_string(),
            },
            RegistryError::Store(s) => ApiError::Store(s),
        }
    }
}

impl From<JobsError> for ApiError {
    fn from(e: JobsError) -> Self {
        match e {
            JobsError::NotFound(id) => ApiError::JobNotFound(id.to_string()),
            JobsError::QueueFull(n) => ApiError::QueueFull(n),
            JobsError::TooManyWebhooks(n) => ApiError::TooManyWebhooks(n),
            JobsError::ShuttingDown => ApiError::ShuttingDown,
            JobsError::Component(e) => e.into(),
            JobsError::Store(e) => ApiError::Store(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Store(cause) = &self {
            tracing::error!(error = %cause, "job store failure");
        }
        let status = self.status();
        let body = Problem {
            kind: format!("https://edgethumb.dev/problems/{}", self.code()),
            title: self.title(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code(),
            step: match &self {
                ApiError::ComponentInvalid { step, .. } => Some(step.name()),
                _ => None,
            },
        };
        let mut response = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = match &self {
            ApiError::NotReady { retry_after, .. } => *retry_after,
            ApiError::QueueFull(_) | ApiError::TooManyWebhooks(_) => Some(5),
            ApiError::ShuttingDown | ApiError::Store(_) => Some(2),
            _ => None,
        };
        if let Some(s) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if matches!(self, ApiError::Unauthorized | ApiError::AdminUnauthorized) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
