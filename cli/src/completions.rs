//! `lattice completions <shell>` and `lattice man [DIR]`: generated from the command line's own definition.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Print a shell completion script on stdout.
///
///   bash: lattice completions bash > ~/.local/share/bash-completion/completions/lattice
///   zsh:  lattice completions zsh > ~/.zfunc/_lattice   (with fpath+=~/.zfunc before compinit)
///   fish: lattice completions fish > ~/.config/fish/completions/lattice.fish
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print the lattice(1) man page on stdout, or write one page per command into DIR (lattice.1,
/// lattice-link-put.1, …).
///
///   lattice man ~/.local/share/man/man1 && man lattice-link
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write every page into (created if missing) [print lattice.1 on stdout]
    pub dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs, mut command: clap::Command) -> anyhow::Result<()> {
    clap_complete::generate(args.shell, &mut command, "lattice", &mut std::io::stdout());
    Ok(())
}

pub fn man(args: ManArgs, command: clap::Command) -> anyhow::Result<()> {
    let Some(dir) = args.dir else {
        clap_mangen::Man::new(command).render(&mut std::io::stdout()).context("cannot write the man page")?;
        return Ok(());
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(command, &dir).with_context(|| format!("cannot write man pages to {}", dir.display()))?;
    println!("wrote lattice.1 and a page per command to {}", dir.display());
    Ok(())
}
