//! Signed actor claims: who issued an actor, which component it is, what it may import and when it is valid.
//!
//! Claims live in one custom section named [`CLAIMS_SECTION`] at the top level of the component. Its payload is
//! the claims in a fixed binary layout followed by the issuer's ed25519 signature of them (see "Format" below).
//! The claims carry the sha256 of the component with every claims section removed, so the signature covers the
//! code as well: changing one byte of the component, or moving the section to another component, makes the
//! hash disagree.
//!
//! - [`sign`] strips any old claims section and appends a new one; the output is still a valid component.
//! - [`inspect`] reads claims without deciding anything (for `lattice claims inspect`).
//! - [`verify`] applies a host's [`Policy`]; [`check_imports`] refuses imports the claims do not allow.
//!
//! ```
//! use lattice_core::claims::{self, Policy, SignOptions};
//! use lattice_core::keys::{KeyKind, SeedKey};
//!
//! let issuer = SeedKey::generate(KeyKind::Issuer).unwrap();
//! let actor = SeedKey::generate(KeyKind::Actor).unwrap().public_key();
//! let component = b"\0asm\x0d\x00\x01\x00"; // the smallest component: just the preamble
//!
//! let options = SignOptions {
//!     name: "counter".into(),
//!     version: "0.1.0".into(),
//!     interfaces: vec!["wasi:keyvalue".into()],
//!     issued_at: 1_800_000_000,
//!     not_before: None,
//!     expires: Some(1_900_000_000),
//! };
//! let signed = claims::sign(component, &issuer, &actor, options).unwrap();
//!
//! let policy = Policy { trusted_issuers: vec![issuer.public_key()], ..Policy::default() };
//! let verified = claims::verify(&signed, &policy, 1_800_000_100).unwrap();
//! let claims = verified.claims.unwrap();
//! assert_eq!(claims.subject, actor);
//! assert!(claims::check_imports(&claims, &["wasi:keyvalue/store@0.2.0-draft2".into()]).is_ok());
//! assert!(claims::check_imports(&claims, &["wasi:http/outgoing-handler@0.2.0".into()]).is_err());
//!
//! // Unsigned components are refused unless the policy allows them.
//! assert!(claims::verify(component, &policy, 1_800_000_100).is_err());
//! ```
//!
//! # Format (version 1)
//!
//! The section payload is `claims || signature`, where `signature` is the last 64 bytes: the issuer's ed25519
//! signature of `"lattice-claims\0" || claims`. Integers are little-endian; a string is a `u16` byte length and
//! UTF-8 bytes; an optional time is `0x00`, or `0x01` and a `u64`.
//!
//! | field           | encoding                                              |
//! |-----------------|-------------------------------------------------------|
//! | format version  | `u8`, `1`                                             |
//! | issuer          | 32 bytes, ed25519 public key                          |
//! | subject         | 32 bytes, ed25519 public key                          |
//! | component hash  | 32 bytes, sha256                                      |
//! | issued at       | `u64`, unix seconds                                   |
//! | not before      | optional `u64`                                        |
//! | expires         | optional `u64`                                        |
//! | name            | string, at most [`MAX_NAME_LEN`] bytes                |
//! | version         | string, at most [`MAX_VERSION_LEN`] bytes             |
//! | interfaces      | `u8` count (at most [`MAX_INTERFACES`]), then strings |
//!
//! Every field has exactly one encoding and the decoder refuses anything else (unknown version, bad presence
//! byte, trailing bytes), so the same claims always give the same bytes. A payload over [`MAX_SECTION_LEN`] is
//! refused before decoding; lengths are read against the bytes actually present, so garbage cannot make the
//! decoder allocate more than the section's size.
//!
//! # Errors
//!
//! A rejection's message is complete on one line (it travels in error replies and events), so a nested reason
//! is part of the message rather than a separate `source()`.
//!
//! **Invariant:** no IO, no clock: the caller passes `now`.

use std::fmt;
use std::ops::Range;

use sha2::{Digest, Sha256};
use wasmparser::{Chunk, Encoding, Parser, Payload};

use crate::keys::{KeyError, KeyKind, PublicKey, SIGNATURE_LEN, SeedKey};

/// Name of the one custom section that carries an actor's claims.
pub const CLAIMS_SECTION: &str = "lattice-claims";
/// The claims format version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Largest claims section payload accepted, in bytes.
pub const MAX_SECTION_LEN: usize = 64 * 1024;
/// Longest actor name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest actor version, in bytes.
pub const MAX_VERSION_LEN: usize = 128;
/// Most interfaces one set of claims can allow.
pub const MAX_INTERFACES: usize = 64;
/// Longest interface (package) name, in bytes.
pub const MAX_INTERFACE_LEN: usize = 128;
/// Default tolerance for clock differences between signer and host, in seconds.
pub const DEFAULT_CLOCK_SKEW: u64 = 60;

/// Packages every actor may import without a capability in its claims.
pub const BASELINE_PACKAGES: &[&str] = &["wasi:io", "wasi:cli", "wasi:clocks", "wasi:random", "wasi:logging"];

/// Interfaces every actor needs to receive a message and reply to it, so they need no capability. Reaching
/// out (`producer.send`, `request-reply.request`) needs a messaging client, which only a messaging link gives,
/// and a messaging link needs the `wasi:messaging` capability.
pub const BASELINE_INTERFACES: &[&str] = &["wasi:messaging/types", "wasi:messaging/request-reply"];

/// Prefix of the signed message, so a claims signature cannot be mistaken for a signature of anything else.
const SIGNATURE_CONTEXT: &[u8] = b"lattice-claims\0";

/// What an issuer states about an actor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// The key that signed these claims (an issuer key, `A…`).
    pub issuer: PublicKey,
    /// The actor's identity (an actor key, `M…`).
    pub subject: PublicKey,
    /// The actor's name, for people.
    pub name: String,
    /// The actor's version, for people.
    pub version: String,
    /// sha256 of the component bytes with every claims section removed.
    #[serde(with = "hex_hash")]
    pub component_hash: [u8; 32],
    /// Capabilities (package names such as `wasi:keyvalue`) the actor may import; sorted, no duplicates.
    pub interfaces: Vec<String>,
    /// When the claims were signed, in unix seconds.
    pub issued_at: u64,
    /// Not valid before this time (unix seconds).
    pub not_before: Option<u64>,
    /// Not valid after this time (unix seconds).
    pub expires: Option<u64>,
}

