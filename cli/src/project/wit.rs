//! `lattice wit`: write the WIT packages an actor targets, for people who bring their own build.

use std::path::PathBuf;

use clap::Args;

/// Write the WIT packages actors target into a directory [./wit].
///
/// Writes lattice.wit and deps/ (the WASI packages it uses). The world `lattice:actor/actor` imports wasi:keyvalue, wasi:messaging and wasi:logging and exports
/// wasi:messaging/incoming-handler; `lattice:actor/http-actor` serves wasi:http. Existing files of the same
/// names are replaced.
///
/// Example: lattice wit my-actor/wit
#[derive(Debug, Args)]
pub struct WitArgs {
    /// Where to write them [./wit]
    #[arg(default_value = "wit")]
    dir: PathBuf,
}

pub fn run(args: WitArgs) -> anyhow::Result<()> {
    super::write_files(&args.dir, super::wit_files())?;
    println!("{}", super::absolute(&args.dir)?.display());
    Ok(())
}
