//! The wire envelope and every message type in `wire.rs` (and the forwarded HTTP request and response), as a
//! message and as a reply: arbitrary bytes, structurally valid MessagePack built from the module's own field
//! and variant names, and mutations of a valid encoding of each type. A new type is one line in
//! `wire_types!`.

use lattice_core::http::{HttpRequest, HttpResponse};
use lattice_core::wire::*;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{bytes, config, mutated, within_bound};

/// Every wire type with a valid sample of it (JSON, in the shape its `Deserialize` expects).
macro_rules! wire_types {
    ($($ty:ty => $sample:tt),* $(,)?) => {
        /// Decodes `input` as every wire type, as a message and as a reply, within the memory bound.
        fn decode_as_every_type(input: &[u8]) -> Result<(), TestCaseError> {
            $(
                within_bound(input.len(), || {
                    let _ = decode::<$ty>(input);
                    let _ = decode_reply::<$ty>(input);
                })?;
            )*
            Ok(())
        }

        /// A valid encoding of every wire type, as a message and as an ok reply.
        fn samples() -> Vec<Vec<u8>> {
            let mut samples = Vec::new();
            $( samples.extend(sample::<$ty>(stringify!($ty), json!($sample))); )*
            samples
        }
    };
}

const NAME: &str = "a";

/// An operator's public key, as text.
fn operator() -> String {
    lattice_core::keys::SeedKey::from_seed_bytes(lattice_core::keys::KeyKind::Operator, &[7; 32])
        .public_key()
        .to_string()
}

wire_types! {
    Empty => {},
    WireError => {"code": "NotFound", "message": "no actor"},
    ErrorCode => "Timeout",
    ArtifactRef => {"Lattice": "a"},
    LimitsSpec => {"memory_bytes": 1, "cpu_time_ms": 2, "timeout_ms": 3, "max_concurrency": 4, "max_reply_bytes": 5, "instance_reuse": 6},
    StartActor => {"name": NAME, "artifact": {"Path": "/a.wasm"}, "limits": {"memory_bytes": null, "cpu_time_ms": null, "timeout_ms": null, "max_concurrency": 2, "max_reply_bytes": null}, "links": ["keyvalue:default=inmemory"], "owner": {"app": NAME, "spec": "x"}},
    ActorInfo => {"name": NAME, "digest": "ab", "max_concurrency": 1, "from_cache": true, "load_ms": 3, "subject": "s", "links": ["l"], "owner": {"app": NAME, "spec": "x"}, "http": true},
    ActorStarted => {"host": NAME, "actor": {"name": NAME, "digest": "ab", "max_concurrency": 1, "from_cache": true, "load_ms": 3, "subject": null, "links": []}},
    StopActor => {"name": NAME},
    ActorStopped => {"host": NAME, "name": NAME},
    ScaleActor => {"name": NAME, "max_concurrency": 3},
    PutLabel => {"key": "zone", "value": "eu"},
    DeleteLabel => {"key": "zone"},
    Labels => {"host": NAME, "labels": {"zone": "eu"}},
    StopHost => {"grace_ms": 5},
    HostStopping => {"host": NAME, "in_flight": 2},
    HostInfo => {"id": NAME, "lattice": NAME, "labels": {"k": "v"}, "version": "1", "started_at_ms": 1, "heartbeat_ms": 2, "actors": [{"name": NAME, "digest": "ab", "max_concurrency": 1, "from_cache": false, "load_ms": 3, "subject": null, "links": []}], "providers": ["p"], "provider_owners": {"p": {"app": NAME, "spec": "x"}}},
    StartProvider => {"name": "p", "kind": "redis", "config": {"url": "redis://x"}, "owner": {"app": NAME, "spec": "x"}},
    ProviderStarted => {"host": NAME, "name": "p", "kind": "redis"},
    RestartProvider => {"name": "p"},
    ProviderRestarted => {"host": NAME, "name": "p", "kind": "redis", "unhealthy": "down"},
    LinkRecord => {"actor": NAME, "link": "keyvalue:default=inmemory", "signature": {"operator": operator(), "issued_at_ms": 1, "nonce": "00", "signature": "00"}},
    LinkSignature => {"operator": operator(), "issued_at_ms": 1, "nonce": "00", "signature": "00"},
    AppSpec => {"name": NAME, "version": "1", "env": "prod", "actors": [{"name": NAME, "artifact": "a", "digest": "d", "replicas": 2, "spread": "zone", "constraints": {"k": "v"}, "limits": {"memory_bytes": null, "cpu_time_ms": null, "timeout_ms": null, "max_concurrency": null, "max_reply_bytes": null}, "links": ["l"], "routes": ["/"]}], "providers": [{"name": NAME, "kind": "redis", "config": {}, "constraints": {}}]},
    AppActor => {"name": NAME, "artifact": "a", "digest": "d", "replicas": 2, "spread": null, "constraints": {}, "limits": {"memory_bytes": null, "cpu_time_ms": null, "timeout_ms": null, "max_concurrency": null, "max_reply_bytes": null}, "links": []},
    AppProvider => {"name": NAME, "kind": "redis", "config": {"a": "b"}, "constraints": {}},
    AppRecord => {"spec": {"name": NAME, "version": "1", "env": null, "actors": [], "providers": []}, "revision": 3, "applied_at_ms": 4, "signature": {"operator": operator(), "issued_at_ms": 1, "nonce": "00", "signature": "00"}},
    Owner => {"app": NAME, "spec": "x"},
    AppStatus => {"app": NAME, "revision": 1, "reconciled": true, "reason": null, "actors": [{"name": NAME, "wanted": 1, "hosts": [NAME], "outdated": [], "error": null}], "providers": [{"name": NAME, "hosts": [], "error": "e"}], "leader": NAME, "updated_at_ms": 9},
    ActorStatus => {"name": NAME, "wanted": 1, "hosts": [NAME], "outdated": [NAME], "error": "e"},
    ProviderStatus => {"name": NAME, "hosts": [NAME], "error": null},
    StopProvider => {"name": "p"},
    ProviderStopped => {"host": NAME, "name": "p"},
    Auction => {"constraints": {"zone": "eu"}},
    Bid => {"host": NAME, "labels": {}, "actors": 2},
    Event => {"host": NAME, "time_ms": 1, "data": {"MessageDead": {"actor": NAME, "link": "l", "subject": "s", "id": "i", "attempts": 3, "reason": "r", "seq": 4}}},
    EventData => {"ActorFailed": {"name": NAME, "error": {"code": "Internal", "message": "m"}}},
    HttpRequest => {"method": "GET", "scheme": "http", "authority": "a.test", "path": "/x?y", "headers": [["accept", [42]]], "body": [1, 2, 3]},
    HttpResponse => {"status": 200, "headers": [["content-type", [116]]], "body": [104, 105]},
}

