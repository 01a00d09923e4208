//! Components read from a local path (`ArtifactRef::Path`): only regular files inside the host's artifact
//! directory (`--artifact-dir`), size-checked before reading, and never a hint whether a path outside exists.
//!
//! Order of checks: the path is judged lexically first (absolute paths must lie under the directory, `..`
//! must not climb out of it) without touching the filesystem; then it is canonicalized (symlinks resolved) and
//! checked again; then it must be a regular file (no FIFO, device or directory) no larger than the host's
//! component limit; then it is opened without blocking (`O_NONBLOCK`, so a FIFO swapped in meanwhile cannot
//! hang the open), its type checked again on the open handle, and at most limit + 1 bytes are read. All of it
//! runs on a blocking thread.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

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
        let not_a_file = || PathArtifactError::NotAFile { path: requested.to_owned(), host: host.to_owned() };
        let too_large =
            |size: u64| PathArtifactError::TooLarge { path: requested.to_owned(), host: host.to_owned(), size, limit };
        let read_error = |e: std::io::Error| PathArtifactError::Read {
            path: requested.to_owned(),
            host: host.to_owned(),
            message: e.to_string(),
        };
        let metadata = std::fs::metadata(&resolved).map_err(|_| not_found())?;
        if !metadata.is_file() {
            return Err(not_a_file());
        }
        if metadata.len() > limit as u64 {
            return Err(too_large(metadata.len()));
        }
        let mut file = open_nonblocking(&resolved).map_err(read_error)?;
        // The file may have been replaced between the checks and the open: check the opened handle too.
        let opened = file.metadata().map_err(read_error)?;
        if !opened.is_file() {
            return Err(not_a_file());
        }
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        let mut bytes = Vec::with_capacity(usize::try_from(opened.len()).unwrap_or(0).min(limit));
        (&mut file).take(cap).read_to_end(&mut bytes).map_err(read_error)?;
        if bytes.len() > limit {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
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
