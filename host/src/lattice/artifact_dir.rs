//! Components read from a local path (`ArtifactRef::Path`): only regular files inside the host's artifact
//! directory (`--artifact-dir`), size-checked before reading, and never a hint whether a path outside exists.
//!
//! Order of checks: the path is judged lexically first (absolute paths must lie under the directory, `..`
//! must not climb out of it) without touching the filesystem; then it is canonicalized (symlinks resolved) and
//! checked again; then it is read with [`crate::files::read_file`] (the reader the CLI uses too): opened
//! without blocking (`O_NONBLOCK`, so a FIFO cannot hang the open), a regular file (no FIFO, device or
//! directory) no larger than the host's component limit on the open handle, and at most limit + 1 bytes read.
//! All of it runs on a blocking thread.

use std::path::{Component, Path, PathBuf};

use crate::files::ReadFileError;

/// The directory path artifacts may come from.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactDir {
    /// As configured, made absolute (lexical checks accept paths under this spelling too).
    given: PathBuf,
    /// Canonical (symlinks resolved): every path must resolve under it.
    canonical: PathBuf,
}

/// Why a component could not be read from a path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathArtifactError {
    /// The host has no artifact directory: starting from a path is off.
    #[error(
        "starting from a local path is disabled on host {host}: start the host with --artifact-dir DIR \
         (LATTICE_ARTIFACT_DIR, `artifact_dir` in the host config) to allow files inside DIR, or push the \
         component and start it by name"
    )]
    Disabled {
        /// The host.
        host: String,
    },
    /// Nothing readable at that path inside the directory. Also the answer for any path outside it, so a
    /// caller learns nothing about files outside.
    #[error("no component at `{path}` in the artifact directory of host {host}")]
    NotFound {
        /// The path as requested.
        path: String,
        /// The host.
        host: String,
    },
    /// The path inside the directory is a FIFO, a device, a directory or another non-regular file.
    #[error("`{path}` in the artifact directory of host {host} is not a regular file")]
    NotAFile {
        /// The path as requested.
        path: String,
        /// The host.
        host: String,
    },
    /// The file is larger than the host accepts.
    #[error("component `{path}` is {size} bytes or more, larger than host {host}'s limit of {limit} bytes")]
    TooLarge {
        /// The path as requested.
        path: String,
        /// The host.
        host: String,
        /// Its size (at least).
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// The file exists but could not be read.
    #[error("cannot read component `{path}` on host {host}: {message}")]
    Read {
        /// The path as requested.
        path: String,
        /// The host.
        host: String,
        /// Why.
        message: String,
    },
}

/// Why the artifact directory itself is unusable (at host start).
#[derive(Debug, thiserror::Error)]
#[error("artifact directory {}: {message}", path.display())]
pub struct ArtifactDirError {
    path: PathBuf,
    message: String,
}

impl ArtifactDir {
    /// Resolves the configured directory; it must exist and be a directory.
    pub(crate) fn open(dir: &Path) -> Result<Self, ArtifactDirError> {
        let fail = |message: String| ArtifactDirError { path: dir.to_owned(), message };
        let given = std::path::absolute(dir).map_err(|e| fail(e.to_string()))?;
        let canonical = std::fs::canonicalize(dir).map_err(|e| fail(format!("cannot resolve it: {e}")))?;
        if !canonical.is_dir() {
            return Err(fail("not a directory".into()));
        }
        Ok(Self { given: normalize(&given).unwrap_or(given), canonical })
    }

    /// Reads the component at `requested` (relative to the directory, or absolute under it), refusing anything
    /// else. Blocking: call it on a blocking thread.
    pub(crate) fn read(&self, requested: &str, host: &str, limit: usize) -> Result<Vec<u8>, PathArtifactError> {
        let not_found = || PathArtifactError::NotFound { path: requested.to_owned(), host: host.to_owned() };
        let path = Path::new(requested);
        // Lexical check first: nothing outside the directory is touched.
        let joined = if path.is_absolute() { path.to_owned() } else { self.canonical.join(path) };
        let lexical = normalize(&joined).ok_or_else(not_found)?;
        if !(lexical.starts_with(&self.canonical) || lexical.starts_with(&self.given)) {
            tracing::debug!(path = requested, "path artifact outside the artifact directory refused");
            return Err(not_found());
        }
        // Then where it really leads (symlinks resolved). A missing file and one outside look the same.
        let resolved = std::fs::canonicalize(&lexical).map_err(|_| not_found())?;
        if !resolved.starts_with(&self.canonical) {
            tracing::debug!(path = requested, "path artifact resolving outside the artifact directory refused");
            return Err(not_found());
        }
        let (path, host) = (requested.to_owned(), host.to_owned());
        // The shared reader: opened without blocking, regular files only (checked on the open handle), capped.
        crate::files::read_file(&resolved, limit).map_err(|error| match error {
            ReadFileError::NotAFile { .. } => PathArtifactError::NotAFile { path, host },
            ReadFileError::TooLarge { size, .. } => PathArtifactError::TooLarge { path, host, size, limit },
            ReadFileError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                PathArtifactError::NotFound { path, host }
            }
            ReadFileError::Io { source, .. } => PathArtifactError::Read { path, host, message: source.to_string() },
            other => PathArtifactError::Read { path, host, message: other.to_string() },
        })
    }
}

/// `path` with `.` dropped and `..` applied, without touching the filesystem; `None` if `..` climbs above the
/// root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => out.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() || out.as_os_str().is_empty() {
                    return None;
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_applies_dots_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), Some(PathBuf::from("/a/c")));
        assert_eq!(normalize(Path::new("/a/../..")), None);
        assert_eq!(normalize(Path::new("/..")), None);
    }

    #[test]
    fn paths_outside_are_refused_like_missing_ones() {
        let dir = std::env::temp_dir().join(format!("lattice-artifact-dir-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("temp dir");
        std::fs::write(dir.join("sub/a.wasm"), b"\0asm").expect("write");
        let artifacts = ArtifactDir::open(&dir).expect("open");
        assert_eq!(artifacts.read("sub/a.wasm", "h", 1024).expect("inside"), b"\0asm");
        assert_eq!(artifacts.read("sub/../sub/a.wasm", "h", 1024).expect("inside via .."), b"\0asm");
        let text = |path: &str| match artifacts.read(path, "h", 1024) {
            Err(e @ PathArtifactError::NotFound { .. }) => e.to_string().replace(path, "<path>"),
            other => panic!("{path}: expected not found, got {other:?}"),
        };
        let missing = text("sub/missing.wasm");
        assert_eq!(text("../../etc/passwd"), missing);
        assert_eq!(text("/etc/passwd"), missing);
        assert_eq!(text("/dev/zero"), missing);
        assert!(matches!(artifacts.read("sub", "h", 1024), Err(PathArtifactError::NotAFile { .. })));
        assert!(matches!(artifacts.read("sub/a.wasm", "h", 3), Err(PathArtifactError::TooLarge { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
