//! Host identity: operator-signed host credentials, and host signatures ("seals") on what hosts publish, as pure
//! functions (the caller supplies the clock).
//!
//! Every host has a host key (`N…`, seed `SN…`, see [`crate::keys`]). In a lattice that trusts operators, an
//! operator vouches for a host with a [`HostCredential`]: host id, lattice, the host's public key, the labels it
//! may claim, a validity period, signed over [`credential_message`]. The host then signs what it publishes
//! (heartbeats and other events, its host record, auction bids, ping answers, control replies, the
//! reconciler's lease, remote-provider calls) with a [`HostSeal`]: its key's signature of [`seal_message`] (the
//! subject or record key, the sha256 of the exact payload, the issue time), with its credential attached.
//!
//! A [`HostVerifier`] accepts a sealed message only when the credential is signed by a trusted operator, is for
//! this lattice, is unexpired, names the key that signed the message, and the signature verifies; it returns the
//! host id the credential names, which the caller compares with the host the message claims to be from.
//!
//! ```
//! use lattice_core::host_auth::{HostCredential, HostSigner, HostVerifier, HostRefusal};
//! use lattice_core::keys::{KeyKind, SeedKey};
//! use lattice_core::subject::Name;
//!
//! let operator = SeedKey::from_seed_bytes(KeyKind::Operator, &[1; 32]);
//! let host_key = SeedKey::from_seed_bytes(KeyKind::Host, &[2; 32]);
//! let (host, lattice) = (Name::new("h1").unwrap(), Name::new("prod").unwrap());
//! let now = 1_700_000_000_000;
//! let credential = HostCredential::issue(
//!     &operator, host.clone(), lattice.clone(), host_key.public_key(), Default::default(), now, now + 86_400_000);
//! let signer = HostSigner::new(host_key, Some(credential));
//! let seal = signer.seal("lattice.prod.evt.host.heartbeat", b"beat", now);
//!
//! let verifier = HostVerifier::new(lattice, vec![operator.public_key()]);
//! assert_eq!(verifier.verify("lattice.prod.evt.host.heartbeat", b"beat", Some(&seal), now, None), Ok(host));
//! // Another payload under the same seal is refused.
//! assert!(matches!(verifier.verify("lattice.prod.evt.host.heartbeat", b"lie", Some(&seal), now, None),
//!     Err(HostRefusal::Forged { .. })));
//! ```

use std::collections::BTreeMap;

use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::control_auth::MAX_SKEW_MS;
use crate::keys::{KeyKind, PublicKey, SIGNATURE_LEN, SeedKey};
use crate::subject::Name;
use crate::wire;

/// Domain-separation tag of host credentials.
const CREDENTIAL_TAG: &str = "lattice-host-credential-v1";
/// Domain-separation tag of host seals.
const SEAL_TAG: &str = "lattice-host-v1";
/// A label value in a credential that lets the host claim any value for that key.
pub const ANY_VALUE: &str = "*";
/// The longest credential text accepted (a credential with a few dozen labels is well under 2 KiB).
pub const MAX_CREDENTIAL_TEXT: usize = 16 * 1024;
/// Marks the end of a value that carries a seal after its body (see [`append_seal`]).
const TRAILER_MAGIC: &[u8; 4] = b"LHS1";

/// Why a host credential was refused, at host start or when checking a sealed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The text or file is not a host credential.
    #[error("malformed host credential: {0}")]
    Malformed(String),
    /// Signed by an operator that is not trusted.
    #[error("host credential is signed by operator {operator}, which is not trusted (see --trusted-operator)")]
    Untrusted {
        /// The operator the credential names.
        operator: PublicKey,
    },
    /// The signature does not verify: the credential was altered or not signed by the operator it names.
    #[error("host credential has a forged signature: not operator {operator}'s signature of its contents")]
    Forged {
        /// The operator the credential names.
        operator: PublicKey,
    },
    /// Expired.
    #[error("host credential of host {host} expired at unix ms {expires_at_ms}; issue a new one")]
    Expired {
        /// The host it was issued to.
        host: Name,
        /// When it expired.
        expires_at_ms: u64,
    },
    /// Issued for another host id.
    #[error("host credential is for host `{credential}`, not `{host}`")]
    OtherHost {
        /// The id the credential names.
        credential: Name,
        /// The id the host runs as.
        host: Name,
    },
    /// Issued for another lattice.
    #[error("host credential is for lattice `{credential}`, not `{lattice}`")]
    OtherLattice {
        /// The lattice the credential names.
        credential: Name,
        /// The lattice in question.
        lattice: Name,
    },
    /// Issued for another host key.
    #[error("host credential is for host key {credential}, not this host's key {key}")]
    OtherKey {
        /// The key the credential names.
        credential: PublicKey,
        /// The host's key.
        key: PublicKey,
    },
    /// The host claims a label its credential does not allow.
    #[error("host credential does not allow label `{key}={value}` (allowed: {allowed})")]
    Label {
        /// The label's key.
        key: String,
        /// The value claimed.
        value: String,
        /// The labels the credential allows, `key=value` comma-separated (`none` if none).
        allowed: String,
    },
}

