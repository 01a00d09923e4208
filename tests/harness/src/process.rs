//! Child-process plumbing shared by [`crate::NatsServer`] and [`crate::RedisServer`]:
//! binary lookup, spawning with output to a log file, readiness polling, stopping.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How long a server gets to become ready, unless its builder says otherwise.
pub(crate) const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `stop()` waits after SIGTERM before falling back to SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Interval between readiness probes.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How many log lines error messages quote.
const LOG_TAIL_LINES: usize = 40;

/// The workspace root: this crate lives at `<root>/tests/harness`.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.ancestors().nth(2).unwrap_or(manifest_dir).to_path_buf()
}

/// A port that was free on 127.0.0.1 a moment ago (bind 127.0.0.1:0, note the port, release it). Another
/// process may take it before the server binds it: callers retry on [`StartFailure::Exited`].
pub(crate) fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0 for a port")?;
    let port = listener.local_addr().context("reading the bound port")?.port();
    drop(listener);
    Ok(port)
}

/// The executable `name` in one of the directories of `PATH`, if it is there.
pub(crate) fn find_on_path(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    which::which(name).ok()
}

/// The binary named by environment variable `var`, if it is set (and not empty).
///
/// A value containing no `/` that is not an existing file is looked up on `PATH`; a
/// value that names nothing is an error (a typo there should not silently fall back to
/// some other binary).
pub(crate) fn binary_from_env(var: &str) -> Result<Option<PathBuf>> {
    let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let path = PathBuf::from(&value);
    if path.is_file() {
        return Ok(Some(path));
    }
    if path.components().count() == 1
        && let Some(found) = find_on_path(&value)
    {
        return Ok(Some(found));
    }
    bail!("${var} is set to {path:?}, which is not an existing file (nor a program on PATH)")
}

