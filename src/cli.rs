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
    /// Open entries under an unexpired acknowledgement.
    Acknowledged,
    Closed,
    All,
}

impl From<DriftStateArg> for crate::store::DriftState {
    fn from(s: DriftStateArg) -> Self {
        match s {
            DriftStateArg::Open => Self::Open,
            DriftStateArg::Acknowledged => Self::Acknowledged,
            DriftStateArg::Closed => Self::Closed,
            DriftStateArg::All => Self::All,
        }
    }
}

/// A drift field named on the command line (`--field`).
pub fn parse_field(value: &str) -> Result<crate::domain::Field, String> {
    crate::domain::Field::parse(value).ok_or_else(|| {
        let names: Vec<&str> = crate::domain::Field::ALL
            .iter()
            .map(|f| f.as_str())
            .collect();
        format!("not a drift field (one of {})", names.join(", "))
    })
}

/// `--for`: a duration such as `30m`, `12h`, `7d` or `2w`.
pub fn parse_for(value: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(value)
        .map_err(|e| format!("{e}; write a duration such as 30m, 12h, 7d or 2w"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

/// `--until`: an RFC 3339 time such as `2026-12-31T18:00:00Z`.
pub fn parse_until(value: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{e}; write an RFC 3339 time such as 2026-12-31T18:00:00Z"))
}

/// What an operator decides about a service's drift.
#[derive(Debug, Subcommand)]
pub enum DriftAction {
    /// Take Cal.com's values into the platform (all open fields, or those named);
    /// refused if the platform or Cal.com changed since the entry was recorded.
    /// Exit 0 done, 2 refused or failed.
    Adopt {
        #[arg(long, value_name = "ID")]
        service: i64,
        /// A field to adopt (repeatable); default: every open one.
        #[arg(long = "field", value_name = "FIELD", value_parser = parse_field)]
        fields: Vec<crate::domain::Field>,
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// Who decides (default: the OS user).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Acknowledge open drift: it stays open and visible but leaves the drift
    /// gauges alerts use until it expires or Cal.com's value changes.
    #[command(group(clap::ArgGroup::new("expiry").required(true).args(["for_", "until"])))]
    Ack {
        #[arg(long, value_name = "ID")]
        service: i64,
        /// A field to acknowledge (repeatable); default: every open one.
        #[arg(long = "field", value_name = "FIELD", value_parser = parse_field)]
        fields: Vec<crate::domain::Field>,
        /// How long, e.g. 12h, 7d, 2w.
        #[arg(long = "for", id = "for_", value_name = "DURATION", value_parser = parse_for)]
        for_: Option<std::time::Duration>,
        /// Until when (RFC 3339).
        #[arg(long, value_name = "RFC3339", value_parser = parse_until)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Why (required).
        #[arg(long, value_name = "TEXT")]
        note: String,
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// End acknowledgements early (all of the service's, or the fields named).
    Unack {
        #[arg(long, value_name = "ID")]
        service: i64,
        #[arg(long = "field", value_name = "FIELD", value_parser = parse_field)]
        fields: Vec<crate::domain::Field>,
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

impl DriftAction {
    pub fn format(&self) -> Format {
        match self {
            Self::Adopt { format, .. } | Self::Ack { format, .. } | Self::Unack { format, .. } => {
                *format
            }
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
    /// List the drift ledger (Cal.com-side edits calsync kept out of the platform), or decide about it: adopt, ack, unack.
    #[command(args_conflicts_with_subcommands = true)]
    Drift {
        #[command(subcommand)]
        action: Option<DriftAction>,
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// Which entries: open (default), acknowledged, closed (resolved, kept as history), or all (with the decisions journal).
        #[arg(long, value_enum, default_value_t)]
        state: DriftStateArg,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Let the next pass of an account the blast-radius guard holds through, once. Exit 0 done, 2 refused.
    Approve {
        #[arg(long, value_name = "NAME")]
        account: String,
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
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
