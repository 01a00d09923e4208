//! A real `nats-server` on loopback.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process::{self, DEFAULT_STARTUP_TIMEOUT, ServerProcess, StartFailure};

/// Environment variable naming the `nats-server` binary to use.
pub const NATS_SERVER_ENV: &str = "LATTICE_NATS_SERVER";

const LOG_FILE: &str = "nats-server.log";
const STORE_DIR: &str = "store";
const PORTS_DIR: &str = "ports";
const CONFIG_FILE: &str = "nats-server.conf";

/// Configures a [`NatsServer`]; from [`NatsServer::builder`].
#[derive(Debug, Clone)]
pub struct NatsServerBuilder {
    jetstream: bool,
    port: Option<u16>,
    startup_timeout: Duration,
    binary: Option<PathBuf>,
    args: Vec<OsString>,
    config: Option<String>,
    // Cluster, leafnode and monitoring settings go in the config text: see `NatsCluster`.
}

impl Default for NatsServerBuilder {
    fn default() -> Self {
        Self {
            jetstream: true,
            port: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            binary: None,
            args: Vec::new(),
            config: None,
        }
    }
}

impl NatsServerBuilder {
    /// JetStream on (the default) or off. Its store lives in the server's tempdir.
    pub fn jetstream(mut self, enabled: bool) -> Self {
        self.jetstream = enabled;
        self
    }

    /// Listen on this client port instead of one picked by the server.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How long to wait for the server to become ready (default 10 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Use this binary instead of the normal lookup (see [`NatsServer`]).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// An extra command-line argument for `nats-server` (repeatable; kept for restarts).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// A nats-server configuration file's text (accounts, users, permissions…), written into the server's
    /// tempdir and passed with `-c`. The listen address, port, JetStream switch and store directory still
    /// come from the builder (command-line flags override the file), so the free-port and kill-on-drop
    /// behaviour is unchanged.
    pub fn config(mut self, text: impl Into<String>) -> Self {
        self.config = Some(text.into());
        self
    }

    /// Starts the server and waits until it accepts clients (and JetStream is up).
    pub fn start(self) -> Result<NatsServer> {
        self.try_start().map_err(anyhow::Error::from)
    }

    /// [`start`](Self::start), telling a server that exited during startup (e.g. a port in its config was
    /// taken: worth a retry on other ports) from any other failure.
    pub(crate) fn try_start(self) -> Result<NatsServer, StartFailure> {
        let binary = match self.binary {
            Some(binary) => binary,
            None => find_nats_server().map_err(StartFailure::Other)?,
        };
        let dir = tempfile::Builder::new()
            .prefix("lattice-nats-")
            .tempdir()
            .context("creating a tempdir for nats-server")
            .map_err(StartFailure::Other)?;
        let mut args = Vec::new();
        if let Some(text) = &self.config {
            let path = dir.path().join(CONFIG_FILE);
            std::fs::write(&path, text)
                .with_context(|| format!("writing {}", path.display()))
                .map_err(StartFailure::Other)?;
            args.push(OsString::from("-c"));
            args.push(path.into_os_string());
        }
        args.extend(self.args);
        let process = ServerProcess { name: "nats-server", binary, dir, log_file: LOG_FILE, port: 0, child: None };
        let mut server = NatsServer { process, jetstream: self.jetstream, startup_timeout: self.startup_timeout, args };
        let (child, port) = server.launch(self.port)?;
        server.process.port = port;
        server.process.child = Some(child);
        Ok(server)
    }
}

/// A `nats-server` child process listening on 127.0.0.1, killed (by its PID) on drop.
///
/// Everything it owns lives in a fresh tempdir, removed on drop: the JetStream store
/// ([`store_dir`](Self::store_dir)) and its log ([`log_path`](Self::log_path), stdout and
/// stderr of every run, appended).
///
/// The binary is, in order: [`NatsServerBuilder::binary`], `$LATTICE_NATS_SERVER`,
/// `<workspace root>/.venv/bin/nats-server` (installed by `scripts/setup.sh`), then
/// `nats-server` on `PATH`.
#[derive(Debug)]
pub struct NatsServer {
    process: ServerProcess,
    jetstream: bool,
    startup_timeout: Duration,
    args: Vec<OsString>,
}

