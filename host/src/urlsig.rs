//! Signed thumbnail URLs, in the manner of imgproxy's: `GET /v1/thumbnail?url=..&width=..&sig=S`
//! where `S` is the unpadded base64url HMAC-SHA256, under the server's `--url-signing-key`,
//! of the route's path and its other query parameters. Anyone holding the link gets exactly
//! that thumbnail, even with API keys on, and changing any parameter breaks the signature.
//!
//! The parameters are signed in a canonical form (decoded, sorted, re-encoded), so a client
//! or proxy that reorders them or encodes them differently does not break a link.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::form_urlencoded;

/// The query parameter that carries the signature.
pub const PARAM: &str = "sig";

/// The route signed URLs are for.
pub const PATH: &str = "/v1/thumbnail";

/// Checks a configured key: any text of at least 16 bytes.
pub fn decode_key(key: &str) -> Result<Vec<u8>, String> {
    let key = key.trim();
    if key.len() < 16 {
        return Err("--url-signing-key is too short: use at least 16 random bytes".into());
    }
    Ok(key.as_bytes().to_vec())
}

/// `path` and the query's parameters other than [`PARAM`], decoded, sorted and re-encoded.
fn canonical(path: &str, query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name != PARAM)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{encoded}")
}

fn mac(key: &[u8], path: &str, query: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(canonical(path, query).as_bytes());
    mac
}

/// The signature of `path?query` (any `sig` in `query` is ignored).
pub fn sign(key: &[u8], path: &str, query: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac(key, path, query).finalize().into_bytes())
}

/// `query` with its signature appended.
pub fn signed_query(key: &[u8], path: &str, query: &str) -> String {
    format!("{query}&{PARAM}={}", sign(key, path, query))
}

/// The signature the query carries, if any.
pub fn carried(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == PARAM)
        .map(|(_, v)| v.into_owned())
}

/// Whether `query`'s signature matches the rest of it (compared in constant time).
pub fn verify(key: &[u8], path: &str, query: &str) -> bool {
    let Some(sig) = carried(query) else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig.trim_end_matches('=')) else {
        return false;
    };
    mac(key, path, query).verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef-test";

    #[test]
    fn a_signed_query_verifies_in_any_order_and_encoding() {
        let q = "url=http%3A%2F%2F127.0.0.1%2Fa.jpg&width=300";
        let signed = signed_query(KEY, PATH, q);
        assert!(verify(KEY, PATH, &signed));
        // Reordered, and with the URL not percent-encoded where it need not be.
        let sig = carried(&signed).unwrap();
        assert!(verify(
            KEY,
            PATH,
            &format!("width=300&sig={sig}&url=http://127.0.0.1/a.jpg")
        ));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let signed = signed_query(KEY, PATH, "url=http://127.0.0.1/a.jpg&width=300");
        let sig = carried(&signed).unwrap();
        for tampered in [
            format!("url=http://127.0.0.1/a.jpg&width=301&sig={sig}"),
            format!("url=http://127.0.0.1/b.jpg&width=300&sig={sig}"),
            format!("url=http://127.0.0.1/a.jpg&width=300&height=10&sig={sig}"),
            "url=http://127.0.0.1/a.jpg&width=300".to_string(),
            "url=http://127.0.0.1/a.jpg&width=300&sig=!!".to_string(),
        ] {
            assert!(!verify(KEY, PATH, &tampered), "{tampered}");
        }
        assert!(!verify(b"another key of 16+ bytes", PATH, &signed));
        assert!(!verify(KEY, "/v1/other", &signed));
    }
}
