//! The nats-server configuration of a lattice's NATS account: who may publish and subscribe where
//! (docs/security.md §12). Plain data and text, written by `lattice nats-config`.
//!
//! Four roles, each a set of nkey users:
//! - **host**: serves invocations, control and provider subjects, uses the lattice's JetStream streams (reads,
//!   creates; writes only the hosts and leader buckets and the apps' `status.*` keys of the state bucket), and
//!   answers on any inbox. It can never delete, purge or rewrite a lattice stream, nor write links, routes,
//!   apps or artifacts.
//! - **operator**: every lattice subject (control, invocations), the state bucket and the artifact store,
//!   and full management of the lattice's streams; reads events.
//! - **caller**: publishes invocations only.
//! - **app**: a user of the separate `APP` account (`lattice host --app-nats-*`, application clients), which
//!   has no lattice subjects or streams at all.
//!
//! Every user of the lattice account subscribes only to its own inboxes, `_INBOX.<user>.>`, and must connect
//! with that inbox prefix (`--nats-inbox-prefix _INBOX.<user>`), so nobody reads another's replies.
//!
//! ```
//! use lattice_core::nats_config::{Role, Setup, User, UserSeed};
//! use lattice_core::subject::Name;
//!
//! let seed = UserSeed::generate().unwrap();
//! let user = User { name: Name::new("web").unwrap(), role: Role::Caller, key: seed.public_key().clone() };
//! let setup = Setup::new(vec![Name::new("prod").unwrap()], vec![user]).unwrap();
//! assert!(setup.render().contains("lattice.prod.actor.*.invoke"));
//! ```

use std::fmt;
use std::str::FromStr;

use rand_core::{OsRng, RngCore};

use crate::subject::{ALL_INBOXES, Name, Subjects, inbox_prefix, inbox_wildcard, jetstream};

/// What a NATS user of the lattice may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// A `lattice host` process.
    Host,
    /// A person or tool driving the lattice (the CLI with an operator key).
    Operator,
    /// A client that only invokes actors.
    Caller,
    /// A user of the separate application account.
    App,
}

impl Role {
    /// The role's name, as the CLI flags spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Operator => "operator",
            Role::Caller => "caller",
            Role::App => "app",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A NATS user's public nkey (`U…`), checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct UserKey(String);

/// Why a text is not a user's public nkey.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserKeyError {
    /// Not an nkey public key at all (bad length, characters or checksum).
    #[error("`{key}` is not an nkey public key: {reason}")]
    Invalid {
        /// The text given.
        key: String,
        /// What the nkeys decoder said.
        reason: String,
    },
    /// An nkey of another kind (an account, operator or seed…).
    #[error("`{key}` is not a user's public nkey (one starts with `U`)")]
    NotAUser {
        /// The text given.
        key: String,
    },
}

impl UserKey {
    /// The key as text (`U…`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UserKey {
    type Err = UserKeyError;
    fn from_str(key: &str) -> Result<Self, Self::Err> {
        let pair = nkeys::KeyPair::from_public_key(key)
            .map_err(|e| UserKeyError::Invalid { key: key.to_owned(), reason: e.to_string() })?;
        if pair.key_pair_type() != nkeys::KeyPairType::User {
            return Err(UserKeyError::NotAUser { key: key.to_owned() });
        }
        Ok(UserKey(pair.public_key()))
    }
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A freshly generated user key pair. `Debug` shows the public key only.
pub struct UserSeed {
    public: UserKey,
    seed: String,
}

/// Why no key pair could be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot generate an nkey: {reason}")]
pub struct GenerateError {
    /// What failed (the random number generator).
    pub reason: String,
}

impl UserSeed {
    /// A new random user key pair, from the operating system's random number generator.
    pub fn generate() -> Result<UserSeed, GenerateError> {
        let mut raw = [0u8; 32];
        OsRng.try_fill_bytes(&mut raw).map_err(|e| GenerateError { reason: e.to_string() })?;
        let pair = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, raw);
        raw.fill(0);
        let pair = pair.map_err(|e| GenerateError { reason: e.to_string() })?;
        let seed = pair.seed().map_err(|e| GenerateError { reason: e.to_string() })?;
        Ok(UserSeed { public: UserKey(pair.public_key()), seed })
    }

    /// The public key, for the server's configuration.
    pub fn public_key(&self) -> &UserKey {
        &self.public
    }

