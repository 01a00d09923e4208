//! The operator gate: which control requests a host accepts when it trusts operators (see
//! `lattice_core::control_auth` for the signature, the freshness window and the replay cache), and the
//! rate limit on reports of messages that claimed to be a host's and did not verify (`host.refused`).
//!
//! The gate holds the policy (read-only) and the nonce cache behind a mutex taken only for a lookup and an
//! insert, never across an await. The cache refuses requests issued before the host started, so a request
//! captured before a restart is not accepted again after it.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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
    /// The gate of a host that started at `started_at_ms`.
    pub(crate) fn new(policy: OperatorPolicy, started_at_ms: u64) -> Self {
        Self { policy, nonces: Mutex::new(NonceCache::starting_at(DEFAULT_NONCE_CAPACITY, started_at_ms)) }
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

/// How many `host.refused` reports (a warning and an event) a host makes per second at most; the others are
/// counted and the count goes with the next report.
const MAX_REPORTS_PER_SECOND: u32 = 5;

/// A rate limit for reports: at most [`MAX_REPORTS_PER_SECOND`], counting what it holds back.
#[derive(Debug)]
pub(crate) struct ReportLimit {
    /// Start of the current one-second window, reports made in it, and reports held back since the last made.
    state: Mutex<(Instant, u32, u64)>,
}

impl Default for ReportLimit {
    fn default() -> Self {
        Self { state: Mutex::new((Instant::now(), 0, 0)) }
    }
}

impl ReportLimit {
    /// `Some(held back before this one)` when a report may be made now, `None` when it is held back.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (since, made, held) = &mut *state;
        if since.elapsed() >= Duration::from_secs(1) {
            *since = Instant::now();
            *made = 0;
        }
        if *made >= MAX_REPORTS_PER_SECOND {
            *held += 1;
            return None;
        }
        *made += 1;
        Some(std::mem::take(held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_beyond_the_rate_are_counted_not_made() {
        let limit = ReportLimit::default();
        for _ in 0..MAX_REPORTS_PER_SECOND {
            assert_eq!(limit.admit(), Some(0));
        }
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        limit.state.lock().unwrap_or_else(PoisonError::into_inner).0 -= Duration::from_secs(1);
        assert_eq!(limit.admit(), Some(2));
    }
}
