//! Parsing and formatting of durations and rates, as the command line and the knobs take them.

use std::time::Duration;

use anyhow::{Context as _, bail};

/// `500ms`, `10s`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("expected a duration such as 500ms or 10s; got {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("unknown duration unit in {s:?}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// `N/s`, `N/min`, `N/h` or `N/day`, as Rampart's flags take them: the count and its period.
pub fn parse_rate(s: &str) -> anyhow::Result<(u64, Duration)> {
    let (n, unit) = s
        .split_once('/')
        .with_context(|| format!("{s:?}: expected N/unit"))?;
    let n: u64 = n.trim().parse().with_context(|| format!("{s:?}"))?;
    let secs = match unit.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3_600,
        "d" | "day" => 86_400,
        u => bail!("{s:?}: unknown unit {u:?}"),
    };
    Ok((n, Duration::from_secs(secs)))
}

/// A duration as the knobs write it back in reports (`10s`, `500ms`).
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Milliseconds since the Unix epoch, by the wall clock (compared with the API's timestamps).
pub fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit_the_knobs_use() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("ten").is_err());
        assert_eq!(show_duration(Duration::from_secs(20)), "20s");
    }

    #[test]
    fn rates_parse_as_rampart_writes_them() {
        assert_eq!(
            parse_rate("50/min").ok(),
            Some((50, Duration::from_secs(60)))
        );
        assert!(parse_rate("50 per min").is_err());
    }
}
