//! `jellyfin-sso-proxy import-plugin-config PATH/TO/SSO-Auth.xml`: the move from the SSO
//! plugin in one command.
//!
//! The plugin's saved configuration (the XML Jellyfin writes from its `PluginConfiguration`,
//! [`xml`] + [`plugin`]) becomes providers, through the one JSON-to-config path
//! ([`ProviderConfig::from_plugin_json`], so they are validated exactly as `proxy.yaml` and the
//! admin API's `Add` are): printed as a `proxy.yaml` fragment ([`fragment`]), or with
//! `--into-state` stored as API providers. Every canonical link goes into the durable state
//! ([`links`]). Every element is reported: mapped, dropped with the reason, or unknown (a
//! fork's: reported, not fatal). Nothing is written unless everything is valid: all problems
//! are collected first, then the state is written in one transaction.

pub mod fragment;
pub mod links;
pub mod plugin;
pub mod xml;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::{Config, Protocol, ProviderConfig};
use crate::state::{self, normalise_user_id, ImportBatch, StateError, StoredProvider};
use plugin::{Fate, PluginProvider};

/// What the command was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub path: PathBuf,
    /// Store the providers as API providers instead of printing a fragment.
    pub into_state: bool,
    /// `--set oid.NAME.key=value`: settings the plugin's file lacks or holds unreadably.
    pub overrides: Vec<String>,
}

/// Everything that stops an import. Nothing has been written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} line {line}, column {column}: {message}")]
    Xml { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{} problem(s); nothing was written:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
    #[error("state: {0}")]
    State(#[from] StateError),
}

/// A finished import: the report, and the fragment to print when providers were not stored.
#[derive(Debug, Default)]
pub struct Outcome {
    pub report: Vec<String>,
    pub fragment: Option<String>,
}

/// The report so far and the problems that stop the import.
#[derive(Default)]
struct Check {
    report: Vec<String>,
    problems: Vec<String>,
}

/// Read, map and validate the file; then, if nothing is wrong, write the state. `report` gets
/// every line of the report, also when the import is refused.
pub async fn run(config: &Config, opts: &Options, report: &mut Vec<String>) -> Result<Outcome, ImportError> {
    let text = std::fs::read_to_string(&opts.path).map_err(|source| ImportError::Read { path: opts.path.clone(), source })?;
    let root = xml::parse(&text).map_err(|e| ImportError::Xml { path: opts.path.clone(), line: e.line, column: e.column, message: e.message })?;
    let mut c = Check::default();
    let mut providers = read_providers(&root, &opts.path, &mut c);
    apply_overrides(&mut providers, &opts.overrides, &mut c);
    let mut stored = Vec::new();
    for p in &providers {
        describe(p, &mut c);
        if let Some(json) = validate(config, p, &mut c) {
            stored.push(StoredProvider { protocol: p.protocol.as_str().into(), name: p.name.clone(), json });
        }
    }
    let durable = state::open_durable(&config.state, &config.state_dir).await?;
    let mut batch = ImportBatch::default();
    for p in &providers {
        links::plan(durable.as_ref(), p, &mut batch, &mut c.report, &mut c.problems).await?;
    }
    check_names(config, durable.as_ref(), &stored, opts.into_state, &mut c).await?;
    *report = std::mem::take(&mut c.report);
    if !c.problems.is_empty() {
        return Err(ImportError::Invalid(c.problems));
    }
    let fragment = (!opts.into_state).then(|| fragment::render(&stored, &opts.path));
    if opts.into_state {
        batch.providers = stored;
    }
    let (links, legacy, providers) = (batch.links.len(), batch.legacy_links.len(), batch.providers.len());
    durable.import(batch).await?;
    report.push(format!(
        "written to the state: {links} subject link(s), {legacy} link(s) by username (re-keyed to the subject at each person's first login), {providers} API provider(s)"
    ));
    Ok(Outcome { report: std::mem::take(report), fragment })
}

/// The providers of both maps, and a report line for every other top-level element.
fn read_providers(root: &xml::Element, path: &Path, c: &mut Check) -> Vec<PluginProvider> {
    if root.name != "PluginConfiguration" {
        c.problems.push(format!("{} line {}: the root element is <{}>, not the plugin's <PluginConfiguration>", path.display(), root.line, root.name));
        return Vec::new();
    }
    let mut out: Vec<PluginProvider> = Vec::new();
    for e in &root.children {
        let protocol = match e.name.as_str() {
            "OidConfigs" => Protocol::Oidc,
            "SamlConfigs" => Protocol::Saml,
            other => {
                c.report.push(format!("line {}: <{other}> is not in the plugin's PluginConfiguration (a fork's setting?): not imported", e.line));
                continue;
            }
        };
        let mut problems = Vec::new();
        for (name, value, line) in plugin::map_items(e, &mut problems) {
            let Some(body) = value.child("PluginConfiguration") else {
                c.problems.push(format!("line {line}: provider {name} has no <PluginConfiguration> in its <value>"));
                continue;
            };
            if out.iter().any(|p| p.protocol == protocol && p.name == name) {
                c.problems.push(format!("line {line}: provider {name} appears twice in <{}>", e.name));
                continue;
            }
            out.push(plugin::provider(protocol, &name, line, body));
        }
        c.problems.extend(problems.into_iter().map(|(line, m)| format!("line {line}: {m}")));
    }
    if out.is_empty() {
        c.report.push("the file holds no providers".into());
    }
    out
}

/// `--set oid.NAME.key=value` (or `saml.`): a JSON value, or else the text as a string.
fn apply_overrides(providers: &mut [PluginProvider], overrides: &[String], c: &mut Check) {
    for o in overrides {
        let parsed = o.split_once('=').and_then(|(path, value)| {
            let mut parts = path.splitn(3, '.');
            let protocol = Protocol::from_name(parts.next()?)?;
            Some((protocol, parts.next()?.to_string(), parts.next()?.to_string(), value))
        });
        let Some((protocol, name, key, value)) = parsed else {
            c.problems.push(format!("--set {o}: expected oid.NAME.key=value or saml.NAME.key=value"));
            continue;
        };
        let Some(p) = providers.iter_mut().find(|p| p.protocol == protocol && p.name == name) else {
            c.problems.push(format!("--set {o}: the file has no {} provider {name}", protocol.as_str()));
            continue;
        };
        let value = serde_json::from_str::<Value>(value).unwrap_or_else(|_| Value::String(value.to_string()));
        c.report.push(format!("{}/{name}: {key} set from the command line", protocol.as_str()));
        p.json.insert(key, value);
    }
}

/// One report line per element of the provider.
fn describe(p: &PluginProvider, c: &mut Check) {
    let who = format!("{}/{}", p.protocol.as_str(), p.name);
    for (element, line, fate) in &p.fields {
        c.report.push(match fate {
            Fate::Mapped(key) => format!("{who}: <{element}> (line {line}) → {key}"),
            Fate::Dropped(why) => format!("{who}: <{element}> (line {line}) dropped: {why}"),
            Fate::Unknown => format!("{who}: <{element}> (line {line}) is not in the plugin's {} (a fork's field?): not imported", class(p.protocol)),
        });
    }
    c.problems.extend(p.problems.iter().map(|(line, m)| format!("{who} line {line}: {m}")));
    if p.protocol == Protocol::Saml && !p.json.contains_key("samlIdpEntityId") {
        c.report.push(format!("{who}: the plugin never checked the Issuer of SAML responses; the proxy does: give the identity provider's entity id with --set saml.{}.samlIdpEntityId=ENTITY_ID", p.name));
    }
}

fn class(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Oidc => "OidConfig",
        Protocol::Saml => "SamlConfig",
    }
}

