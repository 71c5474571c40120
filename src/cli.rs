//! The command line. Exit codes are part of the interface (scripts and alerts use
//! them): 0 success; `plan` 1 when changes or drift are pending; 2 any failure.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::simulate::SimulateArgs;

#[derive(Debug, Parser)]
#[command(
    name = "calsync",
    version,
    about = "Keeps a booking platform's services and their Cal.com event types in agreement, protecting the platform's data"
)]
pub struct Cli {
    /// Config file (default: $CALSYNC_CONFIG, else /etc/calsync/calsync.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// `calsync drift --state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DriftStateArg {
    #[default]
    Open,
    Closed,
    All,
}

impl From<DriftStateArg> for crate::store::DriftState {
    fn from(s: DriftStateArg) -> Self {
        match s {
            DriftStateArg::Open => Self::Open,
            DriftStateArg::Closed => Self::Closed,
            DriftStateArg::All => Self::All,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one reconcile pass. Exit 0 when everything succeeded, 2 on any failure.
    Once {
        /// Only this account (repeatable).
        #[arg(long = "account", value_name = "NAME")]
        accounts: Vec<String>,
        /// Plan and report, but push nothing and write nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show what a pass would do; writes nothing anywhere. Exit 0 in sync, 1 changes or drift, 2 error.
    Plan {
        #[arg(long = "account", value_name = "NAME")]
        accounts: Vec<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the open drift ledger (Cal.com-side edits calsync kept out of the platform).
    Drift {
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// Which entries: open (default), closed (resolved, kept as history), or all.
        #[arg(long, value_enum, default_value_t)]
        state: DriftStateArg,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Push one service's platform values to Cal.com now (the "sync to Cal.com" button).
    Push {
        #[arg(long, value_name = "ID")]
        service: i64,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Apply calsync's migrations; create `services` only where it does not exist, else verify it.
    Migrate,
    /// Validate the configuration and print it with secrets redacted. Exit 0 valid, 2 invalid.
    CheckConfig {
        /// Also connect: the database (reachable, migrations current) and Cal.com
        /// once per account key (`GET /v2/me`); exit 2 if anything does not work.
        #[arg(long)]
        connect: bool,
    },
    /// Run the daemon: passes on `sync.schedule`, metrics and health on `server.listen`.
    Run,
    /// Serve a Cal.com API v2 simulator (for trials and tests).
    Simulate(SimulateArgs),
    /// A self-contained tour: temporary SQLite, simulator, and the protection scenarios.
    Demo,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), as installed for `man calsync`.
    Manpage,
}
