//! Apps as lattice state, in the state bucket `lattice_<l>`: the current record of each app under
//! `apps.<app>`, every revision under `history.<app>.<revision>`, and the leader's view of how it stands under
//! `status.<app>`. `lattice apply` writes records (see [`crate::LatticeClient::apply_app`]); the leader host
//! reconciles towards them and writes the status through the same [`AppStore`].

use async_nats::jetstream::kv;
use futures::StreamExt;
use lattice_core::subject::{Name, Subjects};
use lattice_core::wire::{self, AppRecord, AppStatus};

/// Why reading or writing app state failed (the message names the operation).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct AppStateError {
    what: String,
    message: String,
}

impl AppStateError {
    fn new(what: impl Into<String>, error: impl std::fmt::Display) -> Self {
        Self { what: what.into(), message: error.to_string() }
    }
}

/// The app records and statuses of one lattice.
#[derive(Clone)]
pub struct AppStore {
    kv: kv::Store,
    subjects: Subjects,
}

impl AppStore {
    pub fn new(kv: kv::Store, subjects: Subjects) -> Self {
        Self { kv, subjects }
    }

    /// The bucket, for watching.
    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    /// An app's current record and its key's revision in the bucket (for a compare-and-set).
    pub async fn current(&self, app: &Name) -> Result<Option<(AppRecord, u64)>, AppStateError> {
        let entry = self
            .kv
            .entry(self.subjects.app_key(app))
            .await
            .map_err(|e| AppStateError::new(format!("reading app `{app}`"), e))?;
        Ok(entry.filter(|e| e.operation == kv::Operation::Put).and_then(|e| {
            let record = wire::decode::<AppRecord>(&e.value).ok()?;
            Some((record, e.revision))
        }))
    }

    /// Keys under `prefix` (`apps.`, `history.<app>.`…), sorted.
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, AppStateError> {
        let mut keys = self.kv.keys().await.map_err(|e| AppStateError::new("listing the state bucket", e))?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| AppStateError::new("listing the state bucket", e))?;
            if key.starts_with(prefix) {
                out.push(key);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AppStateError> {
        let value = self.kv.get(key).await.map_err(|e| AppStateError::new(format!("reading `{key}`"), e))?;
        Ok(value.and_then(|v| wire::decode(&v).ok()))
    }

    /// Every app's current record, by name.
    pub async fn list(&self) -> Result<Vec<AppRecord>, AppStateError> {
        let mut out = Vec::new();
        for key in self.keys("apps.").await? {
            if let Some(record) = self.get::<AppRecord>(&key).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Every stored revision of `app`, oldest first.
    pub async fn history(&self, app: &Name) -> Result<Vec<AppRecord>, AppStateError> {
        let mut out = Vec::new();
        for key in self.keys(&format!("history.{app}.")).await? {
            if let Some(record) = self.get::<AppRecord>(&key).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Stores `record` as `app`'s current record, only if the key is still at `expected` (`None`: absent),
    /// and keeps it in the history.
    pub async fn put(&self, record: &AppRecord, expected: Option<u64>) -> Result<(), AppStateError> {
        let app = &record.spec.name;
        let bytes: bytes::Bytes = wire::encode(record).into();
        let what = format!("storing revision {} of app `{app}`", record.revision);
        self.kv
            .put(self.subjects.app_history_key(app, record.revision), bytes.clone())
            .await
            .map_err(|e| AppStateError::new(&what, e))?;
        let key = self.subjects.app_key(app);
        let conflict = |e: &dyn std::fmt::Display| {
            AppStateError::new(format!("{what}: another apply changed the app meanwhile, try again"), e)
        };
        match expected {
            Some(revision) => self.kv.update(key, bytes, revision).await.map(drop).map_err(|e| conflict(&e)),
            None => self.kv.create(key, bytes).await.map(drop).map_err(|e| conflict(&e)),
        }
    }

    /// Removes `app`'s record, history and status; false if it had no record.
    pub async fn delete(&self, app: &Name) -> Result<bool, AppStateError> {
        let existed = self.current(app).await?.is_some();
        let what = format!("deleting app `{app}`");
        for key in self.keys(&format!("history.{app}.")).await? {
            self.kv.purge(key).await.map_err(|e| AppStateError::new(&what, e))?;
        }
        self.kv.delete(self.subjects.app_key(app)).await.map_err(|e| AppStateError::new(&what, e))?;
        self.kv.purge(self.subjects.app_status_key(app)).await.map_err(|e| AppStateError::new(&what, e))?;
        Ok(existed)
    }

    /// The leader's last status of `app`.
    pub async fn status(&self, app: &Name) -> Result<Option<AppStatus>, AppStateError> {
        self.get(&self.subjects.app_status_key(app)).await
    }

    /// Writes `status` (the leader).
    pub async fn put_status(&self, status: &AppStatus) -> Result<(), AppStateError> {
        self.kv
            .put(self.subjects.app_status_key(&status.app), wire::encode(status).into())
            .await
            .map(drop)
            .map_err(|e| AppStateError::new(format!("writing the status of app `{}`", status.app), e))
    }

    /// Removes `app`'s status (the leader, once a deleted app is gone).
    pub async fn clear_status(&self, app: &Name) -> Result<(), AppStateError> {
        self.kv
            .purge(self.subjects.app_status_key(app))
            .await
            .map_err(|e| AppStateError::new(format!("removing the status of app `{app}`"), e))
    }
}
