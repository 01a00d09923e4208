//! HTTP actors in the runtime: the edge-api example end to end (bearer tokens, preferences in key-value, JSON),
//! the same component moved from an in-memory store to Redis by a link change, and a messaging actor asked to
//! serve HTTP.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signer, SigningKey};
use lattice_core::http::{HttpRequest, HttpResponse};
use lattice_host::{ActorConfig, InvokeError, RuntimeBuilder};
use lattice_keyvalue_inmemory::InMemoryKeyValue;
use lattice_keyvalue_redis::{RedisConfig, RedisKeyValue};
use lattice_provider_sdk::KeyValue;
use lattice_test_actors::{EDGE_API, KV_COUNTER};
use lattice_test_harness::RedisServer;

use crate::{allow_unsigned, component, kv_default, load, runtime};

/// A bearer token as edge-api checks it: base64url JSON claims, then base64url ed25519 signature of that text.
fn token(key: &SigningKey, sub: &str, exp: u64) -> String {
    let payload = BASE64URL_NOPAD.encode(serde_json::json!({ "sub": sub, "exp": exp }).to_string().as_bytes());
    let signature = key.sign(payload.as_bytes());
    format!("{payload}.{}", BASE64URL_NOPAD.encode(&signature.to_bytes()))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn request(method: &str, path: &str, bearer: Option<&str>, body: &str) -> HttpRequest {
    let mut headers = Vec::new();
    if let Some(token) = bearer {
        headers.push(("authorization".to_owned(), format!("Bearer {token}").into_bytes().into()));
    }
    HttpRequest {
        method: method.into(),
        scheme: "http".into(),
        authority: "api.example.com".into(),
        path: path.into(),
        headers,
        body: body.as_bytes().to_vec().into(),
    }
}

fn json(response: &HttpResponse) -> serde_json::Value {
    let content_type = response.headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.to_vec());
    assert_eq!(content_type.as_deref(), Some(&b"application/json"[..]), "{response:?}");
    serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("{e}: {response:?}"))
}

fn edge_links(provider: &str) -> ActorConfig {
    let links = [
        format!("keyvalue:config={provider},bucket=edge-config"),
        format!("keyvalue:prefs={provider},bucket=edge-prefs"),
    ];
    ActorConfig { links: links.iter().map(|l| l.parse().expect("link")).collect(), ..ActorConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_api_checks_tokens_and_serves_prefs_from_whatever_store_is_linked() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = hex::encode(key.verifying_key().to_bytes());
    let memory = Arc::new(InMemoryKeyValue::new());
    memory.set("edge-config", "token-public-key", public.clone().into_bytes()).await.expect("seed");
    let runtime = RuntimeBuilder::new()
        .policy(allow_unsigned())
        .keyvalue_provider("mem", memory.clone())
        .build()
        .expect("runtime");
    let actor = runtime.load("edge-api", component(EDGE_API), edge_links("mem")).await.expect("load edge-api");
    assert!(actor.serves_http());
    let http = |r: HttpRequest| {
        let actor = actor.clone();
        async move { actor.invoke_http(r).await.result.expect("the handler answers") }
    };

    // No token, a token signed by another key, an expired one, garbage: 401 with a JSON error.
    let alice = token(&key, "alice", now() + 3_600);
    let forged = token(&SigningKey::from_bytes(&[8; 32]), "alice", now() + 3_600);
    let expired = token(&key, "alice", now() - 10);
    for bearer in [None, Some(forged.as_str()), Some(expired.as_str()), Some("not.a-token")] {
        let answer = http(request("GET", "/v1/prefs", bearer, "")).await;
        assert_eq!(answer.status, 401, "{bearer:?}: {answer:?}");
        assert!(json(&answer)["error"].is_string());
    }

    // A valid token: empty preferences, then stored ones, as JSON.
    let answer = http(request("GET", "/v1/prefs", Some(&alice), "")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(json(&answer), serde_json::json!({ "user": "alice", "prefs": {} }));
    let answer = http(request("PUT", "/v1/prefs", Some(&alice), r#"{"theme":"dark"}"#)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = http(request("GET", "/v1/prefs", Some(&alice), "")).await;
    assert_eq!(json(&answer)["prefs"], serde_json::json!({ "theme": "dark" }));
    assert!(memory.get("edge-prefs", "prefs:alice").await.expect("get").is_some());
    assert_eq!(http(request("PUT", "/v1/prefs", Some(&alice), "[1]")).await.status, 400);
    assert_eq!(http(request("GET", "/nope", Some(&alice), "")).await.status, 404);

    // Production: the same component, linked to Redis. Nothing else changes.
    let redis_server = tokio::task::spawn_blocking(RedisServer::start).await.expect("join").expect("redis");
    let redis = Arc::new(RedisKeyValue::connect(RedisConfig::new(redis_server.url())).expect("redis provider"));
    redis.set("edge-config", "token-public-key", public.into_bytes()).await.expect("seed redis");
    runtime.insert_keyvalue_provider("redis", redis.clone());
    actor.set_links(&edge_links("redis").links).expect("relink to redis");
    let answer = http(request("GET", "/v1/prefs", Some(&alice), "")).await;
    assert_eq!(json(&answer)["prefs"], serde_json::json!({}), "a fresh store: {answer:?}");
    let answer = http(request("PUT", "/v1/prefs", Some(&alice), r#"{"lang":"fr"}"#)).await;
    assert_eq!(answer.status, 200);
    let stored = redis.get("edge-prefs", "prefs:alice").await.expect("redis get").expect("stored in redis");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&stored).expect("json"), serde_json::json!({"lang":"fr"}));
}

#[tokio::test]
async fn a_messaging_actor_asked_to_serve_http_fails_with_a_clear_error() {
    let rt = runtime();
    let actor = load(&rt, KV_COUNTER, kv_default()).await;
    assert!(!actor.serves_http());
    let outcome = actor.invoke_http(request("GET", "/", None, "")).await;
    match outcome.result {
        Err(error @ InvokeError::NoHandler(_)) => {
            assert!(error.to_string().contains("wasi:http/incoming-handler"), "{error}")
        }
        other => panic!("expected NoHandler, got {other:?}"),
    }
}
