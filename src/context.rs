//! The per-request context, built once in the router and handed to both `sso` and `proxy`.
//!
//! It holds what several layers would otherwise each work out again from the request: who
//! sent it (the peer, whether that peer is a trusted proxy, and the client address behind
//! it), whether an error should be JSON or a page, the proxy's own cookies, and a request id
//! that is attached to every log line written while the request is handled (see
//! [`crate::logging::request`]), its access-log line included.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

use crate::cookie::Cookies;
pub use crate::logging::RequestId;

pub struct RequestContext {
    pub id: RequestId,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The peer is one of `trusted_proxies`, so its `X-Forwarded-*` headers are believed.
    pub peer_trusted: bool,
    /// The client's address: the peer, or for a trusted peer the nearest untrusted address
    /// in `X-Forwarded-For`. Per-client limits key on this.
    pub client_ip: IpAddr,
    /// Errors for this request are JSON (API client), not an HTML page.
    pub wants_json: bool,
    pub cookies: Cookies,
}

impl RequestContext {
    pub fn new(headers: &HeaderMap, peer: SocketAddr, trusted: &[IpNet]) -> RequestContext {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
        let peer_trusted = is_trusted(&peer.ip());
        let client_ip = if peer_trusted { client_behind(headers, peer.ip(), is_trusted) } else { peer.ip() };
        RequestContext {
            id: RequestId::next(),
            peer,
            peer_trusted,
            client_ip,
            wants_json: crate::pages::wants_json(headers),
            cookies: Cookies::parse(headers),
        }
    }
}

/// Walk `X-Forwarded-For` from the right, past trusted proxies, to the first address that is
/// not one: that is the client as far as anyone we trust can tell.
fn client_behind(headers: &HeaderMap, peer: IpAddr, is_trusted: impl Fn(&IpAddr) -> bool) -> IpAddr {
    let chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    let mut client = peer;
    for ip in chain.into_iter().rev() {
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(xff: &str, peer: &str, trusted: &[&str]) -> RequestContext {
        let mut h = HeaderMap::new();
        if !xff.is_empty() {
            h.insert("x-forwarded-for", xff.parse().unwrap());
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        RequestContext::new(&h, format!("{peer}:1234").parse().unwrap(), &trusted)
    }

    #[test]
    fn client_address_honours_only_trusted_proxies() {
        assert_eq!(ctx("9.9.9.9", "10.0.0.2", &[]).client_ip.to_string(), "10.0.0.2", "untrusted peer: its header is ignored");
        assert_eq!(ctx("1.2.3.4, 10.0.0.1", "10.0.0.2", &["10.0.0.0/8"]).client_ip.to_string(), "1.2.3.4");
        assert_eq!(ctx("6.6.6.6, 1.2.3.4", "10.0.0.2", &["10.0.0.0/8"]).client_ip.to_string(), "1.2.3.4", "a forged left entry is not believed");
        assert_eq!(ctx("garbage", "10.0.0.2", &["10.0.0.0/8"]).client_ip.to_string(), "10.0.0.2");
        assert_ne!(RequestId::next(), RequestId::next());
    }
}
