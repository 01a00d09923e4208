//! Components stored in the lattice: a JetStream object store per lattice, each object carrying the sha256
//! of its bytes in its metadata. Hosts verify that digest before anything else sees the bytes.

use async_nats::jetstream::{self, object_store};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// Metadata key holding the hex sha256 of an artifact's bytes.
pub const DIGEST_KEY: &str = "lattice-sha256";

/// Why an artifact could not be fetched.
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

/// Opens (creating if needed) the artifact store `bucket`.
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

/// Artifacts a host fetched recently, by name and the object's `nuid` (new on every put), so starting many
/// actors from one artifact (an app's replicas, 1,000 actors of one component) reads it from the store once.
/// Entries were digest-checked when fetched; at most [`RecentArtifacts::CAPACITY`] are kept.
#[derive(Default)]
pub(crate) struct RecentArtifacts {
    entries: std::sync::Mutex<Vec<(ArtifactKey, std::sync::Arc<[u8]>)>>,
}

/// An artifact's name and the object's `nuid`.
type ArtifactKey = (String, String);

impl RecentArtifacts {
    const CAPACITY: usize = 8;

    fn get(&self, key: &ArtifactKey) -> Option<std::sync::Arc<[u8]>> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.iter().find(|(k, _)| k == key).map(|(_, bytes)| bytes.clone())
    }

    fn put(&self, key: ArtifactKey, bytes: std::sync::Arc<[u8]>) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|(k, _)| k.0 != key.0);
        if entries.len() >= Self::CAPACITY {
            entries.remove(0);
        }
        entries.push((key, bytes));
    }
}

/// Reads artifact `name`, refusing it unless its bytes match the recorded digest; served from `recent` when
/// the same object was fetched before.
pub(crate) async fn fetch(
    js: &jetstream::Context,
    bucket: &str,
    name: &str,
    limit: usize,
    recent: &RecentArtifacts,
) -> Result<Vec<u8>, ArtifactError> {
    let store = js.get_object_store(bucket).await.map_err(|_| ArtifactError::NotFound(name.to_owned()))?;
    let info = store.info(name).await.map_err(|_| ArtifactError::NotFound(name.to_owned()))?;
    if info.size > limit {
        return Err(ArtifactError::TooLarge { name: name.to_owned(), size: info.size as u64, limit });
    }
    let key = (name.to_owned(), info.nuid.clone());
    if let Some(bytes) = recent.get(&key) {
        return Ok(bytes.to_vec());
    }
    let expected = info.metadata.get(DIGEST_KEY).cloned().ok_or_else(|| ArtifactError::NoDigest(name.to_owned()))?;
    let mut object = store.get(name).await.map_err(|e| ArtifactError::Store(e.to_string()))?;
    let mut bytes = Vec::with_capacity(info.size);
    // The object store checks its own chunk digest at the end of the read; our digest is checked below.
    object.read_to_end(&mut bytes).await.map_err(|e| ArtifactError::Store(format!("reading `{name}`: {e}")))?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != expected {
        return Err(ArtifactError::DigestMismatch { name: name.to_owned(), expected, actual });
    }
    recent.put(key, bytes.as_slice().into());
    Ok(bytes)
}
