//! The standalone provider process serves an actor on a host of the lattice.

use std::process::{Child, Command};
use std::time::Duration;

use lattice_core::claims::Policy;
use lattice_core::subject::Name;
use lattice_core::wire::{ArtifactRef, LimitsSpec, StartActor};
use lattice_host::RuntimeBuilder;
use lattice_host::lattice::{self, HostConfig, LatticeClient, NatsConfig};
use lattice_test_harness::{NatsServer, wait_for};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_provider_process_serves_an_actor_on_a_host() -> anyhow::Result<()> {
    let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
    let _provider = Kill(
        Command::new(env!("CARGO_BIN_EXE_provider-standalone"))
            .env("LATTICE_NATS", nats.url())
            .env("LATTICE_NAME", "standalone-test")
            .env("PROVIDER_NAME", "maps")
            .spawn()?,
    );
    let lattice_name = Name::new("standalone-test")?;
    let runtime = RuntimeBuilder::new().policy(Policy { allow_unsigned: true, ..Policy::default() }).build()?;
    let mut config = HostConfig::new(NatsConfig::new([nats.url()]), lattice_name.clone());
    config.artifact_dir = std::path::Path::new(lattice_test_actors::KV_COUNTER).parent().map(ToOwned::to_owned);
    let host = lattice::start(config, runtime).await?;
    let client = LatticeClient::connect(&NatsConfig::new([nats.url()]), lattice_name).await?;
    let actor = Name::new("kv-counter")?;
    let request = StartActor {
        name: actor.clone(),
        artifact: ArtifactRef::Path(lattice_test_actors::KV_COUNTER.to_owned()),
        limits: LimitsSpec::default(),
        links: vec!["keyvalue:default=maps".to_owned()],
        owner: None,
        digest: None,
    };
    // The start succeeds once the provider process is up and answers the host's ping.
    wait_for("the provider process to serve", Duration::from_secs(20), || async {
        client.start_actor(host.id(), &request).await.ok()
    })
    .await?;
    for expected in ["1", "2", "3"] {
        let reply = client.call(&actor, None, "visits".into(), Duration::from_secs(10), None).await?;
        assert_eq!(reply.data.as_deref(), Some(expected.as_bytes()));
    }
    host.stop().await;
    Ok(())
}
