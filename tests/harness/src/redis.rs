//! A real `redis-server` on loopback.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process::{self, DEFAULT_STARTUP_TIMEOUT, ServerProcess, StartFailure};

/// Environment variable naming the `redis-server` binary to use.
pub const REDIS_SERVER_ENV: &str = "LATTICE_REDIS_SERVER";

const LOG_FILE: &str = "redis-server.log";
const DATA_DIR: &str = "data";
/// Fresh ports tried when the server exits at startup (e.g. its port got taken).
const PORT_ATTEMPTS: usize = 5;

/// Configures a [`RedisServer`]; from [`RedisServer::builder`].
#[derive(Debug, Clone)]
pub struct RedisServerBuilder {
    port: Option<u16>,
    startup_timeout: Duration,
    binary: Option<PathBuf>,
    args: Vec<OsString>,
}

impl Default for RedisServerBuilder {
    fn default() -> Self {
        Self { port: None, startup_timeout: DEFAULT_STARTUP_TIMEOUT, binary: None, args: Vec::new() }
    }
}

impl RedisServerBuilder {
    /// Listen on this port instead of a free one picked by the harness (no retries then).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How long to wait for the server to become ready (default 10 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Use this binary instead of the normal lookup (see [`RedisServer`]).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// An extra command-line argument for `redis-server` (repeatable; kept for restarts),
    /// e.g. `.arg("--maxmemory").arg("10mb")`.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts the server and waits until it answers `PING`.
    pub fn start(self) -> Result<RedisServer> {
        let binary = match self.binary {
            Some(binary) => binary,
            None => find_redis_server()?,
        };
        let dir = tempfile::Builder::new()
            .prefix("lattice-redis-")
            .tempdir()
            .context("creating a tempdir for redis-server")?;
        let data_dir = dir.path().join(DATA_DIR);
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let process = ServerProcess { name: "redis-server", binary, dir, log_file: LOG_FILE, port: 0, child: None };
        let mut server = RedisServer { process, startup_timeout: self.startup_timeout, args: self.args };
        let child = match self.port {
            Some(port) => {
                server.process.port = port;
                server.launch(port).map_err(anyhow::Error::from)?
            }
            None => server.launch_on_free_port()?,
        };
        server.process.child = Some(child);
        Ok(server)
    }
}

/// A `redis-server` child process listening on 127.0.0.1, killed (by its PID) on drop.
///
/// Runs without persistence (`--save "" --appendonly no`), so a restart starts empty. Its
/// working directory and log ([`log_path`](Self::log_path)) live in a fresh tempdir,
/// removed on drop.
///
/// The binary is, in order: [`RedisServerBuilder::binary`], `$LATTICE_REDIS_SERVER`, then
/// `redis-server` on `PATH` (`scripts/setup.sh` installs it).
#[derive(Debug)]
pub struct RedisServer {
    process: ServerProcess,
    startup_timeout: Duration,
    args: Vec<OsString>,
}

impl RedisServer {
    /// Starts a server on a free port.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// Settings for a server.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.process.port)
    }

    /// The port (unchanged by [`stop`](Self::stop)/[`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// The address, `127.0.0.1:PORT`.
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

    /// The server's working directory (`--dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.process.dir.path().join(DATA_DIR)
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
    /// port is kept for [`restart`](Self::restart). No-op when stopped.
    pub fn stop(&mut self) -> Result<()> {
        self.process.stop()
    }

    /// Kills the server with SIGKILL and waits for it to exit; keeps the port.
    pub fn kill(&mut self) -> Result<()> {
        self.process.kill()
    }

    /// Starts the server again on the same port (stopping it first if it is running) and
    /// waits until it answers `PING`. It starts empty unless persistence was turned on with builder args
    /// (e.g. `--appendonly yes`): the data directory is kept.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let child = self.launch(self.process.port).map_err(anyhow::Error::from)?;
        self.process.child = Some(child);
        Ok(())
    }

    /// Port choice: `redis-server` cannot pick its own port (`--port 0` disables TCP), so
    /// bind 127.0.0.1:0, note the port the kernel chose, release it and pass it on. Another
    /// process may take it in between; the server then exits at startup (or, if that other
    /// process is a redis-server too, answers with a different `process_id`, which the
    /// readiness check rejects), and we retry on a fresh port.
    fn launch_on_free_port(&mut self) -> Result<Child> {
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = process::free_port()?;
            self.process.port = port;
            match self.launch(port) {
                Ok(child) => return Ok(child),
                Err(StartFailure::Exited(e)) => failures.push(e),
                Err(StartFailure::Other(e)) => return Err(e),
            }
        }
        let mut message = format!("redis-server failed to start on {PORT_ATTEMPTS} free ports");
        for failure in failures {
            message.push_str(&format!("\n{failure:#}"));
        }
        bail!(message)
    }

    fn launch(&self, port: u16) -> Result<Child, StartFailure> {
        let log_path = self.log_path();
        let mut cmd = Command::new(&self.process.binary);
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--daemonize")
            .arg("no")
            .arg("--dir")
            .arg(self.data_dir())
            .args(&self.args)
            .current_dir(self.process.dir.path());

        let (mut child, _) = process::spawn_logged(&mut cmd, &log_path).map_err(StartFailure::Other)?;
        let pid = child.id();
        let ready =
            process::wait_ready(&mut child, "redis-server", self.startup_timeout, &log_path, || probe_redis(port, pid));
        match ready {
            Ok(()) => Ok(child),
            Err(failure) => {
                process::kill_and_reap(&mut child);
                Err(failure.context(format!("starting redis-server on 127.0.0.1:{port}")))
            }
        }
    }
}

/// Finds `redis-server`: `$LATTICE_REDIS_SERVER`, then `PATH`.
pub fn find_redis_server() -> Result<PathBuf> {
    if let Some(path) = process::binary_from_env(REDIS_SERVER_ENV)? {
        return Ok(path);
    }
    if let Some(path) = process::find_on_path("redis-server") {
        return Ok(path);
    }
    bail!(
        "redis-server not found: run scripts/setup.sh (installs the redis-server package), \
         set ${REDIS_SERVER_ENV}, or put redis-server on PATH"
    )
}

/// Ready once `PING` gets `+PONG` and `INFO server` reports our PID (not another
/// redis-server that happens to hold the port).
fn probe_redis(port: u16, pid: u32) -> Result<(), String> {
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(250))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_millis(500))))
        .map_err(|e| format!("setting socket timeouts: {e}"))?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| format!("cloning the socket: {e}"))?);
    let io = |e: std::io::Error| format!("talking to {addr}: {e}");

    stream.write_all(b"PING\r\n").map_err(io)?;
    let mut line = String::new();
    reader.read_line(&mut line).map_err(io)?;
    if line.trim_end() != "+PONG" {
        return Err(format!("PING answered with {line:?}"));
    }

    stream.write_all(b"INFO server\r\n").map_err(io)?;
    line.clear();
    reader.read_line(&mut line).map_err(io)?;
    let len: usize = line
        .trim_end()
        .strip_prefix('$')
        .and_then(|len| len.parse().ok())
        .ok_or_else(|| format!("INFO answered with {line:?}"))?;
    let mut info = vec![0; len + 2];
    reader.read_exact(&mut info).map_err(io)?;
    let info = String::from_utf8_lossy(&info);
    let server_pid = info
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse::<u32>().ok())
        .ok_or_else(|| "INFO server has no process_id".to_owned())?;
    if server_pid == pid {
        Ok(())
    } else {
        Err(format!("{addr} is answered by another redis-server (pid {server_pid}; ours is {pid})"))
    }
}
