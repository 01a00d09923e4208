//! `lattice host` (join a lattice) and `lattice up` (a local development stack).

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use lattice_client::NatsConfig;
use lattice_core::keys::{KeyKind, SeedKey};
use lattice_core::subject::Name;
use lattice_host::lattice::{self, HostConfig};
use lattice_host::{EngineConfig, RuntimeBuilder};
use serde::Deserialize;

use crate::args::{CacheArgs, KvQuotaArgs, LimitArgs, LogFormat, parse_bytes, parse_label};
use crate::connect::{ConnectionArgs, DEFAULT_NATS};
use crate::operator::TrustArgs;
use crate::policy::PolicyArgs;

/// Settings of `lattice host`. Precedence: flags, then LATTICE_* environment variables, then --config.
#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    #[command(flatten)]
    pub lattice: ConnectionArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub operators: TrustArgs,
    /// TOML host config file (see docs/host.md); flags and environment override it
    #[arg(long, env = "LATTICE_HOST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This host's id [random, h-…]
    #[arg(long, env = "LATTICE_HOST_ID", value_name = "ID")]
    pub host_id: Option<String>,
    /// A label key=value (repeatable); os, arch and hostname are added automatically
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Heartbeat interval [1s]
    #[arg(long, env = "LATTICE_HEARTBEAT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub heartbeat: Option<Duration>,
    /// How long in-flight invocations may finish on SIGINT/SIGTERM [10s]
    #[arg(long, env = "LATTICE_GRACE", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub grace: Option<Duration>,
    /// Largest actor memory any actor may be given [256MiB]
    #[arg(long, env = "LATTICE_MAX_MEMORY", value_parser = parse_bytes, value_name = "SIZE")]
    pub max_memory: Option<usize>,
    /// Instances that may be alive at once across the host [1000]
    #[arg(long, env = "LATTICE_MAX_INSTANCES", value_name = "N")]
    pub max_instances: Option<u32>,
    /// The only directory `start --path` may read components from (regular files inside it, size-checked);
    /// without it, starting from a path is refused [off]
    #[arg(long, env = "LATTICE_ARTIFACT_DIR", value_name = "DIR")]
    pub artifact_dir: Option<PathBuf>,
    #[command(flatten)]
    pub kv_quota: KvQuotaArgs,
    /// Backend URL `provider start` may connect to: scheme://host[:port], `*` within a host label or as the
    /// port (e.g. redis://127.0.0.1:*, rediss://*.cache.internal:6379). Repeatable; comma-separated in
    /// LATTICE_PROVIDER_ALLOW. None: every URL-bearing provider (redis) is refused [`lattice up`: loopback]
    #[arg(long = "provider-allow", env = "LATTICE_PROVIDER_ALLOW", value_delimiter = ',', value_name = "PATTERN")]
    pub provider_allow: Vec<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub app_nats: AppNatsArgs,
    /// Serve HTTP on this address (e.g. 0.0.0.0:8080): requests go to actors by the lattice's routes
    /// (`lattice route put`), here or on the hosts that run them [off]
    #[arg(long, env = "LATTICE_HTTP", value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Largest HTTP request body the ingress accepts; larger ones get 413 [1MiB]
    #[arg(long, env = "LATTICE_HTTP_MAX_BODY", value_parser = parse_bytes, value_name = "SIZE")]
    pub http_max_body: Option<usize>,
    /// How long an HTTP client may take to send the request headers, and then the body (slow clients are
    /// cut off) [10s]
    #[arg(long, env = "LATTICE_HTTP_READ_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub http_read_timeout: Option<Duration>,
    /// HTTP connections open at once; more are closed when accepted [10000]
    #[arg(long, env = "LATTICE_HTTP_MAX_CONNECTIONS", value_name = "N")]
    pub http_max_connections: Option<usize>,
    /// HTTP connections open at once from one client address (IPv6: one /64); more are closed when accepted.
    /// Raise it when a proxy's connections all come from one address [64]
    #[arg(long, env = "LATTICE_HTTP_MAX_CONNECTIONS_PER_CLIENT", value_name = "N")]
    pub http_max_connections_per_client: Option<usize>,
    /// The operator key this host signs its placements with while it leads the lattice's reconciler (apps):
    /// a seed (SO…), a seed file, or `dev`. Hosts that trust operators refuse unsigned placements [the
    /// development operator, if this machine has one; `lattice up`: dev]
    #[arg(long, env = "LATTICE_RECONCILER_KEY", hide_env_values = true, value_name = "SEED|FILE|dev")]
    pub reconciler_key: Option<String>,
    /// Format of the log lines on stderr: text, or json (one object per line) for log shippers [text]
    #[arg(long, env = "LATTICE_LOG_FORMAT", value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// This host's key, which signs its heartbeats, host record, bids and replies: a seed (SN…) or a seed file
    /// (`lattice keys gen --kind host`) [a fresh key each start]
    #[arg(long, env = "LATTICE_HOST_KEY", hide_env_values = true, value_name = "SEED|FILE")]
    pub host_key: Option<String>,
    /// The operator-signed credential for this host's id, lattice, key and labels (`lattice keys
    /// host-credential`); required when --trusted-operator is set [a host that trusts `dev` (and `lattice
    /// up`): issued at start by this machine's development operator]
    #[arg(long, env = "LATTICE_HOST_CREDENTIAL", value_name = "FILE")]
    pub host_credential: Option<PathBuf>,
}