impl Claims {
    /// Whether these claims allow importing interfaces of `capability` (a package name like `wasi:keyvalue`).
    pub fn allows(&self, capability: &str) -> bool {
        self.interfaces.iter().any(|i| i == capability)
    }
}

/// Claims as found in a component by [`inspect`], with what is needed to judge them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedClaims {
    /// The decoded claims.
    pub claims: Claims,
    /// The issuer's signature as stored.
    pub signature: [u8; SIGNATURE_LEN],
    /// sha256 of the component as inspected, with its claims section removed.
    pub actual_hash: [u8; 32],
    /// The encoded claims the signature covers.
    signed_bytes: Vec<u8>,
}

impl SignedClaims {
    /// Whether the signature is the stated issuer's signature of these claims.
    pub fn signature_is_valid(&self) -> bool {
        self.claims.issuer.verify(&signed_message(&self.signed_bytes), &self.signature)
    }

    /// Whether the component's hash is the one the claims state (false: the component changed after signing).
    pub fn hash_matches(&self) -> bool {
        self.actual_hash == self.claims.component_hash
    }
}

/// What to state in new claims; see [`Claims`] for each field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignOptions {
    /// The actor's name (1 to [`MAX_NAME_LEN`] bytes).
    pub name: String,
    /// The actor's version (at most [`MAX_VERSION_LEN`] bytes).
    pub version: String,
    /// Capabilities to allow, as package names (`wasi:keyvalue`); sorted and deduplicated when signing.
    pub interfaces: Vec<String>,
    /// Signing time, unix seconds.
    pub issued_at: u64,
    /// Start of validity, unix seconds.
    pub not_before: Option<u64>,
    /// End of validity, unix seconds.
    pub expires: Option<u64>,
}

/// Which claims a host accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Issuers whose claims are accepted.
    pub trusted_issuers: Vec<PublicKey>,
    /// Accept components without claims (a development setting; they then have no capabilities checked).
    pub allow_unsigned: bool,
    /// Tolerance for clock differences when checking `not_before` and `expires`, in seconds.
    pub clock_skew: u64,
}

impl Default for Policy {
    /// No trusted issuers, unsigned refused, [`DEFAULT_CLOCK_SKEW`].
    fn default() -> Policy {
        Policy { trusted_issuers: Vec::new(), allow_unsigned: false, clock_skew: DEFAULT_CLOCK_SKEW }
    }
}

/// A component accepted by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The verified claims; `None` only for an unsigned component that the policy allowed.
    pub claims: Option<Claims>,
}

/// Why a component's claims could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsError {
    /// The bytes are not a well-formed WebAssembly binary.
    #[error("cannot parse the component: {0}")]
    Parse(wasmparser::BinaryReaderError),
    /// The bytes end inside a nested module or component.
    #[error("cannot parse the component: it ends inside a nested module or component")]
    Truncated,
    /// The binary is a core module, not a component.
    #[error(
        "expected a webassembly component, found a core module (build for wasm32-wasip2 or wrap it with `wasm-tools component new`)"
    )]
    NotAComponent,
    /// More than one claims section.
    #[error("component has {count} `lattice-claims` sections, expected at most one (sign it again)")]
    MultipleSections {
        /// How many there are.
        count: usize,
    },
    /// The claims section cannot be decoded.
    #[error("malformed claims section: {0}")]
    Malformed(DecodeError),
}

