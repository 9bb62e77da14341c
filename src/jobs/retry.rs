//! The retry policy — the one place it lives (documented in docs/RETRY-POLICY.md).
//!
//! Attempt `n` (1-based) that fails is retried after an exponential delay
//! `d(n) = min(max, base × 2^(n-1))`, jittered into `[d/2, d]` ("equal jitter": never less
//! than half the step, so retries stay spread and ordered), at most `max_retries` times. A
//! receiver's `Retry-After` is honoured but clamped into `[delay, 2 × delay]`: it may slow us
//! down, never speed us up beyond the policy nor stall a delivery for hours.

use std::time::Duration;

/// Upper bound of an endpoint's `max_retries`.
pub const MAX_RETRIES: u32 = 20;
/// `max_retries` when an endpoint does not say.
pub const DEFAULT_MAX_RETRIES: u32 = 12;
/// Attempts of internal jobs (exports, alerts, maintenance) before they are dead.
pub const INTERNAL_JOB_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub base: Duration,
    pub max: Duration,
}

impl Policy {
    /// The un-jittered step after failed attempt `n` (1-based).
    pub fn step(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(40);
        let ms = (self.base.as_millis() as u64).saturating_mul(1u64 << exp);
        Duration::from_millis(ms).min(self.max)
    }

    /// The delay before the retry that follows failed attempt `n`, with jitter `r` in [0, 1).
    pub fn delay(&self, attempt: u32, r: f64) -> Duration {
        let step = self.step(attempt);
        let half = step / 2;
        half + Duration::from_secs_f64(half.as_secs_f64() * r.clamp(0.0, 1.0))
    }

    /// [`Policy::delay`] with fresh randomness.
    pub fn next_delay(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }

    /// Honours a receiver's `Retry-After`, clamped to `[delay, 2 × delay]`.
    pub fn with_retry_after(delay: Duration, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(ra) => ra.clamp(delay, delay * 2),
            None => delay,
        }
    }
}

/// Parses a `Retry-After` value: seconds, or an HTTP date.
pub fn parse_retry_after(v: &str, now_ms: i64) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some(Duration::from_millis(
        u64::try_from(ms - now_ms).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule() {
        let p = Policy {
            base: Duration::from_secs(5),
            max: Duration::from_secs(36_000),
        };
        let steps: Vec<u64> = (1..=15).map(|n| p.step(n).as_secs()).collect();
        assert_eq!(
            steps,
            [
                5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 36000, 36000
            ]
        );
        for n in 1..=15 {
            let s = p.step(n);
            assert_eq!(p.delay(n, 0.0), s / 2, "lowest jitter is half the step");
            assert!(p.delay(n, 0.999) <= s, "never above the step");
            let d = p.next_delay(n);
            assert!(d >= s / 2 && d <= s);
        }
        // Far beyond the cap it stays capped (no overflow).
        assert_eq!(p.step(200), Duration::from_secs(36_000));
        // The whole default budget, un-jittered: about 5.7 hours.
        let total: u64 = (1..=DEFAULT_MAX_RETRIES).map(|n| p.step(n).as_secs()).sum();
        assert_eq!(total, 20_475);
    }

    #[test]
    fn retry_after_is_clamped() {
        let d = Duration::from_secs(10);
        assert_eq!(Policy::with_retry_after(d, None), d);
        assert_eq!(Policy::with_retry_after(d, Some(Duration::from_secs(1))), d);
        assert_eq!(
            Policy::with_retry_after(d, Some(Duration::from_secs(15))),
            Duration::from_secs(15)
        );
        assert_eq!(
            Policy::with_retry_after(d, Some(Duration::from_secs(3600))),
            Duration::from_secs(20)
        );
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        assert!(parse_retry_after("soon", 0).is_none());
    }
}
