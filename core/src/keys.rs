//! Ed25519 keys of issuers, actors, operators and hosts, with printable, checksummed encodings.
//!
//! The encoding is the NATS nkeys one, read and written with the `nkeys` crate, so keys can be read and made by
//! NATS tooling (`nk`) as well: base32 (RFC 4648, upper case, no padding) of a prefix byte, the 32 key bytes and
//! a CRC-16/XMODEM of both, little-endian. The prefix shows in the first character:
//!
//! | starts with | what                                         | nkeys name     |
//! |-------------|----------------------------------------------|----------------|
//! | `A`         | an issuer's public key (signs actor claims)  | account        |
//! | `M`         | an actor's public key (the claims' subject)  | module         |
//! | `O`         | an operator's public key (signs control requests and link records) | operator |
//! | `N`         | a host's public key (signs what a host publishes, see [`crate::host_auth`]) | server |
//! | `SA`        | an issuer's seed (private key)               | account seed   |
//! | `SM`        | an actor's seed                              | module seed    |
//! | `SO`        | an operator's seed                           | operator seed  |
//! | `SN`        | a host's seed                                | server seed    |
//!
//! ```
//! use lattice_core::keys::{KeyKind, PublicKey, SeedKey};
//!
//! let issuer = SeedKey::generate(KeyKind::Issuer).unwrap();
//! let public = issuer.public_key();
//! assert!(public.to_string().starts_with('A'));
//! assert!(issuer.to_seed_string().starts_with("SA"));
//!
//! // Keys parse back; an actor key is refused where an issuer key is required.
//! let parsed = PublicKey::parse_as(&public.to_string(), KeyKind::Issuer).unwrap();
//! assert_eq!(parsed, public);
//! let actor = SeedKey::generate(KeyKind::Actor).unwrap().public_key();
//! assert!(PublicKey::parse_as(&actor.to_string(), KeyKind::Issuer).is_err());
//!
//! let signature = issuer.sign(b"message");
//! assert!(public.verify(b"message", &signature));
//! ```
//!
//! **Invariant:** secret key material is never printed (`SeedKey`'s `Debug` shows only the public key) and never
//! serialised except through [`SeedKey::to_seed_string`].

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore};

/// Length of an ed25519 signature, in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// nkeys prefix byte of an account key (`A`), used for issuers.
const PREFIX_ISSUER: u8 = 0;
/// nkeys prefix byte of a module key (`M`), used for actors.
const PREFIX_ACTOR: u8 = 12 << 3;
/// nkeys prefix byte of an operator key (`O`), used for operators (who sign control requests).
const PREFIX_OPERATOR: u8 = 14 << 3;
/// nkeys prefix byte of a server key (`N`), used for hosts (who sign heartbeats, bids and replies).
const PREFIX_HOST: u8 = 13 << 3;

/// Characters of a public key's text: base32 of prefix, key and checksum (35 bytes).
const PUBLIC_TEXT_LEN: usize = 56;
/// Characters of a seed's text: base32 of two prefix bytes, seed and checksum (36 bytes).
const SEED_TEXT_LEN: usize = 58;

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyKind {
    /// Signs actor claims; trusted (or not) by hosts. Encoded with an `A` (seed `SA`).
    Issuer,
    /// Identifies an actor: the subject of its claims. Encoded with an `M` (seed `SM`).
    Actor,
    /// Signs control requests and link records; trusted (or not) by hosts. Encoded with an `O` (seed `SO`).
    Operator,
    /// Identifies a host: signs its heartbeats, host record, bids and replies; named by its operator-signed
    /// host credential. Encoded with an `N` (seed `SN`), nkeys' server kind.
    Host,
}

impl KeyKind {
    /// The first character of a public key of this kind (`A`, `M`, `O` or `N`).
    pub fn prefix_char(self) -> char {
        match self {
            KeyKind::Issuer => 'A',
            KeyKind::Actor => 'M',
            KeyKind::Operator => 'O',
            KeyKind::Host => 'N',
        }
    }

