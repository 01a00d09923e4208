//! Signed claims end to end: real components signed with `claims::sign`, admitted (or refused) by
//! `Runtime::load` under a host policy, then invoked.
//!
//! Every refusal is checked to happen before compilation: the runtimes here write compiled code to a cache
//! directory, which must stay empty when a load is refused.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use lattice_core::claims::{self, ClaimsError, Policy, Rejection, SignOptions};
use lattice_core::keys::{KeyKind, PublicKey, SeedKey};
use lattice_core::link::Interface;
use lattice_host::{ActorConfig, LinkError, LoadError, Runtime, RuntimeBuilder};
use lattice_test_actors::{HUGE_REPLY, KV_COUNTER, KV_PROBE};
use tempfile::TempDir;

use crate::{call, component, kv_default};

fn issuer() -> SeedKey {
    SeedKey::from_seed_bytes(KeyKind::Issuer, &[11; 32])
}

fn other_issuer() -> SeedKey {
    SeedKey::from_seed_bytes(KeyKind::Issuer, &[12; 32])
}

fn actor_key() -> PublicKey {
    SeedKey::from_seed_bytes(KeyKind::Actor, &[13; 32]).public_key()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Claims for `caps`, valid from an hour ago for a day.
fn options(caps: &[&str]) -> SignOptions {
    SignOptions {
        name: "kv-counter".into(),
        version: "0.1.0".into(),
        interfaces: caps.iter().map(|c| (*c).to_owned()).collect(),
        issued_at: now(),
        not_before: Some(now() - 3_600),
        expires: Some(now() + 86_400),
    }
}

/// What kv-counter needs: its store. Receiving and replying (`wasi:messaging/types`, `request-reply`) are
/// baseline.
const KV_CAPS: &[&str] = &["wasi:keyvalue"];

fn sign_with(path: &str, issuer: &SeedKey, options: SignOptions) -> Vec<u8> {
    claims::sign(&component(path), issuer, &actor_key(), options).expect("sign")
}

fn signed(path: &str, caps: &[&str]) -> Vec<u8> {
    sign_with(path, &issuer(), options(caps))
}

fn trusting(issuers: Vec<PublicKey>) -> Policy {
    Policy { trusted_issuers: issuers, ..Policy::default() }
}

/// A runtime with `policy` and a fresh compiled-code cache directory, to see whether anything was compiled.
fn runtime_with(policy: Policy) -> (Runtime, TempDir) {
    let cache = tempfile::tempdir().expect("tempdir");
    let runtime =
        RuntimeBuilder::new().policy(policy).cache_dir(Some(cache.path().to_path_buf())).build().expect("runtime");
    (runtime, cache)
}

fn trusting_issuer() -> (Runtime, TempDir) {
    runtime_with(trusting(vec![issuer().public_key()]))
}

fn nothing_compiled(cache: &Path) -> bool {
    std::fs::read_dir(cache)
        .expect("cache dir")
        .filter_map(Result::ok)
        .all(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
}

/// Loads `bytes` under the issuer-trusting policy and returns the refusal, checking nothing was compiled.
async fn refused(bytes: Vec<u8>, config: ActorConfig) -> LoadError {
    refused_by(trusting(vec![issuer().public_key()]), bytes, config).await
}

async fn refused_by(policy: Policy, bytes: Vec<u8>, config: ActorConfig) -> LoadError {
    let (rt, cache) = runtime_with(policy);
    let error = rt.load("kv-counter", bytes, config).await.expect_err("the actor should be refused");
    assert!(nothing_compiled(cache.path()), "compiled code was cached for a refused actor");
    error
}

/// The section `claims::sign` appended to an unsigned component.
fn claims_section_of(path: &str, caps: &[&str]) -> Vec<u8> {
    let unsigned = component(path);
    let signed = signed(path, caps);
    signed[unsigned.len()..].to_vec()
}

/// A custom section named `lattice-claims` with `payload` (short: one-byte LEB128 sizes).
fn raw_claims_section(payload: &[u8]) -> Vec<u8> {
    let name = claims::CLAIMS_SECTION.as_bytes();
    let size = 1 + name.len() + payload.len();
    assert!(size < 128);
    let mut out = vec![0, size as u8, name.len() as u8];
    out.extend_from_slice(name);
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn signed_actor_from_a_trusted_issuer_runs() {
    let (rt, cache) = trusting_issuer();
    let actor = rt.load("kv-counter", signed(KV_COUNTER, KV_CAPS), kv_default()).await.expect("signed actor loads");
    assert_eq!(call(&actor, "x").await, "1");
    assert_eq!(call(&actor, "x").await, "2");
    assert!(!nothing_compiled(cache.path()), "an admitted actor is compiled and cached");

    let claims = actor.claims().expect("a signed actor has claims");
    assert_eq!(claims.name, "kv-counter");
    assert_eq!(claims.issuer, issuer().public_key());
    assert_eq!(claims.subject, actor_key());
    assert_eq!(claims.interfaces, ["wasi:keyvalue"]);
}

#[tokio::test]
async fn unsigned_actor_has_no_claims_when_allowed() {
    let actor =
        crate::runtime().load("kv-counter", component(KV_COUNTER), kv_default()).await.expect("unsigned allowed");
    assert!(actor.claims().is_none());
    assert_eq!(call(&actor, "x").await, "1");
}

#[tokio::test]
async fn unsigned_actor_is_refused_without_allow_unsigned() {
    let error = refused(component(KV_COUNTER), kv_default()).await;
    assert!(matches!(error, LoadError::Rejected(Rejection::Unsigned)), "{error:?}");
    // The runtime names no remedy: `lattice run` names its flag, a remote host its own setting.
    assert_eq!(error.to_string(), "actor is not signed, and unsigned actors are not allowed");
}

#[tokio::test]
async fn default_policy_trusts_nobody() {
    let error = refused_by(Policy::default(), signed(KV_COUNTER, KV_CAPS), kv_default()).await;
    assert!(
        matches!(&error, LoadError::Rejected(Rejection::UntrustedIssuer { issuer: i }) if *i == issuer().public_key()),
        "{error:?}"
    );
    let error = refused_by(Policy::default(), component(KV_COUNTER), kv_default()).await;
    assert!(matches!(error, LoadError::Rejected(Rejection::Unsigned)), "{error:?}");
}

#[tokio::test]
async fn one_byte_changed_after_signing_is_refused() {
    let mut bytes = signed(KV_COUNTER, KV_CAPS);
    // The middle of the file is inside the core module's code, far from the claims section at the end.
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let error = refused(bytes, kv_default()).await;
    assert!(matches!(error, LoadError::Rejected(Rejection::HashMismatch)), "{error:?}");
    assert_eq!(error.to_string(), "claims hash mismatch: the component was modified after signing");
}

#[tokio::test]
async fn claims_section_moved_from_another_actor_is_refused() {
    let mut bytes = component(KV_COUNTER);
    bytes.extend_from_slice(&claims_section_of(KV_PROBE, KV_CAPS));
    let error = refused(bytes, kv_default()).await;
    assert!(matches!(error, LoadError::Rejected(Rejection::HashMismatch)), "{error:?}");
}

#[tokio::test]
async fn expired_claims_are_refused() {
    let opts = SignOptions { not_before: Some(now() - 7_200), expires: Some(now() - 3_600), ..options(KV_CAPS) };
    let error = refused(sign_with(KV_COUNTER, &issuer(), opts), kv_default()).await;
    assert!(matches!(error, LoadError::Rejected(Rejection::Expired { .. })), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("claims expired at "), "{message}");
    assert!(message.ends_with("Z (sign the actor again)"), "{message}");
}

#[tokio::test]
async fn claims_not_yet_valid_are_refused() {
    let opts = SignOptions { not_before: Some(now() + 3_600), ..options(KV_CAPS) };
    let error = refused(sign_with(KV_COUNTER, &issuer(), opts), kv_default()).await;
    assert!(matches!(error, LoadError::Rejected(Rejection::NotYetValid { .. })), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("claims not valid before "), "{message}");
    assert!(message.ends_with("Z (check the host's clock)"), "{message}");
}

#[tokio::test]
async fn untrusted_issuer_is_refused() {
    let bytes = sign_with(KV_COUNTER, &other_issuer(), options(KV_CAPS));
    let error = refused(bytes, kv_default()).await;
    let other = other_issuer().public_key();
    assert!(
        matches!(&error, LoadError::Rejected(Rejection::UntrustedIssuer { issuer }) if *issuer == other),
        "{error:?}"
    );
    assert_eq!(error.to_string(), format!("actor is signed by issuer {other}, which this host does not trust"));
    // Trusting it as well admits it.
    let (rt, _cache) = runtime_with(trusting(vec![issuer().public_key(), other]));
    let actor = rt
        .load("kv-counter", sign_with(KV_COUNTER, &other_issuer(), options(KV_CAPS)), kv_default())
        .await
        .expect("trusted now");
    assert_eq!(call(&actor, "x").await, "1");
}

#[tokio::test]
async fn two_claims_sections_are_refused() {
    let mut bytes = signed(KV_COUNTER, KV_CAPS);
    bytes.extend_from_slice(&claims_section_of(KV_COUNTER, KV_CAPS));
    let error = refused(bytes, kv_default()).await;
    assert!(matches!(error, LoadError::Rejected(Rejection::MultipleClaimsSections { count: 2 })), "{error:?}");
    assert_eq!(error.to_string(), "component has 2 `lattice-claims` sections, expected exactly one (sign it again)");
}

#[tokio::test]
async fn garbage_in_the_claims_section_is_refused() {
    let mut bytes = component(KV_COUNTER);
    bytes.extend_from_slice(&raw_claims_section(b"garbage"));
    let error = refused(bytes, kv_default()).await;
    assert!(matches!(error, LoadError::Rejected(Rejection::Malformed(_))), "{error:?}");
    assert_eq!(error.to_string(), "malformed claims section: section ends inside field `signature`");
}

#[tokio::test]
async fn garbage_in_the_claims_section_is_refused_even_when_unsigned_is_allowed() {
    let mut bytes = component(KV_COUNTER);
    bytes.extend_from_slice(&raw_claims_section(b"garbage"));
    let error = refused_by(crate::allow_unsigned(), bytes, kv_default()).await;
    assert!(matches!(error, LoadError::Rejected(Rejection::Malformed(_))), "{error:?}");
}

#[tokio::test]
async fn import_of_a_capability_the_claims_do_not_list_is_refused() {
    // Signed for messaging only, but kv-counter imports wasi:keyvalue.
    let error = refused(signed(KV_COUNTER, &["wasi:messaging"]), kv_default()).await;
    assert!(
        matches!(&error, LoadError::Rejected(Rejection::CapabilityNotAllowed { capability, import })
            if capability == "wasi:keyvalue" && import.starts_with("wasi:keyvalue/")),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.starts_with("import `wasi:keyvalue/"), "{message}");
    assert!(message.contains("needs capability `wasi:keyvalue`, which the actor's claims do not allow"), "{message}");
    assert!(message.contains("sign it with `--cap wasi:keyvalue`"), "{message}");
    // Baseline imports (wasi:logging, and wasi:messaging's types and request-reply to answer) need none.
    let imports = claims::component_imports(&component(KV_COUNTER)).expect("imports");
    assert!(imports.iter().any(|i| i.starts_with("wasi:logging/")), "{imports:?}");
    assert!(imports.iter().any(|i| i.starts_with("wasi:messaging/")), "{imports:?}");
    let (rt, _cache) = trusting_issuer();
    let actor = rt
        .load("kv-counter", signed(KV_COUNTER, &["wasi:keyvalue"]), kv_default())
        .await
        .expect("keyvalue is all kv-counter needs");
    assert_eq!(call(&actor, "x").await, "1");
}

/// huge-reply imports no key-value interface, so claims without `wasi:keyvalue` pass the import check and only
/// the link check can refuse a key-value link.
fn no_keyvalue_actor() -> Vec<u8> {
    let imports = claims::component_imports(&component(HUGE_REPLY)).expect("imports");
    assert!(
        imports.iter().all(|i| !i.starts_with("wasi:keyvalue")),
        "huge-reply should not import wasi:keyvalue: {imports:?}"
    );
    signed(HUGE_REPLY, &[])
}

#[tokio::test]
async fn link_to_an_interface_the_claims_do_not_list_is_refused_at_load() {
    let error = refused(no_keyvalue_actor(), kv_default()).await;
    assert!(
        matches!(&error, LoadError::Links(LinkError::NotAllowed { interface: Interface::KeyValue, actor })
            if actor == "kv-counter"),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "actor `kv-counter` may not use wasi:keyvalue: its claims do not list it");
}

#[tokio::test]
async fn link_to_an_interface_the_claims_do_not_list_is_refused_by_set_links() {
    let (rt, _cache) = trusting_issuer();
    let actor = rt.load("no-kv", no_keyvalue_actor(), ActorConfig::default()).await.expect("loads without links");
    let error = actor.set_links(&kv_default().links).expect_err("kv link refused");
    assert_eq!(error, LinkError::NotAllowed { interface: Interface::KeyValue, actor: "no-kv".into() });
    assert_eq!(error.to_string(), "actor `no-kv` may not use wasi:keyvalue: its claims do not list it");
    assert!(actor.links().specs().is_empty(), "the refused links were not applied");

    // An actor whose claims list wasi:keyvalue can be relinked.
    let counter = rt.load("kv-counter", signed(KV_COUNTER, KV_CAPS), ActorConfig::default()).await.expect("loads");
    counter.set_links(&kv_default().links).expect("allowed");
    assert_eq!(call(&counter, "x").await, "1");
}

#[tokio::test]
async fn core_module_is_refused_as_not_a_component() {
    // The smallest core module: magic and version 1.
    let error = refused(b"\0asm\x01\0\0\0".to_vec(), ActorConfig::default()).await;
    assert!(matches!(error, LoadError::Rejected(Rejection::InvalidComponent(ClaimsError::NotAComponent))), "{error:?}");
}

#[tokio::test]
async fn an_http_actor_needs_the_wasi_http_capability() {
    use lattice_test_actors::HTTP_HELLO;
    let error = refused(signed(HTTP_HELLO, &["wasi:keyvalue"]), kv_default()).await;
    assert!(
        matches!(&error, LoadError::Rejected(Rejection::CapabilityNotAllowed { capability, import })
            if capability == "wasi:http" && import.starts_with("wasi:http/")),
        "{error:?}"
    );
    let (rt, _cache) = trusting_issuer();
    let actor = rt
        .load("http-hello", signed(HTTP_HELLO, &["wasi:keyvalue", "wasi:http"]), kv_default())
        .await
        .expect("keyvalue and http are all http-hello needs");
    assert!(actor.serves_http());
}
