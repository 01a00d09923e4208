//! Redis `wasi:keyvalue` provider.
//!
//! [`RedisKeyValue`] implements [`KeyValue`] against a Redis server (5.0 or newer; tested with 7) through the
//! `redis` crate's [`ConnectionManager`]: one multiplexed connection shared by every caller, re-established by
//! itself after Redis goes away.
//!
//! # Keys
//!
//! Every key lives under `{prefix}:{bucket}:{key}`, so two links with a different bucket, or two providers with a
//! different prefix (default `lattice`), never see each other's keys on a shared Redis. `%` and `:` in the prefix
//! and the bucket are percent-encoded (`%25`, `%3A`) so the mapping stays unambiguous (`prefix a, bucket b:c` and
//! `prefix a:b, bucket c` are different keys); the key itself is used verbatim. With ordinary names the layout is
//! exactly `lattice:orders:o-1`.
//!
//! # Atomicity
//!
//! Nothing is read-modify-written in the host:
//! - [`increment`](KeyValue::increment) is `INCRBY`. Redis stores integers as decimal text, the same bytes as
//!   [`lattice_provider_sdk::parse_counter`]; Redis's parser is a little stricter (no surrounding whitespace, no
//!   leading `+`), and a value it refuses is [`KvError::NotAnInteger`]. Overflow is [`KvError::Overflow`].
//! - [`compare_and_swap`](KeyValue::compare_and_swap) is one Lua script (`EVALSHA`, loaded again by itself after
//!   a Redis restart) that compares the current value, or its absence, and sets the new one atomically.
//! - [`get_many`](KeyValue::get_many) is `MGET`; [`set_many`](KeyValue::set_many) is `MSET` and
//!   [`delete_many`](KeyValue::delete_many) one `DEL`, so both are atomic as a whole.
//!
//! # Listing
//!
//! [`list_keys`](KeyValue::list_keys) is `SCAN … MATCH {prefix}:{bucket}:*`; the page cursor is Redis's cursor
//! as decimal text (`None` once Redis returns 0). SCAN's guarantees apply: every key present for the whole
//! iteration is returned at least once, but a key **may be returned more than once** across pages (callers
//! should deduplicate), keys added or removed meanwhile may or may not appear, and order is unspecified. A page
//! holds about [`LIST_PAGE_SIZE`] keys — `COUNT` is only a hint to Redis, so a page can be slightly larger, or
//! smaller (even empty) while the cursor is still `Some`. Duplicates within one page are removed.
//!
//! # Failures and reconnection
//!
//! Every call is bounded by [`RedisConfig::timeout`]: when Redis is down or unresponsive a call fails promptly
//! with [`KvError::Backend`] (`backend: "redis"`, the message naming the command, the server address and the
//! Redis error or `timed out after …`), never hangs. [`RedisKeyValue::connect`] does no I/O, so a provider can be
//! created while Redis is down; it connects on first use. After a lost connection the manager reconnects in the
//! background (a few quick retries per attempt, a new attempt on the next call after that), so calls succeed
//! again once Redis is back, with the same provider. A connection whose setup Redis refused (wrong password,
//! `SELECT` of the URL's database) is retried the same way on later calls, so fixing the server side heals the
//! provider too. A Redis restart without persistence loses the data, of course. Redis Cluster is not supported
//! (batch commands span hash slots).
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::time::Duration;
//!
//! use lattice_keyvalue_redis::{RedisConfig, RedisKeyValue};
//! use lattice_provider_sdk::{CasOutcome, KeyValue, KvError};
//!
//! # async fn example() -> Result<(), KvError> {
//! // From a link's config (`url` is required; `prefix` and `timeout` optional)...
//! let link: BTreeMap<String, String> =
//!     [("url".to_owned(), "redis://127.0.0.1:6379".to_owned()), ("timeout".to_owned(), "500ms".to_owned())].into();
//! let config = RedisConfig::from_link_config(&link)?;
//! // ...or directly.
//! let config = RedisConfig { prefix: "shop".into(), timeout: Duration::from_secs(1), ..RedisConfig::new(config.url) };
//!
//! let kv = RedisKeyValue::connect(config)?; // no I/O yet: connects on first use
//! kv.set("orders", "o-1", b"pending".to_vec()).await?; // Redis key `shop:orders:o-1`
//! assert_eq!(kv.increment("orders", "count", 1).await?, 1);
//! let outcome = kv.compare_and_swap("orders", "o-1", Some(b"pending".to_vec()), b"paid".to_vec()).await?;
//! assert_eq!(outcome, CasOutcome::Swapped);
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use lattice_provider_sdk::{CasOutcome, KeyPage, KeyValue, KvError, LIST_PAGE_SIZE, async_trait};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, RedisResult, Script};

