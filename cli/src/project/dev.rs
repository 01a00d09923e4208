//! `lattice dev`: rebuild and redeploy an actor project to the local lattice on every save.

use std::path::{Component, Path};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lattice_core::link::LinkSpec;
use lattice_core::subject::Name;
use notify::{RecursiveMode, Watcher};

use super::build::{BuildFlags, build};
use crate::args::{LimitArgs, Output};
use crate::connect::LatticeArgs;
use crate::ctl::{self, PushArgs, StartArgs};
use crate::operator::OperatorKeyArgs;

/// How long to wait after a change for more (an editor's save is several events).
const SETTLE: Duration = Duration::from_millis(300);

/// Rebuild and redeploy the actor project to the local lattice on every save.
///
/// On every save it rebuilds the project (as `lattice build`), pushes it and starts it in place of the running
/// one on the lattice (as `lattice up` runs it), printing each result or error. Ctrl-C stops.
///
/// It watches the project's files and directories except build outputs (target/, build/, hidden ones, generated
/// bindings), directories added while it runs included. A failed build or deploy is printed and the watch goes
/// on. The actor runs under its project's name, on the hosts already running it, else on one host chosen by
/// auction.
///
/// Example: lattice up --trusted-issuer dev &  lattice dev --link keyvalue:default=inmemory --call visits
#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    build: BuildFlags,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    operator: OperatorKeyArgs,
    /// Bind an import: <interface>:<name>=<provider>[,key=value...] (repeatable)
    #[arg(long = "link", value_name = "LINK")]
    links: Vec<LinkSpec>,
    #[command(flatten)]
    limits: LimitArgs,
    /// After each deploy, call the actor with this payload and print its reply
    #[arg(long, value_name = "PAYLOAD")]
    call: Option<String>,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let dir = super::absolute(&args.build.path)?;
    super::Lang::detect(&dir)?;
    eprintln!("watching {} (Ctrl-C stops)", dir.display());
    let (sender, changes) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
        {
            let _ = sender.send(event.paths);
        }
    })
    .context("cannot watch files")?;
    // The project's top level, and each of its directories but build outputs (a target/ can hold thousands).
    watcher.watch(&dir, RecursiveMode::NonRecursive).with_context(|| format!("cannot watch {}", dir.display()))?;
    watch_directories(&mut watcher, &dir)?;
    let (wake, mut saved) = tokio::sync::mpsc::unbounded_channel();
    let project = dir.clone();
    // notify delivers on its own thread; this one filters and settles the events, then wakes the loop below.
    std::thread::spawn(move || {
        while let Ok(paths) = changes.recv() {
            if !paths.iter().any(|p| is_source(&dir, p)) {
                continue;
            }
            while changes.recv_timeout(SETTLE).is_ok() {}
            if wake.send(()).is_err() {
                return;
            }
        }
    });
    loop {
        if let Err(error) = deploy(&args).await {
            eprintln!("error: {error:#}");
        }
        eprintln!("waiting for a change…");
        tokio::select! {
            change = saved.recv() => if change.is_none() { return Ok(()) },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        // Saves made during the last round wake it once more, not once each.
        while saved.try_recv().is_ok() {}
        // A directory added since (its creation is a change at the top level) is watched from now on.
        if let Err(error) = watch_directories(&mut watcher, &project) {
            eprintln!("error: {error:#}");
        }
    }
}

/// Watches each source directory at the top of the project, recursively. Run every round, so that a directory
/// created (or removed and created again) since is watched from then on; watching one again only renews it.
fn watch_directories(watcher: &mut impl Watcher, dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
        if path.is_dir() && is_source(dir, &path) {
            watcher
                .watch(&path, RecursiveMode::Recursive)
                .with_context(|| format!("cannot watch {}", path.display()))?;
        }
    }
    Ok(())
}

/// One round: build, push, start in place, and call when asked.
async fn deploy(args: &DevArgs) -> anyhow::Result<()> {
    let flags = args.build.clone();
    let built = tokio::task::spawn_blocking(move || build(&flags)).await.context("the build task failed")??;
    let name = Name::new(built.name.clone()).with_context(|| format!("`{}` cannot name an actor", built.name))?;
    ctl::push(PushArgs {
        lattice: args.lattice.clone(),
        file: built.path.clone(),
        name: Some(name.clone()),
        allow_unsigned: args.build.no_sign,
        output: Output::Text,
    })
    .await?;
    let client = args.lattice.client().await?;
    let hosts: Vec<Name> = client
        .ping(Duration::from_millis(500))
        .await?
        .into_iter()
        .filter(|h| h.actors.iter().any(|a| a.name == name))
        .map(|h| h.id)
        .collect();
    ctl::start(StartArgs {
        lattice: args.lattice.clone(),
        operator: args.operator.clone(),
        actor: name.clone(),
        artifact: None,
        path: None,
        digest: None,
        hosts,
        constraints: Vec::new(),
        replicas: 1,
        links: args.links.clone(),
        limits: args.limits.clone(),
        output: Output::Text,
    })
    .await?;
    if let Some(payload) = &args.call {
        let reply = client.call(&name, None, payload.clone().into_bytes().into(), Duration::from_secs(10), None).await;
        match reply {
            Ok(reply) => {
                println!("{}", reply.data.map(|d| String::from_utf8_lossy(&d).into_owned()).unwrap_or_default())
            }
            Err(error) => eprintln!("error: call {name}: {error}"),
        }
    }
    Ok(())
}

/// Whether a change to `path` is a change to the project's sources, not to what builds write.
fn is_source(dir: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(dir) else { return false };
    let ignored = |c: Component<'_>| {
        let name = c.as_os_str().to_string_lossy();
        name.starts_with('.')
            || matches!(name.as_ref(), "target" | "build" | "wit_world" | "__pycache__")
            || name.starts_with("componentize_py")
    };
    // cargo writes Cargo.lock itself on the first build: a change to it would rebuild once more for nothing.
    !relative.components().any(ignored)
        && !relative.to_string_lossy().ends_with(".wasm")
        && relative != Path::new("Cargo.lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_outputs_are_not_sources() {
        let dir = Path::new("/p");
        for source in ["/p/src/lib.rs", "/p/app.py", "/p/Cargo.toml", "/p/wit/lattice.wit"] {
            assert!(is_source(dir, Path::new(source)), "{source}");
        }
        for output in [
            "/p/target/x",
            "/p/build/a.wasm",
            "/p/.git/index",
            "/p/wit_world/x.py",
            "/q/app.py",
            "/p/a.wasm",
            "/p/Cargo.lock",
        ] {
            assert!(!is_source(dir, Path::new(output)), "{output}");
        }
    }
}