/// Validate with the proxy's own rules; problems name the element and line they came from.
fn validate(config: &Config, p: &PluginProvider, c: &mut Check) -> Option<Value> {
    let json = Value::Object(p.json.clone());
    match ProviderConfig::from_plugin_json(p.protocol, &p.name, &json, &config.state_dir) {
        Ok(_) => Some(json),
        Err(problems) => {
            for pr in problems {
                let from = p.origin.iter().find(|(k, _, _)| pr.path == *k || pr.path.starts_with(&format!("{k}."))).map(|(_, e, l)| format!(" (<{e}>, line {l})"));
                c.problems.push(format!("{}/{}: {}: {}{}", p.protocol.as_str(), p.name, pr.path, pr.message, from.unwrap_or_else(|| format!(" (provider on line {})", p.line))));
            }
            None
        }
    }
}

/// A provider name taken by `proxy.yaml` or by a different API provider cannot be stored.
async fn check_names(config: &Config, durable: &dyn state::Durable, stored: &[StoredProvider], into_state: bool, c: &mut Check) -> Result<(), StateError> {
    for s in stored {
        let in_file = config.providers().any(|p| p.protocol().as_str() == s.protocol && p.name() == s.name);
        let existing = durable.provider(&s.protocol, &s.name).await?;
        let who = format!("{}/{}", s.protocol, s.name);
        match (into_state, in_file, existing) {
            (true, true, _) => c.problems.push(format!("{who}: proxy.yaml already defines this provider; import without --into-state, or rename one of them")),
            (true, false, Some(e)) if e.json != s.json => {
                c.problems.push(format!("{who}: an API provider of this name already exists with other settings; remove it first (DELETE /sso/{}/Del/{})", if s.protocol == "oid" { "OID" } else { "SAML" }, s.name))
            }
            (true, false, Some(_)) => c.report.push(format!("{who}: the API provider is already there, unchanged")),
            (false, _, Some(_)) => c.report.push(format!("{who}: an API provider of this name exists; once the fragment is in proxy.yaml it shadows it")),
            _ => {}
        }
    }
    Ok(())
}

/// A Jellyfin user id (`Guid`) as the plugin wrote it → Jellyfin's own JSON form (32 lowercase
/// hex digits); `None` when it is not one.
pub fn guid(text: &str) -> Option<String> {
    let t = text.trim().trim_start_matches('{').trim_end_matches('}');
    let hex = normalise_user_id(t);
    let dashes_ok = !t.contains('-') || (t.len() == 36 && [8, 13, 18, 23].iter().all(|i| t.as_bytes()[*i] == b'-'));
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && dashes_ok).then_some(hex)
}
