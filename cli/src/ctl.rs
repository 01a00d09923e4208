//! Control verbs: hosts, inventory, push, start, stop, scale, call, events, label.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use comfy_table::Table;
use futures::StreamExt;
use lattice_client::{CallOptions, ClientError, LatticeClient, check_traceparent, new_traceparent};
use lattice_core::subject::Name;
use lattice_core::wire::{ActorInfo, ArtifactRef, Event, EventData, HostInfo, LimitsSpec, StartActor};

use crate::args::{LimitArgs, Output, PayloadArgs, parse_label};
use crate::connect::LatticeArgs;
use crate::operator::OperatorKeyArgs;
use crate::output::{ErrorClass, classified, not_found, print_json_line, usage};
pub(crate) use crate::output::{print_json, table};

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// List the lattice's hosts, with those that missed 3 heartbeats shown as lost.
#[derive(Debug, Args)]
pub struct HostsArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn hosts(args: HostsArgs) -> anyhow::Result<()> {
    let lattice = &args.lattice;
    let client = lattice.client().await?;
    let hosts = client.hosts().await?;
    if args.output == Output::Json {
        let docs: Vec<_> = hosts
            .iter()
            .map(|h| {
                serde_json::json!({
                    "id": h.info.id, "status": if h.lost { "lost" } else { "up" },
                    "since_heartbeat_ms": h.since_heartbeat_ms, "labels": h.info.labels,
                    "actors": h.info.actors.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
                    "version": h.info.version,
                })
            })
            .collect();
        return print_json(&docs);
    }
    let mut t = table(&["HOST", "STATUS", "LAST SEEN", "ACTORS", "LABELS"]);
    for h in &hosts {
        t.add_row([
            h.info.id.to_string(),
            if h.lost { "lost".into() } else { "up".into() },
            format!("{:.1}s ago", h.since_heartbeat_ms as f64 / 1000.0),
            h.info.actors.len().to_string(),
            labels_text(&h.info.labels),
        ]);
    }
    println!("{t}");
    if hosts.is_empty() {
        eprintln!(
            "no hosts in lattice `{}` (start one with `lattice up` or `lattice host`)",
            client.subjects().lattice()
        );
    }
    Ok(())
}

/// Show what one host runs.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
    /// The host's id (see `lattice hosts`)
    pub host: Name,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

fn actors_table(host: &HostInfo) -> Table {
    let mut t = table(&["ACTOR", "APP", "MAX CONCURRENCY", "DIGEST", "SUBJECT", "LINKS"]);
    for a in &host.actors {
        t.add_row([
            a.name.to_string(),
            a.owner.as_ref().map_or_else(|| "-".to_owned(), |o| o.app.to_string()),
            a.max_concurrency.to_string(),
            a.digest.chars().take(12).collect(),
            a.subject.clone().unwrap_or_else(|| "unsigned".into()),
            a.links.join(" "),
        ]);
    }
    t
}

pub async fn inventory(args: InventoryArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    let info = client.inventory(&args.host).await?;
    if args.output == Output::Json {
        return print_json(&info);
    }
    println!("host {}  lattice {}  version {}", info.id, info.lattice, info.version);
    println!("labels: {}", labels_text(&info.labels));
    println!("{}", actors_table(&info));
    if !info.providers.is_empty() {
        let providers: Vec<String> = info
            .providers
            .iter()
            .map(|p| {
                let name = p.split_once(':').map_or(p.as_str(), |(_, n)| n);
                match info.provider_owners.get(name) {
                    Some(owner) => format!("{p} (app {})", owner.app),
                    None => p.clone(),
                }
            })
            .collect();
        println!("providers: {}", providers.join(", "));
    }
    Ok(())
}

