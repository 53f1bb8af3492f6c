//! `ferry`: the server, the agent and the command-line client in one binary.
//! Everything happens in the library crates; this file only parses arguments,
//! runs, and turns an error into an exit status.

mod args;
mod dev;
mod run;
mod svc;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    // Before anything builds a TLS configuration: ring is the only provider.
    ferry_tls::install_crypto_provider();
    // Bad arguments exit with clap's 2 (usage), as documented.
    let matches = with_exit_status(args::Cli::command()).get_matches();
    let cli = match args::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // The one place an error becomes a status (`ferry_cli::exit`).
            ExitCode::from(ferry_cli::exit::exit_code(&e))
        }
    }
}

/// Every command's `--help` ends with the exit statuses, as `ferry --help`
/// does: the same for all of them.
fn with_exit_status(cmd: clap::Command) -> clap::Command {
    cmd.after_help(ferry_cli::exit::EXIT_STATUS_SHORT)
        .after_long_help(ferry_cli::exit::EXIT_STATUS)
        .mut_subcommands(with_exit_status)
}
