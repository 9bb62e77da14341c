//! The HTTP client deliveries go out through: a resolver that applies the SSRF guard to the
//! addresses it returns (the only addresses connected to), no redirects, no proxies, a per
//! attempt timeout, and a response excerpt capped at 4 KiB.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::ssrf::Policy;

pub const EXCERPT_LIMIT: usize = 4096;

#[derive(Debug, thiserror::Error)]
#[error("address {0} is not an allowed webhook target")]
struct Blocked(IpAddr);

/// Resolves with the system resolver, then drops every address the policy refuses.
struct GuardedResolver {
    policy: Arc<Policy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| policy.permits(&host, a.ip()))
                .collect();
            if allowed.is_empty() {
                let first = addrs
                    .first()
                    .map_or(IpAddr::from([0, 0, 0, 0]), SocketAddr::ip);
                return Err(Box::new(Blocked(first)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// What one attempt produced.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub status: Option<u16>,
    pub latency: Duration,
    /// None on 2xx; else `http_status`, `timeout`, `connect`, `dns`, `tls`, `ssrf_blocked`,
    /// `invalid_url`, `io`.
    pub error_class: Option<&'static str>,
    pub error: Option<String>,
    pub excerpt: Option<String>,
    pub retry_after: Option<String>,
}

impl AttemptResult {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

pub struct WebhookClient {
    client: reqwest::Client,
    policy: Arc<Policy>,
}

impl WebhookClient {
    /// The client; an error (no TLS backend, say) stops start-up.
    pub fn new(policy: Policy, timeout: Duration) -> Result<WebhookClient, reqwest::Error> {
        super::install_crypto_provider();
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .user_agent(concat!("Rampart-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .build()?;
        Ok(WebhookClient { client, policy })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// POSTs `body` to `url` with `headers`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> AttemptResult {
        let started = Instant::now();
        let fail = |class: &'static str, e: String| AttemptResult {
            status: None,
            latency: started.elapsed(),
            error_class: Some(class),
            error: Some(e),
            excerpt: None,
            retry_after: None,
        };
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) => u,
            Err(e) => return fail("invalid_url", e.to_string()),
        };
        // A literal address never reaches the resolver: check it here.
        let host = parsed.host_str().unwrap_or("").to_owned();
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>();
        if let Ok(ip) = literal
            && !self.policy.permits(&host, ip)
        {
            return fail("ssrf_blocked", Blocked(ip).to_string());
        }
        let mut req = self.client.post(parsed).body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let res = match req.send().await {
            Ok(r) => r,
            Err(e) => return fail(classify(&e), error_chain(&e)),
        };
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut res = res;
        let mut buf: Vec<u8> = Vec::new();
        // Read at most the excerpt; the rest of the body is not our concern.
        while buf.len() < EXCERPT_LIMIT {
            match res.chunk().await {
                Ok(Some(c)) => buf.extend_from_slice(&c[..c.len().min(EXCERPT_LIMIT - buf.len())]),
                _ => break,
            }
        }
        let ok = (200..300).contains(&status);
        AttemptResult {
            status: Some(status),
            latency: started.elapsed(),
            error_class: (!ok).then_some("http_status"),
            error: (!ok).then(|| format!("the endpoint answered {status}")),
            excerpt: (!buf.is_empty()).then(|| crate::store::foreign_text::storable(&buf)),
            retry_after,
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn classify(e: &reqwest::Error) -> &'static str {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if c.downcast_ref::<Blocked>().is_some() {
            return "ssrf_blocked";
        }
        cur = c.source();
    }
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        let text = error_chain(e).to_ascii_lowercase();
        if text.contains("dns") || text.contains("lookup") || text.contains("resolve") {
            "dns"
        } else if text.contains("certificate") || text.contains("tls") {
            "tls"
        } else {
            "connect"
        }
    } else {
        "io"
    }
}
