//! `wasi:keyvalue` (store, atomics, batch) for actors, backed by whichever provider the actor's link names.
//!
//! `store.open(identifier)` looks `identifier` up in the invocation's [`LinkSet`](crate::LinkSet); without a
//! link the guest gets `error::access-denied`, and the host logs a warning naming the link that would grant it
//! (once per actor and name) and adds that link to the invocation's error if the actor then fails. Every later call on the bucket goes to the linked provider and
//! the link's bucket (namespace). Provider failures become WIT error values, never traps.

use std::sync::Arc;

use lattice_provider_sdk::{CasOutcome, KeyValue, KvError};
use wasmtime::component::Resource;

use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::links::KeyValueLink;
use crate::state::InvocationState;

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
        Ok(Ok(self.table.push(handle)?))
    }
}

impl store::HostBucket for InvocationState {
    async fn get(&mut self, bucket: Resource<BucketHandle>, key: String) -> Fallible<Option<Vec<u8>>> {
        let (provider, name) = self.bucket(&bucket)?;
        Ok(provider.get(&name, &key).await.map_err(to_wit))
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
        Ok(provider
            .list_keys(&name, cursor)
            .await
            .map(|page| store::KeyResponse { keys: page.keys, cursor: page.cursor })
            .map_err(to_wit))
    }

    async fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
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
        let cas = self.table.delete(cas)?;
        let outcome = cas.link.provider.compare_and_swap(&cas.link.bucket, &cas.key, cas.current.clone(), value).await;
        Ok(match outcome {
            Ok(CasOutcome::Swapped) => Ok(()),
            // Hand back a handle holding the value that won, so a retry starts from the current state.
            Ok(CasOutcome::Conflict { current }) => {
                let retry = self.table.push(CasHandle { current, ..cas })?;
                Err(atomics::CasError::CasFailed(retry))
            }
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
        Ok(Ok(self.table.push(CasHandle { link, key, current })?))
    }

    async fn current(&mut self, cas: Resource<CasHandle>) -> Fallible<Option<Vec<u8>>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
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
        Ok(provider
            .get_many(&name, keys)
            .await
            .map(|pairs| pairs.into_iter().map(|(k, v)| v.map(|v| (k, v))).collect())
            .map_err(to_wit))
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
