//! Value kinds for addresses: database and Redis URLs, http(s) URLs, socket addresses, CIDRs
//! and host names. See `kinds.rs` for the `Kind` trait.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;

use super::kinds::Kind;
use super::types::{TargetRule, Url, redact_url};

/// The database: `sqlite://PATH` (a file, not in-memory) or `postgres://…`.
pub struct DbUrl;

impl Kind for DbUrl {
    type Value = Url;
    fn describe(&self) -> String {
        "URL".into()
    }
    fn parse(&self, s: &str) -> Result<Url, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Url::new(s));
        }
        if s.starts_with("sqlite:") {
            if sqlite_path(s).is_none() || s.contains(":memory:") {
                return Err("a SQLite URL needs a file path, e.g. sqlite://rampart-data/rampart.db (in-memory databases are not supported)".into());
            }
            return Ok(Url::new(s));
        }
        Err(format!(
            "expected sqlite://PATH or postgres://…; got {:?}",
            redact_url(s)
        ))
    }
}

/// `redis://HOST:PORT` or `rediss://…`.
pub struct RedisUrl;

impl Kind for RedisUrl {
    type Value = Url;
    fn describe(&self) -> String {
        "URL".into()
    }
    fn parse(&self, s: &str) -> Result<Url, String> {
        if s.starts_with("redis://") || s.starts_with("rediss://") {
            Ok(Url::new(s))
        } else {
            Err(format!(
                "expected redis://HOST:PORT; got {:?}",
                redact_url(s)
            ))
        }
    }
}

/// An `http(s)://` URL, without its trailing slash.
pub struct HttpUrl;

impl Kind for HttpUrl {
    type Value = String;
    fn describe(&self) -> String {
        "http(s) URL".into()
    }
    fn parse(&self, s: &str) -> Result<String, String> {
        if (s.starts_with("https://") || s.starts_with("http://")) && s.len() > 8 {
            Ok(s.trim_end_matches('/').to_owned())
        } else {
            Err(format!("expected an http(s) URL; got {:?}", redact_url(s)))
        }
    }
}

/// `IP:port`.
pub struct Addr;

impl Kind for Addr {
    type Value = SocketAddr;
    fn describe(&self) -> String {
        "IP:port".into()
    }
    fn parse(&self, s: &str) -> Result<SocketAddr, String> {
        s.parse()
            .map_err(|_| format!("expected host:port such as 127.0.0.1:8080; got {s:?}"))
    }
}

/// Comma-separated CIDRs or IP addresses (in TOML, an array).
pub struct Cidrs;

impl Kind for Cidrs {
    type Value = Vec<IpNet>;
    fn describe(&self) -> String {
        "list of CIDRs".into()
    }
    fn parse(&self, s: &str) -> Result<Vec<IpNet>, String> {
        list_items(s)
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{p:?} is not a CIDR such as 10.0.0.0/8 or an IP address"))
            })
            .collect()
    }
}

/// Comma-separated CIDRs and host names (in TOML, an array).
pub struct Targets;

impl Kind for Targets {
    type Value = Vec<TargetRule>;
    fn describe(&self) -> String {
        "list of CIDRs and host names".into()
    }
    fn parse(&self, s: &str) -> Result<Vec<TargetRule>, String> {
        list_items(s).map(parse_target).collect()
    }
}

fn list_items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

fn parse_target(p: &str) -> Result<TargetRule, String> {
    if let Ok(n) = p.parse::<IpNet>() {
        return Ok(TargetRule::Net(n));
    }
    if let Ok(a) = p.parse::<IpAddr>() {
        return Ok(TargetRule::Net(IpNet::from(a)));
    }
    let valid = p.len() <= 253
        && p.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(TargetRule::Host(p.to_ascii_lowercase()))
    } else {
        Err(format!("{p:?} is neither a CIDR nor a host name"))
    }
}

/// The filesystem path of a `sqlite://` URL (`sqlite://rampart-data/rampart.db` is relative,
/// `sqlite:///var/lib/rampart.db` absolute), or `None` for any other scheme.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let rest = rest.split('?').next().unwrap_or(rest);
    if rest.is_empty() {
        return None;
    }
    Some(PathBuf::from(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_map_to_paths() {
        assert_eq!(
            sqlite_path("sqlite://rampart-data/rampart.db"),
            Some(PathBuf::from("rampart-data/rampart.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/r.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/r.db"))
        );
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}