    /// The kind's name with its indefinite article (`an issuer`, `a host`), for messages.
    pub fn with_article(self) -> &'static str {
        match self {
            KeyKind::Issuer => "an issuer",
            KeyKind::Actor => "an actor",
            KeyKind::Operator => "an operator",
            KeyKind::Host => "a host",
        }
    }

    fn prefix_byte(self) -> u8 {
        match self {
            KeyKind::Issuer => PREFIX_ISSUER,
            KeyKind::Actor => PREFIX_ACTOR,
            KeyKind::Operator => PREFIX_OPERATOR,
            KeyKind::Host => PREFIX_HOST,
        }
    }

    /// The nkeys key type of this kind.
    fn nkeys_type(self) -> nkeys::KeyPairType {
        match self {
            KeyKind::Issuer => nkeys::KeyPairType::Account,
            KeyKind::Actor => nkeys::KeyPairType::Module,
            KeyKind::Operator => nkeys::KeyPairType::Operator,
            KeyKind::Host => nkeys::KeyPairType::Server,
        }
    }

    fn from_prefix_byte(byte: u8) -> Option<KeyKind> {
        match byte {
            PREFIX_ISSUER => Some(KeyKind::Issuer),
            PREFIX_ACTOR => Some(KeyKind::Actor),
            PREFIX_OPERATOR => Some(KeyKind::Operator),
            PREFIX_HOST => Some(KeyKind::Host),
            _ => None,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Issuer => "issuer",
            KeyKind::Actor => "actor",
            KeyKind::Operator => "operator",
            KeyKind::Host => "host",
        })
    }
}

/// Why a key could not be parsed, checked or made.
///
/// Messages never include the text of a seed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not upper-case, unpadded base32.
    #[error("key is not valid base32 (expected upper-case letters A-Z and digits 2-7)")]
    Encoding,
    /// The text decodes to the wrong number of bytes.
    #[error("key has the wrong length: {found} characters, expected {expected}")]
    Length {
        /// Characters in the text.
        found: usize,
        /// Characters a key of this type has (56 for a public key, 58 for a seed).
        expected: usize,
    },
    /// The checksum does not match: a character was mistyped or the key was truncated or edited.
    #[error("key checksum mismatch (the key was mistyped or altered)")]
    Checksum,
    /// The prefix is not that of an issuer, actor, operator or host key.
    #[error(
        "unknown key prefix `{prefix}` (expected `A` for an issuer key, `M` for an actor key, `O` for an \
         operator key or `N` for a host key)"
    )]
    UnknownPrefix {
        /// The first character of the key (or of the key after `S`, for a seed).
        prefix: char,
    },
    /// A seed was given where a public key was expected.
    #[error("this is a seed (private key), expected a public key; keep seeds secret")]
    SeedNotPublicKey,
    /// A public key was given where a seed was expected.
    #[error("this is a public key, expected a seed (starting with `S`)")]
    PublicKeyNotSeed,
    /// A key of another kind was given (e.g. an actor key where an issuer key is required).
    #[error("expected {} key (starting with `{}`), found {} key (starting with `{}`)",
        expected.with_article(), expected.prefix_char(), found.with_article(), found.prefix_char())]
    WrongKind {
        /// The kind required here.
        expected: KeyKind,
        /// The kind of the key given.
        found: KeyKind,
    },
    /// The 32 bytes are not a valid ed25519 public key.
    #[error("key bytes are not a valid ed25519 public key")]
    InvalidPoint,
    /// The operating system's random number generator failed.
    #[error("cannot get random bytes from the operating system: {reason}")]
    Random {
        /// The generator's error.
        reason: String,
    },
}

