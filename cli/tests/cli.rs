//! The `lattice` binary end to end: keys, signing, inspecting and running signed actors.
//!
//! Every command runs with its own config and cache directories (`LATTICE_CONFIG_DIR`, `LATTICE_CACHE_DIR`) so
//! tests neither read nor write the user's keys.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// A scratch directory with its own lattice config and cache, and a copy of kv-counter.
struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        std::fs::copy(lattice_test_actors::KV_COUNTER, dir.path().join("kv_counter.wasm")).unwrap();
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lattice"))
            .args(args)
            .current_dir(self.dir.path())
            .env("LATTICE_CONFIG_DIR", self.path("config"))
            .env("LATTICE_CACHE_DIR", self.path("cache"))
            .env_remove("LATTICE_TRUSTED_ISSUERS")
            .env_remove("LATTICE_LOG")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lattice {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit code 1 (failure) with a one-line `error:` on stderr; returns that line.
    fn fails(&self, args: &[&str]) -> String {
        self.fails_with(1, args)
    }

    /// Runs and expects exit code 4 (refused) with a one-line `error:` on stderr; returns that line.
    fn refused(&self, args: &[&str]) -> String {
        self.fails_with(4, args)
    }

    /// Runs and expects exit code `code` with a one-line `error:` on stderr; returns that line.
    fn fails_with(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "lattice {args:?}: stdout {}\nstderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
        errors[0].to_owned()
    }

    /// Signs kv-counter with the development issuer for what it imports; returns the actor key.
    fn sign_dev(&self, extra: &[&str]) -> String {
        let mut args = vec![
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
            "--cap",
            "wasi:messaging",
        ];
        args.extend_from_slice(extra);
        last_line(&self.ok(&args))
    }
}

fn last_line(stdout: &str) -> String {
    stdout.lines().last().unwrap_or_default().to_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn mode(_path: &Path) -> u32 {
    0o600
}

const RUN_KV: &[&str] = &["--link", "keyvalue:default=inmemory", "--repeat", "3"];

#[test]
fn keys_gen_writes_a_private_seed_and_prints_the_public_key_last() {
    let env = Env::new();
    let stdout = env.ok(&["keys", "gen", "--out", "issuer.seed"]);
    let public = last_line(&stdout);
    assert!(public.starts_with('A') && public.len() == 56, "{stdout}");
    let seed = std::fs::read_to_string(env.path("issuer.seed")).unwrap();
    assert!(seed.trim().starts_with("SA"), "{seed}");
    assert!(!stdout.contains(seed.trim()), "the seed must not be printed: {stdout}");
    assert_eq!(mode(&env.path("issuer.seed")), 0o600);

    // No overwrite without --force.
    let error = env.fails(&["keys", "gen", "--out", "issuer.seed"]);
    assert!(error.contains("already exists"), "{error}");
    assert_eq!(std::fs::read_to_string(env.path("issuer.seed")).unwrap(), seed);
    let replaced = last_line(&env.ok(&["keys", "gen", "--out", "issuer.seed", "--force"]));
    assert_ne!(replaced, public);
    assert_eq!(mode(&env.path("issuer.seed")), 0o600);

    // Actor keys; without --out nothing secret is printed unless asked.
    let stdout = env.ok(&["keys", "gen", "--kind", "actor"]);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(last_line(&stdout).starts_with('M'), "{stdout}");
    let stdout = env.ok(&["keys", "gen", "--kind", "actor", "--print-seed"]);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.starts_with("SM"), "{stdout}");
    assert!(last_line(&stdout).starts_with('M'), "{stdout}");
}

#[test]
fn keys_dev_creates_the_development_issuer_once() {
    let env = Env::new();
    let first = last_line(&env.ok(&["keys", "dev"]));
    assert!(first.starts_with('A'), "{first}");
    assert_eq!(mode(&env.path("config/dev-issuer.seed")), 0o600);
    assert_eq!(last_line(&env.ok(&["keys", "dev"])), first);
}