/// Spawns `cmd` with stdin from /dev/null and stdout and stderr appended to `log_path`.
///
/// Returns the child and the log file's length after the banner line written before the
/// spawn, so readiness checks can look only at this run's output.
pub(crate) fn spawn_logged(cmd: &mut Command, log_path: &Path) -> Result<(Child, u64)> {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("opening server log {}", log_path.display()))?;
    writeln!(log, "==== lattice-test-harness: spawning {cmd:?}")
        .with_context(|| format!("writing to server log {}", log_path.display()))?;
    let offset = log.seek(SeekFrom::End(0)).with_context(|| format!("seeking in server log {}", log_path.display()))?;
    let stderr = log.try_clone().with_context(|| format!("duplicating handle of {}", log_path.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .spawn()
        .with_context(|| format!("spawning {:?}", cmd.get_program()))?;
    Ok((child, offset))
}

/// The log's content from byte `offset` on (lossily decoded); empty if it cannot be read.
pub(crate) fn read_log_from(log_path: &Path, offset: u64) -> String {
    let mut bytes = Vec::new();
    let read = File::open(log_path).and_then(|mut file| {
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_end(&mut bytes)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// The last lines of the log, indented, for error messages.
pub(crate) fn log_tail(log_path: &Path) -> String {
    let log = read_log_from(log_path, 0);
    let lines: Vec<&str> = log.lines().collect();
    let mut tail = format!("last lines of {}:\n", log_path.display());
    for line in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
        let _ = writeln!(tail, "    {line}");
    }
    tail
}

/// Why a server did not become ready.
#[derive(Debug)]
pub(crate) enum StartFailure {
    /// The process exited (e.g. its port was taken): worth a retry on another port.
    Exited(anyhow::Error),
    /// Anything else: timeout, IO error.
    Other(anyhow::Error),
}

impl StartFailure {
    /// Adds context to the error, keeping the kind.
    pub(crate) fn context(self, context: String) -> Self {
        match self {
            Self::Exited(e) => Self::Exited(e.context(context)),
            Self::Other(e) => Self::Other(e.context(context)),
        }
    }
}

impl From<StartFailure> for anyhow::Error {
    fn from(failure: StartFailure) -> Self {
        match failure {
            StartFailure::Exited(e) | StartFailure::Other(e) => e,
        }
    }
}

/// Polls `probe` every [`POLL_INTERVAL`] until it returns `Ok`, the child exits, or
/// `timeout` passes. `probe` returns `Err(reason)` while not ready; the last reason is
/// quoted on timeout. On failure the child may still be running (or unreaped): the
/// caller kills and reaps it.
pub(crate) fn wait_ready<T>(
    child: &mut Child,
    what: &str,
    timeout: Duration,
    log_path: &Path,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, StartFailure> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(StartFailure::Exited(anyhow!(
                    "{what} (pid {}) exited with {status} before becoming ready\n{}",
                    child.id(),
                    log_tail(log_path)
                )));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(StartFailure::Other(
                    anyhow::Error::new(e).context(format!("checking whether {what} is alive")),
                ));
            }
        }
        let last_reason = match probe() {
            Ok(ready) => return Ok(ready),
            Err(reason) => reason,
        };
        if Instant::now() >= deadline {
            return Err(StartFailure::Other(anyhow!(
                "{what} (pid {}) not ready within {timeout:?} (last check: {last_reason})\n{}",
                child.id(),
                log_tail(log_path)
            )));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// SIGKILL and reap. Errors are ignored: the child may already have exited, and there is
/// nothing better to do in a destructor.
pub(crate) fn kill_and_reap(child: &mut Child) {
    // `Child::kill` signals this child's own PID (and is a no-op once it has been reaped).
    let _ = child.kill();
    let _ = child.wait();
}

/// Asks the child to shut down with SIGTERM, waits up to [`STOP_GRACE`], then SIGKILLs.
/// Always reaps the child.
///
/// `std` can only send SIGKILL; SIGTERM goes through `rustix` (this workspace denies `unsafe`), addressed by
/// the child's own PID. That PID cannot have been reused: the child is not reaped until we `wait` for it below.
pub(crate) fn stop_gracefully(child: &mut Child) -> Result<ExitStatus> {
    if let Some(status) = child.try_wait().context("checking the server process")? {
        return Ok(status);
    }
    let termed = terminate(child);
    if termed {
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().context("waiting for the server to exit")? {
                return Ok(status);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    // Already-exited is fine here: `wait` below reports it.
    let _ = child.kill();
    child.wait().context("waiting for the killed server process")
}

/// Sends SIGTERM to `child`; false if it could not be sent (it exited already, or this is not Unix).
fn terminate(child: &Child) -> bool {
    crate::terminate(child).is_ok()
}

/// SIGKILLs the child and reaps it (a crash, as far as the server is concerned).
pub(crate) fn kill(child: &mut Child) -> Result<ExitStatus> {
    if let Some(status) = child.try_wait().context("checking the server process")? {
        return Ok(status);
    }
    // An error here means the child already exited; `wait` reports how.
    let _ = child.kill();
    child.wait().context("waiting for the killed server process")
}

/// What both servers keep about their process: the binary, a tempdir owning everything the server writes
/// (the log included), the port, and the child while it runs (killed by its PID on drop).
#[derive(Debug)]
pub(crate) struct ServerProcess {
    /// `nats-server` or `redis-server`, for messages.
    pub(crate) name: &'static str,
    pub(crate) binary: PathBuf,
    pub(crate) dir: tempfile::TempDir,
    /// The log file's name inside `dir`.
    pub(crate) log_file: &'static str,
    pub(crate) port: u16,
    pub(crate) child: Option<Child>,
}

impl ServerProcess {
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, self.port))
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.path().join(self.log_file)
    }

    pub(crate) fn log_contents(&self) -> String {
        read_log_from(&self.log_path(), 0)
    }

    /// SIGTERM, then SIGKILL after [`STOP_GRACE`]; no-op when stopped.
    pub(crate) fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            stop_gracefully(&mut child).with_context(|| format!("stopping {} on port {}", self.name, self.port))?;
        }
        Ok(())
    }

    /// SIGKILL (a crash, for the server); no-op when stopped.
    pub(crate) fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            kill(&mut child).with_context(|| format!("killing {} on port {}", self.name, self.port))?;
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }
}
