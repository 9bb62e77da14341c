//! A webhook endpoint's URL, parsed once (WHATWG rules, the `url` crate that reqwest uses) and
//! stored in its normalised form, so that the URL shown, audited and checked is the URL
//! called. Spellings that this parser and other tools read differently are refused rather
//! than normalised: `https:///h`, `https:h` or `https:\\h` (which it would read as host `h`),
//! backslashes, white space and control characters, and an `@` in the authority.

use std::net::IpAddr;

use crate::outbound::preflight::{self, Preflight};
use crate::outbound::ssrf::Policy;

/// The longest URL accepted, as written and once normalised.
pub const MAX_LEN: usize = 2048;

/// A target URL that passed every check that needs no network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl(reqwest::Url);

impl TargetUrl {
    /// Checks `raw`: spelling, scheme, credentials, port, and (for a literal address) the
    /// SSRF policy. A host name is looked up by [`TargetUrl::check_resolution`].
    pub fn parse(raw: &str, policy: &Policy) -> Result<TargetUrl, String> {
        if raw.len() > MAX_LEN {
            return Err(format!("must be at most {MAX_LEN} characters"));
        }
        check_spelling(raw)?;
        let u = reqwest::Url::parse(raw).map_err(|_| "must be an absolute URL".to_owned())?;
        let host = u.host_str().ok_or("must have a host")?.to_owned();
        match u.scheme() {
            "https" => {}
            "http" if policy.permits_plain_http(&host) => {}
            "http" => return Err("must use https".into()),
            _ => return Err("must be an https URL".into()),
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("must not contain credentials".into());
        }
        if u.fragment().is_some() {
            return Err("must not contain a fragment".into());
        }
        if u.port() == Some(0) {
            return Err("must not use port 0".into());
        }
        if let Some(ip) = literal_ip(&host)
            && !policy.permits(&host, ip)
        {
            return Err("points to a private, loopback, link-local or reserved address".into());
        }
        if u.as_str().len() > MAX_LEN {
            return Err(format!(
                "must be at most {MAX_LEN} characters once normalised"
            ));
        }
        Ok(TargetUrl(u))
    }

    /// Refuses a host name that resolves only to addresses the SSRF policy refuses (when
    /// private targets are not allowed). A name that does not resolve is accepted: delivery
    /// resolves it again at every attempt, records `dns` failures and retries, and a name set
    /// up after its endpoint is not an error.
    pub async fn check_resolution(&self, policy: &Policy) -> Result<(), String> {
        let Some(host) = self.0.host_str() else {
            return Ok(());
        };
        if literal_ip(host).is_some() {
            return Ok(());
        }
        let port = self.0.port_or_known_default().unwrap_or(443);
        match preflight::check_name(policy, host, port).await {
            Preflight::OnlyForbidden(ip) => Err(format!(
                "{host} resolves only to private, loopback, link-local or reserved addresses ({ip})"
            )),
            Preflight::Permitted | Preflight::Unresolved => Ok(()),
        }
    }

    /// The normalised URL: what is stored, shown and called.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A literal address host (`[::1]` or `127.0.0.1` as the parser normalised it).
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
}

/// The URL as written must spell `scheme://authority` with a non-empty authority that holds
/// nothing but a host and a port.
fn check_spelling(raw: &str) -> Result<(), String> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(
            "must not contain white space or control characters (percent-encode them)".into(),
        );
    }
    if raw.contains('\\') {
        return Err("must not contain a backslash (write `/`, or `%5C` in a path)".into());
    }
    let Some((_scheme, rest)) = raw.split_once(':') else {
        return Err("must be an absolute URL".into());
    };
    let Some(after) = rest.strip_prefix("//") else {
        return Err("must start with `https://` followed by a host".into());
    };
    let authority = after.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err("must name a host right after `//`".into());
    }
    if authority.contains('@') {
        return Err("must not contain credentials".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Policy {
        Policy::default()
    }

    #[test]
    fn urls_are_stored_normalised() {
        for (raw, stored) in [
            ("https://Example.COM", "https://example.com/"),
            ("https://example.com:443/a/../b", "https://example.com/b"),
            ("HTTPS://example.com/x?y=1", "https://example.com/x?y=1"),
            ("https://bücher.example/", "https://xn--bcher-kva.example/"),
            (
                "https://example.com:8443/%7e",
                "https://example.com:8443/%7e",
            ),
        ] {
            assert_eq!(TargetUrl::parse(raw, &strict()).unwrap().as_str(), stored);
        }
    }

    #[test]
    fn odd_spellings_port_zero_and_hidden_addresses_are_refused() {
        for raw in [
            "https:///h",
            "https:////h/x",
            "https:h",
            "https:/h",
            "https:\\\\h",
            "https://\\h",
            "https://h\\@example.com/",
            "https://@example.com/",
            "https://user@example.com/",
            " https://example.com/",
            "https://exa\tmple.com/",
            "https://example.com:0/",
            "https://0x7f.1/",
            "https://2130706433/",
            "https://[::ffff:7f00:1]/",
            "https://",
            "https://?x",
        ] {
            assert!(TargetUrl::parse(raw, &strict()).is_err(), "{raw:?}");
        }
    }
}