/// A public key of an issuer, an actor, an operator or a host.
///
/// Printed (`Display`) and parsed (`FromStr`) as its checksummed nkeys text (`A…`, `M…` or `O…`, 56 characters);
/// serialised the same way.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey {
    kind: KeyKind,
    /// A valid compressed ed25519 point (checked on construction); kept compressed so the type stays small.
    bytes: [u8; 32],
}

impl PublicKey {
    /// A public key of `kind` from its 32 raw bytes.
    pub fn from_bytes(kind: KeyKind, bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        Ok(PublicKey { kind, bytes: *bytes })
    }

    /// Parses a key and checks it is of `kind`: use this wherever one kind is required, so that an actor key
    /// given for an issuer (or the reverse) is a clear error.
    pub fn parse_as(text: &str, kind: KeyKind) -> Result<PublicKey, KeyError> {
        let key: PublicKey = text.parse()?;
        key.require_kind(kind)?;
        Ok(key)
    }

    /// `Ok` when this key is of `kind`, [`KeyError::WrongKind`] otherwise.
    pub fn require_kind(&self, kind: KeyKind) -> Result<(), KeyError> {
        if self.kind == kind { Ok(()) } else { Err(KeyError::WrongKind { expected: kind, found: self.kind }) }
    }

    /// Issuer, actor, operator or host.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The 32 raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Whether `signature` is this key's signature of `message` (strict ed25519 verification: no malleable
    /// or small-order forms).
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        let signature = Signature::from_bytes(signature);
        VerifyingKey::from_bytes(&self.bytes).is_ok_and(|key| key.verify_strict(message, &signature).is_ok())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // nkeys encodes public keys only of key pairs it holds (its `encode` is private), so a bare public key
        // is encoded here, the way nkeys does: prefix byte, key, CRC-16/XMODEM little-endian, base32.
        let mut raw = Vec::with_capacity(1 + 32 + 2);
        raw.push(self.kind.prefix_byte());
        raw.extend_from_slice(&self.bytes);
        let crc = crc16(&raw);
        raw.extend_from_slice(&crc.to_le_bytes());
        f.write_str(&BASE32_NOPAD.encode(&raw))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<PublicKey, KeyError> {
        if text.starts_with('S') {
            return Err(KeyError::SeedNotPublicKey);
        }
        check_length(text, PUBLIC_TEXT_LEN)?;
        let (prefix, bytes) = nkeys::from_public_key(text).map_err(|e| key_error(&e, text))?;
        let kind = KeyKind::from_prefix_byte(prefix).ok_or(KeyError::UnknownPrefix { prefix: first_char(text) })?;
        PublicKey::from_bytes(kind, &bytes)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A private key of an issuer, an actor, an operator or a host, with its kind.
///
/// Written out only through [`SeedKey::to_seed_string`] (`SA…`, `SM…` or `SO…`, 58 characters). `Debug` shows the
/// kind and public key, never the seed; there is no `Serialize`. The secret bytes are zeroed on drop.
#[derive(Clone)]
pub struct SeedKey {
    kind: KeyKind,
    key: SigningKey,
}

impl SeedKey {
    /// A new random key of `kind`, from the operating system's random number generator.
    pub fn generate(kind: KeyKind) -> Result<SeedKey, KeyError> {
        let mut seed = [0u8; 32];
        OsRng.try_fill_bytes(&mut seed).map_err(|e| KeyError::Random { reason: e.to_string() })?;
        let key = SeedKey::from_seed_bytes(kind, &seed);
        seed.fill(0);
        Ok(key)
    }

    /// The key of `kind` with the 32-byte ed25519 seed `seed` (deterministic; for tests and key import).
    pub fn from_seed_bytes(kind: KeyKind, seed: &[u8; 32]) -> SeedKey {
        SeedKey { kind, key: SigningKey::from_bytes(seed) }
    }

    /// Parses a seed written by [`SeedKey::to_seed_string`] (or by NATS tooling, for account, module and operator
    /// seeds).
    pub fn from_seed_str(text: &str) -> Result<SeedKey, KeyError> {
        if !text.starts_with('S') {
            return Err(if text.parse::<PublicKey>().is_ok() {
                KeyError::PublicKeyNotSeed
            } else {
                KeyError::UnknownPrefix { prefix: first_char(text) }
            });
        }
        check_length(text, SEED_TEXT_LEN)?;
        let (prefix, mut seed) = nkeys::decode_seed(text).map_err(|e| key_error(&e, text))?;
        let result = match KeyKind::from_prefix_byte(prefix) {
            Some(kind) => Ok(SeedKey::from_seed_bytes(kind, &seed)),
            None => Err(KeyError::UnknownPrefix { prefix: text.chars().nth(1).unwrap_or('?') }),
        };
        seed.fill(0);
        result
    }

    /// The seed as checksummed text (`SA…` for an issuer, `SM…` for an actor, `SO…` for an operator). Keep it
    /// secret.
    pub fn to_seed_string(&self) -> String {
        let pair = nkeys::KeyPair::new_from_raw(self.kind.nkeys_type(), self.key.to_bytes());
        // Both steps only fail for a key pair without a seed, which this one is not.
        pair.and_then(|pair| pair.seed()).unwrap_or_default()
    }

    /// Issuer, actor, operator or host.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey { kind: self.kind, bytes: self.key.verifying_key().to_bytes() }
    }

    /// The ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.key.sign(message).to_bytes()
    }
}

