//! The NATS account setup `lattice nats-config` writes (docs/security.md §12), loaded into a real nats-server:
//! a host, an operator and callers as nkey users with their permissions. The operator deploys, a caller
//! invokes, and then a caller tries to be more (a rogue client on the lattice's account): join an actor's
//! queue group, call a remote provider, read other clients' inboxes, write the state bucket and the artifact
//! store, send control requests, use the JetStream API, and make the host reply on a JetStream API subject.
//! Each attempt must be refused by the server (seen as the `Permissions Violation` error it sends), and the
//! lattice must be intact and serving afterwards.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use async_nats::{ConnectOptions, Event, ServerError};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt};
use lattice_core::link::LinkSpec;
use lattice_core::nats_config::{Role, Setup, User, UserSeed};
use lattice_core::subject::{ALL_INBOXES, Name, inbox_prefix, inbox_wildcard, jetstream};
use lattice_core::wire::{AppActor, AppSpec, ArtifactRef, LimitsSpec};
use lattice_host::lattice::{self, LatticeClient, NatsConfig, Pushed, RunningHost};
use lattice_test_harness::{NatsServer, wait_for};
use tokio::sync::mpsc;

use crate::{CALL_TIMEOUT, CONTROL_TIMEOUT, GATHER, HEARTBEAT, call, name, runtime, start_request, text};

/// How long a refusal may take to arrive (the server answers at once; this only bounds a failing test).
const REFUSAL: Duration = Duration::from_secs(10);

/// A nats-server running the generated config, with the seeds of its users.
struct Accounts {
    server: NatsServer,
    lattice: Name,
    seeds: BTreeMap<&'static str, UserSeed>,
}

impl Accounts {
    /// Host `host-1` (and `host-1-app` for its application connection), operator `ops`, callers `web` and
    /// `billing` on lattice `lattice`, and an application client `shop`.
    async fn start(lattice: &str) -> Result<Self> {
        let roles = [
            ("host-1", Role::Host),
            ("host-1-app", Role::App),
            ("ops", Role::Operator),
            ("web", Role::Caller),
            ("billing", Role::Caller),
            ("shop", Role::App),
        ];
        let mut seeds = BTreeMap::new();
        let mut users = Vec::new();
        for (user, role) in roles {
            let seed = UserSeed::generate()?;
            users.push(User { name: name(user), role, key: seed.public_key().clone() });
            seeds.insert(user, seed);
        }
        let config = Setup::new(vec![name(lattice)], users)?.render();
        let server = tokio::task::spawn_blocking(move || NatsServer::builder().config(config).start()).await??;
        Ok(Self { server, lattice: name(lattice), seeds })
    }

    /// `user`'s connection settings: its seed and its own inbox prefix.
    fn nats(&self, user: &str) -> NatsConfig {
        NatsConfig {
            nkey_seed: self.seeds.get(user).map(|s| s.seed().to_owned()),
            inbox_prefix: Some(inbox_prefix(&name(user))),
            ..NatsConfig::new([self.server.url()])
        }
    }

    /// An app user's connection settings (the `APP` account has no inbox restrictions).
    fn app_nats(&self, user: &str) -> NatsConfig {
        NatsConfig {
            nkey_seed: self.seeds.get(user).map(|s| s.seed().to_owned()),
            ..NatsConfig::new([self.server.url()])
        }
    }

    async fn client(&self, user: &str) -> Result<LatticeClient> {
        Ok(LatticeClient::connect(&self.nats(user), self.lattice.clone()).await?.with_timeout(CONTROL_TIMEOUT))
    }

    async fn host(&self) -> Result<RunningHost> {
        let mut config = lattice::HostConfig::new(self.nats("host-1"), self.lattice.clone());
        config.id = name("host-1");
        config.heartbeat = HEARTBEAT;
        config.artifact_dir = Some(crate::guest_dir());
        config.app_nats = Some(self.app_nats("host-1-app"));
        lattice::start(config, runtime()).await.context("starting host-1 with the host's credentials")
    }

