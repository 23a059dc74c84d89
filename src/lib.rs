//! jellyfin-sso-proxy: the HTTPS front door of a Jellyfin server, adding single sign-on.
//!
//! The map of the crate, in the order a request meets it:
//!
//! - [`config`]: `proxy.yaml` + `JSP_*` environment → validated [`config::Config`].
//! - [`tls`]: certificates (loaded, self-signed on first run, reloaded on change).
//! - [`server`]: listeners, TLS accept, HTTP/1.1 + HTTP/2, limits, graceful shutdown.
//! - [`router`]: per request, `/sso/*` → [`sso`], everything else → [`proxy`]; access log.
//! - [`proxy`]: streaming forwarding to Jellyfin, websockets, header rules, the connection
//!   pool to Jellyfin; [`branding`]: the few Jellyfin answers the proxy changes (the login
//!   page's branding, public users).
//! - [`jellyfin`]: typed client for Jellyfin's REST API, including Quick Connect token minting.
//! - [`sso`]: the SSO plugin's HTTP API.
//! - [`error`]: error enums and the single error → response mapping; [`pages`]: HTML pages.
//! - [`state`]: ephemeral and durable state behind two traits (in memory + SQLite).
//! - [`body`]: the streaming body type; [`clock`]: a coarse clock for per-IO bookkeeping; [`deadline`]: cheap timeouts of seconds for the hot path; [`logging`]: log setup (its level changes live)
//!   and the request id on every line of a request;
//!   [`resources`]: the open-files limit and returning freed connection memory to the system.
//! - [`reload`]: live reload of `proxy.yaml` on SIGHUP or a change of the file.
//! - [`doctor`]: the `doctor` command's checks of everything a sign-in depends on.
//! - [`plugin_import`]: the `import-plugin-config` command (the SSO plugin's XML → providers, links).
//! - [`metrics`]: the Prometheus registry and the operator's listener (`/metrics`, `/healthz`,
//!   `/readyz`), with [`health`] answering what it asks; [`audit`]: the audit log (JSON lines).

pub mod audit;
pub mod body;
pub mod branding;
pub mod clock;
pub mod config;
pub mod context;
pub mod cookie;
pub mod deadline;
pub mod doctor;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod jellyfin;
pub mod logging;
pub mod metrics;
pub mod pages;
pub mod plugin_import;
pub mod proxy;
pub mod reload;
pub mod resources;
pub mod router;
pub mod server;
pub mod state;
pub mod sso;
pub mod tls;
