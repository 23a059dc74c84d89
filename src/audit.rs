//! The audit log (`log.audit: PATH`): one JSON object per line for every event an operator
//! may have to account for later: logins and their refusals, Quick Connect mints,
//! revocations, app passwords (created, used, revoked), refused password logins, and changes
//! made through the admin API.
//!
//! It is a file of its own, not a tracing target, so its shape is fixed whatever `log.level`
//! and `log.format` say, and a log shipper can read it without filtering: each line has
//! `time` (RFC 3339, UTC), `event`, and where known `provider`, `protocol`, `user_id`, `user`,
//! `client` (the client address, behind `trusted_proxies` the forwarded one) and `request_id`
//! (the id on the access-log line), plus the event's own fields. It never holds a token, a
//! code, a password or a cookie: callers hand in names, ids and fixed reasons only.
//!
//! The file is opened once for appending (created `0600`); each line is one `write` to an
//! `O_APPEND` file, so lines never interleave and `logrotate`'s `copytruncate` is safe. The
//! client and request id come from the request being served ([`with_origin`], a task-local
//! the router sets), so events deep in the SSO code need not thread them through; events of
//! background work (the max-age sweep) have none.

use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

/// Who sent the request an event happened in.
#[derive(Debug, Clone)]
pub struct Origin {
    pub request_id: String,
    pub client: IpAddr,
}

tokio::task_local! {
    static ORIGIN: Origin;
}

/// Run `fut` with `origin` as the origin of every event it records.
pub async fn with_origin<F: std::future::Future>(origin: Origin, fut: F) -> F::Output {
    ORIGIN.scope(origin, fut).await
}

/// The audit log, or nothing. Cheap to clone.
#[derive(Clone, Default)]
pub struct Audit(Option<Arc<Mutex<File>>>);

impl Audit {
    /// No audit log: [`Audit::event`] writes nothing.
    pub fn off() -> Audit {
        Audit(None)
    }

    /// Open (or create, `0600`) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Audit> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        Ok(Audit(Some(Arc::new(Mutex::new(file)))))
    }

    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Start an event named `event`; add fields and [`Event::write`] it.
    pub fn event(&self, event: &'static str) -> Event<'_> {
        Event { audit: self, fields: self.0.as_ref().map(|_| Map::new()), event }
    }
}

/// One line being built. Fields with `None` values are left out.
pub struct Event<'a> {
    audit: &'a Audit,
    fields: Option<Map<String, Value>>,
    event: &'static str,
}

impl Event<'_> {
    /// Add `key: value` (a name, an id, a fixed reason: never a secret).
    pub fn field(mut self, key: &'static str, value: Option<&str>) -> Self {
        if let (Some(f), Some(v)) = (self.fields.as_mut(), value) {
            f.insert(key.into(), Value::String(v.to_string()));
        }
        self
    }

    pub fn provider(self, protocol: &str, provider: &str) -> Self {
        self.field("protocol", Some(protocol)).field("provider", Some(provider))
    }

    pub fn user(self, user_id: Option<&str>, user: Option<&str>) -> Self {
        self.field("user_id", user_id.filter(|s| !s.is_empty())).field("user", user.filter(|s| !s.is_empty()))
    }

    /// Append the line. A failing write is logged, never fatal to the request.
    pub fn write(self) {
        let (Some(lock), Some(fields)) = (self.audit.0.as_ref(), self.fields) else { return };
        let mut line = Map::new();
        line.insert("time".into(), Value::String(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()));
        line.insert("event".into(), Value::String(self.event.into()));
        let _ = ORIGIN.try_with(|o| {
            line.insert("client".into(), Value::String(o.client.to_string()));
            line.insert("request_id".into(), Value::String(o.request_id.clone()));
        });
        line.extend(fields);
        let mut bytes = serde_json::to_vec(&Value::Object(line)).expect("a JSON map serializes");
        bytes.push(b'\n');
        let mut file = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(&bytes) {
            tracing::error!(error = %e, event = self.event, "the audit log could not be written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_json_with_the_origin_when_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.jsonl");
        let audit = Audit::open(&path).unwrap();
        audit.event("mint").provider("oid", "pocket").user(Some("u1"), None).field("how", Some("browser")).write();
        let origin = Origin { request_id: "0000002a".into(), client: "192.0.2.7".parse().unwrap() };
        with_origin(origin, async { audit.event("login").field("result", Some("refused")).write() }).await;
        Audit::off().event("login").field("x", Some("y")).write();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "mint");
        assert_eq!(lines[0]["provider"], "pocket");
        assert!(lines[0].get("user").is_none() && lines[0].get("client").is_none());
        assert_eq!(lines[1]["client"], "192.0.2.7");
        assert_eq!(lines[1]["request_id"], "0000002a");
        assert!(lines[1]["time"].as_str().unwrap().ends_with('Z'));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
