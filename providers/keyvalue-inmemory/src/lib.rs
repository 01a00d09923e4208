//! In-memory `wasi:keyvalue` provider.
//!
//! A product feature for fast local development and tests of actor logic: one [`InMemoryKeyValue`] is shared by
//! every actor and every invocation on a host, so state survives between invocations (not between host
//! restarts). Buckets are created on first use. Keys list in lexicographic order.
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

use lattice_provider_sdk::{CasOutcome, KeyPage, KeyValue, KvError, LIST_PAGE_SIZE, async_trait, parse_counter};

type Bucket = Mutex<BTreeMap<String, Vec<u8>>>;

/// An in-memory key-value store; cheap to clone (clones share the data).
#[derive(Clone, Default)]
pub struct InMemoryKeyValue {
    buckets: Arc<RwLock<HashMap<String, Arc<Bucket>>>>,
}

impl std::fmt::Debug for InMemoryKeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryKeyValue").finish_non_exhaustive()
    }
}

impl InMemoryKeyValue {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn bucket(&self, name: &str) -> Arc<Bucket> {
        // A poisoned lock only means another thread panicked mid-operation; every operation below leaves the
        // map consistent at each step, so the data is still good.
        if let Some(bucket) = self.buckets.read().unwrap_or_else(PoisonError::into_inner).get(name) {
            return bucket.clone();
        }
        self.buckets.write().unwrap_or_else(PoisonError::into_inner).entry(name.to_owned()).or_default().clone()
    }

    fn with_bucket<T>(&self, name: &str, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> T) -> T {
        let bucket = self.bucket(name);
        let mut guard: MutexGuard<'_, _> = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

#[async_trait]
impl KeyValue for InMemoryKeyValue {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.with_bucket(bucket, |b| b.get(key).cloned()))
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.with_bucket(bucket, |b| b.insert(key.to_owned(), value));
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.with_bucket(bucket, |b| b.remove(key));
        Ok(())
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        Ok(self.with_bucket(bucket, |b| b.contains_key(key)))
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<String>) -> Result<KeyPage, KvError> {
        Ok(self.with_bucket(bucket, |b| {
            let start = match &cursor {
                Some(after) => std::ops::Bound::Excluded(after.as_str()),
                None => std::ops::Bound::Unbounded,
            };
            let mut keys: Vec<String> = b
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
            let current = parse_counter(key, b.get(key).map(Vec::as_slice))?;
            let next = current.checked_add(delta).ok_or_else(|| KvError::Overflow { key: key.to_owned() })?;
            b.insert(key.to_owned(), next.to_string().into_bytes());
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
        Ok(self.with_bucket(bucket, |b| {
            let current = b.get(key);
            if current == expected.as_ref() {
                b.insert(key.to_owned(), new);
                CasOutcome::Swapped
            } else {
                CasOutcome::Conflict { current: current.cloned() }
            }
        }))
    }

    async fn get_many(&self, bucket: &str, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        Ok(self.with_bucket(bucket, |b| {
            keys.into_iter()
                .map(|k| {
                    let v = b.get(&k).cloned();
                    (k, v)
                })
                .collect()
        }))
    }

    async fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.with_bucket(bucket, |b| b.extend(pairs));
        Ok(())
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
