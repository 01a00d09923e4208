//! The README's "Your first actor", run as written with the built `lattice`: `lattice new`, `lattice build`,
//! `lattice run`, in a scratch directory outside the repository, for Rust and for Python.
//!
//! The Rust project builds with cargo for wasm32-wasip2 into one target directory under this test's target
//! (`CARGO_TARGET_TMPDIR`), so later runs only rebuild the actor. The Python project needs componentize-py on
//! PATH (`scripts/setup.sh` installs it into `.venv/`, which `scripts/test.sh` puts on PATH): without it the
//! test fails and says so.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

    /// Runs `lattice args` in `cwd` (relative to the scratch directory) with this scratch's keys and cache.
    fn lattice(&self, cwd: &str, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_lattice"))
            .args(args)
            .current_dir(self.dir.path().join(cwd))
            .env("LATTICE_CONFIG_DIR", self.dir.path().join("config"))
            .env("LATTICE_CACHE_DIR", self.dir.path().join("cache"))
            .env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("tutorial-target"))
            .env_remove("LATTICE_TRUSTED_ISSUERS")
            .env_remove("LATTICE_LOG")
            .output()
            .unwrap();
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
