//! Which backend URLs a host lets a provider connect to: an allow-list of URL patterns.
//!
//! A pattern is `scheme://host[:port]`:
//! - `scheme` matches exactly (`redis` does not match `rediss`);
//! - `host` is a DNS name or IPv4 address whose dot-separated labels are compared one by one (case-insensitive);
//!   a `*` in a label matches any characters within that label, never a dot, so `*.cache.internal` matches
//!   `a.cache.internal` but not `a.b.cache.internal` or `cache.internal`. A host of `*` alone matches any host.
//!   `[::1]` is an IPv6 address (no wildcards).
//! - `port` is a number or `*`; without one, only the scheme's default port matches (6379 for `redis` and
//!   `rediss`), given or implied.
//!
//! A URL is parsed (with the `url` crate, as the Redis client parses it) before it is matched, never compared as
//! a string prefix: `redis://127.0.0.1.evil.com` and `redis://127.0.0.1@evil.com` do not match
//! `redis://127.0.0.1:*`. The user-info part (user, password) plays no part in matching and is never shown:
//! [`UrlRefusal`] carries the URL as `scheme://host[:port]` only.
//!
//! ```
//! use lattice_core::allow::AllowList;
//!
//! let allow = AllowList::parse(["redis://127.0.0.1:*", "rediss://*.cache.internal"]).unwrap();
//! assert!(allow.check("redis://:secret@127.0.0.1:6379/0").is_ok());
//! assert!(allow.check("rediss://eu.cache.internal").is_ok());
//! assert!(allow.check("redis://127.0.0.1.evil.com:6379").is_err());
//! assert!(allow.check("rediss://eu.cache.internal:7000").is_err());
//! ```

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// The patterns `lattice up` allows: Redis on loopback, any port.
pub const LOOPBACK_REDIS: [&str; 3] = ["redis://127.0.0.1:*", "redis://localhost:*", "redis://[::1]:*"];

/// The port a scheme implies when a URL gives none.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "redis" | "rediss" => Some(6379),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Why a pattern could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid url pattern `{pattern}`: {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: any host.
    Any,
    /// Lower-case labels, each possibly with `*`.
    Labels(Vec<String>),
    /// `[…]`: one IPv6 address.
    Ipv6(Ipv6Addr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// No port in the pattern: the scheme's default port, given or implied.
    Default,
    /// `*`.
    Any,
    /// One port.
    Exact(u16),
}

/// One allowed `scheme://host[:port]` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    text: String,
    scheme: String,
    host: HostPattern,
    port: PortPattern,
}

impl fmt::Display for UrlPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

impl FromStr for UrlPattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| PatternError { pattern: text.to_owned(), reason };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| error("expected scheme://host[:port]"))?;
        let scheme = scheme.to_ascii_lowercase();
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(error("the scheme must be letters, digits, `+`, `-` or `.`"));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(error("a pattern has no path, query or fragment"));
        }
        if authority.contains('@') {
            return Err(error("a pattern has no user or password (they are ignored when matching)"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (address, after) = v6.split_once(']').ok_or_else(|| error("unclosed `[` in the host"))?;
            let address: Ipv6Addr = address.parse().map_err(|_| error("invalid IPv6 address in the host"))?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| error("expected `:port` after `]`"))?),
            };
            (HostPattern::Ipv6(address), port)
        } else {
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let host = host.to_ascii_lowercase();
            let host = if host == "*" {
                HostPattern::Any
            } else {
                let labels: Vec<String> = host.split('.').map(str::to_owned).collect();
                let ok = labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| is_label_char(c) || c == '*'));
                if !ok {
                    return Err(error(
                        "the host must be labels of letters, digits, `-`, `_` or `*`, separated by dots",
                    ));
                }
                HostPattern::Labels(labels)
            };
            (host, port)
        };
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(port) => match port.parse::<u16>() {
                Ok(number) if number > 0 && port.bytes().all(|b| b.is_ascii_digit()) => PortPattern::Exact(number),
                _ => return Err(error("the port must be 1-65535 or `*`")),
            },
        };
        Ok(UrlPattern { text: text.to_owned(), scheme, host, port })
    }
}

/// Whether `label` matches `pattern`, where each `*` stands for any run of characters (within the label).
fn label_matches(pattern: &str, label: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = label.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A URL's parts that matching looks at.
struct Target {
    scheme: String,
    host: TargetHost,
    port: Option<u16>,
}

enum TargetHost {
    Name(String),
    Ipv6(Ipv6Addr),
}

impl Target {
    fn shown(&self) -> String {
        let host = match &self.host {
            TargetHost::Name(name) => name.clone(),
            TargetHost::Ipv6(address) => format!("[{address}]"),
        };
        match self.port {
            Some(port) => format!("{}://{host}:{port}", self.scheme),
            None => format!("{}://{host}", self.scheme),
        }
    }
}

impl UrlPattern {
    /// Whether the pattern names one host (no `*` in it): a host listed explicitly.
    pub fn names_one_host(&self) -> bool {
        match &self.host {
            HostPattern::Any => false,
            HostPattern::Labels(labels) => !labels.iter().any(|l| l.contains('*')),
            HostPattern::Ipv6(_) => true,
        }
    }

    fn matches(&self, target: &Target) -> bool {
        if self.scheme != target.scheme {
            return false;
        }
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(port) => target.port.or_else(|| default_port(&target.scheme)) == Some(port),
            PortPattern::Default => target.port.is_none() || target.port == default_port(&target.scheme),
        };
        let host_ok = match (&self.host, &target.host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Ipv6(want), TargetHost::Ipv6(have)) => want == have,
            (HostPattern::Labels(want), TargetHost::Name(have)) => {
                let have: Vec<&str> = have.split('.').collect();
                want.len() == have.len() && want.iter().zip(have).all(|(w, h)| label_matches(w, h))
            }
            _ => false,
        };
        port_ok && host_ok
    }
}

