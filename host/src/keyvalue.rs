//! `wasi:keyvalue` (store, atomics, batch) for actors, backed by whichever provider the actor's link names.
//!
//! `store.open(identifier)` looks `identifier` up in the invocation's [`LinkSet`](crate::LinkSet); without a
//! link the guest gets `error::access-denied`, and the host logs a warning naming the link that would grant it
//! (once per actor and name) and adds that link to the invocation's error if the actor then fails. Every later call on the bucket goes to the linked provider and
//! the link's bucket (namespace). Provider failures become WIT error values, never traps.
//!
//! **Host memory.** What the guest makes the host hold takes from the invocation's one budget, shared with
//! messaging (`crate::budget::Budget`): open buckets and compare-and-swap handles count as resources
//! ([`MAX_RESOURCES`](crate::MAX_RESOURCES)), the values handles hold as bytes, and a result (of `get`,
//! `get-many`, `list-keys`) must fit in the bytes left while it is handed over. Past the budget a call returns
//! `error::other("host resource limit exceeded: …")` and the host keeps nothing of it. `get-many` reads each
//! distinct key once, [`GET_MANY_CHUNK`] keys at a time, and stops as soon as the result (repeated keys counted
//! each time) would not fit, so a key repeated N times is never copied N times past the budget.

use std::collections::HashMap;
use std::sync::Arc;

use lattice_provider_sdk::{CasOutcome, KeyValue, KvError};
use wasmtime::component::Resource;

use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::budget::HostResourceLimit;
use crate::links::KeyValueLink;
use crate::state::InvocationState;

/// Distinct keys `get-many` asks the provider for at once: what the host may hold beyond the budget before it
/// stops is one such chunk.
pub(crate) const GET_MANY_CHUNK: usize = 16;

type Fallible<T> = wasmtime::Result<Result<T, store::Error>>;

/// A bucket an actor opened: the provider and namespace its link resolved to.
pub struct BucketHandle {
    link: KeyValueLink,
}

/// A compare-and-swap handle: the value of `key` when it was created (or when the last swap failed).
pub struct CasHandle {
    link: KeyValueLink,
    key: String,
    current: Option<Vec<u8>>,
}

impl CasHandle {
    /// The bytes it is charged for in the invocation's budget: its key and the value it holds.
    fn footprint(&self) -> usize {
        self.key.len() + self.current.as_ref().map_or(0, Vec::len)
    }
}

/// A key-value call past the invocation's budget: the error value the guest gets.
fn over_budget(limit: HostResourceLimit) -> store::Error {
    store::Error::Other(limit.to_string())
}

fn to_wit(error: KvError) -> store::Error {
    match error {
        KvError::NoSuchStore => store::Error::NoSuchStore,
        KvError::AccessDenied => store::Error::AccessDenied,
        other => store::Error::Other(other.to_string()),
    }
}

impl InvocationState {
    fn bucket(&self, bucket: &Resource<BucketHandle>) -> wasmtime::Result<(Arc<dyn KeyValue>, Arc<str>)> {
        let handle = self.table.get(bucket)?;
        Ok((handle.link.provider.clone(), handle.link.bucket.clone()))
    }
}

impl store::Host for InvocationState {
    async fn open(&mut self, identifier: String) -> Fallible<Resource<BucketHandle>> {
        let Some(link) = self.links.keyvalue(&identifier) else {
            tracing::debug!(actor = %self.actor, %identifier, "store.open without a link: access denied");
            // Reported after the invocation (a warning once per name, and in its error if it fails). A name no
            // link could have (too long, control characters) is not named: it could only forge log lines.
            let linkable =
                identifier.len() <= lattice_core::link::MAX_NAME_LEN && !identifier.chars().any(char::is_control);
            if self.unlinked_store.is_none() && linkable {
                self.unlinked_store = Some(identifier);
            }
            return Ok(Err(store::Error::AccessDenied));
        };
        let handle = BucketHandle { link: link.clone() };
        if let Err(limit) = self.resources.take(1, 0) {
            return Ok(Err(over_budget(limit)));
        }
        Ok(Ok(self.table.push(handle)?))
    }
}

impl InvocationState {
    /// `result` if the bytes it makes the host hold fit in the budget, else the budget's error value.
    fn within_budget<T>(&self, result: Result<T, store::Error>, bytes: impl FnOnce(&T) -> usize) -> Fallible<T> {
        Ok(result.and_then(|value| self.resources.fits(bytes(&value)).map(|()| value).map_err(over_budget)))
    }

    /// Puts a compare-and-swap handle in the table, charged to the budget; `None` past it (nothing kept).
    fn push_cas(&mut self, handle: CasHandle) -> wasmtime::Result<Result<Resource<CasHandle>, HostResourceLimit>> {
        if let Err(limit) = self.resources.take(1, handle.footprint()) {
            return Ok(Err(limit));
        }
        Ok(Ok(self.table.push(handle)?))
    }

    fn delete_cas(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<CasHandle> {
        let handle = self.table.delete(cas)?;
        self.resources.release(1, handle.footprint());
        Ok(handle)
    }
}

impl store::HostBucket for InvocationState {
    async fn get(&mut self, bucket: Resource<BucketHandle>, key: String) -> Fallible<Option<Vec<u8>>> {
        let (provider, name) = self.bucket(&bucket)?;
        let value = provider.get(&name, &key).await.map_err(to_wit);
        self.within_budget(value, |v| v.as_ref().map_or(0, Vec::len))
    }

