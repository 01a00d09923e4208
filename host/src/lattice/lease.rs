//! The reconciler's lease: which host of a lattice is its leader.
//!
//! One key ([`LEADER_KEY`]) in the bucket `lattice_<l>_leader` holds the leader's host id. The leader renews it
//! every [`Lease::renew`] with a compare-and-set on the key's revision; every other host reads it at the same
//! pace and takes it over (compare-and-set on the revision it read) once the revision has not moved for
//! [`Lease::ttl`] by its own monotonic clock, so no host's wall clock matters. A leader that cannot renew for
//! `ttl - renew` steps down before anyone may take over; a leader that stops gracefully releases the lease
//! (writes an empty value) so another host takes over at its next read.
//!
//! The value is sealed with the leader's host key (`lattice_core::host_auth::append_seal`, over the subject
//! `$KV.lattice_<l>_leader.leader`). When operators are trusted, a value whose seal does not verify for the host
//! it names, or is older than the allowed skew, is not followed: it counts as a free lease (and is reported),
//! so a forged holder cannot keep the lattice without a leader.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use lattice_core::subject::{LEADER_KEY, Name, Subjects};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{HostError, Shared, now_ms};

/// Timing of the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// How often the leader renews and the others look.
    pub renew: Duration,
    /// How long an unrenewed lease stays with its holder.
    pub ttl: Duration,
}

impl Default for Lease {
    /// Renewed every 250 ms, taken over after 1.5 s without renewal: a dead leader is replaced within about
    /// 1.75 s, which leaves room in the 5 s re-placement budget for the new leader's first look and placement.
    fn default() -> Self {
        Self { renew: Duration::from_millis(250), ttl: Duration::from_millis(1500) }
    }
}

/// Opens (creating if needed) the lease bucket.
pub(crate) async fn bucket(js: &jetstream::Context, subjects: &Subjects) -> Result<kv::Store, HostError> {
    let config = kv::Config {
        bucket: subjects.leader_bucket(),
        description: "lattice reconciler lease: the leader host's id".into(),
        history: 1,
        ..Default::default()
    };
    super::kv_bucket(js, config, "the leader lease bucket").await
}

/// What a lease round found.
pub(crate) enum Change {
    /// This host became the leader (`previous`: the holder it took over from, if any).
    Elected { previous: Option<Name> },
    /// This host lost the lease (another took it, or renewing failed for too long).
    Deposed,
}

/// One host's side of the election.
pub(crate) struct Election {
    bucket: kv::Store,
    id: Name,
    shared: Arc<Shared>,
    timing: Lease,
    /// While leading: the key's revision after our last write, and when that write succeeded.
    held: Option<(u64, Instant)>,
    /// While following: the revision last seen and since when it has not moved.
    seen: Option<(u64, Instant)>,
}

impl Election {
    pub(crate) fn new(bucket: kv::Store, shared: Arc<Shared>, timing: Lease) -> Self {
        Self { bucket, id: shared.id.clone(), shared, timing, held: None, seen: None }
    }

    /// This host's lease value: its id, sealed.
    fn value(&self) -> bytes::Bytes {
        self.shared
            .signer
            .seal_record(&self.shared.subjects.leader_record(), self.id.as_str().as_bytes(), now_ms())
            .into()
    }

    /// The holder a lease value names; a value that does not verify (operators trusted) counts as free and is
    /// reported.
    fn holder(&self, value: &[u8]) -> Option<Name> {
        let verifier = self.shared.hosts.enforced().then_some(&self.shared.hosts);
        match lattice_client::lease_holder(&self.shared.subjects, verifier, value, now_ms()) {
            Ok(holder) => holder,
            Err(reason) => {
                self.shared.report_refused(&self.shared.subjects.leader_record(), None, &reason);
                None
            }
        }
    }

    /// One round: renew, or look and take over if due. Returns a change of leadership, if any.
    pub(crate) async fn round(&mut self) -> Option<Change> {
        match self.held {
            Some((revision, renewed)) => self.renew(revision, renewed).await,
            None => self.look().await,
        }
    }