impl HostArgs {
    /// The log format: the flag (or environment), else `log_format` in --config's file, else text. Logging
    /// starts before the host reads its file in full; a file that does not load is reported then.
    pub fn resolve_log_format(&mut self) -> LogFormat {
        let from_file = || HostFile::of(self).ok()?.log_format;
        let format = self.log_format.or_else(from_file).unwrap_or_default();
        self.log_format = Some(format);
        format
    }
}

/// The separate NATS connection for actors' messaging (docs/security.md).
#[derive(Debug, Clone, Default, Args)]
pub struct AppNatsArgs {
    /// NATS server URL(s) for actors' messaging (the `nats` messaging provider), comma-separated; with any
    /// --app-nats-* credential alone, the lattice's servers [the lattice's connection]
    #[arg(
        id = "app_nats_servers",
        long = "app-nats",
        env = "LATTICE_APP_NATS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub servers: Vec<String>,
    /// NATS credentials file (.creds) of the application connection
    #[arg(long, env = "LATTICE_APP_NATS_CREDS", value_name = "FILE")]
    pub app_nats_creds: Option<PathBuf>,
    /// NATS user of the application connection (with --app-nats-password)
    #[arg(long, env = "LATTICE_APP_NATS_USER")]
    pub app_nats_user: Option<String>,
    /// NATS password of the application connection (with --app-nats-user)
    #[arg(long, env = "LATTICE_APP_NATS_PASSWORD", hide_env_values = true)]
    pub app_nats_password: Option<String>,
    /// NATS token of the application connection
    #[arg(long, env = "LATTICE_APP_NATS_TOKEN", hide_env_values = true)]
    pub app_nats_token: Option<String>,
    /// NATS nkey seed (SU...) of the application connection
    #[arg(long, env = "LATTICE_APP_NATS_NKEY", hide_env_values = true)]
    pub app_nats_nkey: Option<String>,
}

impl AppNatsArgs {
    /// The application connection, if flags, environment or `file` ask for one. It verifies the server with
    /// the lattice connection's CA and TLS requirement, but never presents the lattice's client certificate
    /// (that would authenticate it as the lattice's NATS user).
    fn config(&self, file: &HostFile, lattice: &NatsConfig) -> Option<NatsConfig> {
        let servers =
            if self.servers.is_empty() { file.app_nats.clone().unwrap_or_default() } else { self.servers.clone() };
        let config = NatsConfig {
            servers,
            user: self.app_nats_user.clone().or_else(|| file.app_nats_user.clone()),
            password: self.app_nats_password.clone().or_else(|| file.app_nats_password.clone()),
            token: self.app_nats_token.clone().or_else(|| file.app_nats_token.clone()),
            nkey_seed: self.app_nats_nkey.clone().or_else(|| file.app_nats_nkey.clone()),
            creds_file: self.app_nats_creds.clone().or_else(|| file.app_nats_creds.clone()),
            tls_ca: lattice.tls_ca.clone(),
            tls_cert: None,
            tls_key: None,
            require_tls: lattice.require_tls,
            inbox_prefix: None,
        };
        let credentials = config.user.is_some()
            || config.password.is_some()
            || config.token.is_some()
            || config.nkey_seed.is_some()
            || config.creds_file.is_some();
        if config.servers.is_empty() && !credentials {
            return None;
        }
        let servers = if config.servers.is_empty() { lattice.servers.clone() } else { config.servers };
        Some(NatsConfig { servers, ..config })
    }
}

