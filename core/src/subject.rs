//! Every NATS subject, bucket and queue-group name lattice uses, built in one place.
//!
//! Layout (`<l>` is the lattice name):
//! - `lattice.<l>.ctl.ping`: every host answers (scatter/gather).
//! - `lattice.<l>.ctl.auction`: hosts whose labels match the constraints answer.
//! - `lattice.<l>.ctl.host.<host>.<verb>`: one host's verbs (`inventory`, `actor.start`, `actor.stop`,
//!   `actor.scale`, `label.put`, `label.del`, `stop`, `provider.start`, `provider.restart`, `provider.stop`).
//! - `lattice.<l>.evt.<kind>`: events (`host.started`, `host.heartbeat`, `actor.rejected`, …).
//! - `lattice.<l>.provider.<name>.<interface>`: provider instances served to other hosts (remote providers).
//! - `lattice.<l>.actor.<actor>.invoke`: invocations, served by every host running the actor in the queue
//!   group `lattice.<actor>`.
//! - JetStream key-value buckets `lattice_<l>` (links, apps and their status), `lattice_<l>_hosts` (one
//!   record per host, rewritten every heartbeat) and `lattice_<l>_leader` (the reconciler's lease), and object
//!   store `lattice_<l>_artifacts` (pushed components).
//!
//! Lattice names, host ids and actor names are single subject tokens: 1-64 characters of `A-Z a-z 0-9 _ -`,
//! so no name can inject a wildcard or an extra token, and every bucket name derived from them is valid.
//!
//! ```
//! use lattice_core::subject::{Name, Subjects};
//!
//! let s = Subjects::new(Name::new("default").unwrap());
//! let actor = Name::new("kv-counter").unwrap();
//! assert_eq!(s.invoke(&actor), "lattice.default.actor.kv-counter.invoke");
//! assert_eq!(s.event("host.started"), "lattice.default.evt.host.started");
//! ```

use std::fmt;
use std::str::FromStr;

/// The key of the reconciler's lease in [`Subjects::leader_bucket`].
pub const LEADER_KEY: &str = "leader";

/// A validated subject token: a lattice name, host id or actor name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

/// Longest accepted name.
pub const MAX_NAME_LEN: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name `{0}`: use 1-{MAX_NAME_LEN} characters of A-Z, a-z, 0-9, `_` and `-`")]
pub struct InvalidName(pub String);

impl Name {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok { Ok(Name(name)) } else { Err(InvalidName(name)) }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Name {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Name::new(s)
    }
}

impl TryFrom<String> for Name {
    type Error = InvalidName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Name::new(s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A host verb addressed to one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HostVerb {
    /// What the host runs.
    Inventory,
    /// Start (or update) an actor.
    StartActor,
    /// Stop an actor.
    StopActor,
    /// Change an actor's max concurrency.
    ScaleActor,
    /// Set a label.
    PutLabel,
    /// Remove a label.
    DeleteLabel,
    /// Stop the host gracefully.
    Stop,
    /// Start a provider instance on the host.
    StartProvider,
    /// Restart a provider instance whose supervisor gave up.
    RestartProvider,
    /// Stop a provider instance started on the host.
    StopProvider,
}

impl HostVerb {
    /// Every verb, for subscribing and for tests.
    pub const ALL: [HostVerb; 10] = [
        HostVerb::Inventory,
        HostVerb::StartActor,
        HostVerb::StopActor,
        HostVerb::ScaleActor,
        HostVerb::PutLabel,
        HostVerb::DeleteLabel,
        HostVerb::Stop,
        HostVerb::StartProvider,
        HostVerb::RestartProvider,
        HostVerb::StopProvider,
    ];

    /// The verb's subject suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            HostVerb::Inventory => "inventory",
            HostVerb::StartActor => "actor.start",
            HostVerb::StopActor => "actor.stop",
            HostVerb::ScaleActor => "actor.scale",
            HostVerb::PutLabel => "label.put",
            HostVerb::DeleteLabel => "label.del",
            HostVerb::Stop => "stop",
            HostVerb::StartProvider => "provider.start",
            HostVerb::RestartProvider => "provider.restart",
            HostVerb::StopProvider => "provider.stop",
        }
    }

    /// Whether the verb only reads (`inventory`). Every other verb, including any added later, is mutating:
    /// hosts that trust operators accept it only when signed by one.
    pub fn is_read_only(self) -> bool {
        matches!(self, HostVerb::Inventory)
    }