    /// The seed (`SU…`), for the user's `--nats-nkey`. Keep it secret.
    pub fn seed(&self) -> &str {
        &self.seed
    }
}

impl fmt::Debug for UserSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSeed").field("public", &self.public).finish_non_exhaustive()
    }
}

/// A user as the CLI names one: `NAME`, or `NAME=UKEY` to use an existing public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// The user's name (also its inbox prefix's last token).
    pub name: Name,
    /// Its public key; `None`: generate one.
    pub key: Option<UserKey>,
}

/// Why a user spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserSpecError {
    /// The name is not a valid token.
    #[error(transparent)]
    Name(#[from] crate::subject::InvalidName),
    /// The key is not a user's public nkey.
    #[error(transparent)]
    Key(#[from] UserKeyError),
}

impl FromStr for UserSpec {
    type Err = UserSpecError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, key) = match text.split_once('=') {
            Some((name, key)) => (name, Some(key.parse()?)),
            None => (text, None),
        };
        Ok(UserSpec { name: Name::new(name)?, key })
    }
}

/// One user of the generated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its name: unique in the configuration, and its inbox prefix's last token.
    pub name: Name,
    /// What it may do.
    pub role: Role,
    /// Its public key.
    pub key: UserKey,
}

/// Subjects a user may publish and subscribe to (allow lists: everything else is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Permissions {
    /// Publish allow list.
    pub publish: Vec<String>,
    /// Subscribe allow list.
    pub subscribe: Vec<String>,
}

/// What `role` may do on `lattices`, as user `user`; `None` for [`Role::App`] (the whole application account).
pub fn permissions(role: Role, user: &Name, lattices: &[Name]) -> Option<Permissions> {
    let mut p = Permissions::default();
    let own_inbox = inbox_wildcard(&inbox_prefix(user));
    match role {
        Role::App => return None,
        Role::Host => {
            p.publish.extend([ALL_INBOXES.to_owned(), jetstream::API_INFO.to_owned()]);
            for s in lattices.iter().cloned().map(Subjects::new) {
                p.publish.extend([
                    s.lattice_wildcard(),
                    jetstream::kv_keys(&s.state_bucket(), "status.>"),
                    jetstream::kv_keys(&s.hosts_bucket(), ">"),
                    jetstream::kv_keys(&s.leader_bucket(), ">"),
                    jetstream::update(&s.events_stream()),
                ]);
                for stream in s.streams() {
                    p.publish.push(jetstream::create(&stream));
                    p.publish.extend(jetstream::read(&stream));
                }
                p.subscribe.push(s.lattice_wildcard());
            }
        }
        Role::Operator => {
            p.publish.push(jetstream::API_INFO.to_owned());
            p.publish.extend(jetstream::API_STREAM_LISTS.map(str::to_owned));
            for s in lattices.iter().cloned().map(Subjects::new) {
                p.publish.extend([
                    s.lattice_wildcard(),
                    jetstream::kv_keys(&s.state_bucket(), ">"),
                    jetstream::object_writes(&s.artifact_bucket()),
                ]);
                for stream in s.streams() {
                    p.publish.extend([jetstream::create(&stream), jetstream::update(&stream)]);
                    p.publish.extend(jetstream::read(&stream));
                    p.publish.extend(jetstream::remove(&stream));
                }
                p.subscribe.push(s.events_wildcard());
            }
        }
        Role::Caller => {
            p.publish.extend(lattices.iter().cloned().map(|l| Subjects::new(l).invoke_wildcard()));
        }
    }
    p.subscribe.push(own_inbox);
    Some(p)
}

/// A lattice account's users and the lattices they act on: the input of [`Setup::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    lattices: Vec<Name>,
    users: Vec<User>,
}

/// Why a setup was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// No lattice was named.
    #[error("no lattice given: name at least one with --lattice")]
    NoLattice,
    /// No user of the lattice account was named.
    #[error("no users given: name at least one --host, --operator or --caller")]
    NoUsers,
    /// Two users share a name (their inbox prefixes would be the same).
    #[error("user `{0}` is named twice: every user needs its own name")]
    DuplicateName(Name),
    /// Two users share a key (the server could not tell them apart).
    #[error("users `{0}` and `{1}` have the same key")]
    DuplicateKey(Name, Name),
}

