//! At-least-once delivery over JetStream (`delivery=at-least-once` on a messaging link), with the
//! `workflow-probe` test actor: redelivery after failures, dead letters and their replay, backpressure from a
//! slow actor, a graceful stop in the middle of a stream, and the link settings hosts refuse.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use bytes::Bytes;
use lattice_core::subject::Name;
use lattice_core::wire::{ArtifactRef, EventData, LimitsSpec, StartActor};
use lattice_host::lattice::{CallOptions, LatticeClient};
use lattice_test_harness::wait_for;

use crate::{TestLattice, call, expect_event, name, text};

/// Starts the probe on `host` with `links` (plus the key-value link `default` to `kv`).
async fn start_probe(
    client: &LatticeClient,
    host: &Name,
    actor: &Name,
    kv: &str,
    links: &[&str],
    concurrency: u32,
) -> Result<()> {
    let mut all = vec![format!("keyvalue:default={kv}")];
    all.extend(links.iter().map(|l| (*l).to_owned()));
    let request = StartActor {
        name: actor.clone(),
        artifact: ArtifactRef::Path(lattice_test_actors::WORKFLOW_PROBE.to_owned()),
        limits: LimitsSpec { max_concurrency: Some(concurrency), ..LimitsSpec::default() },
        links: all,
        owner: None,
        digest: None,
    };
    client.start_actor(host, &request).await?;
    Ok(())
}

/// The probe's answer to a query (`count k`, `attempts k`).
async fn query(client: &LatticeClient, actor: &Name, question: &str) -> Result<u64> {
    Ok(text(&call(client, actor, question).await?)?.trim().parse()?)
}

/// Waits until the probe's `count <key>` reaches `n` (returns the last count seen when it does).
async fn until_count(client: &LatticeClient, actor: &Name, key: &str, n: u64, deadline: Duration) -> Result<()> {
    let question = format!("count {key}");
    wait_for(&format!("{question} = {n}"), deadline, || async {
        (query(client, actor, &question).await.ok()? >= n).then_some(())
    })
    .await?;
    let count = query(client, actor, &question).await?;
    ensure!(count == n, "{question}: {count}, expected exactly {n}");
    Ok(())
}

