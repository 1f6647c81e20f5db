//! Fetching images (and delivering webhooks) over HTTP without becoming an SSRF tool.
//!
//! The guard, on by default: only `http` and `https`; the host name is resolved here and
//! **every** address checked against [`forbidden_reason`] (loopback, private, link-local and
//! the cloud metadata address, unique-local, CGNAT, multicast, unspecified, reserved,
//! documentation ranges, and IPv4 forms hidden in IPv6: mapped, compatible, NAT64, 6to4,
//! Teredo); the connection then goes to exactly the checked addresses (the client is pinned to
//! them, so a second DNS answer cannot rebind it); every redirect is checked the same way, and
//! there are at most [`FetchPolicy::max_redirects`]. Operators can allow hosts or CIDRs
//! explicitly (`--fetch-allow`). The body is streamed and cut at the size limit.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netguard::forbidden_reason;
use reqwest::Url;

use crate::codes::Code;

/// A host name or a network an operator allows despite the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowRule {
    Host(String),
    Net { addr: IpAddr, prefix: u8 },
}

impl AllowRule {
    /// Parses `example.com`, `10.1.2.3`, `10.0.0.0/8`, `::1` or `fd00::/8`.
    pub fn parse(s: &str) -> Result<AllowRule, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr_text = addr.trim_start_matches('[').trim_end_matches(']');
        match addr_text.parse::<IpAddr>() {
            Ok(ip) => {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let prefix = match prefix {
                    None => max,
                    Some(p) => p
                        .parse::<u8>()
                        .ok()
                        .filter(|p| *p <= max)
                        .ok_or_else(|| format!("bad prefix in {s:?}"))?,
                };
                Ok(AllowRule::Net { addr: ip, prefix })
            }
            Err(_) if prefix.is_none() && !s.is_empty() && !s.contains(['/', ' ', ':']) => {
                Ok(AllowRule::Host(s.trim_end_matches('.').to_ascii_lowercase()))
            }
            Err(_) => Err(format!("{s:?} is neither a host name, an IP address nor a CIDR")),
        }
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (
                AllowRule::Net {
                    addr: IpAddr::V4(net),
                    prefix,
                },
                IpAddr::V4(ip),
            ) => {
                let mask = if *prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix)
                };
                u32::from(*net) & mask == u32::from(ip) & mask
            }
            (
                AllowRule::Net {
                    addr: IpAddr::V6(net),
                    prefix,
                },
                IpAddr::V6(ip),
            ) => {
                let mask = if *prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix)
                };
                u128::from(*net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Limits and exceptions for outbound requests.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    pub allow: Vec<AllowRule>,
    /// When not empty, the only hosts contacted: a host name by name (never resolved unless
    /// listed), an IP address or network for URLs that give an address.
    pub sources: Vec<AllowRule>,
    pub connect_timeout: Duration,
    /// For the whole fetch: redirects, headers and body.
    pub total_timeout: Duration,
    pub max_bytes: u64,
    pub max_redirects: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow: Vec::new(),
            sources: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(30),
            max_bytes: 25 * 1024 * 1024,
            max_redirects: 5,
        }
    }
}

/// Why a fetch failed; each variant is a job error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The guard refused the URL or an address it resolves to.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("the source did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the source is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the source answered HTTP {0}")]
    HttpStatus(u16),
    #[error("the source is not an image: {0}")]
    NotAnImage(String),
}

impl FetchError {
    /// The stable error code.
    pub fn code(&self) -> Code {
        match self {
            FetchError::Refused(_) => Code::SourceRefused,
            FetchError::Unreachable(_) => Code::SourceUnreachable,
            FetchError::Timeout(_) => Code::SourceTimeout,
            FetchError::TooLarge(_) => Code::SourceTooLarge,
            FetchError::HttpStatus(_) => Code::SourceHttpStatus,
            FetchError::NotAnImage(_) => Code::NotAnImage,
        }
    }

