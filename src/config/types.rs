//! The domain types configuration values parse into. Secrets and URLs with passwords have a
//! redacting `Debug`, so `Debug` of the whole `Config` never shows one.

use std::fmt;

use ipnet::IpNet;

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// A URL that may carry a password (`postgres://user:pw@host/db`); `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Url(String);

impl Url {
    /// Only the config's value kinds build one, after checking the scheme.
    pub(super) fn new(s: impl Into<String>) -> Self {
        Url(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`, safe for logs.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

pub fn redact_url(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else {
        return u.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => u.to_owned(),
    }
}

/// `N/s`, `N/min`, `N/h` or `N/day`: a count per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rate {
    pub count: u32,
    pub period_ms: u64,
}

impl Rate {
    pub fn parse(s: &str) -> Option<Rate> {
        let (n, unit) = s.trim().split_once('/')?;
        let count: u32 = n.trim().parse().ok().filter(|c| *c > 0)?;
        let period_ms = match unit.trim() {
            "s" | "sec" | "second" => 1_000,
            "m" | "min" | "minute" => 60_000,
            "h" | "hour" => 3_600_000,
            "d" | "day" => 86_400_000,
            _ => return None,
        };
        Some(Rate { count, period_ms })
    }

    pub fn per_second(count: u32) -> Rate {
        Rate {
            count,
            period_ms: 1_000,
        }
    }

    /// The text form, e.g. `60/min`.
    pub fn render(&self) -> String {
        let unit = match self.period_ms {
            1_000 => "s",
            60_000 => "min",
            3_600_000 => "h",
            86_400_000 => "day",
            _ => return format!("{}/{}ms", self.count, self.period_ms),
        };
        format!("{}/{unit}", self.count)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, human text when it is.
    Auto,
    Json,
    Text,
}

/// SQLite's `synchronous` setting: how far a commit is flushed before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// Every commit is flushed to disk: an acknowledged write survives a power cut.
    Full,
    /// Faster; a power loss may lose the last acknowledged commits (a process crash loses
    /// nothing).
    Normal,
}

/// An entry of `RAMPART_WEBHOOK_ALLOWED_TARGETS`: a CIDR or a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRule {
    Net(IpNet),
    Host(String),
}
