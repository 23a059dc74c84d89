//! Header rules for forwarding, as small pure functions: hop-by-hop removal, the
//! `X-Forwarded-*` set, the original `Host`, redaction of secrets for the access log, and
//! the detaching of Jellyfin's header values from hyper's read buffer for HTTP/2 clients.

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue, CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, Uri};

/// Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1), as
/// names made once: removing by `&str` parses and hashes the name anew each time, which was
/// 7 % of the proxy's instructions per forwarded request (callgrind).
static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Copy every value of `headers` into one new buffer of their total size.
///
/// hyper parses a response's header values as slices of its connection's read buffer (8 KiB
/// and up). An HTTP/2 connection's HPACK encoder keeps the values it indexes for the
/// connection's life, and with them that whole buffer: 8 KiB or more held by every idle
/// HTTP/2 connection (heaptrack: 2,000 idle connections held 2,000 of hyper's upstream read
/// buffers). After this the values share one small allocation instead. HTTP/1.1 writes the
/// values out and drops them, so it does not need this.
pub fn detach_values(headers: &mut HeaderMap) {
    let total: usize = headers.values().map(|v| v.len()).sum();
    let mut buf = bytes::BytesMut::with_capacity(total);
    for v in headers.values() {
        buf.extend_from_slice(v.as_bytes());
    }
    let buf = buf.freeze();
    let mut at = 0;
    for v in headers.values_mut() {
        let len = v.len();
        // The bytes were a valid value a moment ago, so this cannot fail; if it did, the value
        // would simply stay where it was.
        if let Ok(mut copy) = HeaderValue::from_maybe_shared(buf.slice(at..at + len)) {
            copy.set_sensitive(v.is_sensitive());
            *v = copy;
        }
        at += len;
    }
}

/// Does this request ask for a protocol upgrade (`Connection: upgrade` plus `Upgrade: …`)?
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE) && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The position of `name` in [`HOP_BY_HOP`]. A match on the name's text compiles to a switch
/// on its length and one comparison, where comparing with each of the nine costs nine; it
/// runs for every header of every message.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        _ => return None,
    })
}

/// `Connection` is one value naming no header of its own: `keep-alive` or `close`, what nearly
/// every HTTP/1.1 response and request says. Then there is nothing to tokenize (the
/// tokenizing was 1.5 % of a forwarded request's instructions, callgrind).
fn only_connection_tokens(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(CONNECTION).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.as_bytes().eq_ignore_ascii_case(b"keep-alive") || v.as_bytes().eq_ignore_ascii_case(b"close"),
        _ => false,
    }
}

