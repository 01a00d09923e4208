//! Signed actor claims in a component (pushed artifacts, files, the object store): inspection and verification
//! of arbitrary bytes, of bytes behind a component preamble, and of mutated signed components.

use lattice_core::claims::{self, Policy, SignOptions};
use lattice_core::keys::{KeyKind, SeedKey};
use proptest::prelude::*;
use wasm_encoder::{Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType};

use crate::{bytes, config, mutated, within_bound};

/// 2027-01-15T08:00:00Z.
const NOW: u64 = 1_800_000_000;

fn issuer() -> SeedKey {
    SeedKey::from_seed_bytes(KeyKind::Issuer, &[1; 32])
}

/// A small component with two imports, signed by [`issuer`].
fn signed() -> Vec<u8> {
    let mut component = Component::new();
    let mut types = ComponentTypeSection::new();
    types.instance(&InstanceType::new());
    component.section(&types);
    let mut imports = ComponentImportSection::new();
    imports.import("wasi:io/streams@0.2.0", ComponentTypeRef::Instance(0));
    imports.import("wasi:keyvalue/store@0.2.0-draft2", ComponentTypeRef::Instance(0));
    component.section(&imports);
    let actor = SeedKey::from_seed_bytes(KeyKind::Actor, &[2; 32]).public_key();
    let options = SignOptions {
        name: "counter".into(),
        version: "0.1.0".into(),
        interfaces: vec!["wasi:keyvalue".into()],
        issued_at: NOW - 100,
        not_before: Some(NOW - 100),
        expires: Some(NOW + 3_600),
    };
    claims::sign(&component.finish(), &issuer(), &actor, options).unwrap()
}

/// Inspects and verifies `input` and reads its imports, as `lattice claims inspect` and a starting host do.
fn judge(input: &[u8]) -> Result<(), TestCaseError> {
    within_bound(input.len(), || {
        let _ = claims::check_preamble(input);
        let _ = claims::inspect(input).map(|s| s.map(|s| (s.signature_is_valid(), s.hash_matches())));
        let policy = Policy { trusted_issuers: vec![issuer().public_key()], ..Policy::default() };
        let _ = claims::verify(input, &policy, NOW);
        if let Ok(imports) = claims::component_imports(input) {
            let _ = claims::needed_capabilities(&imports);
        }
    })
}

#[test]
fn the_seed_component_verifies() {
    let policy = Policy { trusted_issuers: vec![issuer().public_key()], ..Policy::default() };
    assert!(claims::verify(&signed(), &policy, NOW).is_ok());
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_are_judged(input in bytes(512)) {
        judge(&input)?;
    }

    #[test]
    fn bytes_behind_a_component_preamble_are_judged(rest in bytes(512)) {
        judge(&[b"\0asm\x0d\x00\x01\x00".as_slice(), &rest].concat())?;
    }

    #[test]
    fn mutated_signed_components_are_judged(input in mutated(signed())) {
        judge(&input)?;
    }
}