/// Store a component in the lattice's artifact store, so any host can start it by name.
#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    /// The component file
    pub file: PathBuf,
    /// Name to store it under [the file's stem, with `_` as `-`]
    #[arg(long)]
    pub name: Option<Name>,
    /// Push it even if it is not signed (only hosts started with --allow-unsigned will run it)
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn push(args: PushArgs) -> anyhow::Result<()> {
    let lattice = &args.lattice;
    let bytes = lattice_host::files::read_file(&args.file, lattice_host::files::MAX_COMPONENT_BYTES)?;
    crate::check::pushable(&args.file, &bytes, args.allow_unsigned)?;
    let name = match args.name {
        Some(name) => name,
        None => {
            let stem = args.file.file_stem().map(|s| s.to_string_lossy().replace('_', "-")).unwrap_or_default();
            let stem = stem.strip_suffix(".signed").unwrap_or(&stem).to_owned();
            Name::new(stem).context("cannot name the artifact after the file; pass --name")?
        }
    };
    let client = lattice.client().await?;
    let pushed = push_with_progress(&client, name.as_str(), bytes, args.output == Output::Text).await?;
    if args.output == Output::Json {
        return print_json(&serde_json::json!({"name": pushed.name, "sha256": pushed.digest, "size": pushed.size}));
    }
    println!("pushed {} ({} bytes, sha256 {})", pushed.name, pushed.size, pushed.digest);
    Ok(())
}

/// Pushes `bytes` as artifact `name`, with a progress bar on the terminal when `show` (hidden otherwise).
pub(crate) async fn push_with_progress(
    client: &LatticeClient,
    name: &str,
    bytes: Vec<u8>,
    show: bool,
) -> Result<lattice_client::Pushed, ClientError> {
    let bar = indicatif::ProgressBar::new(bytes.len() as u64);
    if show {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(format!("pushing {}", name.chars().take(24).collect::<String>()));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let progress = bar.clone();
    let pushed = client.push(name, bytes.into(), move |sent| progress.set_position(sent)).await;
    bar.finish_and_clear();
    pushed
}

/// Start an actor on one or more hosts; prints the outcome once it is ready to serve.
///
/// Without --path the component comes from the lattice's artifact store (`lattice push`). Without --host the
/// hosts are chosen by a placement auction among those matching every --constraint, fewest actors first.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
    /// The actor's name in the lattice (also the artifact's name unless --artifact or --path is given)
    pub actor: Name,
    /// Artifact name in the lattice's store [the actor's name]
    #[arg(long, conflicts_with = "path")]
    pub artifact: Option<String>,
    /// Path of the component on the host's own disk, instead of the artifact store: relative to (or under)
    /// the host's --artifact-dir; hosts without one refuse path starts
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Run only a component with this sha256 (64 hex digits; hosts refuse other bytes) [a pushed artifact:
    /// the digest the artifact store records for it now; --path: none]
    #[arg(long, value_parser = parse_digest, value_name = "SHA256")]
    pub digest: Option<String>,
    /// Start on this host (repeatable)
    #[arg(long = "host", value_name = "ID")]
    pub hosts: Vec<Name>,
    /// Only hosts with this label, key=value (repeatable)
    #[arg(long = "constraint", value_parser = parse_label, value_name = "KEY=VALUE", conflicts_with = "hosts")]
    pub constraints: Vec<(String, String)>,
    /// How many hosts to start it on when placing by auction
    #[arg(long, default_value_t = 1, conflicts_with = "hosts")]
    pub replicas: usize,
    /// Bind an import: <interface>:<name>=<provider>[,key=value...] (repeatable)
    #[arg(long = "link", value_name = "LINK")]
    pub links: Vec<lattice_core::link::LinkSpec>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

/// A sha256 as hosts compare it: 64 hex digits, lowercased.
fn parse_digest(text: &str) -> Result<String, String> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err("expected a sha256: 64 hex digits".to_owned())
    }
}