/// Remove hop-by-hop headers, including every header named in `Connection`. When `upgrade`
/// is true the `Upgrade` header is kept and `Connection: upgrade` is put back, which is how
/// a websocket handshake crosses a proxy.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let upgrade_value = if upgrade { headers.get(UPGRADE).cloned() } else { None };
    // Only the hop-by-hop names present are removed: a removal hashes and probes even when
    // the name is absent, and most messages carry none or one of the nine.
    let mut present = 0u16;
    for key in headers.keys() {
        if let Some(i) = hop_by_hop_index(key) {
            present |= 1 << i;
        }
    }
    if present & 1 != 0 && !only_connection_tokens(headers) {
        // Names listed in `Connection` beyond the nine (`keep-alive` and `close`, by far the
        // most common tokens, need no name of their own: no allocation for them).
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter(|t| !t.eq_ignore_ascii_case("close") && !HOP_BY_HOP.iter().any(|h| t.eq_ignore_ascii_case(h.as_str())))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if let Some(v) = upgrade_value {
        headers.insert(UPGRADE, v);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The host the client asked for: for HTTP/2 the `:authority` (which wins over a `Host`
/// header, RFC 9113 §8.3.1), for HTTP/1 the `Host` header; never with userinfo.
pub fn original_host(headers: &HeaderMap, uri: &Uri, version: http::Version) -> Option<HeaderValue> {
    let authority = || uri.authority().map(|a| a.as_str().rsplit('@').next().unwrap_or("").to_string()).filter(|a| !a.is_empty()).and_then(|a| HeaderValue::from_str(&a).ok());
    if version == http::Version::HTTP_2 {
        authority().or_else(|| headers.get(HOST).cloned())
    } else {
        headers.get(HOST).cloned().or_else(authority)
    }
}

/// HTTP/2 clients may split cookies over several `cookie` fields; an HTTP/1.1 upstream must
/// get them as one (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let all = headers.get_all(http::header::COOKIE);
    let mut values = all.iter();
    if values.next().is_none() || values.next().is_none() {
        return;
    }
    let joined = headers.get_all(http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join("; ");
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(http::header::COOKIE, v);
    }
}

/// Set `X-Forwarded-For/Proto/Host`. A chain from a trusted peer (another proxy in front of
/// us) is extended; from anyone else it is replaced, so a client cannot forge its address.
pub fn set_forwarded(headers: &mut HeaderMap, peer: IpAddr, peer_trusted: bool, host: Option<&HeaderValue>) {
    let existing_xff = if peer_trusted { headers.get_all(&X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(", ") } else { String::new() };
    let xff = if !existing_xff.is_empty() { format!("{existing_xff}, {peer}") } else { ip_text(peer) };
    // The string's buffer becomes the value's (`from_str` would copy it into a new one).
    let xff = HeaderValue::from_maybe_shared(bytes::Bytes::from(xff)).expect("ip addresses and commas are valid header text");
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    if !(peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
    }
    if !(peer_trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST.clone(), h.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
}

/// `ip` as text; IPv4 without `fmt` (its `Display` was 2 % of a forwarded request's
/// instructions, callgrind).
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

/// The path and query for the access log, with secret query values (`api_key`, `ApiKey`,
/// `token`, `code`, `state`, `pw`, ...) replaced by `REDACTED`.
pub fn redacted_path(uri: &Uri) -> String {
    const SECRET_PARAMS: [&str; 9] = ["api_key", "apikey", "token", "access_token", "code", "state", "secret", "pw", "password"];
    let path = uri.path();
    let Some(query) = uri.query() else { return path.to_string() };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (k, _) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode_lower(k);
            if SECRET_PARAMS.iter().any(|s| key == *s) {
                format!("{k}=REDACTED")
            } else {
                pair.to_string()
            }
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

fn percent_decode_lower(s: &str) -> String {
    url::form_urlencoded::parse(format!("{s}=").as_bytes()).next().map(|(k, _)| k.to_ascii_lowercase()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_values_are_equal_and_no_longer_hold_the_read_buffer() {
        let read_buffer = bytes::Bytes::from(b"text/html; charset=utf-8Fri, 01 Dec 2026 20:00:00 GMTa=1b=2".to_vec());
        let value = |r: std::ops::Range<usize>| HeaderValue::from_maybe_shared(read_buffer.slice(r)).unwrap();
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, value(0..24));
        h.insert(http::header::DATE, value(24..53));
        h.append(http::header::SET_COOKIE, value(53..56));
        h.append(http::header::SET_COOKIE, value(56..59));
        h.get_mut(http::header::SET_COOKIE).unwrap().set_sensitive(true);
        let before = h.clone();
        assert!(!read_buffer.is_unique());
        let mut detached = h;
        detach_values(&mut detached);
        assert_eq!(detached, before, "same names, values and order");
        assert!(detached.get(http::header::SET_COOKIE).unwrap().is_sensitive());
        drop(before);
        assert!(read_buffer.is_unique(), "no value points into the read buffer any more");
        let range = read_buffer.as_ptr_range();
        assert!(detached.values().all(|v| !range.contains(&v.as_bytes().as_ptr())));
    }

    #[test]
    fn ip_text_is_the_display_form() {
        for ip in ["0.0.0.0", "1.2.3.4", "10.0.99.100", "127.0.0.1", "255.255.255.255", "192.168.10.9", "::1", "2001:db8::7"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
        for a in 0..=255u8 {
            let ip = IpAddr::from([a, 255 - a, a / 3, 7]);
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn host_comes_from_authority_on_http2_without_userinfo_and_cookies_are_joined() {
        let h = map(&[("host", "evil.example")]);
        let uri: Uri = "https://user:pw@media.example:8443/x".parse().unwrap();
        assert_eq!(original_host(&h, &uri, http::Version::HTTP_2).unwrap(), "media.example:8443");
        assert_eq!(original_host(&h, &uri, http::Version::HTTP_11).unwrap(), "evil.example");
        assert_eq!(original_host(&HeaderMap::new(), &uri, http::Version::HTTP_11).unwrap(), "media.example:8443");
        let mut c = map(&[("cookie", "a=1"), ("cookie", "b=2")]);
        join_cookies(&mut c);
        assert_eq!(c.get_all("cookie").iter().collect::<Vec<_>>(), ["a=1; b=2"]);
        let mut one = map(&[("cookie", "a=1")]);
        join_cookies(&mut one);
        assert_eq!(one["cookie"], "a=1");
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn strips_standard_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("connection", "Close, TE, x-second"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("x-second", "2"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("Proxy-Connection", "keep-alive"),
            ("proxy-authenticate", "Basic"),
            ("trailer", "x-checksum"),
            ("te", "gzip"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn a_lone_keep_alive_or_close_is_removed_and_names_nothing_else() {
        for value in ["keep-alive", "Keep-Alive", "close", "CLOSE"] {
            let mut h = map(&[("connection", value), ("keep-alive", "timeout=5"), ("x-kept", "1"), ("content-length", "3")]);
            strip_hop_by_hop(&mut h, false);
            assert_eq!(h.len(), 2, "{value}: {h:?}");
            assert!(h.contains_key("x-kept") && h.contains_key("content-length"));
        }
        // A single value that only starts like one still has its names removed.
        let mut h = map(&[("connection", "keep-alive, x-gone"), ("x-gone", "1"), ("x-kept", "1")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn upgrade_survives_when_asked() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("sec-websocket-key", "abc")]);
        assert!(is_upgrade_request(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["sec-websocket-key"], "abc");
    }

    #[test]
    fn upgrade_needs_both_headers() {
        assert!(!is_upgrade_request(&map(&[("upgrade", "websocket")])));
        assert!(!is_upgrade_request(&map(&[("connection", "upgrade")])));
    }

    #[test]
    fn forwarded_chain_replaced_for_untrusted_peer() {
        let mut h = map(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-proto", "http"), ("x-forwarded-host", "evil")]);
        let host = HeaderValue::from_static("media.example.com");
        set_forwarded(&mut h, "10.0.0.7".parse().unwrap(), false, Some(&host));
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "media.example.com");
    }

    #[test]
    fn forwarded_chain_extended_for_trusted_peer() {
        let mut h = map(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "5.6.7.8"), ("x-forwarded-proto", "https")]);
        set_forwarded(&mut h, "127.0.0.1".parse().unwrap(), true, None);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 127.0.0.1");
    }

    #[test]
    fn host_from_header_or_authority() {
        let uri: Uri = "https://media.example.com:8443/web/".parse().unwrap();
        assert_eq!(original_host(&HeaderMap::new(), &uri, http::Version::HTTP_11).unwrap(), "media.example.com:8443");
        let h = map(&[("host", "a.example")]);
        assert_eq!(original_host(&h, &uri, http::Version::HTTP_11).unwrap(), "a.example");
    }

    #[test]
    fn secrets_in_query_are_redacted() {
        let uri: Uri = "/Videos/1/stream?api_key=abc&Static=true&ApiKey=def&a%70i_key=ghi&code=123".parse().unwrap();
        assert_eq!(redacted_path(&uri), "/Videos/1/stream?api_key=REDACTED&Static=true&ApiKey=REDACTED&a%70i_key=REDACTED&code=REDACTED");
        let plain: Uri = "/web/index.html".parse().unwrap();
        assert_eq!(redacted_path(&plain), "/web/index.html");
        let obsolete: Uri = "/Users/ab/Authenticate?PW=hunter2".parse().unwrap();
        assert_eq!(redacted_path(&obsolete), "/Users/ab/Authenticate?PW=REDACTED", "the obsolete password endpoint's pw");
    }

    #[test]
    fn the_hop_by_hop_index_is_the_tables() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
        }
        for other in ["host", "cookie", "x-forwarded-for", "tee", "connections", "upgrade-insecure-requests"] {
            assert_eq!(hop_by_hop_index(&HeaderName::from_static(other)), None, "{other}");
        }
    }
}
