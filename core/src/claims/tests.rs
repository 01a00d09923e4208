//! Tests of signing, inspection and verification, including property tests on arbitrary input.
#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;
use wasm_encoder::{
    CodeSection, Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, CustomSection, Function,
    FunctionSection, InstanceType, Module, ModuleSection, NestedComponentSection, TypeSection, ValType,
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
    nested.section(&CustomSection { name: CLAIMS_SECTION.into(), data: b"nested in a component".as_slice().into() });

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
    assert_eq!(err.to_string(), "actor is not signed, and unsigned actors are not allowed");
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
    assert!(matches!(verify(&module, &policy(), NOW), Err(Rejection::InvalidComponent(ClaimsError::NotAComponent))));
    assert!(matches!(
        sign(&module, &issuer(), &actor(), options()),
        Err(SignError::Component(ClaimsError::NotAComponent))
    ));
    assert!(matches!(inspect(b"not wasm"), Err(ClaimsError::NotWasm { looks_like: "it is a text file" })));
}

#[test]
fn the_preamble_says_what_bytes_are() {
    let not_wasm = |bytes: &[u8]| match check_preamble(bytes) {
        Err(ClaimsError::NotWasm { looks_like }) => looks_like,
        other => panic!("expected NotWasm, got {other:?}"),
    };
    assert_eq!(not_wasm(b""), "the file is empty");
    assert_eq!(not_wasm(b"\x7fELF\x02\x01\x01"), "it is an ELF executable");
    assert_eq!(not_wasm(b"PK\x03\x04rest"), "it is a zip archive");
    assert_eq!(
        not_wasm(b"  (component (core module))"),
        "it is WebAssembly text (WAT); assemble it with `wasm-tools parse`"
    );
    assert_eq!(
        not_wasm(&[0xcb, 0xc8, 0x15, 0xb2, 0xff, 0x00]),
        "it does not start with the WebAssembly header `\\0asm`"
    );
    let error = check_preamble(b"#!/bin/sh\necho hi\n").unwrap_err().to_string();
    assert_eq!(error, "not a WebAssembly component: it is a text file");
    assert!(!error.contains('\n'));
    assert!(matches!(check_preamble(b"\0asm\x01\x00\x00\x00"), Err(ClaimsError::NotAComponent)));
    assert!(check_preamble(b"\0asm\x0d\x00\x01\x00").is_ok());
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
    assert!(matches!(sign(&component(42), &issuer(), &actor(), opts), Err(SignError::TooLong { field: "name", .. })));
    let opts = SignOptions { interfaces: (0..=MAX_INTERFACES).map(|i| format!("acme:p{i}")).collect(), ..options() };
    assert!(matches!(sign(&component(42), &issuer(), &actor(), opts), Err(SignError::TooManyInterfaces { .. })));
}

#[test]
fn capabilities_of_imports() {
    assert_eq!(capability_of("wasi:keyvalue/store@0.2.0-draft2"), Some("wasi:keyvalue"));
    assert_eq!(capability_of("wasi:messaging/producer@0.2.0-draft"), Some("wasi:messaging"));
    assert_eq!(capability_of("wasi:http/outgoing-handler@0.2.0"), Some("wasi:http"));
    assert_eq!(capability_of("wasi:filesystem/types@0.2.0"), None);
    assert_eq!(capability_of("wasi:sockets/tcp"), None);
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

    let imports = vec!["wasi:keyvalue/store@0.2.0-draft2".to_owned(), "wasi:messaging/producer@0.2.0-draft".to_owned()];
    let err = check_imports(&claims, &imports).unwrap_err();
    assert!(matches!(
        &err,
        Rejection::CapabilityNotAllowed { capability, import }
            if capability == "wasi:messaging" && import == "wasi:messaging/producer@0.2.0-draft"
    ));
    assert_eq!(
        err.to_string(),
        "import `wasi:messaging/producer@0.2.0-draft` needs capability `wasi:messaging`, which the actor's claims do \
         not allow (sign it with `--cap wasi:messaging`, or `lattice build` / `claims sign --infer-caps`)"
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
    (proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), proptest::option::weighted(0.2, any::<usize>()))
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

#[test]
fn receiving_and_replying_need_no_capability_but_producing_does() {
    assert_eq!(capability_of("wasi:messaging/types@0.2.0-draft"), None);
    assert_eq!(capability_of("wasi:messaging/request-reply@0.2.0-draft"), None);
    assert_eq!(capability_of("wasi:messaging/producer@0.2.0-draft"), Some("wasi:messaging"));
    assert_eq!(capability_of("wasi:keyvalue/store@0.2.0-draft2"), Some("wasi:keyvalue"));
    assert_eq!(capability_of("wasi:cli/stdout@0.2.6"), None);
}

#[test]
fn filesystem_and_sockets_grant_nothing_so_need_no_capability() {
    let claims = Claims { interfaces: vec![], ..inspect(&signed(42)).unwrap().unwrap().claims };
    // What componentize-py and jco components import by default besides the actor world.
    let imports: Vec<String> = [
        "wasi:filesystem/types@0.2.0",
        "wasi:filesystem/preopens@0.2.0",
        "wasi:sockets/tcp@0.2.0",
        "wasi:sockets/ip-name-lookup@0.2.0",
    ]
    .map(str::to_owned)
    .into();
    assert!(check_imports(&claims, &imports).is_ok());
    assert!(needed_capabilities(&imports).is_empty());
}

#[test]
fn needed_capabilities_are_the_packages_of_non_baseline_imports() {
    let imports: Vec<String> = [
        "wasi:keyvalue/store@0.2.0-draft2",
        "wasi:keyvalue/atomics@0.2.0-draft2",
        "wasi:messaging/types@0.2.0-draft",
        "wasi:messaging/producer@0.2.0-draft",
        "wasi:logging/logging@0.1.0-draft",
        "wasi:cli/stdout@0.2.6",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(needed_capabilities(&imports), ["wasi:keyvalue", "wasi:messaging"]);
}

#[test]
fn only_known_capabilities_are_accepted() {
    for known in CAPABILITIES {
        assert!(check_capability(known).is_ok(), "{known}");
    }
    let error = check_capability("wasi:nonsense").unwrap_err();
    assert_eq!(error, "unknown capability `wasi:nonsense` (capabilities: wasi:keyvalue, wasi:messaging, wasi:http)");
    assert!(check_capability("wasi:filesystem").unwrap_err().contains("without one"));
    assert!(check_capability("wasi:keyvalue/store").is_err());
}
