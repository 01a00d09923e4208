//! HTTP in a lattice: routes from (host name, path prefix) to actors, the wire form of a request forwarded to
//! the host that runs its actor, and the outgoing-request policy an `http:outgoing` link grants.
//!
//! ```
//! use lattice_core::http::{Route, RouteTable};
//!
//! let routes = RouteTable::new(vec![
//!     ("http-hello".parse().unwrap(), "/".parse::<Route>().unwrap()),
//!     ("edge-api".parse().unwrap(), "api.example.com/v1".parse::<Route>().unwrap()),
//! ]);
//! assert_eq!(routes.find("api.example.com:8080", "/v1/prefs").unwrap().as_str(), "edge-api");
//! assert_eq!(routes.find("api.example.com", "/v10").unwrap().as_str(), "http-hello");
//! assert_eq!(routes.find("other.example.com", "/v1").unwrap().as_str(), "http-hello");
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::allow::{AllowList, UrlPattern};
use crate::link::{Interface, LinkSpec};
use crate::subject::Name;

/// The header every response of a lattice ingress carries: the host that ran the actor (or answered the error).
pub const SERVED_BY: &str = "x-lattice-host";

/// Longest path prefix of a route.
pub const MAX_ROUTE_PATH: usize = 1024;

/// Where HTTP requests go to reach an actor: an optional host name (exact, or `*.example.com` for any name
/// under it) and a path prefix that matches whole segments (`/v1` matches `/v1` and `/v1/x`, not `/v10`).
///
/// Written `[host]/path`: `/`, `/v1`, `api.example.com/v1`, `*.example.com/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    /// Lower-case host name (no port); `None` matches any host.
    pub host: Option<String>,
    /// Starts with `/`; no trailing `/` except the root.
    pub path: String,
}

/// Why a route could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid route `{route}`: {reason}")]
pub struct RouteError {
    /// The route as given.
    pub route: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Route {
    /// A route for `host` (`None`: any) and `path`.
    pub fn new(host: Option<&str>, path: &str) -> Result<Self, RouteError> {
        let text = format!("{}{path}", host.unwrap_or_default());
        let error = |reason| RouteError { route: text.clone(), reason };
        if !path.starts_with('/') {
            return Err(error("the path must start with `/`"));
        }
        if path.len() > MAX_ROUTE_PATH {
            return Err(error("the path is longer than 1024 bytes"));
        }
        if path.contains(['?', '#']) || path.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(error("the path has no query, fragment, spaces or control characters"));
        }
        let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
        let host = match host.map(str::to_ascii_lowercase).filter(|h| !h.is_empty()) {
            None => None,
            Some(host) => {
                let name = host.strip_prefix("*.").unwrap_or(&host);
                let plain = !name.is_empty()
                    && name.len() <= 253
                    && name
                        .split('.')
                        .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
                if !plain {
                    return Err(error("the host must be a DNS name (or `*.` and one), without a port"));
                }
                Some(host)
            }
        };
        Ok(Self { host, path: if path.is_empty() { "/".into() } else { path.into() } })
    }

    /// How well `host` (lower-case, no port) and `path` match: `None` if not at all; higher is more specific.
    fn score(&self, host: &str, path: &str) -> Option<(u8, usize)> {
        let host_rank = match &self.host {
            None => 0,
            Some(pattern) => match pattern.strip_prefix("*.") {
                Some(suffix) => {
                    let under = host.strip_suffix(suffix).is_some_and(|rest| rest.ends_with('.') && rest.len() > 1);
                    if !under {
                        return None;
                    }
                    1
                }
                None if pattern == host => 2,
                None => return None,
            },
        };
        let path_ok = self.path == "/"
            || path.strip_prefix(self.path.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        path_ok.then_some((host_rank, self.path.len()))
    }
}

impl FromStr for Route {
    type Err = RouteError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.find('/') {
            Some(0) => Route::new(None, text),
            Some(at) => Route::new(Some(&text[..at]), &text[at..]),
            None => {
                Err(RouteError { route: text.into(), reason: "expected [host]/path, e.g. `/` or `api.example.com/v1`" })
            }
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.host.as_deref().unwrap_or_default(), self.path)
    }
}

