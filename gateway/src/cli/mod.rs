//! The `tenwatch` command line: its flags (clap, each also read from a `TENWATCH_…`
//! environment variable) and what each command does. `main.rs` parses and dispatches to
//! [`serve::serve`], [`demo::demo`] and [`admin::admin`]; the errors here are `anyhow`'s,
//! because they end at the terminal.
//!
//! - [`serve`]: `tenwatch serve` and the flags that become an [`crate::Config`];
//! - [`demo`]: `tenwatch demo`, the seeded neighbourhood with its narrating station, and
//!   `tenwatch demo press`, a newcomer's press as a spare unit of a household;
//! - [`admin`]: `tenwatch admin …`, the registry and accounts.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::store::{self, Store};

pub mod admin;
pub mod demo;
pub mod demo_press;
pub mod serve;
mod station;

pub use admin::AdminCommand;
pub use demo::DemoArgs;
pub use serve::ServeArgs;

#[derive(Parser)]
#[command(
    name = "tenwatch",
    version,
    about = "十户联防 — neighbourhood-watch alert network"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the broker and the gateway. (Each command boxed: their flags differ much in size.)
    Serve(Box<ServeArgs>),
    /// Seed a demo neighbourhood if empty, serve it, and simulate residents pressing.
    Demo(Box<DemoArgs>),
    /// Manage the registry.
    #[command(subcommand)]
    Admin(Box<AdminCommand>),
}

#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Directory for the SQLite database and demo files.
    #[arg(long, env = "TENWATCH_DATA_DIR", default_value = "./tenwatch-data")]
    pub data_dir: PathBuf,
    /// Database URL (`sqlite:PATH`, or `postgres://USER:PASSWORD@HOST:PORT/DATABASE` for
    /// several gateways on one database); overrides the file in --data-dir.
    #[arg(long, env = "TENWATCH_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl StoreArgs {
    pub fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating the data directory {}", self.data_dir.display()))?;
        Ok(store::sqlite_url_in(&self.data_dir))
    }

    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        let url = self.url()?;
        store::open(&url)
            .await
            .with_context(|| format!("opening the store {url}"))
    }
}
