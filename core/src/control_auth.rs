//! Operator signatures on control requests and link records: signing, checking and replay protection, as pure
//! functions (the host supplies the clock).
//!
//! An **operator** holds an operator key (`O…`, seed `SO…`, see [`crate::keys`]). A host configured with
//! trusted operators ([`OperatorPolicy`]) accepts a mutating control request only when it carries a
//! [`RequestAuth`] that is
//! 1. by an operator the host trusts,
//! 2. a valid ed25519 signature of [`request_message`]: the NATS subject, the sha256 of the exact payload, the
//!    issued-at time and a random 16-byte nonce,
//! 3. fresh: issued at most [`MAX_SKEW_MS`] before or after the host's clock,
//! 4. not a replay: its nonce was not seen within that window ([`NonceCache`]; a nonce is recorded only after
//!    the signature verified, so forgeries cannot fill the cache), and it was not issued before the host started
//!    ([`NonceCache::starting_at`]): the cache lives in memory, so a request captured before a restart would
//!    otherwise be new to it.
//!
//! Link records in the state bucket carry a [`LinkSignature`] over [`link_message`] instead (no freshness: they
//! are state, not requests).
//!
//! ```
//! use lattice_core::control_auth::{OperatorPolicy, RequestAuth, NonceCache, Refusal};
//! use lattice_core::keys::{KeyKind, SeedKey};
//!
//! let operator = SeedKey::from_seed_bytes(KeyKind::Operator, &[1; 32]);
//! let policy = OperatorPolicy { trusted: vec![operator.public_key()], require_signed_reads: false };
//! let now = 1_700_000_000_000;
//! let auth = RequestAuth::sign(&operator, "lattice.l.ctl.host.h.stop", b"body", now, [7; 16]);
//! assert_eq!(policy.verify_request("lattice.l.ctl.host.h.stop", b"body", Some(&auth), now), Ok(operator.public_key()));
//! // The same signature over another body is refused.
//! assert!(matches!(policy.verify_request("lattice.l.ctl.host.h.stop", b"other", Some(&auth), now),
//!     Err(Refusal::Forged { .. })));
//! // A nonce is accepted once.
//! let mut nonces = NonceCache::new(1024);
//! assert_eq!(nonces.record(&auth, now), Ok(()));
//! assert_eq!(nonces.record(&auth, now), Err(Refusal::Replayed));
//! ```

use std::collections::{BTreeSet, HashMap};

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use crate::keys::{KeyError, KeyKind, PublicKey, SIGNATURE_LEN, SeedKey};
use crate::wire::{AppRecord, AppSpec, LinkRecord, LinkSignature, headers};

/// Length of a request or link nonce, in bytes.
pub const NONCE_LEN: usize = 16;

/// How far a request's issued-at time may be from the host's clock, either way, in milliseconds; also how
/// long a nonce is remembered.
pub const MAX_SKEW_MS: u64 = 60_000;

/// How many nonces a host remembers at most (requests signed by trusted operators within one window).
pub const DEFAULT_NONCE_CAPACITY: usize = 100_000;

/// Domain-separation tag of signed control requests.
const REQUEST_TAG: &str = "lattice-control-v1";
/// Domain-separation tag of signed link records.
const LINK_TAG: &str = "lattice-link-v1";
/// Domain separation for app records.
const APP_TAG: &str = "lattice-app-v1";