/// Every route of a lattice, for finding the actor a request goes to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<(Name, Route)>,
}

impl RouteTable {
    /// A table of `(actor, route)` pairs.
    pub fn new(routes: Vec<(Name, Route)>) -> Self {
        Self { routes }
    }

    /// The routes, in the order given.
    pub fn routes(&self) -> &[(Name, Route)] {
        &self.routes
    }

    /// The actor for a request to `authority` (`host[:port]`, as in the `Host` header) and `path`: the most
    /// specific route (an exact host over a `*.` host over any host, then the longest path prefix).
    pub fn find(&self, authority: &str, path: &str) -> Option<&Name> {
        let host = host_of(authority);
        let path = path.split(['?', '#']).next().unwrap_or_default();
        self.routes
            .iter()
            .filter_map(|(actor, route)| route.score(&host, path).map(|score| (score, actor)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, actor)| actor)
    }
}

/// The lower-case host of an authority, without port or IPv6 brackets.
fn host_of(authority: &str) -> String {
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// An HTTP request forwarded over the lattice to a host that runs the actor (body complete, within the cap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// `GET`, `POST`, ….
    pub method: String,
    /// `http` or `https`, as the ingress received it.
    pub scheme: String,
    /// The `Host` the client asked for.
    pub authority: String,
    /// Path and query.
    pub path: String,
    /// Header names (lower-case) and values, in order.
    pub headers: Vec<(String, serde_bytes::ByteBuf)>,
    /// The whole body.
    pub body: serde_bytes::ByteBuf,
}

/// An actor's HTTP response (body complete, within the cap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower-case) and values, in order.
    pub headers: Vec<(String, serde_bytes::ByteBuf)>,
    /// The whole body.
    pub body: serde_bytes::ByteBuf,
}

/// The config key of an `http:outgoing` link that lists the hosts requests may go to.
pub const HOSTS_KEY: &str = "hosts";
/// The only link name for outgoing HTTP, and the only provider: `http:outgoing=allow,hosts=…`.
pub const OUTGOING: &str = "outgoing";
/// See [`OUTGOING`].
pub const ALLOW: &str = "allow";

/// Where an actor's outgoing HTTP requests may go: the `hosts=` patterns of its `http:outgoing=allow` link.
///
/// A pattern is `host[:port]` as in [`crate::allow`] (labels with `*` within one label, `*` alone for any host,
/// `[v6]`): without a port it allows the scheme's default (80 for http, 443 for https). Both `http` and `https`
/// are allowed. Private, loopback, link-local and other non-public addresses are refused unless a pattern names
/// the host exactly (no `*`): a wildcard never reaches them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingPolicy {
    allow: AllowList,
}

/// What an allowed request may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only public addresses.
    Public,
    /// Any address: the host is listed exactly.
    Any,
}

impl OutgoingPolicy {
    /// The policy of an `http` link; an error says what is wrong with it.
    pub fn from_link(spec: &LinkSpec) -> Result<Self, String> {
        if spec.interface != Interface::Http || spec.name != OUTGOING || spec.provider != ALLOW {
            return Err(format!(
                "an http link is written `http:{OUTGOING}={ALLOW},{HOSTS_KEY}=a.example.com|*.svc:8443`"
            ));
        }
        if let Some(key) = spec.config.keys().find(|k| k.as_str() != HOSTS_KEY) {
            return Err(format!("unknown http link setting `{key}` (expected `{HOSTS_KEY}`)"));
        }
        let hosts = spec.config.get(HOSTS_KEY).map(String::as_str).unwrap_or_default();
        let mut allow = AllowList::default();
        for host in hosts.split('|').map(str::trim).filter(|h| !h.is_empty()) {
            for scheme in ["http", "https"] {
                let pattern: UrlPattern =
                    format!("{scheme}://{host}").parse().map_err(|e: crate::allow::PatternError| e.to_string())?;
                allow.push(pattern);
            }
        }
        if allow.is_empty() {
            return Err(format!("http link `{spec}` lists no hosts (`{HOSTS_KEY}=a.example.com|b.example.com`)"));
        }
        Ok(Self { allow })
    }

