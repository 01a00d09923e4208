//! Build script of the `lattice` binary.
//!
//! `embed_project_files` embeds the WIT packages (`/wit`) and the project templates (`cli/templates`) that
//! `lattice wit` and `lattice new` write, and the workspace's wit-bindgen version for the Rust template.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    embed_project_files();
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
