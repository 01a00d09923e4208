//! Errors a person can act on, as `lattice` prints them: one line, naming the file, the flag or the link.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Result, bail};
use lattice_test_harness::{NatsServer, wait_for};

/// Runs `lattice <args>` in `dir`, with its config and cache inside it; `nats` is the server it may use.
fn lattice(dir: &Path, nats: &str, args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_lattice"))
        .args(args)
        .current_dir(dir)
        .env("LATTICE_NATS", nats)
        .env("LATTICE_NAME", "errors-cli")
        .env("LATTICE_CONFIG_DIR", dir.join("config"))
        .env("LATTICE_CACHE_DIR", dir.join("cache"))
        .stdin(Stdio::null())
        .output()?)
}

/// The error `lattice` printed, which must be its whole stderr on one line, and a failing exit.
fn one_line_error(output: Output) -> Result<String> {
    if output.status.success() {
        bail!("expected a failure, got success: {}", String::from_utf8_lossy(&output.stdout));
    }
    let stderr = String::from_utf8(output.stderr)?;
    let lines: Vec<&str> = stderr.lines().collect();
    if lines.len() != 1 {
        bail!("expected one line of error, got {}:\n{stderr}", lines.len());
    }
    Ok(lines[0].to_owned())
}

fn ok(output: Output) -> Result<String> {
    if !output.status.success() {
        bail!("lattice failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// Bytes that are not a component: a text file, random-looking bytes, a core module.
fn write_fixtures(dir: &Path) -> Result<()> {
    std::fs::write(dir.join("garbage.bin"), [0xcb, 0xc8, 0x15, 0xb2, 0x00, 0xff, 0x13, 0x37, 0x42])?;
    std::fs::write(dir.join("notes.txt"), "not an actor\n")?;
    std::fs::write(dir.join("module.wasm"), b"\0asm\x01\0\0\0")?;
    std::fs::copy(lattice_test_actors::KV_COUNTER, dir.join("kv_counter.wasm"))?;
    Ok(())
}

#[test]
fn garbage_passed_as_a_component_is_one_line_naming_the_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_fixtures(dir.path())?;
    // Nothing listens here: every refusal below happens before any connection.
    let nowhere = "nats://127.0.0.1:1";
    for verb in [&["run"][..], &["claims", "inspect"], &["push"]] {
        let args = |file: &'static str| [verb, &[file]].concat();
        let error = one_line_error(lattice(dir.path(), nowhere, &args("garbage.bin"))?)?;
        assert_eq!(
            error,
            "error: `garbage.bin` is not a WebAssembly component: it does not start with the WebAssembly header `\\0asm`",
            "{verb:?}"
        );
        let error = one_line_error(lattice(dir.path(), nowhere, &args("notes.txt"))?)?;
        assert_eq!(error, "error: `notes.txt` is not a WebAssembly component: it is a text file", "{verb:?}");
        let error = one_line_error(lattice(dir.path(), nowhere, &args("module.wasm"))?)?;
        assert_eq!(
            error,
            "error: `module.wasm` is a core WebAssembly module, not a component (build for wasm32-wasip2, or wrap \
             it with `wasm-tools component new`)",
            "{verb:?}"
        );
    }
    Ok(())
}

#[test]
fn push_refuses_an_unsigned_component_before_uploading() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_fixtures(dir.path())?;
    let error = one_line_error(lattice(dir.path(), "nats://127.0.0.1:1", &["push", "kv_counter.wasm"])?)?;
    assert_eq!(
        error,
        "error: `kv_counter.wasm` is not signed, and hosts run only signed actors unless started with \
         --allow-unsigned: sign it with `lattice claims sign`, or push it anyway with --allow-unsigned"
    );
    // With the flag, it gets as far as connecting (and there is no server here).
    let output = lattice(dir.path(), "nats://127.0.0.1:1", &["push", "kv_counter.wasm", "--allow-unsigned"])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("not signed"), "{stderr}");

    // A signed component whose bytes changed after signing is refused too.
    ok(lattice(
        dir.path(),
        "nats://127.0.0.1:1",
        &[
            "claims",
            "sign",
            "kv_counter.wasm",
            "--issuer",
            "dev",
            "--name",
            "kv-counter",
            "--version",
            "0.1.0",
            "--cap",
            "wasi:keyvalue",
        ],
    )?)?;
    let mut signed = std::fs::read(dir.path().join("kv_counter.signed.wasm"))?;
    let last = signed.len() - 1;
    signed[last] ^= 1;
    std::fs::write(dir.path().join("tampered.wasm"), signed)?;
    let error = one_line_error(lattice(dir.path(), "nats://127.0.0.1:1", &["push", "tampered.wasm"])?)?;
    assert!(error.contains("`tampered.wasm`") && error.contains("sign it again"), "{error}");
    // The intact signed one passes the checks (and then finds no server).
    let error = one_line_error(lattice(dir.path(), "nats://127.0.0.1:1", &["push", "kv_counter.signed.wasm"])?)?;
    assert!(!error.contains("kv_counter.signed.wasm"), "{error}");
    Ok(())
}

