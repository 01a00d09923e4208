//! NATS and lattice selection flags shared by every verb that talks to a lattice.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lattice_core::subject::Name;
use lattice_host::lattice::{LatticeClient, NatsConfig};

/// The NATS server used when none is given.
pub const DEFAULT_NATS: &str = "nats://127.0.0.1:4222";

/// Which lattice, on which NATS, with which credentials.
#[derive(Debug, Clone, Args)]
pub struct LatticeArgs {
    /// NATS server URL(s), comma-separated for a cluster [nats://127.0.0.1:4222]
    #[arg(long = "nats", env = "LATTICE_NATS", value_delimiter = ',', value_name = "URL")]
    pub servers: Vec<String>,
    /// Lattice name: lattices on one NATS never see each other [default]
    #[arg(long, env = "LATTICE_NAME", value_name = "NAME")]
    pub lattice: Option<String>,
    /// NATS user name (with --nats-password)
    #[arg(long, env = "LATTICE_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password (with --nats-user)
    #[arg(long, env = "LATTICE_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS token
    #[arg(long, env = "LATTICE_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// NATS nkey seed (SU...)
    #[arg(long, env = "LATTICE_NATS_NKEY", hide_env_values = true)]
    pub nats_nkey: Option<String>,
    /// NATS credentials file (.creds)
    #[arg(long, env = "LATTICE_NATS_CREDS", value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// CA certificate (PEM) to verify the NATS server
    #[arg(long, env = "LATTICE_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for NATS (with --tls-key)
    #[arg(long, env = "LATTICE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for NATS (with --tls-cert)
    #[arg(long, env = "LATTICE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

impl LatticeArgs {
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
        }
    }

    /// The lattice name, with `fallback` when no flag or environment gave one.
    pub fn lattice_name(&self, fallback: Option<&str>) -> anyhow::Result<Name> {
        let name = self.lattice.as_deref().or(fallback).unwrap_or("default");
        Name::new(name).context("invalid lattice name")
    }

    /// Connects a control client.
    pub async fn client(&self) -> anyhow::Result<LatticeClient> {
        let nats = self.nats(None);
        let lattice = self.lattice_name(None)?;
        LatticeClient::connect(&nats, lattice).await.map_err(anyhow::Error::from)
    }
}
