//! Build script of the `lattice` binary.
//!
//! `embed_project_files` embeds the WIT packages (`/wit`) and the project templates (`cli/templates`) that
//! `lattice wit` and `lattice new` write, and the workspace's wit-bindgen version for the Rust template.
//! `version_info` records the git commit and the locked wasmtime version for `lattice --version`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    embed_project_files();
    version_info();
}

/// Writes `$OUT_DIR/project_files.rs`: `WIT_FILES` and `TEMPLATE_FILES`, each `(relative path, contents)` with
/// `include_str!` (so cargo rebuilds when a file changes), and `WIT_BINDGEN_VERSION`.
fn embed_project_files() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("the CLI crate sits in the workspace").to_path_buf();
    let mut code = String::new();
    for (constant, dir) in [("WIT_FILES", root.join("wit")), ("TEMPLATE_FILES", manifest_dir.join("templates"))] {
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = Vec::new();
        walk(&dir, &mut files);
        files.sort();
        writeln!(code, "pub const {constant}: &[(&str, &str)] = &[").expect("write to a String");
        for file in &files {
            let relative = file.strip_prefix(&dir).expect("walked under dir");
            let relative = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>();
            writeln!(code, "    ({:?}, include_str!({:?})),", relative.join("/"), file.display().to_string())
                .expect("write to a String");
        }
        writeln!(code, "];").expect("write to a String");
    }
    let workspace = root.join("Cargo.toml");
    println!("cargo:rerun-if-changed={}", workspace.display());
    let text = std::fs::read_to_string(&workspace).expect("read the workspace Cargo.toml");
    let version = text
        .lines()
        .find_map(|line| line.strip_prefix("wit-bindgen = "))
        .and_then(|rest| rest.split("version = \"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the workspace Cargo.toml pins wit-bindgen");
    writeln!(code, "pub const WIT_BINDGEN_VERSION: &str = {version:?};").expect("write to a String");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("project_files.rs");
    std::fs::write(out, code).expect("write project_files.rs");
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        // Caches a tool may leave in the templates (python -m py_compile) are not part of them.
        if path.file_name().is_some_and(|n| n == "__pycache__") {
            continue;
        }
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// For `lattice --version`: the git commit being built (`LATTICE_GIT_COMMIT`, "unknown" outside a git checkout)
/// and the wasmtime version in the workspace's Cargo.lock (`LATTICE_WASMTIME_VERSION`).
fn version_info() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_owned());
    let manifest_dir = Path::new(&manifest_dir);

    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).current_dir(manifest_dir).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=LATTICE_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: a checkout changes HEAD, a commit appends to HEAD's log.
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            let file = manifest_dir.join(file);
            if file.exists() {
                println!("cargo:rerun-if-changed={}", file.display());
            }
        }
    }

    let lock = manifest_dir.join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let wasmtime = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| locked_version(&text, "wasmtime"))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=LATTICE_WASMTIME_VERSION={wasmtime}");
}

/// The version of package `name` in a Cargo.lock: the `version = "…"` line after `name = "<name>"`.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines().map(str::trim);
    lines.find(|line| *line == wanted)?;
    let version = lines.next()?.strip_prefix("version = \"")?.strip_suffix('"')?;
    Some(version.to_owned())
}
