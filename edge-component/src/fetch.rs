//! The image of `GET /thumbnail?url=`, fetched through `wasi:http/outgoing-handler`, so the
//! platform's egress policy (and its DNS) decides what can be reached. The component sees
//! only the URL: it refuses other schemes, credentials, `localhost`, and IP-literal hosts in
//! any range the host refuses ([`netguard`], in every spelling the URL parser normalises). A
//! name that resolves to such an address can only be refused by the platform. Hosts listed in
//! `EDGETHUMB_FETCH_ALLOW` (comma-separated, as written in URLs) are let through, as
//! `--fetch-allow` does in the host. No redirects are followed.

use std::io::Read as _;
use std::net::IpAddr;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingRequest, Scheme};

use resizer_core::codes::Code;

use crate::MAX_BODY_BYTES;
use crate::reply::Reply;

/// The longest URL accepted, as in the host.
const MAX_URL_BYTES: usize = 4096;

/// GETs `url` and returns the body.
pub fn get(url: &str) -> Result<Vec<u8>, Reply> {
    let refused = |detail: String| Reply::problem(Code::SourceRefused, detail);
    if url.len() > MAX_URL_BYTES {
        return Err(refused(format!(
            "the URL is {} bytes long; the limit is {MAX_URL_BYTES}",
            url.len()
        )));
    }
    let parsed =
        url::Url::parse(url.trim()).map_err(|e| refused(format!("{url:?} is not a valid URL: {e}")))?;
    let scheme = match parsed.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(refused(format!(
                "the {other} scheme is not allowed; use http or https"
            )));
        }
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refused("URLs with credentials are not allowed".into()));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| refused(format!("{url:?} has no host")))?;
    if let Some(reason) = refused_host(host) {
        return Err(refused(format!(
            "{host} is {reason}; such hosts are refused (EDGETHUMB_FETCH_ALLOW lets one through)"
        )));
    }
    let authority = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    send(scheme, &authority, &path)
}

fn send(scheme: Scheme, authority: &str, path: &str) -> Result<Vec<u8>, Reply> {
    let failed = |detail: String| Reply::problem(Code::SourceUnreachable, detail);
    let request = OutgoingRequest::new(Fields::new());
    let set = request
        .set_method(&Method::Get)
        .and(request.set_scheme(Some(&scheme)))
        .and(request.set_authority(Some(authority)))
        .and(request.set_path_with_query(Some(path)));
    set.map_err(|()| failed(format!("the platform refused the request to {authority}")))?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| {
        failed(format!(
            "the platform refused the request to {authority}: {}",
            describe(&e)
        ))
    })?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => {
            return Err(failed(format!(
                "fetching from {authority} failed: {}",
                describe(&e)
            )));
        }
        _ => return Err(failed(format!("fetching from {authority} gave no response"))),
    };
    let status = response.status();
    if !(200..300).contains(&status) {
        return Err(Reply::problem(
            Code::SourceHttpStatus,
            format!("the source answered HTTP {status}"),
        ));
    }
    let body = response
        .consume()
        .map_err(|()| failed("the response has no body".into()))?;
    let stream = body
        .stream()
        .map_err(|()| failed("the response has no body".into()))?;
    let mut image = Vec::new();
    stream
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut image)
        .map_err(|e| failed(format!("reading the source failed: {e}")))?;
    if image.len() as u64 > MAX_BODY_BYTES {
        return Err(Reply::problem(
            Code::SourceTooLarge,
            format!("the source is larger than the limit of {MAX_BODY_BYTES} bytes"),
        ));
    }
    Ok(image)
}

/// Why a host written in a URL is refused, unless `EDGETHUMB_FETCH_ALLOW` lists it.
fn refused_host(host: &str) -> Option<&'static str> {
    let allowed = std::env::var("EDGETHUMB_FETCH_ALLOW").unwrap_or_default();
    if allowed
        .split(',')
        .any(|a| !a.trim().is_empty() && a.trim().eq_ignore_ascii_case(host))
    {
        return None;
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) => netguard::forbidden_reason(ip),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost")).then_some("a loopback name")
        }
    }
}

fn describe(e: &ErrorCode) -> String {
    format!("{e:?}")
}