fn limits_spec(limits: &LimitArgs) -> LimitsSpec {
    let ms = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    LimitsSpec {
        memory_bytes: limits.memory.map(|m| m as u64),
        cpu_time_ms: ms(limits.cpu_time),
        timeout_ms: ms(limits.timeout),
        max_concurrency: limits.max_concurrency,
        max_reply_bytes: limits.max_reply.map(|m| m as u64),
        instance_reuse: limits.instance_reuse,
    }
}

/// Hosts to place on: the named ones, or the best bidders of an auction.
async fn placement(
    client: &LatticeClient,
    hosts: &[Name],
    constraints: &[(String, String)],
    replicas: usize,
) -> anyhow::Result<Vec<Name>> {
    if !hosts.is_empty() {
        return Ok(hosts.to_vec());
    }
    let constraints: BTreeMap<_, _> = constraints.iter().cloned().collect();
    let bids = client.auction(constraints.clone(), Duration::from_millis(500)).await?;
    if bids.is_empty() {
        return Err(classified(
            ErrorClass::Unavailable,
            format!(
                "no host in lattice `{}` matches {}",
                client.subjects().lattice(),
                if constraints.is_empty() { "(no hosts answered)".into() } else { labels_text(&constraints) }
            ),
        ));
    }
    if bids.len() < replicas {
        return Err(classified(
            ErrorClass::Unavailable,
            format!("only {} host(s) match, {replicas} replicas asked for", bids.len()),
        ));
    }
    Ok(bids.into_iter().take(replicas).map(|b| b.host).collect())
}

pub async fn start(args: StartArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    // A pushed artifact is started by digest: the one the store records now, so the request the operator signs
    // names these bytes and no later replacement of the object under that name runs in their place.
    let (artifact, digest) = match &args.path {
        Some(path) => (ArtifactRef::Path(path.display().to_string()), args.digest.clone()),
        None => {
            let name = args.artifact.clone().unwrap_or_else(|| args.actor.to_string());
            let digest = match &args.digest {
                Some(digest) => digest.clone(),
                None => client.artifact_digest(&name).await?.ok_or_else(|| {
                    not_found(format!("artifact `{name}` is not in the lattice or has no recorded sha256 (push it with `lattice push`)"))
                })?,
            };
            (ArtifactRef::Lattice(name), Some(digest))
        }
    };
    let request = StartActor {
        name: args.actor.clone(),
        artifact,
        limits: limits_spec(&args.limits),
        links: args.links.iter().map(ToString::to_string).collect(),
        owner: None,
        digest,
    };
    // Links given at start become the lattice's links for the actor, so later `lattice link` changes and
    // every host agree on one table.
    for link in &args.links {
        client.put_link(&args.actor, link).await?;
    }
    let targets = placement(&client, &args.hosts, &args.constraints, args.replicas).await?;
    let mut started = Vec::new();
    for host in &targets {
        let outcome = client
            .start_actor(host, &request)
            .await
            .with_context(|| format!("cannot start `{}` on host {host}", args.actor))?;
        if args.output == Output::Text {
            println!(
                "started {} on host {}: {} instances ready{} ({} ms)",
                outcome.actor.name,
                outcome.host,
                outcome.actor.max_concurrency,
                if outcome.actor.from_cache { ", compiled code from cache" } else { "" },
                outcome.actor.load_ms
            );
        }
        started.push(outcome);
    }
    if args.output == Output::Json {
        return print_json(&started);
    }
    Ok(())
}

/// The hosts a change to `actor` goes to: the `given` ones, else every host running it (from a ping).
async fn hosts_of(client: &LatticeClient, actor: &Name, given: Vec<Name>) -> anyhow::Result<Vec<Name>> {
    if !given.is_empty() {
        return Ok(given);
    }
    let hosts: Vec<Name> = client
        .ping(Duration::from_millis(500))
        .await?
        .into_iter()
        .filter(|h| h.actors.iter().any(|a| &a.name == actor))
        .map(|h| h.id)
        .collect();
    if hosts.is_empty() {
        return Err(not_found(format!("no host in lattice `{}` runs actor `{actor}`", client.subjects().lattice())));
    }
    Ok(hosts)
}

