//! Logging setup: human or JSON lines on stderr through `tracing`, filtered by `log.level`
//! (or `RUST_LOG`, when set, for debugging). Access lines use the target `access`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

pub fn init(cfg: &LogConfig) {
    let filter = std::env::var("RUST_LOG").ok().and_then(|s| EnvFilter::try_new(s).ok()).unwrap_or_else(|| EnvFilter::new(&cfg.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests starting several servers in one process) is harmless.
    let _ = match cfg.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
