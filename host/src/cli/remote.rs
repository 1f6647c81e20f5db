//! `edgethumb batch --server URL`: the same batch against a running service, through
//! `/v1/batches`. Images go up in batches of at most `--chunk`; progress is polled; each
//! finished thumbnail is downloaded into `-o DIR`. A refused chunk or a failed job is reported
//! in the summary, and the rest go on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use super::files::{self, Item, Outputs};
use super::local::{Summary, progress};

/// What the service is asked to make.
pub struct Remote {
    pub server: String,
    pub api_key: Option<String>,
    pub fields: Vec<(&'static str, String)>,
    pub chunk: usize,
}

impl Remote {
    pub async fn run(&self, items: &[Item], dir: &Path, outputs: &Outputs) -> anyhow::Result<Summary> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()?;
        let mut summary = Summary::default();
        let mut batches = Vec::new();
        for chunk in items.chunks(self.chunk.max(1)) {
            match self.submit(&client, chunk).await {
                Ok(url) => batches.push((url, chunk)),
                Err(e) => summary
                    .failed
                    .extend(chunk.iter().map(|i| (i.label.clone(), format!("{e:#}")))),
            }
        }
        let bar = progress(items.len());
        bar.inc(summary.failed.len() as u64);
        let mut finished = Vec::new();
        for (url, chunk) in batches {
            let before = bar.position();
            loop {
                let batch = self.get_json(&client, &url).await?;
                bar.set_position(before + batch["done"].as_u64().unwrap_or(0));
                if batch["finished"] == true {
                    finished.push((batch, chunk));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        bar.finish_and_clear();
        for (batch, chunk) in finished {
            let jobs = batch["jobs"].as_array().cloned().unwrap_or_default();
            for (item, job) in chunk.iter().zip(jobs) {
                match self.download(&client, item, &job["job"], dir, outputs).await {
                    Ok(_) => summary.written += 1,
                    Err(e) => summary.failed.push((item.label.clone(), format!("{e:#}"))),
                }
            }
        }
        Ok(summary)
    }

    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let req = client.request(method, url);
        match &self.api_key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    /// Sends one chunk; the batch's URL.
    async fn submit(&self, client: &reqwest::Client, chunk: &[Item]) -> anyhow::Result<String> {
        let mut form = Form::new();
        for (name, value) in &self.fields {
            form = form.text(*name, value.clone());
        }
        for item in chunk {
            let bytes = item.read()?;
            form = form.part("file", Part::bytes(bytes).file_name(item.file_name()));
        }
        let resp = self
            .request(client, reqwest::Method::POST, "/v1/batches")
            .multipart(form)
            .send()
            .await
            .context("sending the batch")?;
        let body = answer(resp).await?;
        body["links"]["self"]
            .as_str()
            .map(str::to_string)
            .context("the server's answer has no batch link")
    }

    async fn get_json(&self, client: &reqwest::Client, path: &str) -> anyhow::Result<Value> {
        let resp = self.request(client, reqwest::Method::GET, path).send().await?;
        answer(resp).await
    }

    async fn download(
        &self,
        client: &reqwest::Client,
        item: &Item,
        job: &Value,
        dir: &Path,
        outputs: &Outputs,
    ) -> anyhow::Result<PathBuf> {
        if job["status"] != "succeeded" {
            let code = job["error"]["code"].as_str().unwrap_or("failed");
            let message = job["error"]["message"].as_str().unwrap_or_default();
            anyhow::bail!("{code}: {message}");
        }
        let path = job["links"]["thumbnail"].as_str().context("no thumbnail link")?;
        let resp = self.request(client, reqwest::Method::GET, path).send().await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "downloading the thumbnail: {}",
            resp.status()
        );
        // The extension is what the server says it sent (its Content-Type, else the job's
        // result; only if it says neither, the bytes' magic number), checked against the
        // bytes; never a default.
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.bytes().await?;
        let said = content_type
            .as_deref()
            .and_then(files::format_of_mime)
            .or_else(|| {
                job["result"]["format"]
                    .as_str()
                    .and_then(resizer_core::OutputFormat::parse)
            })
            .or_else(|| files::sniff(&bytes))
            .with_context(|| {
                format!(
                    "the server did not say what format the thumbnail is (Content-Type {})",
                    content_type.as_deref().unwrap_or("missing")
                )
            })?;
        let out = item.output(dir, files::produced_format(said, &bytes)?);
        outputs.write(&out, &bytes)?;
        Ok(out)
    }
}

/// The JSON of a successful answer; the problem's detail as the error otherwise.
async fn answer(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let detail = body["detail"].as_str().unwrap_or("no detail");
    let code = body["code"].as_str().unwrap_or("error");
    anyhow::bail!("the server answered {status} ({code}): {detail}")
}