    async fn set(&mut self, bucket: Resource<BucketHandle>, key: String, value: Vec<u8>) -> Fallible<()> {
        let (provider, name) = self.bucket(&bucket)?;
        Ok(provider.set(&name, &key, value).await.map_err(to_wit))
    }

    async fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> Fallible<()> {
        let (provider, name) = self.bucket(&bucket)?;
        Ok(provider.delete(&name, &key).await.map_err(to_wit))
    }

    async fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> Fallible<bool> {
        let (provider, name) = self.bucket(&bucket)?;
        Ok(provider.exists(&name, &key).await.map_err(to_wit))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> Fallible<store::KeyResponse> {
        let (provider, name) = self.bucket(&bucket)?;
        let page = provider
            .list_keys(&name, cursor)
            .await
            .map(|page| store::KeyResponse { keys: page.keys, cursor: page.cursor })
            .map_err(to_wit);
        self.within_budget(page, |page| {
            let keys: usize = page.keys.iter().map(|k| k.len() + size_of::<String>()).sum();
            keys + page.cursor.as_ref().map_or(0, String::len)
        })
    }

    async fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        self.resources.release(1, 0);
        Ok(())
    }
}

impl atomics::Host for InvocationState {
    async fn increment(&mut self, bucket: Resource<BucketHandle>, key: String, delta: i64) -> Fallible<i64> {
        let (provider, name) = self.bucket(&bucket)?;
        Ok(provider.increment(&name, &key, delta).await.map_err(to_wit))
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let CasHandle { link, key, current } = self.delete_cas(cas)?;
        let outcome = link.provider.compare_and_swap(&link.bucket, &key, current, value).await;
        Ok(match outcome {
            Ok(CasOutcome::Swapped) => Ok(()),
            // Hand back a handle holding the value that won, so a retry starts from the current state.
            Ok(CasOutcome::Conflict { current }) => match self.push_cas(CasHandle { link, key, current })? {
                Ok(retry) => Err(atomics::CasError::CasFailed(retry)),
                Err(limit) => Err(atomics::CasError::StoreError(over_budget(limit))),
            },
            Err(error) => Err(atomics::CasError::StoreError(to_wit(error))),
        })
    }
}

impl atomics::HostCas for InvocationState {
    async fn new(&mut self, bucket: Resource<BucketHandle>, key: String) -> Fallible<Resource<CasHandle>> {
        let link = self.table.get(&bucket)?.link.clone();
        let current = match link.provider.get(&link.bucket, &key).await {
            Ok(current) => current,
            Err(error) => return Ok(Err(to_wit(error))),
        };
        Ok(self.push_cas(CasHandle { link, key, current })?.map_err(over_budget))
    }

    async fn current(&mut self, cas: Resource<CasHandle>) -> Fallible<Option<Vec<u8>>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.delete_cas(cas)?;
        Ok(())
    }
}

impl batch::Host for InvocationState {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Fallible<Vec<Option<(String, Vec<u8>)>>> {
        let (provider, name) = self.bucket(&bucket)?;
        // Each distinct key once, with how often it was asked for; `order` maps every asked key to its slot.
        let mut slots: HashMap<&str, usize> = HashMap::new();
        let (mut distinct, mut repeats, mut order) = (Vec::new(), Vec::new(), Vec::with_capacity(keys.len()));
        for key in &keys {
            let slot = *slots.entry(key.as_str()).or_insert_with(|| {
                distinct.push(key.clone());
                repeats.push(0usize);
                distinct.len() - 1
            });
            repeats[slot] += 1;
            order.push(slot);
        }
        let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(distinct.len());
        let mut total = 0usize;
        for chunk in distinct.chunks(GET_MANY_CHUNK) {
            let pairs = match provider.get_many(&name, chunk.to_vec()).await {
                Ok(pairs) => pairs,
                Err(error) => return Ok(Err(to_wit(error))),
            };
            // One value per key asked, in order (a provider answering fewer: the rest are missing).
            for value in pairs.into_iter().map(|(_, v)| v).chain(std::iter::repeat(None)).take(chunk.len()) {
                let slot = values.len();
                let size = value.as_ref().map_or(0, |v| v.len() + distinct[slot].len());
                total = total.saturating_add(size.saturating_mul(repeats[slot]));
                if let Err(limit) = self.resources.fits(total) {
                    return Ok(Err(over_budget(limit)));
                }
                values.push(value);
            }
        }
        Ok(Ok(order.into_iter().map(|slot| values[slot].clone().map(|v| (distinct[slot].clone(), v))).collect()))
    }

    async fn set_many(&mut self, bucket: Resource<BucketHandle>, key_values: Vec<(String, Vec<u8>)>) -> Fallible<()> {
        let (provider, name) = self.bucket(&bucket)?;
        Ok(provider.set_many(&name, key_values).await.map_err(to_wit))
    }

    async fn delete_many(&mut self, bucket: Resource<BucketHandle>, keys: Vec<String>) -> Fallible<()> {
        let (provider, name) = self.bucket(&bucket)?;
        Ok(provider.delete_many(&name, keys).await.map_err(to_wit))
    }
}
