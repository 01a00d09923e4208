//! In-memory `wasi:keyvalue` provider.
//!
//! A product feature for fast local development and tests of actor logic: one [`InMemoryKeyValue`] is shared by
//! every actor and every invocation on a host, so state survives between invocations (not between host
//! restarts). Buckets are created on first use. Keys list in lexicographic order.
//!
//! Every bucket has a [`Quota`] on its bytes (keys plus values) and its number of keys, so an actor cannot
//! grow the host's memory without bound: a write that would exceed it fails with [`KvError::QuotaExceeded`]
//! and changes nothing (a batch is refused whole). An overwrite that keeps or shrinks a value is always
//! allowed, even at the limit, and deletes always are.
//!
//! ```
//! use lattice_keyvalue_inmemory::InMemoryKeyValue;
//! use lattice_provider_sdk::KeyValue;
//!
//! # tokio_test();
//! # fn tokio_test() {
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! let kv = InMemoryKeyValue::new();
//! assert_eq!(kv.increment("default", "hits", 2).await, Ok(2));
//! assert_eq!(kv.get("default", "hits").await, Ok(Some(b"2".to_vec())));
//! # });
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use lattice_provider_sdk::{CasOutcome, KeyPage, KeyValue, KvError, LIST_PAGE_SIZE, async_trait, incremented};

/// Per-bucket limits of an [`InMemoryKeyValue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Bytes of keys plus values one bucket may hold (default 64 MiB).
    pub max_bytes: u64,
    /// Keys one bucket may hold (default 100,000).
    pub max_keys: u64,
}

impl Quota {
    /// Default bytes per bucket: 64 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
    /// Default keys per bucket: 100,000.
    pub const DEFAULT_MAX_KEYS: u64 = 100_000;
}

impl Default for Quota {
    fn default() -> Self {
        Self { max_bytes: Self::DEFAULT_MAX_BYTES, max_keys: Self::DEFAULT_MAX_KEYS }
    }
}

/// One bucket's data and how many bytes it holds.
#[derive(Default)]
struct Data {
    map: BTreeMap<String, Vec<u8>>,
    bytes: u64,
}

fn size(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl Data {
    /// Checks that changing `key` from `old` (its size, `None` if absent) to `new` bytes keeps the bucket within
    /// `quota`, given the bucket now holds `bytes` in `keys` keys.
    fn admits(
        quota: &Quota,
        bucket: &str,
        (bytes, keys): (u64, u64),
        old: Option<u64>,
        new: u64,
    ) -> Result<(), KvError> {
        let exceeded =
            |what: &str, limit: u64| KvError::QuotaExceeded { bucket: bucket.to_owned(), what: what.to_owned(), limit };
        if old.is_none() && keys >= quota.max_keys {
            return Err(exceeded("keys", quota.max_keys));
        }
        let after = bytes - old.unwrap_or(0) + new;
        if new > old.unwrap_or(0) && after > quota.max_bytes {
            return Err(exceeded("bytes", quota.max_bytes));
        }
        Ok(())
    }

    fn put(&mut self, quota: &Quota, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        let old = self.map.get(key).map(|v| size(key, v));
        let new = size(key, &value);
        Self::admits(quota, bucket, (self.bytes, self.map.len() as u64), old, new)?;
        self.bytes = self.bytes - old.unwrap_or(0) + new;
        self.map.insert(key.to_owned(), value);
        Ok(())
    }

    fn remove(&mut self, key: &str) {
        if let Some(value) = self.map.remove(key) {
            self.bytes -= size(key, &value);
        }
    }

    /// Writes every pair, or none if the whole batch would exceed the quota.
    fn put_many(&mut self, quota: &Quota, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        let (mut bytes, mut keys) = (self.bytes, self.map.len() as u64);
        let mut batch: HashMap<&str, u64> = HashMap::new();
        for (key, value) in &pairs {
            let old = batch.get(key.as_str()).copied().or_else(|| self.map.get(key).map(|v| size(key, v)));
            let new = size(key, value);
            Self::admits(quota, bucket, (bytes, keys), old, new)?;
            bytes = bytes - old.unwrap_or(0) + new;
            keys += u64::from(old.is_none());
            batch.insert(key, new);
        }
        // The simulation above computed the bytes the batch leaves.
        self.map.extend(pairs);
        self.bytes = bytes;
        Ok(())
    }
}

type Bucket = Mutex<Data>;

/// An in-memory key-value store; cheap to clone (clones share the data).
#[derive(Clone, Default)]
pub struct InMemoryKeyValue {
    buckets: Arc<RwLock<HashMap<String, Arc<Bucket>>>>,
    quota: Quota,
}

impl std::fmt::Debug for InMemoryKeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryKeyValue").field("quota", &self.quota).finish_non_exhaustive()
    }
}

