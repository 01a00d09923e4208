//! The compiled-component cache: a second start skips compilation.

use lattice_core::claims::{ClaimsError, Rejection};
use lattice_host::{ActorConfig, LoadError, RuntimeBuilder};
use lattice_test_actors::KV_COUNTER;

use crate::{allow_unsigned, call, component, kv_default};

#[tokio::test]
async fn second_start_loads_from_the_disk_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let build = || {
        RuntimeBuilder::new()
            .cache_dir(Some(dir.path().to_path_buf()))
            .policy(allow_unsigned())
            .build()
            .expect("runtime")
    };
    let bytes = component(KV_COUNTER);

    let first = build().load("c", bytes.clone(), kv_default()).await.expect("first load");
    assert!(!first.load_report().from_cache);

    // A new runtime (as after a host restart) with the same cache directory.
    let second = build().load("c", bytes, kv_default()).await.expect("second load");
    assert!(second.load_report().from_cache);
    assert_eq!(second.load_report().digest, first.load_report().digest);
    assert!(
        second.load_report().elapsed * 5 < first.load_report().elapsed,
        "cached load {:?} vs compile {:?}",
        second.load_report().elapsed,
        first.load_report().elapsed
    );
    assert_eq!(call(&second, "x").await, "1");
}

#[tokio::test]
async fn corrupt_cache_entry_is_discarded_and_recompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = RuntimeBuilder::new()
        .cache_dir(Some(dir.path().to_path_buf()))
        .policy(allow_unsigned())
        .build()
        .expect("runtime");
    let bytes = component(KV_COUNTER);
    rt.load("c", bytes.clone(), ActorConfig::default()).await.expect("load");
    for entry in std::fs::read_dir(dir.path()).expect("read cache dir") {
        std::fs::write(entry.expect("entry").path(), b"not a compiled component").expect("corrupt");
    }
    let again = rt.load("c", bytes, kv_default()).await.expect("reload");
    assert!(!again.load_report().from_cache);
    assert_eq!(call(&again, "x").await, "1");
}

#[tokio::test]
async fn invalid_component_is_refused_before_anything_runs() {
    let rt = RuntimeBuilder::new().policy(allow_unsigned()).build().expect("runtime");
    let error = rt
        .load("junk", b"\0asm definitely not a component".to_vec(), ActorConfig::default())
        .await
        .expect_err("garbage");
    // The claims check parses the component first, so garbage is refused there, before any compilation.
    assert!(matches!(error, LoadError::Rejected(Rejection::InvalidComponent(ClaimsError::Parse(_)))), "{error:?}");
    assert!(error.to_string().starts_with("cannot parse the component:"), "{error}");

    // Bytes that are not WebAssembly at all: one line saying what they look like, not a byte dump.
    let error = rt.load("text", b"hello, world\n".to_vec(), ActorConfig::default()).await.expect_err("text");
    assert_eq!(error.to_string(), "not a WebAssembly component: it is a text file");
}
