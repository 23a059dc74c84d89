//! Is Jellyfin answering, is the state usable: the one cached probe of Jellyfin, used by
//! `/sso/health` on the public port (up/down only) and by `/readyz` on the metrics listener,
//! and [`Readiness`], which answers the metrics listener's questions ([`Probes`]): the
//! readiness checks and the gauges read at scrape time (pending flows, browser sessions, the
//! certificate's expiry).
//!
//! A probe's answer is reused for [`HEALTH_CACHE`], so neither endpoint can be used to hammer
//! Jellyfin; every check is bounded in time, so a hung dependency makes `/readyz` say so
//! instead of hang.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::listener::{Check, Probes};
use crate::metrics::Metrics;
use crate::proxy::Upstream;
use crate::state::{Kind, State};
use crate::tls::CertStore;

/// How long a probe's answer is reused.
pub const HEALTH_CACHE: Duration = Duration::from_secs(1);
/// The longest one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /System/Info/Public` through the pool, cached for [`HEALTH_CACHE`].
pub struct JellyfinProbe {
    upstream: Upstream,
    last: Mutex<Option<(Instant, bool)>>,
}

impl JellyfinProbe {
    pub fn new(upstream: Upstream) -> JellyfinProbe {
        JellyfinProbe { upstream, last: Mutex::new(None) }
    }

    /// Does Jellyfin answer with a success? The reason when not goes to the log.
    pub async fn up(&self) -> bool {
        if let Some((_, up)) = self.last.lock().expect("health lock").filter(|(at, _)| at.elapsed() < HEALTH_CACHE) {
            return up;
        }
        let up = match self.upstream.probe(CHECK_TIMEOUT).await {
            Ok(s) if s.is_success() => true,
            Ok(s) => {
                tracing::warn!(jellyfin = %self.upstream.display(), status = %s, "health: Jellyfin answered with an error");
                false
            }
            Err(e) => {
                tracing::warn!(jellyfin = %self.upstream.display(), error = %e, "health: Jellyfin is not reachable");
                false
            }
        };
        *self.last.lock().expect("health lock") = Some((Instant::now(), up));
        up
    }
}

/// What `/readyz` checks and `/metrics` samples.
pub struct Readiness {
    jellyfin: JellyfinProbe,
    state: State,
    certs: Arc<CertStore>,
}

impl Readiness {
    /// `upstream`: a pool of its own on the runtime that serves the metrics listener.
    pub fn new(upstream: Upstream, state: State, certs: Arc<CertStore>) -> Readiness {
        Readiness { jellyfin: JellyfinProbe::new(upstream), state, certs }
    }
}

async fn bounded<T, E: std::fmt::Display>(f: impl std::future::Future<Output = Result<T, E>>) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

#[async_trait::async_trait]
impl Probes for Readiness {
    async fn ready(&self) -> Vec<Check> {
        let (jellyfin, durable, ephemeral) = tokio::join!(self.jellyfin.up(), bounded(self.state.durable.providers()), bounded(self.state.ephemeral.count(Kind::Flow)));
        let problem = |r: Result<_, String>, what: &str| {
            r.err().map(|e| {
                tracing::warn!(error = %e, "readiness: the {what} state does not answer");
                "unavailable".to_string()
            })
        };
        vec![
            Check { name: "jellyfin", problem: (!jellyfin).then(|| "down".to_string()) },
            Check { name: "durable", problem: problem(durable.map(|_| ()), "durable") },
            Check { name: "ephemeral", problem: problem(ephemeral.map(|_| ()), "ephemeral") },
        ]
    }

    async fn sample(&self, metrics: &Metrics) {
        let (flows, sessions) = tokio::join!(bounded(self.state.ephemeral.count(Kind::Flow)), bounded(self.state.ephemeral.count(Kind::Session)));
        metrics.sample(flows.ok(), sessions.ok(), self.certs.not_after());
    }
}
