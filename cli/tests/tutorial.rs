//! The README's "Your first actor", run as written with the built `lattice`: `lattice new`, `lattice build`,
//! `lattice run`, in a scratch directory outside the repository, for Rust and for Python.
//!
//! The Rust project builds with cargo for wasm32-wasip2 into one target directory under this test's target
//! (`CARGO_TARGET_TMPDIR`), so later runs only rebuild the actor. The Python project needs componentize-py on
//! PATH (`scripts/setup.sh` installs it into `.venv/`, which `scripts/test.sh` puts on PATH): without it the
//! test fails and says so.
//!
//! `lattice dev` is run against `lattice up` on a real nats-server, for Rust and for Python: each save of a
//! source redeploys, in a directory that was there or (Rust) one created while it runs.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lattice_test_harness::NatsServer;

/// The tutorial's run: three messages to a fresh in-memory store.
const RUN: &[&str] =
    &["--trusted-issuer", "dev", "--link", "keyvalue:default=inmemory", "--message", "visits", "--repeat", "3"];

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().unwrap() }
    }

    /// `lattice args` in `cwd` (relative to the scratch directory) with this scratch's keys and cache.
    fn command(&self, cwd: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lattice"));
        command
            .args(args)
            .current_dir(self.dir.path().join(cwd))
            .env("LATTICE_CONFIG_DIR", self.dir.path().join("config"))
            .env("LATTICE_CACHE_DIR", self.dir.path().join("cache"))
            .env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("tutorial-target"))
            .env_remove("LATTICE_TRUSTED_ISSUERS")
            .env_remove("LATTICE_TRUSTED_OPERATORS")
            .env_remove("LATTICE_OPERATOR_KEY")
            .env_remove("LATTICE_LOG");
        command
    }

    /// Runs `lattice args` in `cwd` and expects success.
    fn lattice(&self, cwd: &str, args: &[&str]) -> Output {
        let out = self.command(cwd, args).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "lattice {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `lattice new <name> [--lang]`, `cd <name>`, `lattice build`: returns the signed artifact's path (the last
    /// line of build's stdout).
    fn new_and_build(&self, name: &str, lang: &[&str]) -> PathBuf {
        let mut args = vec!["new", name];
        args.extend_from_slice(lang);
        self.lattice(".", &args);
        let built = self.lattice(name, &["build"]);
        let stdout = String::from_utf8(built.stdout).unwrap();
        let artifact = PathBuf::from(stdout.lines().last().unwrap());
        assert!(artifact.ends_with(format!("{name}.signed.wasm")), "{stdout}");
        let stderr = String::from_utf8_lossy(&built.stderr);
        assert!(stderr.contains("with capabilities: wasi:keyvalue, wasi:messaging"), "{stderr}");
        artifact
    }

    /// `lattice run <artifact> …`: the counter replies 1, 2, 3 and logs each increment.
    fn run_counts_to_three(&self, name: &str, artifact: &Path) {
        let mut args = vec!["run", artifact.to_str().unwrap()];
        args.extend_from_slice(RUN);
        let out = self.lattice(name, &args);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n2\n3\n");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("[{name}] INFO {name}: visits = 3")), "{stderr}");
    }
}

#[test]
fn your_first_actor_in_rust() {
    let scratch = Scratch::new();
    let artifact = scratch.new_and_build("hello", &[]);
    scratch.run_counts_to_three("hello", &artifact);
}

#[test]
fn your_first_actor_in_python() {
    let found = Command::new("componentize-py").arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "componentize-py is not on PATH ({found:?}): the Python tutorial needs it; `scripts/setup.sh` installs it \
         into .venv/ (pip install componentize-py), and `scripts/test.sh` puts .venv/bin on PATH"
    );
    let scratch = Scratch::new();
    let artifact = scratch.new_and_build("hello-py", &["--lang", "python"]);
    scratch.run_counts_to_three("hello-py", &artifact);
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines a reader writes, read on a thread of their own.
fn lines(reader: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

/// Reads `lines` until one satisfies `done`, failing after `limit` with what was read and the `log` file.
fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    what: &str,
    limit: Duration,
    log: Option<&Path>,
    done: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if done(&line) => return,
            Ok(line) => seen.push(line),
            Err(error) => panic!(
                "no {what} within {limit:?} ({error}); read:\n{}\nlog:\n{}",
                seen.join("\n"),
                log.map(|l| std::fs::read_to_string(l).unwrap_or_default()).unwrap_or_default()
            ),
        }
    }
}

/// `lattice up` on a real nats-server, and `lattice dev` in a new project, its stdout read line by line.
struct Dev {
    // Fields drop in order: the processes go first, then the server, then the scratch directory.
    _processes: [Running; 2],
    _nats: NatsServer,
    _scratch: Scratch,
    project: PathBuf,
    stdout: mpsc::Receiver<String>,
    log: PathBuf,
}

impl Dev {
    /// How long a build may take (a cold Rust build in CI).
    const BUILD: Duration = Duration::from_secs(300);

