//! A small JSON client for setting benchmarks up, and reading results back, through the public
//! API (reqwest). The measured load itself goes through `tools::open_loop` or wrk.

use std::time::Duration;

use anyhow::bail;
use reqwest::Method;

pub fn client(connections: usize, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections.max(1))
        .tcp_nodelay(true)
        .no_proxy()
        .timeout(timeout)
        .build()?)
}

pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    /// `base` is the API's base URL (`http://127.0.0.1:8080`), `key` a live API key.
    pub fn new(base: &str, key: &str, connections: usize) -> anyhow::Result<Api> {
        Ok(Api {
            http: client(connections, Duration::from_secs(30))?,
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {key}"),
        })
    }

    /// The status and JSON body (`null` when the body is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &self.auth);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await?;
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    }

    /// `call`, failing unless the status is `want`.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        want: u16,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if status != want {
            bail!("{method} {path}: {status} (wanted {want}): {value}");
        }
        Ok(value)
    }

    /// Every item of a list route, following `next_cursor`.
    pub async fn list_all(&self, path: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                Some(c) => format!("{path}{sep}limit=100&cursor={c}"),
                None => format!("{path}{sep}limit=100"),
            };
            let page = self.expect(Method::GET, &page_path, None, 200).await?;
            if let Some(items) = page["data"].as_array() {
                out.extend(items.iter().cloned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(out),
            }
        }
    }
}
