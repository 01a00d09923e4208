//! `lattice keys`: generate issuer, actor and operator keys; the development issuer and operator; seed files.
//!
//! Seeds (private keys) are only ever written to files created with mode 0600 and are printed only on request.
//! The public key is always the last line on stdout, so scripts can take it with `tail -n1`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use lattice_core::keys::{KeyKind, SeedKey};

use crate::args::Output;
use crate::output::print_json;

/// File name of the development issuer's seed in the config directory.
const DEV_ISSUER_FILE: &str = "dev-issuer.seed";
/// File name of the development operator's seed in the config directory.
const DEV_OPERATOR_FILE: &str = "dev-operator.seed";

/// Generate and show keys (issuers sign actors, actors are identified by theirs, operators sign control
/// requests).
///
/// An issuer key (public key `A…`, seed `SA…`) signs actor claims; hosts trust a list of issuer public keys.
/// An actor key (`M…`, seed `SM…`) is an actor's identity, the subject of its claims.
/// An operator key (`O…`, seed `SO…`) signs control requests and link records; hosts started with
/// --trusted-operator accept changes only from the operators they list.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    /// Output format (json: {"kind", "public_key"}, plus "seed_file" and "seed" when written or asked for)
    #[arg(long, short, value_enum, default_value_t, global = true)]
    output: Output,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    Gen(GenArgs),
    Dev(DevArgs),
}

/// Generate a new key pair. Writes the seed (the private key) to --out with mode 0600 and prints the public
/// key on the last line.
///
/// Example: lattice keys gen --kind issuer --out ci-issuer.seed
#[derive(Debug, Args)]
struct GenArgs {
    /// What the key is for: `issuer` (signs actor claims), `actor` (an actor's identity) or `operator` (signs
    /// control requests)
    #[arg(long, value_enum, default_value_t = Kind::Issuer)]
    kind: Kind,
    /// Write the seed to this file, created with mode 0600 (refused if it exists, unless --force)
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace the --out file if it exists (its old key is lost)
    #[arg(long, requires = "out")]
    force: bool,
    /// Also print the seed on stdout (it is secret: keep it out of logs and shell history)
    #[arg(long)]
    print_seed: bool,
}

/// Print the development issuer's (or operator's) public key, creating its seed on first use.
///
/// The development issuer is a per-user issuer for local work: `lattice claims sign --issuer dev` signs with
/// it and `lattice run --trusted-issuer dev` trusts it. Its seed is `dev-issuer.seed` in the config directory
/// (LATTICE_CONFIG_DIR, or the user config dir, e.g. ~/.config/lattice). The development operator
/// (`--kind operator`, seed `dev-operator.seed`) signs the control verbs when no --operator-key is given;
/// `lattice up` trusts it. Do not trust either in production.
#[derive(Debug, Args)]
struct DevArgs {
    /// Which development key: `issuer` (signs actor claims) or `operator` (signs control requests)
    #[arg(long, value_enum, default_value_t = DevKind::Issuer)]
    kind: DevKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DevKind {
    /// The development issuer (public key `A…`)
    Issuer,
    /// The development operator (public key `O…`)
    Operator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// Signs actor claims (public key `A…`, seed `SA…`)
    Issuer,
    /// Identifies an actor (public key `M…`, seed `SM…`)
    Actor,
    /// Signs control requests and link records (public key `O…`, seed `SO…`)
    Operator,
}

impl From<Kind> for KeyKind {
    fn from(kind: Kind) -> KeyKind {
        match kind {
            Kind::Issuer => KeyKind::Issuer,
            Kind::Actor => KeyKind::Actor,
            Kind::Operator => KeyKind::Operator,
        }
    }
}

pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Gen(gen_args) => generate(gen_args, args.output),
        KeysCommand::Dev(DevArgs { kind }) => {
            let (key, kind) = match kind {
                DevKind::Issuer => (dev_issuer()?, KeyKind::Issuer),
                DevKind::Operator => (dev_operator()?, KeyKind::Operator),
            };
            if args.output == Output::Json {
                return print_json(
                    &serde_json::json!({"kind": kind.to_string(), "public_key": key.public_key().to_string()}),
                );
            }
            println!("{}", key.public_key());
            Ok(())
        }
    }
}

fn generate(args: GenArgs, output: Output) -> anyhow::Result<()> {
    let kind = KeyKind::from(args.kind);
    let key = SeedKey::generate(kind)?;
    let text = output == Output::Text;
    match &args.out {
        Some(path) => {
            write_seed(path, &key, args.force)?;
            if text {
                println!("wrote the {kind} seed to {} (mode 0600; keep it secret)", path.display());
            }
        }
        None if !args.print_seed => {
            eprintln!("note: the seed was not saved; pass --out FILE to keep it (or --print-seed to print it)");
        }
        None => {}
    }
    if !text {
        return print_json(&serde_json::json!({
            "kind": kind.to_string(),
            "public_key": key.public_key().to_string(),
            "seed_file": args.out,
            "seed": args.print_seed.then(|| key.to_seed_string()),
        }));
    }
    if args.print_seed {
        println!("{}", key.to_seed_string());
    }
    println!("{}", key.public_key());
    Ok(())
}

