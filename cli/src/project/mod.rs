//! Actor projects: `lattice new`, `lattice wit`, `lattice build` and `lattice dev`.
//!
//! The WIT packages and the project templates are embedded in the binary at compile time (`cli/build.rs`), so an
//! installed `lattice` needs nothing from this repository.

use std::path::{Path, PathBuf};

use anyhow::Context;

pub mod build;
pub mod dev;
pub mod new;
pub mod wit;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/project_files.rs"));
}

/// The languages `lattice new` scaffolds and `lattice build` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Lang {
    /// Rust with wit-bindgen, built by cargo for wasm32-wasip2.
    #[default]
    Rust,
    /// Python, built by componentize-py.
    Python,
}

impl Lang {
    fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
        }
    }

    /// The language of the project in `dir`: a `Cargo.toml` means Rust, an `app.py` Python.
    pub fn detect(dir: &Path) -> anyhow::Result<Lang> {
        if dir.join("Cargo.toml").is_file() {
            Ok(Lang::Rust)
        } else if dir.join("app.py").is_file() {
            Ok(Lang::Python)
        } else {
            anyhow::bail!(
                "{} is not an actor project: it has neither Cargo.toml (Rust) nor app.py (Python); create one with \
                 `lattice new <name>`",
                dir.display()
            )
        }
    }
}

/// Writes `files` (relative path, contents) under `dir`, creating directories as needed.
fn write_files<'a>(dir: &Path, files: impl IntoIterator<Item = (String, String)> + 'a) -> anyhow::Result<()> {
    for (relative, contents) in files {
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The embedded WIT packages, as `wit/`-relative paths.
fn wit_files() -> impl Iterator<Item = (String, String)> {
    embedded::WIT_FILES.iter().map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
}

/// `dir` made absolute against the current directory (for messages and child processes).
fn absolute(dir: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))
}