/// Why a sealed message (or record) was not accepted as a host's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostRefusal {
    /// No host signature at all.
    #[error("unsigned: no host signature")]
    Unsigned,
    /// A signature is present but not well-formed.
    #[error("malformed host signature: {0}")]
    Malformed(String),
    /// Signed, but without a credential naming the key.
    #[error("no host credential: host key {key} is vouched for by no operator")]
    NoCredential {
        /// The key that signed.
        key: PublicKey,
    },
    /// The credential is refused.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The signature does not verify.
    #[error("forged host signature: not host key {key}'s signature of this subject, payload and time")]
    Forged {
        /// The key the seal names.
        key: PublicKey,
    },
    /// Issued too long ago (a replay of an old message).
    #[error("stale: signed {age_ms} ms ago, more than the {max_ms} ms allowed")]
    Stale {
        /// How long ago, by the verifier's clock.
        age_ms: u64,
        /// The most allowed.
        max_ms: u64,
    },
    /// Signed too far in the future.
    #[error("from the future: signed {ahead_ms} ms ahead of this clock, more than the {max_ms} ms allowed")]
    FromFuture {
        /// How far ahead.
        ahead_ms: u64,
        /// The most allowed.
        max_ms: u64,
    },
    /// Genuine, but from another host than the message claims.
    #[error("signed by host `{signer}` but claims to be from host `{claimed}`")]
    Impersonation {
        /// Who signed (the credential's host).
        signer: Name,
        /// Who the message says it is from.
        claimed: Name,
    },
    /// Genuine, but not newer than the last one accepted from that host (a replayed message).
    #[error("replayed: signed at {issued_at_ms}, not after the last accepted message of that host ({last_ms})")]
    Replayed {
        /// When this one was signed.
        issued_at_ms: u64,
        /// When the last accepted one was.
        last_ms: u64,
    },
}

/// An operator's statement that a host key may act as host `host` of lattice `lattice`, with these labels,
/// until `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCredential {
    /// The host id.
    pub host: Name,
    /// The lattice.
    pub lattice: Name,
    /// The host's public key (`N…`).
    pub key: PublicKey,
    /// Labels the host may claim: `key -> value`, or `key -> "*"` for any value of that key. Automatic labels
    /// (`os`, `arch`, `hostname`) need no entry.
    pub labels: BTreeMap<String, String>,
    /// When it was issued, unix ms.
    pub issued_at_ms: u64,
    /// When it expires, unix ms.
    pub expires_at_ms: u64,
    /// The operator who signed it (`O…`).
    pub operator: PublicKey,
    /// ed25519 signature of [`credential_message`], hex.
    pub signature: String,
}

/// Labels every host sets itself ([`HostCredential::covers`] does not require them in a credential).
pub const AUTOMATIC_LABELS: [&str; 3] = ["os", "arch", "hostname"];

/// The exact bytes an operator signs for a host credential:
/// `lattice-host-credential-v1 \n <lattice> \n <host> \n <host key> \n <hex sha256 of the labels' MessagePack
/// map> \n <issued_at_ms> \n <expires_at_ms> \n <operator key>`.
pub fn credential_message(
    lattice: &str,
    host: &str,
    key: &PublicKey,
    labels: &BTreeMap<String, String>,
    issued_at_ms: u64,
    expires_at_ms: u64,
    operator: &PublicKey,
) -> Vec<u8> {
    // A map of strings always serializes.
    let labels = rmp_serde::to_vec(labels).unwrap_or_default();
    format!(
        "{CREDENTIAL_TAG}\n{lattice}\n{host}\n{key}\n{}\n{issued_at_ms}\n{expires_at_ms}\n{operator}",
        hex::encode(Sha256::digest(&labels))
    )
    .into_bytes()
}

