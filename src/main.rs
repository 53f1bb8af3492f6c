//! `ferry`: the server, the agent and the command-line client in one binary.
//! Everything happens in the library crates; this file only parses arguments,
//! runs, and turns an error into an exit status.

mod args;
mod config;
mod dev;
mod manual;
mod run;
#[cfg(test)]
mod stamp;
mod svc;

use std::process::ExitCode;

use clap::CommandFactory;

fn main() -> ExitCode {
    // Before anything builds a TLS configuration: ring is the only provider.
    ferry_tls::install_crypto_provider();
    let parsed = match config::parse(|| with_exit_status(args::Cli::command())) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            // A config file that cannot be used is bad arguments: clap's usage status.
            return ExitCode::from(2);
        }
    };
    match parsed.printed_config() {
        Ok(Some(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    match run::run(parsed.cli) {
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