    /// The verb named by a subject suffix.
    pub fn from_suffix(suffix: &str) -> Option<HostVerb> {
        HostVerb::ALL.into_iter().find(|v| v.as_str() == suffix)
    }
}

/// Builds the subjects and bucket names of one lattice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    lattice: Name,
    prefix: String,
}

impl Subjects {
    /// Subjects of lattice `lattice`.
    pub fn new(lattice: Name) -> Self {
        let prefix = format!("lattice.{lattice}");
        Self { lattice, prefix }
    }

    /// The lattice's name.
    pub fn lattice(&self) -> &Name {
        &self.lattice
    }

    /// Broadcast ping every host answers.
    pub fn ping(&self) -> String {
        format!("{}.ctl.ping", self.prefix)
    }

    /// Placement auction.
    pub fn auction(&self) -> String {
        format!("{}.ctl.auction", self.prefix)
    }

    /// A verb addressed to one host.
    pub fn host_verb(&self, host: &Name, verb: HostVerb) -> String {
        format!("{}.ctl.host.{host}.{}", self.prefix, verb.as_str())
    }

    /// Wildcard a host subscribes to for all its verbs.
    pub fn host_verbs_wildcard(&self, host: &Name) -> String {
        format!("{}.ctl.host.{host}.>", self.prefix)
    }

    /// The verb of a subject received on [`Subjects::host_verbs_wildcard`], if it names one.
    pub fn parse_host_verb(&self, host: &Name, subject: &str) -> Option<HostVerb> {
        let suffix = subject
            .strip_prefix(&self.prefix)?
            .strip_prefix(".ctl.host.")?
            .strip_prefix(host.as_str())?
            .strip_prefix('.')?;
        HostVerb::from_suffix(suffix)
    }

    /// An event subject, e.g. `event("host.started")`.
    pub fn event(&self, kind: &str) -> String {
        format!("{}.evt.{kind}", self.prefix)
    }

    /// Wildcard for every event of the lattice.
    pub fn events_wildcard(&self) -> String {
        format!("{}.evt.>", self.prefix)
    }

    /// The subject an actor is invoked on.
    pub fn invoke(&self, actor: &Name) -> String {
        format!("{}.actor.{actor}.invoke", self.prefix)
    }

    /// The queue group hosts running `actor` share, so each invocation reaches one of them.
    pub fn invoke_queue(&self, actor: &Name) -> String {
        format!("lattice.{actor}")
    }

    /// The JetStream key-value bucket of the lattice's state.
    pub fn state_bucket(&self) -> String {
        format!("lattice_{}", self.lattice)
    }

    /// The JetStream object store of pushed artifacts.
    pub fn artifact_bucket(&self) -> String {
        format!("lattice_{}_artifacts", self.lattice)
    }

    /// The subject a provider instance is served on to other hosts, e.g.
    /// `lattice.<l>.provider.<name>.keyvalue` (queue group shared by every host serving it).
    pub fn provider(&self, name: &Name, interface: &str) -> String {
        format!("{}.provider.{name}.{interface}", self.prefix)
    }

    /// Key of one link in the state bucket: `links.<actor>.<interface>.<hex of the link name>` (link names are
    /// free text; hex keeps every key valid).
    pub fn link_key(&self, actor: &Name, interface: &str, name: &str) -> String {
        format!("links.{actor}.{interface}.{}", hex::encode(name.as_bytes()))
    }

