//! What the CLI prints: JSON documents, tables, and errors with their exit codes (see docs/cli.md).
//!
//! With `-o json` results go to stdout, pretty-printed, one document per command; streams (`events`) print one
//! compact document per line. A failure under `-o json` prints one line on stdout,
//! `{"error":{"code":"…","message":"…"}}`, and exits with the code of its class; without it the error is one
//! `error: …` line on stderr. Every failure is classified here, in one place, from the typed errors it carries.

use std::fmt;
use std::process::ExitCode;

use clap::ArgMatches;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use lattice_client::{ClientError, ConnectError};
use lattice_core::wire::{ErrorCode, WireError};
use lattice_host::files::ReadFileError;
use lattice_host::{InvokeError, LoadError};

use crate::args::Output;

/// Prints `value` as one pretty-printed JSON document on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints `value` as one compact JSON document on its own line: the form of streams.
pub fn print_json_line(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// An empty table with `header`, in the CLI's one style.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.iter().copied());
    t
}

/// Classes of failure, each with a stable JSON code and a distinct exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Anything not below (exit 1).
    Failure,
    /// The command line is wrong (exit 2; clap reports its own usage errors with this code).
    Usage,
    /// A named actor, host, app, artifact, link, route, context or file does not exist (exit 3).
    NotFound,
    /// Refused: a permission, a signature, a policy or a validation said no (exit 4).
    Refused,
    /// No answer in time (exit 5).
    Timeout,
    /// NATS is unreachable, or nothing answers (no host, no responders), or a backend is down (exit 6).
    Unavailable,
}

impl ErrorClass {
    /// Every class, in exit code order.
    #[cfg(test)]
    const ALL: [ErrorClass; 6] = [
        ErrorClass::Failure,
        ErrorClass::Usage,
        ErrorClass::NotFound,
        ErrorClass::Refused,
        ErrorClass::Timeout,
        ErrorClass::Unavailable,
    ];