impl Setup {
    /// Checks the users (unique names and keys, at least one lattice user) and `lattices` (at least one;
    /// duplicates are dropped).
    pub fn new(mut lattices: Vec<Name>, users: Vec<User>) -> Result<Setup, SetupError> {
        lattices.sort();
        lattices.dedup();
        if lattices.is_empty() {
            return Err(SetupError::NoLattice);
        }
        if users.iter().all(|u| u.role == Role::App) {
            return Err(SetupError::NoUsers);
        }
        for (i, user) in users.iter().enumerate() {
            for other in &users[..i] {
                if other.name == user.name {
                    return Err(SetupError::DuplicateName(user.name.clone()));
                }
                if other.key == user.key {
                    return Err(SetupError::DuplicateKey(other.name.clone(), user.name.clone()));
                }
            }
        }
        Ok(Setup { lattices, users })
    }

    /// The lattices, sorted.
    pub fn lattices(&self) -> &[Name] {
        &self.lattices
    }

    /// The users, in the order given.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The nats-server configuration: account `LATTICE` (JetStream on) with the hosts, operators and callers,
    /// and, when there are app users, account `APP` (JetStream on, for at-least-once links) with them. No
    /// imports or exports join the two.
    pub fn render(&self) -> String {
        let names: Vec<String> = self.lattices.iter().map(|l| format!("`{l}`")).collect();
        let mut out = format!(
            "# nats-server configuration for lattice {}, written by `lattice nats-config`.\n\
             # Roles and what each may do: docs/security.md section 12. Add listen, TLS and JetStream storage\n\
             # settings for your servers; keep the accounts as they are.\n\
             jetstream: enabled\n\naccounts {{\n  LATTICE {{\n    jetstream: enabled\n    users: [\n",
            names.join(", ")
        );
        let (app, lattice): (Vec<&User>, Vec<&User>) = self.users.iter().partition(|u| u.role == Role::App);
        for user in lattice {
            out.push_str(&format!(
                "      # {} `{}`: connects with --nats-inbox-prefix {}\n",
                user.role,
                user.name,
                inbox_prefix(&user.name)
            ));
            out.push_str(&format!("      {{\n        nkey: \"{}\"\n", user.key));
            if let Some(p) = permissions(user.role, &user.name, &self.lattices) {
                out.push_str("        permissions: {\n");
                out.push_str(&allow_list("publish", &p.publish));
                out.push_str(&allow_list("subscribe", &p.subscribe));
                out.push_str("        }\n");
            }
            out.push_str("      }\n");
        }
        out.push_str("    ]\n  }\n");
        if !app.is_empty() {
            out.push_str("  APP {\n    jetstream: enabled\n    users: [\n");
            for user in app {
                out.push_str(&format!("      # app `{}`\n      {{ nkey: \"{}\" }}\n", user.name, user.key));
            }
            out.push_str("    ]\n  }\n");
        }
        out.push_str("}\n");
        out
    }
}

