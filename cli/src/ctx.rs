//! `lattice ctx`: named connection settings (NATS servers, lattice, credentials, operator key) saved in the
//! config directory, so a person does not repeat `--nats` on every command (like `kubectl config` contexts).
//!
//! The control verbs resolve each setting as: flags, then `LATTICE_*` environment, then the context (the one
//! `--context`/`LATTICE_CONTEXT` names, else the current one), then defaults. `lattice host` and `lattice up`
//! never read contexts. Contexts live in `contexts.toml` in the config directory (mode 0600: it may hold
//! passwords and tokens).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use lattice_client::NatsConfig;
use lattice_core::subject::Name;
use lattice_host::files::ReadFileError;
use serde::{Deserialize, Serialize};

use crate::args::Output;
use crate::output::{not_found, print_json, table};

/// File name of the contexts in the config directory.
const CONTEXTS_FILE: &str = "contexts.toml";

/// Saved connection settings: where `lattice ctx set` writes and the control verbs read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// NATS server URL(s), comma-separated for a cluster
    #[arg(long = "nats", value_delimiter = ',', value_name = "URL")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nats: Vec<String>,
    /// Lattice name
    #[arg(long, value_name = "NAME")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lattice: Option<String>,
    /// NATS user name (with --nats-password)
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_user: Option<String>,
    /// NATS password (with --nats-user)
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_password: Option<String>,
    /// NATS token
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_token: Option<String>,
    /// NATS nkey seed (SU...)
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_nkey: Option<String>,
    /// NATS credentials file (.creds)
    #[arg(long, value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_creds: Option<PathBuf>,
    /// Prefix of the connection's reply inboxes, e.g. _INBOX.web (see `lattice nats-config`)
    #[arg(long, value_name = "PREFIX")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_inbox_prefix: Option<String>,
    /// CA certificate (PEM) to verify the NATS server
    #[arg(long, value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for NATS (with --tls-key)
    #[arg(long, value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for NATS (with --tls-cert)
    #[arg(long, value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Operator key the control verbs sign with: a seed (SO…), a seed file, or `dev`
    #[arg(long, value_name = "SEED|FILE|dev")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_key: Option<String>,
}

impl Context {
    /// The NATS settings of this context (empty where it sets nothing).
    pub fn nats_config(&self) -> NatsConfig {
        NatsConfig {
            servers: self.nats.clone(),
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            token: self.nats_token.clone(),
            nkey_seed: self.nats_nkey.clone(),
            creds_file: self.nats_creds.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            require_tls: false,
            inbox_prefix: self.nats_inbox_prefix.clone(),
        }
    }

    /// `self` with every setting `other` has replacing its own; files as absolute paths.
    fn merge(&mut self, other: Context) -> anyhow::Result<()> {
        let absolute = |path: Option<PathBuf>| -> anyhow::Result<Option<PathBuf>> {
            path.map(|p| std::path::absolute(&p).with_context(|| format!("cannot resolve {}", p.display()))).transpose()
        };
        // A NATS authentication method given replaces the others: a context authenticates one way.
        let given = [
            other.nats_user.is_some() || other.nats_password.is_some(),
            other.nats_token.is_some(),
            other.nats_nkey.is_some(),
            other.nats_creds.is_some(),
        ];
        if given.contains(&true) {
            let [user_password, token, nkey, creds] = given;
            if !user_password {
                (self.nats_user, self.nats_password) = (None, None);
            }
            if !token {
                self.nats_token = None;
            }
            if !nkey {
                self.nats_nkey = None;
            }
            if !creds {
                self.nats_creds = None;
            }
        }
        if !other.nats.is_empty() {
            self.nats = other.nats;
        }
        let Context {
            lattice, nats_user, nats_password, nats_token, nats_nkey, nats_inbox_prefix, operator_key, ..
        } = other;
        for (mine, theirs) in [
            (&mut self.lattice, lattice),
            (&mut self.nats_inbox_prefix, nats_inbox_prefix),
            (&mut self.nats_user, nats_user),
            (&mut self.nats_password, nats_password),
            (&mut self.nats_token, nats_token),
            (&mut self.nats_nkey, nats_nkey),
            (&mut self.operator_key, operator_key),
        ] {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        for (mine, theirs) in [
            (&mut self.nats_creds, other.nats_creds),
            (&mut self.tls_ca, other.tls_ca),
            (&mut self.tls_cert, other.tls_cert),
            (&mut self.tls_key, other.tls_key),
        ] {
            if let Some(path) = absolute(theirs)? {
                *mine = Some(path);
            }
        }
        if let Some(lattice) = &self.lattice {
            Name::new(lattice.as_str()).context("invalid lattice name")?;
        }
        Ok(())
    }

    /// This context for display: secrets (passwords, tokens, seeds) shown as `(hidden)`.
    fn shown(&self) -> Context {
        let hide = |s: &Option<String>| s.as_ref().map(|_| "(hidden)".to_owned());
        Context {
            nats_password: hide(&self.nats_password),
            nats_token: hide(&self.nats_token),
            nats_nkey: hide(&self.nats_nkey),
            operator_key: self
                .operator_key
                .as_ref()
                .map(|k| if k.starts_with('S') && !Path::new(k).exists() { "(hidden)".to_owned() } else { k.clone() }),
            ..self.clone()
        }
    }

    /// Which credentials the context holds, e.g. `user, tls`.
    fn credentials(&self) -> String {
        let set: Vec<&str> = [
            (self.nats_user.is_some(), "user"),
            (self.nats_token.is_some(), "token"),
            (self.nats_nkey.is_some(), "nkey"),
            (self.nats_creds.is_some(), "creds"),
            (self.tls_ca.is_some() || self.tls_cert.is_some(), "tls"),
            (self.operator_key.is_some(), "operator key"),
        ]
        .into_iter()
        .filter_map(|(set, what)| set.then_some(what))
        .collect();
        if set.is_empty() { "-".to_owned() } else { set.join(", ") }
    }
}

/// The contexts file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Contexts {
    /// The context the control verbs use when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current: Option<String>,
    #[serde(default)]
    contexts: BTreeMap<String, Context>,
}

