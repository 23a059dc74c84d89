//! Logging setup: human or JSON lines on stderr through `tracing`, filtered by `log.level`
//! (or `RUST_LOG`, when set, for debugging). Access lines use the target `access`.
//!
//! The filter sits in a `tracing-subscriber` reload layer, so a configuration reload can
//! change `log.level` in place ([`set_level`]); the format (`log.format`) is fixed at start.
//! Callsites cache whether they are enabled, and a reload rebuilds that cache, so a level
//! costs nothing per event beyond what a fixed filter costs.
//!
//! Every line written while a request is handled carries its id: [`request`] says how it is
//! carried, [`mod@format`] how it is written.

pub mod format;
pub mod request;

pub use request::{InRequest, RequestId};

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use crate::config::{LogConfig, LogFormat};

/// The handle of the filter in service, set by the [`init`] that installed the subscriber.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// What became of a new `log.level`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelChange {
    /// The new filter is in service.
    Applied,
    /// `RUST_LOG` is set and keeps its filter: `log.level` has no effect until it is unset.
    PinnedByEnvironment,
    /// No subscriber of ours is installed (a test embedding the proxy set its own).
    NotInstalled,
}

pub fn init(cfg: &LogConfig) {
    let filter = pinned_filter().unwrap_or_else(|| EnvFilter::new(&cfg.level));
    let (filter, handle) = reload::Layer::new(filter);
    let writer = std::io::stderr;
    // Colour only on a terminal (and not with NO_COLOR): journald, files and pipes get plain
    // text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (human, json) = match cfg.format {
        LogFormat::Human => (Some(fmt::layer().with_ansi(colour).with_writer(writer).event_format(format::Human::new())), None),
        LogFormat::Json => (None, Some(fmt::layer().json().with_writer(writer).event_format(format::Json))),
    };
    // A second init (tests starting several servers in one process) is harmless.
    if tracing_subscriber::registry().with(filter).with(human).with(json).try_init().is_ok() {
        let _ = FILTER.set(handle);
    }
}

fn pinned_filter() -> Option<EnvFilter> {
    std::env::var("RUST_LOG").ok().and_then(|s| EnvFilter::try_new(s).ok())
}

/// Put `level` (a `log.level` value, already validated by the config layer) in service.
pub fn set_level(level: &str) -> Result<LevelChange, String> {
    if pinned_filter().is_some() {
        return Ok(LevelChange::PinnedByEnvironment);
    }
    let Some(handle) = FILTER.get() else { return Ok(LevelChange::NotInstalled) };
    let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    handle.reload(filter).map_err(|e| e.to_string())?;
    Ok(LevelChange::Applied)
}