    /// Whether a request to `url` (`scheme://authority…`) may go out, and to which addresses; `None`: denied.
    pub fn check(&self, url: &str) -> Option<Reach> {
        let matched = self.allow.matching(url).ok()?;
        Some(if matched.iter().any(|p| p.names_one_host()) { Reach::Any } else { Reach::Public })
    }
}

/// Whether `ip` is an address anyone on the internet could reach (not loopback, private, link-local, shared,
/// unspecified, multicast, documentation or benchmarking space).
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn table(routes: &[(&str, &str)]) -> RouteTable {
        RouteTable::new(routes.iter().map(|(a, r)| (Name::new(*a).unwrap(), r.parse().unwrap())).collect())
    }

    #[test]
    fn routes_pick_the_most_specific_match_on_whole_segments() {
        let t = table(&[("root", "/"), ("v1", "/v1/"), ("api", "api.example.com/v1"), ("any", "*.example.com/")]);
        let find = |a: &str, p: &str| t.find(a, p).map(|n| n.as_str().to_owned());
        assert_eq!(find("x.org", "/"), Some("root".into()));
        assert_eq!(find("x.org", "/v1"), Some("v1".into()));
        assert_eq!(find("x.org", "/v1/a?q=1"), Some("v1".into()));
        assert_eq!(find("x.org", "/v10"), Some("root".into()));
        assert_eq!(find("API.example.com:443", "/v1/prefs"), Some("api".into()));
        assert_eq!(find("api.example.com", "/v2"), Some("any".into()));
        assert_eq!(find("example.com", "/v2"), Some("root".into()));
        assert_eq!(table(&[("v1", "/v1")]).find("x", "/"), None);
    }

    #[test]
    fn bad_routes_are_refused() {
        for bad in ["v1", "/a b", "/a?b", "api.example.com:80/", "a..b/", "*/x"] {
            assert!(bad.parse::<Route>().is_err(), "{bad}");
        }
        assert_eq!("API.Example.com/v1/".parse::<Route>().unwrap().to_string(), "api.example.com/v1");
    }

    #[test]
    fn outgoing_policy_allows_listed_hosts_and_private_only_when_exact() {
        let link: LinkSpec =
            "http:outgoing=allow,hosts=api.example.com|*.svc.internal:8443|127.0.0.1:9000".parse().unwrap();
        let policy = OutgoingPolicy::from_link(&link).unwrap();
        assert_eq!(policy.check("https://api.example.com/x"), Some(Reach::Any));
        assert_eq!(policy.check("http://api.example.com:80/x"), Some(Reach::Any));
        assert_eq!(policy.check("https://api.example.com:8443/x"), None);
        assert_eq!(policy.check("https://a.svc.internal:8443/"), Some(Reach::Public));
        assert_eq!(policy.check("http://127.0.0.1:9000/"), Some(Reach::Any));
        assert_eq!(policy.check("http://127.0.0.1:9001/"), None);
        assert_eq!(policy.check("http://evil.com/"), None);
        for bad in ["http:outgoing=allow", "http:out=allow,hosts=a", "http:outgoing=allow,hosts=a,x=1"] {
            assert!(OutgoingPolicy::from_link(&bad.parse().unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_addresses() {
        for (ip, public) in [
            ("8.8.8.8", true),
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("::1", false),
            ("fd00::1", false),
            ("::ffff:127.0.0.1", false),
            ("2606:4700::1111", true),
        ] {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }
}