/// Why a claims section payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload is over [`MAX_SECTION_LEN`].
    #[error("section is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Written in a format version this build does not read.
    #[error("unsupported claims format version {version} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The payload ends before a field is complete.
    #[error("section ends inside field `{field}`")]
    Truncated {
        /// The incomplete field.
        field: &'static str,
    },
    /// A string field is over its limit.
    #[error("field `{field}` is {len} bytes, over the {max}-byte limit")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More interfaces than [`MAX_INTERFACES`].
    #[error("{count} interfaces, over the limit of {max}")]
    TooManyInterfaces {
        /// How many the section states.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A string field is not UTF-8.
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// An optional field's presence byte is neither 0 nor 1.
    #[error("field `{field}` has presence byte {byte:#04x}, expected 0x00 or 0x01")]
    InvalidPresence {
        /// The field.
        field: &'static str,
        /// The byte found.
        byte: u8,
    },
    /// A key field is not a valid ed25519 public key.
    #[error("field `{field}` is not a valid ed25519 public key")]
    InvalidKey {
        /// The field.
        field: &'static str,
    },
    /// Bytes are left between the claims and the signature.
    #[error("{count} unexpected bytes after the claims")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

/// Why [`sign`] refused.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The signing key is not an issuer key, or the subject is not an actor key.
    #[error("{role} key: {error}")]
    Key {
        /// `issuer` or `subject`.
        role: &'static str,
        /// What is wrong with it.
        error: KeyError,
    },
    /// The input is not a readable component.
    #[error("{0}")]
    Component(ClaimsError),
    /// The actor name is empty.
    #[error("actor name must not be empty")]
    EmptyName,
    /// A string option is over its limit.
    #[error("{field} is {len} bytes, over the {max}-byte limit")]
    TooLong {
        /// The option.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More interfaces than [`MAX_INTERFACES`].
    #[error("{count} interfaces, over the limit of {max}")]
    TooManyInterfaces {
        /// How many were given (after removing duplicates).
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An interface is not a bare package name.
    #[error("interface `{interface}` is not a package name like `wasi:keyvalue` (no interface, path or version)")]
    InvalidInterface {
        /// The interface given.
        interface: String,
    },
    /// The validity window is empty.
    #[error("claims would never be valid: not-before {} is after expiry {}", rfc3339(*not_before), rfc3339(*expires))]
    EmptyValidity {
        /// The start of validity.
        not_before: u64,
        /// The end of validity.
        expires: u64,
    },
}

/// Why [`verify`] or [`check_imports`] refused a component.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No claims section, and the policy requires one.
    #[error("actor is not signed (pass --allow-unsigned to run unsigned actors in development)")]
    Unsigned,
    /// The component cannot be parsed.
    #[error("{0}")]
    InvalidComponent(ClaimsError),
    /// More than one claims section.
    #[error("component has {count} `lattice-claims` sections, expected exactly one (sign it again)")]
    MultipleClaimsSections {
        /// How many there are.
        count: usize,
    },
    /// The claims section cannot be decoded.
    #[error("malformed claims section: {0}")]
    Malformed(DecodeError),
    /// The signature is not the stated issuer's.
    #[error("claims signature is not valid for issuer {issuer}: the claims were altered or not signed by it")]
    BadSignature {
        /// The issuer the claims name.
        issuer: PublicKey,
    },
    /// The component is not the one the claims were signed for.
    #[error("claims hash mismatch: the component was modified after signing")]
    HashMismatch,
    /// `not_before` is still in the future (beyond the allowed clock skew).
    #[error("claims not valid before {} (check the host's clock)", rfc3339(*not_before))]
    NotYetValid {
        /// The start of validity, unix seconds.
        not_before: u64,
    },
    /// `expires` has passed (beyond the allowed clock skew).
    #[error("claims expired at {} (sign the actor again)", rfc3339(*expires))]
    Expired {
        /// The end of validity, unix seconds.
        expires: u64,
    },
    /// The issuer is not in the policy's trusted issuers.
    #[error("actor is signed by issuer {issuer}, which this host does not trust (add it to the trusted issuers)")]
    UntrustedIssuer {
        /// The issuer the claims name.
        issuer: PublicKey,
    },
    /// An import needs a capability the claims do not list.
    #[error("import `{import}` needs capability `{capability}`, which the actor's claims do not allow")]
    CapabilityNotAllowed {
        /// The capability (package name) the import needs.
        capability: String,
        /// The component import.
        import: String,
    },
}

/// Signs `component` for `subject` with `issuer`'s key: removes any claims sections, hashes the rest and appends
/// one new claims section at the end. The result is a valid component.
pub fn sign(
    component: &[u8],
    issuer: &SeedKey,
    subject: &PublicKey,
    options: SignOptions,
) -> Result<Vec<u8>, SignError> {
    issuer.public_key().require_kind(KeyKind::Issuer).map_err(|error| SignError::Key { role: "issuer", error })?;
    subject.require_kind(KeyKind::Actor).map_err(|error| SignError::Key { role: "subject", error })?;
    let SignOptions { name, version, mut interfaces, issued_at, not_before, expires } = options;
    if name.is_empty() {
        return Err(SignError::EmptyName);
    }
    check_len("name", &name, MAX_NAME_LEN)?;
    check_len("version", &version, MAX_VERSION_LEN)?;
    interfaces.sort();
    interfaces.dedup();
    if interfaces.len() > MAX_INTERFACES {
        return Err(SignError::TooManyInterfaces { count: interfaces.len(), max: MAX_INTERFACES });
    }
    for interface in &interfaces {
        check_len("interface", interface, MAX_INTERFACE_LEN)?;
        if !is_package_name(interface) {
            return Err(SignError::InvalidInterface { interface: interface.clone() });
        }
    }
    if let (Some(not_before), Some(expires)) = (not_before, expires)
        && not_before > expires
    {
        return Err(SignError::EmptyValidity { not_before, expires });
    }

    let scan = scan(component).map_err(SignError::Component)?;
    let ranges: Vec<Range<usize>> = scan.claims.iter().map(|s| s.range.clone()).collect();
    let claims = Claims {
        issuer: issuer.public_key(),
        subject: *subject,
        name,
        version,
        component_hash: hash_without(component, &ranges),
        interfaces,
        issued_at,
        not_before,
        expires,
    };
    let mut payload = encode_claims(&claims);
    let signature = issuer.sign(&signed_message(&payload));
    payload.extend_from_slice(&signature);

    let mut out = Vec::with_capacity(component.len() + payload.len() + 32);
    let mut start = 0;
    for range in &ranges {
        out.extend_from_slice(component.get(start..range.start).unwrap_or_default());
        start = range.end;
    }
    out.extend_from_slice(component.get(start..).unwrap_or_default());
    out.extend_from_slice(&custom_section(CLAIMS_SECTION, &payload));
    Ok(out)
}

/// Reads the claims of `component` without judging them: `None` when it has no claims section.
///
/// Only top-level custom sections count; claims sections inside nested modules or components are ignored.
pub fn inspect(component: &[u8]) -> Result<Option<SignedClaims>, ClaimsError> {
    let scan = scan(component)?;
    let section = match scan.claims.as_slice() {
        [] => return Ok(None),
        [section] => section,
        more => return Err(ClaimsError::MultipleSections { count: more.len() }),
    };
    let (claims, signed_bytes, signature) = decode_payload(section.data).map_err(ClaimsError::Malformed)?;
    Ok(Some(SignedClaims {
        claims,
        signature,
        actual_hash: hash_without(component, std::slice::from_ref(&section.range)),
        signed_bytes: signed_bytes.to_vec(),
    }))
}

/// Checks `component`'s claims against `policy` at time `now` (unix seconds).
///
/// Checks, in order: exactly one claims section, that it decodes, the issuer's signature, the component hash,
/// not-before, expiry (both with `policy.clock_skew`), and that the issuer is trusted.
pub fn verify(component: &[u8], policy: &Policy, now: u64) -> Result<Verified, Rejection> {
    let scan = scan(component).map_err(Rejection::InvalidComponent)?;
    let section = match scan.claims.as_slice() {
        [] if policy.allow_unsigned => return Ok(Verified { claims: None }),
        [] => return Err(Rejection::Unsigned),
        [section] => section,
        more => return Err(Rejection::MultipleClaimsSections { count: more.len() }),
    };
    let (claims, signed_bytes, signature) = decode_payload(section.data).map_err(Rejection::Malformed)?;
    if !claims.issuer.verify(&signed_message(signed_bytes), &signature) {
        return Err(Rejection::BadSignature { issuer: claims.issuer });
    }
    if hash_without(component, std::slice::from_ref(&section.range)) != claims.component_hash {
        return Err(Rejection::HashMismatch);
    }
    if let Some(not_before) = claims.not_before
        && not_before > now.saturating_add(policy.clock_skew)
    {
        return Err(Rejection::NotYetValid { not_before });
    }
    if let Some(expires) = claims.expires
        && now > expires.saturating_add(policy.clock_skew)
    {
        return Err(Rejection::Expired { expires });
    }
    if !policy.trusted_issuers.contains(&claims.issuer) {
        return Err(Rejection::UntrustedIssuer { issuer: claims.issuer });
    }
    Ok(Verified { claims: Some(claims) })
}

/// The capability a component import needs: its package name (`wasi:keyvalue/store@0.2.0-draft2` needs
/// `wasi:keyvalue`), or `None` for the baseline packages and interfaces every actor may import
/// ([`BASELINE_PACKAGES`], [`BASELINE_INTERFACES`]).
///
/// An import that is not an interface of a package (a plain function name, a dependency by URL) needs a
/// capability named after the whole import; claims cannot list such a name, so these imports are refused.
pub fn capability_of(import_name: &str) -> Option<&str> {
    let package = match import_name.find(['/', '@']) {
        Some(end) => import_name.get(..end).unwrap_or(import_name),
        None => import_name,
    };
    let interface = import_name.split('@').next().unwrap_or(import_name);
    if BASELINE_PACKAGES.contains(&package) || BASELINE_INTERFACES.contains(&interface) { None } else { Some(package) }
}

/// Refuses the first import in `imports` whose capability `claims` do not allow.
pub fn check_imports(claims: &Claims, imports: &[String]) -> Result<(), Rejection> {
    for import in imports {
        if let Some(capability) = capability_of(import)
            && !claims.allows(capability)
        {
            return Err(Rejection::CapabilityNotAllowed { capability: capability.to_owned(), import: import.clone() });
        }
    }
    Ok(())
}

/// The names of `component`'s top-level imports, in order. For an import that names the interface it
/// implements (`import foo: implements wasi:keyvalue/store`), the implemented interface is listed.
pub fn component_imports(component: &[u8]) -> Result<Vec<String>, ClaimsError> {
    Ok(scan(component)?.imports)
}

/// Formats unix seconds as RFC 3339 in UTC (`2026-11-01T00:00:00Z`).
pub fn rfc3339(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let secs = unix_seconds % 86_400;
    // Howard Hinnant's days-to-civil algorithm, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3_600, secs % 3_600 / 60, secs % 60)
}

impl fmt::Display for Claims {
    /// A short human summary: `counter 0.1.0 (MABC…) issued by AXYZ…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({}) issued by {}", self.name, self.version, self.subject, self.issuer)
    }
}

