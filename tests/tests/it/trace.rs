//! W3C trace context travels with a call: to the actor as message metadata, and back in the reply.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use lattice_core::wire::ArtifactRef;
use lattice_host::lattice::{check_traceparent, new_traceparent};

use crate::{CALL_TIMEOUT, TestLattice, name, start_request, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_reaches_the_actor_and_comes_back_and_none_is_invented() -> Result<()> {
    let lattice = TestLattice::start("trace").await?;
    let host = lattice.host("host-1", &[]).await?;
    let control = lattice.client().await?;
    let actor = name("probe");
    let start = start_request(&actor, ArtifactRef::Path(lattice_test_actors::KV_PROBE.to_owned()));
    control.start_actor(host.id(), &start).await?;
    let metadata = Bytes::from_static(b"metadata");

    let traceparent = new_traceparent();
    check_traceparent(&traceparent).map_err(anyhow::Error::msg)?;
    let traced = control.call(&actor, None, metadata.clone(), CALL_TIMEOUT, Some(&traceparent)).await?;
    assert_eq!(text(&traced)?, format!("traceparent={traceparent}"));
    assert_eq!(traced.traceparent.as_deref(), Some(traceparent.as_str()));

    // Without one, the call carries no trace context (and the topic, when given, is not metadata).
    let plain = control.call(&actor, Some("orders"), metadata, Duration::from_secs(15), None).await?;
    assert_eq!(text(&plain)?, "");
    assert_eq!(plain.traceparent, None);
    Ok(())
}
