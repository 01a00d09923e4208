//! Actors cannot reach the lattice's own subjects (docs/security.md §1): a probe actor linked to the host's
//! `nats` messaging provider tries the JetStream API, key-value and object store subjects, control verbs,
//! another provider's subject, inboxes and forged replies. Each attempt must get `permission-denied`, and the
//! lattice's state must be intact afterwards. Then the confused deputy (a reply subject chosen by a sender),
//! the `publish=` allow-list, and the two-account nats-server config.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use lattice_core::link::LinkSpec;
use lattice_core::subject::Name;
use lattice_core::wire::{ActorStarted, ArtifactRef, LimitsSpec, StartActor};
use lattice_host::lattice::{self, ClientError, HostConfig, LatticeClient, NatsConfig};
use lattice_test_harness::NatsServer;

use crate::{CALL_TIMEOUT, CONTROL_TIMEOUT, GATHER, HEARTBEAT, TestLattice, call, name, runtime, start_request, text};

fn probe(actor: &Name, links: &[&str]) -> StartActor {
    StartActor {
        name: actor.clone(),
        artifact: ArtifactRef::Path(lattice_test_actors::MSG_PROBE.to_owned()),
        limits: LimitsSpec::default(),
        links: links.iter().map(|l| (*l).to_owned()).collect(),
        owner: None,
        digest: None,
    }
}

/// What the probe answered to `command` (its reply text, or the failed call as text).
async fn attempt(client: &LatticeClient, actor: &Name, command: &str) -> String {
    match call(client, actor, command).await {
        Ok(reply) => text(&reply).unwrap_or_else(|e| format!("no reply: {e}")),
        Err(error) => format!("call failed: {error}"),
    }
}

