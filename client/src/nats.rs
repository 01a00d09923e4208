//! Connecting to NATS with the credentials and TLS settings every lattice connection (hosts, clients) shares.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{Client, ConnectOptions};

/// How to reach and authenticate to NATS. Every connection lattice makes (hosts, CLI) uses one of these.
#[derive(Debug, Clone, Default)]
pub struct NatsConfig {
    /// Server URLs (several for a cluster), e.g. `nats://127.0.0.1:4222`.
    pub servers: Vec<String>,
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password (with `user`).
    pub password: Option<String>,
    /// Token authentication.
    pub token: Option<String>,
    /// An NKey seed (`SU…`) for nkey authentication.
    pub nkey_seed: Option<String>,
    /// A `.creds` file (JWT + nkey seed).
    pub creds_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify the server with.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM), with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Refuse to connect without TLS.
    pub require_tls: bool,
    /// The prefix of this connection's inboxes (replies to its requests), e.g. `_INBOX.web` for a NATS user
    /// allowed to subscribe only to `_INBOX.web.>` (`lattice nats-config`); `None`: `_INBOX`.
    pub inbox_prefix: Option<String>,
}

/// Why a NATS connection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// No server URL was given.
    #[error("no NATS server given (use --nats or LATTICE_NATS)")]
    NoServers,
    /// Settings that only make sense together were given alone.
    #[error("{0}")]
    Incomplete(&'static str),
    /// The inbox prefix is not a literal subject under `_INBOX`.
    #[error(
        "invalid NATS inbox prefix `{0}`: use `_INBOX` followed by dot-separated tokens without wildcards or \
         spaces, e.g. _INBOX.web (hosts answer only under _INBOX.)"
    )]
    InboxPrefix(String),
    /// The creds file could not be read.
    #[error("cannot read NATS credentials file {path}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to NATS at {servers}: {cause}{}", hint(*kind))]
    Connect {
        /// The servers tried.
        servers: String,
        /// What went wrong, as async-nats classifies it.
        kind: async_nats::ConnectErrorKind,
        /// The innermost cause, said once (async-nats repeats it through its error chain).
        cause: String,
    },
}

/// What a person can do about a failed connection of `kind`.
fn hint(kind: async_nats::ConnectErrorKind) -> &'static str {
    use async_nats::ConnectErrorKind as Kind;
    match kind {
        Kind::Io | Kind::TimedOut | Kind::Dns | Kind::MaxReconnects => {
            " (is a NATS server running there? start one with `lattice up`)"
        }
        Kind::Authentication | Kind::AuthorizationViolation => {
            " (check --nats-user/--nats-password, --nats-token, --nats-nkey or --nats-creds)"
        }
        Kind::Tls => " (check --tls-ca, --tls-cert and --tls-key)",
        Kind::ServerParse => "",
    }
}

impl ConnectError {
    fn connect(servers: String, error: &async_nats::ConnectError) -> Self {
        // The deepest source says what happened (`Connection refused (os error 111)`); the outer layers only
        // repeat it after a category (`IO error: …`). Without a source, the category is all there is.
        let mut cause: &dyn std::error::Error = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        let cause = if std::ptr::addr_eq(cause, error as &dyn std::error::Error) {
            error.kind().to_string()
        } else {
            cause.to_string()
        };
        ConnectError::Connect { servers, kind: error.kind(), cause }
    }
}

/// An inbox prefix must be a literal subject: dot-separated tokens, none empty, without wildcards, spaces or
/// control characters (async-nats would otherwise subscribe to a pattern or send an invalid command), and lie
/// under `_INBOX`, since hosts answer only there ([`lattice_core::reply::check`]).
fn check_inbox_prefix(prefix: &str) -> Result<(), ConnectError> {
    let literal = |token: &str| {
        !token.is_empty()
            && !token.bytes().any(|b| b == b'*' || b == b'>' || b.is_ascii_whitespace() || b.is_ascii_control())
    };
    let under_inbox = prefix.split('.').next() == Some(lattice_core::reply::INBOX_PREFIX);
    if under_inbox && prefix.split('.').all(literal) {
        Ok(())
    } else {
        Err(ConnectError::InboxPrefix(prefix.to_owned()))
    }
}

/// How long a first connection attempt may take before it is reported as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl NatsConfig {
    /// A config for plain connections to `servers`.
    pub fn new(servers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { servers: servers.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// Connects, naming the connection `name` (visible in the server's monitoring). After a successful
    /// first connection the client reconnects forever and resubscribes on its own.
    pub async fn connect(&self, name: &str) -> Result<Client, ConnectError> {
        if self.servers.is_empty() {
            return Err(ConnectError::NoServers);
        }
        let mut options = match &self.creds_file {
            Some(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|source| ConnectError::Credentials { path: path.clone(), source })?,
            None => ConnectOptions::new(),
        };
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => {
                options = options.user_and_password(user.clone(), password.clone());
            }
            (None, None) => {}
            _ => return Err(ConnectError::Incomplete("NATS user and password must be given together")),
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(seed) = &self.nkey_seed {
            options = options.nkey(seed.clone());
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                options = options.add_client_certificate(cert.clone(), key.clone());
            }
            (None, None) => {}
            _ => return Err(ConnectError::Incomplete("TLS client certificate and key must be given together")),
        }
        if self.require_tls {
            options = options.require_tls(true);
        }
        if let Some(prefix) = &self.inbox_prefix {
            check_inbox_prefix(prefix)?;
            options = options.custom_inbox_prefix(prefix);
        }
        let servers = self.servers.join(",");
        options
            .name(name)
            .connection_timeout(CONNECT_TIMEOUT)
            .max_reconnects(None)
            .connect(self.servers.as_slice())
            .await
            .map_err(|error| ConnectError::connect(servers, &error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_prefixes_must_be_literal_subjects() {
        for bad in [
            "",
            "_INBOX.",
            ".x",
            "a..b",
            "_INBOX.*",
            "_INBOX.>",
            "_INBOX.a b",
            "_INBOX.a\r\n",
            "replies.web_2",
            "_INBOXES.a",
        ] {
            assert!(matches!(check_inbox_prefix(bad), Err(ConnectError::InboxPrefix(p)) if p == bad), "{bad:?}");
        }
        for good in ["_INBOX", "_INBOX.web", "_INBOX.host-1"] {
            assert!(check_inbox_prefix(good).is_ok(), "{good:?}");
        }
    }
}
