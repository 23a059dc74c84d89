//! The typed route of a request the proxy answers itself, parsed once from method + path.
//!
//! Paths are matched without regard to case, as the plugin's ASP.NET routes were
//! (`[Route("sso")]` on its controller), after the configured base path; a trailing slash
//! is accepted and each segment is percent-decoded. The plugin's short aliases
//! (`/sso/OID/p/…`, `/sso/OID/r/…`, `/sso/SAML/p/…`) are kept. `None` means "not ours":
//! the router forwards it to Jellyfin. A path under `/sso/` that matches nothing is
//! [`SsoRoute::Unknown`] (404 from the proxy, never forwarded).

use http::Method;

use super::identity::Protocol;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoRoute {
    /// `GET|HEAD /sso/health` (served by the router, which owns the upstream).
    Health,
    /// `GET /sso/`: the provider picker.
    Picker,
    /// `GET /SSOViews/linking`: the plugin's self-service page, at its old path.
    LinkingPage,
    /// `GET /sso/{OID,SAML}/start/{p}` (alias `/p/{p}`).
    Start { protocol: Protocol, provider: String },
    /// `GET /sso/OID/redirect/{p}` (alias `/r/{p}`).
    OidcCallback { provider: String },
    /// `POST /sso/SAML/post/{p}` (alias `/p/{p}`): the ACS.
    SamlAcs { provider: String },
    /// `POST /sso/{OID,SAML}/Auth/{p}`: the completion page signs in.
    Auth { protocol: Protocol, provider: String },
    /// `GET /sso/SAML/metadata/{p}`.
    SamlMetadata { provider: String },
    /// `GET /sso/{mode}/GetNames`.
    GetNames { protocol: Protocol },
    /// `GET /sso/{mode}/Get`.
    GetProviders { protocol: Protocol },
    /// `GET /sso/OID/States`.
    States,
    /// `POST /sso/{mode}/Add/{p}`.
    AddProvider { protocol: Protocol, provider: String },
    /// `GET /sso/{mode}/Del/{p}`.
    DelProvider { protocol: Protocol, provider: String },
    /// `GET /sso/{mode}/links/{user}`.
    Links { protocol: Protocol, user: String },
    /// `POST /sso/{mode}/Link/{p}/{user}`.
    Link { protocol: Protocol, provider: String, user: String },
    /// `DELETE /sso/{mode}/Link/{p}/{user}/{subject}`.
    Unlink { protocol: Protocol, provider: String, user: String, subject: String },
    /// `POST /sso/Unregister/{username}`.
    Unregister { username: String },
    /// `GET /sso/link`: device linking (a Quick Connect code), see `device_link`.
    DeviceLinkPage,
    /// `POST /sso/link`.
    DeviceLinkSubmit,
    /// `GET /sso/link/start/{OID,SAML}/{p}`: a login that returns to `/sso/link`.
    DeviceLinkStart { protocol: Protocol, provider: String },
    /// `GET /sso/link/qr.svg`.
    DeviceLinkQr,
    /// `GET|POST /sso/app-passwords`: list (JSON or page) and create.
    AppPasswords,
    /// `DELETE /sso/app-passwords/{id}`.
    AppPasswordDelete { id: String },
    /// `GET|POST /sso/logout`: sign this browser out (and out of the provider when it can).
    Logout,
    /// `POST /sso/OID/backchannel-logout/{p}`: OIDC Back-Channel Logout.
    BackchannelLogout { provider: String },
    /// `GET /sso/OID/frontchannel-logout/{p}?iss&sid`: OIDC Front-Channel Logout.
    FrontchannelLogout { provider: String },
    /// `GET|POST /sso/SAML/logout/{p}`: SAML single logout (LogoutRequest or LogoutResponse).
    SamlLogout { provider: String },
    /// `GET /sso/sessions/{jellyfinUserId}`: the user's SSO-minted sessions.
    Sessions { user: String },
    /// `DELETE /sso/sessions/{jellyfinUserId}/{deviceId}`.
    RevokeSession { user: String, device: String },
    /// `DELETE /sso/sessions/{jellyfinUserId}`.
    RevokeSessions { user: String },
    /// Under `/sso/` but no such endpoint (or a malformed mode).
    Unknown,
}

impl SsoRoute {
    /// Parse `path` (the whole request path) under `base` (e.g. `""` or `/jellyfin`).
    pub fn parse(method: &Method, path: &str, base: &str) -> Option<SsoRoute> {
        let rest = strip_prefix_ci(path, base)?;
        if rest.eq_ignore_ascii_case("/SSOViews/linking") {
            return (method == Method::GET || method == Method::HEAD).then_some(SsoRoute::LinkingPage);
        }
        let rest = strip_prefix_ci(rest, "/sso")?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let inner = rest.strip_prefix('/').unwrap_or(rest);
        let inner = inner.strip_suffix('/').unwrap_or(inner);
        let segs: Vec<String> = inner.split('/').map(decode).collect();
        Some(Self::from_segments(method, &segs).unwrap_or(SsoRoute::Unknown))
    }