#[test]
fn sign_then_inspect_shows_the_claims() {
    let env = Env::new();
    let actor = env.sign_dev(&["--expires", "30d"]);
    assert!(actor.starts_with('M'), "{actor}");
    let issuer = last_line(&env.ok(&["keys", "dev"]));
    // Re-signing under the same name keeps the actor key.
    assert_eq!(env.sign_dev(&["--expires", "30d"]), actor);

    let table = env.ok(&["claims", "inspect", "kv_counter.signed.wasm"]);
    for expected in ["kv-counter", "0.1.0", actor.as_str(), issuer.as_str(), "wasi:keyvalue, wasi:messaging"] {
        assert!(table.contains(expected), "{expected} missing from:\n{table}");
    }
    assert!(table.lines().any(|l| l.contains("hash matches") && l.contains("yes")), "{table}");
    assert!(table.lines().any(|l| l.contains("signature valid") && l.contains("yes")), "{table}");

    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["claims", "inspect", "kv_counter.signed.wasm", "-o", "json"])).unwrap();
    assert_eq!(json["name"], "kv-counter");
    assert_eq!(json["subject"], actor.as_str());
    assert_eq!(json["issuer"], issuer.as_str());
    assert_eq!(json["interfaces"], serde_json::json!(["wasi:keyvalue", "wasi:messaging"]));
    assert_eq!(json["hash_matches"], true);
    assert_eq!(json["signature_valid"], true);
    assert!(json["expires"].as_str().unwrap().ends_with('Z'), "{json}");
    assert!(json["not_before"].is_null(), "{json}");
}

#[test]
fn inspect_of_an_unsigned_component_fails_clearly() {
    let env = Env::new();
    let error = env.fails(&["claims", "inspect", "kv_counter.wasm"]);
    assert!(error.contains("kv_counter.wasm is not signed"), "{error}");
}

#[test]
fn signed_with_the_dev_issuer_runs_when_dev_is_trusted() {
    let env = Env::new();
    env.sign_dev(&[]);
    let mut args = vec!["run", "kv_counter.signed.wasm", "--trusted-issuer", "dev"];
    args.extend_from_slice(RUN_KV);
    assert_eq!(env.ok(&args), "1\n2\n3\n");
}

