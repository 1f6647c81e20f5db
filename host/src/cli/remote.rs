//! `edgethumb batch --server URL`: the same batch against a running service, through
//! `/v1/batches`. Images go up in batches of at most `--chunk`; progress is polled; each
//! finished thumbnail is downloaded into `-o DIR`. A refused chunk or a failed job is reported
//! in the summary, and the rest go on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use reqwest::multipart::{Form, Part};
use resizer_core::OutputFormat;
use serde_json::Value;

use super::files::Item;
use super::local::{Summary, progress};

/// What the service is asked to make.
pub struct Remote {
    pub server: String,
    pub api_key: Option<String>,
    pub fields: Vec<(&'static str, String)>,
    pub chunk: usize,
}

impl Remote {
    pub async fn run(&self, items: &[Item], dir: &Path) -> anyhow::Result<Summary> {
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
                match self.download(&client, item, &job["job"], dir).await {
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
    ) -> anyhow::Result<PathBuf> {
        if job["status"] != "succeeded" {
            let code = job["error"]["code"].as_str().unwrap_or("failed");
            let message = job["error"]["message"].as_str().unwrap_or_default();
            anyhow::bail!("{code}: {message}");
        }
        let format = job["result"]["format"]
            .as_str()
            .and_then(OutputFormat::parse)
            .unwrap_or(OutputFormat::Png);
        let path = job["links"]["thumbnail"].as_str().context("no thumbnail link")?;
        let resp = self.request(client, reqwest::Method::GET, path).send().await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "downloading the thumbnail: {}",
            resp.status()
        );
        let bytes = resp.bytes().await?;
        let out = item.output(dir, format);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
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
