//! `lattice run`: run an actor on a local in-process runtime, no lattice needed.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lattice_core::claims::Rejection;
use lattice_core::link::LinkSpec;
use lattice_host::{ActorConfig, IncomingMessage, LoadError, LogLine, LogSource, RuntimeBuilder};

use crate::args::{CacheArgs, KvQuotaArgs, LimitArgs, Output};
use crate::policy::PolicyArgs;

/// Run an actor locally: deliver messages to its incoming handler and print its replies and logs.
///
/// Replies go to stdout, one per line; what the actor logged goes to stderr. With `-o json`, each invocation
/// prints one JSON object on stdout instead.
///
/// Only actors signed by a --trusted-issuer run, unless --allow-unsigned (development only); see
/// docs/signing.md.
///
/// Example: lattice run kv_counter.signed.wasm --trusted-issuer dev --link keyvalue:default=inmemory
///   --message visits --repeat 3
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The actor component (.wasm, wasm32-wasip2 component)
    pub component: PathBuf,
    /// Bind an import to a provider: <interface>:<name>=<provider>[,key=value...]
    /// (e.g. keyvalue:default=inmemory,bucket=dev). Repeatable. Unlinked names get access-denied.
    #[arg(long = "link", value_name = "LINK")]
    pub links: Vec<LinkSpec>,
    /// Payload of the message to deliver
    #[arg(long, short, default_value = "")]
    pub message: String,
    /// Topic the message claims to arrive on
    #[arg(long)]
    pub topic: Option<String>,
    /// Deliver the message this many times, one after another
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Name of the actor in logs [the file's stem]
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub kv_quota: KvQuotaArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let bytes = lattice_host::files::read_file(&args.component, lattice_host::files::MAX_COMPONENT_BYTES)?;
    crate::check::component(&args.component, &bytes)?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.component.file_stem().map_or_else(|| "actor".into(), |s| s.to_string_lossy().into_owned())
    });
    let quota = args.kv_quota.quota(None, None).map_err(anyhow::Error::msg)?;
    let runtime = RuntimeBuilder::new()
        .cache_dir(args.cache.dir())
        .inmemory_keyvalue_quota(quota)
        .policy(args.policy.to_policy()?)
        .build()
        .context("cannot start the runtime")?;
    let config = ActorConfig { limits: args.limits.to_limits(), links: args.links.clone() };
    let actor = runtime
        .load(&name, bytes, config)
        .await
        .map_err(with_remedy)
        .with_context(|| format!("cannot load {}", args.component.display()))?;
    // A signed actor is shown under the name its claims give, unless --name says otherwise.
    let name = match (&args.name, actor.claims()) {
        (None, Some(claims)) => claims.name.clone(),
        _ => name,
    };

    for _ in 0..args.repeat {
        let mut message = IncomingMessage::new(args.message.as_bytes());
        message.topic = args.topic.clone();
        let outcome = actor.invoke(message).await;
        let reply = outcome.result.as_ref().ok().and_then(Option::as_ref);
        match args.output {
            Output::Text => {
                for line in &outcome.logs {
                    eprintln!("{}", format_log(&name, line));
                }
                if outcome.logs_dropped > 0 {
                    eprintln!("[{name}] ({} more log lines dropped)", outcome.logs_dropped);
                }
                if let Some(reply) = reply {
                    println!("{}", String::from_utf8_lossy(&reply.data));
                }
            }
            Output::Json => {
                let logs: Vec<_> = outcome
                    .logs
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "source": source_name(l.source),
                            "level": l.level.as_str(),
                            "context": l.context,
                            "message": l.message,
                        })
                    })
                    .collect();
                let doc = serde_json::json!({
                    "actor": name,
                    "reply": reply.map(|r| String::from_utf8_lossy(&r.data).into_owned()),
                    "error": outcome.result.as_ref().err().map(ToString::to_string),
                    "logs": logs,
                });
                println!("{doc}");
            }
        }
        outcome.result.with_context(|| format!("actor `{name}` failed"))?;
    }
    Ok(())
}

/// A load error, with the flag of this command that would let a refused actor run (still a refusal: exit 4).
fn with_remedy(error: LoadError) -> anyhow::Error {
    match &error {
        LoadError::Rejected(Rejection::Unsigned) => {
            crate::output::refused("actor is not signed (pass --allow-unsigned to run unsigned actors in development)")
        }
        LoadError::Rejected(Rejection::UntrustedIssuer { issuer }) => {
            crate::output::refused(format_args!("{error} (pass --trusted-issuer {issuer} to run its actors)"))
        }
        _ => error.into(),
    }
}

fn source_name(source: LogSource) -> &'static str {
    match source {
        LogSource::Logging => "logging",
        LogSource::Stdout => "stdout",
        LogSource::Stderr => "stderr",
    }
}

fn format_log(actor: &str, line: &LogLine) -> String {
    match line.source {
        LogSource::Logging if line.context.is_empty() => {
            format!("[{actor}] {}: {}", line.level, line.message)
        }
        LogSource::Logging => format!("[{actor}] {} {}: {}", line.level, line.context, line.message),
        source => format!("[{actor}] {}: {}", source_name(source), line.message),
    }
}
