//! A key-value provider in its own process, built only on `lattice-provider-sdk`.
//!
//! It implements `KeyValue` over a plain map and serves it to lattice `LATTICE_NAME` (default `default`) as
//! provider instance `PROVIDER_NAME` (default `standalone`) on the NATS server at `LATTICE_NATS` (default
//! `nats://127.0.0.1:4222`). Any host of the lattice can then link actors to it:
//!
//! ```sh
//! cargo run -p provider-standalone &
//! lattice link put kv-counter keyvalue default --provider standalone
//! ```
//!
//! It answers every caller (`serve_keyvalue_in` checks no host signature): run it only in a lattice that trusts
//! no operator, or where NATS permissions let only hosts request its subject. A provider that must answer only
//! hosts serves with `lattice_provider_sdk::remote::serve_keyvalue_checked` and a `CallerCheck` trusting the
//! lattice's operators (`docs/security.md` §11).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use lattice_core::subject::Name;
use lattice_provider_sdk::remote::serve_keyvalue_in;
use lattice_provider_sdk::{CasOutcome, KeyPage, KeyValue, KvError, async_trait, incremented};

/// The simplest correct provider: one map of `(bucket, key)` to bytes behind a mutex.
#[derive(Default)]
struct MapStore {
    map: Mutex<HashMap<(String, String), Vec<u8>>>,
}

impl MapStore {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<(String, String), Vec<u8>>) -> T) -> T {
        f(&mut self.map.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn k(bucket: &str, key: &str) -> (String, String) {
    (bucket.to_owned(), key.to_owned())
}

#[async_trait]
impl KeyValue for MapStore {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.with(|m| m.get(&k(bucket, key)).cloned()))
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.with(|m| m.insert(k(bucket, key), value));
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.with(|m| m.remove(&k(bucket, key)));
        Ok(())
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        Ok(self.with(|m| m.contains_key(&k(bucket, key))))
    }

    async fn list_keys(&self, bucket: &str, _cursor: Option<String>) -> Result<KeyPage, KvError> {
        let mut keys: Vec<String> =
            self.with(|m| m.keys().filter(|(b, _)| b == bucket).map(|(_, key)| key.clone()).collect());
        keys.sort();
        Ok(KeyPage { keys, cursor: None })
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.with(|m| {
            let next = incremented(key, m.get(&k(bucket, key)).map(Vec::as_slice), delta)?;
            m.insert(k(bucket, key), next.to_string().into_bytes());
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
        Ok(self.with(|m| {
            let current = m.get(&k(bucket, key)).cloned();
            if current == expected {
                m.insert(k(bucket, key), new);
                CasOutcome::Swapped
            } else {
                CasOutcome::Conflict { current }
            }
        }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let nats = env("LATTICE_NATS", "nats://127.0.0.1:4222");
    let lattice = Name::new(env("LATTICE_NAME", "default")).context("LATTICE_NAME")?;
    let provider = Name::new(env("PROVIDER_NAME", "standalone")).context("PROVIDER_NAME")?;
    let client = async_nats::connect(&nats).await.with_context(|| format!("cannot connect to NATS at {nats}"))?;
    let _serving = serve_keyvalue_in(client, &lattice, &provider, Arc::new(MapStore::default()))
        .await
        .context("cannot subscribe")?;
    eprintln!("serving key-value provider `{provider}` to lattice `{lattice}` on {nats}; Ctrl-C to stop");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}
