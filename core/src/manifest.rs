//! App manifests (`lattice.toml`): parsing, validation and resolution of one environment.
//!
//! A manifest declares an app: its actors (artifact, replicas, placement, limits, links, HTTP routes), the provider
//! instances it places, and per-environment overrides. [`Manifest::parse`] validates the whole file, every
//! environment included, and reports **every** problem at once, each with its file, line, column and field
//! path; [`Manifest::resolve`] applies one environment and yields what `lattice apply` stores as a
//! [`wire::AppSpec`]. The format is documented in `docs/manifest.md`.
//!
//! ```
//! use lattice_core::manifest::{ArtifactSource, Manifest};
//!
//! let text = r#"
//! [app]
//! name = "counter"
//! version = "0.1.0"
//!
//! [[actor]]
//! name = "kv-counter"
//! artifact = "kv_counter.wasm"
//! links = { "keyvalue:default" = "inmemory" }
//!
//! [env.prod.actor.kv-counter]
//! replicas = 3
//! "#;
//! let manifest = Manifest::parse("lattice.toml", text).unwrap();
//! let prod = manifest.resolve(Some("prod")).unwrap();
//! assert_eq!(prod.actors[0].spec.replicas, 3);
//! assert_eq!(prod.actors[0].spec.links, ["keyvalue:default=inmemory"]);
//! assert_eq!(prod.actors[0].source, ArtifactSource::Path("kv_counter.wasm".into()));
//!
//! let errors = Manifest::parse("lattice.toml", "[app]\nname = \"a.b\"\nversion = \"1\"\n").unwrap_err();
//! assert_eq!(errors.0[0].to_string(), "lattice.toml:2:8: app.name: expected a name (1-64 characters of \
//!     A-Z, a-z, 0-9, `_` and `-`), found \"a.b\"");
//! ```
//!
//! The module is pure: it reads no file and resolves nothing against a running lattice. Checks that need
//! the lattice (is a link's provider running somewhere?) are the caller's; [`Resolved::undeclared_links`]
//! and [`Resolved::error`] let it report them in the same format.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::http::Route;
use crate::link::LinkSpec;
use crate::reserved;
use crate::subject::Name;
use crate::units;
use crate::wire::{AppActor, AppProvider, AppSpec, LimitsSpec};

/// Provider kinds an app may declare in `[[provider]]` (`kind = "…"`).
pub const PROVIDER_KINDS: &[&str] = &["inmemory", "redis"];

/// Providers every host serves without being declared: a link to them is never "unknown".
pub const BUILTIN_LINK_PROVIDERS: &[&str] = &["inmemory", "nats"];

const TOP_FIELDS: &[&str] = &["app", "actor", "provider", "env"];
const APP_FIELDS: &[&str] = &["name", "version", "description"];
const ACTOR_FIELDS: &[&str] = &[
    "name",
    "artifact",
    "replicas",
    "spread",
    "constraints",
    "max_concurrency",
    "memory",
    "cpu_time",
    "timeout",
    "max_reply",
    "instance_reuse",
    "links",
    "routes",
];
const PROVIDER_FIELDS: &[&str] = &["name", "kind", "config", "constraints"];
const ENV_FIELDS: &[&str] = &["actor", "provider"];
const LABEL_KEY_RULE: &str = "a label key (1-128 characters, no control characters or `=`)";
/// What a name must be, with the limit of [`crate::subject::MAX_NAME_LEN`].
fn name_rule() -> String {
    format!("a name (1-{} characters of A-Z, a-z, 0-9, `_` and `-`)", crate::subject::MAX_NAME_LEN)
}

/// One problem in a manifest, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ManifestError {
    /// The file name the caller gave [`Manifest::parse`].
    pub file: String,
    /// 1-based line of the offending key or value (of the table's header for a missing field).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The field, e.g. `actor[0].replicas` or `env.prod.actor.kv-counter.links."keyvalue:default"`; empty for
    /// a TOML syntax error.
    pub path: String,
    /// What was expected, and what was found.
    pub message: String,
}

/// Every problem found in a manifest, in file order. Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

/// Where an actor's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactSource {
    /// A file (the text contains `/` or ends in `.wasm`): `lattice apply` pushes it.
    Path(String),
    /// The name of an artifact already pushed to the lattice.
    Pushed(String),
}

impl ArtifactSource {
    /// Classifies an `artifact = "…"` value.
    pub fn classify(artifact: &str) -> ArtifactSource {
        if artifact.contains('/') || artifact.ends_with(".wasm") {
            ArtifactSource::Path(artifact.to_owned())
        } else {
            ArtifactSource::Pushed(artifact.to_owned())
        }
    }
}

/// A link of an actor and where the manifest wrote it (its provider's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedLink {
    /// The link.
    pub spec: LinkSpec,
    /// 1-based line of the link's provider.
    pub line: usize,
    /// 1-based column of the link's provider.
    pub column: usize,
    /// Field path of the link (`actor[0].links."keyvalue:default"`).
    pub path: String,
}

/// An actor of a [`Resolved`] app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedActor {
    /// The actor as stored; `artifact` is the manifest's text and `digest` is empty until the caller has
    /// pushed or looked up the artifact.
    pub spec: AppActor,
    /// Whether `artifact` is a file to push or an already pushed name.
    pub source: ArtifactSource,
    /// 1-based line of the actor's `[[actor]]` header.
    pub line: usize,
    /// Its links, sorted by `interface:name`, each with its location.
    pub links: Vec<LocatedLink>,
}

/// A provider instance of a [`Resolved`] app (never named like a built-in provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProvider {
    /// The provider as stored.
    pub spec: AppProvider,
    /// 1-based line of its `[[provider]]` (or `[[env.<env>.provider]]`) header.
    pub line: usize,
}

/// An app resolved for one environment: what `lattice apply` stores, once artifacts are pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The manifest's file name, for [`Resolved::error`].
    pub file: String,
    /// The app's name.
    pub name: Name,
    /// The version the manifest declares.
    pub version: String,
    /// The environment resolved, if any.
    pub env: Option<String>,
    /// Actors, in manifest order.
    pub actors: Vec<ResolvedActor>,
    /// Provider instances: the base ones in manifest order (replaced in place by an environment's provider
    /// of the same name), then those only the environment declares.
    pub providers: Vec<ResolvedProvider>,
}

