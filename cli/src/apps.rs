//! Declarative apps: `apply`, `diff`, `status`, `delete`, `apps` (see docs/manifest.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lattice_client::LatticeClient;
use lattice_core::http::Route;
use lattice_core::manifest::{ArtifactSource, Manifest, ManifestError};
use lattice_core::subject::Name;
use lattice_core::wire::{AppActor, AppProvider, AppRecord, AppSpec, AppStatus, HostInfo};
use lattice_host::files::{MAX_COMPONENT_BYTES, MAX_TEXT_BYTES, read_file, read_text};
use sha2::{Digest, Sha256};

use crate::args::Output;
use crate::connect::LatticeArgs;
use crate::operator::OperatorKeyArgs;
use crate::output::{not_found, print_json, refused, table, timeout};

/// The manifest and environment to read.
#[derive(Debug, Clone, Args)]
pub struct ManifestArgs {
    /// The manifest
    #[arg(default_value = "lattice.toml", value_name = "FILE")]
    pub file: PathBuf,
    /// The environment whose `[env.NAME]` overrides apply [none: the base declarations]
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
}

/// Apply a manifest (lattice.toml): validate it, push its local artifacts, store it as the app's next
/// revision, and wait until the lattice runs it.
///
/// Nothing changes when the manifest has any error (each is printed as file:line:column: field: problem).
/// Exit code 0 once the app is reconciled; 5 (timeout) with the reason when --timeout runs out first; 4
/// (refused) when the manifest has errors.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Validate and show what would change, but change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait until the app is reconciled (0: do not wait)
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

/// Show what `lattice apply` would change, without changing anything.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

/// Show an app's desired against actual state: replicas wanted and running per actor, where, the last
/// placement error, providers and links. Without APP, every app.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    /// The app [every app]
    pub app: Option<Name>,
    /// Wait until the app is reconciled: exit 0 then, or 5 (timeout) with the reason when the time runs out
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", requires = "app")]
    pub wait: Option<Duration>,
    /// List the app's stored revisions instead (version, environment, when, signed by)
    #[arg(long, requires = "app", conflicts_with = "wait")]
    pub history: bool,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

/// Delete an app: stop everything it placed, remove its links, routes and providers, and report what was
/// removed.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
    /// The app
    pub app: Name,
    /// How long to wait until nothing of it runs
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

/// List the lattice's apps.
#[derive(Debug, Args)]
pub struct AppsArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

/// A validated manifest, resolved for one environment and checked against the lattice.
struct Prepared {
    spec: AppSpec,
    /// Artifacts to push first: (name, bytes).
    pushes: Vec<(String, Vec<u8>)>,
}

/// Prints every error and fails with their count.
fn refuse(file: &Path, errors: &[ManifestError]) -> anyhow::Error {
    for error in errors {
        eprintln!("{error}");
    }
    let n = errors.len();
    refused(format!("{n} error{} in {}: nothing was applied", if n == 1 { "" } else { "s" }, file.display()))
}

