//! Provider instances on this host and an actor's resolved links.
//!
//! An actor's links are resolved once per change into an immutable [`LinkSet`]; each invocation takes the
//! current set when it starts and keeps it to the end, so a link change applies to the next invocation and
//! in-flight invocations finish on the link they started with.

use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use lattice_core::link::{Interface, LinkSpec};
use lattice_provider_sdk::{KeyValue, Messaging, validate_queue, validate_subject};

use crate::deadletter::DeadLetters;

/// Makes a key-value provider for a name no local instance has: how a host reaches a provider another host
/// serves over the lattice. `None`: no such provider can exist (e.g. the name is not a valid subject token).
pub type RemoteKeyValue = Arc<dyn Fn(&str) -> Option<Arc<dyn KeyValue>> + Send + Sync>;

/// The provider instances this host can link actors to, by name.
#[derive(Clone, Default)]
pub struct Providers {
    keyvalue: HashMap<String, Arc<dyn KeyValue>>,
    messaging: HashMap<String, Arc<dyn Messaging>>,
    remote_keyvalue: Option<RemoteKeyValue>,
    dead_letters: Option<Arc<dyn DeadLetters>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.keyvalue.keys().collect();
        names.sort();
        let mut messaging: Vec<_> = self.messaging.keys().collect();
        messaging.sort();
        f.debug_struct("Providers").field("keyvalue", &names).field("messaging", &messaging).finish()
    }
}

impl Providers {
    /// Adds (or replaces) a key-value provider instance under `name`.
    pub fn insert_keyvalue(&mut self, name: impl Into<String>, provider: Arc<dyn KeyValue>) {
        self.keyvalue.insert(name.into(), provider);
    }

    /// Removes the key-value provider instance `name`; false if there was none.
    pub fn remove_keyvalue(&mut self, name: &str) -> bool {
        self.keyvalue.remove(name).is_some()
    }

    /// Sets how names with no local key-value instance are reached (over the lattice). Without it, such
    /// links are refused as unknown providers.
    pub fn set_remote_keyvalue(&mut self, remote: RemoteKeyValue) {
        self.remote_keyvalue = Some(remote);
    }

    /// Sets where messages delivered at least once go when they fail `max_deliver` times. Without it they are
    /// logged at `error` and dropped from their stream.
    pub fn set_dead_letters(&mut self, sink: Arc<dyn DeadLetters>) {
        self.dead_letters = Some(sink);
    }

    /// Whether `name` is a key-value instance in this process (called with no network hop).
    pub fn is_local_keyvalue(&self, name: &str) -> bool {
        self.keyvalue.contains_key(name)
    }

    /// Adds (or replaces) a messaging provider instance under `name`.
    pub fn insert_messaging(&mut self, name: impl Into<String>, provider: Arc<dyn Messaging>) {
        self.messaging.insert(name.into(), provider);
    }

    /// The messaging provider instance named `name`, to publish or subscribe from the host side.
    pub fn messaging(&self, name: &str) -> Option<Arc<dyn Messaging>> {
        self.messaging.get(name).cloned()
    }

    /// The names of the messaging providers.
    pub fn messaging_names(&self) -> impl Iterator<Item = &str> {
        self.messaging.keys().map(String::as_str)
    }

    /// Every instance as `<interface>:<name>`, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.keyvalue.keys().map(|n| format!("keyvalue:{n}")).collect();
        names.extend(self.messaging.keys().map(|n| format!("messaging:{n}")));
        names.sort();
        names
    }

    /// The names of the key-value providers.
    pub fn keyvalue_names(&self) -> impl Iterator<Item = &str> {
        self.keyvalue.keys().map(String::as_str)
    }
}

/// Why a set of links could not be applied to an actor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// No provider of that name serves the interface on this host.
    #[error("no {interface} provider named `{provider}` on this host (available: {available})")]
    UnknownProvider {
        /// The interface linked.
        interface: Interface,
        /// The provider asked for.
        provider: String,
        /// The providers that exist, comma-separated.
        available: String,
    },
    /// Two links claim the same interface and name.
    #[error("two links for {interface} name `{name}`")]
    Duplicate {
        /// The interface.
        interface: Interface,
        /// The name linked twice.
        name: String,
    },
    /// The actor's claims do not list the capability the link's interface needs.
    #[error("actor `{actor}` may not use {}: its claims do not list it", interface.capability())]
    NotAllowed {
        /// The interface linked.
        interface: Interface,
        /// The actor.
        actor: String,
    },
    /// A messaging link's subscription was refused by its provider.
    #[error(transparent)]
    Subscribe(Box<crate::subscriptions::SubscribeError>),
    /// A link's config is invalid (for example a bad subject in a messaging link's `subscribe`).
    #[error("link `{link}`: {reason}")]
    Config {
        /// The link, as written.
        link: String,
        /// What is wrong.
        reason: String,
    },
}

