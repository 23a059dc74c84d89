//! The `jellyfin-sso-proxy` command: read the config, set up logging and TLS, then serve.
//!
//! The whole shape, and the composition root: [`Config`] is loaded and validated once; the
//! state ([`State`]: durable SQLite or PostgreSQL, ephemeral memory or Redis, as `state:`
//! says), the Jellyfin REST client and the
//! SSO side ([`Sso`]) are built once here and handed in; each worker thread gets an [`App`]
//! with its own upstream pool; [`server`] accepts TLS connections and hands each request to
//! the router, which forwards to Jellyfin or answers `/sso/*`. SIGHUP, or a change of the
//! files, reloads `proxy.yaml` ([`reload`]) and the certificate; SIGTERM/SIGINT stop
//! accepting and let in-flight requests finish.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

use jellyfin_sso_proxy::config::{Config, ConfigError};
use jellyfin_sso_proxy::jellyfin::Jellyfin;
use jellyfin_sso_proxy::proxy::Upstream;
use jellyfin_sso_proxy::router::App;
use jellyfin_sso_proxy::sso::Sso;
use jellyfin_sso_proxy::state::{Caps, State};
use jellyfin_sso_proxy::tls::{self, CertStore};
use jellyfin_sso_proxy::audit::Audit;
use jellyfin_sso_proxy::health::Readiness;
use jellyfin_sso_proxy::metrics::{self, Metrics};
use jellyfin_sso_proxy::sso::observe::Observer;
use jellyfin_sso_proxy::reload::{self, Reloader, Trigger};
use jellyfin_sso_proxy::{logging, resources, server};