/// A top-level claims section found by [`scan`].
struct FoundSection<'a> {
    /// The whole section, header included.
    range: Range<usize>,
    /// Its payload.
    data: &'a [u8],
}

/// What [`scan`] finds at the top level of a component.
struct Scan<'a> {
    claims: Vec<FoundSection<'a>>,
    imports: Vec<String>,
}

/// Walks the top-level sections of `component`, skipping nested modules and components.
fn scan(component: &[u8]) -> Result<Scan<'_>, ClaimsError> {
    let mut parser = Parser::new(0);
    let mut pos = 0usize;
    let mut found = Scan { claims: Vec::new(), imports: Vec::new() };
    loop {
        let rest = component.get(pos..).ok_or(ClaimsError::Truncated)?;
        let (payload, consumed) = match parser.parse(rest, true).map_err(ClaimsError::Parse)? {
            Chunk::Parsed { payload, consumed } => (payload, consumed),
            Chunk::NeedMoreData(_) => return Err(ClaimsError::Truncated),
        };
        let start = pos;
        pos = pos.checked_add(consumed).ok_or(ClaimsError::Truncated)?;
        match payload {
            Payload::Version { encoding, .. } if encoding != Encoding::Component => {
                return Err(ClaimsError::NotAComponent);
            }
            Payload::CustomSection(reader) if reader.name() == CLAIMS_SECTION => {
                found.claims.push(FoundSection { range: start..pos, data: reader.data() });
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    let import = import.map_err(ClaimsError::Parse)?;
                    let name = import.name.implements.unwrap_or(import.name.name);
                    found.imports.push(name.to_owned());
                }
            }
            Payload::ModuleSection { unchecked_range, .. } | Payload::ComponentSection { unchecked_range, .. } => {
                if unchecked_range.end > component.len() || unchecked_range.start != pos {
                    return Err(ClaimsError::Truncated);
                }
                pos = unchecked_range.end;
            }
            Payload::End(_) => return Ok(found),
            _ => {}
        }
    }
}

/// sha256 of `component` without the bytes in `ranges` (ascending, non-overlapping).
fn hash_without(component: &[u8], ranges: &[Range<usize>]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut start = 0;
    for range in ranges {
        hasher.update(component.get(start..range.start).unwrap_or_default());
        start = range.end;
    }
    hasher.update(component.get(start..).unwrap_or_default());
    hasher.finalize().into()
}

/// The bytes an issuer signs for `encoded` claims.
fn signed_message(encoded: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_CONTEXT.len() + encoded.len());
    message.extend_from_slice(SIGNATURE_CONTEXT);
    message.extend_from_slice(encoded);
    message
}

/// A custom section: id 0, size, name, payload.
fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut name_len = Vec::new();
    leb128(&mut name_len, name.len() as u64);
    let size = name_len.len() + name.len() + payload.len();
    let mut out = Vec::with_capacity(size + 6);
    out.push(0);
    leb128(&mut out, size as u64);
    out.extend_from_slice(&name_len);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Appends the unsigned LEB128 encoding of `value`.
fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), SignError> {
    if value.len() > max { Err(SignError::TooLong { field, len: value.len(), max }) } else { Ok(()) }
}

/// Whether `name` is a bare WIT package name, `namespace:package`, each part kebab-case words.
fn is_package_name(name: &str) -> bool {
    fn is_kebab(part: &str) -> bool {
        !part.is_empty()
            && part.split('-').all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric()))
    }
    match name.split_once(':') {
        Some((namespace, package)) => is_kebab(namespace) && is_kebab(package),
        None => false,
    }
}

