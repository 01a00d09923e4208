//! Guests and remote callers cannot exhaust a host: path artifacts confined to the artifact directory,
//! admission (bounded per-actor queue, `unavailable` at once beyond it), and fairness (a saturated actor leaves
//! the others their share of the instance pool). Each test fails if the attack works.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lattice_core::claims::Policy;
use lattice_core::wire::{ArtifactRef, ErrorCode, StartActor, WireError};
use lattice_host::lattice::{self, ClientError, LatticeClient};
use lattice_host::{EngineConfig, RuntimeBuilder};

use crate::{TestLattice, call, kv_counter, name, start_request, text};

/// A refusal of a hostile path must come at once; reading `/dev/zero` or opening a FIFO would never end.
const REFUSAL_BOUND: Duration = Duration::from_secs(1);

/// Starts `path` as actor `probe` on `host` and returns the error reply, within [`REFUSAL_BOUND`].
async fn refused(client: &LatticeClient, host: &lattice_core::subject::Name, path: &str) -> Result<WireError> {
    let request = start_request(&name("probe"), ArtifactRef::Path(path.to_owned()));
    match tokio::time::timeout(REFUSAL_BOUND, client.start_actor(host, &request)).await {
        Err(_) => bail!("starting from `{path}` was not refused within {REFUSAL_BOUND:?}"),
        Ok(Err(ClientError::Remote(error))) => Ok(error),
        Ok(other) => bail!("starting from `{path}`: expected an error reply, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_from_a_path_is_off_unless_the_host_allows_a_directory() -> Result<()> {
    let lattice = TestLattice::start("paths-off").await?;
    let mut config = lattice.host_config("h1", &[]);
    config.artifact_dir = None;
    let host = lattice::start(config, crate::runtime()).await?;
    let client = lattice.client().await?;
    let error = refused(&client, host.id(), lattice_test_actors::KV_COUNTER).await?;
    assert_eq!(error.code, ErrorCode::Rejected, "{error}");
    assert!(error.message.contains("--artifact-dir"), "the refusal names the option: {error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_are_refused_at_once_and_never_reveal_what_exists_outside() -> Result<()> {
    let lattice = TestLattice::start("paths").await?;
    let dir = tempfile::tempdir()?;
    let artifacts = dir.path().join("artifacts");
    std::fs::create_dir(&artifacts)?;
    std::fs::copy(lattice_test_actors::KV_COUNTER, artifacts.join("kv_counter.wasm"))?;
    // A FIFO inside the directory: opening it for reading would block until a writer comes.
    let status = std::process::Command::new("mkfifo").arg(artifacts.join("pipe.wasm")).status()?;
    assert!(status.success(), "mkfifo failed");
    // A symlink inside the directory that leads outside, to an endless file.
    std::os::unix::fs::symlink("/dev/zero", artifacts.join("zero.wasm"))?;
    let mut config = lattice.host_config("h1", &[]);
    config.artifact_dir = Some(artifacts.clone());
    let host = lattice::start(config, crate::runtime()).await?;
    let client = lattice.client().await?;
    let id = host.id();

    // What the directory holds starts.
    let mut request = kv_counter(&name("counter"));
    request.artifact = ArtifactRef::Path("kv_counter.wasm".into());
    client.start_actor(id, &request).await.context("a component inside the artifact directory")?;

    for path in ["/dev/zero", "zero.wasm", "pipe.wasm", "../../etc/passwd", "/etc/passwd", "missing.wasm"] {
        let error = refused(&client, id, path).await?;
        assert!(matches!(error.code, ErrorCode::NotFound | ErrorCode::InvalidConfig), "{path}: {error}");
    }
    let fifo = refused(&client, id, "pipe.wasm").await?;
    assert!(fifo.message.contains("not a regular file"), "{fifo}");

    // Missing inside and anything outside get the same answer (apart from echoing the path asked for).
    let text_of = |path: &str, error: WireError| (error.code, error.message.replace(path, "<path>"));
    let missing = text_of("missing.wasm", refused(&client, id, "missing.wasm").await?);
    for outside in ["../../etc/passwd", "/etc/passwd", "/dev/zero", "zero.wasm", "/nonexistent/x.wasm"] {
        assert_eq!(text_of(outside, refused(&client, id, outside).await?), missing, "{outside}");
    }
    Ok(())
}

/// Counts replies by outcome: `ok`, `unavailable`, anything else.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    unavailable: usize,
    other: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_at_capacity_gets_unavailable_at_once_instead_of_piling_up() -> Result<()> {
    const CONCURRENCY: u32 = 2;
    // Running, plus the admission queue (`max(8, concurrency / 4)`).
    const ADMITTED: usize = CONCURRENCY as usize + 8;
    const FLOOD: usize = 40;
    const SLEEP: Duration = Duration::from_millis(2000);
    let lattice = TestLattice::start("flood").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let actor = name("sleepy");
    let mut request = start_request(&actor, ArtifactRef::Path(lattice_test_actors::SLEEP.to_owned()));
    request.limits.max_concurrency = Some(CONCURRENCY);
    request.limits.timeout_ms = Some(60_000);
    client.start_actor(host.id(), &request).await?;

    let caller = lattice.client().await?;
    let payload = SLEEP.as_millis().to_string();
    let calls: Vec<_> = (0..FLOOD)
        .map(|_| {
            let (caller, actor, payload) = (caller.clone(), actor.clone(), payload.clone());
            tokio::spawn(async move {
                let sent = Instant::now();
                let result = call(&caller, &actor, &payload).await;
                (result, sent.elapsed())
            })
        })
        .collect();
    let mut tally = Tally::default();
    for task in calls {
        let (result, took) = task.await?;
        match result {
            Ok(reply) if text(&reply)? == "slept" => tally.ok += 1,
            Err(ClientError::Remote(error)) if error.code == ErrorCode::Unavailable => {
                // Refused before any admitted call could have finished: it never waited for a permit.
                assert!(took < SLEEP, "an `unavailable` reply took {took:?}: it was queued, not refused");
                assert!(error.message.contains("sleepy") && error.message.contains("capacity"), "{error}");
                tally.unavailable += 1;
            }
            other => tally.other.push(format!("{other:?}")),
        }
    }
    assert!(tally.other.is_empty(), "{tally:?}");
    assert_eq!(tally.ok, ADMITTED, "{tally:?}");
    assert_eq!(tally.unavailable, FLOOD - ADMITTED, "{tally:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_actor_cannot_starve_another_and_caps_beyond_the_pool_are_refused() -> Result<()> {
    const POOL: u32 = 8;
    let lattice = TestLattice::start("fair").await?;
    // A small instance pool, so one actor could take all of it.
    let runtime = RuntimeBuilder::new()
        .engine(EngineConfig { max_instances: POOL, max_memory_bytes: 64 << 20, ..EngineConfig::default() })
        .policy(Policy { allow_unsigned: true, ..Policy::default() })
        .build()?;
    let host = lattice::start(lattice.host_config("h1", &[]), runtime).await?;
    let client = lattice.client().await?;
    let id = host.id();

    // Caps beyond the pool are refused, naming both numbers.
    let mut too_big = start_request(&name("greedy"), ArtifactRef::Path(lattice_test_actors::SLEEP.to_owned()));
    too_big.limits.max_concurrency = Some(POOL + 1);
    match client.start_actor(id, &too_big).await {
        Err(ClientError::Remote(error)) => {
            assert_eq!(error.code, ErrorCode::InvalidConfig, "{error}");
            assert!(error.message.contains("max concurrency 9") && error.message.contains("pool of 8"), "{error}");
        }
        other => bail!("a start with max concurrency above the pool: expected a refusal, got {other:?}"),
    }

    // A and B both ask for the whole pool: each gets a share, so A at its cap leaves B room.
    let a = name("a");
    let b = name("b");
    let mut start_a = start_request(&a, ArtifactRef::Path(lattice_test_actors::SLEEP.to_owned()));
    start_a.limits =
        lattice_core::wire::LimitsSpec { max_concurrency: Some(POOL), timeout_ms: Some(60_000), ..Default::default() };
    let mut start_b: StartActor = kv_counter(&b);
    start_b.limits.max_concurrency = Some(POOL);
    client.start_actor(id, &start_a).await?;
    client.start_actor(id, &start_b).await?;
    match client.scale_actor(id, &b, POOL + 1).await {
        Err(ClientError::Remote(error)) => {
            assert!(error.message.contains("max concurrency 9") && error.message.contains("pool of 8"), "{error}");
        }
        other => bail!("a scale above the pool: expected a refusal, got {other:?}"),
    }

    // Saturate A: more sleeping calls than it may run or queue. Once one is refused, A holds every instance
    // its share allows and its queue is full.
    let caller = lattice.client().await?;
    let (refusals, mut refused_rx) = tokio::sync::mpsc::unbounded_channel();
    let flood: Vec<_> = (0..3 * POOL)
        .map(|_| {
            let (caller, a, refusals) = (caller.clone(), a.clone(), refusals.clone());
            tokio::spawn(async move {
                if let Err(ClientError::Remote(error)) = call(&caller, &a, "20000").await
                    && error.code == ErrorCode::Unavailable
                {
                    let _ = refusals.send(());
                }
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), refused_rx.recv())
        .await
        .context("actor a never refused a call: it did not reach its cap")?;

    // B keeps being served, each call within a generous bound.
    for expected in 1..=10 {
        let started = Instant::now();
        let reply = tokio::time::timeout(Duration::from_secs(2), call(&client, &b, "hits"))
            .await
            .with_context(|| format!("call {expected} to b not answered within 2 s while a is saturated"))??;
        assert_eq!(text(&reply)?, expected.to_string(), "call {expected} took {:?}", started.elapsed());
    }
    for task in flood {
        task.abort();
    }
    Ok(())
}

/// Control requests a host handles at once (`MAX_CONTROL_IN_FLIGHT` in the host's control server).
const CONTROL_IN_FLIGHT: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_slow_control_requests_gets_unavailable_beyond_the_in_flight_limit() -> Result<()> {
    const FLOOD: usize = 100;
    let lattice = TestLattice::start("control-flood").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    // A provider that listens and never answers: a start linked to it waits for its ping to time out (2 s), so
    // every start of the flood is still in flight when the last one arrives.
    let _silent = client.nats().subscribe(client.subjects().provider(&name("silent"), "keyvalue")).await?;
    client.nats().flush().await?;

    let starts: Vec<_> = (0..FLOOD)
        .map(|i| {
            let (client, host) = (client.clone(), host.id().clone());
            tokio::spawn(async move {
                let mut request = kv_counter(&name(&format!("flood-{i}")));
                request.links = vec!["keyvalue:default=silent".to_owned()];
                client.start_actor(&host, &request).await
            })
        })
        .collect();
    let (mut busy, mut checked) = (0, 0);
    for start in starts {
        match start.await? {
            Err(ClientError::Remote(e)) if e.code == ErrorCode::Unavailable && e.message.contains("is busy") => {
                busy += 1;
            }
            Err(ClientError::Remote(e)) if e.code == ErrorCode::InvalidConfig && e.message.contains("silent") => {
                checked += 1;
            }
            other => bail!("a start of the flood: expected `busy` or the missing provider, got {other:?}"),
        }
    }
    eprintln!("{checked} starts handled, {busy} refused as busy");
    assert!(checked <= CONTROL_IN_FLIGHT, "{checked} control requests ran at once");
    assert!(busy >= FLOOD - CONTROL_IN_FLIGHT, "only {busy} of {FLOOD} refused");
    // The host is still there for everyone else once the flood has passed.
    assert_eq!(client.ping(crate::GATHER).await?.len(), 1);
    host.stop().await;
    Ok(())
}
