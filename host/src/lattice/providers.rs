//! Built-in provider kinds a host can start on request (`provider.start`): `inmemory` (with the host's
//! per-bucket quota), and `redis` (config `url`, `prefix`, `timeout`; see `lattice-keyvalue-redis`).
//!
//! Which names a started instance may not take ([`BUILTIN_PROVIDERS`]) and which config values are backend
//! URLs checked against the host's allow-list ([`backend_urls`]) are kept here, next to the kinds, and who may
//! call the instances this host serves over the lattice ([`caller_check`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use lattice_keyvalue_inmemory::{InMemoryKeyValue, Quota};
use lattice_keyvalue_redis::{RedisConfig, RedisKeyValue};
use lattice_provider_sdk::KeyValue;
use lattice_provider_sdk::remote::CallerCheck;

/// Who may call a provider instance this host serves on `lattice.<l>.provider.<name>.keyvalue`: with trusted
/// operators, only hosts with a valid host signature and credential for this lattice (refusals are reported as
/// `host.refused`); otherwise anyone (`None`).
pub(crate) fn caller_check(shared: &super::Shared) -> Option<CallerCheck> {
    if !shared.hosts.enforced() {
        return None;
    }
    let (events, limit) = (shared.events.clone(), shared.reports.clone());
    Some(CallerCheck {
        verifier: shared.hosts.clone(),
        on_refused: Arc::new(move |subject, reason| super::report_refused(&events, &limit, subject, None, reason)),
    })
}

/// The key-value provider kinds this host can create.
pub const KEYVALUE_KINDS: &[&str] = &["inmemory", "redis"];

/// Names of the providers built into every host; a started instance may not shadow them.
pub const BUILTIN_PROVIDERS: &[&str] = &[crate::INMEMORY_PROVIDER, super::NATS_MESSAGING_PROVIDER];

/// The config keys of each kind whose value is a backend URL the host connects to.
const URL_KEYS: &[(&str, &str)] = &[("redis", "url")];

/// The backend URLs in `config` of a provider of `kind`, as `(config key, url)`: each must be allowed by the
/// host's `--provider-allow` patterns before the instance is built.
pub(crate) fn backend_urls<'a>(
    kind: &'a str,
    config: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = (&'static str, &'a str)> + 'a {
    URL_KEYS
        .iter()
        .filter(move |(k, _)| *k == kind)
        .filter_map(move |(_, key)| config.get(*key).map(|url| (*key, url.as_str())))
        // An empty value is no URL: the kind itself says the setting is missing.
        .filter(|(_, url)| !url.trim().is_empty())
}

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
