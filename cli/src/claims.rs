//! `lattice claims`: sign actor components and inspect their claims.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use lattice_core::claims::{self, SignOptions, SignedClaims, rfc3339};
use lattice_core::keys::{KeyKind, PublicKey};

use crate::args::Output;
use crate::keys;

/// Sign actor components and inspect their claims.
///
/// Claims say who issued an actor (an issuer key), which actor it is (its actor key, the subject), its name
/// and version, the sha256 of its code, which capabilities (WIT packages such as wasi:keyvalue) it may import
/// and link, and when they are valid. They live in the component's `lattice-claims` custom section, signed
/// with the issuer's ed25519 key.
#[derive(Debug, Args)]
pub struct ClaimsArgs {
    #[command(subcommand)]
    command: ClaimsCommand,
}

#[derive(Debug, Subcommand)]
enum ClaimsCommand {
    Sign(SignArgs),
    Inspect(InspectArgs),
}

/// Sign an actor component: writes a copy with a `lattice-claims` section and prints the actor's public key
/// on the last line.
///
/// The actor key is --subject, or else the seed `actors/<name>.seed` in the config directory, created on first
/// use, so signing a new version under the same name keeps the actor's identity.
///
/// Example: lattice claims sign kv_counter.wasm --issuer dev --name kv-counter --version 0.1.0
///   --infer-caps --expires 30d
#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
struct SignArgs {
    /// The actor component (.wasm); any claims it already has are replaced
    component: PathBuf,
    /// Seed file of the issuer key that signs, or `dev` for this machine's development issuer (created on
    /// first use; see `lattice keys dev`)
    #[arg(long, value_name = "SEED_FILE|dev")]
    issuer: String,
    /// The actor's name (also names its key file when --subject is not given)
    #[arg(long)]
    name: String,
    /// The actor's version, e.g. 0.1.0
    #[arg(long)]
    version: String,
    /// A capability the actor may import and be linked for: wasi:keyvalue, wasi:messaging or wasi:http.
    /// Repeatable. Baseline imports need none: wasi:io, wasi:cli, wasi:clocks, wasi:random, wasi:logging,
    /// wasi:filesystem and wasi:sockets (hosts grant actors no directories and no network), and wasi:messaging's
    /// types and request-reply (to receive and reply)
    #[arg(long = "cap", value_name = "CAPABILITY", value_delimiter = ',')]
    caps: Vec<String>,
    /// Also grant every capability the component's imports need (what `lattice build` does)
    #[arg(long)]
    infer_caps: bool,
    #[command(flatten)]
    identity: Identity,
    /// Where to write the signed component [<stem>.signed.wasm next to the input]
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    output: Output,
}

/// Who the actor is and when its claims are valid: shared by `claims sign` and `lattice build`.
#[derive(Debug, Clone, Default, Args)]
pub struct Identity {
    /// The actor's identity: its public key (M…) or its seed file [the seed `actors/<name>.seed` in the config
    /// directory, created on first use]
    #[arg(long, value_name = "ACTOR_PUBKEY|SEED_FILE")]
    pub subject: Option<String>,
    /// The claims expire this long from now, e.g. 30d or 12h [never]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub expires: Option<Duration>,
    /// The claims are valid only from this long from now, e.g. 1h [immediately]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub not_before: Option<Duration>,
}

/// What to sign, and how: the parts of `claims sign` that `lattice build` reuses.
#[derive(Debug, Clone)]
pub struct SignRequest {
    /// The unsigned (or previously signed) component.
    pub component: PathBuf,
    /// `dev` or an issuer seed file.
    pub issuer: String,
    pub name: String,
    pub version: String,
    /// Capabilities given with --cap (validated here).
    pub caps: Vec<String>,
    /// Add the capabilities the component's imports need.
    pub infer_caps: bool,
    pub identity: Identity,
    /// Where the signed copy goes [<stem>.signed.wasm next to the input].
    pub out: Option<PathBuf>,
}

/// A signed component written to disk.
#[derive(Debug)]
pub struct SignedFile {
    pub path: PathBuf,
    pub claims: claims::Claims,
}

/// Checks the --cap values: each must be a capability claims can grant. A baseline package (which needs no
/// capability) is dropped with a warning rather than refused, so older commands keep working.
pub fn validate_caps(caps: &[String]) -> anyhow::Result<Vec<String>> {
    let mut valid = Vec::new();
    for cap in caps.iter().map(|c| c.trim()) {
        if claims::BASELINE_PACKAGES.contains(&cap) {
            eprintln!("warning: --cap {cap} is not needed: every actor may import {cap} (it grants nothing here)");
            continue;
        }
        claims::check_capability(cap).map_err(|e| anyhow::anyhow!("--cap: {e}"))?;
        valid.push(cap.to_owned());
    }
    Ok(valid)
}

