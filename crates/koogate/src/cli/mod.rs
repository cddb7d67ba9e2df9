//! Command-line interface. Contract for every command: the result alone on stdout and exit 0;
//! a usage error exits 2 (clap's convention); any other failure prints `error: …` on stderr and
//! exits 1.

pub mod audit;
pub mod conformance;
pub mod emulator;
pub mod instances;
pub mod load;
pub mod serve;
pub mod tools;
pub mod usage;
pub mod webhooks;

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

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the production interface KooGallery calls (SaaS V2 POST and V1 GET), with its job
    /// workers. With no configuration: SQLite in ./koogate-data, listening on 127.0.0.1:8080.
    Serve(serve::ServeArgs),
    /// Apply database migrations and exit.
    Migrate(serve::ServeArgs),
    /// Validate the configuration and explain every setting and where it came from.
    CheckConfig(serve::ServeArgs),
    /// List the audit log of calls KooGallery made.
    Audit(audit::AuditArgs),
    /// Sign, verify, encrypt and decrypt exactly as KooGallery does: a toolbox for debugging.
    Tools(tools::ToolsArgs),
    /// Load a production interface with signed calls and report throughput, latency and result
    /// codes; with --baseline, also as a ratio to a trivial endpoint measured in the same run.
    Load(load::LoadArgs),
    /// Run KooGallery's seller-console debug cases, and more (resends, replays, shuffled order,
    /// forged and stale requests), against a production interface; a table of case → pass/fail.
    Conformance(conformance::ConformanceArgs),
    /// Emulate KooGallery: a catalog, orders, signed calls to a production interface with
    /// retries and lifecycle automation, the order-query open API, and a control API
    /// (`serve`); place orders, move the clock, list calls and messages (every other verb).
    Emulator(emulator::EmulatorArgs),
    /// Instances: list, show, complete or fail a provisioning.
    Instances(instances::InstancesArgs),
    /// Event webhooks to your application: endpoints, deliveries, replay, test.
    Webhooks(webhooks::WebhooksArgs),
    /// Usage metering: record usage, report it per window, push it to KooGallery now,
    /// backfill, benchmark ingestion.
    Usage(usage::UsageArgs),
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs the command line of this process.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(serve::serve(args))),
        Command::Migrate(args) => runtime().and_then(|rt| rt.block_on(serve::migrate(args))),
        Command::CheckConfig(args) => serve::check_config(args),
        Command::Audit(args) => runtime().and_then(|rt| rt.block_on(audit::run(args))),
        Command::Tools(args) => tools::run(args),
        Command::Load(args) => runtime().and_then(|rt| rt.block_on(load::run(args))),
        Command::Conformance(args) => runtime().and_then(|rt| rt.block_on(conformance::run(args))),
        Command::Emulator(args) => runtime().and_then(|rt| rt.block_on(emulator::run(args))),
        Command::Instances(args) => runtime().and_then(|rt| rt.block_on(instances::run(args))),
        Command::Webhooks(args) => runtime().and_then(|rt| rt.block_on(webhooks::run(args))),
        Command::Usage(args) => runtime().and_then(|rt| rt.block_on(usage::run(args))),
    };
    match result {
        Ok(output) => {
            if !output.is_empty() {
                println!("{output}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
