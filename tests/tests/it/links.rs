//! Links as lattice state: a change reaches running actors on their next invocation, with no restart.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use lattice_core::link::{Interface, LinkSpec};
use lattice_core::wire::ErrorCode;
use lattice_host::lattice::ClientError;
use lattice_test_harness::wait_for;

use crate::{TestLattice, call, kv_counter, name, text};

fn spec(s: &str) -> LinkSpec {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_put_and_del_reach_a_running_actor_without_restart() -> Result<()> {
    let lattice = TestLattice::start("links").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let actor = name("kv-counter");
    client.put_link(&actor, &spec("keyvalue:default=inmemory,bucket=first")).await?;
    client.start_actor(host.id(), &kv_counter(&actor)).await?;
    assert_eq!(text(&call(&client, &actor, "k").await?)?, "1");
    assert_eq!(text(&call(&client, &actor, "k").await?)?, "2");

    // A second in-memory instance started at run time, then the link moved to it: a fresh store.
    let started = client.start_provider(host.id(), "scratch", "inmemory", BTreeMap::new()).await?;
    assert_eq!(started.name, "scratch");
    client.put_link(&actor, &spec("keyvalue:default=scratch")).await?;
    wait_for("the new link to apply", Duration::from_secs(10), || async {
        call(&client, &actor, "k").await.ok().and_then(|r| text(&r).ok()).filter(|t| t == "1")
    })
    .await?;
    let inventory = client.inventory(host.id()).await?;
    assert_eq!(inventory.actors[0].links, vec!["keyvalue:default=scratch".to_owned()]);
    assert!(inventory.providers.contains(&"keyvalue:scratch".to_owned()), "{:?}", inventory.providers);

    let listed = client.list_links().await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].link, "keyvalue:default=scratch");

    // Deleting the link leaves the actor with no store: access denied, as an error reply.
    assert!(client.delete_link(&actor, Interface::KeyValue, "default").await?);
    let denied = wait_for("the link deletion to apply", Duration::from_secs(10), || async {
        match call(&client, &actor, "k").await {
            Err(ClientError::Remote(e)) => Some(e),
            _ => None,
        }
    })
    .await?;
    assert_eq!(denied.code, ErrorCode::InvocationFailed);
    assert!(denied.message.contains("AccessDenied"), "{}", denied.message);
    assert!(!client.delete_link(&actor, Interface::KeyValue, "default").await?);
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_provider_kind_and_link_to_missing_provider_are_clear_errors() -> Result<()> {
    let lattice = TestLattice::start("links-errors").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let error = client.start_provider(host.id(), "x", "etcd", BTreeMap::new()).await.expect_err("no etcd kind");
    assert_eq!(error.code(), Some(ErrorCode::InvalidConfig));
    assert!(error.to_string().starts_with("unknown provider kind `etcd`"), "{error}");

    // A stored link naming a provider the host lacks fails the start with the reason.
    let actor = name("kv-counter");
    client.put_link(&actor, &spec("keyvalue:default=nowhere")).await?;
    wait_for("the host to see the link", Duration::from_secs(10), || async {
        let mut request = kv_counter(&actor);
        request.links.clear();
        match client.start_actor(host.id(), &request).await {
            Err(ClientError::Remote(e)) if e.message.contains("nowhere") => Some(e),
            _ => None,
        }
    })
    .await
    .map(|e| assert_eq!(e.code, ErrorCode::InvalidConfig))?;
    host.stop().await;
    Ok(())
}

/// Regression: a link change that reached the host while `start` was still loading (fetch, verify, compile)
/// found no actor to re-link and was lost; the actor ran on the links it was loaded with until the next change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_change_made_while_the_actor_is_starting_is_applied() -> Result<()> {
    let lattice = TestLattice::start("links-race").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let actor = name("kv-counter");
    client.put_link(&actor, &spec("keyvalue:default=inmemory,bucket=before")).await?;

    // The start goes out first and the host reads the links before it compiles the component (tens of
    // milliseconds, the cache being cold); the change lands in the bucket while it compiles.
    let starting = {
        let client = client.clone();
        let mut request = kv_counter(&actor);
        request.links.clear();
        let host = host.id().clone();
        tokio::spawn(async move { client.start_actor(&host, &request).await })
    };
    client.put_link(&actor, &spec("keyvalue:default=inmemory,bucket=after")).await?;
    starting.await??;

    // Calls count in the bucket of the newest link: `after`, whose counter starts at 1; `before` gets nothing.
    wait_for("the link change to apply", Duration::from_secs(10), || async {
        let inventory = client.inventory(host.id()).await.ok()?;
        (inventory.actors.first()?.links == ["keyvalue:default=inmemory,bucket=after"]).then_some(())
    })
    .await?;
    assert_eq!(text(&call(&client, &actor, "k").await?)?, "1");
    host.stop().await;
    Ok(())
}
