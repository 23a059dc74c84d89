//! Cookies: reading the proxy's own from a request, and the one builder for `Set-Cookie`.
//!
//! Every cookie the proxy sets is a `__Host-` cookie (Path=/, Secure, no Domain), HttpOnly,
//! with an explicit SameSite and lifetime, so no page script and no other host can read or
//! plant it. Keeping the attributes in one place means a new cookie cannot forget one.

use std::time::Duration;

use http::header::{HeaderValue, COOKIE};
use http::HeaderMap;

/// Binds a login to the browser that started it (SameSite=Lax: sent on the OIDC callback,
/// a top-level GET, and on the completion page's same-origin calls).
pub const FLOW: &str = "__Host-jsp-flow";
/// The same value for the SAML ACS, which the IdP reaches with a cross-site POST that never
/// carries Lax cookies. SameSite=None, so it is Secure, HttpOnly, and lives only as long as
/// a flow.
pub const SAML_FLOW: &str = "__Host-jsp-saml";
/// The proxy's browser session after a login (SameSite=Strict).
pub const SESSION: &str = "__Host-jsp-session";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// `Set-Cookie` for `name=value` with the proxy's fixed attributes. `value` must be
/// header-safe (the proxy only sets random tokens).
pub fn set(name: &str, value: &str, same_site: SameSite, max_age: Duration) -> HeaderValue {
    let v = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite={}; Max-Age={}", same_site.as_str(), max_age.as_secs());
    HeaderValue::from_str(&v).expect("cookie values are random tokens")
}

/// `Set-Cookie` that removes `name`.
pub fn clear(name: &str, same_site: SameSite) -> HeaderValue {
    set(name, "", same_site, Duration::ZERO)
}

/// Value of cookie `name` in the request's `Cookie` headers (HTTP/2 may split them).
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The proxy's own cookies of one request, read once.
#[derive(Debug, Clone, Default)]
pub struct Cookies {
    pub flow: Option<String>,
    pub saml_flow: Option<String>,
    pub session: Option<String>,
}

impl Cookies {
    pub fn parse(headers: &HeaderMap) -> Cookies {
        if !headers.contains_key(COOKIE) {
            return Cookies::default();
        }
        let own = |name| get(headers, name).filter(|v| !v.is_empty()).map(str::to_string);
        Cookies { flow: own(FLOW), saml_flow: own(SAML_FLOW), session: own(SESSION) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_has_every_attribute_and_clear_expires() {
        let v = set(FLOW, "abc", SameSite::Lax, Duration::from_secs(600));
        assert_eq!(v, "__Host-jsp-flow=abc; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600");
        assert_eq!(clear(SAML_FLOW, SameSite::None), "__Host-jsp-saml=; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=0");
    }

    #[test]
    fn reads_own_cookies_from_split_headers() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=b; __Host-jsp-flow=f1".parse().unwrap());
        h.append(COOKIE, "__Host-jsp-session=s1".parse().unwrap());
        let c = Cookies::parse(&h);
        assert_eq!((c.flow.as_deref(), c.saml_flow.as_deref(), c.session.as_deref()), (Some("f1"), None, Some("s1")));
        assert_eq!(get(&h, "a"), Some("b"));
        assert!(Cookies::parse(&HeaderMap::new()).flow.is_none());
    }
}