/// Why a backend URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlRefusal {
    /// The text is not a URL.
    #[error("backend url is not a valid url ({reason})")]
    Invalid {
        /// Why it does not parse.
        reason: String,
    },
    /// The URL names no network host (e.g. a Unix socket), which no pattern can allow.
    #[error("backend url with scheme `{scheme}` has no network host: only host URLs can be allowed")]
    NoHost {
        /// The URL's scheme.
        scheme: String,
    },
    /// The host has characters no host name has (e.g. percent escapes).
    #[error("backend url host `{host}` is not a plain host name or ip address")]
    BadHost {
        /// The host as written.
        host: String,
    },
    /// No pattern matches.
    #[error("backend url {url} matches no allowed pattern")]
    NotAllowed {
        /// The URL as `scheme://host[:port]` (no user, password, path or query).
        url: String,
    },
}

impl UrlRefusal {
    /// The URL as shown in messages (`scheme://host[:port]`), when it could be parsed that far.
    pub fn url(&self) -> Option<&str> {
        match self {
            UrlRefusal::NotAllowed { url } => Some(url),
            _ => None,
        }
    }
}

fn target(text: &str) -> Result<Target, UrlRefusal> {
    let url = url::Url::parse(text.trim()).map_err(|e| UrlRefusal::Invalid { reason: e.to_string() })?;
    let scheme = url.scheme().to_ascii_lowercase();
    let host = match url.host() {
        None => return Err(UrlRefusal::NoHost { scheme }),
        Some(url::Host::Ipv6(address)) => TargetHost::Ipv6(address),
        Some(url::Host::Ipv4(address)) => TargetHost::Name(address.to_string()),
        Some(url::Host::Domain(name)) => {
            let name = name.to_ascii_lowercase();
            let plain = name.split('.').all(|l| !l.is_empty() && l.chars().all(is_label_char));
            if !plain {
                return Err(UrlRefusal::BadHost { host: name });
            }
            TargetHost::Name(name)
        }
    };
    Ok(Target { scheme, host, port: url.port() })
}

/// The URL patterns a host allows providers to connect to. Empty: none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<UrlPattern>,
}