/// A key-value link resolved to its provider instance.
#[derive(Clone)]
pub(crate) struct KeyValueLink {
    pub(crate) provider: Arc<dyn KeyValue>,
    pub(crate) bucket: Arc<str>,
}

/// A messaging link resolved to its provider instance, with what it subscribes to.
///
/// Config keys the host reads: `subscribe`, subjects separated by `|` (wildcards allowed; `,` separates config
/// entries), `queue`, the queue group of that subscription, and `publish`, the patterns (same syntax) the
/// actor may send and request to through this link (absent: any subject outside the reserved namespaces).
/// `delivery=at-least-once` makes the link durable ([`Durable`]: `max_deliver`, `ack_wait`, `stream`).
/// Other keys are left to the provider.
///
/// A `subscribe` or `publish` pattern that could match a subject in a reserved namespace
/// ([`lattice_core::reserved`]: `lattice.>`, `$JS.>`, `_INBOX.>`…) is refused: the link does not resolve.
#[derive(Clone)]
pub(crate) struct MessagingLink {
    pub(crate) provider: Arc<dyn Messaging>,
    /// The provider instance's name, for logs.
    pub(crate) provider_name: Arc<str>,
    /// Subjects delivered to the actor's handler (empty: the link only sends and requests).
    pub(crate) subscribe: Vec<String>,
    pub(crate) queue: Option<String>,
    /// The patterns sends and requests must match (`None`: no allow-list).
    pub(crate) publish: Option<Arc<[String]>>,
    /// At-least-once delivery (`None`: at most once).
    pub(crate) durable: Option<Durable>,
    /// Where messages that fail every delivery go.
    pub(crate) dead_letters: Option<Arc<dyn DeadLetters>>,
}

/// The at-least-once settings of a messaging link (`delivery=at-least-once`).
///
/// Its subscription reads a durable consumer shared by every host running the actor; its sends are stored by
/// the provider before they return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Durable {
    /// Deliveries of one message before it is dead-lettered (`max_deliver`, default 5, 1 to 1000).
    pub(crate) max_deliver: u64,
    /// How long a delivery may stay unsettled before it is delivered again (`ack_wait`, default 30s, 1s to
    /// 12h). The host extends it while a handler runs.
    pub(crate) ack_wait: Duration,
    /// The stream to read (`stream`; default: found or made by the provider).
    pub(crate) stream: Option<String>,
}

impl Durable {
    /// Default `max_deliver`.
    pub(crate) const MAX_DELIVER: u64 = 5;
    /// Default `ack_wait`.
    pub(crate) const ACK_WAIT: Duration = Duration::from_secs(30);

    /// The link's delivery settings: `None` for at most once; an error for a bad value, or for a durable-only
    /// key on an at-most-once link (it would be silently ignored).
    fn parse(spec: &LinkSpec) -> Result<Option<Self>, String> {
        let durable_keys = ["max_deliver", "ack_wait", "stream"];
        match spec.config.get("delivery").map(String::as_str) {
            None | Some("at-most-once") => {
                return match durable_keys.iter().find(|k| spec.config.contains_key(**k)) {
                    Some(key) => Err(format!("`{key}` needs `delivery=at-least-once`")),
                    None => Ok(None),
                };
            }
            Some("at-least-once") => {}
            Some(other) => return Err(format!("delivery `{other}`: expected at-most-once or at-least-once")),
        }
        let max_deliver = match spec.config.get("max_deliver") {
            None => Self::MAX_DELIVER,
            Some(text) => match text.parse::<u64>() {
                Ok(n @ 1..=1000) => n,
                _ => return Err(format!("max_deliver `{text}`: expected a number from 1 to 1000")),
            },
        };
        let ack_wait = match spec.config.get("ack_wait") {
            None => Self::ACK_WAIT,
            Some(text) => match lattice_core::units::parse_duration(text) {
                Ok(d) if (Duration::from_secs(1)..=Duration::from_secs(12 * 3600)).contains(&d) => d,
                Ok(_) => return Err(format!("ack_wait `{text}`: expected 1s to 12h")),
                Err(e) => return Err(format!("ack_wait: {e}")),
            },
        };
        let stream = spec.config.get("stream").cloned();
        if let Some(name) = &stream
            && (name.is_empty()
                || name.len() > 255
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            return Err(format!("stream `{name}`: expected a JetStream stream name (letters, digits, `_`, `-`)"));
        }
        Ok(Some(Durable { max_deliver, ack_wait, stream }))
    }
}

