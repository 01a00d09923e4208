//! Where lattice keeps its files on this machine. The one place that asks the platform for the user's
//! directories (`directories::ProjectDirs`).

use std::path::PathBuf;

use anyhow::Context;
use directories::ProjectDirs;

/// The user's directories for lattice (e.g. ~/.config/lattice, ~/.cache/lattice, ~/.local/share/lattice), if
/// the platform has a home directory.
fn project() -> Option<ProjectDirs> {
    ProjectDirs::from("", "", "lattice")
}

/// The directory of lattice's configuration, keys and contexts: `LATTICE_CONFIG_DIR`, or the user's config
/// directory.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("LATTICE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    project()
        .map(|d| d.config_dir().to_path_buf())
        .context("cannot find the user's config directory; set LATTICE_CONFIG_DIR")
}

/// The default cache of compiled components (the user cache dir's `compiled`), if the platform has one.
pub fn compiled_cache_dir() -> Option<PathBuf> {
    project().map(|d| d.cache_dir().join("compiled"))
}

/// Where `lattice up` keeps its nats-server's JetStream data: the user data dir's `nats`, else a directory
/// under the system's temporary directory.
pub fn local_nats_dir() -> PathBuf {
    project().map_or_else(|| std::env::temp_dir().join("lattice-nats"), |d| d.data_dir().join("nats"))
}