    /// A raw connection as `user`, and the errors the server sends it.
    async fn rogue(&self, user: &str) -> Result<Rogue> {
        let (tx, errors) = mpsc::unbounded_channel();
        let seed = self.seeds.get(user).context("no such user")?.seed().to_owned();
        let client = ConnectOptions::with_nkey(seed)
            .custom_inbox_prefix(inbox_prefix(&name(user)))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let Event::ServerError(ServerError::Other(error)) = event {
                        let _ = tx.send(error);
                    }
                }
            })
            .connect(self.server.url())
            .await?;
        Ok(Rogue { client, errors })
    }

    /// The lattice's streams, links, host and artifact are all there, and the host serves.
    async fn assert_intact(&self, ops: &LatticeClient, links: usize) -> Result<()> {
        let js = async_nats::jetstream::new(ops.nats().clone());
        for stream in ops.subjects().streams() {
            // The dead-letter stream exists once something was dead-lettered; the others from the start.
            if stream != ops.subjects().dlq_stream() {
                js.get_stream(&stream).await.with_context(|| format!("stream {stream} is gone"))?;
            }
        }
        ensure!(ops.list_links().await?.len() == links, "the links changed: {:?}", ops.list_links().await?);
        ensure!(ops.artifacts().await?.iter().any(|a| a.name == "kv-counter"), "the artifact is gone");
        let hosts = ops.ping(GATHER).await?;
        ensure!(hosts.iter().any(|h| h.id.as_str() == "host-1"), "host-1 no longer answers: {hosts:?}");
        Ok(())
    }
}

/// A connection whose refusals are observed.
struct Rogue {
    client: async_nats::Client,
    errors: mpsc::UnboundedReceiver<String>,
}

impl Rogue {
    /// Waits for the server's permissions error naming `what` (`Subscription to "…"`, `Publish to "…"`),
    /// skipping others.
    async fn refused(&mut self, what: &str) -> Result<()> {
        let until = tokio::time::Instant::now() + REFUSAL;
        loop {
            match tokio::time::timeout_at(until, self.errors.recv()).await {
                Err(_) => bail!("no permissions violation for {what} within {REFUSAL:?}: it was allowed"),
                Ok(None) => bail!("the connection ended before a refusal of {what}"),
                Ok(Some(error)) if error.contains("Permissions Violation") && error.contains(what) => return Ok(()),
                Ok(Some(_)) => {}
            }
        }
    }

    /// Publishes on `subject` (with a reply subject, as a request would) and waits for the refusal.
    async fn publish_refused(&mut self, subject: &str) -> Result<()> {
        let reply = self.client.new_inbox();
        self.client.publish_with_reply(subject.to_owned(), reply, Bytes::from_static(b"x")).await?;
        self.client.flush().await?;
        self.refused(&format!("Publish to \"{subject}\"")).await.with_context(|| format!("publishing on {subject}"))
    }

    /// Subscribes to `subject` and waits for the refusal; returns the subscriber, which must stay empty.
    async fn subscribe_refused(&mut self, subject: &str, queue: Option<&str>) -> Result<async_nats::Subscriber> {
        let sub = match queue {
            Some(queue) => self.client.queue_subscribe(subject.to_owned(), queue.to_owned()).await?,
            None => self.client.subscribe(subject.to_owned()).await?,
        };
        self.client.flush().await?;
        self.refused(&format!("Subscription to \"{subject}\""))
            .await
            .with_context(|| format!("subscribing to {subject}"))?;
        Ok(sub)
    }
}

