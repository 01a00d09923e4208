//! Supervision of provider instances started on this host (`provider.start`).
//!
//! Each instance is health-checked every `interval` ([`KeyValue::health`]; Redis answers a PING). After
//! `failures` failed checks in a row the instance is rebuilt from its kind and config, after an exponential
//! backoff, and swapped in: the runtime's registry, the instance served to the lattice, and the links of every
//! actor on the host (so the next invocation uses the new instance). More than `intensity` restarts within
//! `window` and the supervisor gives up: the instance stays (calls get its errors) and `provider.failed` is
//! published. A supervisor that gave up waits for a [`Restart`] (the `provider.restart` verb): it rebuilds
//! the instance and supervises it again with a fresh intensity window. Events: `provider.restarting`,
//! `provider.recovered`, `provider.failed`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lattice_core::subject::Name;
use lattice_core::wire::EventData;
use lattice_provider_sdk::KeyValue;
use tokio::sync::{mpsc, oneshot};

use super::Shared;

/// A request to restart a supervised instance, answered on `done`: `Ok` with the rebuilt instance's first
/// health-check error, if any.
pub(crate) struct Restart {
    pub(crate) done: oneshot::Sender<Result<Option<String>, RestartError>>,
}

/// Why a restart was not done.
#[derive(Debug)]
pub(crate) enum RestartError {
    /// The supervisor has not given up: it is checking (and, if needed, restarting) the instance itself.
    NotFailed,
    /// The instance could not be rebuilt or installed.
    Rebuild(String),
}

/// How provider instances are supervised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervision {
    /// Time between health checks.
    pub interval: Duration,
    /// Failed checks in a row that trigger a restart.
    pub failures: u32,
    /// Delay before the first restart; doubles on each restart up to `max_backoff`.
    pub backoff: Duration,
    /// Longest delay before a restart.
    pub max_backoff: Duration,
    /// Restarts allowed within `window` before the instance is marked failed.
    pub intensity: u32,
    /// The window `intensity` counts restarts in.
    pub window: Duration,
}

impl Default for Supervision {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            failures: 3,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            intensity: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// Swaps `provider` in under `name`: registry, lattice serving, and every running actor's links.
pub(crate) async fn install(shared: &Shared, name: &Name, provider: Arc<dyn KeyValue>) -> Result<(), String> {
    let serving = lattice_provider_sdk::remote::serve_keyvalue_checked(
        shared.client.clone(),
        shared.subjects.provider(name, "keyvalue"),
        provider.clone(),
        super::providers::caller_check(shared),
    )
    .await
    .map_err(|e| format!("cannot serve provider `{name}`: {e}"))?;
    shared.table.keep_serving(name.to_string(), serving).await.map_err(|e| e.to_string())?;
    shared.runtime.insert_keyvalue_provider(name.to_string(), provider);
    shared.table.relink_all().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Builds a fresh instance of `kind` from `config` and installs it under `name`.
async fn rebuild(
    shared: &Shared,
    name: &Name,
    kind: &str,
    config: &BTreeMap<String, String>,
) -> Result<Arc<dyn KeyValue>, String> {
    let fresh = super::providers::build_keyvalue(kind, config, shared.kv_quota)
        .await
        .map_err(|e| format!("cannot rebuild: {e}"))?;
    install(shared, name, fresh.clone()).await.map_err(|e| format!("cannot install the rebuilt instance: {e}"))?;
    Ok(fresh)
}

/// Supervises instance `name` until `stop` (a child of the host's stop token, cancelled by `provider.stop`). `requests` carries `provider.restart` requests: refused
/// while supervising, honoured once the supervisor gave up.
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    name: Name,
    kind: String,
    config: BTreeMap<String, String>,
    mut current: Arc<dyn KeyValue>,
    mut requests: mpsc::Receiver<Restart>,
    stop: tokio_util::sync::CancellationToken,
) {
    let policy = shared.supervision.clone();
    let mut failed_checks = 0u32;
    let mut unhealthy = false;
    let mut backoff = policy.backoff;
    let mut restarts: Vec<Instant> = Vec::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(policy.interval) => {}
            Some(request) = requests.recv() => {
                let _ = request.done.send(Err(RestartError::NotFailed));
                continue;
            }
        }
        let error = match current.health().await {
            Ok(()) => {
                if unhealthy {
                    tracing::info!(provider = %name, "provider healthy again");
                    shared.events.publish(EventData::ProviderRecovered { name: name.to_string() }).await;
                }
                unhealthy = false;
                failed_checks = 0;
                backoff = policy.backoff;
                continue;
            }
            Err(error) => error,
        };
        unhealthy = true;
        failed_checks += 1;
        tracing::warn!(provider = %name, failed_checks, %error, "provider health check failed");
        if failed_checks < policy.failures {
            continue;
        }
        restarts.retain(|at| at.elapsed() < policy.window);
        if restarts.len() >= policy.intensity as usize {
            tracing::error!(provider = %name, restarts = restarts.len(), "provider restarted too often: giving up");
            shared
                .events
                .publish(EventData::ProviderFailed { name: name.to_string(), reason: error.to_string() })
                .await;
            // Given up: the instance stays (calls get its errors) until an operator asks for a restart.
            let Some(fresh) = wait_for_restart(&shared, &name, &kind, &config, &mut requests).await else {
                return;
            };
            current = fresh.0;
            unhealthy = fresh.1;
            restarts.clear();
            failed_checks = 0;
            backoff = policy.backoff;
            continue;
        }
        restarts.push(Instant::now());
        let attempt = u32::try_from(restarts.len()).unwrap_or(u32::MAX);
        shared
            .events
            .publish(EventData::ProviderRestarting { name: name.to_string(), attempt, reason: error.to_string() })
            .await;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(policy.max_backoff);
        match rebuild(&shared, &name, &kind, &config).await {
            Ok(fresh) => {
                tracing::info!(provider = %name, attempt, "provider restarted");
                current = fresh;
            }
            Err(error) => tracing::warn!(provider = %name, %error, "cannot restart the provider"),
        }
        failed_checks = 0;
    }
}

/// Waits, after the supervisor gave up, for a restart request that succeeds; `None` when the host stops.
/// Returns the rebuilt instance and whether its first health check failed.
async fn wait_for_restart(
    shared: &Shared,
    name: &Name,
    kind: &str,
    config: &BTreeMap<String, String>,
    requests: &mut mpsc::Receiver<Restart>,
) -> Option<(Arc<dyn KeyValue>, bool)> {
    let stop = shared.stop_token();
    loop {
        let request = tokio::select! {
            () = stop.cancelled() => return None,
            request = requests.recv() => request?,
        };
        tracing::info!(provider = %name, "provider restart requested");
        shared
            .events
            .publish(EventData::ProviderRestarting {
                name: name.to_string(),
                attempt: 1,
                reason: "restart requested after the supervisor gave up".into(),
            })
            .await;
        match rebuild(shared, name, kind, config).await {
            Ok(fresh) => {
                let health = fresh.health().await.err().map(|e| e.to_string());
                if health.is_none() {
                    tracing::info!(provider = %name, "provider restarted and healthy");
                    shared.events.publish(EventData::ProviderRecovered { name: name.to_string() }).await;
                }
                let unhealthy = health.is_some();
                let _ = request.done.send(Ok(health));
                return Some((fresh, unhealthy));
            }
            Err(error) => {
                tracing::warn!(provider = %name, %error, "cannot restart the provider");
                let _ = request.done.send(Err(RestartError::Rebuild(error)));
            }
        }
    }
}