/// The allocator: jemalloc keeps the many small, long-lived allocations of idle connections
/// densely packed, where glibc's arenas left them scattered over pages freed memory could not
/// be returned from (10,000 idle connections: 135 MiB with glibc, 86 MiB with jemalloc;
/// docs/benchmarks.md, idle connections).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read by it at start (a C string, as `malloc_conf`): a background
/// thread hands free pages back to the system within about a second of being freed, instead of
/// keeping them for reuse for ten; the variable `_RJEM_MALLOC_CONF` can still change any of it.
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_CONF: Option<&[u8; 60]> = Some(b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0");

/// HTTPS reverse proxy that puts OpenID Connect and SAML single sign-on in front of Jellyfin.
///
/// It forwards everything to Jellyfin unchanged except /sso/*, where it serves the SSO plugin's
/// API. Configure it in proxy.yaml; any setting can be overridden by an environment variable
/// JSP_<SECTION>__<KEY>, e.g. JSP_JELLYFIN__URL=http://jellyfin:8096.
#[derive(Parser)]
#[command(version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BUILD_GIT_COMMIT"), ")"), about, long_about)]
struct Cli {
    /// Path of the configuration file [default: ./proxy.yaml]
    #[arg(long, short, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default when no command is given)
    Run,
    /// Validate the configuration and TLS files, list every problem, and exit (non-zero on problems)
    CheckConfig,
    /// Check, online, everything sign-ins depend on (Jellyfin, identity providers, TLS) and
    /// print one line per check with the fix; exit 0 only when all pass
    Doctor,
    /// Import the SSO plugin's saved configuration (SSO-Auth.xml from Jellyfin's plugin
    /// configurations directory): providers as a proxy.yaml fragment (or with --into-state as
    /// API providers) and every account link into the state. Reports every field; writes
    /// nothing if anything is invalid
    ImportPluginConfig {
        /// The plugin's XML file
        path: PathBuf,
        /// Write the fragment to this new file (created owner-only) instead of standard output
        #[arg(long, value_name = "FILE", conflicts_with = "into_state")]
        output: Option<PathBuf>,
        /// Store the providers in the state as API providers instead of printing a fragment
        #[arg(long)]
        into_state: bool,
        /// A setting the file lacks, e.g. saml.corp.samlIdpEntityId=https://idp.example/ (repeatable)
        #[arg(long = "set", value_name = "PROTOCOL.NAME.KEY=VALUE")]
        overrides: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let explicit = cli.config.is_some();
    let path = cli.config.unwrap_or_else(|| PathBuf::from("proxy.yaml"));
    // Taken before reading, so a change made while starting is noticed by the first check.
    let seen = reload::stamp(&path);
    let config = match Config::load(&path, explicit) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, ConfigError::Invalid(_)) {
                eprintln!("(run `jellyfin-sso-proxy check-config` after fixing to verify)");
            }
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => check_config(&config, &path),
        Command::Doctor => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            let report = runtime.block_on(jellyfin_sso_proxy::doctor::run(&config));
            print!("{}", report.render());
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::ImportPluginConfig { path, output, into_state, overrides } => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            let opts = jellyfin_sso_proxy::plugin_import::Options { path, into_state, overrides };
            import_plugin_config(&runtime, &config, &opts, output.as_deref())
        }
        Command::Run => {
            logging::init(&config.log);
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(run(config, Reloading { path, seen })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check_config(config: &Config, path: &std::path::Path) -> ExitCode {
    let (cert, key) = (&config.tls.cert, &config.tls.key);
    let tls_problem = match (cert.exists(), key.exists()) {
        (false, false) => None,
        (true, true) => tls::load_pair(cert, key).err().map(|e| e.to_string()),
        _ => Some(format!("tls: give both {} and {}, or neither to have a self-signed pair generated", cert.display(), key.display())),
    };
    match tls_problem {
        Some(p) => {
            eprintln!("error: 1 problem in the configuration:\n  - {p}");
            ExitCode::from(2)
        }
        None => {
            println!("{}: configuration OK", path.display());
            if !cert.exists() {
                println!("note: no certificate yet; a self-signed one for localhost will be generated at {}", cert.display());
            }
            ExitCode::SUCCESS
        }
    }
}

/// The import: the report on standard error, the fragment on standard output or in `output`
/// (checked before anything is written, and created only once the state is written).
fn import_plugin_config(runtime: &tokio::runtime::Runtime, config: &Config, opts: &jellyfin_sso_proxy::plugin_import::Options, output: Option<&std::path::Path>) -> ExitCode {
    if let Some(out) = output.filter(|o| o.exists()) {
        eprintln!("error: {} exists; give a new file for the fragment", out.display());
        return ExitCode::from(2);
    }
    let mut report = Vec::new();
    let result = runtime.block_on(jellyfin_sso_proxy::plugin_import::run(config, opts, &mut report));
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            for line in &report {
                eprintln!("{line}");
            }
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for line in &done.report {
        eprintln!("{line}");
    }
    match (done.fragment, output) {
        (Some(fragment), Some(out)) => {
            if let Err(e) = write_private(out, &fragment) {
                eprintln!("error: cannot write {}: {e}; the links are in the state, here is the fragment:\n{fragment}", out.display());
                return ExitCode::FAILURE;
            }
            eprintln!("the providers are in {}", out.display());
        }
        (Some(fragment), None) => print!("{fragment}"),
        (None, _) => {}
    }
    ExitCode::SUCCESS
}

/// Create `path` (new, owner-only) holding `text`.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Where the running configuration came from, for reloading it.
struct Reloading {
    path: PathBuf,
    seen: reload::Stamp,
}

async fn run(config: Config, reloading: Reloading) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let (certs, generated) = CertStore::open(&config.tls).context("TLS certificate")?;
    if generated {
        tracing::warn!(cert = %config.tls.cert.display(), "no certificate configured: generated a self-signed one for localhost; browsers will warn until you install a real one");
    }
    let acceptor = certs.server_config();
    // Metrics are counted only when someone can read them (`metrics.listen`).
    let metrics = if config.metrics.listen.is_some() { Metrics::new() } else { Metrics::off() };
    let audit = match &config.log.audit {
        Some(path) => Audit::open(path).with_context(|| format!("cannot open the audit log {} (log.audit)", path.display()))?,
        None => Audit::off(),
    };
    let caps = Caps { flows: config.sso.max_pending_flows, completions: config.sso.max_pending_flows, ..Caps::default() };
    let mut state = State::open(&config.state, &config.state_dir, caps).await.context("state")?;
    if metrics.enabled() {
        let m = metrics.clone();
        state = state.observed((config.state.durable.name(), config.state.ephemeral.name()), Arc::new(move |store, backend| m.state_error(store, backend)));
    }
    let limits = &config.limits;
    let jellyfin = Jellyfin::new(&config.jellyfin.url, config.jellyfin.api_key.clone(), limits.upstream_connect_timeout, limits.upstream_header_timeout);
    let observer = Observer::new(metrics.clone(), audit);
    let sso = Arc::new(Sso::with_observer(config.clone(), state, jellyfin, observer).await.context("state")?);
    tokio::spawn(sso.clone().sweep_forever());
    tokio::spawn(sso.clone().watch_providers(jellyfin_sso_proxy::sso::PROVIDER_REREAD));

    // Thread per core: one single-threaded runtime per core, each with its own accept loop on
    // a SO_REUSEPORT listener and its own upstream pool, so a request and its upstream
    // connection are driven by one thread without cross-thread wake-ups. Everything else
    // (signals, reloads, sweeps, identity provider warm-up) stays on this runtime.
    resources::raise_open_files_limit(config.limits.max_connections);
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let listeners = server::bind_shared(config.listen, workers).with_context(|| format!("cannot listen on {}", config.listen))?;
    if config.jellyfin.api_key.is_none() {
        tracing::warn!("jellyfin.api_key is not set: traffic is forwarded, but nobody can sign in through SSO");
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    if let Some(addr) = config.http_redirect_listen {
        let l = server::bind(addr).with_context(|| format!("cannot listen on {addr} (http_redirect_listen)"))?;
        tokio::spawn(server::run_redirect(l, config.public_url.clone(), stopped(stop_rx.clone())));
    }
    if let Some(addr) = config.metrics.listen {
        let l = server::bind(addr).with_context(|| format!("cannot listen on {addr} (metrics.listen)"))?;
        // Its own pool on this runtime, and the state as the SSO side sees it.
        let upstream = Upstream::new(&config.jellyfin.url, limits.upstream_connect_timeout, limits.upstream_header_timeout);
        let readiness = Arc::new(Readiness::new(upstream, sso.state().clone(), certs.clone()));
        tokio::spawn(metrics::listener::run(l, metrics.clone(), readiness, stopped(stop_rx.clone())));
        tracing::info!(%addr, "metrics, /healthz and /readyz listening");
    }
    // Installed before "serving" is logged: from then on SIGHUP reloads instead of ending the process.
    let hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    tracing::info!(listen = %config.listen, public_url = %config.public_url.as_str(), jellyfin = %config.jellyfin.url, "serving");
    // Serve at once; a slow or hung Jellyfin must not delay the port (it is reported when known).
    tokio::spawn(check_jellyfin(sso.clone()));
    let reloader = Reloader::new(reloading.path, sso.clone(), reloading.seen);
    tokio::spawn(watch_reloads(hup, certs, reloader, config.tls.reload_interval));
    tokio::spawn(resources::return_memory_forever());
    tokio::spawn(async move {
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
        let _ = stop_tx.send(true);
    });
    let permits = Arc::new(tokio::sync::Semaphore::new(config.limits.max_connections));
    let mut finished = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        // Each worker's requests use upstream connections driven by that worker.
        let upstream = Upstream::new(&config.jellyfin.url, config.limits.upstream_connect_timeout, config.limits.upstream_header_timeout);
        let app = Arc::new(App::new(upstream, sso.clone()));
        let (acceptor, permits, stop) = (acceptor.clone(), permits.clone(), stopped(stop_rx.clone()));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name(format!("serve-{i}")).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listening socket registers with the runtime");
                server::run_with_permits(listener, app, acceptor, permits, stop).await;
            });
            let _ = done_tx.send(());
        })?;
        finished.push(done_rx);
    }
    for f in finished {
        let _ = f.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Report Jellyfin and the identity providers at start-up, in the background. Jellyfin
/// being down is a warning (it may start after us); a Jellyfin that is too old, rejects the
/// API key, or has Quick Connect off is an error in the log, because no login can work
/// until it is fixed (ordinary traffic is still forwarded).
async fn check_jellyfin(sso: Arc<Sso>) {
    use jellyfin_sso_proxy::jellyfin::JellyfinError;
    match sso.jellyfin().check_ready().await {
        Ok(info) => tracing::info!(server = %info.server_name, version = %info.version, id = %info.id, "Jellyfin is ready"),
        Err(e @ (JellyfinError::UnsupportedVersion { .. } | JellyfinError::ApiKeyRejected | JellyfinError::QuickConnectDisabled)) => {
            tracing::error!(error = %e, "Jellyfin is misconfigured for single sign-on: nobody can sign in until this is fixed")
        }
        Err(e) => tracing::warn!(error = %e, "Jellyfin is not ready yet; requests will show what happens"),
    }
    for p in sso.oidc_providers() {
        for r in p.config.relaxations() {
            tracing::warn!(provider = %p.config.name, "security check relaxed: {r}");
        }
        // Discovery in the background: an unreachable provider must not delay serving.
        tokio::spawn(async move {
            if let Err(e) = p.warm_up().await {
                tracing::warn!(provider = %p.config.name, error = %e, "identity provider not ready; logins will retry discovery");
            }
        });
    }
}

/// Reload `proxy.yaml` and the certificate on SIGHUP, and each whenever its files change on
/// disk (checked every `every`).
async fn watch_reloads(mut hup: tokio::signal::unix::Signal, certs: Arc<CertStore>, config: Reloader, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        let forced = tokio::select! {
            _ = hup.recv() => true,
            _ = tick.tick() => false,
        };
        if forced {
            config.reload(Trigger::Signal);
        } else if config.file_changed() {
            config.reload(Trigger::FileChanged);
        }
        match certs.reload(forced) {
            Ok(true) => tracing::info!("TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "TLS certificate reload failed; still serving the previous one"),
        }
    }
}