    fn from_segments(method: &Method, segs: &[String]) -> Option<SsoRoute> {
        let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        let l: Vec<&str> = lower.iter().map(String::as_str).collect();
        let arg = |i: usize| segs[i].clone();
        let protocol = match l.first().copied() {
            Some("oid") => Some(Protocol::Oidc),
            Some("saml") => Some(Protocol::Saml),
            _ => None,
        };
        let get = method == Method::GET;
        let post = method == Method::POST;
        Some(match (l.as_slice(), protocol) {
            (["health"], _) if get || method == Method::HEAD => SsoRoute::Health,
            ([""], _) if get => SsoRoute::Picker,
            (["link"], _) if get => SsoRoute::DeviceLinkPage,
            (["link"], _) if post => SsoRoute::DeviceLinkSubmit,
            (["link", "qr.svg"], _) if get => SsoRoute::DeviceLinkQr,
            (["link", "start", mode, _], _) if get => {
                let protocol = match *mode {
                    "oid" => Protocol::Oidc,
                    "saml" => Protocol::Saml,
                    _ => return None,
                };
                SsoRoute::DeviceLinkStart { protocol, provider: arg(3) }
            }
            (["app-passwords"], _) if get || post => SsoRoute::AppPasswords,
            (["app-passwords", _], _) if method == Method::DELETE => SsoRoute::AppPasswordDelete { id: arg(1) },
            (["unregister", _], _) if post => SsoRoute::Unregister { username: arg(1) },
            (["logout"], _) if get || post => SsoRoute::Logout,
            (["oid", "backchannel-logout", _], _) if post => SsoRoute::BackchannelLogout { provider: arg(2) },
            (["oid", "frontchannel-logout", _], _) if get => SsoRoute::FrontchannelLogout { provider: arg(2) },
            (["saml", "logout", _], _) if get || post => SsoRoute::SamlLogout { provider: arg(2) },
            (["sessions", _], _) if get => SsoRoute::Sessions { user: arg(1) },
            (["sessions", _], _) if method == Method::DELETE => SsoRoute::RevokeSessions { user: arg(1) },
            (["sessions", _, _], _) if method == Method::DELETE => SsoRoute::RevokeSession { user: arg(1), device: arg(2) },
            ([_, "start" | "p", _], Some(protocol)) if get => SsoRoute::Start { protocol, provider: arg(2) },
            (["oid", "redirect" | "r", _], _) if get => SsoRoute::OidcCallback { provider: arg(2) },
            (["saml", "post" | "p", _], _) if post => SsoRoute::SamlAcs { provider: arg(2) },
            ([_, "auth", _], Some(protocol)) if post => SsoRoute::Auth { protocol, provider: arg(2) },
            (["saml", "metadata", _], _) if get => SsoRoute::SamlMetadata { provider: arg(2) },
            ([_, "getnames"], Some(protocol)) if get => SsoRoute::GetNames { protocol },
            ([_, "get"], Some(protocol)) if get => SsoRoute::GetProviders { protocol },
            (["oid", "states"], _) if get => SsoRoute::States,
            ([_, "add", _], Some(protocol)) if post => SsoRoute::AddProvider { protocol, provider: arg(2) },
            ([_, "del", _], Some(protocol)) if get => SsoRoute::DelProvider { protocol, provider: arg(2) },
            ([_, "links", _], Some(protocol)) if get => SsoRoute::Links { protocol, user: arg(2) },
            ([_, "link", _, _], Some(protocol)) if post => SsoRoute::Link { protocol, provider: arg(2), user: arg(3) },
            ([_, "link", _, _, _], Some(protocol)) if method == Method::DELETE => {
                SsoRoute::Unlink { protocol, provider: arg(2), user: arg(3), subject: arg(4) }
            }
            _ => return None,
        })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) && s[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &s[prefix.len()..])
}

