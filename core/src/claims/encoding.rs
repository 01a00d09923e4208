//! The claims section on the wire: finding it in a component, hashing around it, and the v1 encoding.

use super::*;

pub(super) struct FoundSection<'a> {
    /// The whole section, header included.
    pub(super) range: Range<usize>,
    /// Its payload.
    pub(super) data: &'a [u8],
}

/// What [`scan`] finds at the top level of a component.
pub(super) struct Scan<'a> {
    pub(super) claims: Vec<FoundSection<'a>>,
    pub(super) imports: Vec<String>,
}

/// Walks the top-level sections of `component`, skipping nested modules and components.
pub(super) fn scan(component: &[u8]) -> Result<Scan<'_>, ClaimsError> {
    check_preamble(component)?;
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
pub(super) fn hash_without(component: &[u8], ranges: &[Range<usize>]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for piece in pieces_without(component, ranges) {
        hasher.update(piece);
    }
    hasher.finalize().into()
}

/// The bytes of `component` outside `ranges` (sorted, disjoint), in order.
pub(super) fn pieces_without<'a>(component: &'a [u8], ranges: &'a [Range<usize>]) -> impl Iterator<Item = &'a [u8]> {
    let starts = std::iter::once(0).chain(ranges.iter().map(|r| r.end));
    let ends = ranges.iter().map(|r| r.start).chain(std::iter::once(component.len()));
    starts.zip(ends).map(|(start, end)| component.get(start..end).unwrap_or_default())
}

/// The bytes an issuer signs for `encoded` claims.
pub(super) fn signed_message(encoded: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_CONTEXT.len() + encoded.len());
    message.extend_from_slice(SIGNATURE_CONTEXT);
    message.extend_from_slice(encoded);
    message
}

/// A custom section: id 0, size, name, payload.
pub(super) fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
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
pub(super) fn leb128(out: &mut Vec<u8>, mut value: u64) {
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

pub(super) fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), SignError> {
    if value.len() > max { Err(SignError::TooLong { field, len: value.len(), max }) } else { Ok(()) }
}

/// Whether `name` is a bare WIT package name, `namespace:package`, each part kebab-case words.
pub(super) fn is_package_name(name: &str) -> bool {
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
pub(super) fn encode_claims(claims: &Claims) -> Vec<u8> {
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
pub(super) fn decode_payload(payload: &[u8]) -> Result<(Claims, &[u8], [u8; SIGNATURE_LEN]), DecodeError> {
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
pub(super) fn decode_claims(encoded: &[u8]) -> Result<Claims, DecodeError> {
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
pub(super) struct Reader<'a> {
    pub(super) rest: &'a [u8],
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
pub(super) mod hex_hash {
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
