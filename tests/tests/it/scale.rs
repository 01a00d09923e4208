//! One actor on two hosts: the queue group spreads calls over both.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Result, anyhow};
use futures::StreamExt;

use crate::{TestLattice, call, kv_counter, name, text};

const CALLS: usize = 1_000;
const CONCURRENCY: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_an_actor_on_two_hosts_are_all_answered_by_both() -> Result<()> {
    let lattice = TestLattice::start("scaled").await?;
    let one = lattice.host("host-1", &[]).await?;
    let two = lattice.host("host-2", &[]).await?;
    let control = lattice.client().await?;
    let actor = name("kv-counter");
    for host in [one.id(), two.id()] {
        control.start_actor(host, &kv_counter(&actor)).await?;
    }

    let caller = lattice.client().await?;
    let started = Instant::now();
    let replies: Vec<Result<Option<String>>> = futures::stream::iter(0..CALLS)
        .map(|i| {
            let caller = &caller;
            let actor = &actor;
            async move {
                let reply = call(caller, actor, &format!("key-{}", i % 10)).await?;
                // Every reply is a counter value.
                text(&reply)?.parse::<u64>()?;
                Ok(reply.host)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    for reply in replies {
        let host = reply?.ok_or_else(|| anyhow!("a reply without a Lattice-Host header"))?;
        *served.entry(host).or_default() += 1;
    }
    eprintln!("{CALLS} calls, {CONCURRENCY} at a time, in {elapsed:?}: served {served:?}");
    assert_eq!(served.values().sum::<usize>(), CALLS);
    assert_eq!(served.keys().map(String::as_str).collect::<Vec<_>>(), ["host-1", "host-2"], "{served:?}");
    Ok(())
}