/// Signs `request.component` and writes the signed copy; warns on stderr when the claims do not allow what the
/// component imports.
pub fn sign_file(request: &SignRequest) -> anyhow::Result<SignedFile> {
    let mut interfaces = validate_caps(&request.caps)?;
    let bytes = read_component(&request.component)?;
    let imports = claims::component_imports(&bytes)
        .with_context(|| format!("{} is not a WebAssembly component", request.component.display()))?;
    if request.infer_caps {
        interfaces.extend(claims::needed_capabilities(&imports));
    }
    let issuer = if request.issuer == "dev" {
        keys::dev_issuer()?
    } else {
        keys::read_seed(Path::new(&request.issuer), KeyKind::Issuer).context("--issuer")?
    };
    let subject = match &request.identity.subject {
        Some(subject) => resolve_subject(subject)?,
        None => {
            let path = keys::config_dir()?.join("actors").join(actor_seed_file(&request.name)?);
            keys::load_or_create(&path, KeyKind::Actor, &format!("actor `{}`", request.name))?.public_key()
        }
    };
    let now = unix_now();
    let options = SignOptions {
        name: request.name.clone(),
        version: request.version.clone(),
        interfaces,
        issued_at: now,
        not_before: request.identity.not_before.map(|d| now.saturating_add(d.as_secs())),
        expires: request.identity.expires.map(|d| now.saturating_add(d.as_secs())),
    };
    let signed = claims::sign(&bytes, &issuer, &subject, options)
        .with_context(|| format!("cannot sign {}", request.component.display()))?;
    let out = request.out.clone().unwrap_or_else(|| default_output(&request.component));
    std::fs::write(&out, &signed).with_context(|| format!("cannot write {}", out.display()))?;

    let claims = claims::inspect(&signed)?.context("the signed component has no claims (a bug)")?.claims;
    // Say now, not at deploy time, when the claims do not allow what the component imports.
    let mut warned: Vec<&str> = Vec::new();
    for import in &imports {
        if let Some(capability) = claims::capability_of(import)
            && !claims.allows(capability)
            && !warned.contains(&capability)
        {
            warned.push(capability);
            eprintln!(
                "warning: {} imports `{import}`, which needs --cap {capability}: hosts will refuse this actor \
                 (or sign with --infer-caps)",
                request.component.display()
            );
        }
    }
    Ok(SignedFile { path: out, claims })
}

/// The JSON document of a signed file: path, subject, issuer, capabilities (and name, version, validity).
pub fn signed_json(signed: &SignedFile) -> serde_json::Value {
    let c = &signed.claims;
    serde_json::json!({
        "path": signed.path.display().to_string(),
        "name": c.name,
        "version": c.version,
        "subject": c.subject.to_string(),
        "issuer": c.issuer.to_string(),
        "capabilities": c.interfaces,
        "not_before": c.not_before.map(rfc3339),
        "expires": c.expires.map(rfc3339),
    })
}

/// Show the claims of a component: issuer, actor, name, version, capabilities, validity, and whether its hash
/// and signature check out. Fails for an unsigned component.
///
/// Whether a host trusts the issuer is the host's decision (its --trusted-issuer list), not shown here.
#[derive(Debug, Args)]
struct InspectArgs {
    /// The component (.wasm)
    component: PathBuf,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    output: Output,
}

pub fn run(args: ClaimsArgs) -> anyhow::Result<()> {
    match args.command {
        ClaimsCommand::Sign(args) => sign(args),
        ClaimsCommand::Inspect(args) => inspect(args),
    }
}

fn sign(args: SignArgs) -> anyhow::Result<()> {
    let request = SignRequest {
        component: args.component,
        issuer: args.issuer,
        name: args.name,
        version: args.version,
        caps: args.caps,
        infer_caps: args.infer_caps,
        identity: args.identity,
        out: args.out,
    };
    let signed = sign_file(&request)?;
    if args.output == Output::Json {
        println!("{:#}", signed_json(&signed));
        return Ok(());
    }
    let claims = &signed.claims;
    println!("signed {} {} -> {}", claims.name, claims.version, signed.path.display());
    println!("issuer:       {}", claims.issuer);
    println!("capabilities: {}", list_or(&claims.interfaces, "none"));
    if let Some(not_before) = claims.not_before {
        println!("not before:   {}", rfc3339(not_before));
    }
    println!("expires:      {}", claims.expires.map_or_else(|| "never".into(), rfc3339));
    println!("{}", claims.subject);
    Ok(())
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let bytes = read_component(&args.component)?;
    crate::check::component(&args.component, &bytes)?;
    let found =
        claims::inspect(&bytes).with_context(|| format!("cannot read the claims of {}", args.component.display()))?;
    let Some(found) = found else {
        bail!(
            "{} is not signed: it has no `{}` section (sign it with `lattice claims sign`)",
            args.component.display(),
            claims::CLAIMS_SECTION
        );
    };
    match args.output {
        Output::Text => println!("{}", table(&found, unix_now())),
        Output::Json => println!("{}", json(&found)),
    }
    Ok(())
}

