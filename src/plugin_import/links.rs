//! The plugin's canonical links → the durable state's links.
//!
//! What the plugin keyed a link by decides what it becomes (9p4/jellyfin-plugin-sso
//! `SSO-Auth/Api/SSOController.cs`, `CreateCanonicalLinkAndUserIfNotExist`'s callers):
//! - SAML: the NameID (`SamlPost` passes `samlResponse.GetNameID()`, `SSO-Auth/Saml.cs`), which
//!   is the proxy's subject too: a subject link.
//! - OIDC: the username claim (`OidAuth` passes `timedState.Username`: `DefaultUsernameClaim`,
//!   else `preferred_username`, else `sub`), which people can change: a legacy link by name,
//!   re-keyed to the subject at that person's first login (`crate::sso::legacy_links`).
//!   Exceptions that are subjects already: every link when `DefaultUsernameClaim` was empty (no
//!   claim matched, so `sub` was used), and the keys of a fork's `CanonicalLinkIssuers` (the
//!   Flowfin/iderex fork keys links by `sub` and records an issuer per subject).
//!
//! A link is refused (the whole import is) when the state already links that key to another
//! user. A name link to a user who already signs in through the proxy with that provider is
//! skipped: that person was re-keyed already, and bringing the name back would let whoever
//! holds the name next take the account.

use std::collections::HashSet;

use super::plugin::PluginProvider;
use crate::config::Protocol;
use crate::state::{normalise_user_id, now_secs, Durable, ImportBatch, LegacyLink, Link, StateError};

/// Add the provider's links to `batch`, reporting each decision.
pub async fn plan(durable: &dyn Durable, p: &PluginProvider, batch: &mut ImportBatch, report: &mut Vec<String>, problems: &mut Vec<String>) -> Result<(), StateError> {
    let who = format!("{}/{}", p.protocol.as_str(), p.name);
    let protocol = p.protocol.as_str();
    let (mut by_subject, mut by_name, mut skipped) = (0, 0, 0);
    let mut seen = HashSet::new();
    let now = now_secs();
    for (name, user, line) in &p.links {
        let at = format!("{who} line {line}: link `{name}`");
        if name.is_empty() {
            problems.push(format!("{at}: an empty canonical name"));
            continue;
        }
        if !seen.insert(name.clone()) {
            problems.push(format!("{at}: appears twice"));
            continue;
        }
        let Some(user_id) = super::guid(user) else {
            problems.push(format!("{at}: `{user}` is not a Jellyfin user id"));
            continue;
        };
        if user_id.bytes().all(|b| b == b'0') {
            report.push(format!("{at} dropped: the empty user id (the plugin reads it as no link)"));
            skipped += 1;
            continue;
        }
        let subject_key = p.protocol == Protocol::Saml || p.links_keyed_by_sub || p.subject_keys.contains(name);
        if subject_key {
            match durable.link(protocol, &p.name, name).await? {
                Some(l) if normalise_user_id(&l.user_id) != user_id => {
                    problems.push(format!("{at}: the state already links this subject to another user ({})", l.user_id));
                }
                Some(_) => skipped += 1,
                None => {
                    batch.links.push(Link { protocol: protocol.into(), provider: p.name.clone(), subject: name.clone(), user_id, linked_at: now });
                    by_subject += 1;
                }
            }
            continue;
        }
        let rekeyed = durable.links_of_user(&user_id).await?.iter().any(|l| l.protocol == protocol && l.provider == p.name);
        if rekeyed {
            report.push(format!("{at} skipped: that user already signs in through the proxy with this provider (by subject)"));
            skipped += 1;
            continue;
        }
        match durable.legacy_link(protocol, &p.name, name).await? {
            Some(l) if normalise_user_id(&l.user_id) != user_id => {
                problems.push(format!("{at}: the state already holds an imported link of this name to another user ({})", l.user_id));
            }
            Some(_) => skipped += 1,
            None => {
                batch.legacy_links.push(LegacyLink { protocol: protocol.into(), provider: p.name.clone(), name: name.clone(), user_id, linked_at: now });
                by_name += 1;
            }
        }
    }
    if !p.links.is_empty() {
        report.push(format!("{who}: {} link(s): {by_subject} by subject, {by_name} by username (re-keyed to the subject at first login), {skipped} already there or skipped", p.links.len()));
    }
    Ok(())
}
