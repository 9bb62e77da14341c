//! The client's address: the connection's peer, unless the peer is a trusted proxy, in which
//! case the rightmost `X-Forwarded-For` hop that is not itself a trusted proxy.

use std::net::{IpAddr, Ipv4Addr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The resolved client address, as a request extension.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer
        .map(canonical)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .collect();
    // Rightmost first: each trusted proxy appended the address it saw.
    for hop in hops.iter().rev() {
        if !is_trusted(hop) {
            return *hop;
        }
    }
    hops.first().copied().unwrap_or(peer)
}

/// `::ffff:10.0.0.1` is `10.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(xff: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert("x-forwarded-for", xff.parse().unwrap());
        m
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(resolve(Some(peer), &h("1.2.3.4"), &[]), peer);
    }

    #[test]
    fn rightmost_untrusted_hop_behind_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        // A client spoofing 6.6.6.6 in front; the real client is 198.51.100.7.
        let ip = resolve(Some(peer), &h("6.6.6.6, 198.51.100.7, 10.0.0.5"), &trusted);
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(resolve(Some(peer), &HeaderMap::new(), &trusted), peer);
    }
}