impl InMemoryKeyValue {
    /// An empty store with the default [`Quota`] per bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with `quota` per bucket.
    pub fn with_quota(quota: Quota) -> Self {
        Self { quota, ..Self::default() }
    }

    /// The per-bucket quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    fn bucket(&self, name: &str) -> Arc<Bucket> {
        // A poisoned lock only means another thread panicked mid-operation; every operation below leaves the
        // map consistent at each step, so the data is still good.
        if let Some(bucket) = self.buckets.read().unwrap_or_else(PoisonError::into_inner).get(name) {
            return bucket.clone();
        }
        self.buckets.write().unwrap_or_else(PoisonError::into_inner).entry(name.to_owned()).or_default().clone()
    }

    fn with_bucket<T>(&self, name: &str, f: impl FnOnce(&mut Data) -> T) -> T {
        let bucket = self.bucket(name);
        let mut guard: MutexGuard<'_, _> = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

#[async_trait]
impl KeyValue for InMemoryKeyValue {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.with_bucket(bucket, |b| b.map.get(key).cloned()))
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.with_bucket(bucket, |b| b.put(&self.quota, bucket, key, value))
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.with_bucket(bucket, |b| b.remove(key));
        Ok(())
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        Ok(self.with_bucket(bucket, |b| b.map.contains_key(key)))
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<String>) -> Result<KeyPage, KvError> {
        Ok(self.with_bucket(bucket, |b| {
            let start = match &cursor {
                Some(after) => std::ops::Bound::Excluded(after.as_str()),
                None => std::ops::Bound::Unbounded,
            };
            let mut keys: Vec<String> = b
                .map
                .range::<str, _>((start, std::ops::Bound::Unbounded))
                .take(LIST_PAGE_SIZE + 1)
                .map(|(k, _)| k.clone())
                .collect();
            let cursor = if keys.len() > LIST_PAGE_SIZE {
                keys.truncate(LIST_PAGE_SIZE);
                keys.last().cloned()
            } else {
                None
            };
            KeyPage { keys, cursor }
        }))
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.with_bucket(bucket, |b| {
            let next = incremented(key, b.map.get(key).map(Vec::as_slice), delta)?;
            b.put(&self.quota, bucket, key, next.to_string().into_bytes())?;
            Ok(next)
        })
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<CasOutcome, KvError> {
        self.with_bucket(bucket, |b| {
            let current = b.map.get(key);
            if current == expected.as_ref() {
                b.put(&self.quota, bucket, key, new)?;
                Ok(CasOutcome::Swapped)
            } else {
                Ok(CasOutcome::Conflict { current: current.cloned() })
            }
        })
    }

    async fn get_many(&self, bucket: &str, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        Ok(self.with_bucket(bucket, |b| {
            keys.into_iter()
                .map(|k| {
                    let v = b.map.get(&k).cloned();
                    (k, v)
                })
                .collect()
        }))
    }

    async fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.with_bucket(bucket, |b| b.put_many(&self.quota, bucket, pairs))
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        self.with_bucket(bucket, |b| {
            for k in &keys {
                b.remove(k);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lattice_provider_sdk::parse_counter;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("tokio runtime")
    }

    #[test]
    fn concurrent_increments_are_exact() {
        rt().block_on(async {
            let kv = InMemoryKeyValue::new();
            let tasks: Vec<_> = (0..1000)
                .map(|_| {
                    let kv = kv.clone();
                    tokio::spawn(async move { kv.increment("b", "n", 1).await })
                })
                .collect();
            for t in tasks {
                t.await.expect("task").expect("increment");
            }
            assert_eq!(kv.get("b", "n").await, Ok(Some(b"1000".to_vec())));
        });
    }

    #[test]
    fn cas_retries_converge() {
        rt().block_on(async {
            let kv = InMemoryKeyValue::new();
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let kv = kv.clone();
                    tokio::spawn(async move {
                        let mut seen = kv.get("b", "n").await?;
                        loop {
                            let next = parse_counter("n", seen.as_deref())? + 1;
                            match kv.compare_and_swap("b", "n", seen, next.to_string().into_bytes()).await? {
                                CasOutcome::Swapped => return Ok::<_, KvError>(()),
                                CasOutcome::Conflict { current } => seen = current,
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task").expect("cas loop");
            }
            assert_eq!(kv.get("b", "n").await, Ok(Some(b"64".to_vec())));
        });
    }

    #[test]
    fn buckets_are_isolated_and_keys_page() {
        rt().block_on(async {
            let kv = InMemoryKeyValue::new();
            kv.set("a", "k", b"1".to_vec()).await.expect("set");
            assert_eq!(kv.get("b", "k").await, Ok(None));
            let pairs = (0..LIST_PAGE_SIZE + 5).map(|i| (format!("k{i:05}"), vec![])).collect();
            kv.set_many("big", pairs).await.expect("set_many");
            let first = kv.list_keys("big", None).await.expect("page 1");
            assert_eq!(first.keys.len(), LIST_PAGE_SIZE);
            let second = kv.list_keys("big", first.cursor).await.expect("page 2");
            assert_eq!(second.keys.len(), 5);
            assert_eq!(second.cursor, None);
        });
    }

    #[test]
    fn quotas_refuse_growth_but_allow_shrinking_overwrites_and_deletes() {
        rt().block_on(async {
            let kv = InMemoryKeyValue::with_quota(Quota { max_bytes: 10, max_keys: 2 });
            kv.set("b", "k", b"123456789".to_vec()).await.expect("10 bytes fit");
            let over = kv.set("b", "j", b"1".to_vec()).await;
            assert!(
                matches!(&over, Err(KvError::QuotaExceeded { what, limit: 10, .. }) if what == "bytes"),
                "{over:?}"
            );
            kv.set("b", "k", b"987654321".to_vec()).await.expect("same size at the limit");
            kv.set("b", "k", b"1".to_vec()).await.expect("shrinking");
            kv.set("b", "j", b"2".to_vec()).await.expect("second key");
            let keys = kv.set("b", "i", Vec::new()).await;
            assert!(matches!(&keys, Err(KvError::QuotaExceeded { what, limit: 2, .. }) if what == "keys"), "{keys:?}");
            let batch = kv.set_many("b", vec![("k".into(), b"2".to_vec()), ("z".into(), Vec::new())]).await;
            assert!(matches!(batch, Err(KvError::QuotaExceeded { .. })));
            assert_eq!(kv.get("b", "k").await, Ok(Some(b"1".to_vec())), "a refused batch writes nothing");
            kv.delete("b", "j").await.expect("delete");
            kv.set("b", "i", Vec::new()).await.expect("room again after a delete");
            assert!(matches!(kv.increment("b", "k", 1_000_000_000).await, Err(KvError::QuotaExceeded { .. })));
            assert!(matches!(
                kv.compare_and_swap("b", "k", Some(b"1".to_vec()), b"123456789".to_vec()).await,
                Err(KvError::QuotaExceeded { .. })
            ));
            // Other buckets have their own quota.
            kv.set("other", "k", b"123456789".to_vec()).await.expect("own quota");
        });
    }

    #[test]
    fn increment_refuses_non_integers_and_overflow() {
        rt().block_on(async {
            let kv = InMemoryKeyValue::new();
            kv.set("b", "s", b"text".to_vec()).await.expect("set");
            assert!(matches!(kv.increment("b", "s", 1).await, Err(KvError::NotAnInteger { .. })));
            kv.set("b", "m", i64::MAX.to_string().into_bytes()).await.expect("set");
            assert!(matches!(kv.increment("b", "m", 1).await, Err(KvError::Overflow { .. })));
        });
    }
}
