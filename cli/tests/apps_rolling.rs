//! A rolling update under load, in its own test binary so its 32 callers never share the machine with the
//! re-placement tests' 5 s deadlines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use lattice_test_harness::wait_for;

mod apps_support;
use apps_support::{Lattice, call_continuously, counter_manifest, kv_counter, replicas_in};

/// The kv-counter component with a custom section appended: the same behaviour under another digest.
fn another_version(dir: &Path) -> Result<PathBuf> {
    let mut bytes = std::fs::read(kv_counter())?;
    let name = b"lattice-test-version";
    let payload = b"2";
    let body_len = 1 + name.len() + payload.len();
    bytes.push(0);
    bytes.push(u8::try_from(body_len)?);
    bytes.push(u8::try_from(name.len())?);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    let path = dir.join("kv_counter_v2.wasm");
    std::fs::write(&path, bytes)?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_loses_no_call_at_32_in_flight() -> Result<()> {
    let mut lattice = Lattice::new("rolling").await?;
    lattice.spawn("h1", &["--label", "zone=a"])?;
    lattice.spawn("h2", &["--label", "zone=b"])?;
    lattice.ready(2).await?;
    let manifest = lattice.write("lattice.toml", &counter_manifest(&kv_counter(), 2))?;
    lattice.cli_ok(&["apply", manifest.to_str().context("path")?])?;
    let v1: BTreeSet<String> = lattice
        .client
        .ping(Duration::from_millis(300))
        .await?
        .iter()
        .flat_map(|h| h.actors.iter().map(|a| a.digest.clone()))
        .collect();
    assert_eq!(v1.len(), 1);

    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failures, callers) = call_continuously(&lattice.client, 32, &stop);
    wait_for("calls before the update", Duration::from_secs(10), || async {
        (calls.load(Ordering::Relaxed) >= 200).then_some(())
    })
    .await?;
    let v2 = another_version(lattice.dir.path())?;
    std::fs::write(&manifest, counter_manifest(&v2, 2))?;
    let applied = lattice.cli_ok(&["apply", manifest.to_str().context("path")?, "--timeout", "60s"])?;
    assert!(applied.contains("~ actor kv-counter: artifact:"), "{applied}");
    let before = calls.load(Ordering::Relaxed);
    wait_for("calls after the update", Duration::from_secs(10), || async {
        (calls.load(Ordering::Relaxed) >= before + 200).then_some(())
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await?;
    }
    let (total, failed) = (calls.load(Ordering::Relaxed), failures.load(Ordering::Relaxed));
    eprintln!("rolling update: {total} calls at 32 in flight, {failed} failed");
    assert_eq!(failed, 0, "calls failed during the rolling update");

    // Both replicas run the new version, still one per zone.
    let hosts = lattice.client.ping(Duration::from_millis(300)).await?;
    let digests: BTreeSet<String> = hosts.iter().flat_map(|h| h.actors.iter().map(|a| a.digest.clone())).collect();
    assert_eq!(digests.len(), 1, "{digests:?}");
    assert!(v1.is_disjoint(&digests), "still on the old version: {digests:?}");
    assert_eq!(replicas_in(&hosts, "counter", "kv-counter").len(), 2);
    Ok(())
}