    /// Whether trying again later can help: timeouts, unreachable hosts and 5xx (plus 408 and
    /// 429), not refusals, 4xx, size or content problems.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Timeout(_) | FetchError::Unreachable(_) => true,
            FetchError::HttpStatus(s) => *s >= 500 || *s == 408 || *s == 429,
            _ => false,
        }
    }
}

/// The longest `url` or `callback_url` accepted (browsers and CDNs stop at 8 KiB or less).
pub const MAX_URL_BYTES: usize = 4096;

/// Checks a URL's length, its scheme (`http`/`https`) and that it has a host.
pub fn check_url(url: &str) -> Result<Url, FetchError> {
    // Jobs keep their URLs and listings return them: an unbounded URL is unbounded memory.
    if url.len() > MAX_URL_BYTES {
        return Err(FetchError::Refused(format!(
            "the URL is {} bytes long; the limit is {MAX_URL_BYTES}",
            url.len()
        )));
    }
    let parsed = Url::parse(url.trim())
        .map_err(|e| FetchError::Refused(format!("{url:?} is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FetchError::Refused(format!(
            "the {} scheme is not allowed; use http or https",
            parsed.scheme()
        )));
    }
    if parsed.host().is_none() {
        return Err(FetchError::Refused(format!("{url:?} has no host")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(FetchError::Refused(
            "URLs with credentials are not allowed".into(),
        ));
    }
    Ok(parsed)
}

impl FetchPolicy {
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow
            .iter()
            .any(|r| matches!(r, AllowRule::Host(h) if *h == host))
    }

    fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|r| r.allows_ip(ip))
    }

    /// Whether `--fetch-sources` lets this host be contacted at all (before any lookup).
    fn is_source(&self, host: &url::Host<&str>) -> bool {
        if self.sources.is_empty() {
            return true;
        }
        self.sources.iter().any(|r| match (r, host) {
            (AllowRule::Host(h), url::Host::Domain(name)) => {
                *h == name.trim_end_matches('.').to_ascii_lowercase()
            }
            (AllowRule::Net { .. }, url::Host::Ipv4(ip)) => r.allows_ip(IpAddr::V4(*ip)),
            (AllowRule::Net { .. }, url::Host::Ipv6(ip)) => r.allows_ip(IpAddr::V6(*ip)),
            _ => false,
        })
    }

    /// Resolves the URL's host and checks every address; returns the addresses to connect to.
    pub async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, FetchError> {
        if let Some(host) = url.host()
            && !self.is_source(&host)
        {
            return Err(FetchError::Refused(format!(
                "{host} is not one of the hosts this server fetches from (--fetch-sources)"
            )));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let (addrs, by_name) = match url.host() {
            Some(url::Host::Ipv4(ip)) => (vec![SocketAddr::new(ip.into(), port)], None),
            Some(url::Host::Ipv6(ip)) => (vec![SocketAddr::new(ip.into(), port)], None),
            Some(url::Host::Domain(name)) => {
                let name = name.to_string();
                let found = tokio::time::timeout(
                    self.connect_timeout,
                    tokio::net::lookup_host((name.as_str(), port)),
                )
                .await
                .map_err(|_| FetchError::Timeout(self.connect_timeout))?
                .map_err(|e| FetchError::Unreachable(format!("cannot resolve {name}: {e}")))?
                .collect::<Vec<_>>();
                if found.is_empty() {
                    return Err(FetchError::Unreachable(format!("{name} has no addresses")));
                }
                (found, Some(name))
            }
            None => return Err(FetchError::Refused("the URL has no host".into())),
        };
        if by_name.as_deref().is_some_and(|n| self.host_allowed(n)) {
            return Ok(addrs);
        }
        for a in &addrs {
            if let Some(reason) = forbidden_reason(a.ip())
                && !self.ip_allowed(a.ip())
            {
                let host = url.host_str().unwrap_or_default();
                let ip = a.ip();
                let Some(name) = &by_name else {
                    return Err(FetchError::Refused(format!(
                        "{host} is {reason}; such addresses are refused (an operator can allow them with --fetch-allow)"
                    )));
                };
                // How an internal name resolves is the operator's business, not the client's:
                // the log has it, the answer says only that the name is refused.
                tracing::info!(%name, %ip, reason, "fetch refused");
                return Err(FetchError::Refused(format!(
                    "{name} resolves to an address that is refused (loopback, private, link-local or reserved); an operator can allow it with --fetch-allow"
                )));
            }
        }
        Ok(addrs)
    }

    /// Sends one request to exactly the checked addresses, following no redirect by itself.
    async fn send(&self, req: Request<'_>, url: &Url) -> Result<reqwest::Response, FetchError> {
        let addrs = self.resolve(url).await?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .no_proxy()
            .user_agent(concat!("edgethumb/", env!("CARGO_PKG_VERSION")));
        if let Some(url::Host::Domain(name)) = url.host() {
            builder = builder.resolve_to_addrs(name, &addrs);
        }
        let client = builder
            .build()
            .map_err(|e| FetchError::Unreachable(format!("HTTP client: {e}")))?;
        let request = match req {
            Request::Get { headers } => with_headers(client.get(url.clone()), headers),
            Request::Post { body, headers } => {
                with_headers(client.post(url.clone()).body(body.to_vec()), headers)
            }
        };
        request.send().await.map_err(|e| {
            if e.is_timeout() {
                FetchError::Timeout(self.connect_timeout)
            } else {
                FetchError::Unreachable(format!(
                    "{}: {}",
                    url.host_str().unwrap_or_default(),
                    error_chain(&e)
                ))
            }
        })
    }

    /// Downloads an image: guarded, redirects checked, size-limited while streaming, sniffed.
    pub async fn fetch_image(&self, url: &str) -> Result<Fetched, FetchError> {
        match self.fetch_image_if(url, &Validators::default()).await? {
            Revalidated::Changed(fetched) => Ok(fetched),
            // Without validators the request is not conditional; a 304 to it is a bad answer.
            Revalidated::NotModified => Err(FetchError::HttpStatus(304)),
        }
    }

    /// [`Self::fetch_image`], conditional on the origin's validators from an earlier fetch
    /// (`If-None-Match`, `If-Modified-Since`): `NotModified` when the origin says 304.
    pub async fn fetch_image_if(&self, url: &str, since: &Validators) -> Result<Revalidated, FetchError> {
        let total = self.total_timeout;
        tokio::time::timeout(total, self.fetch_inner(url, since))
            .await
            .map_err(|_| FetchError::Timeout(total))?
    }

    async fn fetch_inner(&self, url: &str, since: &Validators) -> Result<Revalidated, FetchError> {
        let mut url = check_url(url)?;
        let mut redirects = 0;
        let mut conditional = Vec::new();
        if let Some(etag) = &since.etag {
            conditional.push(("if-none-match", etag.clone()));
        }
        if let Some(date) = &since.last_modified {
            conditional.push(("if-modified-since", date.clone()));
        }
        let mut resp = loop {
            let resp = self
                .send(
                    Request::Get {
                        headers: &conditional,
                    },
                    &url,
                )
                .await?;
            if resp.status() == reqwest::StatusCode::NOT_MODIFIED && !conditional.is_empty() {
                return Ok(Revalidated::NotModified);
            }
            if !resp.status().is_redirection() {
                break resp;
            }
            redirects += 1;
            if redirects > self.max_redirects {
                return Err(FetchError::Refused(format!(
                    "more than {} redirects",
                    self.max_redirects
                )));
            }
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| FetchError::HttpStatus(resp.status().as_u16()))?;
            let next = url
                .join(location)
                .map_err(|e| FetchError::Refused(format!("bad redirect {location:?}: {e}")))?;
            url = check_url(next.as_str())?;
        };
        if !resp.status().is_success() {
            return Err(FetchError::HttpStatus(resp.status().as_u16()));
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= MAX_VALIDATOR_BYTES)
                .map(str::to_string)
        };
        let validators = Validators {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
        };
        if resp.content_length().is_some_and(|n| n > self.max_bytes) {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Unreachable(format!("reading the body failed: {}", error_chain(&e))))?
        {
            if body.len() as u64 + chunk.len() as u64 > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        resizer_core::header::sniff(&body).map_err(|e| FetchError::NotAnImage(e.to_string()))?;
        Ok(Revalidated::Changed(Fetched { body, validators }))
    }

    /// POSTs a body (a webhook delivery) under the same guard, within `total`; redirects are
    /// not followed. Returns the status code.
    pub async fn post(
        &self,
        url: &str,
        body: &[u8],
        headers: &[(&str, String)],
        total: Duration,
    ) -> Result<u16, FetchError> {
        let attempt = async {
            let url = check_url(url)?;
            let resp = self.send(Request::Post { body, headers }, &url).await?;
            Ok(resp.status().as_u16())
        };
        tokio::time::timeout(total, attempt)
            .await
            .map_err(|_| FetchError::Timeout(total))?
    }
}