impl Resolved {
    /// An error located in the manifest, for checks the caller makes against the lattice (e.g. a link to a
    /// provider that nothing serves).
    pub fn error(
        &self,
        line: usize,
        column: usize,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> ManifestError {
        ManifestError { file: self.file.clone(), line, column, path: path.into(), message: message.into() }
    }

    /// Links whose provider is neither built in ([`BUILTIN_LINK_PROVIDERS`]) nor declared by the app in this
    /// environment: valid, but served only if someone started that provider by hand. The caller checks them
    /// against the lattice.
    pub fn undeclared_links(&self) -> impl Iterator<Item = (&ResolvedActor, &LocatedLink)> {
        self.actors.iter().flat_map(move |actor| {
            actor
                .links
                .iter()
                .filter(move |link| {
                    let provider = link.spec.provider.as_str();
                    !BUILTIN_LINK_PROVIDERS.contains(&provider)
                        && !self.providers.iter().any(|p| p.spec.name.as_str() == provider)
                })
                .map(move |link| (actor, link))
        })
    }

    /// The app spec to store (artifact digests as the caller filled them in `actors[i].spec.digest`).
    pub fn spec(&self) -> AppSpec {
        AppSpec {
            name: self.name.clone(),
            version: self.version.clone(),
            env: self.env.clone(),
            actors: self.actors.iter().map(|actor| actor.spec.clone()).collect(),
            providers: self.providers.iter().map(|provider| provider.spec.clone()).collect(),
        }
    }
}

/// A parsed and fully validated manifest, with every environment.
#[derive(Debug, Clone)]
pub struct Manifest {
    file: String,
    name: Name,
    version: String,
    description: Option<String>,
    actors: Vec<ActorDecl>,
    providers: Vec<ProviderDecl>,
    envs: BTreeMap<String, EnvDecl>,
    /// Where `env` is written (or the file's start): unknown environments are reported there.
    env_position: (usize, usize),
}

/// An actor's fields as written; `None` when absent (defaults applied at resolution).
#[derive(Debug, Clone, Default)]
struct ActorFields {
    artifact: Option<String>,
    replicas: Option<u32>,
    spread: Option<String>,
    constraints: Option<BTreeMap<String, String>>,
    max_concurrency: Option<u32>,
    memory: Option<u64>,
    cpu_time_ms: Option<u64>,
    timeout_ms: Option<u64>,
    max_reply: Option<u64>,
    instance_reuse: Option<u32>,
    /// By canonical `interface:name`.
    links: BTreeMap<String, LocatedLink>,
    /// Canonical routes, in file order; an environment's list replaces the base one.
    routes: Option<Vec<RouteDecl>>,
}

/// A route of an actor, canonical, and where it is written.
#[derive(Debug, Clone)]
struct RouteDecl {
    text: String,
    span: Range<usize>,
    path: String,
}

impl ActorFields {
    /// `self` with `over`'s fields on top; links merge per key.
    fn merged(&self, over: &ActorFields) -> ActorFields {
        let mut links = self.links.clone();
        links.extend(over.links.iter().map(|(k, v)| (k.clone(), v.clone())));
        ActorFields {
            artifact: over.artifact.clone().or_else(|| self.artifact.clone()),
            replicas: over.replicas.or(self.replicas),
            spread: over.spread.clone().or_else(|| self.spread.clone()),
            constraints: over.constraints.clone().or_else(|| self.constraints.clone()),
            max_concurrency: over.max_concurrency.or(self.max_concurrency),
            memory: over.memory.or(self.memory),
            cpu_time_ms: over.cpu_time_ms.or(self.cpu_time_ms),
            timeout_ms: over.timeout_ms.or(self.timeout_ms),
            max_reply: over.max_reply.or(self.max_reply),
            instance_reuse: over.instance_reuse.or(self.instance_reuse),
            links,
            routes: over.routes.clone().or_else(|| self.routes.clone()),
        }
    }
}

#[derive(Debug, Clone)]
struct ActorDecl {
    name: Name,
    line: usize,
    fields: ActorFields,
}

#[derive(Debug, Clone)]
struct ProviderDecl {
    spec: AppProvider,
    line: usize,
}

#[derive(Debug, Clone, Default)]
struct EnvDecl {
    actors: BTreeMap<String, ActorFields>,
    providers: Vec<ProviderDecl>,
}

impl Manifest {
    /// Parses and validates `text`, read from `file` (used only in error messages). Every environment is
    /// validated; all problems are returned, in file order.
    pub fn parse(file: &str, text: &str) -> Result<Manifest, ManifestErrors> {
        let mut cx = Cx::new(file, text);
        let root = match DeTable::parse(text) {
            Ok(root) => root,
            Err(error) => {
                let span = error.span().unwrap_or(0..0);
                let message = error.message().trim().replace('\n', " ");
                cx.error(span, "", message);
                return Err(cx.finish());
            }
        };
        let manifest = cx.manifest(root.get_ref());
        let errors = cx.finish();
        match manifest {
            Some(manifest) if errors.0.is_empty() => Ok(manifest),
            _ => Err(errors),
        }
    }

    /// The app's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The app's version, as written.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The app's description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The file name given to [`Manifest::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The environments the manifest declares, sorted.
    pub fn envs(&self) -> Vec<&str> {
        self.envs.keys().map(String::as_str).collect()
    }

    /// The app for environment `env` (`None`: the base declarations only). An environment the manifest does
    /// not declare is an error naming those it does.
    pub fn resolve(&self, env: Option<&str>) -> Result<Resolved, ManifestErrors> {
        let overrides = match env {
            None => None,
            Some(env) => match self.envs.get(env) {
                Some(decl) => Some(decl),
                None => {
                    let known = if self.envs.is_empty() {
                        "the manifest declares no environments".to_owned()
                    } else {
                        format!("known environments: {}", self.envs().join(", "))
                    };
                    let (line, column) = self.env_position;
                    return Err(ManifestErrors(vec![ManifestError {
                        file: self.file.clone(),
                        line,
                        column,
                        path: "env".to_owned(),
                        message: format!("no environment `{env}` ({known})"),
                    }]));
                }
            },
        };
        let empty = ActorFields::default();
        let actors = self
            .actors
            .iter()
            .map(|actor| {
                let over = overrides.and_then(|o| o.actors.get(actor.name.as_str())).unwrap_or(&empty);
                let fields = actor.fields.merged(over);
                let artifact = fields.artifact.unwrap_or_default();
                let links: Vec<LocatedLink> = fields.links.into_values().collect();
                ResolvedActor {
                    spec: AppActor {
                        name: actor.name.clone(),
                        artifact: artifact.clone(),
                        digest: String::new(),
                        replicas: fields.replicas.unwrap_or(1),
                        spread: fields.spread,
                        constraints: fields.constraints.unwrap_or_default(),
                        limits: LimitsSpec {
                            memory_bytes: fields.memory,
                            cpu_time_ms: fields.cpu_time_ms,
                            timeout_ms: fields.timeout_ms,
                            max_concurrency: fields.max_concurrency,
                            max_reply_bytes: fields.max_reply,
                            instance_reuse: fields.instance_reuse,
                        },
                        links: links.iter().map(|link| link.spec.to_string()).collect(),
                        routes: fields.routes.unwrap_or_default().into_iter().map(|r| r.text).collect(),
                    },
                    source: ArtifactSource::classify(&artifact),
                    line: actor.line,
                    links,
                }
            })
            .collect();
        let mut providers: Vec<ResolvedProvider> =
            self.providers.iter().map(|p| ResolvedProvider { spec: p.spec.clone(), line: p.line }).collect();
        for p in overrides.map(|o| o.providers.as_slice()).unwrap_or_default() {
            let resolved = ResolvedProvider { spec: p.spec.clone(), line: p.line };
            match providers.iter_mut().find(|base| base.spec.name == p.spec.name) {
                Some(base) => *base = resolved,
                None => providers.push(resolved),
            }
        }
        Ok(Resolved {
            file: self.file.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            env: env.map(str::to_owned),
            actors,
            providers,
        })
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

/// `k` as a path segment: bare when it is a bare TOML key, quoted otherwise.
fn key_segment(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        k.to_owned()
    } else {
        format!("{k:?}")
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key_segment(key) } else { format!("{path}.{}", key_segment(key)) }
}

/// Validation context: collects errors with their positions.
struct Cx<'t> {
    file: &'t str,
    text: &'t str,
    line_starts: Vec<usize>,
    errors: Vec<(usize, ManifestError)>,
}

impl<'t> Cx<'t> {
    fn new(file: &'t str, text: &'t str) -> Self {
        let line_starts =
            std::iter::once(0).chain(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        Cx { file, text, line_starts: line_starts.collect(), errors: Vec::new() }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|start| *start <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        (line, column)
    }

    fn error(&mut self, span: Range<usize>, path: impl Into<String>, message: impl Into<String>) {
        let (line, column) = self.position(span.start);
        let error =
            ManifestError { file: self.file.to_owned(), line, column, path: path.into(), message: message.into() };
        self.errors.push((span.start, error));
    }

    fn finish(&mut self) -> ManifestErrors {
        let mut errors = std::mem::take(&mut self.errors);
        errors.sort_by_key(|(offset, _)| *offset);
        ManifestErrors(errors.into_iter().map(|(_, e)| e).collect())
    }

    /// How a value reads in "found …".
    fn found(&self, value: &Value<'_>) -> String {
        match value.get_ref() {
            DeValue::String(s) => format!("{s:?}"),
            DeValue::Table(_) => "a table".to_owned(),
            DeValue::Array(_) => "an array".to_owned(),
            _ => self.text.get(value.span()).unwrap_or("a value").trim().to_owned(),
        }
    }

    fn expected(&mut self, value: &Value<'_>, path: &str, what: &str) {
        let message = format!("expected {what}, found {}", self.found(value));
        self.error(value.span(), path, message);
    }

    fn table<'a, 'i>(&mut self, value: &'a Value<'i>, path: &str) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            _ => {
                self.expected(value, path, "a table");
                None
            }
        }
    }

