//! Provider instances on this host and an actor's resolved links.
//!
//! An actor's links are resolved once per change into an immutable [`LinkSet`]; each invocation takes the
//! current set when it starts and keeps it to the end, so a link change applies to the next invocation and
//! in-flight invocations finish on the link they started with.

use std::collections::HashMap;
use std::sync::Arc;

use lattice_core::link::{Interface, LinkSpec};
use lattice_provider_sdk::KeyValue;

/// The provider instances this host can link actors to, by name.
#[derive(Clone, Default)]
pub struct Providers {
    keyvalue: HashMap<String, Arc<dyn KeyValue>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.keyvalue.keys().collect();
        names.sort();
        f.debug_struct("Providers").field("keyvalue", &names).finish()
    }
}

impl Providers {
    /// Adds (or replaces) a key-value provider instance under `name`.
    pub fn insert_keyvalue(&mut self, name: impl Into<String>, provider: Arc<dyn KeyValue>) {
        self.keyvalue.insert(name.into(), provider);
    }

    /// Every instance as `<interface>:<name>`, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.keyvalue.keys().map(|n| format!("keyvalue:{n}")).collect();
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
}

/// A key-value link resolved to its provider instance.
#[derive(Clone)]
pub(crate) struct KeyValueLink {
    pub(crate) provider: Arc<dyn KeyValue>,
    pub(crate) bucket: Arc<str>,
}

/// An actor's links, resolved against the host's providers. Immutable; replaced whole on change.
#[derive(Clone, Default)]
pub struct LinkSet {
    keyvalue: HashMap<String, KeyValueLink>,
    specs: Vec<LinkSpec>,
}

impl std::fmt::Debug for LinkSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.specs.iter().map(ToString::to_string)).finish()
    }
}

impl LinkSet {
    /// Resolves `specs` against `providers`.
    pub fn resolve(specs: &[LinkSpec], providers: &Providers) -> Result<Self, LinkError> {
        let mut set = LinkSet { specs: specs.to_vec(), ..LinkSet::default() };
        for spec in specs {
            match spec.interface {
                Interface::KeyValue => {
                    let provider = providers.keyvalue.get(&spec.provider).ok_or_else(|| {
                        let mut names: Vec<_> = providers.keyvalue_names().collect();
                        names.sort_unstable();
                        LinkError::UnknownProvider {
                            interface: spec.interface,
                            provider: spec.provider.clone(),
                            available: names.join(", "),
                        }
                    })?;
                    let link = KeyValueLink { provider: provider.clone(), bucket: spec.bucket().into() };
                    if set.keyvalue.insert(spec.name.clone(), link).is_some() {
                        return Err(LinkError::Duplicate { interface: spec.interface, name: spec.name.clone() });
                    }
                }
                // No messaging provider runs in-process yet, so a messaging link has nothing to resolve to.
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
}