/// The [`KvError::Backend`] name of every error from this provider.
pub const BACKEND: &str = "redis";
/// The default [`RedisConfig::prefix`].
pub const DEFAULT_PREFIX: &str = "lattice";
/// The default [`RedisConfig::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection attempts after the first one, each time the manager (re)connects; then the call fails and the next
/// call starts a new round. Keeps a call against a down Redis short and informative ("connection refused").
const CONNECT_RETRIES: usize = 2;
/// First delay between connection attempts (doubling, with jitter).
const CONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
/// Longest delay between connection attempts.
const CONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// At most this many `SCAN` round trips make one [`KeyValue::list_keys`] page.
const MAX_SCAN_ROUNDS: usize = 16;

/// Atomic compare-and-swap.
///
/// `KEYS[1]`: the key. `ARGV[1]`: `1` if a value is expected, `0` if the key must be absent. `ARGV[2]`: the
/// expected value (ignored for `0`). `ARGV[3]`: the new value. Returns `{1, nil}` when swapped, else
/// `{0, current}` (`current` nil when the key does not exist). Lua strings are byte strings, so binary values
/// compare exactly.
const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
local matches
if ARGV[1] == '1' then
  matches = (current ~= false) and (current == ARGV[2])
else
  matches = (current == false)
end
if matches then
  redis.call('SET', KEYS[1], ARGV[3])
  return {1, false}
end
return {0, current}
";

/// How to reach Redis and lay out keys.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// A `redis://` (or `rediss://`, `redis+unix://`) URL, e.g. `redis://:password@host:6379/0`.
    pub url: String,
    /// Namespace for every key: keys are `{prefix}:{bucket}:{key}`. Default [`DEFAULT_PREFIX`].
    pub prefix: String,
    /// Upper bound on each call, connecting included. Default [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
}

impl RedisConfig {
    /// A config for `url` with the default prefix and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), prefix: DEFAULT_PREFIX.to_owned(), timeout: DEFAULT_TIMEOUT }
    }

    /// Reads a link's config: `url` (required), `prefix` (default `lattice`) and `timeout` (per call; a
    /// humantime duration such as `500ms` or `2s`, or a bare number of milliseconds; default 2 s). Other entries
    /// (such as `bucket`, which the host reads) are ignored.
    pub fn from_link_config(config: &BTreeMap<String, String>) -> Result<Self, KvError> {
        let url = config.get("url").map(|url| url.trim()).filter(|url| !url.is_empty()).ok_or_else(|| {
            KvError::Other("redis provider: link config has no `url` (e.g. url=redis://127.0.0.1:6379)".to_owned())
        })?;
        let mut out = Self::new(url);
        if let Some(prefix) = config.get("prefix") {
            out.prefix = prefix.clone();
        }
        if let Some(timeout) = config.get("timeout") {
            out.timeout = parse_timeout(timeout)?;
        }
        Ok(out)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn parse_timeout(text: &str) -> Result<Duration, KvError> {
    let text = text.trim();
    let parsed = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().map(Duration::from_millis).map_err(|e| e.to_string())
    } else {
        humantime::parse_duration(text).map_err(|e| e.to_string())
    };
    match parsed {
        Ok(timeout) if !timeout.is_zero() => Ok(timeout),
        Ok(_) => Err(KvError::Other("redis provider: `timeout` must be greater than zero".to_owned())),
        Err(e) => Err(KvError::Other(format!(
            "redis provider: invalid `timeout` `{text}` (expected e.g. 500ms, 2s, or milliseconds): {e}"
        ))),
    }
}