/// The TOML host config file. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    /// NATS server URLs.
    pub nats: Option<Vec<String>>,
    /// Lattice name.
    pub lattice: Option<String>,
    /// Host id.
    pub host_id: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Heartbeat, e.g. "1s".
    pub heartbeat: Option<String>,
    /// Grace period, e.g. "10s".
    pub grace: Option<String>,
    /// NATS user.
    pub nats_user: Option<String>,
    /// NATS password.
    pub nats_password: Option<String>,
    /// NATS token.
    pub nats_token: Option<String>,
    /// NATS nkey seed.
    pub nats_nkey: Option<String>,
    /// NATS creds file.
    pub nats_creds: Option<PathBuf>,
    /// Prefix of the host's reply inboxes (`lattice nats-config`).
    pub nats_inbox_prefix: Option<String>,
    /// TLS CA.
    pub tls_ca: Option<PathBuf>,
    /// TLS client certificate.
    pub tls_cert: Option<PathBuf>,
    /// TLS client key.
    pub tls_key: Option<PathBuf>,
    /// Require TLS.
    #[serde(default)]
    pub require_tls: bool,
    /// The only directory `start --path` may read components from.
    pub artifact_dir: Option<PathBuf>,
    /// Bytes per in-memory key-value bucket, e.g. "64MiB".
    pub kv_max_bytes: Option<String>,
    /// Keys per in-memory key-value bucket.
    pub kv_max_keys: Option<u64>,
    /// NATS server URLs of the application connection (actors' messaging).
    pub app_nats: Option<Vec<String>>,
    /// NATS creds file of the application connection.
    pub app_nats_creds: Option<PathBuf>,
    /// NATS user of the application connection.
    pub app_nats_user: Option<String>,
    /// NATS password of the application connection.
    pub app_nats_password: Option<String>,
    /// NATS token of the application connection.
    pub app_nats_token: Option<String>,
    /// NATS nkey seed of the application connection.
    pub app_nats_nkey: Option<String>,
    /// Operators (public keys `O…`, or `dev`) whose signed control requests and link records are accepted.
    #[serde(default)]
    pub trusted_operators: Vec<String>,
    /// Require a trusted operator's signature on read-only requests too.
    #[serde(default)]
    pub require_signed_reads: bool,
    /// Backend URL patterns `provider start` may connect to.
    pub provider_allow: Option<Vec<String>>,
    /// Serve HTTP on this address (`--http`).
    pub http: Option<std::net::SocketAddr>,
    /// Largest HTTP request body (`--http-max-body`), e.g. `1MiB`.
    pub http_max_body: Option<String>,
    /// How long a client may take to send headers, then body (`--http-read-timeout`), e.g. `10s`.
    pub http_read_timeout: Option<String>,
    /// HTTP connections open at once (`--http-max-connections`).
    pub http_max_connections: Option<usize>,
    /// HTTP connections open at once from one client address (`--http-max-connections-per-client`).
    pub http_max_connections_per_client: Option<usize>,
    /// Issuers whose actors run here (`--trusted-issuer`): public keys `A…`, or `dev`.
    #[serde(default)]
    pub trusted_issuers: Vec<String>,
    /// Also run unsigned actors (`--allow-unsigned`, development only).
    #[serde(default)]
    pub allow_unsigned: bool,
    /// Largest actor memory any actor may be given (`--max-memory`), e.g. `256MiB`.
    pub max_memory: Option<String>,
    /// Instances alive at once across the host (`--max-instances`).
    pub max_instances: Option<u32>,
    /// Default memory cap per instance (`--memory`), e.g. `64MiB`.
    pub memory: Option<String>,
    /// Default CPU time of one invocation (`--cpu-time`), e.g. `1s`.
    pub cpu_time: Option<String>,
    /// Default wall-clock timeout of one invocation (`--timeout`), e.g. `10s`.
    pub timeout: Option<String>,
    /// Default instances of one actor that may run at once (`--max-concurrency`).
    pub max_concurrency: Option<u32>,
    /// Default largest reply (`--max-reply`), e.g. `1MiB`.
    pub max_reply: Option<String>,
    /// Default invocations one instance may serve in a row (`--instance-reuse`), at least 1.
    pub instance_reuse: Option<u32>,
    /// Directory of the compiled-component cache (`--cache-dir`).
    pub cache_dir: Option<PathBuf>,
    /// Compile every time, with no cache (`--no-cache`).
    #[serde(default)]
    pub no_cache: bool,
    /// The operator key the reconciler signs placements with (`--reconciler-key`): a seed, a seed file, or `dev`.
    pub reconciler_key: Option<String>,
    /// Format of the log lines on stderr: "text" or "json" (`--log-format`).
    pub log_format: Option<LogFormat>,
    /// This host's key (`--host-key`): a seed `SN…` or a seed file.
    pub host_key: Option<String>,
    /// The host's operator-signed credential file (`--host-credential`).
    pub host_credential: Option<PathBuf>,
}