/// Kills the host process if the test ends early, so none outlives the test.
struct HostProcess(Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_of_garbage_and_a_route_to_an_actor_without_http_are_refused() -> Result<()> {
    let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
    let url = nats.url();
    let dir = tempfile::tempdir()?;
    write_fixtures(dir.path())?;
    let artifacts = dir.path().display().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_lattice"))
        .args(["host", "--host-id", "h1", "--allow-unsigned", "--artifact-dir", &artifacts])
        .env("LATTICE_NATS", &url)
        .env("LATTICE_NAME", "errors-cli")
        .env("LATTICE_CACHE_DIR", dir.path().join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _host = HostProcess(child);
    let here = dir.path().to_owned();
    wait_for("the host to join", Duration::from_secs(30), || async {
        ok(lattice(&here, &url, &["hosts", "-o", "json"]).ok()?).ok().filter(|out| out.contains("\"h1\""))
    })
    .await?;

    let error = one_line_error(lattice(dir.path(), &url, &["start", "junk", "--path", "notes.txt", "--host", "h1"])?)?;
    assert!(error.contains("not a WebAssembly component: it is a text file"), "{error}");

    // kv-counter serves messages, not HTTP: a route to it would only ever answer 501.
    ok(lattice(
        dir.path(),
        &url,
        &["start", "kv-counter", "--path", "kv_counter.wasm", "--host", "h1", "--link", "keyvalue:default=inmemory"],
    )?)?;
    let error = one_line_error(lattice(dir.path(), &url, &["route", "put", "kv-counter", "--path", "/"])?)?;
    assert!(
        error.starts_with(
            "error: actor `kv-counter` does not serve HTTP: it runs on host h1 but does not export \
                           wasi:http/incoming-handler"
        ),
        "{error}"
    );
    let routes = ok(lattice(dir.path(), &url, &["route", "list", "-o", "json"])?)?;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&routes)?, serde_json::json!([]));

    // An actor that runs nowhere cannot be checked: the route is stored, with a warning.
    let output = lattice(dir.path(), &url, &["route", "put", "later", "--path", "/later"])?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = ok(output)?;
    assert!(stdout.contains("route /later -> later stored"), "{stdout}");
    assert!(stderr.contains("warning: actor `later` runs on no host now"), "{stderr}");
    Ok(())
}

/// Runs `lattice <args>` like [`lattice`], but fails (and kills it) if it has not exited within 60 s: a FIFO
/// must not hang it.
fn lattice_bounded(dir: &Path, nats: &str, args: &[&str]) -> Result<Output> {
    let child = Command::new(env!("CARGO_BIN_EXE_lattice"))
        .args(args)
        .current_dir(dir)
        .env("LATTICE_NATS", nats)
        .env("LATTICE_NAME", "errors-cli")
        .env("LATTICE_CONFIG_DIR", dir.join("config"))
        .env("LATTICE_CACHE_DIR", dir.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id().to_string();
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match exited.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => Ok(output?),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            bail!("`lattice {}` did not exit within 60 s", args.join(" "))
        }
    }
}

#[test]
fn fifos_devices_and_huge_files_are_refused_without_reading_them() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_fixtures(dir.path())?;
    for fifo in ["fifo.wasm", "fifo.toml", "fifo.seed"] {
        anyhow::ensure!(Command::new("mkfifo").arg(dir.path().join(fifo)).status()?.success(), "mkfifo {fifo}");
    }
    for zero in ["zero.wasm", "zero.toml", "zero.seed"] {
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(zero))?;
    }
    // Sparse: 65 MiB on paper, nothing on disk; larger than a component may be.
    std::fs::File::create(dir.path().join("huge.wasm"))?.set_len(65 << 20)?;
    let nats = NatsServer::start()?;
    let sign = |file: &'static str, issuer: &'static str| {
        vec!["claims", "sign", file, "--issuer", issuer, "--name", "x", "--version", "0.1.0"]
    };
    let mut cases: Vec<(Vec<&str>, &str, &str)> = Vec::new();
    for (file, what) in [
        ("fifo.wasm", "is not a regular file"),
        ("zero.wasm", "is not a regular file"),
        ("huge.wasm", "larger than the limit"),
    ] {
        for verb in [vec!["push", file], vec!["run", file], vec!["claims", "inspect", file], sign(file, "dev")] {
            cases.push((verb, file, what));
        }
    }
    for file in ["fifo.seed", "zero.seed"] {
        cases.push((sign("kv_counter.wasm", file), file, "is not a regular file"));
    }
    for file in ["fifo.toml", "zero.toml"] {
        cases.push((vec!["apply", file], file, "is not a regular file"));
        cases.push((vec!["host", "--config", file], file, "is not a regular file"));
    }
    for (args, file, what) in cases {
        let output = lattice_bounded(dir.path(), &nats.url(), &args)?;
        let code = output.status.code();
        let error = one_line_error(output)?;
        assert!(error.contains(&format!(": {file} ")) && error.contains(what), "{args:?}: {error}");
        assert_eq!(code, Some(4), "{args:?}: exit code for a refused file (docs/cli.md)");
    }
    Ok(())
}

#[test]
fn a_call_topic_or_message_id_with_a_line_break_is_a_usage_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start()?;
    for flag in ["--topic", "--msg-id"] {
        let output = lattice_bounded(dir.path(), &nats.url(), &["call", "anyone", "x", flag, "a\r\nNats-Rollup: all"])?;
        let code = output.status.code();
        let error = one_line_error(output)?;
        assert!(error.contains("control character"), "{flag}: {error}");
        assert_eq!(code, Some(2), "{flag}: a usage error, not a panic (docs/cli.md)");
    }
    Ok(())
}
