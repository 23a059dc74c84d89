//! Account links through the plugin's API, and `Unregister`.
//!
//! - `GET /sso/{mode}/links/{user}`: provider → linked subjects of that user, and the
//!   canonical names of links imported from the plugin that no login has re-keyed yet (the
//!   names the plugin listed; `DELETE` takes either).
//! - `POST /sso/{mode}/Link/{p}/{user}`: the completion page of a linking flow links the
//!   identity it verified to the signed-in user.
//! - `DELETE /sso/{mode}/Link/{p}/{user}/{subject}`.
//! - `POST /sso/Unregister/{username}`: hand the user back to another authentication
//!   provider and drop their links. The links are removed first, so a storage failure
//!   leaves Jellyfin untouched.
//! - Removing a user's last link, or Unregister, revokes their app passwords (and signs out
//!   the devices those minted).
//!
//! Removing a link or unregistering first revokes the Jellyfin sessions minted through what
//! is cut off (that identity's sessions of the user; every SSO-minted session of an
//! unregistered user), so a failure to reach Jellyfin changes nothing and can be retried.

use std::collections::BTreeMap;

use http::Response;

use super::error::SsoError;
use super::http::{SsoRequest, json_ok, read_json, AuthBody};
use super::identity::Protocol;
use super::revocation::Why;
use super::Sso;
use crate::body::Body;
use crate::context::RequestContext;
use crate::state::{now_secs, Link};

impl Sso {
    pub(super) async fn links(&self, protocol: Protocol, user: &str) -> Result<Response<Body>, SsoError> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in self.state.durable.links_of_user(user).await?.into_iter().filter(|l| l.protocol == protocol.as_str()) {
            out.entry(l.provider).or_default().push(l.subject);
        }
        for l in self.state.durable.legacy_links_of_user(user).await?.into_iter().filter(|l| l.protocol == protocol.as_str()) {
            let names = out.entry(l.provider).or_default();
            if !names.contains(&l.name) {
                names.push(l.name);
            }
        }
        Ok(json_ok(&out))
    }

    pub(super) async fn link(&self, protocol: Protocol, provider: &str, user: &str, req: SsoRequest, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        let body: AuthBody = read_json(req).await?;
        let pending = self.take_completion(&body.data, ctx).await?;
        if pending.identity.provider != provider || pending.identity.protocol != protocol || !pending.linking {
            return Err(SsoError::BadRequest("this sign-in is not a linking flow for this provider".into()));
        }
        let user_dto = self.jellyfin.user(user).await?;
        let link = Link { protocol: protocol.as_str().into(), provider: provider.into(), subject: pending.identity.subject, user_id: user_dto.id, linked_at: now_secs() };
        self.state.durable.put_link(link.clone()).await?;
        Ok(json_ok(&serde_json::json!({
            "mode": protocol, "provider": link.provider, "canonicalName": link.subject, "userId": link.user_id, "linkedAt": link.linked_at,
        })))
    }

    pub(super) async fn unlink(&self, protocol: Protocol, provider: &str, user: &str, subject: &str) -> Result<Response<Body>, SsoError> {
        let linked = self.state.durable.link(protocol.as_str(), provider, subject).await?.is_some_and(|l| super::callers::same_id(&l.user_id, user));
        if linked {
            let cut: Vec<_> = self
                .state
                .durable
                .mints_by_subject(protocol.as_str(), provider, subject)
                .await?
                .into_iter()
                .filter(|m| super::callers::same_id(&m.user_id, user))
                .collect();
            self.revoke_all(&cut, Why::Unlinked).await?;
        }
        if self.state.durable.remove_link(protocol.as_str(), provider, user, subject).await? == 0 {
            return Err(SsoError::NotFoundWhat("no such link".into()));
        }
        // App passwords belong to SSO users: the last link takes them along.
        if self.state.durable.links_of_user(user).await?.is_empty() {
            self.revoke_all_app_passwords(user).await?;
        }
        Ok(json_ok(&serde_json::json!({})))
    }

    /// The body is a JSON string: the new authentication provider.
    pub(super) async fn unregister(&self, username: &str, req: SsoRequest) -> Result<Response<Body>, SsoError> {
        let provider: String = read_json(req).await?;
        if provider.trim().is_empty() || provider.len() > 256 {
            return Err(SsoError::BadRequest("body: a JSON string naming the authentication provider".into()));
        }
        let user = self.jellyfin.find_user_by_name(username).await?.ok_or_else(|| SsoError::NotFoundWhat(format!("no Jellyfin user {username}")))?;
        let minted = self.state.durable.mints_of_user(&user.id).await?;
        self.revoke_all(&minted, Why::Unlinked).await?;
        self.state.durable.remove_links_of_user(&user.id).await?;
        self.revoke_all_app_passwords(&user.id).await?;
        self.jellyfin.update_policy(&user.id, |p| p.authentication_provider_id = provider.trim().to_string()).await?;
        tracing::info!(user = %user.name, "user unregistered from SSO");
        Ok(json_ok(&serde_json::json!({})))
    }
}