/// Reads, validates and resolves the manifest, and checks what only the lattice knows: artifacts that must
/// exist and providers that must be served. Every problem is reported, located in the file.
async fn prepare(client: &LatticeClient, args: &ManifestArgs) -> anyhow::Result<Prepared> {
    let file = &args.file;
    let text = read_text(file, MAX_TEXT_BYTES)?;
    let shown = file.display().to_string();
    let manifest = Manifest::parse(&shown, &text).map_err(|e| refuse(file, &e.0))?;
    let mut resolved = manifest.resolve(args.env.as_deref()).map_err(|e| refuse(file, &e.0))?;
    // Relative artifact paths are relative to the manifest's directory.
    let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    let mut pushes: Vec<(String, Vec<u8>)> = Vec::new();
    let mut found = Vec::new();
    for actor in &resolved.actors {
        let path = format!("actor `{}`.artifact", actor.spec.name);
        let located = |message: String| resolved.error(actor.line, 1, &path, message);
        let artifact = match &actor.source {
            ArtifactSource::Path(relative) => {
                let full = base.join(relative);
                match read_file(&full, MAX_COMPONENT_BYTES) {
                    // Bytes no host could run are refused here, like `lattice push` does. Unsigned ones go
                    // through: whether they run is each host's setting, and `lattice status` reports it.
                    Ok(bytes) if let Err(error) = crate::check::pushable(&full, &bytes, true) => {
                        errors.push(located(format!("{error:#}")));
                        None
                    }
                    Ok(bytes) => {
                        let digest = hex::encode(Sha256::digest(&bytes));
                        let name = format!("sha256-{digest}");
                        if client.artifact_digest(&name).await?.as_deref() != Some(digest.as_str())
                            && !pushes.iter().any(|(n, _)| n == &name)
                        {
                            pushes.push((name.clone(), bytes));
                        }
                        Some((name, digest))
                    }
                    Err(error) => {
                        errors.push(located(format!("artifact file: {error}")));
                        None
                    }
                }
            }
            ArtifactSource::Pushed(name) => match client.artifact_digest(name).await? {
                // A name `apply` gave (`sha256-<hex>`) says its digest: an object recording another was replaced.
                Some(digest) if name.strip_prefix("sha256-").is_some_and(|named| named != digest) => {
                    errors.push(located(format!(
                        "artifact `{name}` records sha256 {digest}, not the one its name gives: the object was \
                         replaced; give the path to the .wasm file to push it again"
                    )));
                    None
                }
                Some(digest) => Some((name.clone(), digest)),
                None => {
                    errors.push(located(format!(
                        "artifact `{name}` is not in the lattice's artifact store: push it (`lattice push`) or give \
                         a path to the .wasm file"
                    )));
                    None
                }
            },
        };
        found.push(artifact);
    }
    for (actor, link) in resolved.undeclared_links() {
        if let Err(error) = client.check_link_provider(&link.spec, Duration::from_millis(300)).await {
            errors.push(resolved.error(
                link.line,
                link.column,
                &link.path,
                format!(
                    "unknown provider `{}` for actor `{}`: not declared in the manifest's [[provider]] and {error}",
                    link.spec.provider, actor.spec.name
                ),
            ));
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.line, e.column));
        return Err(refuse(file, &errors));
    }
    for (actor, (name, digest)) in resolved.actors.iter_mut().zip(found.into_iter().flatten()) {
        actor.spec.artifact = name;
        actor.spec.digest = digest;
    }
    Ok(Prepared { spec: resolved.spec(), pushes })
}

/// What applying `next` over `current` changes, one line per change.
fn changes(current: Option<&AppSpec>, next: &AppSpec) -> Vec<String> {
    let mut out = Vec::new();
    let Some(current) = current else {
        out.push(format!("+ app {} {}", next.name, next.version));
        for actor in &next.actors {
            out.push(format!("+ actor {}: {}", actor.name, describe_actor(actor)));
        }
        for provider in &next.providers {
            out.push(format!("+ provider {}: {}", provider.name, describe_provider(provider)));
        }
        return out;
    };
    if current.version != next.version {
        out.push(format!("~ version: {} -> {}", current.version, next.version));
    }
    if current.env != next.env {
        let env = |e: &Option<String>| e.clone().unwrap_or_else(|| "(none)".into());
        out.push(format!("~ env: {} -> {}", env(&current.env), env(&next.env)));
    }
    for actor in &next.actors {
        match current.actors.iter().find(|a| a.name == actor.name) {
            None => out.push(format!("+ actor {}: {}", actor.name, describe_actor(actor))),
            Some(old) if old != actor => {
                for (field, before, after) in actor_fields(old)
                    .into_iter()
                    .zip(actor_fields(actor))
                    .filter_map(|((field, before), (_, after))| (before != after).then_some((field, before, after)))
                {
                    out.push(format!("~ actor {}: {field}: {before} -> {after}", actor.name));
                }
            }
            Some(_) => {}
        }
    }
    for old in current.actors.iter().filter(|a| !next.actors.iter().any(|n| n.name == a.name)) {
        out.push(format!("- actor {}", old.name));
    }
    for provider in &next.providers {
        match current.providers.iter().find(|p| p.name == provider.name) {
            None => out.push(format!("+ provider {}: {}", provider.name, describe_provider(provider))),
            Some(old) if old != provider => out.push(format!(
                "~ provider {}: {} -> {}",
                provider.name,
                describe_provider(old),
                describe_provider(provider)
            )),
            Some(_) => {}
        }
    }
    for old in current.providers.iter().filter(|p| !next.providers.iter().any(|n| n.name == p.name)) {
        out.push(format!("- provider {}", old.name));
    }
    out
}