impl HostCredential {
    /// Issues a credential signed by `operator`.
    pub fn issue(
        operator: &SeedKey,
        host: Name,
        lattice: Name,
        key: PublicKey,
        labels: BTreeMap<String, String>,
        issued_at_ms: u64,
        expires_at_ms: u64,
    ) -> HostCredential {
        let operator_key = operator.public_key();
        let message = credential_message(
            lattice.as_str(),
            host.as_str(),
            &key,
            &labels,
            issued_at_ms,
            expires_at_ms,
            &operator_key,
        );
        HostCredential {
            host,
            lattice,
            key,
            labels,
            issued_at_ms,
            expires_at_ms,
            operator: operator_key,
            signature: hex::encode(operator.sign(&message)),
        }
    }

    /// The credential as one line of text (base64url of its MessagePack envelope): the file `lattice keys
    /// host-credential` writes, and what travels in a [`HostSeal`].
    pub fn to_text(&self) -> String {
        BASE64URL_NOPAD.encode(&wire::encode(self))
    }

    /// Parses [`HostCredential::to_text`] (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<HostCredential, CredentialError> {
        let text = text.trim();
        if text.len() > MAX_CREDENTIAL_TEXT {
            return Err(CredentialError::Malformed(format!(
                "{} bytes, more than the {MAX_CREDENTIAL_TEXT} allowed",
                text.len()
            )));
        }
        let bytes = BASE64URL_NOPAD
            .decode(text.as_bytes())
            .map_err(|_| CredentialError::Malformed("not base64url text".into()))?;
        wire::decode(&bytes).map_err(|e| CredentialError::Malformed(e.message))
    }

    /// Checks the signature, the operator and the validity period (not the host it is used by: see
    /// [`HostCredential::check_host`]).
    pub fn verify(&self, trusted: &[PublicKey], now_ms: u64) -> Result<(), CredentialError> {
        if self.operator.kind() != KeyKind::Operator || !trusted.contains(&self.operator) {
            return Err(CredentialError::Untrusted { operator: self.operator });
        }
        let forged = CredentialError::Forged { operator: self.operator };
        let mut signature = [0u8; SIGNATURE_LEN];
        hex::decode_to_slice(&self.signature, &mut signature).map_err(|_| forged.clone())?;
        let message = credential_message(
            self.lattice.as_str(),
            self.host.as_str(),
            &self.key,
            &self.labels,
            self.issued_at_ms,
            self.expires_at_ms,
            &self.operator,
        );
        if self.key.kind() != KeyKind::Host || !self.operator.verify(&message, &signature) {
            return Err(forged);
        }
        if now_ms >= self.expires_at_ms {
            return Err(CredentialError::Expired { host: self.host.clone(), expires_at_ms: self.expires_at_ms });
        }
        Ok(())
    }

    /// Checks that this credential is for host `host` of lattice `lattice` with key `key`, and allows every
    /// label in `labels`.
    pub fn check_host(
        &self,
        host: &Name,
        lattice: &Name,
        key: &PublicKey,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), CredentialError> {
        if &self.host != host {
            return Err(CredentialError::OtherHost { credential: self.host.clone(), host: host.clone() });
        }
        if &self.lattice != lattice {
            return Err(CredentialError::OtherLattice { credential: self.lattice.clone(), lattice: lattice.clone() });
        }
        if &self.key != key {
            return Err(CredentialError::OtherKey { credential: self.key, key: *key });
        }
        self.covers(labels)
    }

    /// `Ok` when every label in `labels` is allowed: named with that value, or with [`ANY_VALUE`], or one of the
    /// [`AUTOMATIC_LABELS`].
    pub fn covers(&self, labels: &BTreeMap<String, String>) -> Result<(), CredentialError> {
        for (key, value) in labels {
            let allowed = AUTOMATIC_LABELS.contains(&key.as_str())
                || self.labels.get(key).is_some_and(|v| v == value || v == ANY_VALUE);
            if !allowed {
                let listed: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                return Err(CredentialError::Label {
                    key: key.clone(),
                    value: value.clone(),
                    allowed: if listed.is_empty() { "none".into() } else { listed.join(", ") },
                });
            }
        }
        Ok(())
    }
}