#[test]
fn signed_with_an_issuer_file_runs_when_its_key_is_trusted_through_the_environment() {
    let env = Env::new();
    let issuer = last_line(&env.ok(&["keys", "gen", "--out", "ci.seed"]));
    let actor = last_line(&env.ok(&["keys", "gen", "--kind", "actor", "--out", "actor.seed"]));
    let signed = env.ok(&[
        "claims",
        "sign",
        "kv_counter.wasm",
        "--issuer",
        "ci.seed",
        "--subject",
        "actor.seed",
        "--name",
        "kv-counter",
        "--version",
        "1.0.0",
        "--cap",
        "wasi:keyvalue,wasi:messaging",
        "--out",
        "out.wasm",
    ]);
    assert_eq!(last_line(&signed), actor);

    let mut args = vec!["run", "out.wasm"];
    args.extend_from_slice(RUN_KV);
    let out = Command::new(env!("CARGO_BIN_EXE_lattice"))
        .args(&args)
        .current_dir(env.dir.path())
        .env("LATTICE_CONFIG_DIR", env.path("config"))
        .env("LATTICE_CACHE_DIR", env.path("cache"))
        .env("LATTICE_TRUSTED_ISSUERS", format!("dev, {issuer}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "1\n2\n3\n");

    // Trusting only the development issuer refuses it, naming the issuer.
    args.extend_from_slice(&["--trusted-issuer", "dev"]);
    let error = env.refused(&args);
    assert!(error.contains(&format!("actor is signed by issuer {issuer}, which this host does not trust")), "{error}");
}

#[test]
fn unsigned_actor_is_refused_without_allow_unsigned() {
    let env = Env::new();
    let mut args = vec!["run", "kv_counter.wasm", "--trusted-issuer", "dev"];
    args.extend_from_slice(RUN_KV);
    let error = env.refused(&args);
    assert_eq!(
        error,
        "error: cannot load kv_counter.wasm: actor is not signed (pass --allow-unsigned to run unsigned actors in development)"
    );

    // The development flag runs it, with a warning.
    let mut args = vec!["run", "kv_counter.wasm", "--allow-unsigned"];
    args.extend_from_slice(RUN_KV);
    let out = env.run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "1\n2\n3\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("running unsigned actors: development only"));
}

#[test]
fn tampered_component_is_refused_with_the_hash_mismatch() {
    let env = Env::new();
    env.sign_dev(&[]);
    let mut bytes = std::fs::read(env.path("kv_counter.signed.wasm")).unwrap();
    // The middle of the file is the actor's code; the claims section is at the end.
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(env.path("tampered.wasm"), &bytes).unwrap();

    let mut args = vec!["run", "tampered.wasm", "--trusted-issuer", "dev"];
    args.extend_from_slice(RUN_KV);
    let error = env.refused(&args);
    assert_eq!(
        error,
        "error: cannot load tampered.wasm: claims hash mismatch: the component was modified after signing"
    );
    let table = env.ok(&["claims", "inspect", "tampered.wasm"]);
    assert!(table.contains("NO: the component was modified after signing"), "{table}");
}

#[test]
fn missing_capability_is_refused_at_run_and_warned_at_sign() {
    let env = Env::new();
    let out = env.run(&[
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
        "wasi:messaging",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("which needs --cap wasi:keyvalue"), "{stderr}");

    let mut args = vec!["run", "kv_counter.signed.wasm", "--trusted-issuer", "dev"];
    args.extend_from_slice(RUN_KV);
    let error = env.refused(&args);
    assert!(error.contains("needs capability `wasi:keyvalue`, which the actor's claims do not allow"), "{error}");
    assert!(
        error.contains("(sign it with `--cap wasi:keyvalue`, or `lattice build` / `claims sign --infer-caps`)"),
        "{error}"
    );
}

#[test]
fn claims_not_yet_valid_are_refused() {
    let env = Env::new();
    // Valid from an hour from now: not yet valid.
    env.sign_dev(&["--not-before", "1h", "--expires", "2h"]);
    let mut args = vec!["run", "kv_counter.signed.wasm", "--trusted-issuer", "dev"];
    args.extend_from_slice(RUN_KV);
    let error = env.refused(&args);
    assert!(error.contains("claims not valid before "), "{error}");
}

#[test]
fn a_malformed_traceparent_is_refused_before_calling() {
    let env = Env::new();
    let error = env.fails_with(2, &["call", "kv-counter", "x", "--traceparent", "00-abc-def-01"]);
    assert!(error.contains("the trace id must be 32 lowercase hex digits"), "{error}");
}

#[test]
fn bad_keys_are_one_line_errors_without_the_seed() {
    let env = Env::new();
    env.ok(&["keys", "gen", "--kind", "actor", "--out", "actor.seed"]);
    let seed = std::fs::read_to_string(env.path("actor.seed")).unwrap();
    let seed = seed.trim();

    // An actor seed is not an issuer.
    let error =
        env.fails(&["claims", "sign", "kv_counter.wasm", "--issuer", "actor.seed", "--name", "x", "--version", "1"]);
    assert!(error.contains("expected an issuer key"), "{error}");
    // A seed given as a trusted issuer is refused without echoing it.
    let error = env.fails(&["run", "kv_counter.wasm", "--trusted-issuer", seed]);
    assert!(error.contains("this is a seed"), "{error}");
    assert!(!error.contains(seed), "{error}");
    // A bad capability name.
    let error = env.fails(&[
        "claims",
        "sign",
        "kv_counter.wasm",
        "--issuer",
        "dev",
        "--name",
        "x",
        "--version",
        "1",
        "--cap",
        "wasi:keyvalue/store",
    ]);
    assert!(error.contains("unknown capability `wasi:keyvalue/store`"), "{error}");
}

#[test]
fn unknown_capabilities_are_refused_and_inferred_ones_are_exactly_the_imports() {
    let env = Env::new();
    fn sign<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args =
            vec!["claims", "sign", "kv_counter.wasm", "--issuer", "dev", "--name", "kv-counter", "--version", "0.1.0"];
        args.extend_from_slice(extra);
        args
    }
    let error = env.fails(&sign(&["--cap", "wasi:nonsense"]));
    assert!(
        error.ends_with("unknown capability `wasi:nonsense` (capabilities: wasi:keyvalue, wasi:messaging, wasi:http)"),
        "{error}"
    );

    // kv-counter imports key-value and only the baseline parts of messaging.
    let signed: serde_json::Value = serde_json::from_str(&env.ok(&sign(&["--infer-caps", "-o", "json"]))).unwrap();
    assert_eq!(signed["capabilities"], serde_json::json!(["wasi:keyvalue"]), "{signed}");
    assert!(signed["path"].as_str().unwrap().ends_with("kv_counter.signed.wasm"), "{signed}");
    assert!(signed["subject"].as_str().unwrap().starts_with('M'), "{signed}");
    assert!(signed["issuer"].as_str().unwrap().starts_with('A'), "{signed}");
    assert!(!env.path("json").exists(), "-o is the output format, not a file");
    let mut args = vec!["run", "kv_counter.signed.wasm", "--trusted-issuer", "dev"];
    args.extend_from_slice(RUN_KV);
    env.ok(&args);

    // A baseline package needs no capability: accepted with a warning, not granted.
    let signed: serde_json::Value =
        serde_json::from_str(&env.ok(&sign(&["--cap", "wasi:filesystem,wasi:keyvalue", "-o", "json"]))).unwrap();
    assert_eq!(signed["capabilities"], serde_json::json!(["wasi:keyvalue"]), "{signed}");
}

#[test]
fn version_names_the_commit_wasmtime_and_protocol() {
    let env = Env::new();
    let version = env.ok(&["--version"]);
    assert!(version.starts_with(&format!("lattice {} (commit ", env!("CARGO_PKG_VERSION"))), "{version}");
    assert!(version.contains(", wasmtime 48."), "{version}");
    assert!(version.contains(&format!(", protocol {})", lattice_core::wire::PROTOCOL_VERSION)), "{version}");
    // CI builds from a git checkout: the commit is known there.
    let commit = version.split("commit ").nth(1).and_then(|rest| rest.split(',').next()).unwrap();
    assert!(commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()), "{version}");
}

#[test]
fn completions_and_man_pages_are_generated() {
    let env = Env::new();
    let bash = env.ok(&["completions", "bash"]);
    for expected in ["_lattice()", "ctx", "inventory", "--nats"] {
        assert!(bash.contains(expected), "{expected} missing from the bash completions");
    }
    assert!(env.ok(&["completions", "zsh"]).contains("#compdef lattice"));

    let page = env.ok(&["man"]);
    assert!(page.contains(".TH lattice 1"), "not roff:\n{page}");
    assert!(page.contains(".SH NAME") && page.contains("ctx"), "{page}");
    env.ok(&["man", "pages"]);
    for page in ["lattice.1", "lattice-link-list.1", "lattice-ctx-set.1", "lattice-completions.1"] {
        let text = std::fs::read_to_string(env.path("pages").join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is not roff:\n{text}");
    }
}

#[test]
fn usage_errors_exit_2_and_json_errors_carry_a_code() {
    let env = Env::new();
    let out = env.run(&["stop"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    // clap's usage errors too come as one JSON line on stdout under -o json, in any spelling of the flag.
    for args in [&["stop", "-o", "json"][..], &["stop", "--nonsense", "--output=json"]] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "{args:?}: {stdout}");
        let error: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(error["error"]["code"], "usage", "{error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(!message.starts_with("error:") && !message.contains("Usage:"), "{error}");
        assert!(message.contains("<ACTOR>") || message.contains("--nonsense"), "names the argument: {error}");
    }
    // --help stays help, also under -o json.
    let out = env.run(&["stop", "--help", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));

    // An unsigned actor under -o json: one JSON line on stdout, exit code 4 (refused).
    let mut args = vec!["run", "kv_counter.wasm", "--trusted-issuer", "dev", "-o", "json"];
    args.extend_from_slice(RUN_KV);
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let error: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(error["error"]["code"], "refused", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("actor is not signed"), "{error}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("error"), "the error is on stdout only: {stderr}");

    // A missing file is not found (3).
    let out = env.run(&["push", "nothing.wasm", "-o", "json", "--nats", "nats://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["code"], "not_found", "{error}");
}

#[test]
fn keys_print_json_with_the_public_key() {
    let env = Env::new();
    let doc: serde_json::Value =
        serde_json::from_str(&env.ok(&["keys", "gen", "--kind", "operator", "--out", "op.seed", "-o", "json"]))
            .unwrap();
    assert_eq!(doc["kind"], "operator");
    assert!(doc["public_key"].as_str().unwrap().starts_with('O'), "{doc}");
    assert_eq!(doc["seed_file"], "op.seed");
    assert!(doc["seed"].is_null(), "no seed unless asked: {doc}");
    let dev: serde_json::Value = serde_json::from_str(&env.ok(&["keys", "dev", "-o", "json"])).unwrap();
    assert_eq!(dev["kind"], "issuer");
    assert_eq!(dev["public_key"].as_str(), Some(last_line(&env.ok(&["keys", "dev"])).as_str()));
}

#[test]
fn contexts_are_saved_listed_used_and_deleted() {
    let env = Env::new();
    let saved = env.ok(&[
        "ctx",
        "set",
        "prod",
        "--nats",
        "nats://a:4222,nats://b:4222",
        "--lattice",
        "prod",
        "--nats-token",
        "s3cret",
        "--nats-creds",
        "prod.creds",
    ]);
    assert_eq!(saved, "context prod saved\n");
    env.ok(&["ctx", "set", "dev", "--nats", "nats://127.0.0.1:4222", "--use"]);
    // A second set changes only what it gives.
    env.ok(&["ctx", "set", "prod", "--lattice", "prod-eu"]);

    let list: serde_json::Value = serde_json::from_str(&env.ok(&["ctx", "list", "-o", "json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let prod = &list[1];
    assert_eq!(prod["name"], "prod");
    assert_eq!(prod["current"], false);
    assert_eq!(prod["context"]["nats"], serde_json::json!(["nats://a:4222", "nats://b:4222"]));
    assert_eq!(prod["context"]["lattice"], "prod-eu");
    assert_eq!(prod["context"]["nats_token"], "(hidden)", "secrets are never shown");
    let creds = prod["context"]["nats_creds"].as_str().unwrap();
    assert!(Path::new(creds).is_absolute() && creds.ends_with("prod.creds"), "{creds}");
    assert_eq!(list[0]["current"], true);

    env.ok(&["ctx", "use", "prod"]);
    let shown = env.ok(&["ctx", "show"]);
    assert!(shown.starts_with("context prod (current)"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    // The file holds the secret, readable by the user only.
    let file = env.path("config/contexts.toml");
    assert!(std::fs::read_to_string(&file).unwrap().contains("s3cret"));
    assert_eq!(mode(&file), 0o600);

    let out = env.run(&["ctx", "use", "nope", "-o", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["code"], "not_found");

    env.ok(&["ctx", "del", "prod"]);
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["ctx", "list", "-o", "json"])).unwrap();
    assert_eq!(
        list,
        serde_json::json!([{"name": "dev", "current": false, "context": {"nats": ["nats://127.0.0.1:4222"]}}])
    );
    let error = env.fails_with(3, &["ctx", "show"]);
    assert!(error.contains("no current context"), "{error}");
}

#[test]
fn nats_config_writes_a_config_nats_server_loads_with_a_private_seed_per_generated_user() {
    let env = Env::new();
    let given = lattice_core::nats_config::UserSeed::generate().unwrap();
    let web = format!("web={}", given.public_key());
    let args = ["nats-config", "--lattice", "prod", "--host", "h1", "--operator", "ops", "--caller", &web];
    let args = [&args[..], &["--app", "h1-app", "--out", "nats", "-o", "json"]].concat();
    let out: serde_json::Value = serde_json::from_str(&env.ok(&args)).unwrap();
    let users = out["users"].as_array().unwrap();
    assert_eq!(users.len(), 4, "{out}");
    for user in users {
        let name = user["name"].as_str().unwrap();
        match user["seed_file"].as_str() {
            Some(file) => {
                let file = env.path(file);
                assert_eq!(mode(&file), 0o600, "{}", file.display());
                let seed = std::fs::read_to_string(&file).unwrap();
                assert!(seed.starts_with("SU"), "{name}: {seed}");
            }
            None => assert_eq!((name, user["public_key"].as_str()), ("web", Some(given.public_key().as_str()))),
        }
    }
    assert_eq!(users[2]["inbox_prefix"], "_INBOX.web");
    assert!(users[3]["inbox_prefix"].is_null());

    // It loads in the real nats-server.
    let text = std::fs::read_to_string(env.path("nats/nats-server.conf")).unwrap();
    lattice_test_harness::NatsServer::builder().config(text).start().unwrap();

    // Nothing is overwritten without --force; bad users are usage errors, and nothing is written for them.
    let again = env.fails(&args[..args.len() - 2]);
    assert!(again.contains("already exists") && again.contains("--force"), "{again}");
    let twice = env.fails_with(2, &["nats-config", "--lattice", "l", "--host", "a", "--caller", "a", "--out", "dup"]);
    assert!(twice.contains("user `a` is named twice"), "{twice}");
    assert!(!env.path("dup/nats-server.conf").exists());
    let bad = env.run(&["nats-config", "--lattice", "l", "--caller", "web=Unope", "--out", "bad"]);
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
}
