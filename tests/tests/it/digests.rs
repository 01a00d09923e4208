//! Artifacts by digest (issue 22, item 5): an anonymous client replaced the object behind an artifact name with
//! another component signed by the same trusted issuer, and the operator's signed `start` and the reconciler
//! ran it under the victim's name and links. Starts now name the sha256 they expect; a host runs no other
//! bytes, whatever the artifact store holds. Each test fails if the impostor ever runs.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use lattice_core::claims::{self, Policy, SignOptions};
use lattice_core::keys::{KeyKind, SeedKey};
use lattice_core::subject::Name;
use lattice_core::wire::{AppActor, AppSpec, ArtifactRef, ErrorCode, EventData, LimitsSpec, StartActor};
use lattice_host::lattice::{self, ClientError, HostConfig, LatticeClient, RunningHost};
use lattice_host::{Runtime, RuntimeBuilder};
use lattice_test_harness::wait_for;

use crate::{CONTROL_TIMEOUT, TestLattice, call, expect_event, name, start_request, text};

const SETTLE: Duration = Duration::from_secs(30);

fn operator() -> SeedKey {
    SeedKey::from_seed_bytes(KeyKind::Operator, &[41; 32])
}

fn issuer() -> SeedKey {
    SeedKey::from_seed_bytes(KeyKind::Issuer, &[42; 32])
}

/// `path`'s component signed by the one issuer the hosts trust.
fn signed(path: &str, actor: &str) -> Result<Vec<u8>> {
    let subject = SeedKey::generate(KeyKind::Actor)?.public_key();
    let options = SignOptions {
        name: actor.into(),
        version: "0.1.0".into(),
        interfaces: vec!["wasi:keyvalue".into(), "wasi:messaging".into()],
        issued_at: 1_800_000_000,
        not_before: None,
        expires: None,
    };
    Ok(claims::sign(&std::fs::read(path)?, &issuer(), &subject, options)?)
}

fn strict_runtime() -> Runtime {
    RuntimeBuilder::new()
        .policy(Policy { trusted_issuers: vec![issuer().public_key()], ..Policy::default() })
        .build()
        .unwrap_or_else(|e| panic!("building a runtime: {e}"))
}

/// A host that trusts the operator (with a credential it issued) and the issuer, and signs its placements with the
/// operator's key.
async fn guarded_host(lattice: &TestLattice, id: &str) -> Result<RunningHost> {
    let mut config: HostConfig = crate::credentialed(lattice.host_config(id, &[]), &operator());
    config.operator_key = Some(operator());
    lattice::start(config, strict_runtime()).await.with_context(|| format!("starting host {id}"))
}

async fn clients(lattice: &TestLattice) -> Result<(LatticeClient, LatticeClient)> {
    let anonymous = lattice.client().await?;
    let operator = LatticeClient::connect(&lattice.nats_config(), lattice.name.clone())
        .await?
        .with_timeout(CONTROL_TIMEOUT)
        .with_operator_key(operator());
    Ok((anonymous, operator))
}

