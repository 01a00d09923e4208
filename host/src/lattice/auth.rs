//! The operator gate: which control requests a host accepts when it trusts operators (see
//! `lattice_core::control_auth` for the signature, the freshness window and the replay cache).
//!
//! The gate holds the policy (read-only) and the nonce cache behind a mutex taken only for a lookup and an
//! insert, never across an await.

use std::sync::{Mutex, PoisonError};

use async_nats::Message;
use lattice_core::control_auth::{DEFAULT_NONCE_CAPACITY, NonceCache, OperatorPolicy, Refusal, RequestAuth};
use lattice_core::keys::PublicKey;

use super::now_ms;

/// A refused request: why, and the operator its signature named (if any could be read).
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    pub(crate) refusal: Refusal,
    pub(crate) operator: Option<PublicKey>,
}

pub(crate) struct Gate {
    policy: OperatorPolicy,
    nonces: Mutex<NonceCache>,
}

impl Gate {
    pub(crate) fn new(policy: OperatorPolicy) -> Self {
        Self { policy, nonces: Mutex::new(NonceCache::new(DEFAULT_NONCE_CAPACITY)) }
    }

    /// The policy the gate applies.
    pub(crate) fn policy(&self) -> &OperatorPolicy {
        &self.policy
    }

    /// Checks a control request before its body is decoded: `Ok` when the policy does not require a signature
    /// for it, or when it is signed by a trusted operator, fresh and not a replay.
    pub(crate) fn check_request(&self, message: &Message, read_only: bool) -> Result<(), Refused> {
        if !self.policy.requires_signature(read_only) {
            return Ok(());
        }
        let headers = message.headers.as_ref();
        let auth =
            RequestAuth::from_headers(|name| headers.and_then(|h| h.get(name)).map(|value| value.as_str().to_owned()))
                .map_err(|refusal| Refused { refusal, operator: None })?;
        let operator = auth.as_ref().map(|a| a.operator);
        let refused = |refusal| Refused { refusal, operator };
        let now = now_ms();
        self.policy.verify_request(message.subject.as_str(), &message.payload, auth.as_ref(), now).map_err(refused)?;
        // Only a verified, fresh request gets its nonce recorded, so forgeries cannot fill the cache.
        if let Some(auth) = &auth {
            self.nonces.lock().unwrap_or_else(PoisonError::into_inner).record(auth, now).map_err(refused)?;
        }
        Ok(())
    }
}