impl HostFile {
    /// The file `args.config` names, or an empty one without --config.
    fn of(args: &HostArgs) -> anyhow::Result<Self> {
        args.config.as_deref().map_or_else(|| Ok(HostFile::default()), HostFile::load)
    }

    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = lattice_host::files::read_text(path, lattice_host::files::MAX_TEXT_BYTES)?;
        toml::from_str(&text).with_context(|| format!("invalid host config {}", path.display()))
    }

    fn nats(&self) -> NatsConfig {
        NatsConfig {
            servers: self.nats.clone().unwrap_or_default(),
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            token: self.nats_token.clone(),
            nkey_seed: self.nats_nkey.clone(),
            creds_file: self.nats_creds.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            require_tls: self.require_tls,
            inbox_prefix: self.nats_inbox_prefix.clone(),
        }
    }
}

fn duration(flag: Option<Duration>, file: Option<&str>, what: &str, default: Duration) -> anyhow::Result<Duration> {
    Ok(file_duration(flag, file, what)?.unwrap_or(default))
}

/// The flag's duration, else the config file's (`what` is its TOML key).
fn file_duration(flag: Option<Duration>, file: Option<&str>, what: &str) -> anyhow::Result<Option<Duration>> {
    match (flag, file) {
        (Some(d), _) => Ok(Some(d)),
        (None, Some(text)) => {
            humantime::parse_duration(text).map(Some).with_context(|| format!("invalid {what} `{text}` in host config"))
        }
        (None, None) => Ok(None),
    }
}

/// The flag's size, else the config file's (`what` is its TOML key).
fn file_size(flag: Option<usize>, file: Option<&str>, what: &str) -> anyhow::Result<Option<usize>> {
    match (flag, file) {
        (Some(bytes), _) => Ok(Some(bytes)),
        (None, Some(text)) => {
            parse_bytes(text).map(Some).map_err(|e| anyhow::anyhow!("invalid {what} in host config: {e}"))
        }
        (None, None) => Ok(None),
    }
}

/// Everything a host runs with, from flags, then environment, then the config file.
#[derive(Debug)]
struct Settings {
    config: HostConfig,
    policy: lattice_core::claims::Policy,
    engine: EngineConfig,
    cache_dir: Option<PathBuf>,
}

impl HostArgs {
    /// The signing policy: flags (or LATTICE_TRUSTED_ISSUERS) replace the file's trusted issuers; unsigned
    /// actors run if either allows them.
    fn policy(&self, file: &HostFile) -> anyhow::Result<lattice_core::claims::Policy> {
        let trusted_issuers = if self.policy.trusted_issuers.is_empty() {
            file.trusted_issuers.clone()
        } else {
            self.policy.trusted_issuers.clone()
        };
        PolicyArgs { trusted_issuers, allow_unsigned: self.policy.allow_unsigned || file.allow_unsigned }.to_policy()
    }

    /// The default actor limits: each flag, else the file's key, else the built-in default.
    fn limits(&self, file: &HostFile) -> anyhow::Result<lattice_host::ActorLimits> {
        if file.instance_reuse == Some(0) {
            bail!("invalid instance_reuse in host config: it must be at least 1");
        }
        let flags = &self.limits;
        Ok(LimitArgs {
            memory: file_size(flags.memory, file.memory.as_deref(), "memory")?,
            cpu_time: file_duration(flags.cpu_time, file.cpu_time.as_deref(), "cpu_time")?,
            timeout: file_duration(flags.timeout, file.timeout.as_deref(), "timeout")?,
            max_concurrency: flags.max_concurrency.or(file.max_concurrency),
            max_reply: file_size(flags.max_reply, file.max_reply.as_deref(), "max_reply")?,
            instance_reuse: flags.instance_reuse.or(file.instance_reuse),
        }
        .to_limits())
    }

    /// The compiled-component cache: the flags if either is given, else the file's.
    fn cache_dir(&self, file: &HostFile) -> Option<PathBuf> {
        let cache = if self.cache.cache_dir.is_some() || self.cache.no_cache {
            self.cache.clone()
        } else {
            CacheArgs { cache_dir: file.cache_dir.clone(), no_cache: file.no_cache }
        };
        cache.dir()
    }