/// The digests of what every host runs of `actor`.
async fn running_digests(client: &LatticeClient, hosts: &[&RunningHost], actor: &Name) -> Result<Vec<String>> {
    let mut digests = Vec::new();
    for host in hosts {
        let inventory = client.inventory(host.id()).await?;
        digests.extend(inventory.actors.into_iter().filter(|a| &a.name == actor).map(|a| a.digest));
    }
    Ok(digests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_artifact_is_refused_by_digest_and_the_genuine_actor_keeps_running() -> Result<()> {
    let lattice = TestLattice::start("poison").await?;
    let host = guarded_host(&lattice, "h1").await?;
    let (anonymous, operator) = clients(&lattice).await?;
    let mut events = anonymous.events().await?;
    let actor = name("victim");
    let genuine = operator.push("victim", signed(lattice_test_actors::KV_COUNTER, "victim")?.into(), |_| {}).await?;
    let start = StartActor {
        digest: Some(genuine.digest.clone()),
        ..start_request(&actor, ArtifactRef::Lattice("victim".into()))
    };
    operator.start_actor(host.id(), &start).await?;
    assert_eq!(text(&call(&anonymous, &actor, "k").await?)?, "1");

    // The attack: anyone who can write the artifact store puts another component, signed by the same trusted
    // issuer and with a correct digest of its own, under the victim's name.
    let impostor = anonymous.push("victim", signed(lattice_test_actors::KV_PROBE, "victim")?.into(), |_| {}).await?;
    assert_ne!(impostor.digest, genuine.digest);

    // The operator's signed start (a restart, a second replica) names the genuine digest: refused.
    let error = match operator.start_actor(host.id(), &start).await {
        Err(ClientError::Remote(error)) => error,
        other => bail!("starting the replaced artifact: expected a refusal, got {other:?}"),
    };
    assert_eq!(error.code, ErrorCode::DigestMismatch, "{error}");
    assert!(error.message.contains(&genuine.digest) && error.message.contains(&impostor.digest), "{error}");
    let failed = expect_event(
        &mut events,
        "actor.failed",
        SETTLE,
        |e| matches!(&e.data, EventData::ActorFailed { name, .. } if name == &actor),
    )
    .await?;
    let EventData::ActorFailed { error: event_error, .. } = failed.data else { bail!("not actor.failed") };
    assert_eq!(event_error.code, ErrorCode::DigestMismatch, "{event_error}");
    assert!(event_error.message.contains(&impostor.digest), "{event_error}");

    // A start that names no digest (an old client) is refused by a host that trusts operators.
    let unpinned = start_request(&actor, ArtifactRef::Lattice("victim".into()));
    match operator.start_actor(host.id(), &unpinned).await {
        Err(ClientError::Remote(error)) => {
            assert_eq!(error.code, ErrorCode::BadRequest, "{error}");
            assert!(error.message.contains("names no digest"), "{error}");
        }
        other => bail!("starting by name alone: expected a refusal, got {other:?}"),
    }

    // The genuine actor keeps running and serving; the impostor never ran.
    assert_eq!(running_digests(&anonymous, &[&host], &actor).await?, [genuine.digest.as_str()]);
    assert_eq!(text(&call(&anonymous, &actor, "k").await?)?, "2");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_never_places_a_replaced_artifact() -> Result<()> {
    let lattice = TestLattice::start("poison-app").await?;
    let h1 = guarded_host(&lattice, "h1").await?;
    let h2 = guarded_host(&lattice, "h2").await?;
    let (anonymous, operator) = clients(&lattice).await?;
    let actor = name("victim");
    let genuine = operator.push("victim", signed(lattice_test_actors::KV_COUNTER, "victim")?.into(), |_| {}).await?;
    let app = |replicas: u32| AppSpec {
        name: name("shop"),
        version: replicas.to_string(),
        env: None,
        actors: vec![AppActor {
            name: actor.clone(),
            artifact: genuine.name.clone(),
            digest: genuine.digest.clone(),
            replicas,
            spread: None,
            constraints: Default::default(),
            limits: LimitsSpec::default(),
            links: vec!["keyvalue:default=inmemory".into()],
            routes: Vec::new(),
        }],
        providers: Vec::new(),
    };
    operator.apply_app(app(1)).await?;
    wait_for("one replica placed", SETTLE, || async {
        operator.app_status(&name("shop")).await.ok()?.filter(|s| s.reconciled)
    })
    .await?;

    let impostor = anonymous.push("victim", signed(lattice_test_actors::KV_PROBE, "victim")?.into(), |_| {}).await?;
    // Scaling out makes the leader place a second replica from the (replaced) store object: every host refuses
    // it, and the status says why.
    operator.apply_app(app(2)).await?;
    let status = wait_for("the refused placement in the app's status", SETTLE, || async {
        let status = operator.app_status(&name("shop")).await.ok()??;
        let error = status.actors.first()?.error.clone()?;
        error.contains(&impostor.digest).then_some(status)
    })
    .await?;
    assert!(!status.reconciled, "{status:?}");
    let digests = running_digests(&anonymous, &[&h1, &h2], &actor).await?;
    assert_eq!(digests, [genuine.digest.as_str()], "only the genuine replica runs");
    assert_eq!(text(&call(&anonymous, &actor, "k").await?)?, "1");
    h1.stop().await;
    h2.stop().await;
    Ok(())
}