    /// Creates the project `name` (`lang`: extra `lattice new` flags), starts `lattice up` and `lattice dev`,
    /// and waits for the first deploy's call to reply `1`.
    fn start(name: &str, lang: &[&str]) -> Dev {
        let nats = NatsServer::start().unwrap();
        let scratch = Scratch::new();
        scratch.lattice(".", &[&["new", name], lang].concat());
        let project = scratch.dir.path().join(name);
        let up = |args: &[&str]| {
            let mut command = scratch.command(".", args);
            command.env("LATTICE_NATS", nats.url()).env("LATTICE_NAME", "tutorial").stdin(Stdio::null());
            command
        };
        let mut host = Running(
            up(&["up", "--trusted-issuer", "dev", "--host-id", "dev-host"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let host_log = lines(host.0.stderr.take().unwrap());
        wait_for_line(&host_log, "host joining", Duration::from_secs(60), None, |l| l.contains("joined lattice"));

        let mut dev = up(&["dev", "--link", "keyvalue:default=inmemory", "--call", "visits"]);
        let log = scratch.dir.path().join("dev.log");
        dev.current_dir(&project).stdout(Stdio::piped()).stderr(std::fs::File::create(&log).unwrap());
        let mut dev = Running(dev.spawn().unwrap());
        let stdout = lines(dev.0.stdout.take().unwrap());
        let started = Dev { _processes: [dev, host], _nats: nats, _scratch: scratch, project, stdout, log };
        started.wait_for("first deploy and call", |l| l == "1");
        started
    }

    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) {
        wait_for_line(&self.stdout, what, Self::BUILD, Some(&self.log), done);
    }

    /// Replaces `from` with `to` in the project's file `file` and saves it; returns the new text.
    fn edit(&self, file: &str, from: &str, to: &str) -> String {
        let path = self.project.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replace(from, to);
        assert_ne!(text, edited, "the template's `{from}` changed in {file}; update this test");
        std::fs::write(&path, &edited).unwrap();
        edited
    }
}

#[test]
fn lattice_dev_redeploys_a_rust_project_on_save() {
    let dev = Dev::start("hello-dev", &[]);
    dev.edit(
        "src/lib.rs",
        "Message::new(value.to_string().as_bytes())",
        "Message::new(format!(\"v={value}\").as_bytes())",
    );
    dev.wait_for("redeploy after the save", |l| l == "v=2");

    // A directory created while it runs is watched too: the reply's prefix moves into a file in a new one…
    let extra = dev.project.join("extra");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(extra.join("prefix.txt"), "p=").unwrap();
    dev.edit("src/lib.rs", "format!(\"v={value}\")", "format!(\"{}{value}\", include_str!(\"../extra/prefix.txt\"))");
    dev.wait_for("redeploy with the prefix file", |l| l.starts_with("p="));
    // …and a save of that file alone redeploys.
    std::fs::write(extra.join("prefix.txt"), "q=").unwrap();
    dev.wait_for("redeploy after saving a file in the new directory", |l| l.starts_with("q="));
    // A directory removed and created again (its old watch ended with it) is watched again.
    std::fs::remove_dir_all(&extra).unwrap();
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(extra.join("prefix.txt"), "r=").unwrap();
    dev.wait_for("redeploy after the directory came back", |l| l.starts_with("r="));
    std::fs::write(extra.join("prefix.txt"), "s=").unwrap();
    dev.wait_for("redeploy after saving a file in the directory that came back", |l| l.starts_with("s="));
}

#[test]
fn lattice_dev_redeploys_a_python_project_on_save() {
    let dev = Dev::start("hello-dev-py", &["--lang", "python"]);
    dev.edit("app.py", "types.Message(str(value).encode())", "types.Message(f\"v={value}\".encode())");
    dev.wait_for("redeploy after the save", |l| l == "v=2");
}

#[test]
fn wit_new_and_build_explain_what_is_wrong_in_one_line() {
    let scratch = Scratch::new();
    // `lattice wit DIR` writes the same packages as the repository's wit/.
    scratch.lattice(".", &["wit", "mine"]);
    let written = std::fs::read_to_string(scratch.dir.path().join("mine/lattice.wit")).unwrap();
    assert_eq!(written, include_str!("../../wit/lattice.wit"));
    assert!(scratch.dir.path().join("mine/deps/keyvalue/store.wit").is_file());

    let fails = |cwd: &str, args: &[&str], path: Option<&str>| {
        let mut command = scratch.command(cwd, args);
        if let Some(path) = path {
            command.env("PATH", path);
        }
        let out = command.stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "lattice {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8(out.stderr).unwrap();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
        errors[0].to_owned()
    };
    let error = fails(".", &["build"], None);
    assert!(error.contains("is not an actor project"), "{error}");
    scratch.lattice(".", &["new", "twice", "--lang", "python"]);
    let error = fails(".", &["new", "twice"], None);
    assert!(error.contains("twice already exists"), "{error}");
    let error = fails(".", &["new", "Not_A_Name"], None);
    assert!(error.contains("not a valid actor name"), "{error}");
    // A Python build without componentize-py names the PyPI package.
    let error = fails("twice", &["build"], Some("/nonexistent"));
    assert!(error.contains("install the PyPI package `componentize-py` (pip install componentize-py)"), "{error}");
    // A bad --cap is refused before anything is built.
    let error = fails("twice", &["build", "--cap", "wasi:nonsense"], None);
    assert!(error.contains("unknown capability `wasi:nonsense`"), "{error}");
}
