//! Built-in provider kinds a host can start on request (`provider.start`): `inmemory` (with the host's
//! per-bucket quota), and `redis` (config `url`, `prefix`, `timeout`; see `lattice-keyvalue-redis`).

use std::collections::BTreeMap;
use std::sync::Arc;

use lattice_keyvalue_inmemory::{InMemoryKeyValue, Quota};
use lattice_keyvalue_redis::{RedisConfig, RedisKeyValue};
use lattice_provider_sdk::KeyValue;

/// The key-value provider kinds this host can create.
pub const KEYVALUE_KINDS: &[&str] = &["inmemory", "redis"];

/// Creates a key-value provider of `kind` from `config`, or says why not.
/// `quota` applies to the buckets of an `inmemory` provider.
pub(crate) async fn build_keyvalue(
    kind: &str,
    config: &BTreeMap<String, String>,
    quota: Quota,
) -> Result<Arc<dyn KeyValue>, String> {
    match kind {
        "inmemory" => {
            if let Some(key) = config.keys().next() {
                return Err(format!("provider kind `inmemory` takes no config (got `{key}`)"));
            }
            Ok(Arc::new(InMemoryKeyValue::with_quota(quota)))
        }
        "redis" => {
            let config = RedisConfig::from_link_config(config).map_err(|e| format!("redis provider: {e}"))?;
            let provider = RedisKeyValue::connect(config).map_err(|e| format!("redis provider: {e}"))?;
            Ok(Arc::new(provider))
        }
        other => Err(format!("unknown provider kind `{other}` (available: {})", KEYVALUE_KINDS.join(", "))),
    }
}