/// Pushes kv-counter, links `counter`, starts it from the artifact store: the operator's work.
async fn deploy(ops: &LatticeClient, host: &RunningHost, counter: &Name) -> Result<Pushed> {
    let pushed = ops.push("kv-counter", std::fs::read(lattice_test_actors::KV_COUNTER)?.into(), |_| {}).await?;
    ops.put_link(counter, &"keyvalue:default=inmemory".parse::<LinkSpec>()?).await?;
    ops.start_actor(host.id(), &start_request(counter, ArtifactRef::Lattice(pushed.name.clone()))).await?;
    Ok(pushed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_deploy_callers_invoke_and_a_caller_can_do_nothing_else() -> Result<()> {
    let accounts = Accounts::start("acct").await?;
    let host = accounts.host().await?;
    let ops = accounts.client("ops").await?;
    let counter = name("counter");
    let pushed = deploy(&ops, &host, &counter).await?;
    // An app, placed by the leader host (its lease, placements and status writes are the host's permissions).
    let app = AppSpec {
        name: name("shop"),
        version: "1".into(),
        env: None,
        actors: vec![AppActor {
            name: name("shop-counter"),
            artifact: pushed.name.clone(),
            digest: pushed.digest.clone(),
            replicas: 1,
            spread: None,
            constraints: Default::default(),
            limits: LimitsSpec::default(),
            links: vec!["keyvalue:default=inmemory".into()],
            routes: Vec::new(),
        }],
        providers: Vec::new(),
    };
    ops.apply_app(app).await?;
    wait_for("the app to be reconciled by the leader", CONTROL_TIMEOUT, || async {
        ops.app_status(&name("shop")).await.ok()?.filter(|s| s.reconciled)
    })
    .await?;

    // The caller invokes, and gets its reply on its own inbox.
    let web = accounts.client("web").await?;
    ensure!(text(&call(&web, &counter, "k").await?)? == "1", "the caller's first call");
    ensure!(text(&call(&web, &name("shop-counter"), "s").await?)? == "1", "the caller's call of the app's actor");
    let links = ops.list_links().await?.len();

    let mut rogue = accounts.rogue("web").await?;
    let s = ops.subjects().clone();
    // Item 8: joining the actor's queue group (or listening on its subject) is refused, and every call is still
    // answered by the host: had the rogue joined, some would have gone to it and timed out.
    let invoke = s.invoke(&counter);
    let mut queue = rogue.subscribe_refused(&invoke, Some(&s.invoke_queue(&counter))).await?;
    let mut plain = rogue.subscribe_refused(&invoke, None).await?;
    for n in 2..=6 {
        ensure!(text(&call(&web, &counter, "k").await?)? == n.to_string(), "call {n} after the rogue subscribed");
    }
    ensure!(queue.next().now_or_never().flatten().is_none(), "the rogue queue member got an invocation");
    ensure!(plain.next().now_or_never().flatten().is_none(), "the rogue listener got an invocation");
    // Other clients' replies, control, provider and event subjects.
    rogue.subscribe_refused(ALL_INBOXES, None).await?;
    for user in ["billing", "host-1", "ops"] {
        rogue.subscribe_refused(&inbox_wildcard(&inbox_prefix(&name(user))), None).await?;
    }
    for subject in [s.providers_wildcard(), s.control_wildcard(), s.events_wildcard(), s.lattice_wildcard()] {
        rogue.subscribe_refused(&subject, None).await?;
    }
    // Item 3: the remote-provider subject; then the lattice's state, artifacts, control verbs and JetStream.
    let state = s.state_bucket();
    for subject in [
        s.provider(&name("default"), "keyvalue"),
        jetstream::kv_keys(&state, &s.link_key(&counter, "keyvalue", "default")),
        jetstream::kv_keys(&state, &s.app_key(&name("shop"))),
        jetstream::kv_keys(&s.hosts_bucket(), "host-1"),
        format!("$O.{}.C.x", s.artifact_bucket()),
        s.ping(),
        s.host_verb(host.id(), lattice_core::subject::HostVerb::Stop),
        jetstream::API_INFO.to_owned(),
        "$JS.API.STREAM.NAMES".to_owned(),
        jetstream::delete(&jetstream::kv_stream(&state)),
        jetstream::delete(&jetstream::object_stream(&s.artifact_bucket())),
        s.dlq(&counter),
    ] {
        rogue.publish_refused(&subject).await?;
    }

    accounts.assert_intact(&ops, links).await?;
    ensure!(text(&call(&web, &counter, "k").await?)? == "7", "the caller's call after the attacks");
    ensure!(text(&call(&web, &name("shop-counter"), "s").await?)? == "2", "the app's actor after the attacks");
    // Nothing but the rogue's attempts was refused: the host's and operator's work needed no more than their
    // permissions (the server logs each violation with the user's key).
    let log = accounts.server.log_contents();
    let refused = |user: &str| -> Result<Vec<String>> {
        let key = accounts.seeds.get(user).context("seeded")?.public_key().to_string();
        Ok(log.lines().filter(|line| line.contains("Violation") && line.contains(&key)).map(str::to_owned).collect())
    };
    ensure!(!refused("web")?.is_empty(), "the server logged none of the rogue's violations:\n{log}");
    for user in ["host-1", "ops"] {
        let refused = refused(user)?;
        ensure!(refused.is_empty(), "{user} was refused something:\n{}", refused.join("\n"));
    }
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_cannot_make_the_host_reply_on_the_jetstream_api() -> Result<()> {
    let accounts = Accounts::start("acct-deputy").await?;
    let host = accounts.host().await?;
    let ops = accounts.client("ops").await?;
    let counter = name("counter");
    deploy(&ops, &host, &counter).await?;
    let probe = name("probe");
    let mut request = start_request(&probe, ArtifactRef::Path(lattice_test_actors::MSG_PROBE.to_owned()));
    request.links = vec!["messaging:bus=nats".to_owned()];
    ops.start_actor(host.id(), &request).await?;
    let links = ops.list_links().await?.len();
    let s = ops.subjects().clone();
    let mut refusals = ops.nats().subscribe(s.event("reply.refused")).await?;
    ops.nats().flush().await?;

    // Item 1, both layers. The hostile subjects: deleting the state bucket's stream, the artifact store's, and
    // writing a link record.
    let planted = s.link_key(&counter, "keyvalue", "planted");
    let hostile = [
        jetstream::delete(&jetstream::kv_stream(&s.state_bucket())),
        jetstream::delete(&jetstream::object_stream(&s.artifact_bucket())),
        jetstream::kv_keys(&s.state_bucket(), &planted),
    ];
    // The host's own check: a caller may publish the invocations, and the host refuses each before it runs,
    // saying so in a `reply.refused` event.
    let web = accounts.rogue("web").await?;
    for reply in &hostile {
        web.client.publish_with_reply(s.invoke(&probe), reply.clone(), Bytes::new()).await?;
    }
    web.client.flush().await?;
    for reply in &hostile {
        let event =
            tokio::time::timeout(CALL_TIMEOUT, refusals.next()).await.context("reply.refused")?.context("open")?;
        let text = String::from_utf8_lossy(&event.payload).into_owned();
        ensure!(hostile.iter().any(|h| text.contains(h.as_str())), "refusal of {reply}: {text}");
    }
    // Beneath it, the server's: with the host's own credentials, publishing there is refused anyway.
    let mut as_host = accounts.rogue("host-1").await?;
    for reply in &hostile {
        as_host.publish_refused(reply).await?;
    }
    // The host still serves, and nothing of the lattice's state was touched.
    let caller = accounts.client("web").await?;
    ensure!(text(&call(&caller, &counter, "k").await?)? == "1", "the caller's own call");
    accounts.assert_intact(&ops, links).await?;
    let state = async_nats::jetstream::new(ops.nats().clone()).get_key_value(s.state_bucket()).await?;
    ensure!(state.entry(&planted).await?.is_none(), "the host's reply planted a link record");
    host.stop().await;
    Ok(())
}
