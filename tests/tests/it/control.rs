//! Malformed control requests get error replies, and the host keeps serving.

use anyhow::{Result, bail};
use bytes::Bytes;
use lattice_core::subject::HostVerb;
use lattice_core::wire::{self, ActorStarted, Empty, Envelope, ErrorCode, HostInfo, StopActor, WireError};

use crate::{GATHER, TestLattice, call, kv_counter, name, text};

fn expect_error<T: std::fmt::Debug>(reply: wire::Reply<T>, code: ErrorCode, what: &str) -> Result<WireError> {
    match reply {
        Err(error) if error.code == code => Ok(error),
        other => bail!("{what}: expected a {code:?} error reply, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_unknown_versions_and_unknown_verbs_get_error_replies() -> Result<()> {
    let lattice = TestLattice::start("hostile").await?;
    let host = lattice.host("host-1", &[]).await?;
    let id = host.id().clone();
    let control = lattice.client().await?;
    let subjects = control.subjects().clone();
    let actor = name("kv-counter");
    let start = subjects.host_verb(&id, HostVerb::StartActor);

    let reply = control.request_raw(start.clone(), Bytes::from_static(b"garbage")).await?;
    let error = expect_error(wire::decode_reply::<ActorStarted>(&reply), ErrorCode::BadRequest, "garbage")?;
    assert!(error.message.contains("malformed"), "{error}");

    // A well-formed request from a peer speaking protocol version 99.
    let future = rmp_serde::to_vec_named(&Envelope { v: 99, body: kv_counter(&actor) })?;
    let reply = control.request_raw(start.clone(), future.into()).await?;
    let error = expect_error(wire::decode_reply::<ActorStarted>(&reply), ErrorCode::UnsupportedVersion, "version 99")?;
    assert_eq!(error.message, "unsupported protocol version 99 (this peer speaks 1)");

    // The current version, but the wrong message for the verb.
    let wrong = wire::encode(&StopActor { name: actor.clone() });
    let reply = control.request_raw(start, wrong.into()).await?;
    expect_error(wire::decode_reply::<ActorStarted>(&reply), ErrorCode::BadRequest, "wrong body")?;

    // A verb the host does not know.
    let bogus = subjects.host_verb(&id, HostVerb::Inventory).replace(".inventory", ".bogus");
    let reply = control.request_raw(bogus, wire::encode(&Empty {}).into()).await?;
    let error = expect_error(wire::decode_reply::<Empty>(&reply), ErrorCode::BadRequest, "unknown verb")?;
    assert!(error.message.contains("bogus"), "{error}");

    // Garbage on the broadcast subjects gets an error reply too.
    for subject in [subjects.ping(), subjects.auction()] {
        let reply = control.request_raw(subject.clone(), Bytes::from_static(b"\xff\xff")).await?;
        expect_error(wire::decode_reply::<HostInfo>(&reply), ErrorCode::BadRequest, &subject)?;
    }

    // Nothing was started by any of that, and the host keeps serving.
    let pinged = control.ping(GATHER).await?;
    assert_eq!(pinged.len(), 1);
    assert!(pinged[0].actors.is_empty(), "{pinged:#?}");
    control.start_actor(&id, &kv_counter(&actor)).await?;
    assert_eq!(text(&call(&control, &actor, "still").await?)?, "1");
    Ok(())
}
