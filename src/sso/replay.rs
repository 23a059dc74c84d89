//! The SAML library's replay cache, kept in the ephemeral state.
//!
//! The `saml` crate asks, after every other check passed, whether an assertion id was seen
//! before (an atomic insert-if-absent until the assertion's NotOnOrAfter). Its interface is
//! synchronous, so verification runs on a blocking thread and this adapter waits there for
//! the state's answer. A full store refuses the login rather than forget an id.

use std::sync::Arc;
use std::time::SystemTime;

use saml::{Error, ReplayCache, ReplayEntry};

use crate::state::{Ephemeral, Kind, StateError};

#[derive(Clone)]
pub struct AssertionReplay {
    ephemeral: Arc<dyn Ephemeral>,
}

impl AssertionReplay {
    pub fn new(ephemeral: Arc<dyn Ephemeral>) -> AssertionReplay {
        AssertionReplay { ephemeral }
    }
}

impl ReplayCache for AssertionReplay {
    fn check_and_insert(&self, entries: &[ReplayEntry<'_>], _now: SystemTime) -> Result<bool, Error> {
        // The service-provider path offers exactly one assertion id; anything else would need
        // an all-or-nothing batch this adapter does not promise.
        let [entry] = entries else { return Err(Error::ReplayCache { reason: "expected exactly one replay entry" }) };
        let key = format!("{:?}:{}", entry.namespace, entry.id);
        let handle = tokio::runtime::Handle::current();
        match handle.block_on(self.ephemeral.first_seen(Kind::SamlAssertion, &key, entry.expires_at)) {
            Ok(fresh) => Ok(fresh),
            Err(StateError::Full { .. }) => Err(Error::ReplayCacheFull),
            Err(e) => {
                tracing::error!(error = %e, "SAML replay cache unavailable");
                Err(Error::ReplayCache { reason: "state backend unavailable" })
            }
        }
    }
}
