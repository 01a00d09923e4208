//! `lattice keys`: generate issuer, actor, operator and host keys; the development issuer and operator; seed
//! files; host credentials (`lattice keys host-credential`).
//!
//! Seeds (private keys) are only ever written to files created with mode 0600 and are printed only on request.
//! The public key is always the last line on stdout, so scripts can take it with `tail -n1`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use lattice_core::host_auth::{HostCredential, MAX_CREDENTIAL_TEXT};
use lattice_core::keys::{KeyKind, PublicKey, SeedKey};
use lattice_core::subject::Name;

use crate::args::{Output, parse_label};
use crate::operator::OperatorKeyArgs;
use crate::output::print_json;

/// How long the credential `lattice up` issues its host is valid.
pub const DEV_CREDENTIAL_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

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
/// A host key (`N…`, seed `SN…`) signs what a host publishes; `lattice keys host-credential` has an operator
/// vouch for it.
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
    HostCredential(HostCredentialArgs),
}

/// Issue a host credential: an operator's signed statement that host key N… may run as host --id of
/// --lattice, claiming the --label values given, until --expires. Hosts that trust operators start only with
/// one (`lattice host --host-credential FILE`), and other hosts and the CLI believe only what hosts with one
/// sign.
///
/// Example: lattice keys host-credential --host-key-public N… --id eu-1 --lattice prod --label zone=eu
/// --label tier=* --expires 90d --operator-key ops.seed --out eu-1.credential
#[derive(Debug, Args)]
struct HostCredentialArgs {
    /// The host's public key (N…, from `lattice keys gen --kind host`)
    #[arg(long, value_name = "N…")]
    host_key_public: String,
    /// The host id it may run as
    #[arg(long, value_name = "ID")]
    id: String,
    /// The lattice it may join
    #[arg(long, value_name = "NAME")]
    lattice: String,
    /// A label it may claim, KEY=VALUE, or KEY=* for any value (repeatable); os, arch and hostname are always
    /// allowed
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// How long it is valid, e.g. 30d, 12h
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", default_value = "30d")]
    expires: Duration,
    #[command(flatten)]
    operator: OperatorKeyArgs,
    /// Write the credential to this file (refused if it exists, unless --force)
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace the --out file if it exists
    #[arg(long)]
    force: bool,
}

/// Generate a new key pair. Writes the seed (the private key) to --out with mode 0600 and prints the public
/// key on the last line.
///
/// Example: lattice keys gen --kind issuer --out ci-issuer.seed
#[derive(Debug, Args)]
struct GenArgs {
    /// What the key is for: `issuer` (signs actor claims), `actor` (an actor's identity), `operator` (signs
    /// control requests) or `host` (a host's identity)
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
    /// Identifies a host and signs what it publishes (public key `N…`, seed `SN…`)
    Host,
}

impl From<Kind> for KeyKind {
    fn from(kind: Kind) -> KeyKind {
        match kind {
            Kind::Issuer => KeyKind::Issuer,
            Kind::Actor => KeyKind::Actor,
            Kind::Operator => KeyKind::Operator,
            Kind::Host => KeyKind::Host,
        }
    }
}

pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Gen(gen_args) => generate(gen_args, args.output),
        KeysCommand::HostCredential(credential_args) => host_credential(credential_args, args.output),
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

fn host_credential(args: HostCredentialArgs, output: Output) -> anyhow::Result<()> {
    let key = PublicKey::parse_as(args.host_key_public.trim(), KeyKind::Host).context("--host-key-public")?;
    let id = Name::new(args.id).context("invalid --id")?;
    let lattice = Name::new(args.lattice).context("invalid --lattice")?;
    let Some(operator) = args.operator.key()? else {
        bail!("no operator key to sign with: pass --operator-key SEED|FILE|dev (or set LATTICE_OPERATOR_KEY)");
    };
    let labels: BTreeMap<String, String> = args.labels.into_iter().collect();
    let credential = issue_credential(&operator, id, lattice, key, labels, args.expires);
    if args.force {
        match fs::remove_file(&args.out) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot replace {}", args.out.display()));
            }
            _ => {}
        }
    }
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&args.out) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!("{} already exists; refusing to overwrite it (pass --force to replace it)", args.out.display())
        }
        other => other.with_context(|| format!("cannot write {}", args.out.display()))?,
    };
    file.write_all(format!("{}\n", credential.to_text()).as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let expires =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(credential.expires_at_ms));
    if output == Output::Json {
        return print_json(&serde_json::json!({
            "host": credential.host,
            "lattice": credential.lattice,
            "host_key": credential.key,
            "labels": credential.labels,
            "expires": expires.to_string(),
            "operator": credential.operator,
            "file": args.out,
        }));
    }
    println!(
        "wrote the credential of host {} (lattice {}, key {}) signed by operator {}, valid until {expires}, to {}",
        credential.host,
        credential.lattice,
        credential.key,
        credential.operator,
        args.out.display()
    );
    Ok(())
}

/// A credential signed by `operator` for host `host` of `lattice` with `key` and `labels`, valid for `validity`
/// from now.
pub fn issue_credential(
    operator: &SeedKey,
    host: Name,
    lattice: Name,
    key: PublicKey,
    labels: BTreeMap<String, String>,
    validity: Duration,
) -> HostCredential {
    let now = now_ms();
    let until = now.saturating_add(u64::try_from(validity.as_millis()).unwrap_or(u64::MAX));
    HostCredential::issue(operator, host, lattice, key, labels, now, until)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads a host credential file: a regular file (checked before it is opened, so a FIFO or device is refused
/// rather than read) of at most the credential size limit.
pub fn read_credential(path: &Path) -> anyhow::Result<HostCredential> {
    let text =
        read_small_text(path, MAX_CREDENTIAL_TEXT + 1).with_context(|| format!("cannot read {}", path.display()))?;
    HostCredential::parse(&text).with_context(|| format!("{} does not hold a host credential", path.display()))
}

/// The text of the regular file `path`, refused when it is not one or is larger than `limit` bytes.
fn read_small_text(path: &Path, limit: usize) -> anyhow::Result<String> {
    if !fs::metadata(path)?.is_file() {
        bail!("not a regular file");
    }
    let mut bytes = Vec::new();
    File::open(path)?.take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        bail!("larger than {limit} bytes");
    }
    String::from_utf8(bytes).context("not UTF-8 text")
}

/// A seed given as its text (`S…`) or as a file holding it, checked to be of `kind`. The seed's text is never
/// part of an error.
pub fn seed_or_file(text: &str, kind: KeyKind) -> anyhow::Result<SeedKey> {
    let text = text.trim();
    if text.starts_with('S') && !Path::new(text).exists() {
        let key = SeedKey::from_seed_str(text).context("not a valid seed")?;
        key.public_key().require_kind(kind)?;
        return Ok(key);
    }
    read_seed(Path::new(text), kind)
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
