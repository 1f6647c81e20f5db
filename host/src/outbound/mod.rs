//! Outbound HTTP, beside the job layer: fetching image URLs behind the SSRF guard, and what
//! webhooks need to be sent (the same guarded client, and their signatures).

pub mod fetch;
pub mod signing;

pub use fetch::{
    AllowRule, FetchError, FetchPolicy, Fetched, MAX_URL_BYTES, Revalidated, Validators, check_url,
};