enum Request<'a> {
    Get {
        headers: &'a [(&'a str, String)],
    },
    Post {
        body: &'a [u8],
        headers: &'a [(&'a str, String)],
    },
}

fn with_headers(mut r: reqwest::RequestBuilder, headers: &[(&str, String)]) -> reqwest::RequestBuilder {
    for (k, v) in headers {
        r = r.header(*k, v.as_str());
    }
    r
}

/// Longer `ETag` or `Last-Modified` values are not kept (nor sent back).
const MAX_VALIDATOR_BYTES: usize = 256;

/// What an origin said to identify the version it served, for a later conditional request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// A fetched image and the origin's validators for it.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub validators: Validators,
}

/// The answer to a conditional fetch.
#[derive(Debug)]
pub enum Revalidated {
    NotModified,
    Changed(Fetched),
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_normalise_odd_ip_spellings_before_the_check() {
        // The WHATWG URL parser turns decimal, hex and short IPv4 forms into an address, so
        // the classifier sees 127.0.0.1 whatever the spelling.
        for u in [
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::ffff:7f00:1]/",
        ] {
            let url = check_url(u).unwrap();
            let ip: IpAddr = match url.host().unwrap() {
                url::Host::Ipv4(ip) => ip.into(),
                url::Host::Ipv6(ip) => ip.into(),
                url::Host::Domain(d) => panic!("{u} parsed as the domain {d}"),
            };
            assert!(forbidden_reason(ip).is_some(), "{u} -> {ip}");
        }
        for u in [
            "file:///etc/passwd",
            "gopher://127.0.0.1/",
            "ftp://example.com/",
            "http://user:pw@example.com/",
            "not a url",
        ] {
            assert!(matches!(check_url(u), Err(FetchError::Refused(_))), "{u}");
        }
    }

    #[test]
    fn allow_rules_parse_and_match() {
        let rules: Vec<AllowRule> = [
            "127.0.0.1",
            "10.0.0.0/8",
            "fd00::/8",
            "Images.Example.com.",
            "[::1]",
        ]
        .iter()
        .map(|s| AllowRule::parse(s).unwrap())
        .collect();
        let policy = FetchPolicy {
            allow: rules,
            ..FetchPolicy::default()
        };
        assert!(policy.ip_allowed("127.0.0.1".parse().unwrap()));
        assert!(!policy.ip_allowed("127.0.0.2".parse().unwrap()));
        assert!(policy.ip_allowed("10.200.3.4".parse().unwrap()));
        assert!(policy.ip_allowed("fd12::1".parse().unwrap()));
        assert!(policy.ip_allowed("::1".parse().unwrap()));
        assert!(!policy.ip_allowed("fe80::1".parse().unwrap()));
        assert!(policy.host_allowed("images.example.com"));
        assert!(!policy.host_allowed("example.com"));
        for bad in ["10.0.0.0/33", "fd00::/129", "a b", "1.2.3.4/x", ""] {
            assert!(AllowRule::parse(bad).is_err(), "{bad}");
        }
    }
}