    /// The engine's caps: each flag, else the file's key, else the default.
    fn engine(&self, file: &HostFile) -> anyhow::Result<EngineConfig> {
        let mut engine = EngineConfig::default();
        if let Some(m) = file_size(self.max_memory, file.max_memory.as_deref(), "max_memory")? {
            engine.max_memory_bytes = m;
        }
        if let Some(n) = self.max_instances.or(file.max_instances) {
            engine.max_instances = n;
        }
        Ok(engine)
    }
}

/// Runs a host until SIGINT/SIGTERM or a `stop` request, then drains it.
pub async fn run_host(args: HostArgs) -> anyhow::Result<()> {
    let file = HostFile::of(&args)?;
    run_host_allowing(args, &file, &[]).await
}

/// [`run_host`], with `extra_provider_allow` patterns allowed on top of the configured ones.
async fn run_host_allowing(args: HostArgs, file: &HostFile, extra_provider_allow: &[&str]) -> anyhow::Result<()> {
    let Settings { config, policy, engine, cache_dir } = settings(&args, file, extra_provider_allow)?;
    let runtime = RuntimeBuilder::new()
        .policy(policy)
        .engine(engine)
        .cache_dir(cache_dir)
        .inmemory_keyvalue_quota(config.kv_quota)
        .build()
        .context("cannot start the runtime")?;
    let lattice_name = config.lattice.clone();
    let host = lattice::start(config, runtime).await.context("cannot join the lattice")?;
    let format = args.log_format.unwrap_or_default();
    notice(format, &format!("host {} joined lattice `{lattice_name}`; Ctrl-C to stop", host.id()));
    let stop = host.stop_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        notice(format, "stopping: finishing in-flight invocations");
        stop.cancel();
    });
    host.wait().await;
    Ok(())
}

/// Resolves every setting of a host from `args` (flags and environment) over `file`.
fn settings(args: &HostArgs, file: &HostFile, extra_provider_allow: &[&str]) -> anyhow::Result<Settings> {
    let lattice = &args.lattice;
    let nats = lattice.nats(Some(&file.nats()));
    let lattice_name = lattice.lattice_name(file.lattice.as_deref())?;
    let mut config = HostConfig::new(nats, lattice_name);
    if let Some(id) = args.host_id.as_deref().or(file.host_id.as_deref()) {
        config.id = Name::new(id).context("invalid host id")?;
    }
    config.labels = file.labels.clone();
    config.labels.extend(args.labels.iter().cloned());
    config.heartbeat = duration(args.heartbeat, file.heartbeat.as_deref(), "heartbeat", config.heartbeat)?;
    config.grace = duration(args.grace, file.grace.as_deref(), "grace", config.grace)?;
    config.default_limits = args.limits(file)?;
    config.artifact_dir = args.artifact_dir.clone().or_else(|| file.artifact_dir.clone());
    config.kv_quota =
        args.kv_quota.quota(file.kv_max_bytes.as_deref(), file.kv_max_keys).map_err(anyhow::Error::msg)?;
    config.app_nats = args.app_nats.config(file, &config.nats);
    config.operators = args.operators.to_policy(&file.trusted_operators, file.require_signed_reads)?;
    let reconciler_key = args.reconciler_key.clone().or_else(|| file.reconciler_key.clone());
    config.operator_key =
        crate::operator::OperatorKeyArgs { operator_key: reconciler_key }.key().context("--reconciler-key")?;
    identity(args, file, &mut config)?;
    let patterns = if args.provider_allow.is_empty() {
        file.provider_allow.clone().unwrap_or_default()
    } else {
        args.provider_allow.clone()
    };
    for text in patterns.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let pattern = text.parse().map_err(|e| anyhow::anyhow!("--provider-allow: {e}"))?;
        config.provider_allow.push(pattern);
    }
    for pattern in extra_provider_allow {
        config.provider_allow.push(pattern.parse()?);
    }
    if let Some(addr) = args.http.or(file.http) {
        let mut ingress = lattice_host::lattice::IngressConfig::new(addr);
        if let Some(bytes) = file_size(args.http_max_body, file.http_max_body.as_deref(), "http_max_body")? {
            ingress.max_body = bytes;
        }
        ingress.read_timeout = duration(
            args.http_read_timeout,
            file.http_read_timeout.as_deref(),
            "http_read_timeout",
            ingress.read_timeout,
        )?;
        if let Some(n) = args.http_max_connections.or(file.http_max_connections) {
            ingress.max_connections = n.max(1);
        }
        let per_client = args.http_max_connections_per_client.or(file.http_max_connections_per_client);
        if let Some(n) = per_client {
            ingress.max_connections_per_client = n.max(1);
        }
        config.http = Some(ingress);
    }
    Ok(Settings { config, policy: args.policy(file)?, engine: args.engine(file)?, cache_dir: args.cache_dir(file) })
}