/// Why a signed (or unsigned) control request or link record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No signature at all.
    #[error(
        "unsigned: this host requires a trusted operator's signature (sign with --operator-key or \
         LATTICE_OPERATOR_KEY)"
    )]
    Unsigned,
    /// Signature headers or fields are present but incomplete or not well-formed.
    #[error("malformed operator signature: {0}")]
    Malformed(String),
    /// Signed by an operator the host does not trust.
    #[error("untrusted operator {operator}: this host does not trust it (see its --trusted-operator list)")]
    Untrusted {
        /// The operator named by the signature.
        operator: PublicKey,
    },
    /// The signature does not verify: another subject, body, time or nonce than the one signed, or not the
    /// named operator's key.
    #[error("forged signature: not operator {operator}'s signature of this subject, body, time and nonce")]
    Forged {
        /// The operator the signature claims to be from.
        operator: PublicKey,
    },
    /// Issued too long ago.
    #[error("expired: issued {age_ms} ms ago, more than the {max_ms} ms allowed (check the signer's clock)")]
    Expired {
        /// How long ago it was issued, by the host's clock.
        age_ms: u64,
        /// The allowed skew.
        max_ms: u64,
    },
    /// Issued in the future.
    #[error(
        "from the future: issued {ahead_ms} ms ahead of this host's clock, more than the {max_ms} ms allowed \
         (check the clocks)"
    )]
    FromFuture {
        /// How far ahead of the host's clock.
        ahead_ms: u64,
        /// The allowed skew.
        max_ms: u64,
    },
    /// Its nonce was already used within the window.
    #[error("replayed: its nonce was already used within the last {} s", MAX_SKEW_MS / 1000)]
    Replayed,
    /// Issued before the host started: the host cannot know whether it was already used (its nonces of before
    /// the restart are gone), so it is refused; sign a new one.
    #[error(
        "issued before this host started: signed at unix ms {issued_at_ms}, the host started at {started_at_ms} \
         (a request from before a restart may be a replay; sign a new one)"
    )]
    BeforeStart {
        /// When the request was signed.
        issued_at_ms: u64,
        /// When the host started.
        started_at_ms: u64,
    },
    /// More signed requests within one window than the host remembers nonces for.
    #[error("too many signed requests: {capacity} already within the replay window; retry later")]
    NonceCacheFull {
        /// How many nonces the host remembers.
        capacity: usize,
    },
}

/// The operator signature of one control request, carried in NATS headers ([`headers::OPERATOR`],
/// [`headers::AUTH_IAT`], [`headers::AUTH_NONCE`], [`headers::AUTH_SIG`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAuth {
    /// Who signed.
    pub operator: PublicKey,
    /// When, unix milliseconds.
    pub issued_at_ms: u64,
    /// Random, unique per request.
    pub nonce: [u8; NONCE_LEN],
    /// ed25519 signature of [`request_message`].
    pub signature: [u8; SIGNATURE_LEN],
}

/// A fresh random nonce from the operating system.
pub fn new_nonce() -> Result<[u8; NONCE_LEN], KeyError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.try_fill_bytes(&mut nonce).map_err(|e| KeyError::Random { reason: e.to_string() })?;
    Ok(nonce)
}

/// The exact bytes an operator signs for a control request:
/// `lattice-control-v1 \n <subject> \n <hex sha256 of payload> \n <issued_at_ms, decimal> \n <hex nonce>`
/// (fields joined by a single `\n`, no trailing newline).
pub fn request_message(subject: &str, payload: &[u8], issued_at_ms: u64, nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    format!(
        "{REQUEST_TAG}\n{subject}\n{}\n{issued_at_ms}\n{}",
        hex::encode(Sha256::digest(payload)),
        hex::encode(nonce)
    )
    .into_bytes()
}

/// The exact bytes an operator signs for a link record:
/// `lattice-link-v1 \n <lattice> \n <actor> \n <hex sha256 of the link spec text> \n <issued_at_ms> \n <hex nonce>`.
pub fn link_message(lattice: &str, actor: &str, link: &str, issued_at_ms: u64, nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    format!(
        "{LINK_TAG}\n{lattice}\n{actor}\n{}\n{issued_at_ms}\n{}",
        hex::encode(Sha256::digest(link.as_bytes())),
        hex::encode(nonce)
    )
    .into_bytes()
}

/// The exact bytes an operator signs for an app record:
/// `lattice-app-v1 \n <lattice> \n <app> \n <revision> \n <hex sha256 of the spec's MessagePack> \n
/// <issued_at_ms> \n <hex nonce>`.
pub fn app_message(
    lattice: &str,
    spec: &AppSpec,
    revision: u64,
    issued_at_ms: u64,
    nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    let body = rmp_serde::to_vec_named(spec).unwrap_or_default();
    format!(
        "{APP_TAG}\n{lattice}\n{}\n{revision}\n{}\n{issued_at_ms}\n{}",
        spec.name,
        hex::encode(Sha256::digest(&body)),
        hex::encode(nonce)
    )
    .into_bytes()
}

/// Signs an app record's spec and revision in lattice `lattice`.
pub fn sign_app(
    key: &SeedKey,
    lattice: &str,
    spec: &AppSpec,
    revision: u64,
    issued_at_ms: u64,
    nonce: [u8; NONCE_LEN],
) -> LinkSignature {
    record_signature(key, &app_message(lattice, spec, revision, issued_at_ms, &nonce), issued_at_ms, nonce)
}