    /// The state-bucket key of an HTTP route (by its text, hashed: routes may hold any path characters).
    pub fn route_key(&self, route: &crate::http::Route) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(route.to_string().as_bytes());
        format!("routes.{}", hex::encode(&digest[..16]))
    }

    /// Key filter for every HTTP route.
    pub fn routes_filter(&self) -> &'static str {
        "routes.>"
    }

    /// Key filter for every link of every actor.
    pub fn links_filter(&self) -> &'static str {
        "links.>"
    }

    /// The JetStream stream that keeps recent events (everything but heartbeats) for `lattice events`.
    pub fn events_stream(&self) -> String {
        format!("lattice_{}_events", self.lattice)
    }

    /// The event subjects the events stream keeps: every kind except the heartbeat.
    pub fn stored_event_subjects(&self) -> Vec<String> {
        ["host.started", "host.stopped", "actor.>", "provider.>", "app.>", "leader.>", "message.>"]
            .iter()
            .map(|kind| self.event(kind))
            .collect()
    }

    /// Key of an app's current record in the state bucket.
    pub fn app_key(&self, app: &Name) -> String {
        format!("apps.{app}")
    }

    /// Key filter for every app's current record.
    pub fn apps_filter(&self) -> &'static str {
        "apps.*"
    }

    /// Key of one revision of an app in the state bucket (zero-padded, so keys sort by revision).
    pub fn app_history_key(&self, app: &Name, revision: u64) -> String {
        format!("history.{app}.{revision:012}")
    }

    /// Key of an app's reconciliation status (written by the leader) in the state bucket.
    pub fn app_status_key(&self, app: &Name) -> String {
        format!("status.{app}")
    }

    /// Where messages an actor failed to handle at least once are dead-lettered: `lattice.<l>.dlq.<actor>`.
    pub fn dlq(&self, actor: &Name) -> String {
        format!("lattice.{}.dlq.{actor}", self.lattice)
    }

    /// Every actor's dead letters.
    pub fn dlq_wildcard(&self) -> String {
        format!("lattice.{}.dlq.>", self.lattice)
    }

    /// The JetStream stream that keeps dead letters.
    pub fn dlq_stream(&self) -> String {
        format!("lattice_{}_dlq", self.lattice)
    }

    /// Prefix of the streams and consumers at-least-once delivery creates for this lattice's actors.
    pub fn delivery_namespace(&self) -> String {
        format!("lattice_{}", self.lattice)
    }

    /// The JetStream key-value bucket holding the reconciler's lease (one key, [`LEADER_KEY`]).
    pub fn leader_bucket(&self) -> String {
        format!("lattice_{}_leader", self.lattice)
    }

    /// The JetStream key-value bucket of host records (one key per host id, rewritten every heartbeat).
    pub fn hosts_bucket(&self) -> String {
        format!("lattice_{}_hosts", self.lattice)
    }

    /// The subject host `id`'s record is stored on (`$KV.<hosts bucket>.<id>`): what its seal signs.
    pub fn host_record(&self, id: &Name) -> String {
        jetstream::kv_keys(&self.hosts_bucket(), id.as_str())
    }

    /// The subject the reconciler's lease is stored on (`$KV.<leader bucket>.leader`): what its seal signs.
    pub fn leader_record(&self) -> String {
        jetstream::kv_keys(&self.leader_bucket(), LEADER_KEY)
    }

    // Patterns for NATS permissions (`lattice nats-config`, `nats_config`): each names a family of the
    // subjects above.

    /// Every subject of the lattice: `lattice.<l>.>`.
    pub fn lattice_wildcard(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// Every actor's invocation subject: `lattice.<l>.actor.*.invoke` (HTTP-over-NATS included: it is an
    /// invocation with the `Lattice-Http` header).
    pub fn invoke_wildcard(&self) -> String {
        format!("{}.actor.*.invoke", self.prefix)
    }

    /// Every control subject: `lattice.<l>.ctl.>`.
    pub fn control_wildcard(&self) -> String {
        format!("{}.ctl.>", self.prefix)
    }

    /// Every remote provider's subject: `lattice.<l>.provider.>`.
    pub fn providers_wildcard(&self) -> String {
        format!("{}.provider.>", self.prefix)
    }

    /// The JetStream streams of the lattice: the state, hosts and leader buckets' streams, the artifact
    /// store's, the events stream and the dead letters.
    pub fn streams(&self) -> [String; 6] {
        [
            jetstream::kv_stream(&self.state_bucket()),
            jetstream::kv_stream(&self.hosts_bucket()),
            jetstream::kv_stream(&self.leader_bucket()),
            jetstream::object_stream(&self.artifact_bucket()),
            self.events_stream(),
            self.dlq_stream(),
        ]
    }
}

/// The prefix of a NATS user's own inboxes (`_INBOX.<user>`), so a server permission `_INBOX.<user>.>` lets each
/// user read only the replies to its own requests. Under `_INBOX.`, so hosts answer there like any inbox.
pub fn inbox_prefix(user: &Name) -> String {
    format!("_INBOX.{user}")
}

