//! Capability provider traits for lattice.
//!
//! A provider implements one trait per interface against a backend (memory, Redis, NATS…). The host calls
//! the implementation in-process when the provider runs on the same host; the same implementation can be served
//! to remote hosts over the lattice. Actors never see a provider directly: the host resolves an actor's
//! `store.open(identifier)` through its links to a provider instance and a bucket name, then calls the trait.
//!
//! Core types:
//! - [`KeyValue`]: `wasi:keyvalue` store, atomics and batch semantics over named buckets.
//! - [`KvError`]: the error every key-value operation returns; the host maps it to the WIT `error` variant.
//! - [`Messaging`]: `wasi:messaging` publish, request/reply and subscriptions over NATS-style subjects (the
//!   subject syntax every backend accepts is on the trait).
//! - [`MsgError`]: the error every messaging operation returns; the host maps it to the WIT `error` variant.
//!
//! ```
//! use lattice_provider_sdk::{KeyValue, KvError, CasOutcome, KeyPage};
//!
//! /// A provider that holds nothing: every read is empty, every write is refused.
//! struct Empty;
//!
//! #[lattice_provider_sdk::async_trait]
//! impl KeyValue for Empty {
//!     async fn get(&self, _bucket: &str, _key: &str) -> Result<Option<Vec<u8>>, KvError> { Ok(None) }
//!     async fn set(&self, _bucket: &str, _key: &str, _value: Vec<u8>) -> Result<(), KvError> {
//!         Err(KvError::AccessDenied)
//!     }
//!     async fn delete(&self, _bucket: &str, _key: &str) -> Result<(), KvError> { Ok(()) }
//!     async fn exists(&self, _bucket: &str, _key: &str) -> Result<bool, KvError> { Ok(false) }
//!     async fn list_keys(&self, _bucket: &str, _cursor: Option<String>) -> Result<KeyPage, KvError> {
//!         Ok(KeyPage::default())
//!     }
//!     async fn increment(&self, _bucket: &str, _key: &str, _delta: i64) -> Result<i64, KvError> {
//!         Err(KvError::AccessDenied)
//!     }
//!     async fn compare_and_swap(
//!         &self, _bucket: &str, _key: &str, _expected: Option<Vec<u8>>, _new: Vec<u8>,
//!     ) -> Result<CasOutcome, KvError> {
//!         Err(KvError::AccessDenied)
//!     }
//! }
//! ```
//!
//! [`remote`] serves any implementation over NATS and calls one served by another host.
//!
//! Batch operations have default implementations in terms of single-key calls; backends with native batch
//! commands override them.

pub use async_trait::async_trait;

pub mod durable;
pub mod remote;

mod messaging;

pub use messaging::{
    InboundMessage, MAX_SUBJECT_LEN, MessageStream, Messaging, MsgError, OutboundMessage, subject_matches,
    validate_queue, validate_subject, validate_subscription,
};

/// How many keys one [`KeyValue::list_keys`] page returns at most, unless a provider documents otherwise.
pub const LIST_PAGE_SIZE: usize = 1000;

/// An error from a key-value provider. The host maps it to `wasi:keyvalue/store.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The bucket does not exist and the provider does not create buckets on demand.
    #[error("no such store")]
    NoSuchStore,
    /// The caller may not perform this operation.
    #[error("access denied")]
    AccessDenied,
    /// The stored value is not a decimal 64-bit integer, so it cannot be incremented.
    #[error("value of key `{key}` is not a 64-bit integer")]
    NotAnInteger {
        /// The key whose value could not be parsed.
        key: String,
    },
    /// Incrementing would overflow a signed 64-bit integer.
    #[error("incrementing key `{key}` overflows a 64-bit integer")]
    Overflow {
        /// The key being incremented.
        key: String,
    },
    /// The write would take a bucket over one of the provider's quotas; nothing was written.
    #[error("quota exceeded: the write would take bucket `{bucket}` over its limit of {limit} {what}")]
    QuotaExceeded {
        /// The bucket.
        bucket: String,
        /// What is limited (`bytes`, `keys`).
        what: String,
        /// The limit.
        limit: u64,
    },
    /// The backend failed or could not be reached in time.
    #[error("{backend}: {message}")]
    Backend {
        /// Which backend failed (for example `redis`), so callers know where to look.
        backend: String,
        /// What went wrong, in the backend's terms.
        message: String,
    },
    /// Any other failure.
    #[error("{0}")]
    Other(String),
}