/// `what: { allow: [ … ] }`, one quoted subject a line.
fn allow_list(what: &str, subjects: &[String]) -> String {
    let mut out = format!("          {what}: {{ allow: [\n");
    for subject in subjects {
        out.push_str(&format!("            \"{subject}\"\n"));
    }
    out.push_str("          ] }\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::new(s).expect("valid")
    }

    fn user(n: &str, role: Role) -> User {
        User { name: name(n), role, key: UserSeed::generate().expect("random").public_key().clone() }
    }

    fn perms(role: Role, lattices: &[&str]) -> Permissions {
        let lattices: Vec<Name> = lattices.iter().map(|l| name(l)).collect();
        permissions(role, &name("u"), &lattices).expect("a lattice role")
    }

    #[test]
    fn callers_only_publish_invocations_and_read_their_own_inbox() {
        let p = perms(Role::Caller, &["prod"]);
        assert_eq!(p.publish, ["lattice.prod.actor.*.invoke"]);
        assert_eq!(p.subscribe, ["_INBOX.u.>"]);
    }

    #[test]
    fn hosts_never_remove_streams_nor_write_links_apps_routes_or_artifacts() {
        let p = perms(Role::Host, &["prod"]);
        for stream in Subjects::new(name("prod")).streams() {
            for removal in jetstream::remove(&stream) {
                assert!(!p.publish.contains(&removal), "{removal}");
            }
        }
        for forbidden in ["$KV.lattice_prod.>", "$O.lattice_prod_artifacts.>", "$JS.API.>"] {
            assert!(!p.publish.iter().any(|s| s == forbidden), "{forbidden}");
        }
        assert!(p.publish.contains(&"$KV.lattice_prod.status.>".to_owned()));
        assert!(p.publish.contains(&"$JS.API.STREAM.UPDATE.lattice_prod_events".to_owned()));
        assert!(!p.publish.contains(&"$JS.API.STREAM.UPDATE.KV_lattice_prod".to_owned()));
        assert_eq!(p.subscribe, ["lattice.prod.>", "_INBOX.u.>"]);
    }

    #[test]
    fn operators_manage_streams_and_write_state_but_serve_nothing() {
        let p = perms(Role::Operator, &["prod"]);
        assert!(p.publish.contains(&"$JS.API.STREAM.DELETE.KV_lattice_prod".to_owned()));
        assert!(p.publish.contains(&"$KV.lattice_prod.>".to_owned()));
        assert!(p.publish.contains(&"$O.lattice_prod_artifacts.>".to_owned()));
        assert_eq!(p.subscribe, ["lattice.prod.evt.>", "_INBOX.u.>"]);
    }

    #[test]
    fn no_role_reaches_another_lattice_or_every_inbox() {
        for role in [Role::Host, Role::Operator, Role::Caller] {
            let p = perms(role, &["a"]);
            for subject in p.publish.iter().chain(&p.subscribe) {
                assert!(!subject.contains("lattice_b") && !subject.contains("lattice.b."), "{role}: {subject}");
            }
            assert!(!p.subscribe.contains(&ALL_INBOXES.to_owned()), "{role}");
        }
        assert!(permissions(Role::App, &name("u"), &[name("a")]).is_none());
    }

    #[test]
    fn the_config_names_every_user_once_and_keeps_app_users_apart() {
        let users = vec![user("h1", Role::Host), user("alice", Role::Operator), user("web", Role::Caller)];
        let mut with_app = users.clone();
        with_app.push(user("h1-app", Role::App));
        let text = Setup::new(vec![name("prod")], with_app.clone()).expect("valid").render();
        for user in &with_app {
            assert_eq!(text.matches(user.key.as_str()).count(), 1, "{}", user.name);
        }
        let (lattice, app) = text.split_once("  APP {").expect("an APP account");
        assert!(lattice.contains(users[0].key.as_str()) && app.contains(with_app[3].key.as_str()));
        assert!(!app.contains("permissions"));
        assert!(!Setup::new(vec![name("prod")], users).expect("valid").render().contains("APP"));
    }

    #[test]
    fn setups_without_lattices_or_users_or_with_duplicates_are_refused() {
        let h = user("h1", Role::Host);
        assert_eq!(Setup::new(vec![], vec![h.clone()]), Err(SetupError::NoLattice));
        assert_eq!(Setup::new(vec![name("l")], vec![user("a", Role::App)]), Err(SetupError::NoUsers));
        let twin = User { key: user("x", Role::Host).key, ..h.clone() };
        assert_eq!(Setup::new(vec![name("l")], vec![h.clone(), twin]), Err(SetupError::DuplicateName(name("h1"))));
        let copy = User { name: name("h2"), ..h.clone() };
        assert_eq!(Setup::new(vec![name("l")], vec![h, copy]), Err(SetupError::DuplicateKey(name("h1"), name("h2"))));
    }

    #[test]
    fn user_specs_take_a_name_and_optionally_a_user_key() {
        let seed = UserSeed::generate().expect("random");
        let spec: UserSpec = format!("web={}", seed.public_key()).parse().expect("valid");
        assert_eq!(spec, UserSpec { name: name("web"), key: Some(seed.public_key().clone()) });
        assert_eq!("web".parse::<UserSpec>().expect("valid").key, None);
        assert!(matches!("a.b".parse::<UserSpec>(), Err(UserSpecError::Name(_))));
        assert!(matches!("web=Unope".parse::<UserSpec>(), Err(UserSpecError::Key(UserKeyError::Invalid { .. }))));
        let account = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::Account, [1; 32]).expect("raw").public_key();
        assert!(matches!(
            format!("web={account}").parse::<UserSpec>(),
            Err(UserSpecError::Key(UserKeyError::NotAUser { .. }))
        ));
        assert!(!format!("{seed:?}").contains(seed.seed()));
        assert!(seed.seed().starts_with("SU"));
    }
}
