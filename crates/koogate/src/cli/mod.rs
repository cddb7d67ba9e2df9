//! Command-line interface. Contract for every command: the result alone on stdout and exit 0;
//! a usage error exits 2 (clap's convention); any other failure prints `error: …` on stderr and
//! exits 1.

pub mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "koogate",
    version,
    about = "Merchant gateway for the Huawei Cloud KooGallery marketplace"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign, verify, encrypt and decrypt exactly as KooGallery does: a toolbox for debugging.
    Tools(tools::ToolsArgs),
}

/// Runs the command line of this process.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tools(args) => tools::run(args),
    };
    match result {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
