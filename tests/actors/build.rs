//! Builds every actor component of the workspace for wasm32-wasip2 (profile `guest`) with a nested cargo, in
//! its own target directory so it never waits on the outer build's lock, and writes their paths as constants.
//! One constant per component: a test that forgets a fixture leaves an unused constant, not a silent gap.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (package, constant) for every guest. Example actors first, then the misbehaving test actors.
const GUESTS: &[(&str, &str)] = &[
    ("kv-counter", "KV_COUNTER"),
    ("order-store", "ORDER_STORE"),
    ("order-total", "ORDER_TOTAL"),
    ("orders-ingest", "ORDERS_INGEST"),
    ("orders-validate", "ORDERS_VALIDATE"),
    ("orders-price", "ORDERS_PRICE"),
    ("orders-ledger", "ORDERS_LEDGER"),
    ("http-hello", "HTTP_HELLO"),
    ("edge-api", "EDGE_API"),
    ("actor-kv-probe", "KV_PROBE"),
    ("actor-spin", "SPIN"),
    ("actor-mem-bomb", "MEM_BOMB"),
    ("actor-recurse", "RECURSE"),
    ("actor-huge-reply", "HUGE_REPLY"),
    ("actor-sleep", "SLEEP"),
    ("actor-msg-probe", "MSG_PROBE"),
    ("actor-workflow-probe", "WORKFLOW_PROBE"),
    ("actor-big-heap", "BIG_HEAP"),
    ("actor-reuse-probe", "REUSE_PROBE"),
    ("actor-http-spin", "HTTP_SPIN"),
    ("actor-http-fetch", "HTTP_FETCH"),
    ("actor-http-echo", "HTTP_ECHO"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("tests/actors sits two levels below the workspace root")
        .to_path_buf();
    for dir in ["wit", "examples", "tests/actors/guests"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"))
        .join("guests");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--profile", "guest", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target_dir);
    for (package, _) in GUESTS {
        cmd.args(["-p", package]);
    }
    // Flags meant for the outer (host) build must not leak into the guest build.
    for var in
        ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR"]
    {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo for the guest components");
    assert!(
        status.success(),
        "building the actor components failed (is the wasm32-wasip2 target installed? run scripts/setup.sh)"
    );

    let out_dir = target_dir.join("wasm32-wasip2").join("guest");
    let mut consts = String::new();
    for (package, constant) in GUESTS {
        let file = out_dir.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(file.is_file(), "expected component {}", file.display());
        consts.push_str(&format!(
            "/// Path of the `{package}` component.\npub const {constant}: &str = {:?};\n",
            file.display().to_string()
        ));
    }
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("actors.rs");
    std::fs::write(dest, consts).expect("writing actors.rs");
}
