//! A look-ahead of the SSRF guard for a host name, when a target is configured: does the name
//! resolve only to addresses the guard would refuse? That is for clear feedback at creation;
//! the guard itself runs at every connection ([`super::client`]), on the addresses connected
//! to, so a name that changes later is still stopped there.

use std::net::IpAddr;
use std::time::Duration;

use super::ssrf::Policy;

/// How long a look-ahead may wait for DNS before it gives up (and accepts).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// What the look-ahead found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// Nothing to check (private targets allowed), or some address is permitted.
    Permitted,
    /// Every address the name resolves to is refused by the policy; the first one.
    OnlyForbidden(IpAddr),
    /// The name did not resolve (failure, no address, or no answer in time).
    Unresolved,
}

/// Resolves `host` (a name, not a literal address) and applies `policy` to its addresses.
pub async fn check_name(policy: &Policy, host: &str, port: u16) -> Preflight {
    if policy.allow_private {
        return Preflight::Permitted;
    }
    let lookup = tokio::net::lookup_host((host, port));
    let addrs: Vec<IpAddr> = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        Ok(Err(_)) | Err(_) => return Preflight::Unresolved,
    };
    judge(policy, host, &addrs)
}

/// The verdict on the addresses a name resolved to.
fn judge(policy: &Policy, host: &str, addrs: &[IpAddr]) -> Preflight {
    match addrs.first() {
        None => Preflight::Unresolved,
        Some(_) if policy.permits_any(host, addrs.iter().copied()) => Preflight::Permitted,
        Some(first) => Preflight::OnlyForbidden(*first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn a_name_is_refused_only_when_every_address_is() {
        let p = Policy::default();
        assert_eq!(
            judge(&p, "h", &ips(&["127.0.0.1", "::1"])),
            Preflight::OnlyForbidden("127.0.0.1".parse().unwrap())
        );
        // The guard at delivery drops the private one and connects to the other.
        assert_eq!(
            judge(&p, "h", &ips(&["10.0.0.1", "93.184.216.34"])),
            Preflight::Permitted
        );
        assert_eq!(judge(&p, "h", &[]), Preflight::Unresolved);
        let open = Policy {
            allow_private: false,
            allowed: vec![crate::config::TargetRule::Host("h".into())],
        };
        assert_eq!(
            judge(&open, "h", &ips(&["127.0.0.1"])),
            Preflight::Permitted
        );
    }

    #[tokio::test]
    async fn localhost_resolves_only_to_loopback() {
        let found = check_name(&Policy::default(), "localhost", 443).await;
        assert!(
            matches!(found, Preflight::OnlyForbidden(ip) if ip.is_loopback()),
            "{found:?}"
        );
        let allowed = Policy {
            allow_private: true,
            allowed: vec![],
        };
        assert_eq!(
            check_name(&allowed, "localhost", 443).await,
            Preflight::Permitted
        );
    }
}
