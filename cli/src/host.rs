//! `lattice host` (join a lattice) and `lattice up` (a local development stack).

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use lattice_core::subject::Name;
use lattice_host::lattice::{self, HostConfig, NatsConfig};
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
    /// The operator key this host signs its placements with while it leads the lattice's reconciler (apps):
    /// a seed (SO…), a seed file, or `dev`. Hosts that trust operators refuse unsigned placements [the
    /// development operator, if this machine has one; `lattice up`: dev]
    #[arg(long, env = "LATTICE_RECONCILER_KEY", hide_env_values = true, value_name = "SEED|FILE|dev")]
    pub reconciler_key: Option<String>,
    /// Format of the log lines on stderr: text, or json (one object per line) for log shippers
    #[arg(long, env = "LATTICE_LOG_FORMAT", value_enum, default_value_t, value_name = "FORMAT")]
    pub log_format: LogFormat,
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
}

impl HostFile {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
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
        }
    }
}

fn duration(flag: Option<Duration>, file: Option<&str>, what: &str, default: Duration) -> anyhow::Result<Duration> {
    match (flag, file) {
        (Some(d), _) => Ok(d),
        (None, Some(text)) => {
            humantime::parse_duration(text).with_context(|| format!("invalid {what} `{text}` in host config"))
        }
        (None, None) => Ok(default),
    }
}

/// Runs a host until SIGINT/SIGTERM or a `stop` request, then drains it.
pub async fn run_host(args: HostArgs) -> anyhow::Result<()> {
    run_host_allowing(args, &[]).await
}

/// [`run_host`], with `extra_provider_allow` patterns allowed on top of the configured ones.
async fn run_host_allowing(args: HostArgs, extra_provider_allow: &[&str]) -> anyhow::Result<()> {
    let lattice = &args.lattice;
    let file = match &args.config {
        Some(path) => HostFile::load(path)?,
        None => HostFile::default(),
    };
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
    config.default_limits = args.limits.to_limits();
    config.artifact_dir = args.artifact_dir.clone().or_else(|| file.artifact_dir.clone());
    config.kv_quota =
        args.kv_quota.quota(file.kv_max_bytes.as_deref(), file.kv_max_keys).map_err(anyhow::Error::msg)?;
    config.app_nats = args.app_nats.config(&file, &config.nats);
    config.operators = args.operators.to_policy(&file.trusted_operators, file.require_signed_reads)?;
    config.operator_key = crate::operator::OperatorKeyArgs { operator_key: args.reconciler_key.clone() }
        .key()
        .context("--reconciler-key")?;
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
        ingress.max_body = match (args.http_max_body, file.http_max_body.as_deref()) {
            (Some(bytes), _) => bytes,
            (None, Some(text)) => {
                parse_bytes(text).map_err(|e| anyhow::anyhow!("invalid http_max_body in host config: {e}"))?
            }
            (None, None) => ingress.max_body,
        };
        ingress.read_timeout = duration(
            args.http_read_timeout,
            file.http_read_timeout.as_deref(),
            "http_read_timeout",
            ingress.read_timeout,
        )?;
        if let Some(n) = args.http_max_connections.or(file.http_max_connections) {
            ingress.max_connections = n.max(1);
        }
        config.http = Some(ingress);
    }

    let mut engine = EngineConfig::default();
    if let Some(m) = args.max_memory {
        engine.max_memory_bytes = m;
    }
    if let Some(n) = args.max_instances {
        engine.max_instances = n;
    }
    let runtime = RuntimeBuilder::new()
        .policy(args.policy.to_policy()?)
        .engine(engine)
        .cache_dir(args.cache.dir())
        .inmemory_keyvalue_quota(config.kv_quota)
        .build()
        .context("cannot start the runtime")?;
    let lattice_name = config.lattice.clone();
    let host = lattice::start(config, runtime).await.context("cannot join the lattice")?;
    let format = args.log_format;
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

/// Start a local development stack in the foreground: nats-server (unless one is reachable) and one host.
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
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!("nats-server not found: run scripts/setup.sh, or pass --nats-server")
}

/// A nats-server this process started; terminated (SIGTERM, then SIGKILL) on drop.
struct LocalNats {
    child: Child,
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
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
    // The lattice's name as the host will resolve it: flag or environment, else --config's, else `default`.
    let file_lattice = match &host.config {
        Some(path) => HostFile::load(path)?.lattice,
        None => None,
    };
    let name = host.lattice.lattice_name(file_lattice.as_deref())?;
    let lattice = &mut host.lattice;
    let url = lattice.servers.first().cloned().unwrap_or_else(|| DEFAULT_NATS.to_owned());
    let _nats = if reachable(&url) && args.nats_port.is_none() {
        notice(host.log_format, &format!("using the NATS server at {url}"));
        None
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
        notice(host.log_format, &format!("started nats-server (JetStream) at {url}, data in {}", store.display()));
        lattice.servers = vec![url];
        Some(nats)
    };
    let url = lattice.servers.first().map_or(DEFAULT_NATS, String::as_str);
    let hint =
        format!("lattice `{name}` on {url}: from another terminal, `lattice hosts --nats {url} --lattice {name}`");
    notice(host.log_format, &hint);
    // Development: providers may reach a Redis on this machine.
    run_host_allowing(host, &lattice_core::allow::LOOPBACK_REDIS).await
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
