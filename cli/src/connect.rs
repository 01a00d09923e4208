//! NATS and lattice selection flags shared by every verb that talks to a lattice.
//!
//! They are global: accepted before or after a verb's subcommand (`lattice link list --nats URL`), and shown
//! under their own help heading after the verb's own flags.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lattice_client::{LatticeClient, NatsConfig};
use lattice_core::subject::Name;

use crate::operator::OperatorKeyArgs;

/// The NATS server used when none is given.
pub const DEFAULT_NATS: &str = "nats://127.0.0.1:4222";

/// The help heading of connection and credential flags.
pub const CONNECTION_HEADING: &str = "Connection options";

/// Which lattice, on which NATS, with which credentials: the flags of `lattice host` and `lattice up` (which
/// never read contexts), and part of [`LatticeArgs`].
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// NATS server URL(s), comma-separated for a cluster [context, else nats://127.0.0.1:4222]
    #[arg(
        long = "nats",
        env = "LATTICE_NATS",
        value_delimiter = ',',
        value_name = "URL",
        global = true,
        help_heading = CONNECTION_HEADING
    )]
    pub servers: Vec<String>,
    /// Lattice name: lattices on one NATS never see each other [context, else default]
    #[arg(long, env = "LATTICE_NAME", value_name = "NAME", global = true, help_heading = CONNECTION_HEADING)]
    pub lattice: Option<String>,
    /// NATS user name (with --nats-password)
    #[arg(long, env = "LATTICE_NATS_USER", global = true, help_heading = CONNECTION_HEADING)]
    pub nats_user: Option<String>,
    /// NATS password (with --nats-user)
    #[arg(long, env = "LATTICE_NATS_PASSWORD", hide_env_values = true, global = true, help_heading = CONNECTION_HEADING)]
    pub nats_password: Option<String>,
    /// NATS token
    #[arg(long, env = "LATTICE_NATS_TOKEN", hide_env_values = true, global = true, help_heading = CONNECTION_HEADING)]
    pub nats_token: Option<String>,
    /// NATS nkey seed (SU...)
    #[arg(long, env = "LATTICE_NATS_NKEY", hide_env_values = true, global = true, help_heading = CONNECTION_HEADING)]
    pub nats_nkey: Option<String>,
    /// NATS credentials file (.creds)
    #[arg(long, env = "LATTICE_NATS_CREDS", value_name = "FILE", global = true, help_heading = CONNECTION_HEADING)]
    pub nats_creds: Option<PathBuf>,
    /// Prefix of this connection's reply inboxes, e.g. _INBOX.web for a NATS user that may only subscribe to
    /// _INBOX.web.> (see `lattice nats-config`) [context, else _INBOX]
    #[arg(long, env = "LATTICE_NATS_INBOX_PREFIX", value_name = "PREFIX", global = true, help_heading = CONNECTION_HEADING)]
    pub nats_inbox_prefix: Option<String>,
    /// CA certificate (PEM) to verify the NATS server
    #[arg(long, env = "LATTICE_TLS_CA", value_name = "FILE", global = true, help_heading = CONNECTION_HEADING)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for NATS (with --tls-key)
    #[arg(long, env = "LATTICE_TLS_CERT", value_name = "FILE", global = true, help_heading = CONNECTION_HEADING)]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for NATS (with --tls-cert)
    #[arg(long, env = "LATTICE_TLS_KEY", value_name = "FILE", global = true, help_heading = CONNECTION_HEADING)]
    pub tls_key: Option<PathBuf>,
}

impl ConnectionArgs {
    /// The NATS settings, with `fallback` filling what flags and environment left unset.
    pub fn nats(&self, fallback: Option<&NatsConfig>) -> NatsConfig {
        let empty = NatsConfig::default();
        let fb = fallback.unwrap_or(&empty);
        let servers = if !self.servers.is_empty() {
            self.servers.clone()
        } else if !fb.servers.is_empty() {
            fb.servers.clone()
        } else {
            vec![DEFAULT_NATS.to_owned()]
        };
        NatsConfig {
            servers,
            user: self.nats_user.clone().or_else(|| fb.user.clone()),
            password: self.nats_password.clone().or_else(|| fb.password.clone()),
            token: self.nats_token.clone().or_else(|| fb.token.clone()),
            nkey_seed: self.nats_nkey.clone().or_else(|| fb.nkey_seed.clone()),
            creds_file: self.nats_creds.clone().or_else(|| fb.creds_file.clone()),
            tls_ca: self.tls_ca.clone().or_else(|| fb.tls_ca.clone()),
            tls_cert: self.tls_cert.clone().or_else(|| fb.tls_cert.clone()),
            tls_key: self.tls_key.clone().or_else(|| fb.tls_key.clone()),
            require_tls: fb.require_tls,
            inbox_prefix: self.nats_inbox_prefix.clone().or_else(|| fb.inbox_prefix.clone()),
        }
    }

    /// The lattice name, with `fallback` when no flag or environment gave one.
    pub fn lattice_name(&self, fallback: Option<&str>) -> anyhow::Result<Name> {
        let name = self.lattice.as_deref().or(fallback).unwrap_or("default");
        Name::new(name).context("invalid lattice name")
    }
}

/// The lattice a control verb talks to: connection flags, then a saved context (`lattice ctx`), then defaults.
#[derive(Debug, Clone, Args)]
pub struct LatticeArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Use this saved context (see `lattice ctx`) [the current context]
    #[arg(long, env = "LATTICE_CONTEXT", value_name = "NAME", global = true, help_heading = CONNECTION_HEADING)]
    pub context: Option<String>,
    /// Believe only hosts vouched for by this operator: its public key (O…), or `dev`. Answers, bids, replies,
    /// host records and the lease not signed by a host with such a credential are ignored, with a warning.
    /// Repeatable; comma-separated in LATTICE_TRUSTED_OPERATORS (the hosts' setting) [none: no check]
    #[arg(
        long = "trusted-operator",
        env = "LATTICE_TRUSTED_OPERATORS",
        value_delimiter = ',',
        value_name = "KEY|dev",
        global = true,
        help_heading = CONNECTION_HEADING
    )]
    pub trusted_operators: Vec<String>,
}

impl LatticeArgs {
    /// Connects a control client that signs with no operator key (reads).
    pub async fn client(&self) -> anyhow::Result<LatticeClient> {
        self.connect(None).await
    }

    /// Connects a control client that signs with the operator key: `--operator-key` (or its environment),
    /// else the context's, else this machine's development operator if it has one.
    pub async fn signed_client(&self, operator: &OperatorKeyArgs) -> anyhow::Result<LatticeClient> {
        self.connect(Some(operator)).await
    }

    async fn connect(&self, operator: Option<&OperatorKeyArgs>) -> anyhow::Result<LatticeClient> {
        let context = crate::ctx::resolve(self.context.as_deref())?.unwrap_or_default();
        let nats = self.connection.nats(Some(&context.nats_config()));
        let lattice = self.connection.lattice_name(context.lattice.as_deref())?;
        let key = match operator {
            Some(operator) => operator.key_or(context.operator_key.as_deref())?,
            None => None,
        };
        let trusted =
            crate::operator::TrustArgs { trusted_operators: self.trusted_operators.clone(), ..Default::default() }
                .to_policy(&[], false)
                .context("--trusted-operator")?
                .trusted;
        let client = LatticeClient::connect(&nats, lattice).await?.with_trusted_operators(trusted);
        Ok(match key {
            Some(key) => client.with_operator_key(key),
            None => client,
        })
    }
}