impl RequestAuth {
    /// Signs a request to `subject` with `payload`, issued at `issued_at_ms` with `nonce`.
    pub fn sign(
        key: &SeedKey,
        subject: &str,
        payload: &[u8],
        issued_at_ms: u64,
        nonce: [u8; NONCE_LEN],
    ) -> RequestAuth {
        let signature = key.sign(&request_message(subject, payload, issued_at_ms, &nonce));
        RequestAuth { operator: key.public_key(), issued_at_ms, nonce, signature }
    }

    /// The four headers that carry this signature, as (name, value).
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (headers::OPERATOR, self.operator.to_string()),
            (headers::AUTH_IAT, self.issued_at_ms.to_string()),
            (headers::AUTH_NONCE, hex::encode(self.nonce)),
            (headers::AUTH_SIG, hex::encode(self.signature)),
        ]
    }

    /// Reads a signature from a request's headers (`get` returns a header's value). `Ok(None)` when none of
    /// the four headers is present; an error when some are missing or malformed.
    pub fn from_headers(get: impl Fn(&str) -> Option<String>) -> Result<Option<RequestAuth>, Refusal> {
        let names = [headers::OPERATOR, headers::AUTH_IAT, headers::AUTH_NONCE, headers::AUTH_SIG];
        let values: [Option<String>; 4] = names.map(&get);
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let value = |i: usize| {
            values.get(i).cloned().flatten().ok_or_else(|| {
                Refusal::Malformed(format!("header `{}` is missing", names.get(i).copied().unwrap_or("?")))
            })
        };
        let operator = PublicKey::parse_as(value(0)?.trim(), KeyKind::Operator)
            .map_err(|e| Refusal::Malformed(format!("header `{}`: {e}", headers::OPERATOR)))?;
        let issued_at_ms = value(1)?
            .trim()
            .parse::<u64>()
            .map_err(|_| Refusal::Malformed(format!("header `{}` is not unix milliseconds", headers::AUTH_IAT)))?;
        let nonce = decode_hex::<NONCE_LEN>(&value(2)?, headers::AUTH_NONCE)?;
        let signature = decode_hex::<SIGNATURE_LEN>(&value(3)?, headers::AUTH_SIG)?;
        Ok(Some(RequestAuth { operator, issued_at_ms, nonce, signature }))
    }
}

fn decode_hex<const N: usize>(text: &str, what: &str) -> Result<[u8; N], Refusal> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| Refusal::Malformed(format!("`{what}` is not {} hex digits", 2 * N)))?;
    Ok(out)
}

/// Signs a link record of `actor` with `link` (its spec text) in lattice `lattice`.
pub fn sign_link(
    key: &SeedKey,
    lattice: &str,
    actor: &str,
    link: &str,
    issued_at_ms: u64,
    nonce: [u8; NONCE_LEN],
) -> LinkSignature {
    record_signature(key, &link_message(lattice, actor, link, issued_at_ms, &nonce), issued_at_ms, nonce)
}

/// A record's signature of `message`, as stored with the record.
fn record_signature(key: &SeedKey, message: &[u8], issued_at_ms: u64, nonce: [u8; NONCE_LEN]) -> LinkSignature {
    LinkSignature {
        operator: key.public_key(),
        issued_at_ms,
        nonce: hex::encode(nonce),
        signature: hex::encode(key.sign(message)),
    }
}

/// Which operators a host trusts, and whether reads need a signature too.
///
/// With no trusted operator, nothing is checked (and signatures are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorPolicy {
    /// Operators whose signed requests and link records are accepted.
    pub trusted: Vec<PublicKey>,
    /// Whether read-only verbs (ping, inventory, auction) need a signature as well.
    pub require_signed_reads: bool,
}

impl OperatorPolicy {
    /// Whether signatures are required at all (at least one trusted operator).
    pub fn enforced(&self) -> bool {
        !self.trusted.is_empty()
    }

    /// Whether a request of this kind must be signed: every mutating one once enforced, read-only ones only
    /// with [`OperatorPolicy::require_signed_reads`].
    pub fn requires_signature(&self, read_only: bool) -> bool {
        self.enforced() && (!read_only || self.require_signed_reads)
    }