/// `url` with any password (or whole user-info part) replaced, for logs and errors.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Percent-encodes `%` and `:` so a prefix or bucket never contains the separator.
fn escape_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for c in segment.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes Redis glob metacharacters so `text` matches literally in `SCAN MATCH`.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Redis-backed key-value provider; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct RedisKeyValue {
    manager: Arc<Manager>,
    /// `{escaped prefix}:`.
    prefix: String,
    timeout: Duration,
    /// `host:port` (or socket path) for error messages; never the URL, which may hold a password.
    addr: String,
    cas: Script,
}

/// The connection manager, replaced by a fresh one when it cannot recover by itself.
///
/// `ConnectionManager` reconnects after I/O errors, but a connection whose *setup* failed for another reason
/// (Redis refused the password, or `SELECT` of the URL's database) stays failed for good. We then swap in a new
/// lazily connecting manager, so fixing the server side (e.g. rotating Redis's password to the configured one)
/// heals the provider without recreating it.
struct Manager {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// The manager and its generation, so concurrent failures replace it once.
    current: RwLock<(u64, ConnectionManager)>,
}

impl Manager {
    fn get(&self) -> (u64, ConnectionManager) {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces generation `failed` with a fresh manager (unless another call already did).
    fn renew(&self, failed: u64) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.0 != failed {
            return;
        }
        // Creating a lazy manager does no I/O; if it fails the old one is kept and the next failure retries.
        if let Ok(fresh) = ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            *current = (failed.wrapping_add(1), fresh);
        }
    }
}

/// Whether `e` is a failed connection setup that `ConnectionManager` does not recover from by itself.
fn is_stuck_setup_failure(e: &RedisError) -> bool {
    if e.kind() == ErrorKind::AuthenticationFailed {
        return true;
    }
    let text = e.to_string();
    text.contains("refused to authenticate") || text.contains("refused to switch database")
}

impl fmt::Debug for RedisKeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyValue")
            .field("addr", &self.addr)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisKeyValue {
    /// A provider for `config`. Does no I/O and never blocks: the connection is made on first use (bounded by
    /// the timeout like every call) and re-made after it is lost, so this succeeds while Redis is down. Fails
    /// only on an invalid URL or timeout, or when called outside a Tokio runtime (the connection's background
    /// tasks need one; the runtime also needs its time driver, as every call is bounded by a timer).
    pub fn connect(config: RedisConfig) -> Result<Self, KvError> {
        if config.timeout.is_zero() {
            return Err(KvError::Other("redis provider: `timeout` must be greater than zero".to_owned()));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(KvError::Other("redis provider: connect must be called within a Tokio runtime".to_owned()));
        }
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| KvError::Other(format!("redis provider: invalid url `{}`: {e}", redact_url(&config.url))))?;
        let addr = client.get_connection_info().addr().to_string();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(CONNECT_RETRIES)
            .set_min_delay(CONNECT_MIN_DELAY)
            .set_max_delay(CONNECT_MAX_DELAY);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
            .map_err(|e| backend(format!("creating the connection manager for {addr}: {e}")))?;
        Ok(Self {
            manager: Arc::new(Manager { client, config: manager_config, current: RwLock::new((0, conn)) }),
            prefix: format!("{}:", escape_segment(&config.prefix)),
            timeout: config.timeout,
            addr,
            cas: Script::new(CAS_SCRIPT),
        })
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The Redis key that holds `key` of `bucket`: `{prefix}:{bucket}:{key}` (see the [crate docs](crate)).
    pub fn redis_key(&self, bucket: &str, key: &str) -> String {
        let mut out = self.bucket_prefix(bucket);
        out.push_str(key);
        out
    }

    /// Checks that Redis answers `PING` within the timeout (for health checks).
    pub async fn ping(&self) -> Result<(), KvError> {
        self.bounded("PING", |mut conn| async move { redis::cmd("PING").query_async::<()>(&mut conn).await }).await
    }

    fn bucket_prefix(&self, bucket: &str) -> String {
        format!("{}{}:", self.prefix, escape_segment(bucket))
    }

    /// Runs `call` on the connection within the timeout, mapping failures to [`KvError::Backend`].
    async fn bounded<T, F>(&self, op: &str, call: impl FnOnce(ConnectionManager) -> F) -> Result<T, KvError>
    where
        F: Future<Output = RedisResult<T>>,
    {
        self.bounded_with(op, call, |_| None).await
    }

    /// As [`bounded`](Self::bounded), but `special` may turn a Redis error into a more specific [`KvError`].
    async fn bounded_with<T, F>(
        &self,
        op: &str,
        call: impl FnOnce(ConnectionManager) -> F,
        special: impl FnOnce(&RedisError) -> Option<KvError>,
    ) -> Result<T, KvError>
    where
        F: Future<Output = RedisResult<T>>,
    {
        let (generation, conn) = self.manager.get();
        match tokio::time::timeout(self.timeout, call(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if is_stuck_setup_failure(&e) {
                    self.manager.renew(generation);
                }
                Err(special(&e).unwrap_or_else(|| backend(format!("{op} on {}: {e}", self.addr))))
            }
            Err(_) => Err(backend(format!(
                "{op} on {}: no answer (timed out after {})",
                self.addr,
                humantime::format_duration(self.timeout)
            ))),
        }
    }
}

