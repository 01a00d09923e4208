//! `lattice`: the command line of the lattice actor runtime.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod apps;
mod args;
mod check;
mod claims;
mod completions;
mod connect;
mod ctl;
mod ctx;
mod dirs;
mod host;
mod inventory;
mod keys;
mod nats_config;
mod operator;
mod output;
mod policy;
mod project;
mod route;
mod run;
mod workflow;

// Hosts allocate a little per invocation on every thread (stores, headers, tasks); mimalloc's thread-local
// free lists keep that cheap. Benchmarks of the host use the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// lattice: run signed WebAssembly actors on one machine or across a lattice of hosts.
///
/// Connection flags (--nats, --lattice, credentials, --context) go before or after any verb; `lattice ctx`
/// saves them. Every verb takes -o json. Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 refused, 5
/// timeout, 6 unavailable (docs/cli.md).
#[derive(Debug, Parser)]
#[command(name = "lattice", version, about, long_about, propagate_version = true)]
struct Cli {
    /// More logs from lattice on stderr (-v info, -vv debug, -vvv trace); LATTICE_LOG or RUST_LOG (filter
    /// directives, e.g. lattice_host=debug) replace it
    #[arg(short, long, global = true, action = clap::ArgAction::Count, display_order = 1000)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::RunArgs),
    Keys(keys::KeysArgs),
    Claims(claims::ClaimsArgs),
    Up(host::UpArgs),
    /// Join a lattice and run actors (flags > LATTICE_* environment > --config file)
    Host(host::HostArgs),
    Hosts(ctl::HostsArgs),
    Inventory(ctl::InventoryArgs),
    Push(ctl::PushArgs),
    Start(ctl::StartArgs),
    Stop(ctl::StopArgs),
    Scale(ctl::ScaleArgs),
    Call(ctl::CallArgs),
    Publish(workflow::PublishArgs),
    Dlq(workflow::DlqArgs),
    Events(ctl::EventsArgs),
    Label(ctl::LabelArgs),
    Link(ctl::LinkArgs),
    Route(route::RouteArgs),
    Provider(ctl::ProviderArgs),
    Artifact(inventory::ArtifactArgs),
    Apply(apps::ApplyArgs),
    Diff(apps::DiffArgs),
    Status(apps::StatusArgs),
    Delete(apps::DeleteArgs),
    Apps(apps::AppsArgs),
    Ctx(ctx::CtxArgs),
    NatsConfig(nats_config::NatsConfigArgs),
    Completions(completions::CompletionsArgs),
    Man(completions::ManArgs),
    New(project::new::NewArgs),
    Build(project::build::BuildArgs),
    Dev(project::dev::DevArgs),
    Wit(project::wit::WitArgs),
}

/// The version line: the crate's version, the commit it was built from, the wasmtime it embeds and the
/// protocol version it speaks.
fn version() -> String {
    format!(
        "{} (commit {}, wasmtime {}, protocol {})",
        env!("CARGO_PKG_VERSION"),
        env!("LATTICE_GIT_COMMIT"),
        env!("LATTICE_WASMTIME_VERSION"),
        lattice_core::wire::PROTOCOL_VERSION
    )
}

/// The command line, with its version line.
fn command() -> clap::Command {
    // clap keeps the version for the life of the process.
    let version: &'static str = Box::leak(version().into_boxed_str());
    Cli::command().version(version)
}

/// Logs go to stderr. `LATTICE_LOG` (else `RUST_LOG`) gives the filter; without either, warnings, and `-v`
/// raises lattice's own crates only (their targets all start with `lattice`), never wasmtime's or NATS's
/// (`--log-format json`: lattice's at info). Colours only on a terminal and never with NO_COLOR.
fn init_tracing(verbose: u8, format: args::LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        // A log shipper gets what lattice reports at info (a host joining, leading, stopping).
        0 if format == args::LogFormat::Json => Some("info"),
        0 => None,
        1 => Some("info"),
        2 => Some("debug"),
        _ => Some("trace"),
    };
    // What actors log is printed by the verbs themselves; keep it out of the diagnostics unless asked for.
    let default = || {
        let raised = level.map(|l| format!(",lattice={l}")).unwrap_or_default();
        EnvFilter::new(format!("warn{raised},{}=off", lattice_host::ACTOR_LOG_TARGET))
    };
    let given = ["LATTICE_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()).map(|v| (var, v)));
    let mut invalid = None;
    let filter = match given {
        Some((var, directives)) => EnvFilter::try_new(&directives).unwrap_or_else(|e| {
            invalid = Some(format!("ignoring {var}: {e}"));
            default()
        }),
        None => default(),
    };
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        args::LogFormat::Text => builder.with_ansi(color).init(),
        args::LogFormat::Json => builder.json().init(),
    }
    if let Some(invalid) = invalid {
        tracing::warn!("{invalid}");
    }
}

fn main() -> ExitCode {
    let matches = match command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => return output::report_usage(error, output::json_requested_in(std::env::args_os())),
    };
    let output = output::requested(&matches);
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let log_format = match &mut cli.command {
        Command::Host(args) => args.resolve_log_format(),
        Command::Up(args) => args.host.resolve_log_format(),
        _ => args::LogFormat::Text,
    };
    init_tracing(cli.verbose, log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Keys(args) => keys::run(args),
            Command::Claims(args) => claims::run(args),
            Command::Up(args) => host::up(args).await,
            Command::Host(args) => host::run_host(args).await,
            Command::Hosts(args) => ctl::hosts(args).await,
            Command::Inventory(args) => ctl::inventory(args).await,
            Command::Push(args) => ctl::push(args).await,
            Command::Start(args) => ctl::start(args).await,
            Command::Stop(args) => ctl::stop(args).await,
            Command::Scale(args) => ctl::scale(args).await,
            Command::Call(args) => ctl::call(args).await,
            Command::Publish(args) => workflow::publish(args).await,
            Command::Dlq(args) => workflow::dlq(args).await,
            Command::Events(args) => ctl::events(args).await,
            Command::Label(args) => ctl::label(args).await,
            Command::Link(args) => ctl::link(args).await,
            Command::Route(args) => route::route(args).await,
            Command::Provider(args) => ctl::provider(args).await,
            Command::Artifact(args) => inventory::artifact(args).await,
            Command::Apply(args) => apps::apply(args).await,
            Command::Diff(args) => apps::diff(args).await,
            Command::Status(args) => apps::status(args).await,
            Command::Delete(args) => apps::delete(args).await,
            Command::Apps(args) => apps::apps(args).await,
            Command::Ctx(args) => ctx::run(args),
            Command::NatsConfig(args) => nats_config::run(args),
            Command::Completions(args) => completions::completions(args, command()),
            Command::Man(args) => completions::man(args, command()),
            Command::New(args) => project::new::run(args),
            Command::Build(args) => project::build::run(args),
            Command::Dev(args) => project::dev::run(args).await,
            Command::Wit(args) => project::wit::run(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if log_format == args::LogFormat::Json => {
            // A host logging for a shipper ends with a log line, like everything else it says.
            let class = output::ErrorClass::of(&error);
            tracing::error!(code = class.code(), "{error:#}");
            ExitCode::from(class.exit_code())
        }
        Err(error) => output::report(&error, output),
    }
}
