//! The on-disk cache of compiled components.
//!
//! Key: sha256 of the component bytes plus a fingerprint of the engine's compilation settings (wasmtime
//! version, target, tunables), so a cached artifact is only ever loaded into an engine that can run it.
//! Artifacts are written to a temporary file and renamed, so a crash never leaves a half-written entry.
//!
//! **Invariant:** we only deserialize files this module wrote: the cache directory is created owner-only
//! (0700) and entries are named by their key. A file that fails to load is deleted and recompiled.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Why the cache directory could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The directory could not be created or its permissions set.
    #[error("cannot prepare compiled-code cache directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The IO failure.
        #[source]
        source: std::io::Error,
    },
}

/// A directory of precompiled components for one engine configuration.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: Option<PathBuf>,
    fingerprint: String,
}

/// Adapts `Hash` to sha256 so the engine fingerprint is stable across Rust releases.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hex::encode(&hasher.0.finalize()[..12])
}

impl CompiledCache {
    /// A cache in `dir`, created owner-only if missing.
    pub fn open(dir: impl Into<PathBuf>, engine: &Engine) -> Result<Self, CacheError> {
        let dir = dir.into();
        let prepare = |dir: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            Ok(())
        };
        prepare(&dir).map_err(|source| CacheError::Dir { path: dir.clone(), source })?;
        Ok(Self { dir: Some(dir), fingerprint: engine_fingerprint(engine) })
    }

    /// A cache that stores nothing: every load compiles.
    pub fn disabled() -> Self {
        Self { dir: None, fingerprint: String::new() }
    }

    fn entry(&self, digest: &[u8; 32]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{}-{}.cwasm", hex::encode(digest), self.fingerprint)))
    }

    /// The compiled component for `digest`, if this cache holds one that loads.
    pub(crate) fn load(&self, engine: &Engine, digest: &[u8; 32]) -> Option<Component> {
        let path = self.entry(digest)?;
        if !path.is_file() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts its input to be a wasmtime artifact. The file lives in the owner-only
        // cache directory, is named by the component digest and engine fingerprint, and was written by `store`
        // below from `Component::serialize` (temp file + rename, so never partial).
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable compiled-cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled component. Failures are logged, never fatal: the cache is an optimisation.
    pub(crate) fn store(&self, digest: &[u8; 32], component: &Component) {
        let Some(path) = self.entry(digest) else { return };
        let write = || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let bytes = component.serialize()?;
            let dir = path.parent().ok_or("cache entry has no parent directory")?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all(&bytes)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path)?;
            Ok(())
        };
        if let Err(error) = write() {
            tracing::warn!(path = %path.display(), %error, "cannot write compiled-cache entry");
        }
    }
}