/// Stop an actor (on the given hosts, or everywhere it runs).
#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
    /// The actor
    pub actor: Name,
    /// Only on this host (repeatable)
    #[arg(long = "host", value_name = "ID")]
    pub hosts: Vec<Name>,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn stop(args: StopArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    let mut stopped = Vec::new();
    for host in hosts_of(&client, &args.actor, args.hosts).await? {
        let actor = client.stop_actor(&host, &args.actor).await?;
        if args.output == Output::Text {
            println!("stopped {} on host {}", actor.name, actor.host);
        }
        stopped.push(serde_json::json!({"actor": actor.name, "host": actor.host}));
    }
    if args.output == Output::Json {
        return print_json(&stopped);
    }
    Ok(())
}

/// Change how many instances of an actor may run at once (on the given hosts, or everywhere it runs).
#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
    /// The actor
    pub actor: Name,
    /// New max concurrency per host
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrency: u32,
    /// Only on this host (repeatable)
    #[arg(long = "host", value_name = "ID")]
    pub hosts: Vec<Name>,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    let mut scaled = Vec::new();
    for host in hosts_of(&client, &args.actor, args.hosts).await? {
        let info: ActorInfo = client.scale_actor(&host, &args.actor, args.max_concurrency).await?;
        if args.output == Output::Text {
            println!("scaled {} on host {host}: max concurrency {}", info.name, info.max_concurrency);
        }
        scaled.push(serde_json::json!({"actor": info.name, "host": host, "max_concurrency": info.max_concurrency}));
    }
    if args.output == Output::Json {
        return print_json(&scaled);
    }
    Ok(())
}

/// Send a message to an actor wherever it runs and print its reply.
#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    /// The actor
    pub actor: Name,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Topic to deliver the message as
    #[arg(long)]
    pub topic: Option<String>,
    /// How long to wait for the reply
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// W3C trace context to send with the call (default: a new trace; -o json prints it)
    #[arg(long)]
    pub traceparent: Option<String>,
    /// Call again, up to N more times, when no reply comes (timeout, no host runs the actor, every instance
    /// busy), with the same lattice-msg-id each time. Safe only for actors whose handling of one message twice
    /// has the effect of handling it once (they guard effects with the id, or have none)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retry: u32,
    /// The call's lattice-msg-id, seen by the actor in the message metadata (default with --retry: a new one)
    #[arg(long, value_name = "ID")]
    pub msg_id: Option<String>,
    /// Send an HTTP request to the actor's wasi:http/incoming-handler instead of a message (the payload is the
    /// body); prints the status line, headers and body
    #[arg(long, conflicts_with_all = ["topic", "retry", "msg_id"])]
    pub http: bool,
    /// With --http: the path and query
    #[arg(long, requires = "http", default_value = "/", value_name = "PATH")]
    pub path: String,
    /// With --http: the method
    #[arg(long, short = 'X', requires = "http", default_value = "GET")]
    pub method: String,
    /// With --http: a request header NAME:VALUE (repeatable)
    #[arg(long = "header", short = 'H', requires = "http", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn call(args: CallArgs) -> anyhow::Result<()> {
    let traceparent = match args.traceparent.clone() {
        Some(traceparent) => {
            check_traceparent(&traceparent).map_err(usage)?;
            traceparent
        }
        None => new_traceparent(),
    };
    let payload = args.payload.read().await?;
    let client = args.lattice.client().await?;
    if args.http {
        return call_http(&client, &args, payload).await;
    }
    let options = CallOptions {
        topic: args.topic.as_deref(),
        traceparent: Some(&traceparent),
        message_id: args.msg_id.as_deref(),
        retries: args.retry,
        ..CallOptions::new(args.timeout)
    };
    let (reply, _calls) = client.call_with(&args.actor, payload.into(), &options).await?;
    match args.output {
        Output::Json => print_json(&serde_json::json!({
            "reply": reply.data.as_ref().map(|d| String::from_utf8_lossy(d).into_owned()),
            "host": reply.host,
            "traceparent": reply.traceparent,
        })),
        Output::Text => {
            if let Some(data) = reply.data {
                let mut out = std::io::stdout().lock();
                out.write_all(&data)?;
                if !data.ends_with(b"\n") {
                    out.write_all(b"\n")?;
                }
            }
            Ok(())
        }
    }
}