/// `json` read as `T` (which must succeed: the sample is valid), encoded as a message and as an ok reply.
fn sample<T: Serialize + DeserializeOwned>(ty: &str, json: Value) -> [Vec<u8>; 2] {
    let value: T = serde_json::from_value(json).unwrap_or_else(|e| panic!("the sample of {ty} is not valid: {e}"));
    let reply: Reply<&T> = Ok(&value);
    [encode(&value), encode(&reply)]
}

/// The names `Deserialize` looks for: every field and variant named in `wire.rs` and `http.rs`, and a reply's.
fn vocabulary() -> Vec<String> {
    let mut names = vec!["v".to_owned(), "body".to_owned(), "Ok".to_owned(), "Err".to_owned()];
    for source in [include_str!("../../src/wire.rs"), include_str!("../../src/http.rs")] {
        for line in source.lines().map(str::trim) {
            let line = line.strip_prefix("pub ").unwrap_or(line);
            let word: String = line.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let rest = &line[word.len()..];
            let named = rest.starts_with(':') || rest.starts_with('(') || rest.starts_with(" {") || rest == ",";
            if !word.is_empty() && named && !word.starts_with(char::is_numeric) {
                names.push(word);
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Arbitrary values whose map keys and strings are often the names the decoders look for.
fn value(names: Vec<String>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![0u64, 1, 255, 65_535, u64::from(u32::MAX), u64::MAX]).prop_map(Value::from),
        "[a-z0-9.>*@:=,/ -]{0,12}".prop_map(Value::String),
        prop::sample::select(names.clone()).prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(names.clone()), inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// An envelope (mostly of the current version) around an arbitrary body.
fn envelope() -> impl Strategy<Value = Vec<u8>> {
    let version = prop_oneof![4 => Just(u64::from(PROTOCOL_VERSION)), 1 => any::<u64>()];
    (version, value(vocabulary()))
        .prop_map(|(v, body)| rmp_serde::to_vec_named(&json!({"v": v, "body": body})).unwrap_or_default())
}

#[test]
fn every_sample_is_a_valid_encoding_of_its_type() {
    // `sample` panics on an invalid one; the count is two per type.
    assert!(samples().len() >= 2 * 39);
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn arbitrary_bytes_decode_to_a_value_or_an_error(input in bytes(512)) {
        decode_as_every_type(&input)?;
    }

    #[test]
    fn arbitrary_envelopes_decode_to_a_value_or_an_error(input in envelope()) {
        decode_as_every_type(&input)?;
    }

    #[test]
    fn mutated_envelopes_decode_to_a_value_or_an_error(
        input in envelope().prop_flat_map(mutated)
    ) {
        decode_as_every_type(&input)?;
    }

    #[test]
    fn mutated_messages_decode_to_a_value_or_an_error(
        input in prop::sample::select(samples()).prop_flat_map(mutated)
    ) {
        decode_as_every_type(&input)?;
    }
}
