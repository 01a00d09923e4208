//! Operator signatures on control requests, read from NATS headers anyone on the account may set: arbitrary and
//! mutated header values, then verification of whatever parses, and record signatures of arbitrary text.

use lattice_core::control_auth::{NonceCache, OperatorPolicy, RequestAuth};
use lattice_core::keys::{KeyKind, SeedKey};
use lattice_core::wire::headers;
use proptest::prelude::*;

use crate::{config, mutated_text, within_bound};

const SUBJECT: &str = "lattice.prod.ctl.host.h1.actor.stop";
const NOW: u64 = 1_700_000_000_000;

fn operator() -> SeedKey {
    SeedKey::from_seed_bytes(KeyKind::Operator, &[9; 32])
}

/// A valid signature's four header values, in the order of `names()`.
fn valid() -> Vec<String> {
    let auth = RequestAuth::sign(&operator(), SUBJECT, b"payload", NOW, [5; 16]);
    auth.headers().into_iter().map(|(_, value)| value).collect()
}

fn names() -> [&'static str; 4] {
    [headers::OPERATOR, headers::AUTH_IAT, headers::AUTH_NONCE, headers::AUTH_SIG]
}

/// Reads a signature from `values` (absent where `None`), and verifies and records whatever reads.
fn read_and_verify(values: &[Option<String>]) -> Result<(), TestCaseError> {
    let input: usize = values.iter().flatten().map(String::len).sum();
    within_bound(input, || {
        let get = |name: &str| names().iter().position(|n| *n == name).and_then(|i| values.get(i).cloned().flatten());
        if let Ok(Some(auth)) = RequestAuth::from_headers(get) {
            let policy = OperatorPolicy { trusted: vec![operator().public_key()], require_signed_reads: true };
            if policy.verify_request(SUBJECT, b"payload", Some(&auth), NOW).is_ok() {
                let _ = NonceCache::new(4).record(&auth, NOW);
            }
        }
    })
}

#[test]
fn the_seed_headers_verify() {
    let values: Vec<Option<String>> = valid().into_iter().map(Some).collect();
    let get = |name: &str| names().iter().position(|n| *n == name).and_then(|i| values[i].clone());
    let auth = RequestAuth::from_headers(get).expect("valid headers").expect("signed");
    let policy = OperatorPolicy { trusted: vec![operator().public_key()], require_signed_reads: true };
    assert!(policy.verify_request(SUBJECT, b"payload", Some(&auth), NOW).is_ok());
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_header_values_are_read_or_refused(values in prop::collection::vec(prop::option::of("(?s).{0,80}"), 4)) {
        read_and_verify(&values)?;
    }

    #[test]
    fn mutated_header_values_are_read_or_refused(
        which in 0usize..4,
        mutated in prop::sample::select(valid()).prop_flat_map(|seed| mutated_text(&seed)),
        absent in prop::option::of(0usize..4),
    ) {
        let mut values: Vec<Option<String>> = valid().into_iter().map(Some).collect();
        values[which] = Some(mutated);
        if let Some(absent) = absent {
            values[absent] = None;
        }
        read_and_verify(&values)?;
    }
}
