//! A local HTTP server for fetch and webhook tests: image, redirect, endless, slow, 404 and
//! text routes, and a webhook receiver that records deliveries and can fail on purpose. It
//! listens on 127.0.0.1 only; tests never contact anything else.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

#[derive(Default)]
pub struct Recorded {
    /// Requests to any route, so a test can prove a refused URL was never contacted.
    pub hits: AtomicUsize,
    /// Webhook deliveries: headers and body.
    pub deliveries: Mutex<Vec<(HeaderMap, Bytes)>>,
    /// The receiver answers 500 while this is above zero, counting down.
    pub fail_next: AtomicUsize,
    /// `/versioned.jpg`: the version it serves (its ETag is `"v{n}"`), and the requests it
    /// answered with 304 Not Modified.
    pub version: AtomicUsize,
    pub not_modified: AtomicUsize,
}

pub struct Origin {
    pub addr: SocketAddr,
    pub state: Arc<Recorded>,
    image: Arc<Vec<u8>>,
}

#[derive(Clone)]
struct Ctx {
    rec: Arc<Recorded>,
    image: Arc<Vec<u8>>,
}

impl Origin {
    pub async fn start(image: Vec<u8>) -> Origin {
        let rec = Arc::new(Recorded::default());
        let image = Arc::new(image);
        let ctx = Ctx {
            rec: rec.clone(),
            image: image.clone(),
        };
        let app = axum::Router::new()
            .route("/img.jpg", get(img))
            .route("/versioned.jpg", get(versioned))
            .route("/redirect", get(redirect))
            .route("/huge", get(huge))
            .route("/slow", get(slow).post(slow))
            .route("/after-4s.jpg", get(after_4s))
            .route("/text", get(text))
            .route("/hook", post(hook))
            .fallback(|State(c): State<Ctx>| async move {
                c.rec.hits.fetch_add(1, Ordering::SeqCst);
                StatusCode::NOT_FOUND
            })
            .with_state(ctx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Origin {
            addr,
            state: rec,
            image,
        }
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn image(&self) -> &[u8] {
        &self.image
    }

    /// Makes `/versioned.jpg` serve a new version (a different image, a new ETag).
    pub fn bump_version(&self) {
        self.state.version.fetch_add(1, Ordering::SeqCst);
    }

    pub fn not_modified(&self) -> usize {
        self.state.not_modified.load(Ordering::SeqCst)
    }
}

/// The origin image at version 0, then the same image upside down and half as wide per
/// version after, with `ETag: "v{n}"` and a `Last-Modified`; `If-None-Match` with the
/// current ETag gets 304.
async fn versioned(State(c): State<Ctx>, headers: HeaderMap) -> Response {
    c.rec.hits.fetch_add(1, Ordering::SeqCst);
    let version = c.rec.version.load(Ordering::SeqCst);
    let etag = format!("\"v{version}\"");
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        c.rec.not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    let mut body = c.image.as_ref().clone();
    if version > 0 {
        let img = image::load_from_memory(&body).unwrap();
        let img = img.resize_exact(
            img.width() / 2,
            img.height(),
            image::imageops::FilterType::Triangle,
        );
        let mut out = std::io::Cursor::new(Vec::new());
        img.flipv().write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        body = out.into_inner();
    }
    let headers = [
        ("content-type", "image/jpeg".to_string()),
        ("etag", etag),
        ("last-modified", "Wed, 02 Dec 2026 10:00:00 GMT".to_string()),
    ];
    (headers, body).into_response()
}

async fn img(State(c): State<Ctx>) -> Response {
    c.rec.hits.fetch_add(1, Ordering::SeqCst);
    ([("content-type", "image/jpeg")], c.image.as_ref().clone()).into_response()
}

#[derive(serde::Deserialize)]
struct To {
    to: String,
}

async fn redirect(State(c): State<Ctx>, Query(to): Query<To>) -> Response {
    c.rec.hits.fetch_add(1, Ordering::SeqCst);
    (StatusCode::FOUND, [("location", to.to)]).into_response()
}

/// A PNG header and then zeros, forever, with no Content-Length.
async fn huge(State(c): State<Ctx>) -> Response {
    c.rec.hits.fetch_add(1, Ordering::SeqCst);
    let chunks = futures::stream::iter(
        std::iter::once(b"\x89PNG\r\n\x1a\n".to_vec()).chain(std::iter::repeat(vec![0u8; 64 * 1024])),
    )
    .map(Ok::<_, std::io::Error>);
    ([("content-type", "image/png")], Body::from_stream(chunks)).into_response()
}

async fn slow(State(c): State<Ctx>) -> Response {
    c.rec.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    ([("content-type", "image/jpeg")], c.image.as_ref().clone()).into_response()
}

/// The image, after 4 s: longer than a short lease, shorter than the fetch timeout.
async fn after_4s(State(c): State<Ctx>) -> Response {
    c.rec.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    ([("content-type", "image/jpeg")], c.image.as_ref().clone()).into_response()
}

async fn text(State(c): State<Ctx>) -> Response {
    c.rec.hits.fetch_add(1, Ordering::SeqCst);
    ([("content-type", "image/jpeg")], "hello, I am not an image").into_response()
}

async fn hook(State(c): State<Ctx>, headers: HeaderMap, body: Bytes) -> StatusCode {
    c.rec.hits.fetch_add(1, Ordering::SeqCst);
    let failing = c
        .rec
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    c.rec.deliveries.lock().unwrap().push((headers, body));
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

use futures::StreamExt;