impl fmt::Debug for SeedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedKey")
            .field("kind", &self.kind)
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// The first character of `text`, for error messages (`?` when empty).
fn first_char(text: &str) -> char {
    text.chars().next().unwrap_or('?')
}

/// `Ok` when `text` has `expected` characters (checked first, so the error counts characters, not bytes).
fn check_length(text: &str, expected: usize) -> Result<(), KeyError> {
    let found = text.chars().count();
    if found == expected && text.len() == expected { Ok(()) } else { Err(KeyError::Length { found, expected }) }
}

/// Our error for an nkeys decoding error of `text` (its length was checked already).
fn key_error(error: &nkeys::error::Error, text: &str) -> KeyError {
    use nkeys::error::ErrorKind;
    match error.kind() {
        ErrorKind::ChecksumFailure => KeyError::Checksum,
        ErrorKind::InvalidPrefix => KeyError::UnknownPrefix { prefix: first_char(text) },
        _ => KeyError::Encoding,
    }
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0), as nkeys uses.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn issuer() -> SeedKey {
        SeedKey::from_seed_bytes(KeyKind::Issuer, &[7; 32])
    }

    fn actor() -> SeedKey {
        SeedKey::from_seed_bytes(KeyKind::Actor, &[9; 32])
    }

    fn operator() -> SeedKey {
        SeedKey::from_seed_bytes(KeyKind::Operator, &[5; 32])
    }

    fn host() -> SeedKey {
        SeedKey::from_seed_bytes(KeyKind::Host, &[6; 32])
    }

    #[test]
    fn crc16_matches_xmodem_check_value() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn public_keys_round_trip_with_kind_prefix() {
        for (seed, prefix) in [(issuer(), 'A'), (actor(), 'M'), (operator(), 'O'), (host(), 'N')] {
            let public = seed.public_key();
            let text = public.to_string();
            assert_eq!(text.len(), 56);
            assert!(text.starts_with(prefix), "{text}");
            let parsed: PublicKey = text.parse().unwrap();
            assert_eq!(parsed, public);
            assert_eq!(parsed.kind(), seed.kind());
        }
    }

    #[test]
    fn seeds_round_trip_and_start_with_s() {
        for (seed, prefix) in [(issuer(), "SA"), (actor(), "SM"), (operator(), "SO"), (host(), "SN")] {
            let text = seed.to_seed_string();
            assert_eq!(text.len(), 58);
            assert!(text.starts_with(prefix), "{text}");
            let parsed = SeedKey::from_seed_str(&text).unwrap();
            assert_eq!(parsed.kind(), seed.kind());
            assert_eq!(parsed.public_key(), seed.public_key());
            assert_eq!(parsed.sign(b"x"), seed.sign(b"x"));
        }
    }

    /// Known nkeys vectors: the all-zero seed as an account and as a module key, cross-checked against the
    /// nkeys reference implementation's encoding rules (prefix byte, CRC-16/XMODEM little-endian, base32).
    #[test]
    fn encoding_is_nkeys_compatible() {
        let zero = SeedKey::from_seed_bytes(KeyKind::Issuer, &[0; 32]);
        let public = zero.public_key().to_string();
        let raw = BASE32_NOPAD.decode(public.as_bytes()).unwrap();
        assert_eq!(raw.first(), Some(&0u8));
        assert_eq!(raw.get(1..33), Some(&zero.public_key().as_bytes()[..]));
        let seed = zero.to_seed_string();
        let raw = BASE32_NOPAD.decode(seed.as_bytes()).unwrap();
        assert_eq!(raw.get(..2), Some(&[144u8, 0][..]));
        let module = SeedKey::from_seed_bytes(KeyKind::Actor, &[0; 32]).to_seed_string();
        let raw = BASE32_NOPAD.decode(module.as_bytes()).unwrap();
        assert_eq!(raw.get(..2), Some(&[147u8, 0][..]));
        // nkeys operator: prefix byte 14 << 3 (`O`), seed prefix bytes `S` | `O`.
        let op = SeedKey::from_seed_bytes(KeyKind::Operator, &[0; 32]);
        let raw = BASE32_NOPAD.decode(op.public_key().to_string().as_bytes()).unwrap();
        assert_eq!(raw.first(), Some(&112u8));
        let raw = BASE32_NOPAD.decode(op.to_seed_string().as_bytes()).unwrap();
        assert_eq!(raw.get(..2), Some(&[147u8, 128][..]));
    }

    /// Our text is nkeys' text, both ways, for every kind.
    #[test]
    fn keys_agree_with_the_nkeys_crate() {
        for (kind, nkeys_type) in [
            (KeyKind::Issuer, nkeys::KeyPairType::Account),
            (KeyKind::Actor, nkeys::KeyPairType::Module),
            (KeyKind::Operator, nkeys::KeyPairType::Operator),
            (KeyKind::Host, nkeys::KeyPairType::Server),
        ] {
            let ours = SeedKey::from_seed_bytes(kind, &[3; 32]);
            let theirs = nkeys::KeyPair::new_from_raw(nkeys_type, [3; 32]).unwrap();
            assert_eq!(ours.to_seed_string(), theirs.seed().unwrap());
            assert_eq!(ours.public_key().to_string(), theirs.public_key());
            let signature = ours.sign(b"m");
            assert!(theirs.verify(b"m", &signature).is_ok());
        }
    }

    #[test]
    fn flipped_character_fails_the_checksum() {
        let text = issuer().public_key().to_string();
        let mut chars: Vec<char> = text.chars().collect();
        chars[20] = if chars[20] == 'B' { 'C' } else { 'B' };
        let flipped: String = chars.into_iter().collect();
        assert!(matches!(flipped.parse::<PublicKey>(), Err(KeyError::Checksum)));

        let seed = issuer().to_seed_string();
        let mut chars: Vec<char> = seed.chars().collect();
        chars[30] = if chars[30] == 'B' { 'C' } else { 'B' };
        let flipped: String = chars.into_iter().collect();
        assert!(matches!(SeedKey::from_seed_str(&flipped), Err(KeyError::Checksum)));
    }

    #[test]
    fn actor_key_refused_where_issuer_key_required() {
        let text = actor().public_key().to_string();
        let err = PublicKey::parse_as(&text, KeyKind::Issuer).unwrap_err();
        assert!(matches!(err, KeyError::WrongKind { expected: KeyKind::Issuer, found: KeyKind::Actor }));
        assert_eq!(
            err.to_string(),
            "expected an issuer key (starting with `A`), found an actor key (starting with `M`)"
        );
        assert!(PublicKey::parse_as(&text, KeyKind::Actor).is_ok());
        let operator = operator().public_key().to_string();
        let err = PublicKey::parse_as(&operator, KeyKind::Issuer).unwrap_err();
        assert!(matches!(err, KeyError::WrongKind { expected: KeyKind::Issuer, found: KeyKind::Operator }));
    }

    #[test]
    fn seeds_and_public_keys_are_not_confused() {
        let seed = issuer().to_seed_string();
        assert!(matches!(seed.parse::<PublicKey>(), Err(KeyError::SeedNotPublicKey)));
        let public = issuer().public_key().to_string();
        assert!(matches!(SeedKey::from_seed_str(&public), Err(KeyError::PublicKeyNotSeed)));
    }

    #[test]
    fn bad_inputs_have_specific_errors() {
        let text = issuer().public_key().to_string();
        assert!(matches!(text[..40].parse::<PublicKey>(), Err(KeyError::Length { found: 40, expected: 56 })));
        assert!(matches!(text.to_lowercase().parse::<PublicKey>(), Err(KeyError::Encoding)));
        // A well-formed key with an nkeys prefix lattice does not use (`U`, a NATS user).
        let user = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [7; 32]).unwrap().public_key();
        assert!(user.starts_with('U'));
        assert!(matches!(user.parse::<PublicKey>(), Err(KeyError::UnknownPrefix { prefix: 'U' })));
        assert!(matches!("".parse::<PublicKey>(), Err(KeyError::Length { .. })));
        assert!(SeedKey::from_seed_str("").is_err());
    }

    #[test]
    fn debug_does_not_print_the_seed() {
        let seed = issuer();
        let debug = format!("{seed:?}");
        assert!(!debug.contains(&seed.to_seed_string()));
        assert!(debug.contains(&seed.public_key().to_string()));
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let key = SeedKey::generate(KeyKind::Actor).unwrap();
        let signature = key.sign(b"hello");
        assert!(key.public_key().verify(b"hello", &signature));
        assert!(!key.public_key().verify(b"hellp", &signature));
        assert!(!issuer().public_key().verify(b"hello", &signature));
    }

    #[test]
    fn public_key_serde_is_its_text() {
        let public = actor().public_key();
        let json = serde_json::to_string(&public).unwrap();
        assert_eq!(json, format!("\"{public}\""));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), public);
        assert!(serde_json::from_str::<PublicKey>("\"MAAA\"").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any single-character change of a public key or seed is refused (checksum or encoding).
        #[test]
        fn any_single_character_change_is_refused(
            seed in any::<[u8; 32]>(),
            actor_kind in any::<bool>(),
            position in 0usize..58,
            shift in 1usize..32,
        ) {
            const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
            let kind = if actor_kind { KeyKind::Actor } else { KeyKind::Issuer };
            let key = SeedKey::from_seed_bytes(kind, &seed);
            for text in [key.public_key().to_string(), key.to_seed_string()] {
                let mut bytes = text.into_bytes();
                let position = position % bytes.len();
                let current = ALPHABET.iter().position(|&c| c == bytes[position]).unwrap();
                bytes[position] = ALPHABET[(current + shift) % 32];
                let changed = String::from_utf8(bytes).unwrap();
                prop_assert!(changed.parse::<PublicKey>().is_err());
                prop_assert!(SeedKey::from_seed_str(&changed).is_err());
            }
        }

        /// Parsing arbitrary text never panics.
        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,80}") {
            let _ = text.parse::<PublicKey>();
            let _ = SeedKey::from_seed_str(&text);
        }
    }
}