/// `lattice call --http`: one HTTP request through the lattice to the actor, wherever it runs.
async fn call_http(client: &LatticeClient, args: &CallArgs, body: Vec<u8>) -> anyhow::Result<()> {
    let method: http::Method =
        args.method.to_ascii_uppercase().parse().map_err(|_| usage(format!("invalid --method `{}`", args.method)))?;
    if !args.path.starts_with('/') {
        return Err(usage("--path must start with `/`"));
    }
    let mut headers = Vec::new();
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            return Err(usage(format!("--header `{header}` is not NAME:VALUE")));
        };
        headers.push((name.trim().to_ascii_lowercase(), serde_bytes::ByteBuf::from(value.trim().as_bytes().to_vec())));
    }
    let request = lattice_core::http::HttpRequest {
        method: method.to_string(),
        scheme: "http".into(),
        authority: "localhost".into(),
        path: args.path.clone(),
        headers,
        body: serde_bytes::ByteBuf::from(body),
    };
    let (response, host) = client.http(&args.actor, &request, args.timeout).await?;
    match args.output {
        Output::Json => print_json(&serde_json::json!({
            "status": response.status,
            "headers": response.headers.iter().map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned())).collect::<Vec<_>>(),
            "body": String::from_utf8_lossy(&response.body),
            "host": host,
        })),
        Output::Text => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "HTTP {}", response.status)?;
            for (name, value) in &response.headers {
                writeln!(out, "{name}: {}", String::from_utf8_lossy(value))?;
            }
            writeln!(out)?;
            out.write_all(&response.body)?;
            if !response.body.is_empty() && !response.body.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
            Ok(())
        }
    }
}

/// Print the lattice's recent events (heartbeats excluded), and with --follow keep printing new ones.
#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    /// Keep printing events as they happen (including heartbeats with --heartbeats)
    #[arg(long, short)]
    pub follow: bool,
    /// With --follow, also print heartbeats
    #[arg(long, requires = "follow")]
    pub heartbeats: bool,
    /// How many recent events to print first
    #[arg(long, default_value_t = 50)]
    pub last: usize,
    /// Output format (json: one event per line)
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

fn describe(data: &EventData) -> String {
    match data {
        EventData::HostStarted(h) | EventData::HostHeartbeat(h) => {
            format!("{} actors, labels {}", h.actors.len(), labels_text(&h.labels))
        }
        EventData::HostStopped { reason } => reason.clone(),
        EventData::ActorStarted(a) => format!("{} (digest {})", a.name, a.digest.chars().take(12).collect::<String>()),
        EventData::ActorStopped { name } => name.to_string(),
        EventData::ActorFailed { name, error } => format!("{name}: {error}"),
        EventData::ActorRejected { name, reason, issuer } => {
            format!("{name}: {reason}{}", issuer.as_ref().map(|i| format!(" (issuer {i})")).unwrap_or_default())
        }
        EventData::ProviderRestarting { name, attempt, reason } => format!("{name}: restart {attempt} ({reason})"),
        EventData::ProviderRecovered { name } => format!("{name}: healthy again"),
        EventData::ProviderFailed { name, reason } => format!("{name}: restarted too often, giving up ({reason})"),
        EventData::ControlRefused { subject, verb, reason, operator } => {
            format!(
                "{verb} on {subject}: {reason}{}",
                operator.as_ref().map(|o| format!(" (operator {o})")).unwrap_or_default()
            )
        }
        EventData::ReplyRefused { subject, reason } => format!("request on {subject} left unanswered: {reason}"),
        EventData::HostRefused { subject, host, reason, suppressed } => format!(
            "ignored {subject}{}: {reason}{}",
            host.as_ref().map(|h| format!(" claiming to be host {h}")).unwrap_or_default(),
            if *suppressed > 0 { format!(" ({suppressed} more not reported)") } else { String::new() }
        ),
        EventData::ProviderStopped { name } => format!("{name}: stopped"),
        EventData::AppDeployed { app, revision, version } => format!("{app} revision {revision} (version {version})"),
        EventData::AppReconciled { app, revision } => format!("{app} revision {revision}: everything runs"),
        EventData::AppDegraded { app, revision, reason } => format!("{app} revision {revision}: {reason}"),
        EventData::AppDeleted { app } => format!("{app}: nothing of it runs any more"),
        EventData::LeaderElected { previous } => match previous {
            Some(previous) => format!("leads the lattice's reconciler (took over from {previous})"),
            None => "leads the lattice's reconciler".to_owned(),
        },
        EventData::MessageDead { actor, link, subject, id, attempts, reason, seq } => format!(
            "{actor} (link {link}) gave up on {subject} id {id} after {attempts} deliveries: {reason} \
             (lattice dlq replay {actor} --seq {seq})"
        ),
        other => format!("{other:?}"),
    }
}