impl NatsServer {
    /// Starts a server with the default settings (JetStream on, port picked by the server).
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// Settings for a server.
    pub fn builder() -> NatsServerBuilder {
        NatsServerBuilder::default()
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.process.port)
    }

    /// The client port (unchanged by [`stop`](Self::stop)/[`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// The client address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.process.addr()
    }

    /// The running server's PID; `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether the server process is running (false once stopped or if it died).
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Whether JetStream is enabled.
    pub fn jetstream(&self) -> bool {
        self.jetstream
    }

    /// The JetStream store directory (`-sd`; the server keeps its data in `jetstream/`
    /// under it). Kept across [`stop`](Self::stop)/[`restart`](Self::restart).
    pub fn store_dir(&self) -> PathBuf {
        self.process.dir.path().join(STORE_DIR)
    }

    /// The server's log file (stdout and stderr of every run, appended).
    pub fn log_path(&self) -> PathBuf {
        self.process.log_path()
    }

    /// The whole log, for a failing test to print (empty if it cannot be read).
    pub fn log_contents(&self) -> String {
        self.process.log_contents()
    }

    /// The binary in use.
    pub fn binary(&self) -> &Path {
        &self.process.binary
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. The
    /// store, log and port are kept for [`restart`](Self::restart). No-op when stopped.
    pub fn stop(&mut self) -> Result<()> {
        self.process.stop()
    }

    /// Kills the server with SIGKILL (a crash: no clean JetStream shutdown) and waits for
    /// it to exit. Like [`stop`](Self::stop), keeps everything for a restart.
    pub fn kill(&mut self) -> Result<()> {
        self.process.kill()
    }

    /// Starts the server again on the same port with the same store (stopping it first if
    /// it is running), and waits until it is ready.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let (child, _) = self.launch(Some(self.process.port))?;
        self.process.child = Some(child);
        Ok(())
    }

    /// Spawns the server and waits for readiness; returns it and its client port.
    ///
    /// Port choice: without a fixed port the server picks a free one itself (`-p -1`) and
    /// reports it in a ports file (`--ports_file_dir`, `<exe>_<pid>.ports`). Unlike
    /// binding 127.0.0.1:0 and releasing it, that cannot race with another process
    /// taking the port between our release and the server's bind, which matters when
    /// many tests start servers in parallel. Restarts then pass the known port (`-p`).
    fn launch(&self, port: Option<u16>) -> Result<(Child, u16), StartFailure> {
        let ports_dir = self.process.dir.path().join(PORTS_DIR);
        clear_ports_dir(&ports_dir).map_err(StartFailure::Other)?;
        let store_dir = self.store_dir();
        let log_path = self.log_path();

        let mut cmd = Command::new(&self.process.binary);
        cmd.arg("-a").arg("127.0.0.1");
        match port {
            Some(port) => cmd.arg("-p").arg(port.to_string()),
            None => cmd.arg("-p").arg("-1"),
        };
        cmd.arg("--ports_file_dir").arg(&ports_dir);
        if self.jetstream {
            cmd.arg("-js").arg("-sd").arg(&store_dir);
        }
        cmd.args(&self.args);
        cmd.current_dir(self.process.dir.path());

        let (mut child, log_offset) = process::spawn_logged(&mut cmd, &log_path).map_err(StartFailure::Other)?;
        let mut known_port = port;
        let ready = process::wait_ready(&mut child, "nats-server", self.startup_timeout, &log_path, || {
            let port = match known_port {
                Some(port) => port,
                None => {
                    let port = read_ports_file(&ports_dir)?;
                    known_port = Some(port);
                    port
                }
            };
            // Logged once listening, after JetStream (if on) has started; a server
            // that cannot bind its port exits instead.
            if !process::read_log_from(&log_path, log_offset).contains("Server is ready") {
                return Err("no \"Server is ready\" in its log yet".into());
            }
            probe_info(port)?;
            Ok(port)
        });
        match ready {
            Ok(port) => Ok((child, port)),
            Err(failure) => {
                process::kill_and_reap(&mut child);
                Err(failure.context(match port {
                    Some(port) => format!("starting nats-server on 127.0.0.1:{port}"),
                    None => "starting nats-server".to_owned(),
                }))
            }
        }
    }
}

/// Finds `nats-server`: `$LATTICE_NATS_SERVER`, `<root>/.venv/bin/nats-server`, `PATH`.
pub fn find_nats_server() -> Result<PathBuf> {
    if let Some(path) = process::binary_from_env(NATS_SERVER_ENV)? {
        return Ok(path);
    }
    let venv = process::workspace_root().join(".venv/bin/nats-server");
    if venv.is_file() {
        return Ok(venv);
    }
    if let Some(path) = process::find_on_path("nats-server") {
        return Ok(path);
    }
    bail!(
        "nats-server not found: run scripts/setup.sh (installs {}), set ${NATS_SERVER_ENV}, \
         or put nats-server on PATH",
        venv.display()
    )
}

/// Creates the ports dir, removing ports files of earlier runs.
fn clear_ports_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
        if path.extension().is_some_and(|ext| ext == "ports") {
            std::fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?;
        }
    }
    Ok(())
}

/// The client port from the ports file, `{"nats":["nats://127.0.0.1:PORT"], ...}`.
///
/// The ports dir belongs to this one server, so any `*.ports` file in it is ours; that
/// also copes with a wrapper script whose PID is not the one in the file name.
fn read_ports_file(dir: &Path) -> Result<u16, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    let path = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "ports"))
        .ok_or_else(|| format!("no ports file in {} yet", dir.display()))?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    // It may be half-written: a parse error just means "not yet".
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    json.get("nats")
        .and_then(|urls| urls.as_array())
        .and_then(|urls| urls.first())
        .and_then(|url| url.as_str())
        .and_then(|url| url.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .ok_or_else(|| format!("no client port in {}: {text}", path.display()))
}

/// Connects and reads the server's greeting, `INFO {...}`.
fn probe_info(port: u16) -> Result<(), String> {
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(250))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).map_err(|e| format!("setting a read timeout: {e}"))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).map_err(|e| format!("reading INFO from {addr}: {e}"))?;
    if line.starts_with("INFO ") { Ok(()) } else { Err(format!("{addr} greeted with {line:?}, not INFO")) }
}
