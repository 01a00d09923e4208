//! Host identity: in a lattice that trusts operators, a host runs only with an operator-signed credential, and
//! what hosts publish (heartbeats, records, bids, answers, replies, the lease, remote-provider calls) counts only
//! when its host signature verifies. Each test performs one attack from a raw NATS client and fails if it works.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use lattice_core::control_auth::{self, RequestAuth};
use lattice_core::host_auth::{HostCredential, HostSigner};
use lattice_core::keys::{KeyKind, SeedKey};
use lattice_core::subject::{HostVerb, LEADER_KEY, Name, Subjects};
use lattice_core::wire::{
    self, ActorInfo, ActorStarted, AppActor, AppSpec, Bid, ErrorCode, Event, EventData, HostInfo, LimitsSpec, PutLabel,
    StartActor, WireError,
};
use lattice_host::lattice::{self, HostConfig, HostError, LatticeClient, RunningHost};
use lattice_provider_sdk::remote::RemoteKeyValue;
use lattice_provider_sdk::{KeyValue, KvError};
use lattice_test_harness::wait_for;

use crate::{HEARTBEAT, TestLattice, call, credentialed, kv_counter, name, now_ms, runtime, text};

/// How long to wait for a change to show (generous for a loaded machine).
const SETTLE: Duration = Duration::from_secs(20);

fn operator() -> SeedKey {
    SeedKey::from_seed_bytes(KeyKind::Operator, &[31; 32])
}

fn stranger() -> SeedKey {
    SeedKey::from_seed_bytes(KeyKind::Operator, &[32; 32])
}

/// A client of `lattice` that signs with the operator and believes only hosts it vouched for.
async fn operator_client(lattice: &TestLattice) -> Result<LatticeClient> {
    Ok(lattice.client().await?.with_operator_key(operator()).with_trusted_operators(vec![operator().public_key()]))
}

/// Host `id` trusting the operator, with a credential for its labels, placing apps with the operator's key.
async fn credentialed_host(lattice: &TestLattice, id: &str, labels: &[(&str, &str)]) -> Result<RunningHost> {
    let mut config = lattice.host_config(id, labels);
    config.operator_key = Some(operator());
    lattice::start(credentialed(config, &operator()), runtime()).await.with_context(|| format!("starting host {id}"))
}

/// Labels as `(key, value)` pairs.
type Labels<'a> = &'a [(&'a str, &'a str)];

/// A one-actor app of `kv-counter` (pushed to the lattice), one replica.
async fn counter_app(client: &LatticeClient, app: &str) -> Result<AppSpec> {
    let pushed = client.push("kv-counter", std::fs::read(lattice_test_actors::KV_COUNTER)?.into(), |_| {}).await?;
    Ok(AppSpec {
        name: name(app),
        version: "1".into(),
        env: None,
        actors: vec![AppActor {
            name: name(&format!("{app}-counter")),
            artifact: pushed.name,
            digest: pushed.digest,
            replicas: 1,
            spread: None,
            constraints: BTreeMap::new(),
            limits: LimitsSpec::default(),
            links: vec!["keyvalue:default=inmemory".into()],
            routes: Vec::new(),
        }],
        providers: Vec::new(),
    })
}

/// Waits until the app is reconciled and returns the hosts its actor runs on, by the leader's status.
async fn reconciled_on(client: &LatticeClient, app: &str) -> Result<Vec<Name>> {
    let status = wait_for("the app to be reconciled", SETTLE, || async {
        client.app_status(&name(app)).await.ok()?.filter(|s| s.reconciled)
    })
    .await?;
    Ok(status.actors.first().map(|a| a.hosts.clone()).unwrap_or_default())
}