/// An event as JSON: its kind spelled as in text and in its subject (`provider.restarting`), and its fields.
fn event_json(event: &Event) -> serde_json::Value {
    // The wire form is externally tagged by the Rust variant ({"ProviderRestarting": {...}}); keep the fields.
    let data = match serde_json::to_value(&event.data) {
        Ok(serde_json::Value::Object(tagged)) if tagged.len() == 1 => tagged.into_iter().next().map(|(_, v)| v),
        Ok(_) | Err(_) => None,
    };
    serde_json::json!({
        "kind": event.data.kind(),
        "host": event.host,
        "time": humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(event.time_ms))
            .to_string(),
        "time_ms": event.time_ms,
        "data": data.unwrap_or(serde_json::Value::Null),
    })
}

fn print_event(event: &Event, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => print_json_line(&event_json(event))?,
        Output::Text => {
            let time = humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(event.time_ms));
            println!("{time} {:<15} {:<16} {}", event.data.kind(), event.host, describe(&event.data));
        }
    }
    Ok(())
}

pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let lattice = &args.lattice;
    let client = lattice.client().await?;
    // Subscribe before reading history so nothing falls between the two.
    let mut live = if args.follow { Some(client.events().await?) } else { None };
    for event in client.recent_events(args.last).await? {
        print_event(&event, args.output)?;
    }
    let Some(live) = live.as_mut() else { return Ok(()) };
    while let Some(event) = live.next().await {
        match event {
            Ok(event) if !args.heartbeats && matches!(event.data, EventData::HostHeartbeat(_)) => {}
            Ok(event) => print_event(&event, args.output)?,
            Err(error) => eprintln!("undecodable event: {error}"),
        }
    }
    Ok(())
}

/// Set or remove a host's labels.
#[derive(Debug, Args)]
pub struct LabelArgs {
    #[command(subcommand)]
    pub command: LabelCommand,
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
    /// Output format
    #[arg(long, short, value_enum, default_value_t, global = true)]
    pub output: Output,
}

/// What to do with a label.
#[derive(Debug, Subcommand)]
pub enum LabelCommand {
    /// Set a label: lattice label put <host> key=value
    Put {
        /// The host
        host: Name,
        /// key=value
        #[arg(value_parser = parse_label)]
        label: (String, String),
    },
    /// Remove a label: lattice label del <host> key
    Del {
        /// The host
        host: Name,
        /// The key
        key: String,
    },
}

