//! The IETF httpapi RateLimit fields (draft-ietf-httpapi-ratelimit-headers), formatted in this
//! one place because the draft is still moving:
//!
//! ```text
//! RateLimit-Policy: "key";q=100;w=1, "quota";q=10000;w=86400
//! RateLimit: "key";r=97;t=1, "quota";r=9120;t=40611
//! ```
//!
//! `RateLimit` lists every policy's remaining units and reset, the one closest to refusing
//! first (a client that reads one item reads that one; the console shows them all as usage).
//! `Retry-After` (seconds) accompanies a 429.

use std::cell::RefCell;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::limits::{Decision, Outcome};

pub static POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

fn window_s(o: &Outcome) -> u64 {
    o.rate.period_ms.div_ceil(1000).max(1)
}

/// Appends `"name";k=v;k=v` (the fields of one policy) to `out`. Written with `itoa` rather
/// than `format!`: this runs on every limited response, and the formatting machinery cost
/// several times the rest of the header's work.
fn item(out: &mut String, name: &str, fields: [(&str, u64); 2]) {
    let mut n = itoa::Buffer::new();
    out.push('"');
    out.push_str(name);
    out.push('"');
    for (k, v) in fields {
        out.push(';');
        out.push_str(k);
        out.push('=');
        out.push_str(n.format(v));
    }
}

/// A policy as the `RateLimit-Policy` field shows it: name, quota, window (s).
type PolicyKey = Vec<(&'static str, u32, u64)>;

thread_local! {
    /// The last `RateLimit-Policy` value this thread built, and what from. A key's requests
    /// all carry the same policies, so under load the value is built once, not per response.
    static LAST_POLICY: RefCell<(PolicyKey, Option<HeaderValue>)> =
        const { RefCell::new((Vec::new(), None)) };
}

fn policy_value(d: &Decision) -> Option<HeaderValue> {
    LAST_POLICY.with_borrow_mut(|(key, value)| {
        let same = key.len() == d.outcomes.len()
            && key
                .iter()
                .zip(&d.outcomes)
                .all(|(k, o)| *k == (o.name, o.rate.count, window_s(o)));
        if !same || value.is_none() {
            let mut policy = String::with_capacity(40 * d.outcomes.len());
            for (i, o) in d.outcomes.iter().enumerate() {
                if i > 0 {
                    policy.push_str(", ");
                }
                item(
                    &mut policy,
                    o.name,
                    [("q", u64::from(o.rate.count)), ("w", window_s(o))],
                );
            }
            key.clear();
            key.extend(
                d.outcomes
                    .iter()
                    .map(|o| (o.name, o.rate.count, window_s(o))),
            );
            *value = HeaderValue::try_from(policy).ok();
        }
        value.clone()
    })
}

pub fn apply(headers: &mut HeaderMap, d: &Decision) {
    if d.outcomes.is_empty() {
        return;
    }
    // The map is usually still empty here: one allocation for these and the conventions'.
    headers.reserve(2 + crate::http::middleware::HEADERS_ADDED);
    // The refusing policy, else the one with the least headroom.
    let closest = d.refusal().or_else(|| {
        d.outcomes.iter().min_by(|a, b| {
            let fa = a.remaining as f64 / f64::from(a.rate.count);
            let fb = b.remaining as f64 / f64::from(b.rate.count);
            fa.total_cmp(&fb)
        })
    });
    if let Some(v) = policy_value(d) {
        headers.insert(POLICY.clone(), v);
    }
    if let Some(first) = closest {
        let mut current = String::with_capacity(40 * d.outcomes.len());
        let others = d.outcomes.iter().filter(|o| !std::ptr::eq(*o, first));
        for (i, o) in std::iter::once(first).chain(others).enumerate() {
            if i > 0 {
                current.push_str(", ");
            }
            let t = if o.allowed {
                o.reset_s()
            } else {
                o.retry_after_s
            };
            item(&mut current, o.name, [("r", o.remaining), ("t", t)]);
        }
        if let Ok(v) = HeaderValue::try_from(current) {
            headers.insert(RATELIMIT.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rate;
    use crate::traffic::limits::LimitKind;

    #[test]
    fn formats_policies_and_every_limit_closest_first() {
        let d = Decision {
            outcomes: vec![
                Outcome {
                    name: "key",
                    kind: LimitKind::Rate,
                    rate: Rate::per_second(10),
                    allowed: true,
                    remaining: 2,
                    reset_ms: 1000,
                    retry_after_s: 0,
                    retry_after_ms: 0,
                },
                Outcome {
                    name: "quota",
                    kind: LimitKind::Quota,
                    rate: Rate {
                        count: 1000,
                        period_ms: 86_400_000,
                    },
                    allowed: true,
                    remaining: 900,
                    reset_ms: 3_600_000,
                    retry_after_s: 0,
                    retry_after_ms: 0,
                },
            ],
            failed_open: false,
        };
        let mut h = HeaderMap::new();
        apply(&mut h, &d);
        assert_eq!(
            h["ratelimit-policy"],
            "\"key\";q=10;w=1, \"quota\";q=1000;w=86400"
        );
        assert_eq!(h["ratelimit"], "\"key\";r=2;t=1, \"quota\";r=900;t=3600");
        // The closest policy comes first.
        let mut low_quota = d.clone();
        low_quota.outcomes[1].remaining = 10;
        let mut h = HeaderMap::new();
        apply(&mut h, &low_quota);
        assert_eq!(h["ratelimit"], "\"quota\";r=10;t=3600, \"key\";r=2;t=1");

        // The thread's last policy is reused only for the same policies.
        let mut other = d.clone();
        other.outcomes[1].rate.count = 5;
        let mut h = HeaderMap::new();
        apply(&mut h, &other);
        assert_eq!(
            h["ratelimit-policy"],
            "\"key\";q=10;w=1, \"quota\";q=5;w=86400"
        );
        other.outcomes.truncate(1);
        let mut h = HeaderMap::new();
        apply(&mut h, &other);
        assert_eq!(h["ratelimit-policy"], "\"key\";q=10;w=1");
        let mut h = HeaderMap::new();
        apply(&mut h, &d);
        assert_eq!(
            h["ratelimit-policy"],
            "\"key\";q=10;w=1, \"quota\";q=1000;w=86400"
        );
    }
}