/// Asserts that the lattice `l` still has its streams, links, hosts and artifacts.
async fn assert_intact(client: &LatticeClient, host: &Name, linked: &Name) -> Result<()> {
    let js = jetstream::new(client.nats().clone());
    let subjects = client.subjects();
    for stream in [
        subjects.events_stream(),
        format!("KV_{}", subjects.state_bucket()),
        format!("KV_{}", subjects.hosts_bucket()),
        format!("OBJ_{}", subjects.artifact_bucket()),
    ] {
        js.get_stream(&stream).await.with_context(|| format!("stream {stream} is gone"))?;
    }
    let links = client.list_links().await?;
    ensure!(links.iter().any(|r| &r.actor == linked), "the links were lost: {links:?}");
    let hosts = client.ping(GATHER).await?;
    ensure!(hosts.iter().any(|h| &h.id == host), "host {host} no longer answers ping: {hosts:?}");
    // The pushed artifact is still there: a fresh actor starts from it and serves.
    let counter = name("counter-after");
    client.start_actor(host, &start_request(&counter, ArtifactRef::Lattice("kv-counter-v1".into()))).await?;
    ensure!(text(&call(client, &counter, "k").await?)? == "1", "the counter started from the artifact misbehaves");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reserved_subject_is_refused_and_the_lattice_state_is_intact() -> Result<()> {
    let lattice = TestLattice::start("iso").await?;
    let host = lattice.host("host-1", &[]).await?;
    let client = lattice.client().await?;
    let l = lattice.name.as_str();
    let component = std::fs::read(lattice_test_actors::KV_COUNTER)?;
    client.push("kv-counter-v1", Bytes::from(component), |_| {}).await?;
    let linked = name("counter");
    client.put_link(&linked, &"keyvalue:default=inmemory".parse::<LinkSpec>()?).await?;
    let actor = name("probe");
    client.start_actor(host.id(), &probe(&actor, &["messaging:bus=nats"])).await?;

    // (command, the subject the refusal must name). The host-stop verb goes last: if it worked, nothing after
    // it could be observed.
    let attacks = [
        ("request $JS.API.STREAM.NAMES".to_owned(), "$JS.API.STREAM.NAMES".to_owned()),
        (format!("send $KV.lattice_{l}.links.probe.messaging.00"), format!("$KV.lattice_{l}.links.probe.messaging.00")),
        (format!("request lattice.{l}.provider.p.keyvalue"), format!("lattice.{l}.provider.p.keyvalue")),
        (format!("request lattice.{l}.ctl.ping"), format!("lattice.{l}.ctl.ping")),
        ("request $SYS.REQ.SERVER.PING".to_owned(), "$SYS.REQ.SERVER.PING".to_owned()),
        ("request $JSC.CI.x".to_owned(), "$JSC.CI.x".to_owned()),
        ("send $O.x.C.y".to_owned(), "$O.x.C.y".to_owned()),
        ("send _INBOX.anyone".to_owned(), "_INBOX.anyone".to_owned()),
        (format!("reply-forged lattice.{l}.ctl.host.host-1.stop"), String::new()),
        (format!("send $JS.API.STREAM.DELETE.lattice_{l}_events"), format!("$JS.API.STREAM.DELETE.lattice_{l}_events")),
        (
            format!("request $JS.API.STREAM.DELETE.OBJ_lattice_{l}_artifacts"),
            format!("$JS.API.STREAM.DELETE.OBJ_lattice_{l}_artifacts"),
        ),
        (format!("request $JS.API.STREAM.DELETE.KV_lattice_{l}"), format!("$JS.API.STREAM.DELETE.KV_lattice_{l}")),
        (format!("request lattice.{l}.ctl.host.host-1.stop"), format!("lattice.{l}.ctl.host.host-1.stop")),
    ];
    let mut failures = Vec::new();
    for (command, subject) in &attacks {
        let answer = attempt(&client, &actor, command).await;
        eprintln!("{command:60} -> {answer}");
        if !answer.starts_with("permission-denied:") || !answer.contains(subject.as_str()) {
            failures.push(format!("`{command}` was not refused: {answer}"));
        }
    }
    // Subscribing to inboxes (other clients' replies) or to anything overlapping a reserved namespace is
    // refused when the actor starts.
    for subscribe in ["_INBOX.>", ">", "*.*.ctl.>", "$JS.API.>", "lattice.*"] {
        let snoop = name("snoop");
        let link = format!("messaging:bus=nats,subscribe={subscribe}");
        match client.start_actor(host.id(), &probe(&snoop, &[&link])).await {
            Ok(_) => {
                failures.push(format!("`{link}` was accepted"));
                let _ = client.stop_actor(host.id(), &snoop).await;
            }
            Err(error) if error.to_string().contains(subscribe) => {}
            Err(error) => failures.push(format!("`{link}` refused without naming the subject: {error}")),
        }
    }
    // The same link stored as lattice state is refused by the client before any host sees it.
    let snooping: LinkSpec = "messaging:bus=nats,subscribe=_INBOX.>".parse()?;
    match client.put_link(&actor, &snooping).await {
        Err(ClientError::ReservedLink { .. }) => {}
        other => failures.push(format!("link put `{snooping}`: {other:?}")),
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    assert_intact(&client, host.id(), &linked).await?;
    host.stop().await;
    Ok(())
}

/// The next message on `sub`, as text.
async fn next_text(sub: &mut async_nats::Subscriber) -> Result<String> {
    let message = tokio::time::timeout(CALL_TIMEOUT, sub.next())
        .await
        .context("no message within the call timeout")?
        .context("the subscription ended")?;
    Ok(String::from_utf8_lossy(&message.payload).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_subject_in_a_reserved_namespace_does_not_make_the_actor_a_deputy() -> Result<()> {
    let lattice = TestLattice::start("deputy").await?;
    let host = lattice.host("host-1", &[]).await?;
    let client = lattice.client().await?;
    let l = lattice.name.as_str();
    let actor = name("probe");
    client.start_actor(host.id(), &probe(&actor, &["messaging:bus=nats,subscribe=probe.in"])).await?;
    let mut out = client.nats().subscribe("probe.out").await?;
    client.nats().flush().await?;

    // Anyone who may publish on `probe.in` picks the reply subject: here, deleting the events stream.
    let events = client.subjects().events_stream();
    let forged = format!("$JS.API.STREAM.DELETE.{events}");
    client.nats().publish_with_reply("probe.in", forged.clone(), Bytes::new()).await?;
    let outcome = next_text(&mut out).await?;
    eprintln!("reply to {forged} -> {outcome}");
    ensure!(outcome.starts_with("permission-denied:") && outcome.contains(&forged), "reply not refused: {outcome}");
    for reply in [format!("lattice.{l}.ctl.host.host-1.stop"), "$KV.x.y".to_owned()] {
        client.nats().publish_with_reply("probe.in", reply.clone(), Bytes::new()).await?;
        let outcome = next_text(&mut out).await?;
        ensure!(outcome.starts_with("permission-denied:"), "reply to {reply} not refused: {outcome}");
    }
    jetstream::new(client.nats().clone()).get_stream(&events).await.context("the events stream is gone")?;

    // An ordinary request (reply to an inbox) is still answered.
    let reply = client.nats().request("probe.in", Bytes::new()).await?;
    ensure!(reply.payload.is_empty(), "unexpected reply {:?}", reply.payload);
    ensure!(next_text(&mut out).await? == "ok", "the ordinary reply was not made");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_allow_list_limits_sends_and_requests_but_not_replies() -> Result<()> {
    let lattice = TestLattice::start("allow").await?;
    let host = lattice.host("host-1", &[]).await?;
    let client = lattice.client().await?;
    let actor = name("probe");
    let link = "messaging:bus=nats,subscribe=probe.in,publish=orders.>|audit.*";
    client.start_actor(host.id(), &probe(&actor, &[link])).await?;
    // Every two-token subject: what the probe manages to publish shows up here, in order.
    let mut seen = client.nats().subscribe("*.*").await?;
    client.nats().flush().await?;

    let expect = [
        ("send other.x", false),
        ("request other.x", false),
        ("send audit.x", true),
        ("send audit.x.y", false),
        ("send orders", false),
        ("request audit", false),
        ("send orders.new", true),
    ];
    for (command, allowed) in expect {
        let answer = attempt(&client, &actor, command).await;
        if allowed {
            ensure!(answer == "ok", "`{command}` was refused: {answer}");
        } else {
            ensure!(answer.starts_with("permission-denied:"), "`{command}` was not refused: {answer}");
            ensure!(answer.contains("publish="), "the refusal does not name the allow-list: {answer}");
        }
    }
    // The publisher's messages arrive in order: everything before the last allowed send is in front of it.
    let mut subjects = Vec::new();
    while subjects.last().is_none_or(|s| s != "orders.new") {
        let message = tokio::time::timeout(CALL_TIMEOUT, seen.next()).await?.context("subscription ended")?;
        if message.subject.as_str() != "probe.out" {
            subjects.push(message.subject.to_string());
        }
    }
    ensure!(subjects == ["audit.x", "orders.new"], "published: {subjects:?}");

    // Replies are not subject to `publish=`: a request to the actor is answered.
    let reply = client.nats().request("probe.in", Bytes::new()).await?;
    ensure!(reply.payload.is_empty(), "unexpected reply {:?}", reply.payload);

    // An allow-list that reaches into a reserved namespace is refused at start.
    for publish in ["lattice.>", ">", "$KV.*.*", "*.default.ctl.>"] {
        let other = name("other");
        let link = format!("messaging:bus=nats,publish={publish}");
        match client.start_actor(host.id(), &probe(&other, &[&link])).await {
            Ok(ActorStarted { .. }) => bail!("`{link}` was accepted"),
            Err(ClientError::Remote(error)) => {
                ensure!(error.message.contains(publish), "refusal does not name `{publish}`: {}", error.message)
            }
            Err(error) => bail!("`{link}`: {error}"),
        }
    }
    host.stop().await;
    Ok(())
}

/// The two-account server config of docs/security.md: the lattice (hosts, CLI, providers) in `LATTICE` with
/// JetStream, actors' application traffic in `APP`, no imports or exports between them.
pub const TWO_ACCOUNTS: &str = r#"
accounts {
  LATTICE {
    jetstream: enabled
    users: [ { user: "lattice", password: "lattice-secret" } ]
  }
  APP {
    users: [ { user: "app", password: "app-secret" } ]
  }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_accounts_actors_messaging_works_and_the_lattice_is_out_of_reach() -> Result<()> {
    let server = tokio::task::spawn_blocking(|| NatsServer::builder().config(TWO_ACCOUNTS).start()).await??;
    let account = |user: &str, password: &str| NatsConfig {
        user: Some(user.to_owned()),
        password: Some(password.to_owned()),
        ..NatsConfig::new([server.url()])
    };
    let lattice_nats = account("lattice", "lattice-secret");
    let app_nats = account("app", "app-secret");
    let lattice_name = name("accounts");
    let mut config = HostConfig::new(lattice_nats.clone(), lattice_name.clone());
    config.id = name("host-1");
    config.heartbeat = HEARTBEAT;
    config.app_nats = Some(app_nats.clone());
    config.artifact_dir = Some(crate::guest_dir());
    let host = lattice::start(config, runtime()).await?;
    let client = LatticeClient::connect(&lattice_nats, lattice_name).await?.with_timeout(CONTROL_TIMEOUT);
    let actor = name("probe");
    client.start_actor(host.id(), &probe(&actor, &["messaging:bus=nats,subscribe=probe.in"])).await?;

    // Application traffic flows in the APP account: a request from an app client reaches the actor's
    // subscription and is answered, and what the actor sends arrives there.
    let app = app_nats.connect("two-accounts-test-app").await?;
    let mut out = app.subscribe("probe.out").await?;
    let mut orders = app.subscribe("orders.new").await?;
    app.flush().await?;
    let reply = app.request("probe.in", Bytes::new()).await?;
    ensure!(reply.payload.is_empty(), "unexpected reply {:?}", reply.payload);
    ensure!(next_text(&mut out).await? == "ok", "the actor's reply was not made");
    ensure!(attempt(&client, &actor, "send orders.new").await == "ok", "the actor's send failed");
    ensure!(next_text(&mut orders).await? == "x", "the actor's message did not arrive in the APP account");

    // From the APP account the lattice does not exist: no control verb, no JetStream of the lattice's.
    let subjects = client.subjects();
    let app_js = jetstream::new(app.clone());
    ensure!(app_js.get_stream(subjects.events_stream()).await.is_err(), "the APP account sees the events stream");
    for subject in [
        subjects.ping(),
        subjects.host_verb(host.id(), lattice_core::subject::HostVerb::Inventory),
        "$JS.API.STREAM.NAMES".to_owned(),
        format!("$JS.API.STREAM.INFO.{}", subjects.events_stream()),
        format!("$JS.API.STREAM.DELETE.KV_{}", subjects.state_bucket()),
    ] {
        let request = async_nats::Request::new().payload(Bytes::new()).timeout(Some(Duration::from_secs(2)));
        match app.send_request(subject.clone(), request).await {
            Err(error) => eprintln!("APP account: {subject} -> {error}"),
            Ok(reply) => {
                let text = String::from_utf8_lossy(&reply.payload).into_owned();
                eprintln!("APP account: {subject} -> {text}");
                // At most the APP account's own JetStream error: never the lattice's data or a success.
                ensure!(!text.contains("lattice") && text.contains("\"error\""), "{subject} answered: {text}");
            }
        }
    }
    // The lattice itself is untouched and still answers in its own account.
    ensure!(client.ping(GATHER).await?.len() == 1, "the host does not answer ping");
    jetstream::new(client.nats().clone()).get_stream(subjects.events_stream()).await?;
    host.stop().await;
    Ok(())
}
