//! The HTTP client for identity providers, timed: every request to a provider (discovery,
//! keys, PAR, token, userinfo, refresh) is observed in the metrics as its latency and, when
//! it got no answer or a 5xx, as an error, labelled with the configured provider's name.
//!
//! It derefs to the [`reqwest::Client`] (no redirects, bounded time: [`super::idp_http_client`])
//! and implements `openidconnect`'s `AsyncHttpClient`, so the OIDC code uses it as it used the
//! plain client; requests sent with `reqwest` directly go through [`IdpHttp::timed`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use openidconnect::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse};

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct IdpHttp {
    client: reqwest::Client,
    metrics: Metrics,
    provider: Arc<str>,
}

impl IdpHttp {
    pub fn new(client: reqwest::Client, metrics: Metrics) -> IdpHttp {
        IdpHttp { client, metrics, provider: Arc::from("") }
    }

    /// The same client, counting for the provider `name` (a configured provider's name).
    pub fn for_provider(&self, name: &str) -> IdpHttp {
        IdpHttp { client: self.client.clone(), metrics: self.metrics.clone(), provider: Arc::from(name) }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn observe(&self, started: Instant, status: Option<http::StatusCode>) {
        let failed = status.is_none_or(|s| s.is_server_error());
        self.metrics.idp_request(&self.provider, started.elapsed(), failed);
    }

    /// Await a request sent with `reqwest` directly, observing it.
    pub async fn timed(&self, send: impl Future<Output = reqwest::Result<reqwest::Response>>) -> reqwest::Result<reqwest::Response> {
        let started = Instant::now();
        let r = send.await;
        self.observe(started, r.as_ref().ok().map(|r| r.status()));
        r
    }
}

impl std::ops::Deref for IdpHttp {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.client
    }
}

impl<'c> AsyncHttpClient<'c> for IdpHttp {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let started = Instant::now();
            let r = self.client.call(request).await;
            self.observe(started, r.as_ref().ok().map(|r| r.status()));
            r
        })
    }
}
