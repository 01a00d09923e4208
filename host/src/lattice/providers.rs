//! Built-in provider kinds a host can start on request (`provider.start`).

use std::collections::BTreeMap;
use std::sync::Arc;

use lattice_keyvalue_inmemory::InMemoryKeyValue;
use lattice_provider_sdk::KeyValue;

/// The key-value provider kinds this host can create.
pub const KEYVALUE_KINDS: &[&str] = &["inmemory"];

/// Creates a key-value provider of `kind` from `config`, or says why not.
pub(crate) async fn build_keyvalue(
    kind: &str,
    config: &BTreeMap<String, String>,
) -> Result<Arc<dyn KeyValue>, String> {
    match kind {
        "inmemory" => {
            if let Some(key) = config.keys().next() {
                return Err(format!("provider kind `inmemory` takes no config (got `{key}`)"));
            }
            Ok(Arc::new(InMemoryKeyValue::new()))
        }
        other => Err(format!("unknown provider kind `{other}` (available: {})", KEYVALUE_KINDS.join(", "))),
    }
}
