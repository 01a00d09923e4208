//! Workflow verbs: `lattice publish` (durable, through JetStream) and `lattice dlq list|replay`.

use std::time::Duration;

use clap::{Args, Subcommand};
use lattice_core::subject::Name;

use crate::args::{Output, PayloadArgs};
use crate::connect::LatticeArgs;
use crate::output::{print_json, refused, table, usage};

/// Publish a message durably: it returns once a JetStream stream stored it
///
/// The subject must be captured by a stream, which a host creates for every link that subscribes to it with
/// `delivery=at-least-once`. With --count N the message is published N times and `{n}` in the payload,
/// headers and --msg-id is replaced by 1…N (a load generator):
///
///   lattice publish orders.in 'o-{n} alice apple 2' --msg-id 'order-{n}' --count 10000
#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    /// The subject (no wildcards; not in a namespace reserved for the lattice)
    pub subject: String,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Metadata to send as a header, key=value (repeatable)
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// The message's id (`lattice-msg-id`): a second publish with the same id within 2 minutes is stored once,
    /// and subscribers see it in the message's metadata
    #[arg(long, value_name = "ID")]
    pub msg_id: Option<String>,
    /// Publish the message this many times, replacing `{n}` with 1..=N
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("header `{text}` is not key=value")),
    }
}

pub async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    lattice_provider_sdk::validate_subject(&args.subject, false).map_err(usage)?;
    if let Err(reserved) = lattice_core::reserved::check_publish(&args.subject) {
        return Err(refused(format!("cannot publish to `{}`: {reserved}", args.subject)));
    }
    let payload = args.payload.read().await?;
    let client = args.lattice.client().await?;
    let templated = args.count > 1;
    let fill = |text: &str, n: u64| if templated { text.replace("{n}", &n.to_string()) } else { text.to_owned() };
    let started = std::time::Instant::now();
    let mut last = None;
    let mut duplicates = 0;
    for n in 1..=args.count {
        let payload =
            if templated { fill(&String::from_utf8_lossy(&payload), n).into_bytes() } else { payload.clone() };
        let headers: Vec<(String, String)> = args.headers.iter().map(|(k, v)| (k.clone(), fill(v, n))).collect();
        let id = args.msg_id.as_deref().map(|id| fill(id, n));
        let published = client.publish(&args.subject, payload.into(), &headers, id.as_deref()).await?;
        duplicates += u64::from(published.duplicate);
        last = Some(published);
    }
    let Some(last) = last else { return Ok(()) };
    match args.output {
        Output::Json => print_json(&serde_json::json!({
            "subject": args.subject,
            "stream": last.stream,
            "seq": last.seq,
            "count": args.count,
            "duplicates": duplicates,
        })),
        Output::Text => {
            if args.count == 1 {
                let duplicate = if last.duplicate {
                    " (a duplicate of an earlier message with this id: not stored again)"
                } else {
                    ""
                };
                println!("published to {} (stream {}, seq {}){duplicate}", args.subject, last.stream, last.seq);
            } else {
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "published {} messages to {} (stream {}, last seq {}, {duplicates} duplicates) in {secs:.1}s",
                    args.count, args.subject, last.stream, last.seq
                );
            }
            Ok(())
        }
    }
}

/// Inspect and replay dead letters: messages an actor failed to handle on every allowed delivery
#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first
    List {
        #[command(flatten)]
        lattice: LatticeArgs,
        /// Only this actor's
        actor: Option<Name>,
        /// Output format (json: one document with every letter, payload included)
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Publish an actor's dead letters again on their subjects (with their original lattice-msg-id) and
    /// remove them from the dead-letter stream
    Replay {
        #[command(flatten)]
        lattice: LatticeArgs,
        /// The actor
        actor: Name,
        /// Only the letter with this sequence (from `lattice dlq list`)
        #[arg(long)]
        seq: Option<u64>,
        /// Output format
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
}

pub async fn dlq(args: DlqArgs) -> anyhow::Result<()> {
    match args.command {
        DlqCommand::List { lattice, actor, output } => {
            let client = lattice.client().await?;
            let letters = client.dead_letters(actor.as_ref()).await?;
            match output {
                Output::Json => print_json(&letters),
                Output::Text => {
                    if letters.is_empty() {
                        println!("no dead letters");
                        return Ok(());
                    }
                    let mut t = table(&["SEQ", "ACTOR", "SUBJECT", "ID", "ATTEMPTS", "WHEN", "REASON", "PAYLOAD"]);
                    for l in &letters {
                        let when =
                            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(l.time_ms));
                        t.add_row(vec![
                            l.seq.to_string(),
                            l.actor.clone(),
                            l.subject.clone(),
                            l.id.clone(),
                            l.attempts.to_string(),
                            when.to_string(),
                            l.reason.clone(),
                            preview(&l.payload),
                        ]);
                    }
                    println!("{t}");
                    Ok(())
                }
            }
        }
        DlqCommand::Replay { lattice, actor, seq, output } => {
            let client = lattice.client().await?;
            let replayed = client.replay_dead_letters(&actor, seq).await?;
            match output {
                Output::Json => print_json(&replayed),
                Output::Text => {
                    for l in &replayed {
                        println!("replayed {} to {} (id {})", l.seq, l.subject, l.id);
                    }
                    if replayed.is_empty() {
                        println!("no dead letters for {actor}");
                    }
                    Ok(())
                }
            }
        }
    }
}

/// The start of a payload, on one line.
fn preview(payload: &str) -> String {
    let line: String = payload.chars().map(|c| if c.is_control() { ' ' } else { c }).take(40).collect();
    if payload.chars().count() > 40 { format!("{line}…") } else { line }
}
