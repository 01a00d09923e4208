//! Fetching components from the lattice's artifact store (see [`lattice_client::artifacts`]): digest-checked,
//! with a small cache of recent fetches.

use async_nats::jetstream;
pub(crate) use lattice_client::artifacts::ArtifactError;
use lattice_client::artifacts::DIGEST_KEY;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

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

/// Reads artifact `name`, refusing it unless its bytes match the recorded digest and, when the request names
/// one, the `expected` digest (checked against the recorded one before anything is downloaded: an object
/// replaced after the caller resolved its digest is refused whatever it holds); served from `recent` when the
/// same object was fetched before.
pub(crate) async fn fetch(
    js: &jetstream::Context,
    bucket: &str,
    name: &str,
    expected: Option<&str>,
    limit: usize,
    recent: &RecentArtifacts,
) -> Result<Vec<u8>, ArtifactError> {
    let store = js.get_object_store(bucket).await.map_err(|_| ArtifactError::NotFound(name.to_owned()))?;
    let info = store.info(name).await.map_err(|_| ArtifactError::NotFound(name.to_owned()))?;
    let recorded = info.metadata.get(DIGEST_KEY).cloned().ok_or_else(|| ArtifactError::NoDigest(name.to_owned()))?;
    if let Some(expected) = expected
        && expected != recorded
    {
        return Err(ArtifactError::NotExpected {
            name: name.to_owned(),
            expected: expected.to_owned(),
            actual: recorded,
        });
    }
    if info.size > limit {
        return Err(ArtifactError::TooLarge { name: name.to_owned(), size: info.size as u64, limit });
    }
    let key = (name.to_owned(), info.nuid.clone());
    if let Some(bytes) = recent.get(&key) {
        return Ok(bytes.to_vec());
    }
    let mut object = store.get(name).await.map_err(|e| ArtifactError::Store(e.to_string()))?;
    let mut bytes = Vec::with_capacity(info.size);
    // The object store checks its own chunk digest at the end of the read; our digest is checked below.
    object.read_to_end(&mut bytes).await.map_err(|e| ArtifactError::Store(format!("reading `{name}`: {e}")))?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != recorded {
        return Err(ArtifactError::DigestMismatch { name: name.to_owned(), expected: recorded, actual });
    }
    recent.put(key, bytes.as_slice().into());
    Ok(bytes)
}