/// Encodes claims whose lengths are within the limits (checked by [`sign`]).
fn encode_claims(claims: &Claims) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, value: &str) {
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(value.as_bytes().get(..usize::from(len)).unwrap_or_default());
    }
    fn optional(out: &mut Vec<u8>, value: Option<u64>) {
        match value {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(256);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(claims.issuer.as_bytes());
    out.extend_from_slice(claims.subject.as_bytes());
    out.extend_from_slice(&claims.component_hash);
    out.extend_from_slice(&claims.issued_at.to_le_bytes());
    optional(&mut out, claims.not_before);
    optional(&mut out, claims.expires);
    string(&mut out, &claims.name);
    string(&mut out, &claims.version);
    out.push(u8::try_from(claims.interfaces.len()).unwrap_or(u8::MAX));
    for interface in claims.interfaces.iter().take(usize::from(u8::MAX)) {
        string(&mut out, interface);
    }
    out
}

/// Splits a claims section payload into claims, the bytes the signature covers, and the signature.
fn decode_payload(payload: &[u8]) -> Result<(Claims, &[u8], [u8; SIGNATURE_LEN]), DecodeError> {
    if payload.len() > MAX_SECTION_LEN {
        return Err(DecodeError::TooLarge { len: payload.len(), max: MAX_SECTION_LEN });
    }
    let split = payload.len().checked_sub(SIGNATURE_LEN).ok_or(DecodeError::Truncated { field: "signature" })?;
    let (encoded, signature) = payload.split_at(split);
    let signature: [u8; SIGNATURE_LEN] =
        signature.try_into().map_err(|_| DecodeError::Truncated { field: "signature" })?;
    Ok((decode_claims(encoded)?, encoded, signature))
}

/// Decodes encoded claims, refusing anything but the one canonical encoding.
fn decode_claims(encoded: &[u8]) -> Result<Claims, DecodeError> {
    let mut r = Reader { rest: encoded };
    let version = r.u8("format version")?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    let issuer = r.key("issuer", KeyKind::Issuer)?;
    let subject = r.key("subject", KeyKind::Actor)?;
    let component_hash = r.array::<32>("component hash")?;
    let issued_at = r.u64("issued at")?;
    let not_before = r.optional("not before")?;
    let expires = r.optional("expires")?;
    let name = r.string("name", MAX_NAME_LEN)?;
    let version = r.string("version", MAX_VERSION_LEN)?;
    let count = usize::from(r.u8("interfaces")?);
    if count > MAX_INTERFACES {
        return Err(DecodeError::TooManyInterfaces { count, max: MAX_INTERFACES });
    }
    let mut interfaces = Vec::with_capacity(count);
    for _ in 0..count {
        interfaces.push(r.string("interfaces", MAX_INTERFACE_LEN)?);
    }
    if !r.rest.is_empty() {
        return Err(DecodeError::TrailingBytes { count: r.rest.len() });
    }
    Ok(Claims { issuer, subject, name, version, component_hash, interfaces, issued_at, not_before, expires })
}

/// Reads fields off the front of a byte slice, never past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < len {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        self.take(N, field)?.try_into().map_err(|_| DecodeError::Truncated { field })
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(u8::from_le_bytes(self.array(field)?))
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    fn optional(&mut self, field: &'static str) -> Result<Option<u64>, DecodeError> {
        match self.u8(field)? {
            0 => Ok(None),
            1 => Ok(Some(self.u64(field)?)),
            byte => Err(DecodeError::InvalidPresence { field, byte }),
        }
    }

    fn string(&mut self, field: &'static str, max: usize) -> Result<String, DecodeError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    fn key(&mut self, field: &'static str, kind: KeyKind) -> Result<PublicKey, DecodeError> {
        let bytes = self.array::<32>(field)?;
        PublicKey::from_bytes(kind, &bytes).map_err(|_| DecodeError::InvalidKey { field })
    }
}