fn actor_fields(actor: &AppActor) -> Vec<(&'static str, String)> {
    let opt = |v: Option<u64>| v.map_or_else(|| "default".to_owned(), |v| v.to_string());
    let map = |m: &BTreeMap<String, String>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        }
    };
    vec![
        ("artifact", format!("{} ({})", actor.artifact, short(&actor.digest))),
        ("replicas", actor.replicas.to_string()),
        ("spread", actor.spread.clone().unwrap_or_else(|| "none".into())),
        ("constraints", map(&actor.constraints)),
        ("max_concurrency", opt(actor.limits.max_concurrency.map(u64::from))),
        ("memory", opt(actor.limits.memory_bytes)),
        ("cpu_time_ms", opt(actor.limits.cpu_time_ms)),
        ("timeout_ms", opt(actor.limits.timeout_ms)),
        ("max_reply", opt(actor.limits.max_reply_bytes)),
        ("instance_reuse", opt(actor.limits.instance_reuse.map(u64::from))),
        ("links", actor.links.join(" ")),
        ("routes", actor.routes.join(" ")),
    ]
}

fn describe_actor(actor: &AppActor) -> String {
    format!(
        "{} replica{} of {} ({}), links {}{}",
        actor.replicas,
        if actor.replicas == 1 { "" } else { "s" },
        actor.artifact,
        short(&actor.digest),
        if actor.links.is_empty() { "none".to_owned() } else { actor.links.join(" ") },
        if actor.routes.is_empty() { String::new() } else { format!(", routes {}", actor.routes.join(" ")) }
    )
}

fn describe_provider(provider: &AppProvider) -> String {
    let config: Vec<String> = provider.config.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{} {}", provider.kind, config.join(","))
}

fn short(digest: &str) -> String {
    digest.chars().take(12).collect()
}

