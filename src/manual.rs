//! `ferry completions SHELL` and `ferry man DIR`: shell completion scripts and
//! man pages, generated from the clap definitions in `args.rs` so they never
//! drift from `--help`. Writes only to standard output or the directory named.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::args::{Cli, CompletionShell};

/// Prints the completion script for `shell` to standard output.
pub fn completions(shell: CompletionShell) -> Result<()> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ferry", &mut out);
    use std::io::Write;
    std::io::stdout().write_all(&out).context("writing the completion script")
}

/// Writes ferry.1 and one page per (nested) subcommand into `dir`.
pub fn man_pages(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    let count = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".1"))
        .count();
    println!("{count} man pages in {}", dir.display());
    Ok(())
}
