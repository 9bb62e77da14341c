//! The SSRF guard: which addresses a webhook may reach. Checked on the addresses DNS returns,
//! and those exact addresses are the ones connected to (no second lookup, so no rebinding
//! window). Private, loopback, link-local, metadata, multicast and reserved ranges are refused,
//! including IPv4 hidden in IPv6 (mapped, NAT64, 6to4), unless `RAMPART_WEBHOOK_ALLOW_PRIVATE`
//! or an entry of `RAMPART_WEBHOOK_ALLOWED_TARGETS` opens them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::TargetRule;

/// What the guard is told by configuration.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allow_private: bool,
    pub allowed: Vec<TargetRule>,
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata included
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (64..128).contains(&o[1])) // carrier-grade NAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
        || o[0] >= 240 // reserved
}

/// The IPv4 address an IPv6 address carries, if any (mapped, compatible, NAT64, 6to4).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail); // IPv4-compatible (deprecated)
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(tail); // NAT64
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return forbidden_v4(v4);
    }
    let s0 = ip.segments()[0];
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s0 & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 metadata included)
        || (s0 & 0xffc0) == 0xfe80 // link-local
        || (s0 & 0xffc0) == 0xfec0 // site-local (deprecated)
        || s0 == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || s0 == 0x0100 && ip.segments()[1..4] == [0, 0, 0] // discard-only
}

/// Whether `ip` is outside the public internet.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

impl Policy {
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed
            .iter()
            .any(|r| matches!(r, TargetRule::Host(h) if *h == host))
    }

    fn ip_allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allowed
            .iter()
            .any(|r| matches!(r, TargetRule::Net(n) if n.contains(&ip)))
    }

    /// Whether a connection to `ip`, reached through `host`, is permitted.
    pub fn permits(&self, host: &str, ip: IpAddr) -> bool {
        self.allow_private || !is_forbidden(ip) || self.host_allowed(host) || self.ip_allowed(ip)
    }

    /// Whether a name that resolved to `addrs` can be reached at all: the guard at connect
    /// time drops the refused addresses and uses the rest.
    pub fn permits_any(&self, host: &str, addrs: impl IntoIterator<Item = IpAddr>) -> bool {
        addrs.into_iter().any(|ip| self.permits(host, ip))
    }

    /// Whether plain `http` may be used for `host` (only where private targets are allowed).
    pub fn permits_plain_http(&self, host: &str) -> bool {
        self.allow_private
            || self.host_allowed(host)
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.ip_allowed(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_ssrf_table() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            assert!(is_forbidden(ip(bad)), "{bad} must be refused");
        }
        for good in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_forbidden(ip(good)), "{good} must be allowed");
        }
    }

    #[test]
    fn allowlists_open_specific_targets() {
        let p = Policy {
            allow_private: false,
            allowed: vec![
                TargetRule::Net("10.0.0.0/8".parse().unwrap()),
                TargetRule::Host("hooks.internal".into()),
            ],
        };
        assert!(p.permits("x", ip("10.2.3.4")));
        assert!(!p.permits("x", ip("192.168.0.1")));
        assert!(p.permits("hooks.internal", ip("192.168.0.1")));
        assert!(p.permits("HOOKS.internal.", ip("127.0.0.1")));
        assert!(p.permits_plain_http("hooks.internal"));
        assert!(p.permits_plain_http("10.9.9.9"));
        assert!(!p.permits_plain_http("example.com"));
        assert!(
            Policy {
                allow_private: true,
                allowed: vec![]
            }
            .permits("x", ip("127.0.0.1"))
        );
    }
}
