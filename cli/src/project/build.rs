//! `lattice build`: build the actor project in a directory and sign it.

use std::io::{BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;

use super::Lang;
use crate::args::Output;
use crate::claims::{self, Identity, SignRequest, SignedFile};

/// The world every project built here targets.
const WORLD: &str = "lattice:actor/actor";

/// Build the actor project and sign it; prints the signed component's path.
///
/// Rust projects build with cargo for wasm32-wasip2, Python ones with componentize-py. The component is signed
/// with the capabilities its imports need; its path is the last line of stdout.
///
/// The language is detected: Cargo.toml means Rust, app.py Python. The actor's name and version come from
/// Cargo.toml's [package] or pyproject.toml's [project]. It is signed by this machine's development issuer
/// unless --issuer says otherwise.
///
/// Example: lattice build --cap wasi:http
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub build: BuildFlags,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

/// The flags `lattice build` and `lattice dev` share.
#[derive(Debug, Clone, Args)]
pub struct BuildFlags {
    /// The project directory
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub path: PathBuf,
    /// A capability to grant besides those the imports need (repeatable): wasi:keyvalue, wasi:messaging,
    /// wasi:http
    #[arg(long = "cap", value_name = "CAPABILITY", value_delimiter = ',')]
    pub caps: Vec<String>,
    /// Do not sign: the unsigned component's path is printed
    #[arg(long, conflicts_with_all = ["caps", "issuer"])]
    pub no_sign: bool,
    /// Seed file of the issuer key that signs, or `dev` for this machine's development issuer
    #[arg(long, value_name = "SEED_FILE|dev", default_value = "dev")]
    pub issuer: String,
    #[command(flatten)]
    pub identity: Identity,
}

/// A built (and usually signed) component.
#[derive(Debug)]
pub struct Built {
    /// The actor's name, from the project's manifest.
    pub name: String,
    /// The artifact to deploy: the signed component, or the unsigned one with --no-sign.
    pub path: PathBuf,
    pub signed: Option<SignedFile>,
}

pub fn run(args: BuildArgs) -> anyhow::Result<()> {
    let built = build(&args.build)?;
    match (args.output, &built.signed) {
        (Output::Json, Some(signed)) => println!("{:#}", claims::signed_json(signed)),
        (Output::Json, None) => println!("{:#}", serde_json::json!({"path": built.path.display().to_string()})),
        (Output::Text, _) => println!("{}", built.path.display()),
    }
    Ok(())
}

/// Builds and signs the project in `flags.path`; progress goes to stderr.
pub fn build(flags: &BuildFlags) -> anyhow::Result<Built> {
    let dir = super::absolute(&flags.path)?;
    if !flags.no_sign {
        // Refuse a bad --cap before spending a build on it.
        claims::validate_caps(&flags.caps)?;
    }
    let (name, version, component) = match Lang::detect(&dir)? {
        Lang::Rust => build_rust(&dir)?,
        Lang::Python => build_python(&dir)?,
    };
    eprintln!("built {}", component.display());
    if flags.no_sign {
        return Ok(Built { name, path: component, signed: None });
    }
    let request = SignRequest {
        component,
        issuer: flags.issuer.clone(),
        name: name.clone(),
        version: version.clone(),
        caps: flags.caps.clone(),
        infer_caps: true,
        identity: flags.identity.clone(),
        out: None,
    };
    let signed = claims::sign_file(&request)?;
    let caps = &signed.claims.interfaces;
    eprintln!(
        "signed {name} {version} by {} with capabilities: {}",
        signed.claims.issuer,
        if caps.is_empty() { "none".to_owned() } else { caps.join(", ") }
    );
    Ok(Built { name, path: signed.path.clone(), signed: Some(signed) })
}

/// `cargo build --release --target wasm32-wasip2`; the component is the cdylib cargo reports.
fn build_rust(dir: &Path) -> anyhow::Result<(String, String, PathBuf)> {
    let manifest = read_toml(&dir.join("Cargo.toml"))?;
    let (name, version) = name_and_version(&manifest, "package", "Cargo.toml")?;
    eprintln!("building {name} {version} (cargo build --release --target wasm32-wasip2)");
    let mut child = Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2", "--message-format", "json-render-diagnostics"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => anyhow::anyhow!("cargo is not on PATH: install Rust with rustup"),
            _ => anyhow::anyhow!("cannot run cargo: {e}"),
        })?;
    let mut wasm = None;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("cannot read cargo's output")?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        let is_cdylib = message["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if message["reason"] == "compiler-artifact" && is_cdylib {
            let mut files = message["filenames"].as_array().into_iter().flatten().filter_map(|f| f.as_str());
            if let Some(file) = files.rfind(|f| f.ends_with(".wasm")) {
                wasm = Some(PathBuf::from(file));
            }
        }
    }
    let status = child.wait().context("cannot wait for cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status}); its errors are above");
    }
    let wasm = wasm.context("cargo built no .wasm: Cargo.toml needs [lib] crate-type = [\"cdylib\"]")?;
    Ok((name, version, wasm))
}

