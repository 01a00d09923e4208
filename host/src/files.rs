//! Reading a file someone named (a component, a manifest, a key, a config): the one reader the host's artifact
//! directory and every CLI verb use, so a symlink to `/dev/zero` cannot exhaust memory and a FIFO cannot hang.
//!
//! The file is opened without blocking (`O_NONBLOCK`: opening a FIFO with no writer returns at once), must be a
//! regular file on the open handle (after following symlinks, so a file swapped in after a check cannot slip
//! through), and at most `limit + 1` bytes are read whatever its size claims. It lives in lattice-host, not in
//! lattice-client, because it needs `libc` for `O_NONBLOCK`, which only lattice-host depends on; the CLI links
//! lattice-host anyway.
//!
//! ```no_run
//! use lattice_host::files::{MAX_TEXT_BYTES, read_text};
//!
//! let manifest = read_text("lattice.toml".as_ref(), MAX_TEXT_BYTES)?;
//! # Ok::<(), lattice_host::files::ReadFileError>(())
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest component a host loads by default, and the cap for components and payloads the CLI reads.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// The cap for text files the CLI reads: manifests, host configs, contexts, keys and seeds.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadFileError {
    /// A FIFO, a device, a directory or another non-regular file (after following symlinks).
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path as given.
        path: PathBuf,
    },
    /// Larger than the limit.
    #[error("{} is {size} bytes or more, larger than the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The path as given.
        path: PathBuf,
        /// Its size (at least).
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// Not UTF-8 text (from [`read_text`]).
    #[error("{} is not UTF-8 text", path.display())]
    NotText {
        /// The path as given.
        path: PathBuf,
    },
    /// Opening or reading failed (missing, no permission…).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Reads the regular file at `path`, at most `limit` bytes. Blocking.
pub fn read_file(path: &Path, limit: usize) -> Result<Vec<u8>, ReadFileError> {
    let io = |source| ReadFileError::Io { path: path.to_owned(), source };
    let mut file = open_nonblocking(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(ReadFileError::NotAFile { path: path.to_owned() });
    }
    let too_large = |size: u64| ReadFileError::TooLarge { path: path.to_owned(), size, limit };
    if metadata.len() > limit as u64 {
        return Err(too_large(metadata.len()));
    }
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0).min(limit));
    (&mut file).take(cap).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Reads the regular file at `path` as UTF-8 text, at most `limit` bytes. Blocking.
pub fn read_text(path: &Path, limit: usize) -> Result<String, ReadFileError> {
    String::from_utf8(read_file(path, limit)?).map_err(|_| ReadFileError::NotText { path: path.to_owned() })
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("lattice-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let zero = dir.join("zero");
        let _ = std::fs::remove_file(&zero);
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        assert!(matches!(read_file(&zero, 1024), Err(ReadFileError::NotAFile { .. })));
        assert!(matches!(read_file(&dir, 1024), Err(ReadFileError::NotAFile { .. })));
        let small = dir.join("small");
        std::fs::write(&small, b"0123456789").expect("write");
        assert_eq!(read_file(&small, 10).expect("fits"), b"0123456789");
        assert!(matches!(read_file(&small, 9), Err(ReadFileError::TooLarge { size: 10, limit: 9, .. })));
        std::fs::write(&small, b"\xff").expect("write");
        assert!(matches!(read_text(&small, 10), Err(ReadFileError::NotText { .. })));
        let missing = read_file(&dir.join("missing"), 10).expect_err("missing");
        assert!(matches!(&missing, ReadFileError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound));
        assert!(missing.to_string().contains("missing"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
