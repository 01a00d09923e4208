//! Components stored in the lattice: a JetStream object store per lattice, each object carrying the sha256
//! of its bytes in its metadata. Hosts verify that digest before anything else sees the bytes.

use async_nats::jetstream::{self, object_store};
use futures::StreamExt;
use serde::Serialize;

/// Metadata key holding the hex sha256 of an artifact's bytes.
pub const DIGEST_KEY: &str = "lattice-sha256";

/// Why an artifact could not be read, listed or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// The lattice has no artifact store yet, or no object of that name.
    #[error("artifact `{0}` not found in the lattice (push it with `lattice push`)")]
    NotFound(String),
    /// The object has no recorded digest: it was not stored by `lattice push`.
    #[error("artifact `{0}` has no recorded sha256; push it with `lattice push`")]
    NoDigest(String),
    /// The bytes read do not hash to the recorded digest.
    #[error("artifact `{name}` is corrupt: sha256 is {actual}, expected {expected}")]
    DigestMismatch {
        /// The artifact.
        name: String,
        /// The recorded digest.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
    },
    /// The artifact is not the one the request asked for: its sha256 differs from the request's expected
    /// digest (the object behind the name was replaced, or the request pinned another version).
    #[error(
        "artifact `{name}` has sha256 {actual}, but the request expects {expected}: refusing to run it (was it \
         replaced after the digest was taken?)"
    )]
    NotExpected {
        /// The artifact (a name in the store, or a path on the host).
        name: String,
        /// The digest the request expects.
        expected: String,
        /// The digest of what the host found.
        actual: String,
    },
    /// The artifact is larger than the host accepts.
    #[error("artifact `{name}` is {size} bytes, larger than the host's limit of {limit} bytes")]
    TooLarge {
        /// The artifact.
        name: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// JetStream failed or could not be reached.
    #[error("artifact store: {0}")]
    Store(String),
}

/// Opens the artifact store `bucket`, creating it when `create` is set.
pub(crate) async fn store(
    js: &jetstream::Context,
    bucket: &str,
    create: bool,
) -> Result<object_store::ObjectStore, ArtifactError> {
    match js.get_object_store(bucket).await {
        Ok(store) => Ok(store),
        Err(_) if create => js
            .create_object_store(object_store::Config {
                bucket: bucket.to_owned(),
                description: Some("lattice artifacts (components pushed with `lattice push`)".into()),
                num_replicas: lattice_messaging_nats::replicas(&js.client()),
                ..Default::default()
            })
            .await
            .map_err(|e| ArtifactError::Store(e.to_string())),
        Err(e) => Err(ArtifactError::Store(e.to_string())),
    }
}

/// An artifact in the store, as `lattice artifact list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactInfo {
    /// Its name (what `start --artifact` names).
    pub name: String,
    /// The sha256 recorded when it was pushed (`None`: not stored by `lattice push`).
    pub digest: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last stored, unix milliseconds (`None`: the server did not say).
    pub modified_ms: Option<u64>,
}

impl From<&object_store::ObjectInfo> for ArtifactInfo {
    fn from(info: &object_store::ObjectInfo) -> Self {
        Self {
            name: info.name.clone(),
            digest: info.metadata.get(DIGEST_KEY).cloned(),
            size: info.size as u64,
            modified_ms: info.modified.map(|t| u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or_default()),
        }
    }
}

/// Every artifact in `store`, sorted by name (deleted objects are left out).
pub(crate) async fn list(store: &object_store::ObjectStore) -> Result<Vec<ArtifactInfo>, ArtifactError> {
    let mut objects = store.list().await.map_err(|e| ArtifactError::Store(e.to_string()))?;
    let mut out = Vec::new();
    while let Some(info) = objects.next().await {
        let info = info.map_err(|e| ArtifactError::Store(e.to_string()))?;
        if !info.deleted {
            out.push(ArtifactInfo::from(&info));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Shortest digest prefix `artifact rm` accepts, so a short name is never taken for a digest by accident.
pub const MIN_DIGEST_PREFIX: usize = 8;

/// The artifacts `what` names: the one of that name, else (when `what` is at least [`MIN_DIGEST_PREFIX`]
/// lowercase hex digits) every one whose digest starts with it.
pub(crate) fn matching<'a>(artifacts: &'a [ArtifactInfo], what: &str) -> Vec<&'a ArtifactInfo> {
    if let Some(named) = artifacts.iter().find(|a| a.name == what) {
        return vec![named];
    }
    let is_digest =
        what.len() >= MIN_DIGEST_PREFIX && what.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_digest {
        return Vec::new();
    }
    artifacts.iter().filter(|a| a.digest.as_deref().is_some_and(|d| d.starts_with(what))).collect()
}

#[cfg(test)]
mod tests {
    use super::{ArtifactInfo, matching};

    fn artifact(name: &str, digest: &str) -> ArtifactInfo {
        ArtifactInfo { name: name.into(), digest: Some(digest.into()), size: 1, modified_ms: None }
    }

    #[test]
    fn a_name_wins_over_a_digest_prefix_and_short_prefixes_match_nothing() {
        let all = [artifact("deadbeef", "0123456789ab"), artifact("b", "deadbeef00"), artifact("c", "deadbeef11")];
        let names = |what: &str| matching(&all, what).iter().map(|a| a.name.clone()).collect::<Vec<_>>();
        assert_eq!(names("deadbeef"), ["deadbeef"]);
        assert_eq!(names("01234567"), ["deadbeef"]);
        assert_eq!(names("deadbeef0"), ["b"]);
        assert_eq!(names("0123"), Vec::<String>::new());
        assert_eq!(names("DEADBEEF00"), Vec::<String>::new());
        assert_eq!(names("nope"), Vec::<String>::new());
    }
}
