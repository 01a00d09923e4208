//! Remote providers: an instance started on one host serves actors on others over the lattice; on its own
//! host it is called in-process.

use std::collections::BTreeMap;

use anyhow::Result;
use lattice_core::wire::ErrorCode;
use lattice_host::lattice::ClientError;

use crate::{TestLattice, call, kv_counter, name, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_on_host_b_serves_an_actor_on_host_a_and_in_process_on_b() -> Result<()> {
    let lattice = TestLattice::start("remote-providers").await?;
    let a = lattice.host("host-a", &[]).await?;
    let b = lattice.host("host-b", &[]).await?;
    let client = lattice.client().await?;
    client.start_provider(b.id(), "shared", "inmemory", BTreeMap::new()).await?;

    let on_a = name("counter-a");
    let on_b = name("counter-b");
    for (host, actor) in [(a.id(), &on_a), (b.id(), &on_b)] {
        let mut request = kv_counter(actor);
        request.links = vec!["keyvalue:default=shared,bucket=totals".to_owned()];
        client.start_actor(host, &request).await?;
    }
    // Both actors see one store: the one on A through the lattice, the one on B in-process.
    assert_eq!(text(&call(&client, &on_a, "n").await?)?, "1");
    assert_eq!(text(&call(&client, &on_b, "n").await?)?, "2");
    assert_eq!(text(&call(&client, &on_a, "n").await?)?, "3");
    let inventory_a = client.inventory(a.id()).await?;
    assert!(!inventory_a.providers.contains(&"keyvalue:shared".to_owned()), "A has no local instance");

    // With the serving host gone, A's calls fail promptly with an error naming the remote provider.
    b.stop().await;
    let error = call(&client, &on_a, "n").await.expect_err("provider host stopped");
    match error {
        ClientError::Remote(e) => {
            assert_eq!(e.code, ErrorCode::InvocationFailed);
            assert!(e.message.contains("remote provider"), "{}", e.message);
        }
        other => panic!("expected a remote error, got {other}"),
    }
    a.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_to_a_provider_nobody_serves_fails_the_start() -> Result<()> {
    let lattice = TestLattice::start("remote-missing").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let actor = name("counter");
    let mut request = kv_counter(&actor);
    request.links = vec!["keyvalue:default=ghost".to_owned()];
    let error = client.start_actor(host.id(), &request).await.expect_err("nobody serves ghost");
    assert_eq!(error.code(), Some(ErrorCode::InvalidConfig));
    assert!(error.to_string().contains("no keyvalue provider named `ghost`"), "{error}");
    host.stop().await;
    Ok(())
}