impl Contexts {
    fn path() -> anyhow::Result<PathBuf> {
        Ok(crate::dirs::config_dir()?.join(CONTEXTS_FILE))
    }

    /// The saved contexts (none when the file does not exist).
    fn load() -> anyhow::Result<Contexts> {
        let path = Contexts::path()?;
        match lattice_host::files::read_text(&path, lattice_host::files::MAX_TEXT_BYTES) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("invalid contexts file {}", path.display())),
            Err(ReadFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(Contexts::default())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the file atomically, readable by the user only.
    fn save(&self) -> anyhow::Result<()> {
        let path = Contexts::path()?;
        let dir = path.parent().context("the contexts file has no directory")?;
        crate::keys::create_private_dir(dir)?;
        let text = toml::to_string(self).context("cannot write contexts")?;
        // A new temporary file is created with mode 0600, then renamed over the old file.
        let mut file =
            tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
        file.write_all(text.as_bytes()).and_then(|()| file.as_file().sync_all())?;
        file.persist(&path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    fn get(&self, name: &str) -> anyhow::Result<&Context> {
        self.contexts.get(name).ok_or_else(|| not_found(format!("no context `{name}` (see `lattice ctx list`)")))
    }
}

/// The context to connect with: `named` (from --context or LATTICE_CONTEXT), else the current one, if any.
pub fn resolve(named: Option<&str>) -> anyhow::Result<Option<Context>> {
    if let Some(name) = named.filter(|n| !n.is_empty()) {
        return Ok(Some(Contexts::load()?.get(name)?.clone()));
    }
    // Without a config directory there are no contexts to use.
    if Contexts::path().is_err() {
        return Ok(None);
    }
    let contexts = Contexts::load()?;
    match &contexts.current {
        Some(name) => Ok(Some(contexts.get(name).context("the current context")?.clone())),
        None => Ok(None),
    }
}

/// Save connection settings under a name and switch between them (flags > environment > context > defaults).
///
/// Contexts apply to the control verbs (hosts, start, call, link…), not to `lattice host` or `lattice up`.
/// They are kept in contexts.toml in the config directory (LATTICE_CONFIG_DIR, or the user config dir, e.g.
/// ~/.config/lattice), readable by the user only.
///
///   lattice ctx set prod --nats tls://nats.example.com:4222 --lattice prod --nats-creds prod.creds
///   lattice ctx use prod
#[derive(Debug, Args)]
pub struct CtxArgs {
    #[command(subcommand)]
    command: CtxCommand,
    /// Output format
    #[arg(long, short, value_enum, default_value_t, global = true)]
    output: Output,
}

#[derive(Debug, Subcommand)]
enum CtxCommand {
    /// Create a context, or change the settings given in an existing one (files are stored as absolute paths)
    Set {
        /// The context's name
        name: Name,
        #[command(flatten)]
        settings: Box<Context>,
        /// Also make it the current context
        #[arg(long = "use")]
        make_current: bool,
    },
    /// Make a context the current one: the control verbs use it when no --context is given
    Use {
        /// The context's name
        name: String,
    },
    /// List the contexts; the current one is marked with *
    List,
    /// Show a context's settings, secrets hidden [the current context]
    Show {
        /// The context's name
        name: Option<String>,
    },
    /// Delete a context (if it is the current one, no context is current afterwards)
    Del {
        /// The context's name
        name: String,
    },
}

pub fn run(args: CtxArgs) -> anyhow::Result<()> {
    let json = args.output == Output::Json;
    let mut contexts = Contexts::load()?;
    match args.command {
        CtxCommand::Set { name, settings, make_current } => {
            let name = name.to_string();
            let mut context = contexts.contexts.get(&name).cloned().unwrap_or_default();
            context.merge(*settings)?;
            contexts.contexts.insert(name.clone(), context.clone());
            if make_current {
                contexts.current = Some(name.clone());
            }
            contexts.save()?;
            let current = contexts.current.as_deref() == Some(name.as_str());
            if json {
                return print_json(&serde_json::json!({"name": name, "current": current, "context": context.shown()}));
            }
            println!("context {name} saved{}", if current { " (current)" } else { "" });
        }
        CtxCommand::Use { name } => {
            contexts.get(&name)?;
            contexts.current = Some(name.clone());
            contexts.save()?;
            if json {
                return print_json(&serde_json::json!({"current": name}));
            }
            println!("using context {name}");
        }
        CtxCommand::List => {
            if json {
                let docs: Vec<_> = contexts
                    .contexts
                    .iter()
                    .map(|(name, c)| {
                        serde_json::json!({
                            "name": name, "current": contexts.current.as_ref() == Some(name), "context": c.shown(),
                        })
                    })
                    .collect();
                return print_json(&docs);
            }
            let mut t = table(&["CURRENT", "NAME", "NATS", "LATTICE", "CREDENTIALS"]);
            for (name, c) in &contexts.contexts {
                t.add_row([
                    if contexts.current.as_ref() == Some(name) { "*".to_owned() } else { String::new() },
                    name.clone(),
                    if c.nats.is_empty() { "-".to_owned() } else { c.nats.join(",") },
                    c.lattice.clone().unwrap_or_else(|| "-".into()),
                    c.credentials(),
                ]);
            }
            println!("{t}");
            if contexts.contexts.is_empty() {
                eprintln!("no contexts (create one with `lattice ctx set NAME --nats URL`)");
            }
        }
        CtxCommand::Show { name } => {
            let Some(name) = name.or_else(|| contexts.current.clone()) else {
                return Err(not_found("no current context (see `lattice ctx list`, `lattice ctx use`)"));
            };
            let context = contexts.get(&name)?.shown();
            let current = contexts.current.as_ref() == Some(&name);
            if json {
                return print_json(&serde_json::json!({"name": name, "current": current, "context": context}));
            }
            println!("context {name}{}", if current { " (current)" } else { "" });
            print!("{}", toml::to_string(&context).context("cannot show the context")?);
        }
        CtxCommand::Del { name } => {
            contexts.get(&name)?;
            contexts.contexts.remove(&name);
            if contexts.current.as_ref() == Some(&name) {
                contexts.current = None;
            }
            contexts.save()?;
            if json {
                return print_json(&serde_json::json!({"deleted": name}));
            }
            println!("context {name} deleted");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn merging_keeps_what_is_not_given_and_hides_secrets_when_shown() {
        let mut context = Context {
            nats: vec!["nats://a:4222".into()],
            nats_user: Some("u".into()),
            nats_password: Some("pw".into()),
            ..Context::default()
        };
        context.merge(Context { lattice: Some("prod".into()), ..Context::default() }).unwrap();
        assert_eq!(context.nats, ["nats://a:4222"]);
        assert_eq!(context.lattice.as_deref(), Some("prod"));
        assert_eq!(context.nats_password.as_deref(), Some("pw"));
        // A password alone changes the password, and keeps the user.
        context.merge(Context { nats_password: Some("pw2".into()), ..Context::default() }).unwrap();
        assert_eq!((context.nats_user.as_deref(), context.nats_password.as_deref()), (Some("u"), Some("pw2")));
        let shown = context.shown();
        assert_eq!(shown.nats_password.as_deref(), Some("(hidden)"));
        assert_eq!(shown.nats_user.as_deref(), Some("u"));
        assert_eq!(context.credentials(), "user");
        // Another way to authenticate replaces user and password.
        context.merge(Context { nats_creds: Some("x.creds".into()), ..Context::default() }).unwrap();
        assert!(context.nats_creds.as_ref().unwrap().is_absolute());
        assert_eq!((context.nats_user.as_deref(), context.nats_password.as_deref()), (None, None));
        assert_eq!(context.credentials(), "creds");
        let error = context.merge(Context { lattice: Some("no spaces".into()), ..Context::default() }).unwrap_err();
        assert!(format!("{error:#}").contains("invalid lattice name"), "{error:#}");
    }
}