async fn publish(client: &LatticeClient, subject: &str, payload: &str, id: &str) -> Result<()> {
    client.publish(subject, Bytes::copy_from_slice(payload.as_bytes()), &[], Some(id)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_fails_three_times_is_applied_once_on_its_fourth_delivery() -> Result<()> {
    let lattice = TestLattice::start("delivery-transient").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let probe = name("probe");
    let link = "messaging:jobs=nats,subscribe=jobs.transient,delivery=at-least-once,max_deliver=5";
    start_probe(&client, host.id(), &probe, "inmemory", &[link], 4).await?;

    publish(&client, "jobs.transient", "k 3", "job-1").await?;
    until_count(&client, &probe, "k", 1, Duration::from_secs(20)).await?;
    // Attempts 1 to 3 failed and were redelivered; the 4th applied it; the count shows no double effect.
    ensure!(query(&client, &probe, "attempts k").await? == 4, "delivery count in the metadata");
    // Publishing the same id again is a duplicate the stream drops: still counted once.
    publish(&client, "jobs.transient", "k 0", "job-1").await?;
    publish(&client, "jobs.transient", "k 0", "job-2").await?;
    until_count(&client, &probe, "k", 2, Duration::from_secs(10)).await?;
    ensure!(client.dead_letters(None).await?.is_empty(), "nothing was dead-lettered");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_failing_every_delivery_is_dead_lettered_with_an_event_and_replays_after_a_fix() -> Result<()> {
    let lattice = TestLattice::start("delivery-dead").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let mut events = Box::pin(client.events().await?);
    let probe = name("probe");
    let link = "messaging:jobs=nats,subscribe=jobs.poison,delivery=at-least-once,max_deliver=3";
    start_probe(&client, host.id(), &probe, "inmemory", &[link], 2).await?;

    client
        .publish("jobs.poison", Bytes::from_static(b"p always"), &[("tenant".into(), "t1".into())], Some("poison-1"))
        .await?;
    let dead = expect_event(&mut events, "message.dead", Duration::from_secs(20), |e| {
        matches!(e.data, EventData::MessageDead { .. })
    })
    .await?;
    let EventData::MessageDead { actor, subject, id, attempts, reason, seq, .. } = dead.data else {
        unreachable!("matched above")
    };
    ensure!(actor == probe && subject == "jobs.poison" && id == "poison-1" && attempts == 3, "event: {id} {attempts}");
    ensure!(reason.contains("attempt 3"), "the reason is the last failure: {reason}");

    let letters = client.dead_letters(Some(&probe)).await?;
    ensure!(letters.len() == 1, "one dead letter: {letters:?}");
    let letter = &letters[0];
    ensure!(letter.seq == seq && letter.payload == "p always" && letter.attempts == 3, "{letter:?}");
    ensure!(letter.metadata.contains(&("tenant".to_owned(), "t1".to_owned())), "metadata kept: {letter:?}");
    ensure!(query(&client, &probe, "count p").await? == 0, "never applied");
    // Nothing is delivered any more once dead-lettered.
    ensure!(query(&client, &probe, "attempts p").await? == 3, "no delivery after the last");

    // The fix, then the replay: handled once, with the original id, and gone from the dead letters.
    text(&call(&client, &probe, "fix").await?)?;
    let replayed = client.replay_dead_letters(&probe, Some(seq)).await?;
    ensure!(replayed.len() == 1, "{replayed:?}");
    until_count(&client, &probe, "p", 1, Duration::from_secs(20)).await?;
    ensure!(client.dead_letters(Some(&probe)).await?.is_empty(), "replayed letters leave the stream");
    ensure!(client.replay_dead_letters(&probe, Some(seq)).await.is_err(), "a replayed letter is gone");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_actor_fed_two_thousand_messages_handles_every_one() -> Result<()> {
    const MESSAGES: u64 = 2_000;
    let lattice = TestLattice::start("delivery-slow").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let probe = name("probe");
    let link = "messaging:jobs=nats,subscribe=jobs.slow,delivery=at-least-once";
    // 50 ms per message, 2 at a time: the stream fills far faster than the actor drains it.
    start_probe(&client, host.id(), &probe, "inmemory", &[link], 2).await?;
    for n in 0..MESSAGES {
        publish(&client, "jobs.slow", &format!("s{} 0 50", n % 10), &format!("slow-{n}")).await?;
    }
    let total = || async {
        let mut sum = 0;
        for k in 0..10 {
            sum += query(&client, &probe, &format!("count s{k}")).await.ok()?;
        }
        Some(sum)
    };
    wait_for("every message to be handled", Duration::from_secs(150), || async {
        (total().await? >= MESSAGES).then_some(())
    })
    .await?;
    ensure!(total().await == Some(MESSAGES), "each message counted once");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_during_a_stream_loses_nothing_and_applies_nothing_twice() -> Result<()> {
    const MESSAGES: u64 = 600;
    let lattice = TestLattice::start("delivery-stop").await?;
    let a = lattice.host("host-a", &[]).await?;
    let b = lattice.host("host-b", &[]).await?;
    let client = lattice.client().await?;
    // The counts live in one store both hosts reach (served by host B).
    client.start_provider(b.id(), "shared", "inmemory", BTreeMap::new()).await?;
    let probe = name("probe");
    let link = "messaging:jobs=nats,subscribe=jobs.stop,delivery=at-least-once";
    start_probe(&client, a.id(), &probe, "shared", &[link], 8).await?;
    start_probe(&client, b.id(), &probe, "shared", &[link], 8).await?;
    for n in 0..MESSAGES {
        publish(&client, "jobs.stop", "g 0 20", &format!("stop-{n}")).await?;
    }
    // Stop host A while both work through the stream.
    wait_for("50 messages handled", Duration::from_secs(20), || async {
        (query(&client, &probe, "count g").await.ok()? >= 50).then_some(())
    })
    .await?;
    a.stop().await;
    until_count(&client, &probe, "g", MESSAGES, Duration::from_secs(60)).await?;
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_delivery_settings_are_refused_with_the_reason() -> Result<()> {
    let lattice = TestLattice::start("delivery-refused").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    for (link, expected) in [
        ("messaging:jobs=nats,subscribe=jobs.x,max_deliver=3", "needs `delivery=at-least-once`"),
        ("messaging:jobs=nats,subscribe=jobs.x,delivery=twice", "expected at-most-once or at-least-once"),
        ("messaging:jobs=nats,subscribe=jobs.x,delivery=at-least-once,max_deliver=0", "from 1 to 1000"),
        ("messaging:jobs=nats,subscribe=jobs.x,delivery=at-least-once,ack_wait=10ms", "1s to 12h"),
        ("messaging:jobs=nats,subscribe=jobs.x,delivery=at-least-once,stream=no.dots", "stream name"),
        ("messaging:jobs=nats,subscribe=jobs.x,delivery=at-least-once,stream=missing", "`missing`"),
        ("messaging:jobs=inmemory,subscribe=jobs.x,delivery=at-least-once", "not supported"),
    ] {
        let error = start_probe(&client, host.id(), &name("refused"), "inmemory", &[link], 1)
            .await
            .expect_err(link)
            .to_string();
        ensure!(error.contains(expected), "{link}: {error}");
    }
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_links_share_the_stream_that_keeps_their_subjects_or_are_told_which_to_name() -> Result<()> {
    let lattice = TestLattice::start("delivery-overlap").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let (wide, narrow) = (name("wide"), name("narrow"));
    let alo = |subjects: &str| format!("messaging:jobs=nats,subscribe={subjects},delivery=at-least-once");
    // Each counts in its own bucket.
    start_probe(&client, host.id(), &wide, "inmemory,bucket=wide", &[&alo("ov.*")], 2).await?;
    // `ov.new` is kept by the stream made for `ov.*`: the second actor reads it too, each gets every message.
    start_probe(&client, host.id(), &narrow, "inmemory,bucket=narrow", &[&alo("ov.new")], 2).await?;
    publish(&client, "ov.new", "o 0", "ov-1").await?;
    publish(&client, "ov.old", "o 0", "ov-2").await?;
    until_count(&client, &wide, "o", 2, Duration::from_secs(20)).await?;
    until_count(&client, &narrow, "o", 1, Duration::from_secs(20)).await?;
    // `ov.>` would need a stream overlapping that one: refused, with what to do.
    let error = start_probe(&client, host.id(), &name("deeper"), "inmemory", &[&alo("ov.>")], 1)
        .await
        .expect_err("overlap")
        .to_string();
    ensure!(error.contains("stream=NAME"), "{error}");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_sends_return_once_stored_report_failures_and_repeat_as_duplicates() -> Result<()> {
    let lattice = TestLattice::start("delivery-sends").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let sender = name("sender");
    let request = StartActor {
        name: sender.clone(),
        artifact: ArtifactRef::Path(lattice_test_actors::MSG_PROBE.to_owned()),
        limits: LimitsSpec::default(),
        links: vec!["messaging:bus=nats,delivery=at-least-once".to_owned()],
        owner: None,
        digest: None,
    };
    client.start_actor(host.id(), &request).await?;
    let send = |id: &'static str| {
        let client = client.clone();
        let sender = sender.clone();
        async move {
            let options = CallOptions { message_id: Some(id), ..CallOptions::new(crate::CALL_TIMEOUT) };
            let (reply, _) = client.call_with(&sender, Bytes::from_static(b"send sent.here"), &options).await?;
            text(&reply)
        }
    };
    // A durable send is checked like any other: the dead letters (a reserved subject) are out of reach.
    let (forged, _) = client
        .call_with(
            &sender,
            Bytes::from_static(b"send lattice.delivery-sends.dlq.sender"),
            &CallOptions::new(crate::CALL_TIMEOUT),
        )
        .await?;
    let forged = text(&forged)?;
    ensure!(forged.starts_with("permission-denied"), "{forged}");
    let reserved = StartActor {
        name: name("reader"),
        links: vec!["messaging:bus=nats,subscribe=lattice.>,delivery=at-least-once".to_owned()],
        ..request.clone()
    };
    let refused = client.start_actor(host.id(), &reserved).await.expect_err("reserved subscription").to_string();
    ensure!(refused.contains("reserved namespace"), "{refused}");
    // No stream keeps the subject yet: the actor sees the failure as an error value.
    let refused = send("call-1").await?;
    ensure!(refused.contains("no stream captures subject `sent.here`"), "{refused}");

    // Once an at-least-once subscriber made the stream, the send returns after the stream stored it.
    start_probe(
        &client,
        host.id(),
        &name("keeper"),
        "inmemory",
        &["messaging:jobs=nats,subscribe=sent.here,delivery=at-least-once,max_deliver=1"],
        1,
    )
    .await?;
    let js = async_nats::jetstream::new(client.nats().clone());
    let stream = js.stream_by_subject("sent.here").await?;
    let stored = || async { anyhow::Ok(js.get_stream(&stream).await?.info().await?.state.messages) };
    ensure!(send("call-1").await? == "ok", "stored");
    ensure!(stored().await? == 1, "one message");
    // Handling the same call (same id) again sends a message with the same derived id: a duplicate.
    ensure!(send("call-1").await? == "ok", "duplicate accepted");
    ensure!(stored().await? == 1, "the duplicate is not stored");
    ensure!(send("call-2").await? == "ok", "another call");
    ensure!(stored().await? == 2, "a new message");
    host.stop().await;
    Ok(())
}