impl AllowList {
    /// Parses every pattern; the first invalid one is the error.
    pub fn parse<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Result<Self, PatternError> {
        let patterns = patterns.into_iter().map(|p| p.as_ref().trim().parse()).collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// Adds a pattern (no duplicates).
    pub fn push(&mut self, pattern: UrlPattern) {
        if !self.patterns.contains(&pattern) {
            self.patterns.push(pattern);
        }
    }

    /// The patterns, in order.
    pub fn patterns(&self) -> &[UrlPattern] {
        &self.patterns
    }

    /// Whether no pattern is allowed (every URL is refused).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Accepts `url` if some pattern matches it.
    pub fn check(&self, url: &str) -> Result<(), UrlRefusal> {
        self.matching(url).map(drop)
    }

    /// The patterns `url` matches (at least one), or why it is refused.
    pub fn matching(&self, url: &str) -> Result<Vec<&UrlPattern>, UrlRefusal> {
        let target = target(url)?;
        let matched: Vec<&UrlPattern> = self.patterns.iter().filter(|p| p.matches(&target)).collect();
        if matched.is_empty() { Err(UrlRefusal::NotAllowed { url: target.shown() }) } else { Ok(matched) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_match_patterns_on_parsed_scheme_host_and_port() {
        let cases: &[(&str, &str, bool)] = &[
            // Loopback, any port.
            ("redis://127.0.0.1:*", "redis://127.0.0.1:6379", true),
            ("redis://127.0.0.1:*", "redis://127.0.0.1", true),
            ("redis://127.0.0.1:*", "redis://:s3cret@127.0.0.1:7000/2", true),
            ("redis://127.0.0.1:*", "redis://user:pw@127.0.0.1:1/0?protocol=resp3", true),
            // Lookalikes: longer host, user-info trick, other scheme, other address.
            ("redis://127.0.0.1:*", "redis://127.0.0.1.evil.com:6379", false),
            ("redis://127.0.0.1:*", "redis://127.0.0.1@evil.com:6379", false),
            ("redis://127.0.0.1:*", "redis://127.0.0.1:6379@evil.com", false),
            ("redis://127.0.0.1:*", "rediss://127.0.0.1:6379", false),
            ("redis://127.0.0.1:*", "redis://127.0.0.10:6379", false),
            ("redis://127.0.0.1:*", "redis://10.0.0.5:6379", false),
            ("redis://127.0.0.1:*", "redis://evil.com/127.0.0.1", false),
            ("redis://localhost:*", "redis://LOCALHOST:6379", true),
            ("redis://localhost:*", "redis://localhost.evil.com:6379", false),
            // Wildcard labels stay within one label.
            ("redis://*.cache.internal:6379", "redis://eu.cache.internal:6379", true),
            ("redis://*.cache.internal:6379", "redis://eu.cache.internal", true),
            ("redis://*.cache.internal:6379", "redis://a.b.cache.internal:6379", false),
            ("redis://*.cache.internal:6379", "redis://cache.internal:6379", false),
            ("redis://*.cache.internal:6379", "redis://eu.cache.internal.evil.com:6379", false),
            ("redis://*.cache.internal:6379", "redis://eu.cache.internal:6380", false),
            ("redis://*.cache.internal:6379", "redis://eu%2eevil.cache.internal:6379", false),
            ("redis://db-*.internal:*", "redis://db-7.internal:1", true),
            ("redis://db-*.internal:*", "redis://cache-7.internal:1", false),
            ("redis://10.0.0.*:6379", "redis://10.0.0.5", true),
            ("redis://10.0.0.*:6379", "redis://10.0.1.5", false),
            // No port in the pattern: the default port only.
            ("rediss://db.example.com", "rediss://db.example.com", true),
            ("rediss://db.example.com", "rediss://db.example.com:6379", true),
            ("rediss://db.example.com", "rediss://db.example.com:6380", false),
            ("rediss://db.example.com", "redis://db.example.com", false),
            // IPv6.
            ("redis://[::1]:*", "redis://[::1]:6379", true),
            ("redis://[::1]:*", "redis://[0:0::1]:6379", true),
            ("redis://[::1]:*", "redis://[::2]:6379", false),
            ("redis://127.0.0.1:*", "redis://[::1]:6379", false),
            // Any host.
            ("redis://*:6379", "redis://anything.example:6379", true),
            ("redis://*:6379", "redis://anything.example:6380", false),
        ];
        for (pattern, url, expected) in cases {
            let allow = AllowList::parse([pattern]).unwrap();
            assert_eq!(allow.check(url).is_ok(), *expected, "{pattern} vs {url}");
        }
    }

    #[test]
    fn an_empty_list_refuses_everything_and_refusals_never_show_the_password() {
        let refusal = AllowList::default().check("redis://admin:hunter2@10.0.0.5:6379/0").unwrap_err();
        assert_eq!(refusal, UrlRefusal::NotAllowed { url: "redis://10.0.0.5:6379".into() });
        assert!(!refusal.to_string().contains("hunter2"), "{refusal}");
        assert!(!refusal.to_string().contains("admin"), "{refusal}");
    }

    #[test]
    fn urls_without_a_network_host_or_with_odd_hosts_are_refused() {
        let allow = AllowList::parse(["redis://*:*", "redis+unix://*:*"]).unwrap();
        assert!(matches!(allow.check("redis+unix:///tmp/redis.sock"), Err(UrlRefusal::NoHost { .. })));
        assert!(matches!(allow.check("not a url"), Err(UrlRefusal::Invalid { .. })));
        assert!(matches!(allow.check("redis://a%2eb:1"), Err(UrlRefusal::BadHost { .. })));
        assert!(matches!(allow.check("redis://a..b:1"), Err(UrlRefusal::BadHost { .. })));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for (bad, reason) in [
            ("127.0.0.1:6379", "scheme://host"),
            ("redis://127.0.0.1:6379/0", "no path"),
            ("redis://user:pw@127.0.0.1", "no user"),
            ("redis://127.0.0.1:0", "1-65535"),
            ("redis://127.0.0.1:99999", "1-65535"),
            ("redis://127.0.0.1:6x", "1-65535"),
            ("redis://a..b", "labels"),
            ("redis://a/b", "no path"),
            ("redis://[::1", "unclosed"),
            ("redis://[zz]", "IPv6"),
            ("://host", "scheme"),
        ] {
            let error = bad.parse::<UrlPattern>().unwrap_err();
            assert!(error.to_string().contains(reason), "{bad}: {error}");
        }
    }

    #[test]
    fn the_loopback_patterns_parse_and_allow_loopback_only() {
        let allow = AllowList::parse(LOOPBACK_REDIS).unwrap();
        for ok in ["redis://127.0.0.1:6379", "redis://localhost:7000", "redis://[::1]:6379"] {
            assert!(allow.check(ok).is_ok(), "{ok}");
        }
        for refused in ["redis://10.0.0.5:6379", "rediss://127.0.0.1:6379", "redis://127.0.0.2:6379"] {
            assert!(allow.check(refused).is_err(), "{refused}");
        }
    }
}