/// The host's key and credential: `--host-key` (else the file's, else a fresh key) and `--host-credential`
/// (else the file's); a host that trusts the development operator (`dev`, as `lattice up`'s does) and has no
/// credential gets one from that operator, whose seed is on this machine.
fn identity(args: &HostArgs, file: &HostFile, config: &mut HostConfig) -> anyhow::Result<()> {
    let trusted = if args.operators.trusted_operators.is_empty() {
        &file.trusted_operators
    } else {
        &args.operators.trusted_operators
    };
    let trusts_dev = args.operators.trust_dev || trusted.iter().any(|t| t.trim() == "dev");
    let key = match args.host_key.as_deref().or(file.host_key.as_deref()) {
        Some(text) => crate::keys::seed_or_file(text, KeyKind::Host).context("--host-key")?,
        None => SeedKey::generate(KeyKind::Host)?,
    };
    let credential = match args.host_credential.as_deref().or(file.host_credential.as_deref()) {
        Some(path) => Some(crate::keys::read_credential(path).context("--host-credential")?),
        None if trusts_dev => {
            let mut labels = lattice::automatic_labels();
            labels.extend(config.labels.clone());
            Some(crate::keys::issue_credential(
                &crate::keys::dev_operator()?,
                config.id.clone(),
                config.lattice.clone(),
                key.public_key(),
                labels,
                crate::keys::DEV_CREDENTIAL_VALIDITY,
            ))
        }
        None => None,
    };
    config.host_key = Some(key);
    config.host_credential = credential;
    Ok(())
}