    /// The `code` of the JSON error document.
    pub fn code(self) -> &'static str {
        match self {
            ErrorClass::Failure => "failure",
            ErrorClass::Usage => "usage",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Refused => "refused",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Unavailable => "unavailable",
        }
    }

    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::Failure => 1,
            ErrorClass::Usage => 2,
            ErrorClass::NotFound => 3,
            ErrorClass::Refused => 4,
            ErrorClass::Timeout => 5,
            ErrorClass::Unavailable => 6,
        }
    }

    /// The class of a host's error code.
    fn of_wire(code: ErrorCode) -> ErrorClass {
        match code {
            ErrorCode::NotFound => ErrorClass::NotFound,
            ErrorCode::Rejected
            | ErrorCode::Unauthorized
            | ErrorCode::BadRequest
            | ErrorCode::InvalidConfig
            | ErrorCode::DigestMismatch
            | ErrorCode::CompileFailed
            | ErrorCode::UnsupportedVersion => ErrorClass::Refused,
            ErrorCode::Timeout => ErrorClass::Timeout,
            ErrorCode::Unavailable => ErrorClass::Unavailable,
            _ => ErrorClass::Failure,
        }
    }

    /// The class of a control client's error.
    fn of_client(error: &ClientError) -> ErrorClass {
        match error {
            ClientError::Connect(e) => ErrorClass::of_connect(e),
            ClientError::NoResponders(_) | ClientError::NoJetStream(_) => ErrorClass::Unavailable,
            ClientError::Timeout { .. } => ErrorClass::Timeout,
            ClientError::Remote(e) => ErrorClass::of_wire(e.code),
            ClientError::Conflict(_) | ClientError::ReservedLink { .. } | ClientError::UnverifiedHost { .. } => {
                ErrorClass::Refused
            }
            ClientError::UnknownProvider { .. } => ErrorClass::NotFound,
            ClientError::BadHeader(_) => ErrorClass::Usage,
            _ => ErrorClass::Failure,
        }
    }

    fn of_connect(error: &ConnectError) -> ErrorClass {
        match error {
            ConnectError::Connect { .. } => ErrorClass::Unavailable,
            ConnectError::NoServers | ConnectError::Incomplete(_) | ConnectError::InboxPrefix(_) => ErrorClass::Usage,
            ConnectError::Credentials { source, .. } => ErrorClass::of_io(source),
            _ => ErrorClass::Failure,
        }
    }

    fn of_io(error: &std::io::Error) -> ErrorClass {
        match error.kind() {
            std::io::ErrorKind::NotFound => ErrorClass::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorClass::Refused,
            std::io::ErrorKind::TimedOut => ErrorClass::Timeout,
            _ => ErrorClass::Failure,
        }
    }

    /// The class of `error`: from the first typed error along its chain of causes that has one.
    pub fn of(error: &anyhow::Error) -> ErrorClass {
        for cause in error.chain() {
            if let Some(e) = cause.downcast_ref::<Classified>() {
                return e.class;
            }
            if let Some(e) = cause.downcast_ref::<ClientError>() {
                return ErrorClass::of_client(e);
            }
            if let Some(e) = cause.downcast_ref::<WireError>() {
                return ErrorClass::of_wire(e.code);
            }
            if let Some(e) = cause.downcast_ref::<ConnectError>() {
                return ErrorClass::of_connect(e);
            }
            // A host whose credential does not let it run as configured.
            if let Some(
                lattice_host::lattice::HostError::NoCredential { .. }
                | lattice_host::lattice::HostError::Credential { .. },
            ) = cause.downcast_ref::<lattice_host::lattice::HostError>()
            {
                return ErrorClass::Refused;
            }
            // Policy, claims, limits, links, or a component that does not compile or fit.
            if cause.downcast_ref::<LoadError>().is_some() {
                return ErrorClass::Refused;
            }
            if let Some(e) = cause.downcast_ref::<InvokeError>() {
                return match e {
                    InvokeError::Timeout(_) => ErrorClass::Timeout,
                    _ => ErrorClass::Failure,
                };
            }
            if cause.downcast_ref::<tokio::time::error::Elapsed>().is_some() {
                return ErrorClass::Timeout;
            }
            // A FIFO, a device, a file too large or not text: refused; else what the IO error says.
            if let Some(e) = cause.downcast_ref::<ReadFileError>() {
                return match e {
                    ReadFileError::Io { source, .. } => ErrorClass::of_io(source),
                    _ => ErrorClass::Refused,
                };
            }
            if let Some(e) = cause.downcast_ref::<std::io::Error>() {
                return ErrorClass::of_io(e);
            }
        }
        ErrorClass::Failure
    }
}