/// A host's signature of one message or record: the key, when, the ed25519 signature of [`seal_message`], and
/// the credential vouching for the key (none when the lattice trusts no operator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSeal {
    /// The host key that signed.
    pub key: PublicKey,
    /// When, unix ms.
    pub issued_at_ms: u64,
    /// ed25519 signature of [`seal_message`].
    pub signature: [u8; SIGNATURE_LEN],
    /// The operator's credential for `key`.
    pub credential: Option<HostCredential>,
}

/// The exact bytes a host signs: `lattice-host-v1 \n <subject or record key> \n <hex sha256 of the payload> \n
/// <issued_at_ms>`.
pub fn seal_message(subject: &str, payload: &[u8], issued_at_ms: u64) -> Vec<u8> {
    format!("{SEAL_TAG}\n{subject}\n{}\n{issued_at_ms}", hex::encode(Sha256::digest(payload))).into_bytes()
}

impl HostSeal {
    /// The seal as one line (the value of the [`wire::headers::HOST_SEAL`] header):
    /// `<issued_at_ms>.<signature hex>.<host key>[.<credential text>]`.
    pub fn to_text(&self) -> String {
        let mut text = format!("{}.{}.{}", self.issued_at_ms, hex::encode(self.signature), self.key);
        if let Some(credential) = &self.credential {
            text.push('.');
            text.push_str(&credential.to_text());
        }
        text
    }

    /// Parses [`HostSeal::to_text`].
    pub fn parse(text: &str) -> Result<HostSeal, HostRefusal> {
        let malformed = |what: &str| HostRefusal::Malformed(what.to_owned());
        if text.len() > MAX_CREDENTIAL_TEXT + 256 {
            return Err(malformed("too long"));
        }
        let mut parts = text.trim().splitn(4, '.');
        let issued_at_ms = parts.next().and_then(|t| t.parse::<u64>().ok()).ok_or_else(|| malformed("no time"))?;
        let mut signature = [0u8; SIGNATURE_LEN];
        hex::decode_to_slice(parts.next().unwrap_or_default(), &mut signature)
            .map_err(|_| malformed("the signature is not 128 hex digits"))?;
        let key = PublicKey::parse_as(parts.next().unwrap_or_default(), KeyKind::Host)
            .map_err(|e| HostRefusal::Malformed(format!("host key: {e}")))?;
        let credential = parts.next().map(HostCredential::parse).transpose()?;
        Ok(HostSeal { key, issued_at_ms, signature, credential })
    }
}

/// What a host signs with: its key and, in a lattice that trusts operators, its credential.
#[derive(Debug, Clone)]
pub struct HostSigner {
    key: SeedKey,
    credential: Option<HostCredential>,
}

impl HostSigner {
    /// A signer with `key` (a [`KeyKind::Host`] key) and its credential.
    pub fn new(key: SeedKey, credential: Option<HostCredential>) -> HostSigner {
        HostSigner { key, credential }
    }

    /// The host's public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The credential, if the host has one.
    pub fn credential(&self) -> Option<&HostCredential> {
        self.credential.as_ref()
    }

    /// Seals `payload` published on `subject` (or stored under that record subject) at `now_ms`.
    pub fn seal(&self, subject: &str, payload: &[u8], now_ms: u64) -> HostSeal {
        HostSeal {
            key: self.key.public_key(),
            issued_at_ms: now_ms,
            signature: self.key.sign(&seal_message(subject, payload, now_ms)),
            credential: self.credential.clone(),
        }
    }

    /// `body` with its seal for `subject` appended (see [`append_seal`]).
    pub fn seal_record(&self, subject: &str, body: &[u8], now_ms: u64) -> Vec<u8> {
        append_seal(body, &self.seal(subject, body, now_ms))
    }
}

/// Checks seals against the operators a lattice trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVerifier {
    lattice: Name,
    trusted: Vec<PublicKey>,
}

impl HostVerifier {
    /// A verifier for lattice `lattice` trusting credentials of `trusted` operators. With none, nothing is
    /// checked ([`HostVerifier::enforced`] is false).
    pub fn new(lattice: Name, trusted: Vec<PublicKey>) -> HostVerifier {
        HostVerifier { lattice, trusted }
    }

    /// Whether any operator is trusted, i.e. whether seals are checked at all.
    pub fn enforced(&self) -> bool {
        !self.trusted.is_empty()
    }

