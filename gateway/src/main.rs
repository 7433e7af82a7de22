//! The `tenwatch` binary: parses the command line, sets up logging and calls the library
//! ([`tenwatch_gateway::cli`]).

use clap::Parser;
use tenwatch_gateway::cli::{admin, demo, serve, Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // rumqttd logs every closed socket as an error (our own readiness probe among them): off
    // unless asked for with RUST_LOG. The demo tells its story on stdout; logs stay quiet.
    let default_filter = match cli.command {
        Command::Demo(_) => "warn,rumqttd=off",
        _ => "info,rumqttd=off,rumqttc=warn,sqlx=warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(*args).await,
        Command::Demo(args) => demo::demo(*args).await,
        Command::Admin(cmd) => admin::admin(*cmd).await,
    }
}
