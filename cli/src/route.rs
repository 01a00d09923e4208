//! `lattice route`: which actor serves HTTP requests for a host name and path prefix, on every ingress host.

use clap::{Args, Subcommand};
use lattice_core::http::Route;
use lattice_core::subject::Name;

use crate::args::Output;
use crate::connect::LatticeArgs;
use crate::operator::OperatorKeyArgs;
use crate::output::{not_found, print_json, table, usage};

/// HTTP routes: map a host name and path prefix to an actor, for every host started with --http
#[derive(Debug, Args)]
pub struct RouteArgs {
    #[command(subcommand)]
    pub command: RouteCommand,
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub operator: OperatorKeyArgs,
    /// Output format
    #[arg(long, short, value_enum, default_value_t, global = true)]
    pub output: Output,
}

/// Which requests a route matches.
#[derive(Debug, Clone, Args)]
pub struct RouteMatch {
    /// Host name the request must be for (exact, or *.example.com) [any host]
    #[arg(long = "host", value_name = "NAME")]
    pub host: Option<String>,
    /// Path prefix, matched on whole segments (/v1 matches /v1 and /v1/x, not /v10)
    #[arg(long, default_value = "/", value_name = "PREFIX")]
    pub path: String,
}

impl RouteMatch {
    fn route(&self) -> anyhow::Result<Route> {
        Route::new(self.host.as_deref(), &self.path).map_err(usage)
    }
}

/// What to do with routes.
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Route requests to an actor: lattice route put edge-api --host api.example.com --path /v1
    Put {
        /// The actor (it must export wasi:http/incoming-handler)
        actor: Name,
        #[command(flatten)]
        matches: RouteMatch,
    },
    /// Remove a route
    Del {
        #[command(flatten)]
        matches: RouteMatch,
    },
    /// List every route and its actor
    List,
}

pub async fn route(args: RouteArgs) -> anyhow::Result<()> {
    let client = args.lattice.signed_client(&args.operator).await?;
    let json = args.output == Output::Json;
    match args.command {
        RouteCommand::Put { actor, matches } => {
            let route = matches.route()?;
            let hosts = client.ping(std::time::Duration::from_millis(500)).await?;
            if let Some(warning) = crate::check::route_target(&actor, &hosts)? {
                eprintln!("{warning}");
            }
            client.put_route(&actor, &route).await?;
            if json {
                return print_json(
                    &serde_json::json!({"host": route.host, "path": route.path, "actor": actor, "stored": true}),
                );
            }
            println!("route {route} -> {actor} stored");
        }
        RouteCommand::Del { matches } => {
            let route = matches.route()?;
            if !client.delete_route(&route).await? {
                return Err(not_found(format!("no route {route}")));
            }
            if json {
                return print_json(&serde_json::json!({"host": route.host, "path": route.path, "deleted": true}));
            }
            println!("route {route} deleted");
        }
        RouteCommand::List => {
            let routes = client.list_routes().await?;
            if json {
                let docs: Vec<_> = routes
                    .iter()
                    .map(|(route, actor)| serde_json::json!({"host": route.host, "path": route.path, "actor": actor}))
                    .collect();
                return print_json(&docs);
            }
            let mut t = table(&["HOST", "PATH", "ACTOR"]);
            for (route, actor) in &routes {
                t.add_row([route.host.clone().unwrap_or_else(|| "*".into()), route.path.clone(), actor.to_string()]);
            }
            println!("{t}");
        }
    }
    Ok(())
}