    /// The operators trusted.
    pub fn trusted(&self) -> &[PublicKey] {
        &self.trusted
    }

    /// Checks `seal` on `payload` for `subject`: a credential by a trusted operator, for this lattice, unexpired,
    /// naming the key that signed, and a signature that verifies; with `max_age_ms`, also that it was signed
    /// at most that long ago (and at most [`MAX_SKEW_MS`] ahead). Returns the host id the credential names.
    pub fn verify(
        &self,
        subject: &str,
        payload: &[u8],
        seal: Option<&HostSeal>,
        now_ms: u64,
        max_age_ms: Option<u64>,
    ) -> Result<Name, HostRefusal> {
        let seal = seal.ok_or(HostRefusal::Unsigned)?;
        let credential = seal.credential.as_ref().ok_or(HostRefusal::NoCredential { key: seal.key })?;
        credential.verify(&self.trusted, now_ms)?;
        if credential.lattice != self.lattice {
            return Err(CredentialError::OtherLattice {
                credential: credential.lattice.clone(),
                lattice: self.lattice.clone(),
            }
            .into());
        }
        if credential.key != seal.key {
            return Err(CredentialError::OtherKey { credential: credential.key, key: seal.key }.into());
        }
        if !seal.key.verify(&seal_message(subject, payload, seal.issued_at_ms), &seal.signature) {
            return Err(HostRefusal::Forged { key: seal.key });
        }
        if seal.issued_at_ms > now_ms.saturating_add(MAX_SKEW_MS) {
            return Err(HostRefusal::FromFuture { ahead_ms: seal.issued_at_ms - now_ms, max_ms: MAX_SKEW_MS });
        }
        if let Some(max_ms) = max_age_ms {
            let age_ms = now_ms.saturating_sub(seal.issued_at_ms);
            if age_ms > max_ms {
                return Err(HostRefusal::Stale { age_ms, max_ms });
            }
        }
        Ok(credential.host.clone())
    }

    /// [`HostVerifier::verify`], and that the signer is `claimed`, the host the message says it is from.
    pub fn verify_as(
        &self,
        claimed: &Name,
        subject: &str,
        payload: &[u8],
        seal: Option<&HostSeal>,
        now_ms: u64,
        max_age_ms: Option<u64>,
    ) -> Result<(), HostRefusal> {
        let signer = self.verify(subject, payload, seal, now_ms, max_age_ms)?;
        if &signer != claimed {
            return Err(HostRefusal::Impersonation { signer, claimed: claimed.clone() });
        }
        Ok(())
    }
}

/// Reads the seal of a message from its headers (`get` returns a header's value): `Ok(None)` without one.
pub fn seal_from_headers(get: impl Fn(&str) -> Option<String>) -> Result<Option<HostSeal>, HostRefusal> {
    get(wire::headers::HOST_SEAL).map(|text| HostSeal::parse(&text)).transpose()
}

/// `body` followed by `seal`'s text, its length (2 bytes, big-endian) and a 4-byte marker: how stored values
/// (host records, the lease) carry their seal. A reader that ignores seals decodes `body` from the front.
pub fn append_seal(body: &[u8], seal: &HostSeal) -> Vec<u8> {
    let text = seal.to_text();
    // Seals are far below 64 KiB (the credential text is capped); a longer one would not parse back anyway.
    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(body.len() + text.len() + 6);
    out.extend_from_slice(body);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(TRAILER_MAGIC);
    out
}

