//! `lattice nats-config`: writes the nats-server configuration of a lattice's NATS account (hosts, operators,
//! callers as nkey users with permissions; app users in a separate account) and a seed file per generated
//! user. The model and the text are `lattice_core::nats_config`; this module only does the files.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use lattice_core::nats_config::{Role, Setup, User, UserSeed, UserSpec};
use lattice_core::subject::{Name, inbox_prefix};

use crate::args::Output;
use crate::keys::{create_private_dir, create_private_file};
use crate::output::{print_json, table, usage};

/// File name of the server configuration in --out.
const CONFIG_FILE: &str = "nats-server.conf";

/// Write the nats-server configuration for a lattice: who may publish and subscribe where.
///
/// Hosts may serve invocations, control and provider subjects, use the lattice's JetStream streams (never
/// delete or purge them, never write links, routes, apps or artifacts) and answer on any inbox. Operators
/// drive the lattice: control requests, the state bucket, the artifact store, the streams, events. Callers
/// only publish invocations. App users go in a separate account (`lattice host --app-nats-nkey`, application
/// clients) where no lattice subject exists. Every lattice user reads only its own inboxes, `_INBOX.<name>.>`,
/// and connects with `--nats-inbox-prefix _INBOX.<name>`.
///
/// Each user is an nkey: NAME generates a key pair and writes its seed to --out/NAME.nk (mode 0600), and
/// NAME=UKEY uses a public key you already have (no seed written). See docs/security.md section 12.
///
/// Example: lattice nats-config --lattice prod --host h1 --operator alice --caller web --out /etc/nats
#[derive(Debug, Args)]
pub struct NatsConfigArgs {
    /// A lattice the users act on (repeatable)
    #[arg(long = "lattice", value_name = "NAME", required = true)]
    lattices: Vec<Name>,
    /// A host's user (repeatable)
    #[arg(long = "host", value_name = "NAME[=UKEY]")]
    hosts: Vec<UserSpec>,
    /// An operator's user (repeatable)
    #[arg(long = "operator", value_name = "NAME[=UKEY]")]
    operators: Vec<UserSpec>,
    /// A caller's user, allowed only to invoke actors (repeatable)
    #[arg(long = "caller", value_name = "NAME[=UKEY]")]
    callers: Vec<UserSpec>,
    /// A user of the separate application account: a host's --app-nats connection or an application client
    /// (repeatable)
    #[arg(long = "app", value_name = "NAME[=UKEY]")]
    apps: Vec<UserSpec>,
    /// Directory to write nats-server.conf and the seed files into (created with mode 0700 if missing)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace files that exist in --out (the keys in replaced seed files are lost)
    #[arg(long)]
    force: bool,
    /// Output format (json: {"config", "users": [{"name", "role", "public_key", "inbox_prefix", "seed_file"}]})
    #[arg(long, short, value_enum, default_value_t)]
    output: Output,
}

/// One user as reported.
#[derive(Debug, serde::Serialize)]
struct Written {
    name: Name,
    role: Role,
    public_key: String,
    /// `None` for app users (their account has no permissions to match).
    inbox_prefix: Option<String>,
    /// `None` when the key was given.
    seed_file: Option<PathBuf>,
}

pub fn run(args: NatsConfigArgs) -> anyhow::Result<()> {
    let specs = [
        (Role::Host, args.hosts),
        (Role::Operator, args.operators),
        (Role::Caller, args.callers),
        (Role::App, args.apps),
    ];
    let mut users = Vec::new();
    let mut seeds = Vec::new();
    for (role, spec) in specs.into_iter().flat_map(|(role, specs)| specs.into_iter().map(move |s| (role, s))) {
        let key = match spec.key {
            Some(key) => key,
            None => {
                let seed = UserSeed::generate()?;
                let key = seed.public_key().clone();
                seeds.push((args.out.join(format!("{}.nk", spec.name)), seed));
                key
            }
        };
        users.push(User { name: spec.name, role, key });
    }
    let setup = Setup::new(args.lattices, users).map_err(usage)?;
    let config = args.out.join(CONFIG_FILE);

    // Every file is checked before any is written, so a refusal leaves --out as it was.
    create_private_dir(&args.out)?;
    if !args.force {
        for path in std::iter::once(&config).chain(seeds.iter().map(|(path, _)| path)) {
            if path.exists() {
                bail!("{} already exists; refusing to overwrite it (pass --force to replace it)", path.display());
            }
        }
    }
    write_new(&config, setup.render().as_bytes(), false)?;
    for (path, seed) in &seeds {
        write_new(path, format!("{}\n", seed.seed()).as_bytes(), true)?;
    }

    let written: Vec<Written> = setup
        .users()
        .iter()
        .map(|user| Written {
            name: user.name.clone(),
            role: user.role,
            public_key: user.key.to_string(),
            inbox_prefix: (user.role != Role::App).then(|| inbox_prefix(&user.name)),
            seed_file: seeds.iter().find(|(_, seed)| seed.public_key() == &user.key).map(|(path, _)| path.clone()),
        })
        .collect();
    if args.output == Output::Json {
        return print_json(&serde_json::json!({"config": config, "users": written}));
    }
    let lattices: Vec<&str> = setup.lattices().iter().map(Name::as_str).collect();
    println!("wrote {} for lattice {}", config.display(), lattices.join(", "));
    let mut t = table(&["USER", "ROLE", "INBOX PREFIX", "SEED FILE"]);
    for user in &written {
        let seed = user.seed_file.as_ref().map_or_else(|| "(key given)".to_owned(), |p| p.display().to_string());
        t.add_row([user.name.as_str(), user.role.as_str(), user.inbox_prefix.as_deref().unwrap_or("-"), &seed]);
    }
    println!("{t}");
    println!(
        "connect each lattice user with --nats-nkey \"$(cat SEED_FILE)\" --nats-inbox-prefix PREFIX \
         (app users: --app-nats-nkey); seed files are secret"
    );
    Ok(())
}

/// Writes `bytes` to `path`, replacing a file there; `private`: mode 0600 (seeds).
fn write_new(path: &Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    let file = if private { create_private_file(path) } else { fs::File::create_new(path) };
    let mut file = file.with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}