    async fn renew(&mut self, revision: u64, renewed: Instant) -> Option<Change> {
        match self.bucket.update(LEADER_KEY, self.value(), revision).await {
            Ok(next) => {
                self.held = Some((next, Instant::now()));
                None
            }
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                // Overwritten: by another host that took it (follow it), or with a value that does not verify
                // (take it back at once, rather than step down for a forgery).
                if let Some(next) = self.retake_forged().await {
                    self.held = Some((next, Instant::now()));
                    return None;
                }
                tracing::warn!(host = %self.id, "reconciler lease taken by another host: no longer the leader");
                self.held = None;
                Some(Change::Deposed)
            }
            Err(error) => {
                // Step down before another host may take over, so two leaders never act at once.
                if renewed.elapsed() + self.timing.renew >= self.timing.ttl {
                    tracing::warn!(host = %self.id, %error, "cannot renew the reconciler lease: stepping down");
                    self.held = None;
                    return Some(Change::Deposed);
                }
                tracing::debug!(host = %self.id, %error, "renewing the reconciler lease failed; retrying");
                None
            }
        }
    }

    /// When operators are trusted and the lease now holds a value naming no verified other host, writes this
    /// host's value over it (compare-and-set) and returns the new revision.
    async fn retake_forged(&self) -> Option<u64> {
        if !self.shared.hosts.enforced() {
            return None;
        }
        let entry = self.bucket.entry(LEADER_KEY).await.ok()??;
        let other = (entry.operation == kv::Operation::Put)
            .then(|| self.holder(&entry.value))
            .flatten()
            .filter(|holder| holder != &self.id);
        if other.is_some() {
            return None;
        }
        self.bucket.update(LEADER_KEY, self.value(), entry.revision).await.ok()
    }

    async fn look(&mut self) -> Option<Change> {
        let entry = match self.bucket.entry(LEADER_KEY).await {
            Ok(entry) => entry,
            Err(error) => {
                tracing::debug!(host = %self.id, %error, "cannot read the reconciler lease");
                return None;
            }
        };
        let (holder, revision) = match &entry {
            Some(e) if e.operation == kv::Operation::Put && !e.value.is_empty() => {
                (self.holder(&e.value), Some(e.revision))
            }
            // Free: never taken, released, or deleted.
            Some(e) => (None, Some(e.revision)),
            None => (None, None),
        };
        let due = match (&holder, revision) {
            (None, _) => true,
            // A lease of ours from before a restart under the same id: take it back at once.
            (Some(holder), _) if holder == &self.id => true,
            (Some(_), Some(revision)) => match self.seen {
                Some((seen, since)) if seen == revision => since.elapsed() >= self.timing.ttl,
                _ => {
                    self.seen = Some((revision, Instant::now()));
                    false
                }
            },
            (Some(_), None) => true,
        };
        if !due {
            return None;
        }
        let value = self.value();
        let taken = match (&entry, revision) {
            (Some(e), Some(revision)) if e.operation == kv::Operation::Put => {
                self.bucket.update(LEADER_KEY, value, revision).await.map_err(|e| e.to_string())
            }
            _ => self.bucket.create(LEADER_KEY, value).await.map_err(|e| e.to_string()),
        };
        match taken {
            Ok(revision) => {
                self.held = Some((revision, Instant::now()));
                self.seen = None;
                let previous = holder.filter(|h| h != &self.id);
                tracing::info!(host = %self.id, previous = ?previous, "took the reconciler lease: leader of the lattice");
                Some(Change::Elected { previous })
            }
            Err(error) => {
                // Someone else was faster: follow them.
                tracing::debug!(host = %self.id, %error, "another host took the reconciler lease first");
                self.seen = None;
                None
            }
        }
    }

    /// Gives the lease up if held (an empty value, compare-and-set, so a newer holder is never overwritten).
    pub(crate) async fn release(&mut self) {
        if let Some((revision, _)) = self.held.take()
            && let Err(error) = self.bucket.update(LEADER_KEY, bytes::Bytes::new(), revision).await
        {
            tracing::debug!(host = %self.id, %error, "cannot release the reconciler lease");
        }
    }

    /// How often rounds run.
    pub(crate) fn interval(&self) -> Duration {
        self.timing.renew
    }
}

/// Runs rounds until `stop`, telling `on_change` about every change of leadership; releases the lease on stop.
pub(crate) async fn run(mut election: Election, stop: CancellationToken, on_change: impl Fn(Change)) {
    let mut ticker = tokio::time::interval(election.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if let Some(change) = election.round().await {
            on_change(change);
        }
    }
    if election.held.is_some() {
        on_change(Change::Deposed);
    }
    election.release().await;
}
