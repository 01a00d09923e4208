//! Inventory verbs: `artifact list` and `artifact rm`, `provider list`, `link get <actor>`.

use std::time::Duration;

use clap::{Args, Subcommand};
use lattice_client::LatticeClient;
use lattice_core::subject::Name;

use crate::args::Output;
use crate::connect::LatticeArgs;
use crate::ctl::{print_json, table};
use crate::operator::OperatorKeyArgs;

/// How long `provider list` waits for hosts to answer.
const PROVIDER_LIST_WAIT: Duration = Duration::from_millis(500);

/// The components pushed to the lattice's artifact store (`lattice push`)
#[derive(Debug, Args)]
pub struct ArtifactArgs {
    #[command(subcommand)]
    pub command: ArtifactCommand,
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
}

/// What to do with artifacts.
#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// List every artifact: name, sha256, size, when it was pushed
    List {
        /// Output format
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Remove an artifact by name, or every artifact whose sha256 starts with the given digest (8 hex digits at
    /// least). Actors already started from it keep running
    Rm {
        /// The artifact's name or (a prefix of) its sha256
        artifact: String,
        /// Output format
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
}

/// `lattice artifact …`.
pub async fn artifact(args: ArtifactArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    match args.command {
        ArtifactCommand::List { output } => {
            let artifacts = client.artifacts().await?;
            if output == Output::Json {
                return print_json(&artifacts);
            }
            let mut t = table(&["NAME", "SHA256", "SIZE", "PUSHED"]);
            for a in &artifacts {
                t.add_row([
                    a.name.clone(),
                    a.digest.clone().unwrap_or_else(|| "-".into()),
                    a.size.to_string(),
                    a.modified_ms.map_or_else(|| "-".into(), time_text),
                ]);
            }
            println!("{t}");
            if artifacts.is_empty() {
                eprintln!("no artifacts in lattice `{}` (push one with `lattice push`)", client.subjects().lattice());
            }
        }
        ArtifactCommand::Rm { artifact, output } => {
            let removed = client.remove_artifact(&artifact).await?;
            if output == Output::Json {
                return print_json(&removed);
            }
            for a in &removed {
                println!("removed artifact {} ({})", a.name, a.digest.as_deref().unwrap_or("no recorded sha256"));
            }
        }
    }
    Ok(())
}

/// `lattice provider list`: every provider instance the hosts serve.
pub async fn provider_list(client: &LatticeClient, output: Output) -> anyhow::Result<()> {
    let providers = client.providers(PROVIDER_LIST_WAIT).await?;
    if output == Output::Json {
        return print_json(&providers);
    }
    let mut t = table(&["HOST", "INTERFACE", "NAME", "STARTED BY"]);
    for p in &providers {
        let by = match (&p.app, p.builtin) {
            (Some(app), _) => format!("app {app}"),
            (None, true) => "built in".into(),
            (None, false) => "provider start".into(),
        };
        t.add_row([p.host.to_string(), p.interface.clone(), p.name.clone(), by]);
    }
    println!("{t}");
    if providers.is_empty() {
        eprintln!(
            "no hosts answered in lattice `{}` (start one with `lattice up` or `lattice host`)",
            client.subjects().lattice()
        );
    }
    Ok(())
}

/// `lattice link get <actor>`: the links of one actor.
pub async fn link_get(client: &LatticeClient, actor: &Name, output: Output) -> anyhow::Result<()> {
    let links = client.links_of(actor).await?;
    if output == Output::Json {
        let docs: Vec<_> = links.iter().map(|l| serde_json::json!({"actor": l.actor, "link": l.link})).collect();
        return print_json(&docs);
    }
    let mut t = table(&["LINK", "SIGNED"]);
    for l in &links {
        t.add_row([l.link.clone(), if l.signature.is_some() { "yes" } else { "no" }.into()]);
    }
    println!("{t}");
    if links.is_empty() {
        eprintln!("actor `{actor}` has no links (add one with `lattice link put`)");
    }
    Ok(())
}

/// Unix milliseconds as RFC 3339 (UTC, whole seconds).
fn time_text(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}