pub async fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    let prepared = prepare(&client, &args.manifest).await?;
    let name = prepared.spec.name.clone();
    let current = client.app(&name).await?;
    let changes = changes(current.as_ref().map(|r| &r.spec), &prepared.spec);
    let text = args.output == Output::Text;
    if args.dry_run {
        if args.output == Output::Json {
            return print_json(&serde_json::json!({"app": name, "changes": changes, "applied": false}));
        }
        print_changes(&name, &changes);
        println!("dry run: nothing was applied");
        return Ok(());
    }
    for (artifact, bytes) in prepared.pushes {
        push(&client, &artifact, bytes, text).await?;
    }
    let spec = prepared.spec.clone();
    let applied = client.apply_app(prepared.spec).await?;
    if text {
        if applied.changed {
            print_changes(&name, &changes);
            println!("applied app {name} revision {}", applied.revision);
        } else {
            println!("app {name} is unchanged (revision {}): nothing to apply", applied.revision);
        }
    }
    let deadline = tokio::time::Instant::now() + args.timeout;
    // Links switch to the app's providers only once those run, so calls never reach a missing provider.
    if !spec.providers.is_empty() && !args.timeout.is_zero() {
        wait_until(&client, &name, deadline, args.timeout, text, Stage::Providers).await?;
    }
    let (links_put, links_removed) = client.sync_app_links(applied.previous.as_ref(), Some(&spec)).await?;
    if text {
        for link in &links_put {
            println!("link {link}");
        }
        for link in &links_removed {
            println!("removed link {link}");
        }
    }
    let (routes_put, routes_removed) = sync_app_routes(&client, applied.previous.as_ref(), Some(&spec)).await?;
    if text {
        for route in &routes_put {
            println!("route {route}");
        }
        for route in &routes_removed {
            println!("removed route {route}");
        }
    }
    let status = if args.timeout.is_zero() {
        None
    } else {
        Some(wait_until(&client, &name, deadline, args.timeout, text, Stage::Reconciled).await?)
    };
    if args.output == Output::Json {
        print_json(&serde_json::json!({
            "app": name, "revision": applied.revision, "changed": applied.changed, "changes": changes,
            "links_put": links_put, "links_removed": links_removed, "routes_put": routes_put,
            "routes_removed": routes_removed, "status": status,
        }))?;
    } else if status.is_some() {
        println!("app {name} revision {} is reconciled", applied.revision);
    }
    Ok(())
}

/// Stores the HTTP routes of `next` not already stored for their actor, and removes those `previous` had that
/// `next` has not (unless the lattice routes them to another actor by now). Returns the routes put and
/// removed, as `actor route`.
async fn sync_app_routes(
    client: &LatticeClient,
    previous: Option<&AppSpec>,
    next: Option<&AppSpec>,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let stored = client.list_routes().await?;
    let routes = |spec: Option<&AppSpec>| -> anyhow::Result<Vec<(Name, Route)>> {
        let actors = spec.map(|s| s.actors.as_slice()).unwrap_or_default();
        let pairs = actors.iter().flat_map(|a| a.routes.iter().map(move |r| (a, r)));
        pairs
            .map(|(actor, text)| {
                let route = text.parse().with_context(|| format!("actor `{}` of the stored app", actor.name))?;
                Ok((actor.name.clone(), route))
            })
            .collect()
    };
    let (before, after) = (routes(previous)?, routes(next)?);
    let mut put = Vec::new();
    for (actor, route) in after.iter().filter(|(actor, route)| !stored.contains(&(route.clone(), actor.clone()))) {
        client.put_route(actor, route).await?;
        put.push(format!("{actor} {route}"));
    }
    let mut removed = Vec::new();
    for (actor, route) in &before {
        let kept = after.iter().any(|(_, r)| r == route);
        let ours = stored.iter().any(|(r, a)| r == route && a == actor);
        if !kept && ours && client.delete_route(route).await? {
            removed.push(format!("{actor} {route}"));
        }
    }
    Ok((put, removed))
}

fn print_changes(app: &Name, changes: &[String]) {
    if changes.is_empty() {
        println!("app {app}: no changes");
    }
    for change in changes {
        println!("{change}");
    }
}

async fn push(client: &LatticeClient, name: &str, bytes: Vec<u8>, text: bool) -> anyhow::Result<()> {
    let pushed = crate::ctl::push_with_progress(client, name, bytes, text).await?;
    if text {
        println!("pushed {} ({} bytes)", pushed.name, pushed.size);
    }
    Ok(())
}

/// What [`wait_until`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Every provider the app declares runs somewhere.
    Providers,
    /// Everything the app wants runs, on current specs.
    Reconciled,
}