/// Waits for a `host.refused` event whose reason starts with `reason` (and, if given, naming `host`).
async fn refused_event<S>(events: &mut S, host: Option<&str>, reason: &str) -> Result<Event>
where
    S: futures::Stream<Item = Result<Event, WireError>> + Unpin,
{
    crate::expect_event(events, &format!("host.refused ({reason})"), SETTLE, |e| {
        matches!(&e.data, EventData::HostRefused { host: h, reason: r, .. }
            if r.starts_with(reason) && (host.is_none() || h.as_deref() == host))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_a_valid_credential_refuses_to_start() -> Result<()> {
    let lattice = TestLattice::start("ids").await?;
    let now = now_ms();
    let key = SeedKey::generate(KeyKind::Host)?;
    let issue = |host: &str, lattice_name: &str, key: &SeedKey, labels: &[(&str, &str)], expires: u64| {
        HostCredential::issue(
            &operator(),
            name(host),
            name(lattice_name),
            key.public_key(),
            crate::labels(labels),
            now - 1_000,
            expires,
        )
    };
    let other_key = SeedKey::generate(KeyKind::Host)?;
    let by_stranger = HostCredential::issue(
        &stranger(),
        name("h1"),
        name("ids"),
        key.public_key(),
        BTreeMap::new(),
        now,
        now + 3_600_000,
    );
    let hour = now + 3_600_000;
    let cases: Vec<(Option<HostCredential>, Labels, &str)> = vec![
        (None, &[], "has no host credential"),
        (Some(issue("h2", "ids", &key, &[], hour)), &[], "is for host `h2`, not `h1`"),
        (Some(issue("h1", "other", &key, &[], hour)), &[], "is for lattice `other`, not `ids`"),
        (Some(issue("h1", "ids", &other_key, &[], hour)), &[], "is for host key"),
        (Some(issue("h1", "ids", &key, &[], now - 1)), &[], "expired"),
        (Some(issue("h1", "ids", &key, &[("zone", "eu")], hour)), &[("zone", "us")], "does not allow label `zone=us`"),
        (Some(by_stranger), &[], "not trusted"),
    ];
    for (credential, labels, expected) in cases {
        let mut config: HostConfig = lattice.host_config("h1", labels);
        config.operators.trusted = vec![operator().public_key()];
        config.host_key = Some(key.clone());
        config.host_credential = credential;
        let error = match lattice::start(config, runtime()).await {
            Ok(host) => {
                host.stop().await;
                bail!("a host whose credential should say `{expected}` started");
            }
            Err(error) => error,
        };
        let message = error.to_string();
        assert!(matches!(error, HostError::NoCredential { .. } | HostError::Credential { .. }), "{message}");
        assert!(message.contains(expected), "expected `{expected}` in: {message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }
    // A matching credential (the label allowed by `zone=*`) starts.
    let mut config = lattice.host_config("h1", &[("zone", "us")]);
    config.operators.trusted = vec![operator().public_key()];
    config.host_credential = Some(issue("h1", "ids", &key, &[("zone", "*")], hour));
    config.host_key = Some(key);
    lattice::start(config, runtime()).await?.stop().await;
    Ok(())
}

/// A fake host on a raw connection: bids in every auction, answers pings, accepts every start it is sent (with
/// a forged `ActorStarted`) and then heartbeats that it runs the actor. Counts the starts it was sent.
async fn fake_host(lattice: &TestLattice, id: &str) -> Result<Arc<AtomicUsize>> {
    let nats = async_nats::connect(lattice.nats.url()).await?;
    let subjects = Subjects::new(lattice.name.clone());
    let (id, starts) = (name(id), Arc::new(AtomicUsize::new(0)));
    let mut auctions = nats.subscribe(subjects.auction()).await?;
    let mut pings = nats.subscribe(subjects.ping()).await?;
    let mut verbs = nats.subscribe(subjects.host_verbs_wildcard(&id)).await?;
    let info = HostInfo {
        id: id.clone(),
        lattice: lattice.name.clone(),
        labels: BTreeMap::new(),
        version: "0.0.0".into(),
        started_at_ms: now_ms(),
        heartbeat_ms: u64::try_from(HEARTBEAT.as_millis())?,
        actors: Vec::new(),
        providers: Vec::new(),
        provider_owners: BTreeMap::new(),
    };
    let counter = starts.clone();
    tokio::spawn(async move {
        let mut info = info;
        let mut beat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                Some(m) = auctions.next() => if let Some(reply) = m.reply {
                    let bid = Bid { host: info.id.clone(), labels: BTreeMap::new(), actors: 0 };
                    let _ = nats.publish(reply, wire::encode(&Ok::<_, WireError>(bid)).into()).await;
                },
                Some(m) = pings.next() => if let Some(reply) = m.reply {
                    let _ = nats.publish(reply, wire::encode(&Ok::<_, WireError>(info.clone())).into()).await;
                },
                Some(m) = verbs.next() => if let (Some(reply), Ok(start)) = (m.reply, wire::decode::<StartActor>(&m.payload)) {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let actor = ActorInfo {
                        name: start.name,
                        digest: "forged".into(),
                        max_concurrency: 1,
                        from_cache: true,
                        load_ms: 0,
                        subject: None,
                        links: start.links,
                        owner: start.owner,
                        http: false,
                    };
                    info.actors.push(actor.clone());
                    let started = ActorStarted { host: info.id.clone(), actor };
                    let _ = nats.publish(reply, wire::encode(&Ok::<_, WireError>(started)).into()).await;
                },
                _ = beat.tick() => {
                    let event = Event { host: info.id.clone(), time_ms: now_ms(), data: EventData::HostHeartbeat(info.clone()) };
                    let _ = nats.publish(subjects.event("host.heartbeat"), wire::encode(&event).into()).await;
                },
            }
        }
    });
    Ok(starts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_host_answering_auctions_wins_no_placement() -> Result<()> {
    let lattice = TestLattice::start("fake-bids").await?;
    // The fake sorts first by name ("a-fake" < "h1") and bids with no actors: it would win every tie.
    let starts = fake_host(&lattice, "a-fake").await?;
    let host = credentialed_host(&lattice, "h1", &[]).await?;
    let client = operator_client(&lattice).await?;
    let mut events = client.events().await?;
    client.apply_app(counter_app(&client, "shop").await?).await?;

    assert_eq!(reconciled_on(&client, "shop").await?, [host.id().clone()], "status says where it really runs");
    let running: Vec<Name> = client.inventory(host.id()).await?.actors.into_iter().map(|a| a.name).collect();
    assert_eq!(running, [name("shop-counter")]);
    assert_eq!(text(&call(&client, &name("shop-counter"), "n").await?)?, "1");
    assert_eq!(starts.load(Ordering::SeqCst), 0, "the fake host was sent no start");
    // The leader ignored the fake's bids and heartbeats, and said so.
    refused_event(&mut events, Some("a-fake"), "unsigned").await?;
    // The CLI's view is the same: the fake answers pings, but is not listed.
    let pinged: Vec<Name> = client.ping(crate::GATHER).await?.into_iter().map(|h| h.id).collect();
    assert_eq!(pinged, [host.id().clone()]);
    let (refused, _) = client.take_host_refusals();
    assert!(refused.iter().any(|r| r.host.as_ref() == Some(&name("a-fake"))), "{refused:?}");
    host.stop().await;
    Ok(())
}

/// A raw copy of one message: subject, headers, payload.
struct Captured {
    subject: String,
    headers: async_nats::HeaderMap,
    payload: Bytes,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_and_replayed_heartbeats_in_a_real_hosts_name_change_nothing() -> Result<()> {
    let lattice = TestLattice::start("spoof").await?;
    let nats = async_nats::connect(lattice.nats.url()).await?;
    let subjects = Subjects::new(lattice.name.clone());
    let mut beats = nats.subscribe(subjects.event("host.heartbeat")).await?;
    let host = credentialed_host(&lattice, "h1", &[]).await?;
    // A genuine heartbeat of h1 from before the app: it says h1 runs nothing.
    let genuine = tokio::time::timeout(SETTLE, beats.next()).await?.context("no heartbeat")?;
    let old = Captured {
        subject: genuine.subject.to_string(),
        headers: genuine.headers.clone().context("the heartbeat has no headers")?,
        payload: genuine.payload.clone(),
    };
    drop(beats);

    let client = operator_client(&lattice).await?;
    client.apply_app(counter_app(&client, "shop").await?).await?;
    assert_eq!(reconciled_on(&client, "shop").await?, [name("h1")]);
    let mut events = client.events().await?;

    // Three kinds of spoof, each saying h1 runs nothing: unsigned, a genuine seal on another payload, and the
    // old genuine heartbeat replayed. Twenty rounds, 50 ms apart (the attack's pace; nothing waits on it).
    let mut empty = wire::decode::<Event>(&old.payload)?;
    empty.time_ms = now_ms();
    let spoof = Bytes::from(wire::encode(&empty));
    for _ in 0..20 {
        nats.publish(old.subject.clone(), spoof.clone()).await?;
        nats.publish_with_headers(old.subject.clone(), old.headers.clone(), spoof.clone()).await?;
        nats.publish_with_headers(old.subject.clone(), old.headers.clone(), old.payload.clone()).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nats.flush().await?;
    // Each was ignored, and reported; meanwhile nothing was started again and the app never degraded.
    let mut seen = (false, false, false);
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !(seen.0 && seen.1 && seen.2) {
        let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await else {
            bail!("not every spoof was reported (unsigned, forged, replayed): {seen:?}");
        };
        match event?.data {
            EventData::HostRefused { host: Some(h), reason, .. } if h == "h1" => {
                seen.0 |= reason.starts_with("unsigned");
                seen.1 |= reason.starts_with("forged host signature");
                seen.2 |= reason.starts_with("replayed");
            }
            EventData::ActorStarted(info) => bail!("the spoofs made the leader start {} again", info.name),
            EventData::AppDegraded { reason, .. } => bail!("the spoofs made the app degrade: {reason}"),
            _ => {}
        }
    }
    let status = client.app_status(&name("shop")).await?.context("no status")?;
    assert!(status.reconciled, "{status:?}");
    assert_eq!(text(&call(&client, &name("shop-counter"), "n").await?)?, "1", "the first instance still serves");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_lease_value_is_not_followed() -> Result<()> {
    let lattice = TestLattice::start("lease").await?;
    let host = credentialed_host(&lattice, "h1", &[]).await?;
    let client = operator_client(&lattice).await?;
    wait_for("h1 to lead", SETTLE, || async { client.leader().await.ok()?.filter(|l| l == host.id()) }).await?;

    // Someone with write access to the lease bucket keeps naming a host that does not exist: unsigned, and
    // sealed by a host key no operator vouched for.
    let nats = async_nats::connect(lattice.nats.url()).await?;
    let bucket = jetstream::new(nats).get_key_value(Subjects::new(lattice.name.clone()).leader_bucket()).await?;
    let rogue = HostSigner::new(SeedKey::generate(KeyKind::Host)?, None);
    let leader_subject = Subjects::new(lattice.name.clone()).leader_record();
    let forger = tokio::spawn(async move {
        for round in 0u32.. {
            let value = if round % 2 == 0 {
                Bytes::from_static(b"ghost")
            } else {
                rogue.seal_record(&leader_subject, b"ghost", now_ms()).into()
            };
            let _ = bucket.put(LEADER_KEY, value).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // The lattice keeps a real leader: an app applied now is placed, and no client is told "ghost" leads.
    client.apply_app(counter_app(&client, "shop").await?).await?;
    assert_eq!(reconciled_on(&client, "shop").await?, [name("h1")]);
    for _ in 0..10 {
        assert_ne!(client.leader().await?, Some(name("ghost")));
    }
    forger.abort();
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_host_records_are_ignored_and_reported() -> Result<()> {
    let lattice = TestLattice::start("records").await?;
    let host = credentialed_host(&lattice, "h1", &[]).await?;
    let client = operator_client(&lattice).await?;
    wait_for("h1's record", SETTLE, || async { (client.hosts().await.ok()?.len() == 1).then_some(()) }).await?;

    // Three forged records next to h1's genuine one: an unsigned one, one sealed by a host key no operator
    // vouched for, and h1's genuine record copied under another id.
    let nats = async_nats::connect(lattice.nats.url()).await?;
    let subjects = Subjects::new(lattice.name.clone());
    let bucket = jetstream::new(nats).get_key_value(subjects.hosts_bucket()).await?;
    let mut info = client.inventory(host.id()).await?;
    info.id = name("ghost");
    bucket.put("ghost", wire::encode(&info).into()).await?;
    info.id = name("h2");
    let rogue = HostSigner::new(SeedKey::generate(KeyKind::Host)?, None);
    bucket.put("h2", rogue.seal_record(&subjects.host_record(&info.id), &wire::encode(&info), now_ms()).into()).await?;
    let genuine = bucket.get(host.id().as_str()).await?.context("h1 has a record")?;
    bucket.put("h3", genuine).await?;

    let listed: Vec<Name> = client.hosts().await?.into_iter().map(|h| h.info.id).collect();
    assert_eq!(listed, [host.id().clone()], "only the genuine record is listed");
    let (refused, _) = client.take_host_refusals();
    let mut claimed: Vec<String> = refused.iter().filter_map(|r| r.host.as_ref().map(ToString::to_string)).collect();
    claimed.sort();
    assert_eq!(claimed, ["ghost", "h1", "h2"], "{refused:?}");
    // A client that trusts no operator checks nothing (and lists the forgeries).
    let plain = lattice.client().await?;
    assert_eq!(plain.hosts().await?.len(), 4);
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_provider_calls_without_a_host_signature_are_refused() -> Result<()> {
    let lattice = TestLattice::start("remote-auth").await?;
    let a = credentialed_host(&lattice, "host-a", &[]).await?;
    let b = credentialed_host(&lattice, "host-b", &[]).await?;
    let client = operator_client(&lattice).await?;
    client.start_provider(b.id(), "shared", "inmemory", BTreeMap::new()).await?;
    // A genuine remote call: the actor on A reaches the provider on B with A's signature.
    let actor = name("counter-a");
    let mut request = kv_counter(&actor);
    request.links = vec!["keyvalue:default=shared,bucket=totals".to_owned()];
    client.start_actor(a.id(), &request).await?;
    assert_eq!(text(&call(&client, &actor, "card-number").await?)?, "1");
    assert_eq!(text(&call(&client, &actor, "card-number").await?)?, "2");

    // A raw client on the provider's subject, unsigned and sealed by a host key no operator vouched for, reads
    // and writes the same key: each call is refused with the typed error, and reads or writes nothing.
    let mut events = client.events().await?;
    let nats = async_nats::connect(lattice.nats.url()).await?;
    let subject = Subjects::new(lattice.name.clone()).provider(&name("shared"), "keyvalue");
    let unsigned = RemoteKeyValue::new(nats.clone(), subject.clone(), SETTLE);
    let rogue = HostSigner::new(SeedKey::generate(KeyKind::Host)?, None);
    let sealed = RemoteKeyValue::new(nats, subject, SETTLE).with_signer(Arc::new(rogue));
    for remote in [&unsigned, &sealed] {
        match remote.get("totals", "card-number").await {
            Err(KvError::AccessDenied) => {}
            other => bail!("a call without a valid host signature was answered: {other:?}"),
        }
        assert!(matches!(remote.set("totals", "card-number", b"100".to_vec()).await, Err(KvError::AccessDenied)));
    }
    refused_event(&mut events, None, "unsigned").await?;
    refused_event(&mut events, None, "no host credential").await?;
    // The actor's count was neither read nor changed.
    assert_eq!(text(&call(&client, &actor, "card-number").await?)?, "3");
    a.stop().await;
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_captured_before_a_restart_is_refused_after_it() -> Result<()> {
    let lattice = TestLattice::start("restart-replay").await?;
    let host = credentialed_host(&lattice, "h1", &[]).await?;
    let client = lattice.client().await?;
    let subject = client.subjects().host_verb(host.id(), HostVerb::PutLabel);
    let body = wire::encode(&PutLabel { key: "owner".into(), value: "alice".into() });
    let auth = RequestAuth::sign(&operator(), &subject, &body, now_ms(), control_auth::new_nonce()?);
    let send = |auth: RequestAuth| {
        let (client, subject, body) = (client.nats().clone(), subject.clone(), body.clone());
        async move {
            let mut headers = async_nats::HeaderMap::new();
            for (header, value) in auth.headers() {
                headers.insert(header, value.as_str());
            }
            let request = async_nats::Request::new().payload(body.into()).headers(headers).timeout(Some(SETTLE));
            let reply = client.send_request(subject, request).await?;
            anyhow::Ok(wire::decode_reply::<wire::Labels>(&reply.payload))
        }
    };
    assert!(send(auth.clone()).await?.is_ok(), "the genuine request is accepted once");
    assert!(matches!(send(auth.clone()).await?, Err(e) if e.message.contains("replayed")));

    // The host restarts under the same id (its nonce cache is gone); the captured request is still fresh.
    host.stop().await;
    let host = credentialed_host(&lattice, "h1", &[]).await?;
    match send(auth).await? {
        Err(error)
            if error.code == ErrorCode::Unauthorized && error.message.contains("issued before this host started") => {}
        other => bail!("the captured request was accepted again after the restart: {other:?}"),
    }
    // A request signed now works.
    let fresh = RequestAuth::sign(&operator(), &subject, &body, now_ms(), control_auth::new_nonce()?);
    assert!(send(fresh).await?.is_ok());
    host.stop().await;
    Ok(())
}