    /// The tables of an array of tables (`[[actor]]`), with their spans; reports other elements.
    fn tables<'a, 'i>(&mut self, value: &'a Value<'i>, path: &str) -> Vec<(usize, &'a DeTable<'i>, Range<usize>)> {
        let DeValue::Array(array) = value.get_ref() else {
            let what = format!("an array of tables ([[{path}]])");
            self.expected(value, path, &what);
            return Vec::new();
        };
        let mut tables = Vec::new();
        for (i, element) in array.iter().enumerate() {
            match element.get_ref() {
                DeValue::Table(table) => tables.push((i, table, element.span())),
                _ => self.expected(element, &format!("{path}[{i}]"), "a table"),
            }
        }
        tables
    }

    /// Reports every key of `table` not in `allowed`.
    fn check_fields(&mut self, table: &DeTable<'_>, allowed: &[&str], path: &str) {
        for (key, _) in table.iter() {
            if !allowed.contains(&key.get_ref().as_ref()) {
                let message = format!("unknown field `{}`; allowed fields: {}", key.get_ref(), allowed.join(", "));
                self.error(key.span(), join(path, key.get_ref()), message);
            }
        }
    }

    fn missing(&mut self, header: &Range<usize>, path: &str, field: &str) {
        self.error(header.clone(), join(path, field), format!("missing required field `{field}`"));
    }