pub async fn label(args: LabelArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    let labels = match args.command {
        LabelCommand::Put { host, label: (k, v) } => client.put_label(&host, &k, &v).await?,
        LabelCommand::Del { host, key } => client.delete_label(&host, &key).await?,
    };
    if args.output == Output::Json {
        return print_json(&serde_json::json!({"host": labels.host, "labels": labels.labels}));
    }
    println!("host {} labels: {}", labels.host, labels_text(&labels.labels));
    Ok(())
}

/// Links stored in the lattice: every host running the actor applies a change to its next invocation.
#[derive(Debug, Args)]
pub struct LinkArgs {
    #[command(subcommand)]
    pub command: LinkCommand,
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
    /// Output format
    #[arg(long, short, value_enum, default_value_t, global = true)]
    pub output: Output,
}

/// What to do with links.
#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Set a link: lattice link put kv-counter keyvalue default --provider redis --config bucket=prod
    Put {
        /// The actor
        actor: Name,
        /// The interface: keyvalue, messaging or http (http outgoing --provider allow --config hosts=a.com|b.com)
        interface: lattice_core::link::Interface,
        /// The name the actor opens (e.g. `default` in store.open("default"))
        name: String,
        /// The provider instance to bind it to (see `lattice inventory <host>`)
        #[arg(long)]
        provider: String,
        /// Provider config key=value (repeatable)
        #[arg(long = "config", value_parser = parse_label, value_name = "KEY=VALUE")]
        config: Vec<(String, String)>,
        /// Store the link even if no host serves the provider yet (e.g. before `lattice provider start`);
        /// without it, a provider no host serves is refused
        #[arg(long)]
        force: bool,
    },
    /// Remove a link (the actor then gets access-denied for that name)
    Del {
        /// The actor
        actor: Name,
        /// The interface
        interface: lattice_core::link::Interface,
        /// The link name
        name: String,
    },
    /// Show the links of one actor: lattice link get kv-counter
    Get {
        /// The actor
        actor: Name,
    },
    /// List every link stored in the lattice
    List,
}

