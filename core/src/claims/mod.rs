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
///
/// `wasi:filesystem` and `wasi:sockets` are here because importing them grants nothing: a host gives actors no
/// preopened directories and no network (its WASI context is built with neither), so every call fails. Toolchains
/// such as componentize-py and jco import them by default; requiring a claim for them would only make users add
/// capabilities that allow nothing. If a host ever grants directories or sockets, they must leave this list.
pub const BASELINE_PACKAGES: &[&str] =
    &["wasi:io", "wasi:cli", "wasi:clocks", "wasi:random", "wasi:logging", "wasi:filesystem", "wasi:sockets"];

/// The capabilities claims can grant: the packages whose imports reach something through a link or a policy.
/// `lattice claims sign --cap` accepts only these.
pub const CAPABILITIES: &[&str] = &["wasi:keyvalue", "wasi:messaging", "wasi:http"];

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
    /// The bytes do not start with the WebAssembly header; `looks_like` is a guess at what they are.
    #[error("not a WebAssembly component: {looks_like}")]
    NotWasm {
        /// What the bytes look like instead (`a text file`, `an ELF executable`…).
        looks_like: &'static str,
    },
    /// The bytes are not a well-formed WebAssembly binary.
    #[error("cannot parse the component: {0}")]
    Parse(wasmparser::BinaryReaderError),
    /// The bytes end inside a nested module or component.
    #[error("cannot parse the component: it ends inside a nested module or component")]
    Truncated,
    /// The binary is a core module, not a component.
    #[error(
        "a core WebAssembly module, not a component (build for wasm32-wasip2, or wrap it with `wasm-tools component new`)"
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
    /// No claims section, and the policy requires one. The message names no remedy: the caller knows whether
    /// it is a flag of the command being run or a setting of a remote host.
    #[error("actor is not signed, and unsigned actors are not allowed")]
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
    #[error("actor is signed by issuer {issuer}, which this host does not trust")]
    UntrustedIssuer {
        /// The issuer the claims name.
        issuer: PublicKey,
    },
    /// An import needs a capability the claims do not list.
    #[error(
        "import `{import}` needs capability `{capability}`, which the actor's claims do not allow (sign it with \
         `--cap {capability}`, or `lattice build` / `claims sign --infer-caps`)"
    )]
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
    for piece in pieces_without(component, &ranges) {
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(&custom_section(CLAIMS_SECTION, &payload));
    Ok(out)
}

/// Checks the 8-byte preamble only: that `bytes` are a WebAssembly component, not a core module or something
/// else entirely (then [`ClaimsError::NotWasm`] says what they look like). Cheap: nothing else is parsed.
pub fn check_preamble(bytes: &[u8]) -> Result<(), ClaimsError> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE: &[u8] = b"\0asm\x01\x00\x00\x00";
    if !bytes.starts_with(MAGIC) {
        return Err(ClaimsError::NotWasm { looks_like: looks_like(bytes) });
    }
    if bytes.starts_with(CORE_MODULE) {
        return Err(ClaimsError::NotAComponent);
    }
    Ok(())
}

/// A guess at what bytes that are not WebAssembly are, from their first bytes.
fn looks_like(bytes: &[u8]) -> &'static str {
    let head = bytes.get(..bytes.len().min(512)).unwrap_or(bytes);
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start();
    if bytes.is_empty() {
        "the file is empty"
    } else if trimmed.starts_with("(module") || trimmed.starts_with("(component") {
        "it is WebAssembly text (WAT); assemble it with `wasm-tools parse`"
    } else if bytes.starts_with(b"\x7fELF") {
        "it is an ELF executable"
    } else if bytes.starts_with(b"MZ") {
        "it is a Windows executable"
    } else if bytes.starts_with(&[0xcf, 0xfa, 0xed, 0xfe]) || bytes.starts_with(&[0xca, 0xfe, 0xba, 0xbe]) {
        "it is a Mach-O executable"
    } else if bytes.starts_with(b"PK\x03\x04") {
        "it is a zip archive"
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        "it is gzip-compressed"
    } else if std::str::from_utf8(head).map_or_else(|e| e.error_len().is_none(), |_| true) {
        "it is a text file"
    } else {
        "it does not start with the WebAssembly header `\\0asm`"
    }
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
    let signed = match inspect(component) {
        Ok(Some(signed)) => signed,
        Ok(None) if policy.allow_unsigned => return Ok(Verified { claims: None }),
        Ok(None) => return Err(Rejection::Unsigned),
        Err(ClaimsError::MultipleSections { count }) => return Err(Rejection::MultipleClaimsSections { count }),
        Err(ClaimsError::Malformed(error)) => return Err(Rejection::Malformed(error)),
        Err(error) => return Err(Rejection::InvalidComponent(error)),
    };
    if !signed.signature_is_valid() {
        return Err(Rejection::BadSignature { issuer: signed.claims.issuer });
    }
    if !signed.hash_matches() {
        return Err(Rejection::HashMismatch);
    }
    let claims = signed.claims;
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

/// The capabilities `imports` need, sorted and without repeats: what `--infer-caps` signs with.
pub fn needed_capabilities(imports: &[String]) -> Vec<String> {
    let mut needed: Vec<String> = imports.iter().filter_map(|i| capability_of(i)).map(str::to_owned).collect();
    needed.sort();
    needed.dedup();
    needed
}

/// Checks that `capability` is one claims can grant ([`CAPABILITIES`]); the error is one line listing them, and
/// says so when the package is one every actor may import anyway.
pub fn check_capability(capability: &str) -> Result<(), String> {
    if CAPABILITIES.contains(&capability) {
        return Ok(());
    }
    let valid = CAPABILITIES.join(", ");
    if BASELINE_PACKAGES.contains(&capability) {
        return Err(format!(
            "`{capability}` is not a capability: every actor may import it without one (capabilities: {valid})"
        ));
    }
    Err(format!("unknown capability `{capability}` (capabilities: {valid})"))
}

/// The names of `component`'s top-level imports, in order. For an import that names the interface it
/// implements (`import foo: implements wasi:keyvalue/store`), the implemented interface is listed.
pub fn component_imports(component: &[u8]) -> Result<Vec<String>, ClaimsError> {
    Ok(scan(component)?.imports)
}

/// Formats unix seconds as RFC 3339 in UTC (`2026-11-01T00:00:00Z`); a time past year 9999 as
/// `<seconds>s after 1970`.
pub fn rfc3339(unix_seconds: u64) -> String {
    i64::try_from(unix_seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{unix_seconds}s after 1970"))
}

impl fmt::Display for Claims {
    /// A short human summary: `counter 0.1.0 (MABC…) issued by AXYZ…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({}) issued by {}", self.name, self.version, self.subject, self.issuer)
    }
}

/// A top-level claims section found by [`scan`].
mod encoding;
#[cfg(test)]
mod tests;

use encoding::*;