/// A line for the person running the host: on stderr as it is, or an info log line with `--log-format json`
/// (so that stderr holds nothing but JSON).
fn notice(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => eprintln!("{message}"),
        LogFormat::Json => tracing::info!("{message}"),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Start a local development stack in the foreground: nats-server (unless the server --nats or --config names
/// is reachable) and one host.
///
/// The host trusts this machine's development operator (created on first use; `lattice keys dev --kind
/// operator`), which the control verbs sign with by default, in addition to any --trusted-operator.
/// Ctrl-C stops both cleanly.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Port for the nats-server `up` starts when none is reachable [4222, or a free one if taken]
    #[arg(long)]
    pub nats_port: Option<u16>,
    /// The nats-server binary [LATTICE_NATS_SERVER, ./.venv/bin/nats-server, or PATH]
    #[arg(long, env = "LATTICE_NATS_SERVER")]
    pub nats_server: Option<PathBuf>,
    #[command(flatten)]
    pub host: HostArgs,
}

fn reachable(url: &str) -> bool {
    let addr = url.trim_start_matches("nats://").trim_start_matches("tls://");
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

fn find_nats_server(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let local = PathBuf::from(".venv/bin/nats-server");
    if local.is_file() {
        return Ok(local);
    }
    which::which("nats-server")
        .map_err(|_| anyhow::anyhow!("nats-server not found on PATH: run scripts/setup.sh, or pass --nats-server"))
}

/// A nats-server this process started; terminated (SIGTERM, then SIGKILL) on drop.
struct LocalNats {
    child: Child,
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let pid = rustix::process::Pid::from_child(&self.child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let mut host = args.host;
    // The development stack trusts this machine's development operator (created on first use), which the
    // control verbs sign with by default: the demo works unchanged while unsigned changes are refused.
    host.operators.trust_dev = true;
    // Its reconciler places apps' actors with the same operator's signature.
    host.reconciler_key.get_or_insert_with(|| "dev".to_owned());
    // The lattice's name and NATS server as the host will resolve them: flag or environment, else --config's,
    // else `default` on the local server.
    let file = HostFile::of(&host)?;
    let name = host.lattice.lattice_name(file.lattice.as_deref())?;
    let lattice = &mut host.lattice;
    let file_server = file.nats.as_ref().and_then(|servers| servers.first());
    let url = lattice.servers.first().or(file_server).cloned().unwrap_or_else(|| DEFAULT_NATS.to_owned());
    let format = host.log_format.unwrap_or_default();
    let (url, _nats) = if reachable(&url) && args.nats_port.is_none() {
        notice(format, &format!("using the NATS server at {url}"));
        (url, None)
    } else {
        let binary = find_nats_server(args.nats_server.clone())?;
        let port = match args.nats_port {
            Some(port) => port,
            None if reachable(DEFAULT_NATS) => free_port()?,
            None => 4222,
        };
        let store = crate::dirs::local_nats_dir();
        std::fs::create_dir_all(&store).with_context(|| format!("cannot create {}", store.display()))?;
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let nats = LocalNats { child };
        let url = format!("nats://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reachable(&url) {
            if Instant::now() > deadline {
                bail!("nats-server did not come up on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        notice(format, &format!("started nats-server (JetStream) at {url}, data in {}", store.display()));
        lattice.servers = vec![url.clone()];
        (url, Some(nats))
    };
    let hint =
        format!("lattice `{name}` on {url}: from another terminal, `lattice hosts --nats {url} --lattice {name}`");
    notice(format, &hint);
    // Development: providers may reach a Redis on this machine.
    run_host_allowing(host, &file, &lattice_core::allow::LOOPBACK_REDIS).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lattice() -> NatsConfig {
        NatsConfig {
            tls_ca: Some("ca.pem".into()),
            tls_cert: Some("host.pem".into()),
            tls_key: Some("host.key".into()),
            require_tls: true,
            ..NatsConfig::new(["nats://lattice:4222"])
        }
    }

    /// `lattice host` with no flags (as if run with an empty environment).
    fn no_flags() -> HostArgs {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            host: HostArgs,
        }
        <Cli as clap::Parser>::try_parse_from(["host"]).expect("no flags parse").host
    }

    #[test]
    fn every_flag_has_a_toml_key() {
        let command = <HostArgs as clap::Args>::augment_args(clap::Command::new("host"));
        let mut checked = 0;
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let key = match long {
                "config" => continue,
                "label" => "labels".to_owned(),
                "trusted-issuer" | "trusted-operator" => format!("{}s", long.replace('-', "_")),
                other => other.replace('-', "_"),
            };
            // A key of the wrong type fails on its type; only a key the file lacks fails as unknown.
            let error = toml::from_str::<HostFile>(&format!("{key} = []")).err().map(|e| e.to_string());
            assert!(
                !error.as_deref().is_some_and(|e| e.contains("unknown field")),
                "--{long} has no TOML key `{key}`: {error:?}"
            );
            checked += 1;
        }
        assert!(checked > 30, "only {checked} flags checked");
    }

    #[test]
    fn a_config_with_every_key_takes_effect() {
        use lattice_core::keys::{KeyKind, SeedKey};
        let issuer = SeedKey::generate(KeyKind::Issuer).expect("issuer").public_key();
        let operator = SeedKey::generate(KeyKind::Operator).expect("operator");
        let text = format!(
            r#"
nats = ["nats://10.0.0.1:4222"]
lattice = "prod"
host_id = "edge-1"
heartbeat = "2s"
grace = "5s"
nats_user = "u"
nats_password = "p"
nats_token = "t"
nats_nkey = "SUAAA"
nats_creds = "host.creds"
tls_ca = "ca.pem"
tls_cert = "host.pem"
tls_key = "host.key"
require_tls = true
artifact_dir = "/srv/artifacts"
kv_max_bytes = "2MiB"
kv_max_keys = 500
app_nats = ["nats://10.0.0.2:4222"]
app_nats_creds = "app.creds"
app_nats_user = "au"
app_nats_password = "ap"
app_nats_token = "at"
app_nats_nkey = "SUBBB"
trusted_operators = ["{operator_public}"]
require_signed_reads = true
provider_allow = ["redis://10.0.0.5:6379"]
http = "127.0.0.1:8080"
http_max_body = "2MiB"
http_read_timeout = "3s"
http_max_connections = 50
http_max_connections_per_client = 5
trusted_issuers = ["{issuer}"]
allow_unsigned = true
max_memory = "128MiB"
max_instances = 40
memory = "32MiB"
cpu_time = "250ms"
timeout = "4s"
max_concurrency = 8
max_reply = "512KiB"
instance_reuse = 3
cache_dir = "/var/cache/lattice"
no_cache = false
reconciler_key = "{operator_seed}"
log_format = "json"

[labels]
zone = "eu"
"#,
            operator_public = operator.public_key(),
            operator_seed = operator.to_seed_string(),
        );
        let file: HostFile = toml::from_str(&text).expect("every key parses");
        assert_eq!(file.log_format, Some(LogFormat::Json));
        let Settings { config, policy, engine, cache_dir } = settings(&no_flags(), &file, &[]).expect("settings");
        assert_eq!(config.id.as_str(), "edge-1");
        assert_eq!(config.heartbeat, Duration::from_secs(2));
        assert_eq!(config.labels.get("zone").map(String::as_str), Some("eu"));
        assert!(policy.allow_unsigned);
        assert_eq!(policy.trusted_issuers, [issuer]);
        assert_eq!((engine.max_memory_bytes, engine.max_instances), (128 << 20, 40));
        let limits = &config.default_limits;
        assert_eq!((limits.memory_bytes, limits.max_reply_bytes), (32 << 20, 512 << 10));
        assert_eq!((limits.cpu_time, limits.timeout), (Duration::from_millis(250), Duration::from_secs(4)));
        assert_eq!((limits.max_concurrency, limits.instance_reuse), (8, 3));
        assert_eq!(cache_dir.as_deref(), Some(Path::new("/var/cache/lattice")));
        assert_eq!(config.kv_quota.max_keys, 500);
        assert_eq!(config.operators.trusted, [operator.public_key()]);
        assert_eq!(config.operator_key.map(|k| k.public_key()), Some(operator.public_key()));
        let http = config.http.expect("the ingress is on");
        assert_eq!((http.max_body, http.max_connections, http.max_connections_per_client), (2 << 20, 50, 5));
        assert!(config.app_nats.is_some());

        // `no_cache` in the file turns the cache off; a flag still wins over the file.
        let file: HostFile = toml::from_str("no_cache = true\nmax_instances = 40").expect("valid");
        assert_eq!(settings(&no_flags(), &file, &[]).expect("settings").cache_dir, None);
        let mut args = no_flags();
        args.max_instances = Some(7);
        assert_eq!(settings(&args, &file, &[]).expect("settings").engine.max_instances, 7);
    }

    #[test]
    fn the_log_format_comes_from_the_flag_else_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("host.toml");
        std::fs::write(&path, "log_format = \"json\"\n").expect("write");
        let mut args = no_flags();
        assert_eq!(args.resolve_log_format(), LogFormat::Text);
        args = HostArgs { config: Some(path), ..no_flags() };
        assert_eq!(args.resolve_log_format(), LogFormat::Json);
        assert_eq!(args.log_format, Some(LogFormat::Json), "resolved once, for the notices too");
        args.log_format = Some(LogFormat::Text);
        assert_eq!(args.resolve_log_format(), LogFormat::Text, "the flag wins over the file");
    }

    #[test]
    fn unknown_and_invalid_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("host.toml");
        std::fs::write(&path, "allow_unsigned = true\ntrusted_issuer = [\"dev\"]\n").expect("write");
        let error = format!("{:#}", HostFile::load(&path).expect_err("unknown key"));
        assert!(error.contains("unknown field `trusted_issuer`"), "{error}");
        assert!(error.contains("trusted_issuers"), "the error lists the keys: {error}");

        let file: HostFile = toml::from_str("cpu_time = \"soon\"").expect("a string");
        let error = format!("{:#}", settings(&no_flags(), &file, &[]).expect_err("bad duration"));
        assert!(error.contains("invalid cpu_time `soon` in host config"), "{error}");
        let file: HostFile = toml::from_str("instance_reuse = 0").expect("a number");
        let error = format!("{:#}", settings(&no_flags(), &file, &[]).expect_err("zero reuse"));
        assert!(error.contains("instance_reuse"), "{error}");
    }

    #[test]
    fn no_app_settings_means_no_app_connection() {
        assert!(AppNatsArgs::default().config(&HostFile::default(), &lattice()).is_none());
    }

    #[test]
    fn app_credentials_alone_use_the_lattice_servers_without_its_client_certificate() {
        let file: HostFile =
            toml::from_str("app_nats_user = \"app\"\napp_nats_password = \"pw\"").expect("valid host config");
        let app = AppNatsArgs::default().config(&file, &lattice()).expect("an app connection");
        assert_eq!(app.servers, ["nats://lattice:4222"]);
        assert_eq!((app.user.as_deref(), app.password.as_deref()), (Some("app"), Some("pw")));
        assert_eq!(app.tls_ca.as_deref(), Some(Path::new("ca.pem")));
        assert!(app.require_tls);
        assert!(app.tls_cert.is_none() && app.tls_key.is_none());
    }

    #[test]
    fn app_flags_override_the_file() {
        let file: HostFile = toml::from_str("app_nats = [\"nats://file:4222\"]\napp_nats_creds = \"file.creds\"")
            .expect("valid host config");
        let args = AppNatsArgs {
            servers: vec!["nats://flag:4222".into()],
            app_nats_token: Some("t".into()),
            ..AppNatsArgs::default()
        };
        let app = args.config(&file, &lattice()).expect("an app connection");
        assert_eq!(app.servers, ["nats://flag:4222"]);
        assert_eq!(app.creds_file.as_deref(), Some(Path::new("file.creds")));
        assert_eq!(app.token.as_deref(), Some("t"));
    }
}
