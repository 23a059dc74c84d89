//! Forwarding to Jellyfin: everything that is not under `/sso/` goes through [`Upstream::forward`].
//!
//! Bodies stream both ways through hyper (`Incoming` in, `Incoming` out), so a 1 GiB video
//! or upload never sits in memory; Range requests, chunked bodies and HTTP/2 clients pass
//! to Jellyfin's HTTP/1.1 unchanged. A websocket handshake (`/socket`) is forwarded with its
//! `Upgrade` headers; when Jellyfin answers 101 both sides are upgraded and bytes are copied
//! until either side closes. Header rules live in [`headers`], the connections to Jellyfin
//! in [`pool`].

pub mod headers;
pub mod pool;

use std::time::{Duration, Instant};

use http::header::{HeaderValue, HOST};
use http::{Request, Response, StatusCode, Uri, Version};
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use url::Url;

use pool::{Pool, PoolError, PooledBody};

use crate::body::{stream, Body};
use crate::context::RequestContext;
use crate::deadline;
use crate::error::ProxyError;
use crate::metrics::{Metrics, UpstreamFailure};

/// Idle connections to Jellyfin kept per worker, and for how long.
const MAX_IDLE: usize = 256;
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The pooled HTTP client to Jellyfin and the rules for using it.
#[derive(Clone)]
pub struct Upstream {
    pool: Pool,
    /// Jellyfin's `Host`, for a request that came without one (HTTP/1.0).
    authority: HeaderValue,
    display: String,
    header_timeout: Duration,
    /// Time to Jellyfin's response headers, connect errors and timeouts are counted here.
    metrics: Metrics,
}