    /// Checks who signed `payload` for `subject`, and when (all but the replay check, see [`NonceCache`]).
    /// Returns the operator.
    pub fn verify_request(
        &self,
        subject: &str,
        payload: &[u8],
        auth: Option<&RequestAuth>,
        now_ms: u64,
    ) -> Result<PublicKey, Refusal> {
        let auth = auth.ok_or(Refusal::Unsigned)?;
        self.check_trusted(&auth.operator)?;
        let message = request_message(subject, payload, auth.issued_at_ms, &auth.nonce);
        if !auth.operator.verify(&message, &auth.signature) {
            return Err(Refusal::Forged { operator: auth.operator });
        }
        check_fresh(auth.issued_at_ms, now_ms)?;
        Ok(auth.operator)
    }

    /// Checks a link record's signature (no freshness: a record is state, valid until replaced or deleted).
    /// Returns the operator.
    pub fn verify_link(&self, lattice: &str, record: &LinkRecord) -> Result<PublicKey, Refusal> {
        self.verify_record(record.signature.as_ref(), |iat, nonce| {
            link_message(lattice, record.actor.as_str(), &record.link, iat, nonce)
        })
    }

    /// Checks an app record's signature (no freshness: a record is state). Returns the operator.
    pub fn verify_app(&self, lattice: &str, record: &AppRecord) -> Result<PublicKey, Refusal> {
        self.verify_record(record.signature.as_ref(), |iat, nonce| {
            app_message(lattice, &record.spec, record.revision, iat, nonce)
        })
    }

    /// Checks a stored record's signature of the bytes `message` makes from its time and nonce.
    fn verify_record(
        &self,
        auth: Option<&LinkSignature>,
        message: impl Fn(u64, &[u8; NONCE_LEN]) -> Vec<u8>,
    ) -> Result<PublicKey, Refusal> {
        let auth = auth.ok_or(Refusal::Unsigned)?;
        self.check_trusted(&auth.operator)?;
        let nonce = decode_hex::<NONCE_LEN>(&auth.nonce, "nonce")?;
        let signature = decode_hex::<SIGNATURE_LEN>(&auth.signature, "signature")?;
        if !auth.operator.verify(&message(auth.issued_at_ms, &nonce), &signature) {
            return Err(Refusal::Forged { operator: auth.operator });
        }
        Ok(auth.operator)
    }

    fn check_trusted(&self, operator: &PublicKey) -> Result<(), Refusal> {
        if operator.kind() != KeyKind::Operator || !self.trusted.contains(operator) {
            return Err(Refusal::Untrusted { operator: *operator });
        }
        Ok(())
    }
}

/// `Ok` when `issued_at_ms` is within [`MAX_SKEW_MS`] of `now_ms`, either way.
pub fn check_fresh(issued_at_ms: u64, now_ms: u64) -> Result<(), Refusal> {
    if issued_at_ms > now_ms {
        let ahead_ms = issued_at_ms - now_ms;
        if ahead_ms > MAX_SKEW_MS {
            return Err(Refusal::FromFuture { ahead_ms, max_ms: MAX_SKEW_MS });
        }
    } else {
        let age_ms = now_ms - issued_at_ms;
        if age_ms > MAX_SKEW_MS {
            return Err(Refusal::Expired { age_ms, max_ms: MAX_SKEW_MS });
        }
    }
    Ok(())
}

/// The nonces of accepted requests, each remembered until its request could no longer be fresh
/// (issued-at + [`MAX_SKEW_MS`]); bounded by a capacity, pruned by time.
///
/// A full cache refuses new requests ([`Refusal::NonceCacheFull`]) rather than forgetting a nonce early,
/// which would let that request be replayed.
#[derive(Debug, Clone)]
pub struct NonceCache {
    capacity: usize,
    /// Requests issued before this (unix ms) are refused: their nonces may have been seen before a restart.
    started_at_ms: u64,
    /// nonce -> unix ms after which it can be forgotten.
    expiry: HashMap<[u8; NONCE_LEN], u64>,
    /// (expiry, nonce), to prune the oldest first.
    by_expiry: BTreeSet<(u64, [u8; NONCE_LEN])>,
}

impl NonceCache {
    /// An empty cache remembering at most `capacity` nonces.
    pub fn new(capacity: usize) -> NonceCache {
        NonceCache::starting_at(capacity, 0)
    }

    /// An empty cache of a host that started at `started_at_ms`: it refuses requests issued before then
    /// ([`Refusal::BeforeStart`]), whose nonces it cannot have seen, so a request captured before a restart
    /// cannot be replayed after it. No skew is allowed here on purpose: any allowance would accept exactly the
    /// requests of the last moments before the restart again.
    pub fn starting_at(capacity: usize, started_at_ms: u64) -> NonceCache {
        NonceCache { capacity, started_at_ms, expiry: HashMap::new(), by_expiry: BTreeSet::new() }
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }

    /// Records the nonce of a request whose signature verified and which is fresh; refuses it if the nonce was
    /// already recorded and has not expired.
    pub fn record(&mut self, auth: &RequestAuth, now_ms: u64) -> Result<(), Refusal> {
        if auth.issued_at_ms < self.started_at_ms {
            return Err(Refusal::BeforeStart { issued_at_ms: auth.issued_at_ms, started_at_ms: self.started_at_ms });
        }
        self.prune(now_ms);
        if self.expiry.contains_key(&auth.nonce) {
            return Err(Refusal::Replayed);
        }
        if self.expiry.len() >= self.capacity {
            return Err(Refusal::NonceCacheFull { capacity: self.capacity });
        }
        let until = auth.issued_at_ms.saturating_add(MAX_SKEW_MS);
        self.expiry.insert(auth.nonce, until);
        self.by_expiry.insert((until, auth.nonce));
        Ok(())
    }

    fn prune(&mut self, now_ms: u64) {
        while let Some(&(until, nonce)) = self.by_expiry.first() {
            if until >= now_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.expiry.remove(&nonce);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject::Name;

    const NOW: u64 = 1_700_000_000_000;
    const SUBJECT: &str = "lattice.prod.ctl.host.h1.actor.stop";

    fn operator() -> SeedKey {
        SeedKey::from_seed_bytes(KeyKind::Operator, &[1; 32])
    }

    fn stranger() -> SeedKey {
        SeedKey::from_seed_bytes(KeyKind::Operator, &[2; 32])
    }

    fn policy() -> OperatorPolicy {
        OperatorPolicy { trusted: vec![operator().public_key()], require_signed_reads: false }
    }

    fn signed(key: &SeedKey, iat: u64, nonce: u8) -> RequestAuth {
        RequestAuth::sign(key, SUBJECT, b"payload", iat, [nonce; NONCE_LEN])
    }

    #[test]
    fn signed_request_verifies() {
        let auth = signed(&operator(), NOW, 1);
        assert_eq!(policy().verify_request(SUBJECT, b"payload", Some(&auth), NOW), Ok(operator().public_key()));
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let p = policy();
        assert_eq!(p.verify_request(SUBJECT, b"payload", None, NOW), Err(Refusal::Unsigned));
        let by_stranger = signed(&stranger(), NOW, 1);
        assert_eq!(
            p.verify_request(SUBJECT, b"payload", Some(&by_stranger), NOW),
            Err(Refusal::Untrusted { operator: stranger().public_key() })
        );
        let auth = signed(&operator(), NOW, 1);
        let forged = Refusal::Forged { operator: operator().public_key() };
        assert_eq!(p.verify_request(SUBJECT, b"other payload", Some(&auth), NOW), Err(forged.clone()));
        assert_eq!(
            p.verify_request("lattice.prod.ctl.host.h2.actor.stop", b"payload", Some(&auth), NOW),
            Err(forged.clone())
        );
        // A stranger's signature presented as the trusted operator's.
        let mut borrowed = by_stranger.clone();
        borrowed.operator = operator().public_key();
        assert_eq!(p.verify_request(SUBJECT, b"payload", Some(&borrowed), NOW), Err(forged.clone()));
        // Changing the time or nonce after signing breaks the signature.
        let mut retimed = auth.clone();
        retimed.issued_at_ms += 1;
        assert_eq!(p.verify_request(SUBJECT, b"payload", Some(&retimed), NOW), Err(forged.clone()));
        let mut renonced = auth;
        renonced.nonce[0] ^= 1;
        assert_eq!(p.verify_request(SUBJECT, b"payload", Some(&renonced), NOW), Err(forged));

        let old = signed(&operator(), NOW - MAX_SKEW_MS - 1, 1);
        assert_eq!(
            p.verify_request(SUBJECT, b"payload", Some(&old), NOW),
            Err(Refusal::Expired { age_ms: MAX_SKEW_MS + 1, max_ms: MAX_SKEW_MS })
        );
        let future = signed(&operator(), NOW + MAX_SKEW_MS + 5, 1);
        assert_eq!(
            p.verify_request(SUBJECT, b"payload", Some(&future), NOW),
            Err(Refusal::FromFuture { ahead_ms: MAX_SKEW_MS + 5, max_ms: MAX_SKEW_MS })
        );
        // At the edges of the window, both ways, it is accepted.
        for iat in [NOW - MAX_SKEW_MS, NOW + MAX_SKEW_MS] {
            assert!(p.verify_request(SUBJECT, b"payload", Some(&signed(&operator(), iat, 1)), NOW).is_ok());
        }
    }

    #[test]
    fn messages_say_which_refusal() {
        assert!(Refusal::Unsigned.to_string().starts_with("unsigned"));
        let untrusted = Refusal::Untrusted { operator: stranger().public_key() }.to_string();
        assert!(untrusted.starts_with(&format!("untrusted operator {}", stranger().public_key())), "{untrusted}");
        assert!(Refusal::Forged { operator: operator().public_key() }.to_string().starts_with("forged signature"));
        assert!(
            Refusal::Expired { age_ms: 61_000, max_ms: 60_000 }.to_string().starts_with("expired: issued 61000 ms")
        );
        assert!(Refusal::FromFuture { ahead_ms: 1, max_ms: 0 }.to_string().starts_with("from the future"));
        assert!(Refusal::Replayed.to_string().starts_with("replayed"));
    }

    #[test]
    fn headers_round_trip_and_partial_headers_are_malformed() {
        let auth = signed(&operator(), NOW, 9);
        let pairs = auth.headers();
        let get = |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
        assert_eq!(RequestAuth::from_headers(get), Ok(Some(auth.clone())));
        assert_eq!(RequestAuth::from_headers(|_| None), Ok(None));
        let missing = RequestAuth::from_headers(|name| if name == headers::AUTH_SIG { None } else { get(name) });
        assert!(matches!(missing, Err(Refusal::Malformed(m)) if m.contains(headers::AUTH_SIG)));
        let bad_nonce =
            RequestAuth::from_headers(|name| if name == headers::AUTH_NONCE { Some("zz".into()) } else { get(name) });
        assert!(matches!(bad_nonce, Err(Refusal::Malformed(_))));
        // An issuer key is not an operator key.
        let issuer = SeedKey::from_seed_bytes(KeyKind::Issuer, &[1; 32]).public_key().to_string();
        let wrong_kind =
            RequestAuth::from_headers(|name| if name == headers::OPERATOR { Some(issuer.clone()) } else { get(name) });
        assert!(matches!(wrong_kind, Err(Refusal::Malformed(m)) if m.contains("expected an operator key")));
    }

    #[test]
    fn signed_bytes_are_as_documented() {
        let message = request_message("a.b", b"", 12, &[0xab; NONCE_LEN]);
        assert_eq!(
            String::from_utf8(message).unwrap_or_default(),
            "lattice-control-v1\na.b\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n12\n\
             abababababababababababababababab"
        );
    }

    #[test]
    fn nonces_are_accepted_once_per_window_then_forgotten() {
        let mut cache = NonceCache::new(2);
        let a = signed(&operator(), NOW, 1);
        assert_eq!(cache.record(&a, NOW), Ok(()));
        assert_eq!(cache.record(&a, NOW + 1_000), Err(Refusal::Replayed));
        let b = signed(&operator(), NOW, 2);
        assert_eq!(cache.record(&b, NOW), Ok(()));
        // Full: a third nonce is refused instead of forgetting one early.
        let c = signed(&operator(), NOW, 3);
        assert_eq!(cache.record(&c, NOW), Err(Refusal::NonceCacheFull { capacity: 2 }));
        // Once the window of a and b has passed they are pruned (and a request that old is expired anyway).
        assert_eq!(cache.record(&c, NOW + MAX_SKEW_MS + 1), Ok(()));
        assert_eq!(cache.len(), 1);
    }

    /// A request captured before a restart is new to the restarted host's empty cache: it is refused because it
    /// was issued before the host started, even within the freshness window.
    #[test]
    fn requests_issued_before_the_host_started_are_refused_after_a_restart() {
        let captured = signed(&operator(), NOW, 7);
        let mut before = NonceCache::starting_at(16, NOW - 5_000);
        assert_eq!(before.record(&captured, NOW), Ok(()));
        assert_eq!(before.record(&captured, NOW + 1_000), Err(Refusal::Replayed));
        // The host restarts 2 s later with an empty cache; the replay is still fresh.
        let mut after = NonceCache::starting_at(16, NOW + 2_000);
        assert!(policy().verify_request(SUBJECT, b"payload", Some(&captured), NOW + 3_000).is_ok());
        assert_eq!(
            after.record(&captured, NOW + 3_000),
            Err(Refusal::BeforeStart { issued_at_ms: NOW, started_at_ms: NOW + 2_000 })
        );
        assert!(Refusal::BeforeStart { issued_at_ms: 1, started_at_ms: 2 }.to_string().starts_with("issued before"));
        // A request signed after the start is accepted once.
        let fresh = signed(&operator(), NOW + 2_500, 8);
        assert_eq!(after.record(&fresh, NOW + 3_000), Ok(()));
    }

    #[test]
    fn link_records_verify_and_refuse_changes() {
        let p = policy();
        let actor = Name::new("kv-counter").unwrap_or_else(|e| panic!("{e}"));
        let link = "keyvalue:default=inmemory".to_owned();
        let signature = sign_link(&operator(), "prod", actor.as_str(), &link, NOW, [4; NONCE_LEN]);
        let record = LinkRecord { actor: actor.clone(), link: link.clone(), signature: Some(signature) };
        assert_eq!(p.verify_link("prod", &record), Ok(operator().public_key()));
        // Another lattice, another link, or no signature.
        assert!(matches!(p.verify_link("dev", &record), Err(Refusal::Forged { .. })));
        let mut changed = record.clone();
        changed.link = "keyvalue:default=redis".into();
        assert!(matches!(p.verify_link("prod", &changed), Err(Refusal::Forged { .. })));
        let unsigned = LinkRecord { actor, link, signature: None };
        assert_eq!(p.verify_link("prod", &unsigned), Err(Refusal::Unsigned));
        let strangers = LinkRecord {
            signature: Some(sign_link(&stranger(), "prod", "kv-counter", &record.link, NOW, [4; NONCE_LEN])),
            ..record
        };
        assert!(matches!(p.verify_link("prod", &strangers), Err(Refusal::Untrusted { .. })));
    }

    #[test]
    fn app_records_verify_and_refuse_changes() {
        use crate::wire::{AppActor, AppRecord, AppSpec, LimitsSpec};
        let p = policy();
        let name = |s: &str| Name::new(s).unwrap_or_else(|e| panic!("{e}"));
        let spec = AppSpec {
            name: name("counter"),
            version: "0.1.0".into(),
            env: None,
            actors: vec![AppActor {
                name: name("kv-counter"),
                artifact: "sha256-ab".into(),
                digest: "ab".into(),
                replicas: 2,
                spread: Some("zone".into()),
                constraints: Default::default(),
                limits: LimitsSpec::default(),
                links: vec!["keyvalue:default=inmemory".into()],
                routes: Vec::new(),
            }],
            providers: Vec::new(),
        };
        let signature = sign_app(&operator(), "prod", &spec, 3, NOW, [5; NONCE_LEN]);
        let record = AppRecord { spec, revision: 3, applied_at_ms: NOW, signature: Some(signature) };
        assert_eq!(p.verify_app("prod", &record), Ok(operator().public_key()));
        assert!(matches!(p.verify_app("dev", &record), Err(Refusal::Forged { .. })));
        // More replicas, or the same spec replayed as another revision: forged.
        let mut more = record.clone();
        more.spec.actors[0].replicas = 100;
        assert!(matches!(p.verify_app("prod", &more), Err(Refusal::Forged { .. })));
        let replayed = AppRecord { revision: 4, ..record.clone() };
        assert!(matches!(p.verify_app("prod", &replayed), Err(Refusal::Forged { .. })));
        assert_eq!(p.verify_app("prod", &AppRecord { signature: None, ..record.clone() }), Err(Refusal::Unsigned));
        let strangers = AppRecord {
            signature: Some(sign_app(&stranger(), "prod", &record.spec, 3, NOW, [5; NONCE_LEN])),
            ..record
        };
        assert!(matches!(p.verify_app("prod", &strangers), Err(Refusal::Untrusted { .. })));
    }

    #[test]
    fn reads_need_a_signature_only_when_asked() {
        let mut p = policy();
        assert!(p.requires_signature(false));
        assert!(!p.requires_signature(true));
        p.require_signed_reads = true;
        assert!(p.requires_signature(true));
        assert!(!OperatorPolicy::default().requires_signature(false));
    }
}
