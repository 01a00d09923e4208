//! Links: `(actor, interface, name) -> (provider, config)`.
//!
//! An actor names neither a backend nor a provider. When it calls `wasi:keyvalue/store.open("cache")` or
//! `wasi:messaging/types.client.connect("orders")`, the host looks up the actor's link for that interface and
//! name. No link: the call fails with the interface's access-denied error; there is no default.
//!
//! A link's config is free-form `key=value` pairs interpreted by the provider. One key is common to key-value
//! providers: `bucket`, the provider-side namespace the link maps to. Without it the bucket is the actor's own,
//! `<actor>/<link name>` ([`LinkSpec::bucket`]): two actors that both link `default` never see each other's
//! keys, while every replica of one actor shares its data. `bucket=NAME` shares deliberately: every link
//! (of any actor) naming the same provider and bucket sees the same keys. Actor names cannot hold `/`, so no
//! actor's default bucket is another's.
//!
//! On the command line a link is written `<interface>:<name>=<provider>[,key=value...]`:
//!
//! ```
//! use lattice_core::link::{Interface, LinkSpec};
//!
//! let link: LinkSpec = "keyvalue:default=inmemory,bucket=counters".parse().unwrap();
//! assert_eq!(link.interface, Interface::KeyValue);
//! assert_eq!(link.name, "default");
//! assert_eq!(link.provider, "inmemory");
//! assert_eq!(link.bucket("orders"), "counters");
//! let own: LinkSpec = "keyvalue:default=inmemory".parse().unwrap();
//! assert_eq!(own.bucket("orders"), "orders/default");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Longest link name or provider name accepted.
pub const MAX_NAME_LEN: usize = 256;

/// An interface an actor can be linked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Interface {
    /// `wasi:keyvalue` (store, atomics, batch).
    KeyValue,
    /// `wasi:messaging` (types, producer, request-reply).
    Messaging,
    /// `wasi:http` (outgoing requests): `http:outgoing=allow,hosts=a.example.com|*.svc:8443` lets the actor's
    /// requests reach those hosts (see [`crate::http::OutgoingPolicy`]).
    Http,
}

impl Interface {
    /// The short name used in link specs and on the wire (`keyvalue`, `messaging`).
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::KeyValue => "keyvalue",
            Interface::Messaging => "messaging",
            Interface::Http => "http",
        }
    }

    /// The WIT package that carries this interface (`wasi:keyvalue`, `wasi:messaging`): the capability an
    /// actor's claims must list to be linked for it.
    pub fn capability(self) -> &'static str {
        match self {
            Interface::KeyValue => "wasi:keyvalue",
            Interface::Messaging => "wasi:messaging",
            Interface::Http => "wasi:http",
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interface {
    type Err = LinkParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keyvalue" | "wasi:keyvalue" => Ok(Interface::KeyValue),
            "messaging" | "wasi:messaging" => Ok(Interface::Messaging),
            "http" | "wasi:http" => Ok(Interface::Http),
            other => Err(LinkParseError::UnknownInterface(other.to_owned())),
        }
    }
}

/// One link of an actor: the provider and config an `(interface, name)` import resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// The interface linked.
    pub interface: Interface,
    /// The identifier the actor passes to `open`/`connect`.
    pub name: String,
    /// The provider instance that serves it (e.g. `inmemory`, `redis`).
    pub provider: String,
    /// Provider-specific settings.
    pub config: BTreeMap<String, String>,
}

impl LinkSpec {
    /// The provider-side bucket (namespace) this link of `actor` maps to: config `bucket` (shared with every
    /// link naming it), else the actor's own `<actor>/<link name>`.
    pub fn bucket(&self, actor: &str) -> String {
        match self.config.get("bucket") {
            Some(bucket) => bucket.clone(),
            None => format!("{actor}/{}", self.name),
        }
    }
}