/// An error the CLI itself classifies (a name that matches nothing, a manifest with errors…).
#[derive(Debug, thiserror::Error)]
pub struct Classified {
    class: ErrorClass,
    message: String,
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A failure of class `class`.
pub fn classified(class: ErrorClass, message: impl fmt::Display) -> anyhow::Error {
    Classified { class, message: message.to_string() }.into()
}

/// The command line is wrong in a way clap cannot check (a flag's value, flags that do not fit together).
pub fn usage(message: impl fmt::Display) -> anyhow::Error {
    classified(ErrorClass::Usage, message)
}

/// Something named does not exist.
pub fn not_found(message: impl fmt::Display) -> anyhow::Error {
    classified(ErrorClass::NotFound, message)
}

/// Refused (invalid input, policy, permission).
pub fn refused(message: impl fmt::Display) -> anyhow::Error {
    classified(ErrorClass::Refused, message)
}

/// Nothing happened in time.
pub fn timeout(message: impl fmt::Display) -> anyhow::Error {
    classified(ErrorClass::Timeout, message)
}

/// The output format the command line asks for: the `--output` of the deepest subcommand that has one.
pub fn requested(matches: &ArgMatches) -> Output {
    let mut output = Output::Text;
    let mut level = Some(matches);
    while let Some(m) = level {
        if let Ok(Some(o)) = m.try_get_one::<Output>("output") {
            output = *o;
        }
        level = m.subcommand().map(|(_, sub)| sub);
    }
    output
}

/// Whether the raw command line asks for JSON (`-o json`, `-ojson`, `--output json`, `--output=json`). clap's
/// own usage errors come before there is any parsed value to ask, so they look at the arguments themselves.
pub fn json_requested_in(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<String> = args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
    args.iter().enumerate().any(|(i, arg)| match arg.as_str() {
        "-o" | "--output" => args.get(i + 1).is_some_and(|value| value == "json"),
        other => matches!(other, "-ojson" | "-o=json" | "--output=json"),
    })
}

/// Reports one of clap's errors. Help and version print as clap prints them; a usage error is clap's text on
/// stderr, or, when the command line asks for `-o json`, the JSON error document on stdout. Exit 2 either way.
pub fn report_usage(error: clap::Error, json: bool) -> ExitCode {
    if !json || !error.use_stderr() {
        error.exit()
    }
    // clap's first paragraph, on one line: what is wrong, and with which arguments.
    let text = error.render().to_string();
    let paragraph: Vec<&str> = text.lines().take_while(|line| !line.trim().is_empty()).map(str::trim).collect();
    let message = paragraph.join(" ");
    let message = message.trim_start_matches("error: ");
    println!("{}", serde_json::json!({"error": {"code": ErrorClass::Usage.code(), "message": message}}));
    ExitCode::from(ErrorClass::Usage.exit_code())
}

/// The JSON error document of `error`.
pub fn error_json(error: &anyhow::Error) -> serde_json::Value {
    serde_json::json!({"error": {"code": ErrorClass::of(error).code(), "message": format!("{error:#}")}})
}

/// Reports `error` in the format asked for and returns the exit code of its class.
pub fn report(error: &anyhow::Error, output: Output) -> ExitCode {
    match output {
        // One line a person can act on: the error and its causes, joined.
        Output::Text => eprintln!("error: {error:#}"),
        Output::Json => println!("{}", error_json(error)),
    }
    ExitCode::from(ErrorClass::of(error).exit_code())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use anyhow::Context;
    use std::time::Duration;

    #[test]
    fn codes_and_exit_codes_are_distinct() {
        let codes: std::collections::BTreeSet<_> = ErrorClass::ALL.iter().map(|c| c.code()).collect();
        let exits: std::collections::BTreeSet<_> = ErrorClass::ALL.iter().map(|c| c.exit_code()).collect();
        assert_eq!((codes.len(), exits.len()), (ErrorClass::ALL.len(), ErrorClass::ALL.len()));
        assert_eq!(ErrorClass::Usage.exit_code(), 2, "clap's");
    }

    #[test]
    fn json_is_recognised_in_every_spelling_of_the_flag() {
        let asks = |line: &str| json_requested_in(line.split(' ').map(std::ffi::OsString::from));
        for line in
            ["lattice stop -o json", "lattice stop -ojson", "lattice stop --output json", "lattice stop --output=json"]
        {
            assert!(asks(line), "{line}");
        }
        for line in ["lattice stop", "lattice stop -o text", "lattice publish json -o", "lattice call x json"] {
            assert!(!asks(line), "{line}");
        }
    }

    #[test]
    fn typed_errors_are_classified_through_context() {
        let remote = ClientError::Remote(WireError::new(ErrorCode::NotFound, "no actor `x`"));
        let error = anyhow::Error::from(remote).context("cannot stop x");
        assert_eq!(ErrorClass::of(&error), ErrorClass::NotFound);
        let unauthorized = ClientError::Remote(WireError::new(ErrorCode::Unauthorized, "unsigned"));
        assert_eq!(ErrorClass::of(&unauthorized.into()), ErrorClass::Refused);
        let timeout = ClientError::Timeout { what: "ping".into(), after: Duration::from_secs(1) };
        assert_eq!(ErrorClass::of(&timeout.into()), ErrorClass::Timeout);
        assert_eq!(ErrorClass::of(&ClientError::NoResponders("none".into()).into()), ErrorClass::Unavailable);
        let io: anyhow::Result<()> =
            Err(std::io::Error::from(std::io::ErrorKind::NotFound)).context("cannot read lattice.toml");
        assert_eq!(ErrorClass::of(&io.unwrap_err()), ErrorClass::NotFound);
        assert_eq!(ErrorClass::of(&anyhow::anyhow!("something")), ErrorClass::Failure);
        let wrapped = not_found("no app `a`").context("status");
        assert_eq!(ErrorClass::of(&wrapped), ErrorClass::NotFound);
        let json = error_json(&wrapped);
        assert_eq!(json["error"]["code"], "not_found");
        assert_eq!(json["error"]["message"], "status: no app `a`");
    }
}
