//! `metrics:` in proxy.yaml: the operator's listener for Prometheus, `/healthz` and `/readyz`.
//!
//! ```yaml
//! metrics:
//!   listen: 127.0.0.1:9464   # off when not set; never the public port
//! ```
//!
//! Off by default. The address must differ from `listen` and `http_redirect_listen` (the
//! exposition and the readiness answer are for the operator, not for whoever reaches the
//! public port).

use std::net::SocketAddr;

use serde::Deserialize;

use super::field::{Field, Problems, Unknown};

/// The validated `metrics:` section.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// Where the metrics listener binds; `None`: no listener and no counting.
    pub listen: Option<SocketAddr>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawMetrics {
    listen: Field<String>,
    #[serde(flatten)]
    unknown: Unknown,
}
const KEYS: &[&str] = &["listen"];

impl RawMetrics {
    /// Validate against the public listeners (`public`: `listen` and `http_redirect_listen`).
    pub(super) fn validate(self, p: &mut Problems, public: &[(&str, SocketAddr)]) -> MetricsConfig {
        p.unknown("metrics", &self.unknown, KEYS);
        let listen = p.parse("metrics.listen", self.listen, None, |s| {
            s.parse::<SocketAddr>().map(Some).map_err(|_| "not an address like `127.0.0.1:9464`")
        });
        if let Some(addr) = listen {
            for (name, public) in public {
                let clash = addr.port() == public.port() && (addr.ip() == public.ip() || addr.ip().is_unspecified() || public.ip().is_unspecified());
                if clash {
                    p.push("metrics.listen", format!("{addr} is the public port ({name}: {public}); metrics get a listener of their own"));
                }
            }
        }
        MetricsConfig { listen }
    }
}