/// Splits a value written by [`append_seal`] into its body and seal; a value without a seal trailer is all body
/// (seal `Ok(None)`).
pub fn split_seal(value: &[u8]) -> (&[u8], Result<Option<HostSeal>, HostRefusal>) {
    let Some(rest) = value.strip_suffix(TRAILER_MAGIC) else { return (value, Ok(None)) };
    let Some((head, len)) = rest.split_last_chunk::<2>() else { return (value, Ok(None)) };
    let len = usize::from(u16::from_be_bytes(*len));
    let Some(split) = head.len().checked_sub(len) else { return (value, Ok(None)) };
    let (body, text) = head.split_at(split);
    let seal = std::str::from_utf8(text)
        .map_err(|_| HostRefusal::Malformed("the seal is not text".into()))
        .and_then(HostSeal::parse)
        .map(Some);
    (body, seal)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const NOW: u64 = 1_700_000_000_000;
    const DAY: u64 = 86_400_000;
    const SUBJECT: &str = "lattice.prod.evt.host.heartbeat";

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn operator() -> SeedKey {
        SeedKey::from_seed_bytes(KeyKind::Operator, &[1; 32])
    }

    fn host_key() -> SeedKey {
        SeedKey::from_seed_bytes(KeyKind::Host, &[2; 32])
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn credential() -> HostCredential {
        HostCredential::issue(
            &operator(),
            name("h1"),
            name("prod"),
            host_key().public_key(),
            labels(&[("zone", "eu"), ("tier", "*")]),
            NOW,
            NOW + DAY,
        )
    }

    fn verifier() -> HostVerifier {
        HostVerifier::new(name("prod"), vec![operator().public_key()])
    }

    #[test]
    fn a_credential_verifies_and_round_trips_as_text() {
        let credential = credential();
        assert_eq!(credential.verify(&[operator().public_key()], NOW), Ok(()));
        let text = credential.to_text();
        assert!(!text.contains(char::is_whitespace));
        assert_eq!(HostCredential::parse(&format!("{text}\n")), Ok(credential));
        assert!(matches!(HostCredential::parse("not a credential"), Err(CredentialError::Malformed(_))));
        assert!(matches!(
            HostCredential::parse(&"A".repeat(MAX_CREDENTIAL_TEXT + 1)),
            Err(CredentialError::Malformed(_))
        ));
    }

    #[test]
    fn altered_untrusted_and_expired_credentials_are_refused() {
        let trusted = [operator().public_key()];
        let stranger = SeedKey::from_seed_bytes(KeyKind::Operator, &[9; 32]);
        assert_eq!(
            credential().verify(&[stranger.public_key()], NOW),
            Err(CredentialError::Untrusted { operator: operator().public_key() })
        );
        for alter in [
            |c: &mut HostCredential| c.host = Name::new("h2").unwrap(),
            |c: &mut HostCredential| c.lattice = Name::new("dev").unwrap(),
            |c: &mut HostCredential| {
                c.labels.insert("zone".into(), "*".into());
            },
            |c: &mut HostCredential| c.expires_at_ms += 1,
            |c: &mut HostCredential| c.key = SeedKey::from_seed_bytes(KeyKind::Host, &[3; 32]).public_key(),
        ] {
            let mut changed = credential();
            alter(&mut changed);
            assert_eq!(
                changed.verify(&trusted, NOW),
                Err(CredentialError::Forged { operator: operator().public_key() })
            );
        }
        assert!(matches!(credential().verify(&trusted, NOW + DAY), Err(CredentialError::Expired { .. })));
    }

    #[test]
    fn a_credential_matches_its_host_lattice_key_and_labels() {
        let c = credential();
        let (h1, prod, key) = (name("h1"), name("prod"), host_key().public_key());
        let ok = labels(&[("zone", "eu"), ("tier", "gold"), ("os", "linux")]);
        assert_eq!(c.check_host(&h1, &prod, &key, &ok), Ok(()));
        assert!(matches!(c.check_host(&name("h2"), &prod, &key, &ok), Err(CredentialError::OtherHost { .. })));
        assert!(matches!(c.check_host(&h1, &name("dev"), &key, &ok), Err(CredentialError::OtherLattice { .. })));
        let other = SeedKey::from_seed_bytes(KeyKind::Host, &[3; 32]).public_key();
        assert!(matches!(c.check_host(&h1, &prod, &other, &ok), Err(CredentialError::OtherKey { .. })));
        let error = c.check_host(&h1, &prod, &key, &labels(&[("zone", "us")])).unwrap_err();
        assert_eq!(error.to_string(), "host credential does not allow label `zone=us` (allowed: tier=*, zone=eu)");
        assert!(c.covers(&labels(&[("gpu", "yes")])).is_err());
    }

    #[test]
    fn seals_verify_only_for_their_subject_payload_and_credential() {
        let signer = HostSigner::new(host_key(), Some(credential()));
        let seal = signer.seal(SUBJECT, b"beat", NOW);
        let v = verifier();
        assert_eq!(v.verify(SUBJECT, b"beat", Some(&seal), NOW, Some(5_000)), Ok(name("h1")));
        assert_eq!(v.verify_as(&name("h1"), SUBJECT, b"beat", Some(&seal), NOW, None), Ok(()));
        assert!(matches!(
            v.verify_as(&name("h2"), SUBJECT, b"beat", Some(&seal), NOW, None),
            Err(HostRefusal::Impersonation { .. })
        ));
        let forged = HostRefusal::Forged { key: host_key().public_key() };
        assert_eq!(v.verify(SUBJECT, b"other", Some(&seal), NOW, None), Err(forged.clone()));
        assert_eq!(v.verify("lattice.prod.evt.host.started", b"beat", Some(&seal), NOW, None), Err(forged.clone()));
        let mut retimed = seal.clone();
        retimed.issued_at_ms += 1;
        assert_eq!(v.verify(SUBJECT, b"beat", Some(&retimed), NOW, None), Err(forged));
        assert_eq!(v.verify(SUBJECT, b"beat", None, NOW, None), Err(HostRefusal::Unsigned));
        assert!(matches!(
            v.verify(SUBJECT, b"beat", Some(&seal), NOW + 6_000, Some(5_000)),
            Err(HostRefusal::Stale { .. })
        ));
        assert!(matches!(
            v.verify(SUBJECT, b"beat", Some(&seal), NOW - MAX_SKEW_MS - 1, None),
            Err(HostRefusal::FromFuture { .. })
        ));
        // A key that signs well but has no credential, or a credential for another key or lattice.
        let bare = HostSigner::new(host_key(), None).seal(SUBJECT, b"beat", NOW);
        assert!(matches!(v.verify(SUBJECT, b"beat", Some(&bare), NOW, None), Err(HostRefusal::NoCredential { .. })));
        let impostor = SeedKey::from_seed_bytes(KeyKind::Host, &[4; 32]);
        let stolen = HostSigner::new(impostor, Some(credential())).seal(SUBJECT, b"beat", NOW);
        assert!(matches!(
            v.verify(SUBJECT, b"beat", Some(&stolen), NOW, None),
            Err(HostRefusal::Credential(CredentialError::OtherKey { .. }))
        ));
        let dev = HostVerifier::new(name("dev"), vec![operator().public_key()]);
        assert!(matches!(
            dev.verify(SUBJECT, b"beat", Some(&seal), NOW, None),
            Err(HostRefusal::Credential(CredentialError::OtherLattice { .. }))
        ));
    }

    #[test]
    fn seals_round_trip_in_headers_and_trailers() {
        let signer = HostSigner::new(host_key(), Some(credential()));
        let seal = signer.seal(SUBJECT, b"beat", NOW);
        let text = seal.to_text();
        assert_eq!(
            seal_from_headers(|n| (n == wire::headers::HOST_SEAL).then(|| text.clone())),
            Ok(Some(seal.clone()))
        );
        assert_eq!(seal_from_headers(|_| None), Ok(None));
        assert!(matches!(seal_from_headers(|_| Some("12.zz".into())), Err(HostRefusal::Malformed(_))));
        let bare = HostSigner::new(host_key(), None).seal(SUBJECT, b"", NOW);
        assert_eq!(HostSeal::parse(&bare.to_text()), Ok(bare));

        let record = signer.seal_record("$KV.lattice_prod_hosts.h1", b"body", NOW);
        let (body, seal) = split_seal(&record);
        assert_eq!(body, b"body");
        let seal = seal.unwrap();
        assert_eq!(verifier().verify("$KV.lattice_prod_hosts.h1", body, seal.as_ref(), NOW, None), Ok(name("h1")));
        // Values without a trailer are all body; a bad trailer is an error, never a panic.
        assert_eq!(split_seal(b"plain").0, b"plain");
        assert!(matches!(split_seal(b"plain").1, Ok(None)));
        assert!(split_seal(b"\xffLHS1").1.unwrap().is_none());
        assert!(split_seal(b"xx\x00\x02LHS1").1.is_err());
    }

    #[test]
    fn signed_bytes_are_as_documented() {
        assert_eq!(
            String::from_utf8(seal_message("a.b", b"", 12)).unwrap(),
            "lattice-host-v1\na.b\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n12"
        );
    }

    proptest::proptest! {
        /// Parsing arbitrary text or trailers never panics.
        #[test]
        fn parsing_arbitrary_input_never_panics(text in ".{0,300}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = HostSeal::parse(&text);
            let _ = HostCredential::parse(&text);
            let _ = split_seal(&bytes);
        }
    }
}