/// Why a link spec could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkParseError {
    /// The spec lacks `:` or `=` (the shape is `<interface>:<name>=<provider>[,k=v...]`).
    #[error("link `{0}` is not of the form <interface>:<name>=<provider>[,key=value...]")]
    Shape(String),
    /// The interface is not one lattice links.
    #[error("unknown interface `{0}` (expected keyvalue, messaging or http)")]
    UnknownInterface(String),
    /// A name is empty, too long or has control characters.
    #[error("invalid {what} `{value}`: must be 1-{MAX_NAME_LEN} printable characters")]
    InvalidName {
        /// Which part of the spec (`link name`, `provider`, `config key`).
        what: &'static str,
        /// The offending text.
        value: String,
    },
    /// A config entry lacks `=`.
    #[error("link config entry `{0}` is not key=value")]
    Config(String),
}

fn check_name(what: &'static str, value: &str) -> Result<(), LinkParseError> {
    if value.is_empty() || value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(LinkParseError::InvalidName { what, value: value.to_owned() });
    }
    Ok(())
}

impl FromStr for LinkSpec {
    type Err = LinkParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape = || LinkParseError::Shape(s.to_owned());
        let (target, rest) = s.split_once('=').ok_or_else(shape)?;
        let (interface, name) = target.split_once(':').ok_or_else(shape)?;
        // `wasi:keyvalue:cache=...` is accepted too: the interface may carry its package prefix.
        let (interface, name) = match name.split_once(':') {
            Some((iface, name)) if interface == "wasi" => (format!("wasi:{iface}"), name),
            _ => (interface.to_owned(), name),
        };
        let interface: Interface = interface.parse()?;
        check_name("link name", name)?;
        let mut parts = rest.split(',');
        let provider = parts.next().unwrap_or_default();
        check_name("provider", provider)?;
        let mut config = BTreeMap::new();
        for entry in parts {
            let (k, v) = entry.split_once('=').ok_or_else(|| LinkParseError::Config(entry.to_owned()))?;
            check_name("config key", k)?;
            config.insert(k.to_owned(), v.to_owned());
        }
        Ok(LinkSpec { interface, name: name.to_owned(), provider: provider.to_owned(), config })
    }
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}={}", self.interface, self.name, self.provider)?;
        for (k, v) in &self.config {
            write!(f, ",{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for s in [
            "keyvalue:default=inmemory",
            "messaging:orders=nats,subjects=orders.new",
            "keyvalue:cache=redis,bucket=b,url=redis://127.0.0.1:6379",
        ] {
            let link: LinkSpec = s.parse().expect(s);
            assert_eq!(link.to_string(), s);
        }
        let link: LinkSpec = "wasi:keyvalue:cache=inmemory".parse().expect("wasi prefix");
        assert_eq!(link.interface, Interface::KeyValue);
        assert_eq!(link.name, "cache");
        assert_eq!(link.bucket("a"), "a/cache");
    }

    #[test]
    fn buckets_are_the_actors_own_unless_named() {
        let own: LinkSpec = "keyvalue:default=inmemory".parse().expect("link");
        assert_eq!(own.bucket("a"), "a/default");
        assert_ne!(own.bucket("a"), own.bucket("b"));
        let shared: LinkSpec = "keyvalue:default=inmemory,bucket=shared".parse().expect("link");
        assert_eq!(shared.bucket("a"), "shared");
        assert_eq!(shared.bucket("b"), "shared");
    }

    #[test]
    fn rejects_bad_specs_with_specific_errors() {
        assert!(matches!("keyvalue".parse::<LinkSpec>(), Err(LinkParseError::Shape(_))));
        assert!(matches!("smtp:x=y".parse::<LinkSpec>(), Err(LinkParseError::UnknownInterface(_))));
        assert!(matches!(
            "keyvalue:=inmemory".parse::<LinkSpec>(),
            Err(LinkParseError::InvalidName { what: "link name", .. })
        ));
        assert!(matches!("keyvalue:a=".parse::<LinkSpec>(), Err(LinkParseError::InvalidName { what: "provider", .. })));
        assert!(matches!("keyvalue:a=inmemory,oops".parse::<LinkSpec>(), Err(LinkParseError::Config(_))));
    }
}