/// Serde for the component hash as lower-case hex.
mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(text.as_bytes(), &mut hash).map_err(serde::de::Error::custom)?;
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;
    use wasm_encoder::{
        CodeSection, Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, CustomSection,
        Function, FunctionSection, InstanceType, Module, ModuleSection, NestedComponentSection, TypeSection, ValType,
    };

    /// 2027-01-15T08:00:00Z.
    const NOW: u64 = 1_800_000_000;

    fn issuer() -> SeedKey {
        SeedKey::from_seed_bytes(KeyKind::Issuer, &[1; 32])
    }

    fn other_issuer() -> SeedKey {
        SeedKey::from_seed_bytes(KeyKind::Issuer, &[2; 32])
    }

    fn actor() -> PublicKey {
        SeedKey::from_seed_bytes(KeyKind::Actor, &[3; 32]).public_key()
    }

    fn options() -> SignOptions {
        SignOptions {
            name: "counter".into(),
            version: "0.1.0".into(),
            interfaces: vec!["wasi:keyvalue".into()],
            issued_at: NOW - 100,
            not_before: Some(NOW - 100),
            expires: Some(NOW + 3_600),
        }
    }

    fn policy() -> Policy {
        Policy { trusted_issuers: vec![issuer().public_key()], ..Policy::default() }
    }

    /// A small component: two imports, a core module whose one function returns `constant` (and which
    /// carries a nested `lattice-claims` section, to be ignored), and a nested component with its own import
    /// and claims-named section (also ignored).
    fn component(constant: i32) -> Vec<u8> {
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], [ValType::I32]);
        module.section(&types);
        let mut functions = FunctionSection::new();
        functions.function(0);
        module.section(&functions);
        let mut code = CodeSection::new();
        let mut function = Function::new([]);
        function.instructions().i32_const(constant).end();
        code.function(&function);
        module.section(&code);
        module.section(&CustomSection { name: CLAIMS_SECTION.into(), data: b"nested in a module".as_slice().into() });

        let mut nested = Component::new();
        let mut nested_types = ComponentTypeSection::new();
        nested_types.instance(&InstanceType::new());
        nested.section(&nested_types);
        let mut nested_imports = ComponentImportSection::new();
        nested_imports.import("wasi:http/types@0.2.0", ComponentTypeRef::Instance(0));
        nested.section(&nested_imports);
        nested
            .section(&CustomSection { name: CLAIMS_SECTION.into(), data: b"nested in a component".as_slice().into() });

        let mut component = Component::new();
        let mut types = ComponentTypeSection::new();
        types.instance(&InstanceType::new());
        component.section(&types);
        let mut imports = ComponentImportSection::new();
        imports.import("wasi:io/streams@0.2.0", ComponentTypeRef::Instance(0));
        imports.import("wasi:keyvalue/store@0.2.0-draft2", ComponentTypeRef::Instance(0));
        component.section(&imports);
        component.section(&ModuleSection(&module));
        component.section(&NestedComponentSection(&nested));
        component.finish()
    }

    fn signed(constant: i32) -> Vec<u8> {
        sign(&component(constant), &issuer(), &actor(), options()).unwrap()
    }

    fn assert_valid_component(bytes: &[u8]) {
        let mut validator = wasmparser::Validator::new_with_features(
            wasmparser::WasmFeatures::default() | wasmparser::WasmFeatures::COMPONENT_MODEL,
        );
        validator.validate_all(bytes).unwrap();
    }

    #[test]
    fn fixture_is_a_valid_component() {
        assert_valid_component(&component(42));
    }

    #[test]
    fn signed_component_is_valid_and_verifies() {
        let unsigned = component(42);
        let signed = signed(42);
        assert_valid_component(&signed);
        assert_eq!(signed.get(..unsigned.len()), Some(unsigned.as_slice()));

        let verified = verify(&signed, &policy(), NOW).unwrap();
        let claims = verified.claims.unwrap();
        assert_eq!(claims.issuer, issuer().public_key());
        assert_eq!(claims.subject, actor());
        assert_eq!(claims.name, "counter");
        assert_eq!(claims.version, "0.1.0");
        assert_eq!(claims.interfaces, ["wasi:keyvalue"]);
        assert_eq!(claims.component_hash, <[u8; 32]>::from(Sha256::digest(&unsigned)));
        assert_eq!(claims.issued_at, NOW - 100);
        assert_eq!(claims.not_before, Some(NOW - 100));
        assert_eq!(claims.expires, Some(NOW + 3_600));

        let inspected = inspect(&signed).unwrap().unwrap();
        assert_eq!(inspected.claims, claims);
        assert!(inspected.signature_is_valid());
        assert!(inspected.hash_matches());
        assert_eq!(inspect(&unsigned).unwrap(), None);
    }

    #[test]
    fn signing_again_replaces_the_claims_section() {
        let resigned = sign(&signed(42), &other_issuer(), &actor(), options()).unwrap();
        assert_valid_component(&resigned);
        let inspected = inspect(&resigned).unwrap().unwrap();
        assert_eq!(inspected.claims.issuer, other_issuer().public_key());
        assert_eq!(inspected.claims.component_hash, inspect(&signed(42)).unwrap().unwrap().claims.component_hash);
        let policy = Policy { trusted_issuers: vec![other_issuer().public_key()], ..Policy::default() };
        assert!(verify(&resigned, &policy, NOW).is_ok());
    }

    #[test]
    fn signing_is_deterministic() {
        assert_eq!(signed(42), signed(42));
        let mut shuffled = options();
        shuffled.interfaces = vec!["wasi:messaging".into(), "wasi:keyvalue".into(), "wasi:messaging".into()];
        let a = sign(&component(42), &issuer(), &actor(), shuffled.clone()).unwrap();
        shuffled.interfaces.reverse();
        let b = sign(&component(42), &issuer(), &actor(), shuffled).unwrap();
        assert_eq!(a, b);
        assert_eq!(inspect(&a).unwrap().unwrap().claims.interfaces, ["wasi:keyvalue", "wasi:messaging"]);
    }

    #[test]
    fn smallest_component_can_be_signed() {
        let empty = b"\0asm\x0d\x00\x01\x00";
        let signed = sign(empty, &issuer(), &actor(), options()).unwrap();
        assert_valid_component(&signed);
        assert!(verify(&signed, &policy(), NOW).is_ok());
    }

    #[test]
    fn unsigned_is_refused_unless_allowed() {
        // The fixture's nested claims sections do not count: only top-level ones do.
        let unsigned = component(42);
        let err = verify(&unsigned, &policy(), NOW).unwrap_err();
        assert!(matches!(err, Rejection::Unsigned));
        assert_eq!(
            err.to_string(),
            "actor is not signed (pass --allow-unsigned to run unsigned actors in development)"
        );
        let dev = Policy { allow_unsigned: true, ..policy() };
        assert_eq!(verify(&unsigned, &dev, NOW).unwrap(), Verified { claims: None });
        // Allowing unsigned actors does not weaken the checks on signed ones.
        assert!(matches!(
            verify(&signed(42), &Policy { allow_unsigned: true, ..Policy::default() }, NOW),
            Err(Rejection::UntrustedIssuer { .. })
        ));
    }

    #[test]
    fn one_changed_code_byte_gives_hash_mismatch() {
        let mut signed = signed(42);
        // `i32.const 42` is 0x41 0x2a; make it `i32.const 43`.
        let at = signed.windows(3).position(|w| w == [0x41, 0x2a, 0x0b]).unwrap();
        signed[at + 1] = 0x2b;
        assert_valid_component(&signed);
        let err = verify(&signed, &policy(), NOW).unwrap_err();
        assert!(matches!(err, Rejection::HashMismatch));
        assert_eq!(err.to_string(), "claims hash mismatch: the component was modified after signing");
        assert!(!inspect(&signed).unwrap().unwrap().hash_matches());
    }

    #[test]
    fn claims_section_moved_from_another_component_gives_hash_mismatch() {
        let other = signed(7);
        let section = other.get(component(7).len()..).unwrap();
        let mut moved = component(42);
        moved.extend_from_slice(section);
        assert_valid_component(&moved);
        assert!(inspect(&moved).unwrap().unwrap().signature_is_valid());
        assert!(matches!(verify(&moved, &policy(), NOW), Err(Rejection::HashMismatch)));
    }

    #[test]
    fn edited_claims_give_bad_signature() {
        let mut signed = signed(42);
        let at = signed.windows(7).rposition(|w| w == b"counter").unwrap();
        signed[at] = b'k';
        let err = verify(&signed, &policy(), NOW).unwrap_err();
        assert!(matches!(err, Rejection::BadSignature { issuer } if issuer == self::issuer().public_key()));
        assert!(!inspect(&signed).unwrap().unwrap().signature_is_valid());
    }

    #[test]
    fn expired_claims_are_refused_after_the_skew() {
        let signed = signed(42);
        let expires = NOW + 3_600;
        assert!(verify(&signed, &policy(), expires + DEFAULT_CLOCK_SKEW).is_ok());
        let err = verify(&signed, &policy(), expires + DEFAULT_CLOCK_SKEW + 1).unwrap_err();
        assert!(matches!(err, Rejection::Expired { expires: e } if e == expires));
        assert_eq!(err.to_string(), "claims expired at 2027-01-15T09:00:00Z (sign the actor again)");
    }

    #[test]
    fn claims_not_yet_valid_are_refused_before_the_skew() {
        let signed = signed(42);
        let not_before = NOW - 100;
        assert!(verify(&signed, &policy(), not_before - DEFAULT_CLOCK_SKEW).is_ok());
        let err = verify(&signed, &policy(), not_before - DEFAULT_CLOCK_SKEW - 1).unwrap_err();
        assert!(matches!(err, Rejection::NotYetValid { not_before: n } if n == not_before));
        assert_eq!(err.to_string(), "claims not valid before 2027-01-15T07:58:20Z (check the host's clock)");
        let strict = Policy { clock_skew: 0, ..policy() };
        assert!(matches!(verify(&signed, &strict, not_before - 1), Err(Rejection::NotYetValid { .. })));
    }

    #[test]
    fn claims_without_a_window_never_expire() {
        let open = SignOptions { not_before: None, expires: None, ..options() };
        let signed = sign(&component(42), &issuer(), &actor(), open).unwrap();
        assert!(verify(&signed, &policy(), 0).is_ok());
        assert!(verify(&signed, &policy(), u64::MAX).is_ok());
    }

    #[test]
    fn untrusted_issuer_is_refused() {
        let signed = sign(&component(42), &other_issuer(), &actor(), options()).unwrap();
        let err = verify(&signed, &policy(), NOW).unwrap_err();
        let expected = other_issuer().public_key();
        assert!(matches!(err, Rejection::UntrustedIssuer { issuer } if issuer == expected));
        assert!(err.to_string().contains(&expected.to_string()));
        // An actor key with the issuer's bytes in the trusted list does not make it trusted.
        let actor_twin = PublicKey::from_bytes(KeyKind::Actor, expected.as_bytes()).unwrap();
        let policy = Policy { trusted_issuers: vec![actor_twin], ..Policy::default() };
        assert!(matches!(verify(&signed, &policy, NOW), Err(Rejection::UntrustedIssuer { .. })));
    }

    #[test]
    fn two_claims_sections_are_refused() {
        let mut signed = signed(42);
        let section = signed.get(component(42).len()..).unwrap().to_vec();
        signed.extend_from_slice(&section);
        assert_valid_component(&signed);
        assert!(matches!(verify(&signed, &policy(), NOW), Err(Rejection::MultipleClaimsSections { count: 2 })));
        assert!(matches!(inspect(&signed), Err(ClaimsError::MultipleSections { count: 2 })));
        // Signing strips both.
        let resigned = sign(&signed, &issuer(), &actor(), options()).unwrap();
        assert_eq!(resigned, self::signed(42));
    }

    #[test]
    fn garbage_in_the_claims_section_is_malformed() {
        let with = |payload: &[u8]| {
            let mut bytes = component(42);
            bytes.extend_from_slice(&custom_section(CLAIMS_SECTION, payload));
            bytes
        };
        let err = verify(&with(b"garbage"), &policy(), NOW).unwrap_err();
        assert!(matches!(err, Rejection::Malformed(DecodeError::Truncated { field: "signature" })));
        assert_eq!(err.to_string(), "malformed claims section: section ends inside field `signature`");
        assert!(matches!(
            verify(&with(&[0xff; 200]), &policy(), NOW),
            Err(Rejection::Malformed(DecodeError::UnsupportedVersion { version: 255 }))
        ));
        assert!(matches!(
            verify(&with(&vec![1; MAX_SECTION_LEN + 1]), &policy(), NOW),
            Err(Rejection::Malformed(DecodeError::TooLarge { .. }))
        ));
        assert!(matches!(inspect(&with(b"garbage")), Err(ClaimsError::Malformed(_))));
    }

    #[test]
    fn decoder_refuses_non_canonical_encodings() {
        let payload = |claims: &[u8]| {
            let mut payload = claims.to_vec();
            payload.extend_from_slice(&[0; SIGNATURE_LEN]);
            payload
        };
        let signed = signed(42);
        let good = inspect(&signed).unwrap().unwrap().signed_bytes;
        assert!(decode_payload(&payload(&good)).is_ok());

        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode_payload(&payload(&trailing)).unwrap_err(), DecodeError::TrailingBytes { count: 1 });
        // The not-before presence byte comes right after version, keys, hash and issued-at.
        let mut presence = good.clone();
        presence[1 + 32 + 32 + 32 + 8] = 2;
        assert_eq!(
            decode_payload(&payload(&presence)).unwrap_err(),
            DecodeError::InvalidPresence { field: "not before", byte: 2 }
        );
        assert_eq!(
            decode_payload(&payload(&good[..good.len() - 3])).unwrap_err(),
            DecodeError::Truncated { field: "interfaces" }
        );
    }

    #[test]
    fn core_modules_are_not_components() {
        let mut module = Module::new();
        module.section(&TypeSection::new());
        let module = module.finish();
        assert!(matches!(inspect(&module), Err(ClaimsError::NotAComponent)));
        assert!(matches!(
            verify(&module, &policy(), NOW),
            Err(Rejection::InvalidComponent(ClaimsError::NotAComponent))
        ));
        assert!(matches!(
            sign(&module, &issuer(), &actor(), options()),
            Err(SignError::Component(ClaimsError::NotAComponent))
        ));
        assert!(matches!(inspect(b"not wasm"), Err(ClaimsError::Parse(_))));
    }

    #[test]
    fn sign_refuses_wrong_keys_and_bad_options() {
        let actor_seed = SeedKey::from_seed_bytes(KeyKind::Actor, &[3; 32]);
        let err = sign(&component(42), &actor_seed, &actor(), options()).unwrap_err();
        assert!(matches!(err, SignError::Key { role: "issuer", .. }));
        assert_eq!(
            err.to_string(),
            "issuer key: expected an issuer key (starting with `A`), found an actor key (starting with `M`)"
        );
        assert!(matches!(
            sign(&component(42), &issuer(), &issuer().public_key(), options()),
            Err(SignError::Key { role: "subject", .. })
        ));
        for bad in ["wasi:keyvalue/store", "wasi:keyvalue@0.2.0", "keyvalue", "wasi:", ":x", "wasi:key value"] {
            let opts = SignOptions { interfaces: vec![bad.into()], ..options() };
            assert!(
                matches!(sign(&component(42), &issuer(), &actor(), opts), Err(SignError::InvalidInterface { .. })),
                "{bad}"
            );
        }
        let opts = SignOptions { not_before: Some(NOW + 1), expires: Some(NOW), ..options() };
        assert!(matches!(sign(&component(42), &issuer(), &actor(), opts), Err(SignError::EmptyValidity { .. })));
        let opts = SignOptions { name: String::new(), ..options() };
        assert!(matches!(sign(&component(42), &issuer(), &actor(), opts), Err(SignError::EmptyName)));
        let opts = SignOptions { name: "x".repeat(MAX_NAME_LEN + 1), ..options() };
        assert!(matches!(
            sign(&component(42), &issuer(), &actor(), opts),
            Err(SignError::TooLong { field: "name", .. })
        ));
        let opts =
            SignOptions { interfaces: (0..=MAX_INTERFACES).map(|i| format!("acme:p{i}")).collect(), ..options() };
        assert!(matches!(sign(&component(42), &issuer(), &actor(), opts), Err(SignError::TooManyInterfaces { .. })));
    }

    #[test]
    fn capabilities_of_imports() {
        assert_eq!(capability_of("wasi:keyvalue/store@0.2.0-draft2"), Some("wasi:keyvalue"));
        assert_eq!(capability_of("wasi:messaging/producer@0.2.0-draft"), Some("wasi:messaging"));
        assert_eq!(capability_of("wasi:http/outgoing-handler@0.2.0"), Some("wasi:http"));
        assert_eq!(capability_of("wasi:filesystem/types@0.2.0"), Some("wasi:filesystem"));
        assert_eq!(capability_of("wasi:sockets/tcp"), Some("wasi:sockets"));
        assert_eq!(capability_of("acme:thing/api"), Some("acme:thing"));
        assert_eq!(capability_of("acme:thing@1.0.0"), Some("acme:thing"));
        assert_eq!(capability_of("do-something"), Some("do-something"));
        for baseline in [
            "wasi:io/streams@0.2.0",
            "wasi:cli/environment@0.2.0",
            "wasi:clocks/monotonic-clock@0.2.0",
            "wasi:random/random@0.2.0",
            "wasi:logging/logging@0.1.0-draft",
        ] {
            assert_eq!(capability_of(baseline), None, "{baseline}");
        }
    }

    #[test]
    fn imports_outside_the_claims_are_refused() {
        let claims = inspect(&signed(42)).unwrap().unwrap().claims;
        let imports = component_imports(&signed(42)).unwrap();
        // Top level only: the nested component's `wasi:http` import is not listed.
        assert_eq!(imports, ["wasi:io/streams@0.2.0", "wasi:keyvalue/store@0.2.0-draft2"]);
        assert!(check_imports(&claims, &imports).is_ok());

        let imports =
            vec!["wasi:keyvalue/store@0.2.0-draft2".to_owned(), "wasi:messaging/producer@0.2.0-draft".to_owned()];
        let err = check_imports(&claims, &imports).unwrap_err();
        assert!(matches!(
            &err,
            Rejection::CapabilityNotAllowed { capability, import }
                if capability == "wasi:messaging" && import == "wasi:messaging/producer@0.2.0-draft"
        ));
        assert_eq!(
            err.to_string(),
            "import `wasi:messaging/producer@0.2.0-draft` needs capability `wasi:messaging`, which the actor's claims do not allow"
        );
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_793_491_200), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert!(!rfc3339(u64::MAX).is_empty());
    }

    #[test]
    fn claims_serialize_to_json_and_back() {
        let claims = inspect(&signed(42)).unwrap().unwrap().claims;
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["component_hash"], hex::encode(claims.component_hash));
        assert_eq!(json["issuer"], issuer().public_key().to_string());
        let back: Claims = serde_json::from_value(json).unwrap();
        assert_eq!(back, claims);
    }

    fn arb_claims() -> impl Strategy<Value = Claims> {
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            "\\PC{0,40}",
            "[0-9a-z.+-]{0,20}",
            proptest::collection::vec("[a-z]{1,8}:[a-z]{1,8}", 0..8),
            any::<u64>(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
        )
            .prop_map(|(i, s, hash, name, version, interfaces, issued_at, not_before, expires)| Claims {
                issuer: SeedKey::from_seed_bytes(KeyKind::Issuer, &i).public_key(),
                subject: SeedKey::from_seed_bytes(KeyKind::Actor, &s).public_key(),
                name,
                version,
                component_hash: hash,
                interfaces,
                issued_at,
                not_before,
                expires,
            })
    }

    /// A signed component with some bytes replaced and maybe cut short.
    fn arb_mutation() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>)> {
        (
            proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            proptest::option::weighted(0.2, any::<usize>()),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn encoding_round_trips(claims in arb_claims()) {
            let encoded = encode_claims(&claims);
            prop_assert_eq!(decode_claims(&encoded).unwrap(), claims.clone());
            prop_assert_eq!(encode_claims(&decode_claims(&encoded).unwrap()), encoded);
        }

        #[test]
        fn decoder_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_payload(&bytes);
            // Start with the version byte too, to get past the first check.
            let mut versioned = vec![FORMAT_VERSION];
            versioned.extend_from_slice(&bytes);
            if let Ok(claims) = decode_claims(&versioned) {
                prop_assert_eq!(encode_claims(&claims), versioned);
            }
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut prefixed = b"\0asm\x0d\x00\x01\x00".to_vec();
            prefixed.extend_from_slice(&bytes);
            for input in [&bytes, &prefixed] {
                let _ = inspect(input);
                let _ = component_imports(input);
                let _ = verify(input, &policy(), NOW);
                let _ = verify(input, &Policy { allow_unsigned: true, ..policy() }, NOW);
            }
        }

        #[test]
        fn mutated_signed_components_never_panic_nor_verify((changes, cut) in arb_mutation()) {
            let original = signed(42);
            let mut mutated = original.clone();
            for (at, byte) in changes {
                let at = at % mutated.len();
                mutated[at] = byte;
            }
            if let Some(cut) = cut {
                mutated.truncate(cut % mutated.len());
            }
            let _ = inspect(&mutated);
            let _ = component_imports(&mutated);
            if verify(&mutated, &policy(), NOW).is_ok() {
                prop_assert_eq!(mutated, original);
            }
        }
    }
}
