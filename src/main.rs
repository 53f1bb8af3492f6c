//! `ferry`: the server, the agent and the command-line client in one binary.
//! Everything happens in the library crates; this file only parses arguments,
//! runs, and turns an error into an exit status.

mod args;
mod dev;
mod manual;
mod run;
#[cfg(test)]
mod stamp;
mod svc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before anything builds a TLS configuration: ring is the only provider.
    ferry_tls::install_crypto_provider();
    let cli = args::Cli::parse();
    match run::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
