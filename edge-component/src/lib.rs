//! edgethumb at the edge: a component exporting `wasi:http/incoming-handler` (the
//! `wasi:http/proxy` world) that makes thumbnails with [`resizer_core`], the same code the
//! host's sandboxed resizer runs. It runs under `wasmtime serve` and other wasi:http hosts.
//!
//! Routes:
//! - `POST /thumbnail?width=&height=&...`: the image in the body, the thumbnail in the
//!   answer; every option of the host's API, read by the same code
//!   ([`resizer_core::request`]), `format=auto` following `Accept`;
//! - `GET /thumbnail?url=...&...`: the image fetched through `wasi:http/outgoing-handler`, so
//!   the platform's egress policy applies (plus the address checks in [`fetch`]);
//! - `GET /healthz`.
//!
//! Errors are problem+json with the host's codes and statuses ([`resizer_core::codes`]). Body size and pixel limits are enforced
//! here, before decoding; memory and time limits are the platform's (`wasmtime serve -W
//! max-memory-size=... -W timeout=...`).

mod fetch;
mod options;
mod reply;

use std::io::Read as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};

use reply::Reply;
use resizer_core::codes::Code;
use resizer_core::request::{Accepts, Negotiated};

wasip2::http::proxy::export!(Edge);

/// Largest request body or fetched image, as the host's default `--max-body-bytes`.
pub const MAX_BODY_BYTES: u64 = 25 * 1024 * 1024;

struct Edge;

impl Guest for Edge {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        route(request).send(out);
    }
}

fn route(request: IncomingRequest) -> Reply {
    let path_and_query = request.path_with_query().unwrap_or_default();
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query.as_str(), ""));
    match (request.method(), path) {
        (Method::Get, "/healthz") => Reply::json(200, r#"{"status":"ok"}"#),
        (Method::Post, "/thumbnail") => post_thumbnail(request, query).unwrap_or_else(|e| e),
        (Method::Get, "/thumbnail") => get_thumbnail(&request, query).unwrap_or_else(|e| e),
        (_, "/healthz" | "/thumbnail") => Reply::problem(
            Code::MethodNotAllowed,
            format!("{path} does not take this method"),
        ),
        _ => Reply::problem(Code::NotFound, format!("no route {path}; try POST /thumbnail")),
    }
}

fn post_thumbnail(request: IncomingRequest, query: &str) -> Result<Reply, Reply> {
    let opts = options::parse(query, &[])?;
    let options = Negotiated::new(opts.request, accepts(&request));
    let image = read_body(&request)?;
    if let Err(e) = resizer_core::header::sniff(&image) {
        return Err(Reply::image_error(&e));
    }
    Ok(Reply::thumbnail(&image, &options, "no-store"))
}

/// What the client reads, from its `Accept` header, for `format=auto`.
fn accepts(request: &IncomingRequest) -> Accepts {
    let values = request.headers().get("accept");
    let joined: Vec<&str> = values
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .collect();
    Accepts::from_header((!joined.is_empty()).then(|| joined.join(",")).as_deref())
}

fn get_thumbnail(request: &IncomingRequest, query: &str) -> Result<Reply, Reply> {
    let opts = options::parse(query, &["url"])?;
    let options = Negotiated::new(opts.request, accepts(request));
    let url = opts
        .extra("url")
        .ok_or_else(|| Reply::problem(Code::BadRequest, "the url query parameter is required"))?;
    let image = fetch::get(url)?;
    // The same URL and options give the same bytes until the source changes: a CDN may keep
    // it, and revalidate with the ETag (answered 304 when the bytes are still the same).
    let reply = Reply::thumbnail(&image, &options, "public, max-age=3600");
    let validators = request.headers().get("if-none-match");
    let if_none_match = validators.first().and_then(|v| std::str::from_utf8(v).ok());
    Ok(reply.not_modified_if(if_none_match))
}

/// The request body, refused past [`MAX_BODY_BYTES`] without reading it all.
fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, Reply> {
    let too_large = || {
        Reply::problem(
            Code::PayloadTooLarge,
            format!("the body is larger than the limit of {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = request
        .headers()
        .get("content-length")
        .first()
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let unreadable =
        |what: &str| Reply::problem(Code::BadRequest, format!("the body cannot be read: {what}"));
    let body = request.consume().map_err(|()| unreadable("consumed twice"))?;
    let stream = body.stream().map_err(|()| unreadable("no stream"))?;
    let mut image = Vec::new();
    stream
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut image)
        .map_err(|e| unreadable(&e.to_string()))?;
    if image.len() as u64 > MAX_BODY_BYTES {
        return Err(too_large());
    }
    if image.is_empty() {
        return Err(Reply::problem(
            Code::UnsupportedFormat,
            "the request contains no image data",
        ));
    }
    Ok(image)
}
