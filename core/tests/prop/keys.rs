//! Key text (`A…`, `M…`, `O…` public keys and `S…` seeds, read from flags, files and records): arbitrary and
//! mutated text.

use lattice_core::keys::{KeyKind, PublicKey, SeedKey};
use proptest::prelude::*;

use crate::{config, mutated_text, within_bound};

fn seeds() -> Vec<String> {
    let mut texts = Vec::new();
    for kind in [KeyKind::Issuer, KeyKind::Actor, KeyKind::Operator] {
        let key = SeedKey::from_seed_bytes(kind, &[3; 32]);
        texts.push(key.to_seed_string());
        texts.push(key.public_key().to_string());
    }
    texts
}

/// Parses `text` as every kind of key, within the memory bound.
fn parse(text: &str) -> Result<(), TestCaseError> {
    within_bound(text.len(), || {
        let _ = text.parse::<PublicKey>();
        for kind in [KeyKind::Issuer, KeyKind::Actor, KeyKind::Operator] {
            let _ = PublicKey::parse_as(text, kind);
        }
        let _ = SeedKey::from_seed_str(text).map(|key| key.public_key());
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_text_is_a_key_or_refused(text in "(?s).{0,80}") {
        parse(&text)?;
    }

    #[test]
    fn base32_text_is_a_key_or_refused(text in "[A-Z2-7]{54,60}") {
        parse(&text)?;
    }

    #[test]
    fn mutated_keys_are_keys_or_refused(text in prop::sample::select(seeds()).prop_flat_map(|s| mutated_text(&s))) {
        parse(&text)?;
    }
}