fn backend(message: String) -> KvError {
    KvError::Backend { backend: BACKEND.to_owned(), message }
}

/// Whether a Redis error reply has this code (`ERR`, `WRONGTYPE`…) and, if given, a detail containing `text`.
fn is_reply(e: &RedisError, code: &str, text: Option<&str>) -> bool {
    e.code() == Some(code) && text.is_none_or(|text| e.detail().is_some_and(|detail| detail.contains(text)))
}

#[async_trait]
impl KeyValue for RedisKeyValue {
    async fn health(&self) -> Result<(), KvError> {
        self.ping().await
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let key = self.redis_key(bucket, key);
        self.bounded("GET", |mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await }).await
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        let key = self.redis_key(bucket, key);
        self.bounded(
            "SET",
            |mut conn| async move { redis::cmd("SET").arg(key).arg(value).query_async(&mut conn).await },
        )
        .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        let key = self.redis_key(bucket, key);
        self.bounded("DEL", |mut conn| async move { redis::cmd("DEL").arg(key).query_async(&mut conn).await }).await
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        let key = self.redis_key(bucket, key);
        self.bounded("EXISTS", |mut conn| async move { redis::cmd("EXISTS").arg(key).query_async(&mut conn).await })
            .await
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<String>) -> Result<KeyPage, KvError> {
        let start = match cursor.as_deref() {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                KvError::Other(format!(
                    "redis provider: invalid list_keys cursor `{text}` (expected the cursor of a previous page)"
                ))
            })?,
        };
        let bucket_prefix = self.bucket_prefix(bucket);
        let pattern = format!("{}*", escape_glob(&bucket_prefix));
        // Stop early enough to return what we have rather than time out on a huge keyspace.
        let budget = self.timeout / 2;
        self.bounded("SCAN", |mut conn| async move {
            let started = tokio::time::Instant::now();
            let mut cursor = start;
            let mut seen = HashSet::new();
            let mut keys = Vec::new();
            for _ in 0..MAX_SCAN_ROUNDS {
                let count = LIST_PAGE_SIZE.saturating_sub(keys.len()).max(10);
                let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut conn)
                    .await?;
                for raw in batch {
                    // Keys written through this provider are UTF-8; anything else was not, and cannot be named
                    // through the interface anyway.
                    let Ok(full) = String::from_utf8(raw) else { continue };
                    if let Some(key) = full.strip_prefix(&bucket_prefix)
                        && seen.insert(key.to_owned())
                    {
                        keys.push(key.to_owned());
                    }
                }
                cursor = next;
                if cursor == 0 || keys.len() >= LIST_PAGE_SIZE || started.elapsed() >= budget {
                    break;
                }
            }
            Ok(KeyPage { keys, cursor: (cursor != 0).then(|| cursor.to_string()) })
        })
        .await
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let redis_key = self.redis_key(bucket, key);
        self.bounded_with(
            "INCRBY",
            |mut conn| async move { redis::cmd("INCRBY").arg(redis_key).arg(delta).query_async(&mut conn).await },
            |e| {
                if is_reply(e, "ERR", Some("not an integer")) || is_reply(e, "WRONGTYPE", None) {
                    Some(KvError::NotAnInteger { key: key.to_owned() })
                } else if is_reply(e, "ERR", Some("overflow")) {
                    Some(KvError::Overflow { key: key.to_owned() })
                } else {
                    None
                }
            },
        )
        .await
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<CasOutcome, KvError> {
        let mut invocation = self.cas.key(self.redis_key(bucket, key));
        match expected {
            Some(expected) => invocation.arg("1").arg(expected),
            None => invocation.arg("0").arg(""),
        };
        invocation.arg(new);
        let (swapped, current): (i64, Option<Vec<u8>>) = self
            .bounded("compare-and-swap script", |mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(if swapped == 1 { CasOutcome::Swapped } else { CasOutcome::Conflict { current } })
    }

    async fn get_many(&self, bucket: &str, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for key in &keys {
            cmd.arg(self.redis_key(bucket, key));
        }
        let values: Vec<Option<Vec<u8>>> =
            self.bounded("MGET", |mut conn| async move { cmd.query_async(&mut conn).await }).await?;
        if values.len() != keys.len() {
            return Err(backend(format!(
                "MGET on {}: asked for {} keys, got {} values",
                self.addr,
                keys.len(),
                values.len()
            )));
        }
        Ok(keys.into_iter().zip(values).collect())
    }

    async fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("MSET");
        for (key, value) in pairs {
            cmd.arg(self.redis_key(bucket, &key)).arg(value);
        }
        self.bounded("MSET", |mut conn| async move { cmd.query_async(&mut conn).await }).await
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("DEL");
        for key in &keys {
            cmd.arg(self.redis_key(bucket, key));
        }
        self.bounded("DEL", |mut conn| async move { cmd.query_async(&mut conn).await }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn link_config_reads_url_prefix_and_timeout() {
        let config =
            RedisConfig::from_link_config(&link(&[("url", "redis://h:1"), ("bucket", "ignored")])).expect("defaults");
        assert_eq!(config, RedisConfig::new("redis://h:1"));
        assert_eq!((config.prefix.as_str(), config.timeout), (DEFAULT_PREFIX, DEFAULT_TIMEOUT));

        let config =
            RedisConfig::from_link_config(&link(&[("url", "redis://h:1"), ("prefix", "p"), ("timeout", "750ms")]))
                .expect("humantime");
        assert_eq!((config.prefix.as_str(), config.timeout), ("p", Duration::from_millis(750)));
        let config =
            RedisConfig::from_link_config(&link(&[("url", "redis://h:1"), ("timeout", "1500")])).expect("milliseconds");
        assert_eq!(config.timeout, Duration::from_millis(1500));
    }

    #[test]
    fn link_config_errors_name_the_problem() {
        let err = RedisConfig::from_link_config(&link(&[("prefix", "p")])).expect_err("no url");
        assert!(err.to_string().contains("`url`"), "{err}");
        for bad in ["soon", "0", "0s", "-5"] {
            let err = RedisConfig::from_link_config(&link(&[("url", "redis://h:1"), ("timeout", bad)]))
                .expect_err("bad timeout");
            assert!(err.to_string().contains("timeout"), "{bad}: {err}");
        }
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let config = RedisConfig::new("redis://user:s3cret@host:6379/0");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("redis://***@host:6379/0"), "{debug}");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn segments_and_globs_are_escaped() {
        assert_eq!(escape_segment("a:b%c"), "a%3Ab%25c");
        assert_eq!(escape_segment("plain"), "plain");
        assert_eq!(escape_glob("p:a*b?[c]\\"), "p:a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn connect_needs_a_runtime_and_a_valid_url() {
        let err = RedisKeyValue::connect(RedisConfig::new("redis://127.0.0.1:1")).expect_err("no runtime");
        assert!(err.to_string().contains("Tokio runtime"), "{err}");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let err = RedisKeyValue::connect(RedisConfig::new("http://nope")).expect_err("bad url");
            assert!(err.to_string().contains("invalid url"), "{err}");
            let kv = RedisKeyValue::connect(RedisConfig::new("redis://:pw@127.0.0.1:1")).expect("lazy");
            assert_eq!(kv.redis_key("b:x", "k:y"), "lattice:b%3Ax:k:y");
            assert!(!format!("{kv:?}").contains("pw"));
        });
    }
}
