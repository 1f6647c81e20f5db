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
    #[command(flatten)]
    pub look: super::look::LookArgs,
    /// `placeholder` makes the link answer a neutral image instead of an error.
    #[arg(long)]
    pub on_error: Option<String>,
}

/// The signed URL for `args`.
pub fn signed_url(args: &SignArgs) -> anyhow::Result<String> {
    let key = urlsig::decode_key(&args.key).map_err(anyhow::Error::msg)?;
    // The options in their canonical form: checked as the server will check them, and only
    // those that differ from the defaults, so equal requests sign alike.
    let request = args.look.request()?;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("url", &args.url);
    query.extend_pairs(request.canonical());
    if let Some(on_error) = &args.on_error {
        query.append_pair("on_error", on_error);
    }
    let query = urlsig::signed_query(&key, urlsig::PATH, &query.finish());
    Ok(format!(
        "{}{}?{query}",
        args.server.trim_end_matches('/'),
        urlsig::PATH
    ))
}