/// The `|`-separated patterns of config `key`, each a valid subject pattern outside the reserved namespaces.
fn patterns(spec: &LinkSpec, key: &str) -> Result<Option<Vec<String>>, LinkError> {
    let Some(text) = spec.config.get(key) else { return Ok(None) };
    let invalid = |reason: String| LinkError::Config { link: spec.to_string(), reason: format!("{key}: {reason}") };
    let patterns: Vec<String> = text.split('|').map(str::to_owned).collect();
    for pattern in &patterns {
        validate_subject(pattern, true).map_err(|e| invalid(e.to_string()))?;
        lattice_core::reserved::check_subscribe(pattern).map_err(|reserved| {
            invalid(format!(
                "pattern `{pattern}` overlaps the reserved namespace `{}`: actors may not use it",
                reserved.namespace
            ))
        })?;
    }
    Ok(Some(patterns))
}

impl MessagingLink {
    fn resolve(spec: &LinkSpec, provider: Arc<dyn Messaging>, providers: &Providers) -> Result<Self, LinkError> {
        let invalid = |reason: String| LinkError::Config { link: spec.to_string(), reason };
        let durable = Durable::parse(spec).map_err(invalid)?;
        let subscribe = patterns(spec, "subscribe")?.unwrap_or_default();
        let publish = patterns(spec, "publish")?.map(Arc::from);
        let queue = spec.config.get("queue").cloned();
        if let Some(queue) = &queue {
            if subscribe.is_empty() {
                return Err(invalid("`queue` needs `subscribe`".into()));
            }
            validate_queue(queue).map_err(|e| invalid(e.to_string()))?;
        }
        Ok(MessagingLink {
            provider,
            provider_name: spec.provider.as_str().into(),
            subscribe,
            queue,
            publish,
            durable,
            dead_letters: providers.dead_letters.clone(),
        })
    }
}

/// An actor's links, resolved against the host's providers. Immutable; replaced whole on change.
#[derive(Clone, Default)]
pub struct LinkSet {
    keyvalue: HashMap<String, KeyValueLink>,
    messaging: HashMap<String, MessagingLink>,
    /// Where outgoing HTTP requests may go (`http:outgoing=allow,hosts=…`); `None`: nowhere.
    http: Option<Arc<lattice_core::http::OutgoingPolicy>>,
    specs: Vec<LinkSpec>,
}

impl std::fmt::Debug for LinkSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.specs.iter().map(ToString::to_string)).finish()
    }
}

impl LinkSet {
    /// Resolves `actor`'s links `specs` against `providers` (a key-value link's bucket is the actor's own
    /// unless it names one: [`LinkSpec::bucket`]).
    pub fn resolve(actor: &str, specs: &[LinkSpec], providers: &Providers) -> Result<Self, LinkError> {
        let mut set = LinkSet { specs: specs.to_vec(), ..LinkSet::default() };
        for spec in specs {
            match spec.interface {
                Interface::KeyValue => {
                    // Local instances first (in-process); otherwise, if this host can reach the lattice, the
                    // provider served by another host.
                    let local = providers.keyvalue.get(&spec.provider).cloned();
                    let remote = || providers.remote_keyvalue.as_ref().and_then(|remote| remote(&spec.provider));
                    let provider = local.or_else(remote).ok_or_else(|| {
                        let mut names: Vec<_> = providers.keyvalue_names().collect();
                        names.sort_unstable();
                        LinkError::UnknownProvider {
                            interface: spec.interface,
                            provider: spec.provider.clone(),
                            available: names.join(", "),
                        }
                    })?;
                    let link = KeyValueLink { provider, bucket: spec.bucket(actor).into() };
                    if set.keyvalue.insert(spec.name.clone(), link).is_some() {
                        return Err(LinkError::Duplicate { interface: spec.interface, name: spec.name.clone() });
                    }
                }
                Interface::Messaging => {
                    let provider = providers.messaging.get(&spec.provider).ok_or_else(|| {
                        let mut names: Vec<_> = providers.messaging_names().collect();
                        names.sort_unstable();
                        LinkError::UnknownProvider {
                            interface: spec.interface,
                            provider: spec.provider.clone(),
                            available: names.join(", "),
                        }
                    })?;
                    let link = MessagingLink::resolve(spec, provider.clone(), providers)?;
                    if set.messaging.insert(spec.name.clone(), link).is_some() {
                        return Err(LinkError::Duplicate { interface: spec.interface, name: spec.name.clone() });
                    }
                }
                Interface::Http => {
                    let policy = lattice_core::http::OutgoingPolicy::from_link(spec)
                        .map_err(|reason| LinkError::Config { link: spec.to_string(), reason })?;
                    if set.http.replace(Arc::new(policy)).is_some() {
                        return Err(LinkError::Duplicate { interface: spec.interface, name: spec.name.clone() });
                    }
                }
                interface => {
                    return Err(LinkError::UnknownProvider {
                        interface,
                        provider: spec.provider.clone(),
                        available: String::new(),
                    });
                }
            }
        }
        Ok(set)
    }

