//! Temporary entry point: only `kubesync emulator`. The real CLI replaces it.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kubesync", about = "A pull-based GitOps engine for Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local Kubernetes API emulator.
    Emulator(kubesync::emulator::EmulatorArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Emulator(args) => args.run().await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