pub use crate::dirs::config_dir;

/// The development issuer, created (with its seed file) on first use.
pub fn dev_issuer() -> anyhow::Result<SeedKey> {
    let path = config_dir()?.join(DEV_ISSUER_FILE);
    load_or_create(&path, KeyKind::Issuer, "development issuer")
}

/// The development operator, created (with its seed file) on first use.
pub fn dev_operator() -> anyhow::Result<SeedKey> {
    let path = config_dir()?.join(DEV_OPERATOR_FILE);
    load_or_create(&path, KeyKind::Operator, "development operator")
}

/// The development operator if this machine has one (never creates it).
pub fn existing_dev_operator() -> anyhow::Result<Option<SeedKey>> {
    let path = config_dir()?.join(DEV_OPERATOR_FILE);
    match read_seed(&path, KeyKind::Operator) {
        Ok(key) => Ok(Some(key)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The seed in `path`, or a new key of `kind` written there (mode 0600) when the file does not exist.
pub fn load_or_create(path: &Path, kind: KeyKind, what: &str) -> anyhow::Result<SeedKey> {
    match read_seed(path, kind) {
        Ok(key) => return Ok(key),
        Err(e) if !is_not_found(&e) => return Err(e),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let key = SeedKey::generate(kind)?;
    match create_seed_file(path, &key) {
        Ok(()) => {
            eprintln!("created the {what} key {} (seed in {})", key.public_key(), path.display());
            Ok(key)
        }
        // Created meanwhile by another process: use that one.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read_seed(path, kind),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn is_not_found(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == ErrorKind::NotFound))
}

/// Reads the seed in `path` and checks it is of `kind`. The file's text is never part of an error.
pub fn read_seed(path: &Path, kind: KeyKind) -> anyhow::Result<SeedKey> {
    let text = lattice_host::files::read_text(path, lattice_host::files::MAX_TEXT_BYTES).context("the seed file")?;
    warn_if_readable_by_others(path);
    let key =
        SeedKey::from_seed_str(text.trim()).with_context(|| format!("{} does not hold a seed", path.display()))?;
    key.public_key().require_kind(kind).with_context(|| format!("seed file {}", path.display()))?;
    Ok(key)
}

/// Writes `key`'s seed to a new file at `path` with mode 0600; with `force`, replaces an existing file.
pub fn write_seed(path: &Path, key: &SeedKey, force: bool) -> anyhow::Result<()> {
    if force {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
        }
    }
    match create_seed_file(path, key) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!("{} already exists; refusing to overwrite a key (pass --force to replace it)", path.display())
        }
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}

/// Creates `path` (mode 0600; it must not exist) holding `key`'s seed and a newline.
fn create_seed_file(path: &Path, key: &SeedKey) -> std::io::Result<()> {
    let mut file = create_private_file(path)?;
    let mut seed = key.to_seed_string();
    seed.push('\n');
    file.write_all(seed.as_bytes())?;
    file.sync_all()
}

#[cfg(unix)]
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Creates `dir` (and parents) if missing; a new directory is private to the user (0700) on unix.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("cannot create directory {}", dir.display()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "seed file is readable by other users; restrict it with `chmod 600`"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn seeds_round_trip_and_refuse_the_wrong_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.seed");
        let key = SeedKey::generate(KeyKind::Actor).unwrap();
        write_seed(&path, &key, false).unwrap();
        assert_eq!(read_seed(&path, KeyKind::Actor).unwrap().public_key(), key.public_key());
        let error = read_seed(&path, KeyKind::Issuer).unwrap_err();
        assert!(format!("{error:#}").contains("expected an issuer key"), "{error:#}");
        // No overwrite without force; force replaces.
        let error = write_seed(&path, &key, false).unwrap_err();
        assert!(format!("{error:#}").contains("already exists"), "{error:#}");
        let other = SeedKey::generate(KeyKind::Actor).unwrap();
        write_seed(&path, &other, true).unwrap();
        assert_eq!(read_seed(&path, KeyKind::Actor).unwrap().public_key(), other.public_key());
    }

    #[test]
    fn load_or_create_keeps_the_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/actors/a.seed");
        let first = load_or_create(&path, KeyKind::Actor, "actor").unwrap();
        let second = load_or_create(&path, KeyKind::Actor, "actor").unwrap();
        assert_eq!(first.public_key(), second.public_key());
    }

    #[test]
    fn garbage_seed_file_is_an_error_without_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.seed");
        fs::write(&path, "SAnotaseedatall").unwrap();
        let error = format!("{:#}", read_seed(&path, KeyKind::Issuer).unwrap_err());
        assert!(error.contains("does not hold a seed"), "{error}");
        assert!(!error.contains("SAnotaseed"), "{error}");
    }
}