/// `componentize-py -d wit -w lattice:actor/actor componentize app -o build/<name>.wasm`.
fn build_python(dir: &Path) -> anyhow::Result<(String, String, PathBuf)> {
    let pyproject = dir.join("pyproject.toml");
    let (name, version) = if pyproject.is_file() {
        name_and_version(&read_toml(&pyproject)?, "project", "pyproject.toml")?
    } else {
        let name = dir.file_name().map_or_else(|| "actor".into(), |n| n.to_string_lossy().into_owned());
        (name, "0.1.0".to_owned())
    };
    let out_dir = dir.join("build");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let out = out_dir.join(format!("{name}.wasm"));
    eprintln!("building {name} {version} (componentize-py)");
    let status = Command::new("componentize-py")
        .args(["-d", "wit", "-w", WORLD, "componentize", "app", "-o"])
        .arg(&out)
        .current_dir(dir)
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => anyhow::anyhow!(
                "componentize-py is not on PATH: install the PyPI package `componentize-py` \
                 (pip install componentize-py)"
            ),
            _ => anyhow::anyhow!("cannot run componentize-py: {e}"),
        })?;
    if !status.success() {
        bail!("componentize-py failed ({status}); its errors are above");
    }
    Ok((name, version, out))
}

fn read_toml(path: &Path) -> anyhow::Result<toml::Table> {
    let text = lattice_host::files::read_text(path, lattice_host::files::MAX_TEXT_BYTES)?;
    text.parse::<toml::Table>().map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
}

/// `[table] name` and `version` as plain strings.
fn name_and_version(manifest: &toml::Table, table: &str, file: &str) -> anyhow::Result<(String, String)> {
    let get = |key: &str| {
        manifest
            .get(table)
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .with_context(|| format!("{file} has no [{table}] {key} string (the actor's {key})"))
    };
    Ok((get("name")?, get("version")?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_directory_without_a_project_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let flags = BuildFlags {
            path: dir.path().to_path_buf(),
            caps: vec![],
            no_sign: true,
            issuer: "dev".into(),
            identity: Identity::default(),
        };
        let error = build(&flags).unwrap_err().to_string();
        assert!(error.contains("is not an actor project"), "{error}");
    }

    #[test]
    fn manifests_give_name_and_version() {
        let manifest: toml::Table = "[package]\nname = \"x\"\nversion = \"1.2.3\"\n".parse().unwrap();
        assert_eq!(name_and_version(&manifest, "package", "Cargo.toml").unwrap(), ("x".into(), "1.2.3".into()));
        let manifest: toml::Table = "[package]\nname = \"x\"\nversion.workspace = true\n".parse().unwrap();
        let error = name_and_version(&manifest, "package", "Cargo.toml").unwrap_err().to_string();
        assert!(error.contains("no [package] version"), "{error}");
    }
}