    fn string(&mut self, value: &Value<'_>, path: &str) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) if !s.is_empty() && !s.chars().any(char::is_control) => Some(s.to_string()),
            _ => {
                self.expected(value, path, "a non-empty string without control characters");
                None
            }
        }
    }

    /// A host label key, as hosts accept them: 1-128 characters, no control characters, no `=`.
    fn label_key_ok(key: &str) -> bool {
        !key.is_empty() && key.len() <= 128 && !key.chars().any(|c| c.is_control() || c == '=')
    }

    fn label_key(&mut self, value: &Value<'_>, path: &str) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) if Self::label_key_ok(s) => Some(s.to_string()),
            _ => {
                self.expected(value, path, LABEL_KEY_RULE);
                None
            }
        }
    }

    /// `constraints`: label keys to string values.
    fn constraints(&mut self, value: &Value<'_>, path: &str) -> Option<BTreeMap<String, String>> {
        let map = self.string_map(value, path, false)?;
        let mut ok = true;
        if let DeValue::Table(table) = value.get_ref() {
            for (key, _) in table.iter().filter(|(key, _)| !Self::label_key_ok(key.get_ref())) {
                let message = format!("expected {LABEL_KEY_RULE}, found {:?}", key.get_ref());
                self.error(key.span(), join(path, key.get_ref()), message);
                ok = false;
            }
        }
        ok.then_some(map)
    }

    fn name(&mut self, value: &Value<'_>, path: &str) -> Option<Name> {
        match value.get_ref() {
            DeValue::String(s) => match Name::new(s.as_ref()) {
                Ok(name) => Some(name),
                Err(_) => {
                    self.expected(value, path, &name_rule());
                    None
                }
            },
            _ => {
                self.expected(value, path, &name_rule());
                None
            }
        }
    }

    /// A non-negative integer that fits u64, if `value` is one.
    fn integer(value: &Value<'_>) -> Option<u64> {
        match value.get_ref() {
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        }
    }

    fn positive_u32(&mut self, value: &Value<'_>, path: &str) -> Option<u32> {
        match Self::integer(value).and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n >= 1 => Some(n),
            _ => {
                self.expected(value, path, "an integer of at least 1");
                None
            }
        }
    }

    fn size(&mut self, value: &Value<'_>, path: &str) -> Option<u64> {
        const WHAT: &str = "a size of at least 1 byte, like \"64MiB\" (units B, KiB, MiB, GiB, kB, MB, GB) \
            or an integer number of bytes";
        let (bytes, why) = match value.get_ref() {
            DeValue::String(s) => match units::parse_bytes(s) {
                Ok(bytes) => (Some(bytes), None),
                Err(error) => (None, Some(error.to_string())),
            },
            _ => (Self::integer(value), None),
        };
        match bytes {
            Some(bytes) if bytes >= 1 => Some(bytes),
            _ => {
                let mut message = format!("expected {WHAT}, found {}", self.found(value));
                if let Some(why) = why {
                    message = format!("{message}: {why}");
                }
                self.error(value.span(), path, message);
                None
            }
        }
    }

    fn duration_ms(&mut self, value: &Value<'_>, path: &str) -> Option<u64> {
        const WHAT: &str = "a duration of at least 1ms in whole milliseconds, like \"500ms\", \"1.5s\", \"2m\" \
            (units ms, s, m, h)";
        let (ms, why) = match value.get_ref() {
            DeValue::String(s) => match units::parse_duration(s) {
                Ok(d) if d.subsec_nanos() % 1_000_000 == 0 => (u64::try_from(d.as_millis()).ok(), None),
                Ok(_) => (None, Some("not a whole number of milliseconds".to_owned())),
                Err(error) => (None, Some(error.to_string())),
            },
            _ => (None, None),
        };
        match ms {
            Some(ms) if ms >= 1 => Some(ms),
            _ => {
                let mut message = format!("expected {WHAT}, found {}", self.found(value));
                if let Some(why) = why {
                    message = format!("{message}: {why}");
                }
                self.error(value.span(), path, message);
                None
            }
        }
    }

    /// A scalar as config text: strings as they are, integers, floats and booleans as written.
    fn scalar_text(&self, value: &Value<'_>) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                self.text.get(value.span()).map(|s| s.trim().replace('_', ""))
            }
            _ => None,
        }
    }

    /// A table of strings (`coerce`: integers, floats and booleans too, turned into their text).
    fn string_map(&mut self, value: &Value<'_>, path: &str, coerce: bool) -> Option<BTreeMap<String, String>> {
        let table = self.table(value, path)?;
        let mut map = BTreeMap::new();
        let mut ok = true;
        for (key, value) in table.iter() {
            let path = join(path, key.get_ref());
            let text = match value.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                _ if coerce => self.scalar_text(value),
                _ => None,
            };
            match text {
                Some(text) => {
                    map.insert(key.get_ref().to_string(), text);
                }
                None => {
                    let what = if coerce { "a string, integer, float or boolean" } else { "a string" };
                    self.expected(value, &path, what);
                    ok = false;
                }
            }
        }
        ok.then_some(map)
    }

    fn manifest(&mut self, root: &DeTable<'_>) -> Option<Manifest> {
        self.check_fields(root, TOP_FIELDS, "");
        let (name, version, description) = match root.get("app") {
            Some(app) => self.app(app),
            None => {
                self.error(0..0, "app", "missing required table [app] (with `name` and `version`)");
                (None, None, None)
            }
        };
        let mut actors: Vec<ActorDecl> = Vec::new();
        // Every actor name as written, valid or not: an override of an invalid one is not reported again.
        let mut declared: Vec<String> = Vec::new();
        if let Some(value) = root.get("actor") {
            for (i, table, span) in self.tables(value, "actor") {
                let path = format!("actor[{i}]");
                let fields = self.actor_fields(table, &span, &path, false);
                let Some(value) = table.get("name") else { continue };
                if let Some(raw) = value.get_ref().as_str().filter(|raw| !declared.iter().any(|d| d == raw)) {
                    declared.push(raw.to_owned());
                }
                let name_path = join(&path, "name");
                let Some(name) = self.name(value, &name_path) else { continue };
                let line = self.position(span.start).0;
                if let Some(first) = actors.iter().find(|a| a.name == name) {
                    let message = format!("duplicate actor `{name}` (first declared on line {})", first.line);
                    self.error(value.span(), name_path, message);
                    continue;
                }
                actors.push(ActorDecl { name, line, fields });
            }
        }
        let providers = match root.get("provider") {
            Some(value) => self.providers(value, "provider"),
            None => Vec::new(),
        };
        let mut env_position = (1, 1);
        let mut envs = BTreeMap::new();
        if let Some((key, value)) = root.get_key_value("env") {
            env_position = self.position(key.span().start);
            if let Some(table) = self.table(value, "env") {
                for (env, value) in table.iter() {
                    let path = join("env", env.get_ref());
                    if Name::new(env.get_ref().as_ref()).is_err() {
                        let message =
                            format!("expected {} as environment name, found {:?}", name_rule(), env.get_ref());
                        self.error(env.span(), path.clone(), message);
                    }
                    if let Some(decl) = self.env(value, &path, &declared) {
                        envs.insert(env.get_ref().to_string(), decl);
                    }
                }
            }
        }
        self.check_shared_routes(&actors, &envs);
        Some(Manifest {
            file: self.file.to_owned(),
            name: name?,
            version: version?,
            description,
            actors,
            providers,
            envs,
            env_position,
        })
    }

    fn app(&mut self, value: &Value<'_>) -> (Option<Name>, Option<String>, Option<String>) {
        let Some(table) = self.table(value, "app") else { return (None, None, None) };
        self.check_fields(table, APP_FIELDS, "app");
        let name = match table.get("name") {
            Some(v) => self.name(v, "app.name"),
            None => {
                self.missing(&value.span(), "app", "name");
                None
            }
        };
        let version = match table.get("version") {
            Some(v) => self.string(v, "app.version"),
            None => {
                self.missing(&value.span(), "app", "version");
                None
            }
        };
        let description = match table.get("description") {
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                _ => {
                    self.expected(v, "app.description", "a string");
                    None
                }
            },
            None => None,
        };
        (name, version, description)
    }

    /// An actor's fields but `name`. For a base actor (`is_override` false) `name` and `artifact` are
    /// required (the caller checks the name itself); an environment's override may not set `name`.
    fn actor_fields(
        &mut self,
        table: &DeTable<'_>,
        header: &Range<usize>,
        path: &str,
        is_override: bool,
    ) -> ActorFields {
        self.check_fields(table, ACTOR_FIELDS, path);
        let mut fields = ActorFields::default();
        for (key, value) in table.iter() {
            let field = key.get_ref().as_ref();
            let field_path = join(path, field);
            match field {
                "name" if is_override => {
                    self.error(key.span(), field_path, "an environment cannot rename an actor: remove `name`");
                }
                "name" => {} // checked by the caller
                "artifact" => fields.artifact = self.string(value, &field_path),
                "replicas" => fields.replicas = self.positive_u32(value, &field_path),
                "spread" => fields.spread = self.label_key(value, &field_path),
                "constraints" => fields.constraints = self.constraints(value, &field_path),
                "max_concurrency" => fields.max_concurrency = self.positive_u32(value, &field_path),
                "memory" => fields.memory = self.size(value, &field_path),
                "max_reply" => fields.max_reply = self.size(value, &field_path),
                "instance_reuse" => fields.instance_reuse = self.positive_u32(value, &field_path),
                "cpu_time" => fields.cpu_time_ms = self.duration_ms(value, &field_path),
                "timeout" => fields.timeout_ms = self.duration_ms(value, &field_path),
                "links" => fields.links = self.links(value, &field_path),
                "routes" => fields.routes = self.routes(value, &field_path),
                _ => {} // reported by check_fields
            }
        }
        if !is_override {
            for required in ["name", "artifact"] {
                if !table.contains_key(required) {
                    self.missing(header, path, required);
                }
            }
        }
        fields
    }

    fn links(&mut self, value: &Value<'_>, path: &str) -> BTreeMap<String, LocatedLink> {
        let mut links = BTreeMap::new();
        let Some(table) = self.table(value, path) else { return links };
        // Keys in file order, so a duplicate is reported on the later one.
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        for (key, value) in entries {
            let link_path = join(path, key.get_ref());
            if let Some((canonical, link)) = self.link(key, value, &link_path) {
                match links.entry(canonical) {
                    Entry::Vacant(slot) => {
                        slot.insert(link);
                    }
                    Entry::Occupied(first) => {
                        let message = format!("duplicate link `{}` (also on line {})", first.key(), first.get().line);
                        self.error(key.span(), link_path, message);
                    }
                }
            }
        }
        links
    }

    /// `routes = ["[host]/path", …]`: the valid ones, canonical; reports bad and duplicate routes.
    fn routes(&mut self, value: &Value<'_>, path: &str) -> Option<Vec<RouteDecl>> {
        const WHAT: &str = "an array of routes \"[host]/path\", like [\"/\", \"api.example.com/v1\"]";
        let DeValue::Array(array) = value.get_ref() else {
            self.expected(value, path, WHAT);
            return None;
        };
        let mut routes: Vec<RouteDecl> = Vec::new();
        for (i, element) in array.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let DeValue::String(text) = element.get_ref() else {
                self.expected(element, &path, "a route \"[host]/path\", like \"/\" or \"api.example.com/v1\"");
                continue;
            };
            let text = match text.parse::<Route>() {
                Ok(route) => route.to_string(),
                Err(error) => {
                    self.error(element.span(), path, error.to_string());
                    continue;
                }
            };
            if let Some(first) = routes.iter().find(|r| r.text == text) {
                let message = format!("duplicate route `{text}` (also on line {})", self.position(first.span.start).0);
                self.error(element.span(), path, message);
                continue;
            }
            routes.push(RouteDecl { text, span: element.span(), path });
        }
        Some(routes)
    }

    /// Reports a route used by two actors of the app, in the base declarations or in any environment, at
    /// the later of the two.
    fn check_shared_routes(&mut self, actors: &[ActorDecl], envs: &BTreeMap<String, EnvDecl>) {
        let empty = ActorFields::default();
        for env in std::iter::once(None).chain(envs.values().map(Some)) {
            let mut routes: Vec<(&Name, &RouteDecl)> = actors
                .iter()
                .flat_map(|actor| {
                    let over = env.and_then(|e| e.actors.get(actor.name.as_str())).unwrap_or(&empty);
                    let routes = over.routes.as_ref().or(actor.fields.routes.as_ref());
                    routes.into_iter().flatten().map(move |route| (&actor.name, route))
                })
                .collect();
            routes.sort_by_key(|(_, route)| route.span.start);
            for (i, (actor, route)) in routes.iter().enumerate() {
                let Some((other, first)) = routes[..i].iter().find(|(a, r)| a != actor && r.text == route.text) else {
                    continue;
                };
                // A route in the base declarations is in every environment too: report it once.
                if self.errors.iter().any(|(at, _)| *at == route.span.start) {
                    continue;
                }
                let line = self.position(first.span.start).0;
                let message = format!("route `{}` is also used by actor `{other}` (line {line})", route.text);
                self.error(route.span.clone(), route.path.clone(), message);
            }
        }
    }

    /// One entry of `links`: returns its canonical `interface:name` key and the located link.
    fn link(
        &mut self,
        key: &Spanned<toml::de::DeString<'_>>,
        value: &Value<'_>,
        path: &str,
    ) -> Option<(String, LocatedLink)> {
        const KEY: &str = "a link key \"<interface>:<name>\" (interface keyvalue, messaging or http)";
        let key_text = key.get_ref().as_ref();
        if !key_text.contains(':') || key_text.contains('=') {
            let message = format!("expected {KEY}, found {key_text:?}");
            self.error(key.span(), path, message);
            return None;
        }
        // The provider's value: where a link is located, and where provider and config errors point.
        let (target, provider_span) = match value.get_ref() {
            DeValue::String(s) => (s.to_string(), value.span()),
            DeValue::Table(table) => self.link_table(table, value, path)?,
            _ => {
                self.expected(value, path, "a link \"<provider>[,key=value…]\" or a table { provider = \"…\", … }");
                return None;
            }
        };
        let text = format!("{key_text}={target}");
        let spec = match text.parse::<LinkSpec>() {
            Ok(spec) => spec,
            Err(error) => {
                use crate::link::LinkParseError as E;
                let at_key = matches!(&error, E::Shape(_) | E::UnknownInterface(_))
                    || matches!(&error, E::InvalidName { what: "link name", .. });
                let span = if at_key { key.span() } else { provider_span };
                self.error(span, path, format!("invalid link: {error}"));
                return None;
            }
        };
        if let Err(reserved) = reserved::check_link(&spec) {
            self.error(provider_span, path, format!("invalid link: {reserved}"));
            return None;
        }
        let (line, column) = self.position(provider_span.start);
        let canonical = format!("{}:{}", spec.interface, spec.name);
        Some((canonical, LocatedLink { spec, line, column, path: path.to_owned() }))
    }

    /// A link written as a table: `{ provider = "redis", bucket = "x" }`. Returns its text after `=` and the
    /// span of its provider.
    fn link_table(&mut self, table: &DeTable<'_>, value: &Value<'_>, path: &str) -> Option<(String, Range<usize>)> {
        let mut ok = true;
        let provider = match table.get("provider") {
            Some(provider) => match provider.get_ref() {
                DeValue::String(s) if !s.is_empty() && !s.contains(',') => Some((s.to_string(), provider.span())),
                _ => {
                    self.expected(provider, &join(path, "provider"), "a provider name (a string without `,`)");
                    None
                }
            },
            None => {
                self.missing(&value.span(), path, "provider");
                None
            }
        };
        let mut target = String::new();
        let mut entries: Vec<_> = table.iter().filter(|(k, _)| k.get_ref() != "provider").collect();
        entries.sort_by_key(|(k, _)| k.get_ref().to_string());
        for (key, value) in entries {
            let entry_path = join(path, key.get_ref());
            if key.get_ref().contains(['=', ',']) || key.get_ref().is_empty() {
                let message = format!("expected a config key without `=` or `,`, found {:?}", key.get_ref());
                self.error(key.span(), entry_path, message);
                ok = false;
                continue;
            }
            match self.scalar_text(value) {
                Some(text) if !text.contains(',') => target.push_str(&format!(",{}={text}", key.get_ref())),
                _ => {
                    let what = "a string (without `,`; separate patterns with `|`), integer, float or boolean";
                    self.expected(value, &entry_path, what);
                    ok = false;
                }
            }
        }
        let (provider, span) = provider?;
        ok.then(|| (format!("{provider}{target}"), span))
    }

    /// `[[provider]]` (or `[[env.<env>.provider]]`): reports duplicates within the list.
    fn providers(&mut self, value: &Value<'_>, path: &str) -> Vec<ProviderDecl> {
        let mut providers: Vec<ProviderDecl> = Vec::new();
        for (i, table, span) in self.tables(value, path) {
            let path = format!("{path}[{i}]");
            self.check_fields(table, PROVIDER_FIELDS, &path);
            let name = match table.get("name") {
                Some(v) => match self.name(v, &join(&path, "name")) {
                    Some(name) if BUILTIN_LINK_PROVIDERS.contains(&name.as_str()) => {
                        let message = format!("`{name}` is a built-in provider; name this instance differently");
                        self.error(v.span(), join(&path, "name"), message);
                        None
                    }
                    other => other.map(|n| (n, v.span())),
                },
                None => {
                    self.missing(&span, &path, "name");
                    None
                }
            };
            let kind = match table.get("kind") {
                Some(v) => match v.get_ref() {
                    DeValue::String(s) if PROVIDER_KINDS.contains(&s.as_ref()) => Some(s.to_string()),
                    _ => {
                        let what = format!("a provider kind (one of {})", PROVIDER_KINDS.join(", "));
                        self.expected(v, &join(&path, "kind"), &what);
                        None
                    }
                },
                None => {
                    self.missing(&span, &path, "kind");
                    None
                }
            };
            let config = match table.get("config") {
                Some(v) => self.string_map(v, &join(&path, "config"), true),
                None => Some(BTreeMap::new()),
            };
            let constraints = match table.get("constraints") {
                Some(v) => self.constraints(v, &join(&path, "constraints")),
                None => Some(BTreeMap::new()),
            };
            let (Some((name, name_span)), Some(kind), Some(config), Some(constraints)) =
                (name, kind, config, constraints)
            else {
                continue;
            };
            let line = self.position(span.start).0;
            if let Some(first) = providers.iter().find(|p| p.spec.name == name) {
                let message = format!("duplicate provider `{name}` (first declared on line {})", first.line);
                self.error(name_span, join(&path, "name"), message);
                continue;
            }
            providers.push(ProviderDecl { spec: AppProvider { name, kind, config, constraints }, line });
        }
        providers
    }

    fn env(&mut self, value: &Value<'_>, path: &str, declared: &[String]) -> Option<EnvDecl> {
        let table = self.table(value, path)?;
        self.check_fields(table, ENV_FIELDS, path);
        let mut decl = EnvDecl::default();
        if let Some(value) = table.get("actor") {
            let actors_path = join(path, "actor");
            if let Some(overrides) = self.table(value, &actors_path) {
                for (name, value) in overrides.iter() {
                    let actor_path = join(&actors_path, name.get_ref());
                    if !declared.iter().any(|d| d == name.get_ref()) {
                        let known = if declared.is_empty() {
                            "the manifest declares no actors".to_owned()
                        } else {
                            format!("declared actors: {}", declared.join(", "))
                        };
                        let message = format!("override of undeclared actor `{}` ({known})", name.get_ref());
                        self.error(name.span(), actor_path.clone(), message);
                    }
                    // Validated even when the actor is unknown, so every problem shows at once.
                    if let Some(table) = self.table(value, &actor_path) {
                        let fields = self.actor_fields(table, &value.span(), &actor_path, true);
                        decl.actors.insert(name.get_ref().to_string(), fields);
                    }
                }
            }
        }
        if let Some(value) = table.get("provider") {
            decl.providers = self.providers(value, &join(path, "provider"));
        }
        Some(decl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"[app]
name = "counter"
version = "0.1.0"

[[actor]]
name = "kv-counter"
artifact = "target/guests/wasm32-wasip2/guest/kv_counter.wasm"   # a path (apply pushes it) or a pushed name
replicas = 2                                                     # hosts that run it
spread = "zone"                                                  # spread replicas across values of this label
max_concurrency = 64
links = { "keyvalue:default" = "inmemory" }

[env.prod.actor.kv-counter]
links = { "keyvalue:default" = "redis" }

[[env.prod.provider]]
name = "redis"
kind = "redis"
config = { url = "redis://127.0.0.1:6379" }
"#;

    fn parse(text: &str) -> Manifest {
        match Manifest::parse("lattice.toml", text) {
            Ok(manifest) => manifest,
            Err(errors) => panic!("unexpected errors:\n{errors}"),
        }
    }

    fn errors(text: &str) -> Vec<ManifestError> {
        match Manifest::parse("lattice.toml", text) {
            Ok(manifest) => panic!("expected errors, parsed {manifest:?}"),
            Err(errors) => errors.0,
        }
    }

    /// (line, column, path) of each error, for compact assertions.
    fn located(errors: &[ManifestError]) -> Vec<(usize, usize, &str)> {
        errors.iter().map(|e| (e.line, e.column, e.path.as_str())).collect()
    }

    #[test]
    fn the_repositorys_lattice_toml_is_valid_in_every_environment() {
        let manifest = parse(include_str!("../../lattice.toml"));
        assert_eq!(manifest.envs(), ["prod", "test"]);
        for env in [None, Some("test"), Some("prod")] {
            let resolved = manifest.resolve(env).unwrap_or_else(|e| panic!("{env:?}: {e}"));
            assert_eq!(resolved.actors[0].spec.replicas, 2);
        }
    }

    #[test]
    fn the_orders_example_lattice_toml_is_valid_in_every_environment() {
        let manifest = parse(include_str!("../../examples/orders/lattice.toml"));
        assert_eq!(manifest.envs(), ["prod", "test"]);
        for env in [None, Some("test"), Some("prod")] {
            let resolved = manifest.resolve(env).unwrap_or_else(|e| panic!("{env:?}: {e}"));
            let names: Vec<&str> = resolved.actors.iter().map(|a| a.spec.name.as_str()).collect();
            assert_eq!(names, ["orders-ingest", "orders-validate", "orders-price", "orders-ledger"]);
            for link in resolved.actors.iter().flat_map(|a| &a.spec.links).filter(|l| l.contains("subscribe=")) {
                assert!(link.contains("delivery=at-least-once"), "{env:?}: {link}");
            }
        }
        let prod = manifest.resolve(Some("prod")).expect("prod");
        assert!(prod.actors.iter().all(|a| a.spec.replicas == 3 && a.spec.spread.as_deref() == Some("zone")));
        assert!(prod.actors[3].spec.links.iter().any(|l| l == "keyvalue:ledger=orders-redis,bucket=orders-ledger"));
    }

    #[test]
    fn the_example_resolves_for_default_and_prod() {
        let manifest = parse(EXAMPLE);
        assert_eq!(manifest.name().as_str(), "counter");
        assert_eq!(manifest.version(), "0.1.0");
        assert_eq!(manifest.envs(), ["prod"]);

        let base = manifest.resolve(None).expect("default env");
        assert_eq!(base.env, None);
        assert_eq!(base.actors.len(), 1);
        let actor = &base.actors[0];
        assert_eq!(actor.spec.name.as_str(), "kv-counter");
        assert_eq!(actor.spec.artifact, "target/guests/wasm32-wasip2/guest/kv_counter.wasm");
        assert_eq!(actor.spec.digest, "");
        assert_eq!(actor.source, ArtifactSource::Path(actor.spec.artifact.clone()));
        assert_eq!(actor.spec.replicas, 2);
        assert_eq!(actor.spec.spread.as_deref(), Some("zone"));
        assert_eq!(actor.spec.limits, LimitsSpec { max_concurrency: Some(64), ..LimitsSpec::default() });
        assert_eq!(actor.spec.links, ["keyvalue:default=inmemory"]);
        assert_eq!(actor.line, 5);
        assert_eq!((actor.links[0].line, actor.links[0].column), (11, 32));
        assert_eq!(actor.links[0].path, r#"actor[0].links."keyvalue:default""#);
        assert!(base.providers.is_empty());
        assert_eq!(base.undeclared_links().count(), 0, "inmemory is built in");

        let prod = manifest.resolve(Some("prod")).expect("prod");
        assert_eq!(prod.env.as_deref(), Some("prod"));
        let actor = &prod.actors[0];
        assert_eq!(actor.spec.links, ["keyvalue:default=redis"]);
        assert_eq!(actor.spec.replicas, 2, "fields the env does not override stay");
        assert_eq!(actor.links[0].line, 14);
        assert_eq!(actor.links[0].path, r#"env.prod.actor.kv-counter.links."keyvalue:default""#);
        assert_eq!(prod.providers.len(), 1);
        let redis = &prod.providers[0];
        assert_eq!(redis.line, 16);
        assert_eq!(redis.spec.name.as_str(), "redis");
        assert_eq!(redis.spec.kind, "redis");
        assert_eq!(redis.spec.config, BTreeMap::from([("url".to_owned(), "redis://127.0.0.1:6379".to_owned())]));
        assert_eq!(prod.undeclared_links().count(), 0, "redis is declared in prod");

        let spec = prod.spec();
        assert_eq!(spec.name.as_str(), "counter");
        assert_eq!(spec.actors[0], actor.spec);
        assert_eq!(spec.providers[0], redis.spec);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"[app]
name = "shop"
version = "1"
colour = "blue"

[[actor]]
name = "orders"
artifact = "orders"
replicas = 0
links = { "keyvalue:default" = "inmemory", "smtp:x" = "y" }

[[actor]]
name = "orders"
artifact = "orders.wasm"
replicas = "two"

[env.prod.actor.payments]
replicas = 3
"#;
        let errors = errors(text);
        assert_eq!(
            located(&errors),
            [
                (4, 1, "app.colour"),
                (9, 12, "actor[0].replicas"),
                (10, 44, r#"actor[0].links."smtp:x""#),
                (13, 8, "actor[1].name"),
                (15, 12, "actor[1].replicas"),
                (17, 17, "env.prod.actor.payments"),
            ],
            "{errors:#?}"
        );
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines[0],
            "lattice.toml:4:1: app.colour: unknown field `colour`; allowed fields: name, version, description"
        );
        assert_eq!(lines[1], "lattice.toml:9:12: actor[0].replicas: expected an integer of at least 1, found 0");
        assert!(lines[2].contains("unknown interface `smtp`"), "{}", lines[2]);
        assert_eq!(lines[3], "lattice.toml:13:8: actor[1].name: duplicate actor `orders` (first declared on line 6)");
        assert_eq!(
            lines[4],
            r#"lattice.toml:15:12: actor[1].replicas: expected an integer of at least 1, found "two""#
        );
        assert!(lines[5].contains("undeclared actor `payments` (declared actors: orders)"), "{}", lines[5]);
        let all = ManifestErrors(errors.clone()).to_string();
        assert_eq!(all.lines().count(), errors.len());
    }

    #[test]
    fn missing_fields_point_at_the_header() {
        let text = "[app]\nname = \"a\"\n\n[[actor]]\nreplicas = 1\n\n[[provider]]\nname = \"p\"\n";
        let errors = errors(text);
        assert_eq!(
            located(&errors),
            [(1, 1, "app.version"), (4, 1, "actor[0].name"), (4, 1, "actor[0].artifact"), (7, 1, "provider[0].kind")],
            "{errors:#?}"
        );
        assert_eq!(errors[1].message, "missing required field `name`");

        let errors = self::errors("[[actor]]\nname = \"a\"\nartifact = \"a\"\n");
        assert_eq!(located(&errors), [(1, 1, "app")]);
    }

    #[test]
    fn syntax_errors_are_one_located_error() {
        let errors = errors("[app]\nname = \"x\"\nversion = \n");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!((errors[0].line, errors[0].column), (3, 11));
        assert_eq!(errors[0].path, "");
        assert!(errors[0].to_string().starts_with("lattice.toml:3:11: "), "{}", errors[0]);

        let errors = self::errors("[app]\nname = \"x\"\nname = \"y\"\n");
        assert_eq!((errors.len(), errors[0].line), (1, 3), "{errors:#?}");
    }

    #[test]
    fn unknown_envs_name_the_known_ones() {
        let manifest = parse(&format!("{EXAMPLE}\n[env.staging.actor.kv-counter]\nreplicas = 1\n"));
        assert_eq!(manifest.envs(), ["prod", "staging"]);
        let errors = manifest.resolve(Some("dev")).expect_err("dev is not declared").0;
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].path.as_str()), (13, "env"));
        assert!(errors[0].message.contains("no environment `dev` (known environments: prod, staging)"), "{errors:?}");

        let bare = parse("[app]\nname = \"a\"\nversion = \"1\"\n");
        let errors = bare.resolve(Some("prod")).expect_err("no envs").0;
        assert!(errors[0].message.contains("declares no environments"), "{errors:?}");
    }

    #[test]
    fn provider_config_scalars_become_strings() {
        let text = r#"[app]
name = "a"
version = "1"

[[provider]]
name = "cache"
kind = "redis"
config = { url = "redis://r:6379", db = 3, tls = false, ratio = 0.5, big = 1_000 }
constraints = { zone = "a" }

[[provider]]
name = "bad"
kind = "mysql"
config = { nested = { x = "y" } }
constraints = { zone = 1 }

[[provider]]
name = "nats"
kind = "inmemory"
"#;
        let errors = errors(text);
        assert_eq!(
            located(&errors),
            [
                (13, 8, "provider[1].kind"),
                (14, 21, "provider[1].config.nested"),
                (15, 24, "provider[1].constraints.zone"),
                (18, 8, "provider[2].name"),
            ],
            "{errors:#?}"
        );
        assert!(errors[0].message.contains("one of inmemory, redis"), "{}", errors[0]);
        assert!(errors[3].message.contains("`nats` is a built-in provider"), "{}", errors[3]);

        let manifest = parse(text.split("\n[[provider]]\nname = \"bad\"").next().expect("first part"));
        let resolved = manifest.resolve(None).expect("resolve");
        let config = &resolved.providers[0].spec.config;
        let expected = [("big", "1000"), ("db", "3"), ("ratio", "0.5"), ("tls", "false"), ("url", "redis://r:6379")];
        assert_eq!(config, &expected.map(|(k, v)| (k.to_owned(), v.to_owned())).into_iter().collect());
        assert_eq!(resolved.providers[0].spec.constraints.get("zone").map(String::as_str), Some("a"));
    }

    #[test]
    fn links_in_both_forms_become_canonical_specs() {
        let text = r#"[app]
name = "a"
version = "1"

[[actor]]
name = "orders"
artifact = "orders"

[actor.links]
"messaging:bus" = "nats,subscribe=orders.new|orders.retry,queue=q,publish=orders.>"
"keyvalue:cache" = { provider = "redis", bucket = "x", ttl = 30 }
"wasi:keyvalue:default" = "inmemory"
"#;
        let resolved = parse(text).resolve(None).expect("resolve");
        let actor = &resolved.actors[0];
        assert_eq!(actor.source, ArtifactSource::Pushed("orders".into()));
        assert_eq!(
            actor.spec.links,
            [
                "keyvalue:cache=redis,bucket=x,ttl=30",
                "keyvalue:default=inmemory",
                "messaging:bus=nats,publish=orders.>,queue=q,subscribe=orders.new|orders.retry",
            ]
        );
        assert_eq!((actor.links[0].line, actor.links[0].column), (11, 33), "at the provider's value");
        let undeclared: Vec<_> = resolved.undeclared_links().map(|(a, l)| (a.spec.name.as_str(), l.line)).collect();
        assert_eq!(undeclared, [("orders", 11)], "redis is neither built in nor declared");
    }

    #[test]
    fn bad_links_are_refused_where_they_are_written() {
        let text = r#"[app]
name = "a"
version = "1"

[[actor]]
name = "x"
artifact = "x.wasm"
links.default = "inmemory"
links."keyvalue:a" = "inmemory,oops"
links."messaging:bus" = "nats,subscribe=orders.*|_INBOX.>"
links."keyvalue:b" = { bucket = "b" }
links."keyvalue:c" = { provider = "redis", subscribe = "a,b" }
links."keyvalue:d" = ["inmemory"]
links."keyvalue:e" = "inmemory"
links."wasi:keyvalue:e" = "redis"
"#;
        let errors = errors(text);
        assert_eq!(
            located(&errors),
            [
                (8, 7, "actor[0].links.default"),
                (9, 22, r#"actor[0].links."keyvalue:a""#),
                (10, 25, r#"actor[0].links."messaging:bus""#),
                (11, 22, r#"actor[0].links."keyvalue:b".provider"#),
                (12, 56, r#"actor[0].links."keyvalue:c".subscribe"#),
                (13, 22, r#"actor[0].links."keyvalue:d""#),
                (15, 7, r#"actor[0].links."wasi:keyvalue:e""#),
            ],
            "{errors:#?}"
        );
        assert!(errors[1].message.contains("`oops` is not key=value"), "{}", errors[1]);
        assert!(errors[2].message.contains("reserved namespace `_INBOX.>`"), "{}", errors[2]);
        assert!(errors[6].message.contains("duplicate link `keyvalue:e`"), "{}", errors[6]);
    }

    #[test]
    fn limits_sizes_and_durations() {
        let text = r#"[app]
name = "a"
version = "1"
description = "limits"

[[actor]]
name = "x"
artifact = "x.wasm"
memory = "64MiB"
max_reply = 4096
cpu_time = "500ms"
timeout = "1.5s"
instance_reuse = 100
constraints = { zone = "eu", disk = "ssd" }

[env.small.actor.x]
memory = "512KiB"
artifact = "registry-name"
constraints = { zone = "us" }
"#;
        let manifest = parse(text);
        assert_eq!(manifest.description(), Some("limits"));
        let base = manifest.resolve(None).expect("base");
        let limits = &base.actors[0].spec.limits;
        assert_eq!(limits.memory_bytes, Some(64 << 20));
        assert_eq!(limits.max_reply_bytes, Some(4096));
        assert_eq!(limits.cpu_time_ms, Some(500));
        assert_eq!(limits.timeout_ms, Some(1500));
        assert_eq!(limits.max_concurrency, None);
        assert_eq!(limits.instance_reuse, Some(100));
        assert_eq!(base.actors[0].spec.replicas, 1, "default");
        assert_eq!(base.actors[0].spec.constraints.len(), 2);
        let small = manifest.resolve(Some("small")).expect("small");
        let actor = &small.actors[0];
        assert_eq!(actor.spec.limits.memory_bytes, Some(512 * 1024));
        assert_eq!(actor.spec.limits.timeout_ms, Some(1500), "kept");
        assert_eq!(actor.source, ArtifactSource::Pushed("registry-name".into()));
        let constraints: Vec<_> = actor.spec.constraints.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(constraints, [("zone", "us")], "constraints are replaced as a whole");

        let bad = r#"[app]
name = "a"
version = "1"

[[actor]]
name = "x"
artifact = "x.wasm"
memory = "64Mb"
max_reply = 0
cpu_time = 500
timeout = "0.5ms"
max_concurrency = -1
spread = 3

[env.bad-env_name.actor.x]
name = "y"
"#;
        let errors = errors(bad);
        assert_eq!(
            located(&errors),
            [
                (8, 10, "actor[0].memory"),
                (9, 13, "actor[0].max_reply"),
                (10, 12, "actor[0].cpu_time"),
                (11, 11, "actor[0].timeout"),
                (12, 19, "actor[0].max_concurrency"),
                (13, 10, "actor[0].spread"),
                (16, 1, "env.bad-env_name.actor.x.name"),
            ],
            "{errors:#?}"
        );
        assert!(
            errors[0]
                .message
                .ends_with("unknown unit `Mb` in `64Mb` (expected one of B, KiB, MiB, GiB, kB, KB, MB, GB)")
        );
        assert!(errors[3].message.contains("not a whole number of milliseconds"), "{}", errors[3]);
    }

    #[test]
    fn envs_replace_and_add_providers_and_validate_names() {
        let text = r#"[app]
name = "a"
version = "1"

[[actor]]
name = "x"
artifact = "x.wasm"
links = { "keyvalue:default" = "cache", "keyvalue:other" = "manual" }

[[provider]]
name = "cache"
kind = "inmemory"

[[provider]]
name = "extra"
kind = "inmemory"

[[env.prod.provider]]
name = "cache"
kind = "redis"
config = { url = "redis://r" }

[[env.prod.provider]]
name = "audit"
kind = "inmemory"
"#;
        let manifest = parse(text);
        let base = manifest.resolve(None).expect("base");
        let names: Vec<_> = base.providers.iter().map(|p| (p.spec.name.as_str(), p.spec.kind.as_str())).collect();
        assert_eq!(names, [("cache", "inmemory"), ("extra", "inmemory")]);
        let prod = manifest.resolve(Some("prod")).expect("prod");
        let names: Vec<_> =
            prod.providers.iter().map(|p| (p.spec.name.as_str(), p.spec.kind.as_str(), p.line)).collect();
        assert_eq!(names, [("cache", "redis", 18), ("extra", "inmemory", 14), ("audit", "inmemory", 23)]);
        let undeclared: Vec<_> = prod.undeclared_links().map(|(_, l)| l.spec.provider.as_str()).collect();
        assert_eq!(undeclared, ["manual"]);
        let error = prod.error(8, 60, "actor[0].links.\"keyvalue:other\"", "no provider `manual` runs in the lattice");
        assert_eq!(
            error.to_string(),
            "lattice.toml:8:60: actor[0].links.\"keyvalue:other\": no provider `manual` runs in the lattice"
        );

        let dup = format!("{text}\n[[env.prod.provider]]\nname = \"audit\"\nkind = \"redis\"\n\n[env.\"a.b\"]\n");
        let errors = errors(&dup);
        assert_eq!(located(&errors), [(28, 8, "env.prod.provider[2].name"), (31, 6, r#"env."a.b""#)], "{errors:#?}");
        assert!(errors[0].message.contains("duplicate provider `audit` (first declared on line 23)"));
    }

    #[test]
    fn misshapen_tables_are_reported() {
        let text = "unknown = 1\n[app]\nname = \"a\"\nversion = 1\n[actor]\nname = \"x\"\n[env]\nprod = 3\n";
        let errors = errors(text);
        assert_eq!(
            located(&errors),
            [(1, 1, "unknown"), (4, 11, "app.version"), (5, 1, "actor"), (8, 8, "env.prod")],
            "{errors:#?}"
        );
        assert!(errors[2].message.starts_with("expected an array of tables ([[actor]])"), "{}", errors[2]);
    }

    #[test]
    fn one_error_per_problem_without_cascades() {
        let text = r#"[app]
name = "a"
version = "1"

[[actor]]
name = "bad.name"
artifact = "x.wasm"
spread = "a=b"
constraints = { "" = "x" }

[env.prod.actor."bad.name"]
replicas = 2

[env.prod.actor.ghost]
replicas = 0
"#;
        let errors = errors(text);
        assert_eq!(
            located(&errors),
            [
                (6, 8, "actor[0].name"),
                (8, 10, "actor[0].spread"),
                (9, 17, r#"actor[0].constraints."""#),
                (14, 17, "env.prod.actor.ghost"),
                (15, 12, "env.prod.actor.ghost.replicas"),
            ],
            "{errors:#?}"
        );
        assert!(errors[3].message.contains("(declared actors: bad.name)"), "{}", errors[3]);
    }

    const ROUTED: &str = r#"[app]
name = "edge"
version = "1"

[[actor]]
name = "api"
artifact = "api.wasm"
routes = ["API.example.com/v1/", "/"]

[[actor]]
name = "web"
artifact = "web.wasm"

[env.prod.actor.api]
routes = ["api.example.com/v1"]

[env.prod.actor.web]
routes = ["/"]

[env.dev.actor.api]
routes = []
"#;

    #[test]
    fn routes_are_canonical_and_envs_replace_them() {
        let manifest = parse(ROUTED);
        let base = manifest.resolve(None).expect("base");
        assert_eq!(base.actors[0].spec.routes, ["api.example.com/v1", "/"], "canonical, in file order");
        assert!(base.actors[1].spec.routes.is_empty());
        let prod = manifest.resolve(Some("prod")).expect("prod");
        assert_eq!(prod.actors[0].spec.routes, ["api.example.com/v1"], "the env's list replaces the base one");
        assert_eq!(prod.actors[1].spec.routes, ["/"]);
        let dev = manifest.resolve(Some("dev")).expect("dev");
        assert!(dev.actors[0].spec.routes.is_empty(), "an empty list removes every route");
        assert_eq!(dev.spec().actors[0].routes, Vec::<String>::new());
    }

    #[test]
    fn bad_and_duplicate_routes_are_refused_where_they_are_written() {
        let text = r#"[app]
name = "a"
version = "1"

[[actor]]
name = "x"
artifact = "x.wasm"
routes = ["/", "v1", "api.example.com:8080/", 3, "/a/", "/a"]

[[actor]]
name = "y"
artifact = "y.wasm"
routes = "/"

[env.prod.actor.y]
routes = ["/b?q"]
"#;
        let errors = errors(text);
        assert_eq!(
            located(&errors),
            [
                (8, 16, "actor[0].routes[1]"),
                (8, 22, "actor[0].routes[2]"),
                (8, 47, "actor[0].routes[3]"),
                (8, 57, "actor[0].routes[5]"),
                (13, 10, "actor[1].routes"),
                (16, 11, "env.prod.actor.y.routes[0]"),
            ],
            "{errors:#?}"
        );
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines[0],
            "lattice.toml:8:16: actor[0].routes[1]: invalid route `v1`: expected [host]/path, e.g. `/` or \
             `api.example.com/v1`"
        );
        assert!(lines[1].ends_with("the host must be a DNS name (or `*.` and one), without a port"), "{}", lines[1]);
        assert_eq!(lines[3], "lattice.toml:8:57: actor[0].routes[5]: duplicate route `/a` (also on line 8)");
        assert!(lines[4].contains("expected an array of routes"), "{}", lines[4]);
    }

    #[test]
    fn a_route_belongs_to_one_actor_in_every_environment() {
        let text = ROUTED.replace("routes = [\"api.example.com/v1\"]", "routes = [\"API.example.com/v1\", \"/\"]");
        let errors = errors(&format!("{text}\n[[actor]]\nname = \"z\"\nartifact = \"z.wasm\"\nroutes = [\"/\"]\n"));
        assert_eq!(
            located(&errors),
            [(18, 11, "env.prod.actor.web.routes[0]"), (26, 11, "actor[2].routes[0]")],
            "{errors:#?}"
        );
        assert_eq!(errors[0].message, "route `/` is also used by actor `api` (line 15)");
        assert_eq!(errors[1].message, "route `/` is also used by actor `api` (line 8)", "once, not once per env");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let errors = errors("[app]\nname = \"a\"\nversion = \"1\"\ndescription = \"é\"\n[[actor]]\nname = \"é\"\n");
        let name = errors.iter().find(|e| e.path == "actor[0].name").expect("name error");
        assert_eq!((name.line, name.column), (6, 8));
    }
}
