//! Link specs (flags, manifests) and link and route records (the state bucket, writable by anyone who can
//! write it): arbitrary and mutated spec text, and records decoded, parsed and their signatures checked as a
//! host that follows `links.>` and `routes.>` does.

use lattice_core::control_auth::{OperatorPolicy, sign_link};
use lattice_core::http::Route;
use lattice_core::keys::{KeyKind, SeedKey};
use lattice_core::link::{Interface, LinkSpec};
use lattice_core::reserved;
use lattice_core::subject::{Name, Subjects};
use lattice_core::wire::{self, LinkRecord};
use proptest::prelude::*;

use crate::{bytes, config, mutated, mutated_text, within_bound};

const SPECS: [&str; 5] = [
    "keyvalue:default=inmemory",
    "wasi:keyvalue:cache=redis,bucket=shared,url=redis://x",
    "messaging:orders=nats,subscribe=orders.>,queue=q",
    "http:outgoing=allow,hosts=*.example.com|10.0.0.1:8080",
    "route:api.test/v1",
];

fn operator() -> SeedKey {
    SeedKey::from_seed_bytes(KeyKind::Operator, &[4; 32])
}

/// Parses `text` as a link spec and a route, and checks what parses as a host does, within the memory bound.
fn parse(text: &str) -> Result<(), TestCaseError> {
    within_bound(text.len(), || {
        let _ = text.parse::<Interface>();
        if let Ok(spec) = text.parse::<LinkSpec>() {
            let _ = (spec.bucket("actor"), reserved::check_link(&spec), spec.to_string());
            let _ = lattice_core::http::OutgoingPolicy::from_link(&spec);
        }
        let route = text.strip_prefix("route:").unwrap_or(text);
        if let Ok(route) = route.parse::<Route>() {
            let _ = (Subjects::new(Name::new("l").unwrap()).route_key(&route), route.to_string());
        }
    })
}

/// A signed record of every seed spec, encoded as stored.
fn records() -> Vec<Vec<u8>> {
    let actor = Name::new("orders").unwrap();
    SPECS
        .iter()
        .map(|link| {
            let signature = sign_link(&operator(), "l", actor.as_str(), link, 1, [1; 16]);
            wire::encode(&LinkRecord { actor: actor.clone(), link: (*link).to_owned(), signature: Some(signature) })
        })
        .collect()
}

/// Decodes a stored record and does with it what a following host does: verify it, parse its text.
fn follow(input: &[u8]) -> Result<(), TestCaseError> {
    within_bound(input.len(), || {
        if let Ok(record) = wire::decode::<LinkRecord>(input) {
            let policy = OperatorPolicy { trusted: vec![operator().public_key()], require_signed_reads: false };
            let _ = policy.verify_link("l", &record);
            let _ = record.link.parse::<LinkSpec>();
            let _ = record.link.strip_prefix("route:").map(str::parse::<Route>);
        }
    })
}

#[test]
fn the_seed_records_verify() {
    let policy = OperatorPolicy { trusted: vec![operator().public_key()], require_signed_reads: false };
    for record in records() {
        let record: LinkRecord = wire::decode(&record).unwrap();
        assert!(policy.verify_link("l", &record).is_ok(), "{record:?}");
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_text_is_a_link_or_refused(text in "(?s).{0,120}") {
        parse(&text)?;
    }

    #[test]
    fn link_shaped_text_is_a_link_or_refused(
        text in r"(route:|wasi:)?[a-z]{0,9}[:=]?[a-z.>*]{0,6}=?[a-z]{0,6}(,[a-z]{0,6}=[a-z0-9.>*|:/\[\]@-]{0,12}){0,4}"
    ) {
        parse(&text)?;
    }

    #[test]
    fn mutated_links_are_links_or_refused(text in prop::sample::select(SPECS.to_vec()).prop_flat_map(mutated_text)) {
        parse(&text)?;
    }

    #[test]
    fn arbitrary_records_are_followed_or_ignored(input in bytes(256)) {
        follow(&input)?;
    }

    #[test]
    fn mutated_records_are_followed_or_ignored(input in prop::sample::select(records()).prop_flat_map(mutated)) {
        follow(&input)?;
    }
}
