//! The proxy's numbers: one Prometheus registry ([`prometheus_client`]) and typed handles to
//! every metric in it, exposed on a listener of its own ([`listener`]) with `/healthz` and
//! `/readyz`.
//!
//! [`Metrics`] is made once in `main` and handed to what counts (server, router, upstream,
//! the SSO side through its observer); there is no global. When `metrics.listen` is not set,
//! `main` hands out [`Metrics::off`], whose every method is one branch on `None`, so a proxy
//! without metrics pays nothing for them.
//!
//! The hot path (a forwarded request) touches only handles resolved when the registry is
//! built: requests by (route class, method, status class) are an array of counters indexed
//! by three small enums, and the two duration histograms are one per route class, so
//! counting a request allocates nothing and takes no lock but the histogram's own. Slower
//! paths (a login, a mint, an identity provider call) look their labels up in a `Family`.
//!
//! Label values are closed sets ([`labels`]); the only free-text label is the provider name,
//! which the SSO side takes from its registry of configured providers, never from a request.
//!
//! The state layer does not know this module. Errors of its backends are counted by a
//! decorator the composition root puts around both halves ([`crate::state::State::observed`]),
//! which only takes a callback: storage stays free of protocol and of metrics.

pub mod labels;
pub mod listener;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use labels::*;
pub use labels::{MethodLabel, RouteClass, TlsFailure, UpstreamFailure};

/// Buckets for the proxy's own answer times and Jellyfin's (seconds): 1 ms to 60 s.
const HTTP_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];
/// Buckets for identity provider calls (seconds): 5 ms to 15 s (the client's timeout).
const IDP_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The handles; see the module documentation.
pub(crate) struct Inner {
    registry: Registry,
    /// `[route][method][status class]`, every combination registered up front.
    requests: Vec<Counter>,
    request_seconds: [Histogram; 2],
    upstream_header_seconds: Histogram,
    open_connections: Gauge,
    tls_failures: [Counter; 7],
    upstream_failures: [Counter; 2],
    logins: Family<LoginLabels, Counter>,
    mints: Family<HowLabels, Counter>,
    revocations: Family<WhyLabels, Counter>,
    pending_flows: Gauge,
    proxy_sessions: Gauge,
    idp_seconds: HistogramFamily<ProviderLabels>,
    idp_errors: Family<ProviderLabels, Counter>,
    state_errors: Family<StoreLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    cert_expiry: Gauge<f64, std::sync::atomic::AtomicU64>,
}

/// The proxy's metrics, or nothing ([`Metrics::off`]). Cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Inner>>);

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

fn idp_histogram() -> Histogram {
    Histogram::new(IDP_BUCKETS)
}

impl Metrics {
    /// No metrics: every method does nothing.
    pub fn off() -> Metrics {
        Metrics(None)
    }

