//! `lattice`: the command line of the lattice actor runtime.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod apps;
mod args;
mod claims;
mod connect;
mod ctl;
mod host;
mod keys;
mod operator;
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
#[derive(Debug, Parser)]
#[command(name = "lattice", version, about, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace). LATTICE_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
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
    Apply(apps::ApplyArgs),
    Diff(apps::DiffArgs),
    Status(apps::StatusArgs),
    Delete(apps::DeleteArgs),
    Apps(apps::AppsArgs),
    New(project::new::NewArgs),
    Build(project::build::BuildArgs),
    Dev(project::dev::DevArgs),
    Wit(project::wit::WitArgs),
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // What actors log is printed by the verbs themselves; keep it out of the diagnostics unless asked for.
    let filter = EnvFilter::try_from_env("LATTICE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},{}=off", lattice_host::ACTOR_LOG_TARGET)));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
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
            Command::Apply(args) => apps::apply(args).await,
            Command::Diff(args) => apps::diff(args).await,
            Command::Status(args) => apps::status(args).await,
            Command::Delete(args) => apps::delete(args).await,
            Command::Apps(args) => apps::apps(args).await,
            Command::New(args) => project::new::run(args),
            Command::Build(args) => project::build::run(args),
            Command::Dev(args) => project::dev::run(args).await,
            Command::Wit(args) => project::wit::run(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line a person can act on: the error and its causes, joined.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
