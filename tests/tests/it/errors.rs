//! What callers are told when nobody can answer, or a host refuses.

use anyhow::{Result, bail};
use lattice_core::claims::{self, Policy, SignOptions};
use lattice_core::keys::{KeyKind, PublicKey, SeedKey};
use lattice_core::wire::{ArtifactRef, ErrorCode, WireError};
use lattice_host::lattice::{self, ClientError};
use lattice_host::{EngineConfig, Runtime, RuntimeBuilder};

use crate::{TestLattice, call, kv_counter, name, start_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_verbs_nobody_can_answer_say_so() -> Result<()> {
    let lattice = TestLattice::start("lonely").await?;
    let _host = lattice.host("host-1", &[]).await?;
    let control = lattice.client().await?;

    match call(&control, &name("ghost"), "boo").await {
        Err(ClientError::NoResponders(message)) => {
            assert_eq!(
                message,
                "no host in lattice `lonely` runs actor `ghost`: start it with `lattice start` or `lattice apply`"
            );
        }
        other => bail!("calling an actor nobody runs: expected NoResponders, got {other:?}"),
    }
    match control.inventory(&name("nobody")).await {
        Err(ClientError::NoResponders(message)) => {
            assert!(message.contains("nobody"), "{message}");
            assert!(message.contains("lonely"), "{message}");
        }
        other => {
            bail!("inventory of a host that does not exist: expected NoResponders, got {other:?}")
        }
    }
    Ok(())
}

/// A host that runs only actors signed by `trusted` (none: only signed ones, and nobody's signature counts).
fn strict_runtime(trusted: Vec<PublicKey>) -> Runtime {
    RuntimeBuilder::new()
        .engine(EngineConfig { max_instances: 128, max_memory_bytes: 64 << 20, ..EngineConfig::default() })
        .policy(Policy { trusted_issuers: trusted, ..Policy::default() })
        .build()
        .unwrap_or_else(|e| panic!("building a runtime: {e}"))
}

/// The message of a refused control request.
fn refusal<T: std::fmt::Debug>(result: Result<T, ClientError>) -> Result<WireError> {
    match result {
        Err(ClientError::Remote(error)) => Ok(error),
        other => bail!("expected a refusal from the host, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_by_a_remote_host_name_its_setting_not_a_flag_of_the_caller() -> Result<()> {
    let lattice = TestLattice::start("strict").await?;
    let trusted = SeedKey::generate(KeyKind::Issuer)?;
    let config = lattice.host_config("strict-1", &[]);
    let _host = lattice::start(config, strict_runtime(vec![trusted.public_key()])).await?;
    let control = lattice.client().await?;
    let actor = name("counter");

    let error = refusal(control.start_actor(&name("strict-1"), &kv_counter(&actor)).await)?;
    assert_eq!(error.code, ErrorCode::Rejected);
    assert_eq!(
        error.message,
        "actor is not signed, and host strict-1 refuses unsigned actors: start it with --allow-unsigned or set \
         allow_unsigned = true in its config (development only), or sign the actor"
    );

    // Signed by an issuer the host does not trust.
    let stranger = SeedKey::generate(KeyKind::Issuer)?;
    let subject = SeedKey::generate(KeyKind::Actor)?.public_key();
    let options = SignOptions {
        name: "counter".into(),
        version: "0.1.0".into(),
        interfaces: vec!["wasi:keyvalue".into()],
        issued_at: 1_800_000_000,
        not_before: None,
        expires: None,
    };
    let signed = claims::sign(&std::fs::read(lattice_test_actors::KV_COUNTER)?, &stranger, &subject, options)?;
    control.push("counter-signed", signed.into(), |_| {}).await?;
    let request = start_request(&actor, ArtifactRef::Lattice("counter-signed".into()));
    let error = refusal(control.start_actor(&name("strict-1"), &request).await)?;
    let issuer = stranger.public_key();
    assert_eq!(
        error.message,
        format!(
            "actor is signed by issuer {issuer}, which host strict-1 does not trust: add {issuer} to its trusted \
             issuers (--trusted-issuer {issuer}, or trusted_issuers in its config)"
        )
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_bytes_that_are_not_a_component_fails_in_one_line() -> Result<()> {
    let lattice = TestLattice::start("garbage").await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("notes.txt"), "these are notes, not an actor\n")?;
    std::fs::write(dir.path().join("module.wasm"), b"\0asm\x01\0\0\0")?;
    let mut config = lattice.host_config("host-1", &[]);
    config.artifact_dir = Some(dir.path().to_owned());
    let _host = lattice::start(config, crate::runtime()).await?;
    let control = lattice.client().await?;

    let start = |file: &str| start_request(&name("junk"), ArtifactRef::Path(file.to_owned()));
    let error = refusal(control.start_actor(&name("host-1"), &start("notes.txt")).await)?;
    assert_eq!(error.message, "not a WebAssembly component: it is a text file");
    let error = refusal(control.start_actor(&name("host-1"), &start("module.wasm")).await)?;
    assert!(error.message.starts_with("a core WebAssembly module, not a component ("), "{}", error.message);
    assert!(!error.message.contains('\n'), "{}", error.message);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_fails_for_want_of_a_link_names_the_link() -> Result<()> {
    let lattice = TestLattice::start("unlinked").await?;
    let _host = lattice.host("host-1", &[]).await?;
    let control = lattice.client().await?;
    let actor = name("counter");
    let mut request = kv_counter(&actor);
    request.links.clear();
    control.start_actor(&name("host-1"), &request).await?;

    match call(&control, &actor, "visits").await {
        Err(ClientError::Remote(error)) => {
            assert_eq!(error.code, ErrorCode::InvocationFailed);
            assert!(error.message.starts_with("actor returned an error: open `default`: "), "{}", error.message);
            assert!(
                error.message.contains(
                    "no keyvalue link `default`; grant one with `lattice link put counter keyvalue default --provider \
                     <provider>` or `--link keyvalue:default=<provider>`"
                ),
                "{}",
                error.message
            );
        }
        other => bail!("calling an actor without its link: expected a remote error, got {other:?}"),
    }
    Ok(())
}