    /// A registry with every metric of the proxy, all series of the fixed label sets present
    /// (at zero) from the start, as Prometheus prefers.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("jsp");
        let requests_family = Family::<RequestLabels, Counter>::default();
        let mut requests = Vec::with_capacity(80);
        for route in RouteClass::ALL {
            for method in MethodLabel::ALL {
                for status in StatusClass::ALL {
                    requests.push(requests_family.get_or_create_owned(&RequestLabels { route, method, status }));
                }
            }
        }
        r.register("http_requests", "Requests answered, by route class (sso: the proxy's own endpoints; forwarded: to Jellyfin), method and status class", requests_family);
        let seconds_family: HistogramFamily<RouteLabels> = Family::new_with_constructor(http_histogram);
        let request_seconds = RouteClass::ALL.map(|route| seconds_family.get_or_create_owned(&RouteLabels { route }));
        r.register_with_unit("http_request_duration", "Time from a request's arrival to its response headers, by route class", Unit::Seconds, seconds_family);
        let upstream_header_seconds = http_histogram();
        r.register_with_unit("upstream_header", "Time from forwarding a request to Jellyfin's response headers", Unit::Seconds, upstream_header_seconds.clone());
        let open_connections = Gauge::default();
        r.register("open_connections", "Client connections open on the public listener (TLS handshakes included)", open_connections.clone());
        let tls_family = Family::<TlsLabels, Counter>::default();
        let tls_failures = TlsFailure::ALL.map(|reason| tls_family.get_or_create_owned(&TlsLabels { reason }));
        r.register("tls_handshake_failures", "TLS handshakes that failed, by reason", tls_family);
        let upstream_family = Family::<UpstreamLabels, Counter>::default();
        let upstream_failures = [UpstreamFailure::Connect, UpstreamFailure::Timeout].map(|kind| upstream_family.get_or_create_owned(&UpstreamLabels { kind }));
        r.register("upstream_errors", "Forwarded requests that got no answer from Jellyfin: connect (no connection) or timeout (no response headers in time)", upstream_family);
        let logins = Family::default();
        r.register("logins", "Single sign-on logins by provider, protocol and result; reason says why a login was refused", logins.clone());
        let mints = Family::default();
        r.register("quick_connect_mints", "Jellyfin sessions minted through Quick Connect, by how (browser, device-link, app-password)", mints.clone());
        let revocations = Family::default();
        r.register("revocations", "Minted Jellyfin sessions revoked, by why", revocations.clone());
        let pending_flows = Gauge::default();
        r.register("pending_flows", "Logins started and not yet finished (read at scrape time)", pending_flows.clone());
        let proxy_sessions = Gauge::default();
        r.register("proxy_sessions", "The proxy's browser sessions (read at scrape time)", proxy_sessions.clone());
        let idp_seconds: HistogramFamily<ProviderLabels> = Family::new_with_constructor(idp_histogram);
        r.register_with_unit("idp_request_duration", "Requests to identity providers (discovery, keys, PAR, token, userinfo, refresh), by provider", Unit::Seconds, idp_seconds.clone());
        let idp_errors = Family::default();
        r.register("idp_request_errors", "Requests to identity providers that failed (no answer, or a 5xx), by provider", idp_errors.clone());
        let state_errors = Family::default();
        r.register("state_errors", "State backend operations that failed, by store (durable, ephemeral) and backend", state_errors.clone());
        let reloads = Family::<ResultLabels, Counter>::default();
        for result in ["applied", "invalid", "needs_restart"] {
            let _ = reloads.get_or_create(&ResultLabels { result });
        }
        r.register("config_reloads", "Reloads of proxy.yaml, by result", reloads.clone());
        let cert_expiry = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        r.register_with_unit("tls_certificate_expiry", "When the certificate in service expires (Unix time; read at scrape time)", Unit::Other("timestamp_seconds".into()), cert_expiry.clone());
        Metrics(Some(Arc::new(Inner {
            registry: r,
            requests,
            request_seconds,
            upstream_header_seconds,
            open_connections,
            tls_failures,
            upstream_failures,
            logins,
            mints,
            revocations,
            pending_flows,
            proxy_sessions,
            idp_seconds,
            idp_errors,
            state_errors,
            reloads,
            cert_expiry,
        })))
    }

    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// One answered request: its class, method, status and the time to its response headers.
    #[inline]
    pub fn request(&self, route: RouteClass, method: MethodLabel, status: u16, took: Duration) {
        if let Some(m) = &self.0 {
            let i = (route as usize * MethodLabel::ALL.len() + method as usize) * StatusClass::ALL.len() + StatusClass::index(status);
            m.requests[i].inc();
            m.request_seconds[route as usize].observe(took.as_secs_f64());
        }
    }

    /// Jellyfin's response headers arrived `took` after the request was forwarded.
    #[inline]
    pub fn upstream_headers(&self, took: Duration) {
        if let Some(m) = &self.0 {
            m.upstream_header_seconds.observe(took.as_secs_f64());
        }
    }

    pub fn upstream_failed(&self, kind: UpstreamFailure) {
        if let Some(m) = &self.0 {
            m.upstream_failures[kind as usize].inc();
        }
    }

    /// A client connection was accepted; the open-connections gauge goes down when the
    /// returned guard is dropped.
    #[inline]
    pub fn connection(&self) -> ConnectionGuard {
        if let Some(m) = &self.0 {
            m.open_connections.inc();
        }
        ConnectionGuard(self.0.clone())
    }

    pub fn tls_failed(&self, reason: TlsFailure) {
        if let Some(m) = &self.0 {
            m.tls_failures[reason as usize].inc();
        }
    }

    /// A login's end at `provider` (a configured provider's name) over `protocol`: `Ok` is a
    /// success, `Err(reason)` a refusal with one of the SSO side's fixed reasons.
    pub fn login(&self, provider: &str, protocol: &'static str, outcome: Result<(), &'static str>) {
        if let Some(m) = &self.0 {
            let (result, reason) = match outcome {
                Ok(()) => ("success", ""),
                Err(reason) => ("refused", reason),
            };
            m.logins.get_or_create(&LoginLabels { provider: provider.to_string(), protocol, result, reason }).inc();
        }
    }

    pub fn minted(&self, how: &'static str) {
        if let Some(m) = &self.0 {
            m.mints.get_or_create(&HowLabels { how }).inc();
        }
    }

    pub fn revoked(&self, why: &'static str) {
        if let Some(m) = &self.0 {
            m.revocations.get_or_create(&WhyLabels { why }).inc();
        }
    }

    /// One request to an identity provider: how long it took and whether it failed.
    pub fn idp_request(&self, provider: &str, took: Duration, failed: bool) {
        if let Some(m) = &self.0 {
            let labels = ProviderLabels { provider: provider.to_string() };
            m.idp_seconds.get_or_create(&labels).observe(took.as_secs_f64());
            if failed {
                m.idp_errors.get_or_create(&labels).inc();
            }
        }
    }

    /// A state backend operation failed (`store`: `durable` or `ephemeral`).
    pub fn state_error(&self, store: &'static str, backend: &'static str) {
        if let Some(m) = &self.0 {
            m.state_errors.get_or_create(&StoreLabels { store, backend }).inc();
        }
    }

    /// A reload of `proxy.yaml` ended with `result`: `applied`, `invalid` or `needs_restart`
    /// (`reload::Outcome::result`, a closed set).
    pub fn config_reloaded(&self, result: &'static str) {
        if let Some(m) = &self.0 {
            m.reloads.get_or_create(&ResultLabels { result }).inc();
        }
    }

    /// The gauges that are read rather than counted, set just before a scrape.
    pub fn sample(&self, pending_flows: Option<usize>, proxy_sessions: Option<usize>, cert_not_after: Option<SystemTime>) {
        if let Some(m) = &self.0 {
            if let Some(n) = pending_flows {
                m.pending_flows.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            if let Some(n) = proxy_sessions {
                m.proxy_sessions.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            if let Some(t) = cert_not_after.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()) {
                m.cert_expiry.set(t.as_secs_f64());
            }
        }
    }

    /// The exposition, in the OpenMetrics text format Prometheus reads ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Some(m) = &self.0 {
            prometheus_client::encoding::text::encode(&mut out, &m.registry).expect("writing to a String cannot fail");
        }
        out
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Holds one open connection in the gauge.
pub struct ConnectionGuard(Option<Arc<Inner>>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(m) = &self.0 {
            m.open_connections.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_series_exists_from_the_start_and_counts_in_its_own_cell() {
        let m = Metrics::new();
        let text = m.render();
        assert_eq!(text.matches("jsp_http_requests_total{").count(), 2 * 8 * 5, "{text}");
        m.request(RouteClass::Forwarded, MethodLabel::Get, 200, Duration::from_millis(3));
        m.request(RouteClass::Sso, MethodLabel::of(&http::Method::from_bytes(b"BREW").unwrap()), 503, Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains(r#"jsp_http_requests_total{route="forwarded",method="GET",status="2xx"} 1"#), "{text}");
        assert!(text.contains(r#"jsp_http_requests_total{route="sso",method="other",status="5xx"} 1"#), "{text}");
        assert!(text.contains(r#"jsp_http_requests_total{route="forwarded",method="GET",status="5xx"} 0"#), "{text}");
        assert!(text.contains(r#"jsp_http_request_duration_seconds_bucket{le="0.005",route="forwarded"} 1"#), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn connections_go_up_and_down_and_off_counts_nothing() {
        let m = Metrics::new();
        let a = m.connection();
        let b = m.connection();
        drop(a);
        assert!(m.render().contains("jsp_open_connections 1\n"));
        drop(b);
        assert!(m.render().contains("jsp_open_connections 0\n"));
        let off = Metrics::off();
        off.request(RouteClass::Sso, MethodLabel::Get, 200, Duration::ZERO);
        off.login("p", "oid", Ok(()));
        assert_eq!(off.render(), "");
    }

    #[test]
    fn logins_reloads_and_the_certificate() {
        let m = Metrics::new();
        m.login("pocket", "oid", Ok(()));
        m.login("pocket", "oid", Err("not_allowed"));
        m.config_reloaded("invalid");
        m.sample(Some(3), Some(2), Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)));
        let text = m.render();
        assert!(text.contains(r#"jsp_logins_total{provider="pocket",protocol="oid",result="success",reason=""} 1"#), "{text}");
        assert!(text.contains(r#"jsp_logins_total{provider="pocket",protocol="oid",result="refused",reason="not_allowed"} 1"#), "{text}");
        assert!(text.contains(r#"jsp_config_reloads_total{result="invalid"} 1"#), "{text}");
        assert!(text.contains(r#"jsp_config_reloads_total{result="applied"} 0"#), "{text}");
        assert!(text.contains("jsp_pending_flows 3\n") && text.contains("jsp_proxy_sessions 2\n"), "{text}");
        assert!(text.contains("jsp_tls_certificate_expiry_timestamp_seconds 1900000000"), "{text}");
    }
}