impl Upstream {
    pub fn new(url: &Url, connect_timeout: Duration, header_timeout: Duration) -> Upstream {
        let uri: Uri = url.as_str().parse().expect("a validated URL is a valid URI");
        let authority = uri.authority().cloned().expect("validated URL has a host");
        let origin = Uri::builder()
            .scheme(uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP))
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .expect("scheme and authority of a valid URI");
        let authority = HeaderValue::from_str(authority.as_str()).expect("an authority is a valid header value");
        Upstream {
            pool: Pool::new(origin, connect_timeout, MAX_IDLE, IDLE_TIMEOUT),
            authority,
            display: url.origin().ascii_serialization(),
            header_timeout,
            metrics: Metrics::off(),
        }
    }

    /// The same upstream, counting in `metrics`.
    pub fn observed(mut self, metrics: Metrics) -> Upstream {
        self.metrics = metrics;
        self
    }

    /// Forward one request (from `ctx.peer`) to Jellyfin and return its response, streaming.
    pub async fn forward(&self, mut req: Request<Incoming>, ctx: &RequestContext) -> Result<Response<Body>, ProxyError> {
        Self::refuse_ambiguous(req.method(), req.version(), req.headers())?;
        let client_version = req.version();
        let upgrade = client_version == Version::HTTP_11 && headers::is_upgrade_request(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

        let (mut parts, body) = req.into_parts();
        self.prepare(&mut parts, upgrade, ctx);
        let up_req = Request::from_parts(parts, Either::Left(body));
        let started = self.metrics.enabled().then(Instant::now);
        let resp = self.answer(deadline::within(self.header_timeout, self.pool.send(up_req)).await, started)?;

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            match client_upgrade {
                Some(client_upgrade) => return Ok(self.splice_upgrade(resp, client_upgrade)),
                // Never switch protocols for a client that did not ask (or cannot: HTTP/1.0, HTTP/2).
                None => return Err(ProxyError::UnexpectedUpgrade { upstream: self.display.clone() }),
            }
        }
        Ok(Self::pass_back(resp, client_version))
    }

    /// Jellyfin's response as the client gets it: hop-by-hop headers removed, and for an
    /// HTTP/2 client the header values copied out of hyper's read buffer (see
    /// [`headers::detach_values`]).
    fn pass_back(resp: Response<PooledBody>, client_version: Version) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        if client_version == Version::HTTP_2 {
            headers::detach_values(&mut parts.headers);
        }
        Response::from_parts(parts, stream(body))
    }

    /// Requests that are not for Jellyfin or are ambiguous about where they go: CONNECT, and
    /// HTTP/1.1 without exactly one Host (RFC 9112 §3.2), the stuff request smuggling is made of.
    fn refuse_ambiguous(method: &http::Method, version: Version, headers: &http::HeaderMap) -> Result<(), ProxyError> {
        if method == http::Method::CONNECT {
            return Err(ProxyError::MethodNotAllowed("CONNECT"));
        }
        if version == Version::HTTP_11 && headers.get_all(HOST).iter().count() != 1 {
            return Err(ProxyError::BadRequest("an HTTP/1.1 request needs exactly one Host header".into()));
        }
        Ok(())
    }

    /// Forward a request whose body was read already (`body`: the bytes as received), with the
    /// same header rules as [`Upstream::forward`]; the body length is set from the bytes.
    pub async fn forward_bytes(&self, mut parts: http::request::Parts, body: Bytes, ctx: &RequestContext) -> Result<Response<Body>, ProxyError> {
        Self::refuse_ambiguous(&parts.method, parts.version, &parts.headers)?;
        let client_version = parts.version;
        self.prepare(&mut parts, false, ctx);
        parts.headers.remove(http::header::TRANSFER_ENCODING);
        parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let up_req = Request::from_parts(parts, Either::Right(Full::new(body)));
        let started = self.metrics.enabled().then(Instant::now);
        let resp = self.answer(deadline::within(self.header_timeout, self.pool.send(up_req)).await, started)?;
        Ok(Self::pass_back(resp, client_version))
    }

    /// The header rules and Jellyfin's address, applied to a request about to be forwarded.
    fn prepare(&self, parts: &mut http::request::Parts, upgrade: bool, ctx: &RequestContext) {
        let host = headers::original_host(&parts.headers, &parts.uri, parts.version);
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        headers::join_cookies(&mut parts.headers);
        headers::set_forwarded(&mut parts.headers, ctx.peer.ip(), ctx.peer_trusted, host.as_ref());
        parts.headers.insert(HOST, host.unwrap_or_else(|| self.authority.clone()));
        // Origin-form: the connection already goes to Jellyfin.
        let path_and_query = parts.uri.path_and_query().cloned().unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path_and_query);
        parts.version = Version::HTTP_11;
    }

    /// Jellyfin's response headers (asked for at `started`, which is only read with metrics
    /// on), or why there are none.
    fn answer(
        &self,
        r: Result<Result<Response<PooledBody>, PoolError>, deadline::Elapsed>,
        started: Option<Instant>,
    ) -> Result<Response<PooledBody>, ProxyError> {
        match r {
            Err(_) => {
                self.metrics.upstream_failed(UpstreamFailure::Timeout);
                Err(ProxyError::Timeout { upstream: self.display.clone(), timeout: self.header_timeout })
            }
            Ok(Err(source @ PoolError::Connect(_))) => {
                self.metrics.upstream_failed(UpstreamFailure::Connect);
                Err(ProxyError::Unreachable { upstream: self.display.clone(), source })
            }
            // The client's own body broke (e.g. malformed chunked encoding): its fault, a 400.
            Ok(Err(PoolError::Http(e))) if e.is_user() => Err(ProxyError::BadRequest("the request body was malformed or cut off".into())),
            Ok(Err(source)) => Err(ProxyError::Upstream { upstream: self.display.clone(), source }),
            Ok(Ok(r)) => {
                if let Some(started) = started {
                    self.metrics.upstream_headers(started.elapsed());
                }
                Ok(r)
            }
        }
    }

    /// Answer 101 to the client and copy bytes between the two upgraded connections.
    fn splice_upgrade(&self, mut resp: Response<PooledBody>, client_upgrade: hyper::upgrade::OnUpgrade) -> Response<Body> {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    let mut client = TokioIo::new(client);
                    let mut upstream = TokioIo::new(upstream);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                        tracing::debug!(error = %e, "upgraded connection ended");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "protocol upgrade failed"),
            }
        });
        let (mut parts, _) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, true);
        if !parts.headers.contains_key(http::header::UPGRADE) {
            parts.headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        Response::from_parts(parts, crate::body::empty())
    }

    /// A quick GET of Jellyfin's public info, for the health endpoint, through the pool (a
    /// health check must not open a connection per call).
    pub async fn probe(&self, timeout: Duration) -> Result<StatusCode, String> {
        let req = Request::get("/System/Info/Public")
            .header(HOST, self.authority.clone())
            .body(Either::Right(Full::new(Bytes::new())))
            .map_err(|e| e.to_string())?;
        // The small body is read too, so the connection goes back to the pool.
        let exchange = async {
            let resp = self.pool.send(req).await.map_err(|e| crate::error::error_chain(&e))?;
            let status = resp.status();
            http_body_util::BodyExt::collect(http_body_util::Limited::new(resp.into_body(), 64 * 1024))
                .await
                .map_err(|e| format!("the answer broke off: {e}"))?;
            Ok(status)
        };
        tokio::time::timeout(timeout, exchange).await.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
    }

    pub fn display(&self) -> &str {
        &self.display
    }
}
