//! `edgethumb sign`: prints a signed `GET /v1/thumbnail` URL, for `<img src>` with API keys on.

use clap::Args;

use crate::urlsig;

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image's http(s) URL.
    pub url: String,
    /// The server's --url-signing-key.
    #[arg(long, env = "EDGETHUMB_URL_SIGNING_KEY", hide_env_values = true)]
    pub key: String,
    /// The service's base URL, put in front of the signed path.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Thumbnail options, as the API takes them (width, height, fit, format, quality,
    /// enlarge, dpr, gravity, animated, on_error); each is part of what is signed.
    #[arg(long)]
    pub width: Option<String>,
    #[arg(long)]
    pub height: Option<String>,
    #[arg(long)]
    pub fit: Option<String>,
    #[arg(long)]
    pub format: Option<String>,
    #[arg(long)]
    pub quality: Option<String>,
    #[arg(long)]
    pub enlarge: Option<String>,
    #[arg(long)]
    pub dpr: Option<String>,
    #[arg(long)]
    pub gravity: Option<String>,
    #[arg(long)]
    pub animated: Option<String>,
    #[arg(long)]
    pub on_error: Option<String>,
}

/// The signed URL for `args`.
pub fn signed_url(args: &SignArgs) -> anyhow::Result<String> {
    let key = urlsig::decode_key(&args.key).map_err(anyhow::Error::msg)?;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("url", &args.url);
    for (name, value) in [
        ("width", &args.width),
        ("height", &args.height),
        ("fit", &args.fit),
        ("format", &args.format),
        ("quality", &args.quality),
        ("enlarge", &args.enlarge),
        ("dpr", &args.dpr),
        ("gravity", &args.gravity),
        ("animated", &args.animated),
        ("on_error", &args.on_error),
    ] {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let query = urlsig::signed_query(&key, urlsig::PATH, &query.finish());
    Ok(format!(
        "{}{}?{query}",
        args.server.trim_end_matches('/'),
        urlsig::PATH
    ))
}