/// Every inbox under `prefix` (`<prefix>.>`).
pub fn inbox_wildcard(prefix: &str) -> String {
    format!("{prefix}.>")
}

/// Every inbox: the subjects hosts answer on.
pub const ALL_INBOXES: &str = "_INBOX.>";

/// JetStream's subjects (`$JS.API.…`, `$KV.…`, `$O.…`) as NATS permissions name them, per stream or bucket.
pub mod jetstream {
    /// Account information, which clients ask for to learn that JetStream is on.
    pub const API_INFO: &str = "$JS.API.INFO";

    /// Stream names and listing (for the CLI's checks and listings).
    pub const API_STREAM_LISTS: [&str; 2] = ["$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST"];

    /// The stream behind key-value bucket `bucket`.
    pub fn kv_stream(bucket: &str) -> String {
        format!("KV_{bucket}")
    }

    /// The stream behind object store `bucket`.
    pub fn object_stream(bucket: &str) -> String {
        format!("OBJ_{bucket}")
    }

    /// Writes to keys matching `keys` (a key or a key pattern) of key-value bucket `bucket`.
    pub fn kv_keys(bucket: &str, keys: &str) -> String {
        format!("$KV.{bucket}.{keys}")
    }

    /// Writes (chunks and metadata) to object store `bucket`.
    pub fn object_writes(bucket: &str) -> String {
        format!("$O.{bucket}.>")
    }

    /// Creating `stream`.
    pub fn create(stream: &str) -> String {
        format!("$JS.API.STREAM.CREATE.{stream}")
    }

    /// Changing `stream`'s configuration.
    pub fn update(stream: &str) -> String {
        format!("$JS.API.STREAM.UPDATE.{stream}")
    }

    /// Deleting `stream` with all it holds.
    pub fn delete(stream: &str) -> String {
        format!("$JS.API.STREAM.DELETE.{stream}")
    }

    /// Reading `stream`: its info, single messages (direct or not), consumers (create, info, fetch, delete),
    /// and the acknowledgements and flow-control answers of what they deliver.
    pub fn read(stream: &str) -> Vec<String> {
        [
            format!("$JS.API.STREAM.INFO.{stream}"),
            format!("$JS.API.STREAM.MSG.GET.{stream}"),
            format!("$JS.API.DIRECT.GET.{stream}"),
            format!("$JS.API.DIRECT.GET.{stream}.>"),
            format!("$JS.API.CONSUMER.CREATE.{stream}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
            format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>"),
            format!("$JS.API.CONSUMER.INFO.{stream}.>"),
            format!("$JS.API.CONSUMER.DELETE.{stream}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.>"),
            format!("$JS.ACK.{stream}.>"),
            format!("$JS.FC.{stream}.>"),
        ]
        .into()
    }

    /// Removing what `stream` holds: deleting or purging it, deleting single messages.
    pub fn remove(stream: &str) -> Vec<String> {
        [delete(stream), format!("$JS.API.STREAM.PURGE.{stream}"), format!("$JS.API.STREAM.MSG.DELETE.{stream}")].into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::new(s).expect("valid")
    }

    #[test]
    fn names_refuse_wildcards_dots_and_spaces() {
        for bad in ["", "a.b", "*", ">", "a b", "ä", &"x".repeat(65)] {
            assert!(Name::new(bad).is_err(), "{bad:?}");
        }
        assert!(Name::new("kv-counter_2").is_ok());
    }

    #[test]
    fn host_verbs_round_trip_through_subjects() {
        let s = Subjects::new(name("prod"));
        let host = name("h1");
        for verb in HostVerb::ALL {
            let subject = s.host_verb(&host, verb);
            assert_eq!(s.parse_host_verb(&host, &subject), Some(verb), "{subject}");
        }
        assert_eq!(s.parse_host_verb(&host, "lattice.prod.ctl.host.h1.bogus"), None);
        assert_eq!(s.parse_host_verb(&name("h2"), &s.host_verb(&host, HostVerb::Stop)), None);
    }

    #[test]
    fn lattices_never_share_subjects_or_buckets() {
        let a = Subjects::new(name("a"));
        let b = Subjects::new(name("b"));
        let actor = name("x");
        assert_ne!(a.invoke(&actor), b.invoke(&actor));
        assert_ne!(a.state_bucket(), b.state_bucket());
        assert_ne!(a.ping(), b.ping());
    }
}