/// One page of keys from [`KeyValue::list_keys`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys of this page.
    pub keys: Vec<String>,
    /// Pass this to the next call to continue; `None` when this is the last page.
    pub cursor: Option<String>,
}

/// The result of [`KeyValue::compare_and_swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// The value matched the expected one and was replaced.
    Swapped,
    /// Somebody changed the value first; `current` is what it is now, so the caller can retry from it.
    Conflict {
        /// The value at the time of the failed swap (`None`: the key does not exist).
        current: Option<Vec<u8>>,
    },
}

/// The `wasi:keyvalue` semantics a key-value provider implements.
///
/// A `bucket` is a namespace chosen by the link (its `bucket` config value, or the link's name): two buckets
/// never see each other's keys. Integers for [`KeyValue::increment`] are stored as decimal ASCII text (as Redis
/// does), so every backend agrees on the bytes.
///
/// Implementations must be safe under concurrency: `increment` and `compare_and_swap` are atomic.
#[async_trait]
pub trait KeyValue: Send + Sync + 'static {
    /// The value of `key`, or `None` if it does not exist.
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Sets `key` to `value`, replacing any previous value.
    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError>;
    /// Deletes `key`; deleting a missing key succeeds.
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError>;
    /// Whether `key` exists.
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError>;
    /// One page of keys, starting after `cursor` (from the start when `None`).
    async fn list_keys(&self, bucket: &str, cursor: Option<String>) -> Result<KeyPage, KvError>;
    /// Atomically adds `delta` to the integer at `key` (a missing key counts as 0) and returns the new value.
    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError>;
    /// Atomically sets `key` to `new` if its current value equals `expected` (`None`: the key must not exist).
    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<CasOutcome, KvError>;

    /// The values of `keys`, in order; missing keys give `None`.
    async fn get_many(&self, bucket: &str, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.get(bucket, &key).await?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// Sets every pair. Not atomic as a whole unless the provider says so.
    async fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        for (key, value) in pairs {
            self.set(bucket, &key, value).await?;
        }
        Ok(())
    }

    /// Deletes every key. Not atomic as a whole unless the provider says so.
    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        for key in keys {
            self.delete(bucket, &key).await?;
        }
        Ok(())
    }

    /// Whether the provider can serve calls now (e.g. its backend answers). Supervisors call this
    /// periodically; the default says healthy, for providers with nothing to check.
    async fn health(&self) -> Result<(), KvError> {
        Ok(())
    }
}

/// Parses a stored counter value (decimal ASCII; a missing key counts as 0). Shared by providers so every
/// backend accepts exactly the same bytes.
pub fn parse_counter(key: &str, value: Option<&[u8]>) -> Result<i64, KvError> {
    let Some(bytes) = value else { return Ok(0) };
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or_else(|| KvError::NotAnInteger { key: key.to_owned() })
}

/// The value a counter takes when `delta` is added to its stored `value` ([`parse_counter`]), or
/// [`KvError::Overflow`]. Shared by providers that increment in process, so they fail alike.
pub fn incremented(key: &str, value: Option<&[u8]>, delta: i64) -> Result<i64, KvError> {
    parse_counter(key, value)?.checked_add(delta).ok_or_else(|| KvError::Overflow { key: key.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(parse_counter("k", None), Ok(0));
        assert_eq!(parse_counter("k", Some(b"41")), Ok(41));
        assert_eq!(parse_counter("k", Some(b"-7")), Ok(-7));
        assert_eq!(parse_counter("k", Some(b"\x00\x01")), Err(KvError::NotAnInteger { key: "k".into() }));
        assert_eq!(incremented("k", Some(b"41"), 1), Ok(42));
        assert_eq!(incremented("k", None, -3), Ok(-3));
        assert_eq!(incremented("k", Some(b"9223372036854775807"), 1), Err(KvError::Overflow { key: "k".into() }));
    }
}
