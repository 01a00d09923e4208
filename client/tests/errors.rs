//! The client's errors a person can act on, against a real `nats-server` (no host needed).

use std::time::Duration;

use anyhow::{Context, Result};
use lattice_client::{ClientError, ConnectError, LatticeClient, NatsConfig};
use lattice_core::subject::Name;
use lattice_test_harness::NatsServer;

#[tokio::test]
async fn an_unreachable_server_is_named_with_its_cause_once_and_what_to_do() -> Result<()> {
    // A port where a server just was and no longer is: the connection is refused.
    let url = tokio::task::spawn_blocking(|| NatsServer::start().map(|nats| nats.url())).await??;
    let error = LatticeClient::connect(&NatsConfig::new([url.clone()]), Name::new("default")?)
        .await
        .err()
        .context("connected to a stopped server")?;
    assert!(matches!(&error, ClientError::Connect(ConnectError::Connect { .. })), "{error:?}");
    let text = error.to_string();
    assert!(text.starts_with(&format!("cannot connect to NATS at {url}: ")), "{text}");
    assert!(text.ends_with("start one with `lattice up`)"), "{text}");
    assert_eq!(text.matches("Connection refused").count(), 1, "{text}");
    // Said once: nothing further down the chain repeats it.
    assert!(std::error::Error::source(&error).and_then(std::error::Error::source).is_none(), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn a_server_without_jetstream_is_named_and_nobody_answering_says_what_to_do() -> Result<()> {
    let nats = tokio::task::spawn_blocking(|| NatsServer::builder().jetstream(false).start()).await??;
    let client = LatticeClient::connect(&NatsConfig::new([nats.url()]), Name::new("plain")?).await?;

    let error = client.hosts().await.err().context("hosts() on a server without JetStream")?;
    assert!(matches!(error, ClientError::NoJetStream(_)), "{error:?}");
    assert!(error.to_string().contains("restart nats-server with `-js`"), "{error}");
    let error = client.list_links().await.err().context("list_links() without JetStream")?;
    assert!(matches!(error, ClientError::NoJetStream(_)), "{error:?}");
    let error = client.artifacts().await.err().context("artifacts() without JetStream")?;
    assert!(matches!(error, ClientError::NoJetStream(_)), "{error:?}");

    // Core NATS still works: a call nobody serves and a host that is not there are one sentence each.
    let actor = Name::new("counter")?;
    let error = client.call(&actor, None, "x".into(), Duration::from_secs(2), None).await.err().context("call")?;
    assert_eq!(
        error.to_string(),
        "no host in lattice `plain` runs actor `counter`: start it with `lattice start` or `lattice apply`"
    );
    let error = client.inventory(&Name::new("h9")?).await.err().context("inventory")?;
    assert_eq!(error.to_string(), "host `h9` is not in lattice `plain`: `lattice hosts` lists the hosts that are");
    Ok(())
}

#[tokio::test]
async fn with_jetstream_an_empty_lattice_has_no_hosts_rather_than_an_error() -> Result<()> {
    let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
    let client = LatticeClient::connect(&NatsConfig::new([nats.url()]), Name::new("empty")?).await?;
    client.check_jetstream().await?;
    assert!(client.hosts().await?.is_empty());
    assert!(client.artifacts().await?.is_empty());
    Ok(())
}