pub async fn link(args: LinkArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    let json = args.output == Output::Json;
    match args.command {
        LinkCommand::Put { actor, interface, name, provider, config, force } => {
            let spec = lattice_core::link::LinkSpec { interface, name, provider, config: config.into_iter().collect() };
            // Validate the spec exactly as hosts will parse it.
            let spec: lattice_core::link::LinkSpec = spec.to_string().parse().map_err(usage)?;
            if spec.interface == lattice_core::link::Interface::Http {
                lattice_core::http::OutgoingPolicy::from_link(&spec).map_err(usage)?;
            }
            if !force {
                client.check_link_provider(&spec, Duration::from_millis(500)).await.map_err(|e| match e {
                    ClientError::UnknownProvider { .. } => {
                        not_found(format!("{e}: start it first, or pass --force to store the link anyway"))
                    }
                    other => other.into(),
                })?;
            }
            client.put_link(&actor, &spec).await?;
            if json {
                return print_json(&serde_json::json!({"actor": actor, "link": spec.to_string(), "stored": true}));
            }
            println!("link {actor} {spec} stored");
        }
        LinkCommand::Del { actor, interface, name } => {
            if !client.delete_link(&actor, interface, &name).await? {
                return Err(not_found(format!("actor `{actor}` has no {interface} link named `{name}`")));
            }
            if json {
                return print_json(&serde_json::json!({
                    "actor": actor, "interface": interface.to_string(), "name": name, "deleted": true,
                }));
            }
            println!("link {actor} {interface}:{name} deleted");
        }
        LinkCommand::Get { actor } => crate::inventory::link_get(&client, &actor, args.output).await?,
        LinkCommand::List => {
            let links = client.list_links().await?;
            if json {
                let docs: Vec<_> =
                    links.iter().map(|l| serde_json::json!({"actor": l.actor, "link": l.link})).collect();
                return print_json(&docs);
            }
            let mut t = table(&["ACTOR", "LINK"]);
            for l in &links {
                t.add_row([l.actor.to_string(), l.link.clone()]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

/// Provider instances on hosts.
#[derive(Debug, Args)]
pub struct ProviderArgs {
    #[command(subcommand)]
    pub command: ProviderCommand,
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
    /// Output format
    #[arg(long, short, value_enum, default_value_t, global = true)]
    pub output: Output,
}

/// What to do with providers.
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Start a built-in provider on a host: lattice provider start redis --host h1 --config url=redis://…
    Start {
        /// The kind: inmemory or redis (key-value)
        kind: String,
        /// The host to start it on
        #[arg(long = "host", value_name = "ID")]
        host: Name,
        /// Instance name actors link to [the kind]; not `inmemory` or `nats` (built in), nor a name already
        /// started on the host
        #[arg(long)]
        name: Option<String>,
        /// Kind-specific config key=value (redis: url, prefix, timeout). A url must match one of the host's
        /// --provider-allow patterns
        #[arg(long = "config", value_parser = parse_label, value_name = "KEY=VALUE")]
        config: Vec<(String, String)>,
    },
    /// Stop a provider instance started on a host: lattice provider stop cache --host h1. Actors linked to it
    /// reach another host's instance of that name, if any, else their calls get errors
    Stop {
        /// The instance name
        name: String,
        /// The host it runs on
        #[arg(long = "host", value_name = "ID")]
        host: Name,
    },
    /// List the provider instances every host serves (built-in ones included)
    List,
    /// Restart a provider whose supervisor gave up (after a `provider.failed` event): lattice provider restart
    /// cache --host h1
    Restart {
        /// The instance name
        name: String,
        /// The host it runs on
        #[arg(long = "host", value_name = "ID")]
        host: Name,
    },
}

pub async fn provider(args: ProviderArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    let json = args.output == Output::Json;
    match args.command {
        ProviderCommand::Start { kind, host, name, config } => {
            let name = name.unwrap_or_else(|| kind.clone());
            let started = client.start_provider(&host, &name, &kind, config.into_iter().collect()).await?;
            if json {
                return print_json(
                    &serde_json::json!({"name": started.name, "kind": started.kind, "host": started.host}),
                );
            }
            println!("started provider {} ({}) on host {}", started.name, started.kind, started.host);
        }
        ProviderCommand::Stop { name, host } => {
            let stopped = client.stop_provider(&host, &name).await?;
            if json {
                return print_json(&serde_json::json!({"name": stopped.name, "host": stopped.host}));
            }
            println!("stopped provider {} on host {}", stopped.name, stopped.host);
        }
        ProviderCommand::List => crate::inventory::provider_list(&client, args.output).await?,
        ProviderCommand::Restart { name, host } => {
            let restarted = client.restart_provider(&host, &name).await?;
            if json {
                return print_json(&serde_json::json!({
                    "name": restarted.name, "kind": restarted.kind, "host": restarted.host,
                    "unhealthy": restarted.unhealthy,
                }));
            }
            match restarted.unhealthy {
                None => {
                    println!("restarted provider {} ({}) on host {}", restarted.name, restarted.kind, restarted.host)
                }
                Some(reason) => println!(
                    "restarted provider {} ({}) on host {}, but its health check fails: {reason}; it is supervised again",
                    restarted.name, restarted.kind, restarted.host
                ),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn event_kinds_are_spelled_alike_in_json_and_text() {
        let event = Event {
            host: Name::new("h1").unwrap(),
            time_ms: 1_767_607_200_123,
            data: EventData::ProviderRestarting { name: "cache".into(), attempt: 2, reason: "refused".into() },
        };
        let json = event_json(&event);
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "provider.restarting", "host": "h1", "time": "2026-01-05T10:00:00.123Z",
                "time_ms": 1_767_607_200_123_u64, "data": {"name": "cache", "attempt": 2, "reason": "refused"},
            })
        );
        assert_eq!(event.data.kind(), "provider.restarting");
        assert_eq!(describe(&event.data), "cache: restart 2 (refused)");
    }
}