    /// The link specs this set was resolved from.
    pub fn specs(&self) -> &[LinkSpec] {
        &self.specs
    }

    pub(crate) fn keyvalue(&self, name: &str) -> Option<&KeyValueLink> {
        self.keyvalue.get(name)
    }

    /// Where the actor's outgoing HTTP requests may go; `None`: nowhere.
    pub(crate) fn http(&self) -> Option<&Arc<lattice_core::http::OutgoingPolicy>> {
        self.http.as_ref()
    }

    pub(crate) fn messaging(&self, name: &str) -> Option<&MessagingLink> {
        self.messaging.get(name)
    }

    /// The messaging links that subscribe, by link name (sorted).
    pub(crate) fn subscriptions(&self) -> Vec<(&str, &MessagingLink)> {
        let mut links: Vec<_> =
            self.messaging.iter().filter(|(_, l)| !l.subscribe.is_empty()).map(|(n, l)| (n.as_str(), l)).collect();
        links.sort_by_key(|(name, _)| *name);
        links
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn durable(config: &str) -> Result<Option<Durable>, String> {
        let spec: LinkSpec = format!("messaging:jobs=nats,subscribe=jobs{config}").parse().expect("link spec");
        Durable::parse(&spec)
    }

    #[test]
    fn delivery_settings_parse_with_defaults_and_refuse_what_would_be_ignored() {
        assert_eq!(durable(""), Ok(None));
        assert_eq!(durable(",delivery=at-most-once"), Ok(None));
        let defaults = Durable { max_deliver: Durable::MAX_DELIVER, ack_wait: Durable::ACK_WAIT, stream: None };
        assert_eq!(durable(",delivery=at-least-once"), Ok(Some(defaults)));
        let set = durable(",delivery=at-least-once,max_deliver=3,ack_wait=1.5s,stream=orders_1").expect("valid");
        assert_eq!(
            set,
            Some(Durable { max_deliver: 3, ack_wait: Duration::from_millis(1500), stream: Some("orders_1".into()) })
        );
        for (bad, expected) in [
            (",max_deliver=3", "needs `delivery=at-least-once`"),
            (",delivery=at-most-once,stream=s", "needs `delivery=at-least-once`"),
            (",delivery=exactly-once", "expected at-most-once or at-least-once"),
            (",delivery=at-least-once,max_deliver=0", "1 to 1000"),
            (",delivery=at-least-once,max_deliver=1001", "1 to 1000"),
            (",delivery=at-least-once,ack_wait=500ms", "1s to 12h"),
            (",delivery=at-least-once,ack_wait=30", "ack_wait"),
            (",delivery=at-least-once,stream=a.b", "stream name"),
        ] {
            let error = durable(bad).expect_err(bad);
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn redeliveries_back_off_from_100ms_to_10s() {
        use crate::subscriptions::redelivery_delay;
        assert_eq!(redelivery_delay(1), Duration::from_millis(100));
        assert_eq!(redelivery_delay(2), Duration::from_millis(200));
        assert_eq!(redelivery_delay(4), Duration::from_millis(800));
        assert_eq!(redelivery_delay(8), Duration::from_secs(10));
        assert_eq!(redelivery_delay(u64::MAX), Duration::from_secs(10));
    }
}