/// Percent-decode one path segment, as ASP.NET does for route values (invalid escapes
/// are kept as they are).
pub(crate) fn decode(seg: &str) -> String {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(hex) = seg.get(i + 1..i + 3).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit())) {
                out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(m: Method, path: &str) -> Option<SsoRoute> {
        SsoRoute::parse(&m, path, "")
    }

    #[test]
    fn login_routes_and_aliases_ignore_case() {
        let start = SsoRoute::Start { protocol: Protocol::Oidc, provider: "Corp".into() };
        assert_eq!(p(Method::GET, "/sso/OID/start/Corp"), Some(start.clone()));
        assert_eq!(p(Method::GET, "/SSO/oid/P/Corp/"), Some(start), "case-insensitive, trailing slash, alias");
        assert_eq!(p(Method::GET, "/sso/OID/r/x"), Some(SsoRoute::OidcCallback { provider: "x".into() }));
        assert_eq!(p(Method::POST, "/sso/SAML/p/x"), Some(SsoRoute::SamlAcs { provider: "x".into() }));
        assert_eq!(p(Method::GET, "/sso/SAML/p/x"), Some(SsoRoute::Start { protocol: Protocol::Saml, provider: "x".into() }));
        assert_eq!(p(Method::POST, "/sso/saml/AUTH/x"), Some(SsoRoute::Auth { protocol: Protocol::Saml, provider: "x".into() }));
    }

    #[test]
    fn admin_routes() {
        assert_eq!(p(Method::GET, "/sso/saml/getnames"), Some(SsoRoute::GetNames { protocol: Protocol::Saml }));
        assert_eq!(
            p(Method::DELETE, "/sso/OID/Link/corp/u1/a%20b"),
            Some(SsoRoute::Unlink { protocol: Protocol::Oidc, provider: "corp".into(), user: "u1".into(), subject: "a b".into() })
        );
        assert_eq!(p(Method::POST, "/sso/Unregister/jane%20doe"), Some(SsoRoute::Unregister { username: "jane doe".into() }));
        assert_eq!(p(Method::GET, "/sso/xyz/Get"), Some(SsoRoute::Unknown), "an unknown mode is ours but nothing");
        assert_eq!(p(Method::POST, "/sso/OID/GetNames"), Some(SsoRoute::Unknown), "wrong method");
    }

    #[test]
    fn device_link_and_app_password_routes() {
        assert_eq!(p(Method::GET, "/sso/link"), Some(SsoRoute::DeviceLinkPage));
        assert_eq!(p(Method::POST, "/SSO/Link/"), Some(SsoRoute::DeviceLinkSubmit));
        assert_eq!(p(Method::GET, "/sso/link/QR.svg"), Some(SsoRoute::DeviceLinkQr));
        assert_eq!(p(Method::GET, "/sso/link/start/SAML/c%20d"), Some(SsoRoute::DeviceLinkStart { protocol: Protocol::Saml, provider: "c d".into() }));
        assert_eq!(p(Method::GET, "/sso/link/start/x/c"), Some(SsoRoute::Unknown));
        assert_eq!(p(Method::POST, "/sso/app-passwords"), Some(SsoRoute::AppPasswords));
        assert_eq!(p(Method::DELETE, "/sso/App-Passwords/ab"), Some(SsoRoute::AppPasswordDelete { id: "ab".into() }));
        assert_eq!(p(Method::PUT, "/sso/link"), Some(SsoRoute::Unknown));
    }

    #[test]
    fn lifecycle_routes() {
        assert_eq!(p(Method::GET, "/sso/logout"), Some(SsoRoute::Logout));
        assert_eq!(p(Method::POST, "/SSO/Logout/"), Some(SsoRoute::Logout));
        assert_eq!(p(Method::DELETE, "/sso/logout"), Some(SsoRoute::Unknown));
        assert_eq!(p(Method::POST, "/sso/OID/backchannel-logout/corp"), Some(SsoRoute::BackchannelLogout { provider: "corp".into() }));
        assert_eq!(p(Method::GET, "/sso/OID/backchannel-logout/corp"), Some(SsoRoute::Unknown));
        assert_eq!(p(Method::GET, "/sso/oid/frontchannel-logout/corp"), Some(SsoRoute::FrontchannelLogout { provider: "corp".into() }));
        assert_eq!(p(Method::POST, "/sso/SAML/logout/corp"), Some(SsoRoute::SamlLogout { provider: "corp".into() }));
        assert_eq!(p(Method::GET, "/sso/sessions/u1"), Some(SsoRoute::Sessions { user: "u1".into() }));
        assert_eq!(p(Method::DELETE, "/sso/sessions/u1"), Some(SsoRoute::RevokeSessions { user: "u1".into() }));
        assert_eq!(p(Method::DELETE, "/sso/sessions/u1/dev%201"), Some(SsoRoute::RevokeSession { user: "u1".into(), device: "dev 1".into() }));
    }

    #[test]
    fn what_is_not_ours_and_base_paths() {
        assert_eq!(p(Method::GET, "/web/index.html"), None);
        assert_eq!(p(Method::GET, "/ssox/health"), None);
        assert_eq!(p(Method::GET, "/sso/sso/sso/health"), Some(SsoRoute::Unknown), "repeated prefixes are not stripped");
        assert_eq!(p(Method::GET, "/sso/health"), Some(SsoRoute::Health));
        assert_eq!(p(Method::GET, "/sso"), Some(SsoRoute::Picker));
        assert_eq!(p(Method::GET, "/SSO/"), Some(SsoRoute::Picker));
        assert_eq!(p(Method::POST, "/sso/"), Some(SsoRoute::Unknown));
        assert_eq!(SsoRoute::parse(&Method::GET, "/jf/sso/health", "/jf"), Some(SsoRoute::Health));
        assert_eq!(SsoRoute::parse(&Method::GET, "/sso/health", "/jf"), None);
        assert_eq!(p(Method::GET, "/ssoviews/LINKING"), Some(SsoRoute::LinkingPage));
        assert_eq!(p(Method::GET, "/sso/%zz/%4"), Some(SsoRoute::Unknown), "broken escapes are no panic");
    }
}