fn table(found: &SignedClaims, now: u64) -> comfy_table::Table {
    let c = &found.claims;
    let validity = |at: Option<u64>, none: &str, note: &str, applies: bool| match at {
        Some(at) if applies => format!("{} ({note})", rfc3339(at)),
        Some(at) => rfc3339(at),
        None => none.to_owned(),
    };
    let rows = [
        ("name", c.name.clone()),
        ("version", c.version.clone()),
        ("subject (actor)", c.subject.to_string()),
        ("issuer", c.issuer.to_string()),
        ("capabilities", list_or(&c.interfaces, "none (baseline WASI only)")),
        ("issued", rfc3339(c.issued_at)),
        ("not before", validity(c.not_before, "-", "not yet valid", c.not_before.is_some_and(|t| t > now))),
        ("expires", validity(c.expires, "never", "expired", c.expires.is_some_and(|t| t < now))),
        ("component hash", hex::encode(c.component_hash)),
        (
            "hash matches",
            if found.hash_matches() {
                "yes".to_owned()
            } else {
                format!("NO: the component was modified after signing (its hash is {})", hex::encode(found.actual_hash))
            },
        ),
        (
            "signature valid",
            if found.signature_is_valid() {
                "yes".to_owned()
            } else {
                "NO: the claims were altered or not signed by this issuer".to_owned()
            },
        ),
    ];
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["claim", "value"]);
    for (name, value) in rows {
        table.add_row([name.to_owned(), value]);
    }
    table
}

fn json(found: &SignedClaims) -> serde_json::Value {
    let c = &found.claims;
    serde_json::json!({
        "name": c.name,
        "version": c.version,
        "subject": c.subject.to_string(),
        "issuer": c.issuer.to_string(),
        "interfaces": c.interfaces,
        "issued_at": rfc3339(c.issued_at),
        "not_before": c.not_before.map(rfc3339),
        "expires": c.expires.map(rfc3339),
        "component_hash": hex::encode(c.component_hash),
        "actual_hash": hex::encode(found.actual_hash),
        "hash_matches": found.hash_matches(),
        "signature_valid": found.signature_is_valid(),
    })
}

/// `--subject`: an actor public key, or a file holding an actor seed. Never repeats a seed's text.
fn resolve_subject(text: &str) -> anyhow::Result<PublicKey> {
    let path = Path::new(text);
    if path.is_file() {
        return Ok(keys::read_seed(path, KeyKind::Actor).context("--subject")?.public_key());
    }
    PublicKey::parse_as(text, KeyKind::Actor)
        .map_err(|e| anyhow::anyhow!("--subject is neither an actor public key (M…) nor an existing seed file: {e}"))
}

/// The file name of the actor seed kept for `name`: refused when the name would not be a plain file name.
fn actor_seed_file(name: &str) -> anyhow::Result<String> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        bail!(
            "actor name `{name}` cannot name a key file (use letters, digits, `-`, `_` and `.`), so pass \
             --subject with the actor's public key or seed file"
        );
    }
    Ok(format!("{name}.seed"))
}

/// `dir/stem.signed.wasm` for `dir/stem.wasm`.
fn default_output(component: &Path) -> PathBuf {
    let stem = component.file_stem().map_or_else(|| "actor".into(), |s| s.to_string_lossy().into_owned());
    component.with_file_name(format!("{stem}.signed.wasm"))
}

fn read_component(path: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(lattice_host::files::read_file(path, lattice_host::files::MAX_COMPONENT_BYTES)?)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn list_or(items: &[String], none: &str) -> String {
    if items.is_empty() { none.to_owned() } else { items.join(", ") }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use lattice_core::keys::SeedKey;

    use super::*;

    #[test]
    fn default_output_sits_next_to_the_input() {
        assert_eq!(default_output(Path::new("/x/kv_counter.wasm")), PathBuf::from("/x/kv_counter.signed.wasm"));
        assert_eq!(default_output(Path::new("a")), PathBuf::from("a.signed.wasm"));
    }

    #[test]
    fn actor_names_that_are_not_file_names_are_refused() {
        assert_eq!(actor_seed_file("kv-counter").unwrap(), "kv-counter.seed");
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(actor_seed_file(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subject_is_a_key_or_a_seed_file_and_errors_hide_seeds() {
        let seed = SeedKey::generate(KeyKind::Actor).unwrap();
        let public = seed.public_key();
        assert_eq!(resolve_subject(&public.to_string()).unwrap(), public);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.seed");
        keys::write_seed(&file, &seed, false).unwrap();
        assert_eq!(resolve_subject(file.to_str().unwrap()).unwrap(), public);
        let error = format!("{:#}", resolve_subject(&seed.to_seed_string()).unwrap_err());
        assert!(!error.contains(&seed.to_seed_string()), "{error}");
        let issuer = SeedKey::generate(KeyKind::Issuer).unwrap().public_key().to_string();
        assert!(resolve_subject(&issuer).is_err());
    }
}
