//! Live reload of `proxy.yaml`, on SIGHUP or when the file changes on disk.
//!
//! A reload runs the same loader as the start ([`Config::reload`]: the file and the `JSP_*`
//! environment, validated into the typed [`Config`]) and is all or nothing: a file with any
//! problem, a provider that cannot be built, or a change to a setting bound at start
//! (`config::restart`) leaves the running configuration in service untouched, and every
//! problem is logged on its own line with its place in the file. Otherwise the SSO side
//! swaps to the new configuration ([`Sso::prepare`] then [`Sso::apply`]) and the log filter
//! takes the new `log.level`. Open connections, websockets and logins in progress are not
//! touched: requests read the configuration in service when they need it.
//!
//! A change on disk is noticed like the certificate's (`tls.rs`): the file's modification
//! time and length, checked every `tls.reload_interval`. [`report`] is the one place a
//! reload's result is told (log lines; counters hang here too).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::{Config, ConfigError};
use crate::logging::{self, LevelChange};
use crate::sso::registry::FileChanges;
use crate::sso::Sso;

/// What made a reload happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    FileChanged,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::FileChanged => "file changed",
        }
    }
}

/// The result of one reload.
#[derive(Debug)]
pub enum Outcome {
    /// The new configuration is in service.
    Applied { providers: FileChanges, log_level: Option<LevelChange> },
    /// The file has problems (unreadable, bad YAML, bad values, a provider that cannot be
    /// built): nothing changed.
    Invalid(Vec<String>),
    /// The file is valid but changes settings bound at start: nothing changed.
    NeedsRestart(Vec<String>),
}

impl Outcome {
    /// A short, bounded name for the result: `applied`, `invalid` or `needs_restart`.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::Invalid(_) => "invalid",
            Outcome::NeedsRestart(_) => "needs_restart",
        }
    }
}

/// A file's identity for noticing a change: modification time and length.
pub type Stamp = Option<(SystemTime, u64)>;

pub fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reloads one configuration file into one running proxy.
pub struct Reloader {
    path: PathBuf,
    sso: Arc<Sso>,
    /// The stamp of the file when it was last read (at start, or by a reload).
    seen: Mutex<Stamp>,
}

impl Reloader {
    /// `seen` is the file's stamp taken before the running configuration was read from it.
    pub fn new(path: PathBuf, sso: Arc<Sso>, seen: Stamp) -> Reloader {
        Reloader { path, sso, seen: Mutex::new(seen) }
    }

    /// Has the file changed on disk since it was last read?
    pub fn file_changed(&self) -> bool {
        *self.seen.lock().expect("stamp lock") != stamp(&self.path)
    }

    /// Reload now, tell the result ([`report`]) and return it.
    pub fn reload(&self, trigger: Trigger) -> Outcome {
        // Taken before reading: a write after this is noticed by the next check.
        *self.seen.lock().expect("stamp lock") = stamp(&self.path);
        let outcome = self.run();
        report(trigger, &self.path, &outcome);
        self.sso.obs.metrics.config_reloaded(outcome.result());
        outcome
    }

    fn run(&self) -> Outcome {
        let running: Arc<Config> = Arc::clone(&*self.sso.config());
        let next = match Config::reload(&self.path, &running) {
            Ok(c) => c,
            Err(e @ ConfigError::NeedsRestart(_)) => return Outcome::NeedsRestart(e.problems()),
            Err(e) => return Outcome::Invalid(e.problems()),
        };
        let level = (next.log.level != running.log.level).then(|| next.log.level.clone());
        let prepared = match self.sso.prepare(next) {
            Ok(p) => p,
            Err(problems) => return Outcome::Invalid(problems),
        };
        let providers = self.sso.apply(prepared);
        self.warm_up(&providers);
        let log_level = level.map(|l| logging::set_level(&l).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "log.level could not be put in service");
            LevelChange::NotInstalled
        }));
        Outcome::Applied { providers, log_level }
    }

    /// Discovery for new and changed OpenID providers, in the background, and their relaxed
    /// checks in the log (as at start).
    fn warm_up(&self, changes: &FileChanges) {
        let fresh = |name: &str| changes.added.iter().chain(&changes.changed).any(|c| c.strip_prefix("oid/") == Some(name));
        for p in self.sso.oidc_providers().into_iter().filter(|p| fresh(&p.config.name)) {
            for r in p.config.relaxations() {
                tracing::warn!(provider = %p.config.name, "security check relaxed: {r}");
            }
            tokio::spawn(async move {
                if let Err(e) = p.warm_up().await {
                    tracing::warn!(provider = %p.config.name, error = %e, "identity provider not ready; logins will retry discovery");
                }
            });
        }
    }
}

/// Tell the result of a reload: the one place where it is reported.
pub fn report(trigger: Trigger, path: &Path, outcome: &Outcome) {
    let (trigger, file, result) = (trigger.as_str(), path.display(), outcome.result());
    match outcome {
        Outcome::Applied { providers, log_level } => {
            let level = match log_level {
                None => "unchanged",
                Some(LevelChange::Applied) => "changed",
                Some(LevelChange::PinnedByEnvironment) => "kept: RUST_LOG is set",
                Some(LevelChange::NotInstalled) => "not applied",
            };
            tracing::info!(trigger, %file, result, added = ?providers.added, changed = ?providers.changed, removed = ?providers.removed, log_level = level, "configuration reloaded");
        }
        Outcome::Invalid(problems) | Outcome::NeedsRestart(problems) => {
            for problem in problems {
                tracing::error!(trigger, %file, result, "configuration reload: {problem}");
            }
            let why = if matches!(outcome, Outcome::NeedsRestart(_)) { "a restart is needed for the change" } else { "the file has problems" };
            tracing::error!(trigger, %file, result, problems = problems.len(), "configuration reload refused ({why}); nothing was applied, the previous configuration stays in service");
        }
    }
}