/// Waits until the leader reports `stage` for the app's current revision; fails with the last reason once
/// `deadline` passes (`timeout`: how long that was, for the message).
async fn wait_until(
    client: &LatticeClient,
    app: &Name,
    deadline: tokio::time::Instant,
    timeout: Duration,
    text: bool,
    stage: Stage,
) -> anyhow::Result<AppStatus> {
    let spinner = indicatif::ProgressBar::new_spinner();
    if text {
        spinner.enable_steady_tick(Duration::from_millis(120));
    } else {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    loop {
        let Some(record) = client.app(app).await? else {
            spinner.finish_and_clear();
            return Err(not_found(format!("app `{app}` was deleted while waiting")));
        };
        let reason = match client.app_status(app).await? {
            Some(status) if status.revision == record.revision => {
                let done = match stage {
                    Stage::Providers => status.providers.iter().all(|p| !p.hosts.is_empty()),
                    Stage::Reconciled => status.reconciled,
                };
                if done {
                    spinner.finish_and_clear();
                    return Ok(status);
                }
                status.reason.clone().unwrap_or_default()
            }
            _ => match client.leader().await? {
                Some(leader) => format!("waiting for leader {leader} to pick up revision {}", record.revision),
                None => "no host leads the lattice's reconciler (is any host running?)".to_owned(),
            },
        };
        spinner.set_message(format!("{app}: {reason}"));
        if tokio::time::Instant::now() >= deadline {
            spinner.finish_and_clear();
            return Err(crate::output::timeout(format!(
                "app `{app}` revision {} is not reconciled after {}: {reason}",
                record.revision,
                humantime::format_duration(timeout)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn diff(args: DiffArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    let prepared = prepare(&client, &args.manifest).await?;
    let current = client.app(&prepared.spec.name).await?;
    let changes = changes(current.as_ref().map(|r| &r.spec), &prepared.spec);
    if args.output == Output::Json {
        let pushes: Vec<_> = prepared
            .pushes
            .iter()
            .map(|(name, bytes)| serde_json::json!({"name": name, "size": bytes.len()}))
            .collect();
        return print_json(&serde_json::json!({"app": prepared.spec.name, "changes": changes, "pushes": pushes}));
    }
    print_changes(&prepared.spec.name, &changes);
    for (name, bytes) in &prepared.pushes {
        println!("+ push {name} ({} bytes)", bytes.len());
    }
    Ok(())
}

pub async fn apps(args: AppsArgs) -> anyhow::Result<()> {
    let client = args.lattice.client().await?;
    let mut rows = Vec::new();
    for record in client.apps().await? {
        let status = client.app_status(&record.spec.name).await?;
        rows.push((record, status));
    }
    if args.output == Output::Json {
        let docs: Vec<_> = rows.iter().map(|(record, status)| summary_json(record, status.as_ref())).collect();
        return print_json(&docs);
    }
    let mut t = table(&["APP", "VERSION", "REVISION", "ENV", "ACTORS", "STATUS"]);
    for (record, status) in &rows {
        t.add_row([
            record.spec.name.to_string(),
            record.spec.version.clone(),
            record.revision.to_string(),
            record.spec.env.clone().unwrap_or_else(|| "-".into()),
            record.spec.actors.len().to_string(),
            state_text(record, status.as_ref()),
        ]);
    }
    println!("{t}");
    if rows.is_empty() {
        eprintln!(
            "no apps in lattice `{}` (declare one in lattice.toml and `lattice apply`)",
            client.subjects().lattice()
        );
    }
    Ok(())
}

fn state_text(record: &AppRecord, status: Option<&AppStatus>) -> String {
    match status {
        Some(s) if s.revision == record.revision && s.reconciled => "reconciled".into(),
        Some(s) if s.revision == record.revision => s.reason.clone().unwrap_or_else(|| "not reconciled".into()),
        _ => format!("revision {} not picked up yet", record.revision),
    }
}

fn summary_json(record: &AppRecord, status: Option<&AppStatus>) -> serde_json::Value {
    serde_json::json!({
        "app": record.spec.name, "version": record.spec.version, "revision": record.revision,
        "env": record.spec.env, "reconciled": status.is_some_and(|s| s.revision == record.revision && s.reconciled),
        "state": state_text(record, status), "spec": record.spec, "status": status,
    })
}

pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let client = args.lattice.client().await?;
    let Some(app) = args.app.clone() else {
        return apps(AppsArgs { lattice: args.lattice, output: args.output }).await;
    };
    if args.history {
        return history(&client, &app, args.output).await;
    }
    if let Some(wait_for) = args.wait {
        // Fails with the reason when the time runs out.
        let deadline = tokio::time::Instant::now() + wait_for;
        wait_until(&client, &app, deadline, wait_for, false, Stage::Reconciled).await?;
    }
    let Some(record) = client.app(&app).await? else {
        return Err(not_found(format!(
            "no app `{app}` in lattice `{}` (see `lattice apps`)",
            client.subjects().lattice()
        )));
    };
    let status = client.app_status(&app).await?;
    let stored = client.list_links().await?;
    let links: Vec<(Name, String, String)> = record
        .spec
        .actors
        .iter()
        .flat_map(|a| a.links.iter().map(|l| (a.name.clone(), l.clone(), link_state(&stored, &a.name, l))))
        .collect();
    if args.output == Output::Json {
        let mut doc = summary_json(&record, status.as_ref());
        doc["links"] = links
            .iter()
            .map(|(actor, link, state)| serde_json::json!({"actor": actor, "link": link, "state": state}))
            .collect();
        return print_json(&doc);
    }
    let spec = &record.spec;
    println!(
        "app {} {} revision {}{}: {}",
        spec.name,
        spec.version,
        record.revision,
        spec.env.as_ref().map(|e| format!(" (env {e})")).unwrap_or_default(),
        state_text(&record, status.as_ref())
    );
    let current = status.as_ref().filter(|s| s.revision == record.revision);
    let mut t = table(&["ACTOR", "WANTED", "RUNNING", "HOSTS", "OUTDATED", "LAST ERROR"]);
    for actor in &spec.actors {
        let seen = current.and_then(|s| s.actors.iter().find(|a| a.name == actor.name));
        let list = |hosts: &[Name]| {
            if hosts.is_empty() { "-".to_owned() } else { hosts.iter().map(Name::as_str).collect::<Vec<_>>().join(" ") }
        };
        t.add_row([
            actor.name.to_string(),
            actor.replicas.to_string(),
            seen.map_or(0, |s| s.hosts.len()).to_string(),
            seen.map_or_else(|| "-".into(), |s| list(&s.hosts)),
            seen.map_or_else(|| "-".into(), |s| list(&s.outdated)),
            seen.and_then(|s| s.error.clone()).unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{t}");
    if !spec.providers.is_empty() {
        let mut t = table(&["PROVIDER", "KIND", "HOSTS", "LAST ERROR"]);
        for provider in &spec.providers {
            let seen = current.and_then(|s| s.providers.iter().find(|p| p.name == provider.name));
            t.add_row([
                provider.name.to_string(),
                provider.kind.clone(),
                seen.map_or_else(|| "-".into(), |s| s.hosts.iter().map(Name::as_str).collect::<Vec<_>>().join(" ")),
                seen.and_then(|s| s.error.clone()).unwrap_or_else(|| "-".into()),
            ]);
        }
        println!("{t}");
    }
    if !links.is_empty() {
        let mut t = table(&["ACTOR", "LINK", "IN THE LATTICE"]);
        for (actor, link, state) in links {
            t.add_row([actor.to_string(), link, state]);
        }
        println!("{t}");
    }
    if let Some(leader) = client.leader().await? {
        println!("leader: {leader}");
    }
    Ok(())
}

/// Every stored revision of `app`, oldest first.
async fn history(client: &LatticeClient, app: &Name, output: Output) -> anyhow::Result<()> {
    let revisions = client.app_history(app).await?;
    if revisions.is_empty() {
        return Err(not_found(format!(
            "no app `{app}` in lattice `{}` (see `lattice apps`)",
            client.subjects().lattice()
        )));
    }
    if output == Output::Json {
        return print_json(&revisions);
    }
    let mut t = table(&["REVISION", "VERSION", "ENV", "APPLIED", "SIGNED BY", "ACTORS"]);
    for record in &revisions {
        let applied = std::time::UNIX_EPOCH + Duration::from_millis(record.applied_at_ms);
        t.add_row([
            record.revision.to_string(),
            record.spec.version.clone(),
            record.spec.env.clone().unwrap_or_else(|| "-".into()),
            humantime::format_rfc3339_seconds(applied).to_string(),
            record.signature.as_ref().map_or_else(|| "unsigned".into(), |s| s.operator.to_string()),
            record.spec.actors.iter().map(|a| format!("{}×{}", a.name, a.replicas)).collect::<Vec<_>>().join(" "),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// Whether the lattice's links of `actor` hold `link` as the app declares it: `stored`, `missing` (the app's
/// providers may not run yet), or what is stored instead (changed by hand since the apply).
fn link_state(stored: &[lattice_core::wire::LinkRecord], actor: &Name, link: &str) -> String {
    let Ok(declared) = link.parse::<lattice_core::link::LinkSpec>() else { return "-".into() };
    let same_slot = |text: &str| {
        text.parse::<lattice_core::link::LinkSpec>()
            .is_ok_and(|l| l.interface == declared.interface && l.name == declared.name)
    };
    match stored.iter().find(|r| &r.actor == actor && same_slot(&r.link)) {
        Some(record) if record.link == link => "stored".into(),
        Some(record) => format!("differs: {}", record.link),
        None => "missing".into(),
    }
}

/// What an app has placed, host by host, from a ping.
fn placed(hosts: &[HostInfo], app: &Name) -> Vec<String> {
    let mut out = Vec::new();
    for host in hosts {
        for actor in host.actors.iter().filter(|a| a.owner.as_ref().is_some_and(|o| &o.app == app)) {
            out.push(format!("actor {} on {}", actor.name, host.id));
        }
        for (provider, _) in host.provider_owners.iter().filter(|(_, o)| &o.app == app) {
            out.push(format!("provider {provider} on {}", host.id));
        }
    }
    out
}

pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    let before = placed(&client.ping(Duration::from_millis(300)).await?, &args.app);
    let Some((record, links)) = client.delete_app(&args.app).await? else {
        return Err(not_found(format!(
            "no app `{}` in lattice `{}` (see `lattice apps`)",
            args.app,
            client.subjects().lattice()
        )));
    };
    let (_, routes) = sync_app_routes(&client, Some(&record.spec), None).await?;
    let deadline = tokio::time::Instant::now() + args.timeout;
    let left = loop {
        let left = placed(&client.ping(Duration::from_millis(300)).await?, &args.app);
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stopped: Vec<&String> = before.iter().filter(|i| !left.contains(i)).collect();
    if args.output == Output::Text {
        println!("deleted app {} (revision {})", record.spec.name, record.revision);
        for item in &stopped {
            println!("  stopped {item}");
        }
        for link in &links {
            println!("  removed link {link}");
        }
        for route in &routes {
            println!("  removed route {route}");
        }
    }
    if !left.is_empty() {
        return Err(timeout(format!(
            "app {} (revision {}) is deleted, but still running after {}: {} (is a host leading the lattice's \
             reconciler?)",
            record.spec.name,
            record.revision,
            humantime::format_duration(args.timeout),
            left.join(", ")
        )));
    }
    if args.output == Output::Json {
        return print_json(&serde_json::json!({
            "app": record.spec.name, "revision": record.revision, "stopped": stopped, "links_removed": links,
            "routes_removed": routes,
        }));
    }
    Ok(())
}
