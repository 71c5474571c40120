//! Wiring: opens the store and the Cal.com client from validated settings, and
//! implements the one-shot commands on top of the reconciler.

use std::sync::Arc;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;

use crate::calcom::CalcomClient;
use crate::cli::Format;
use crate::config::{Account, Settings};
use crate::domain::ServiceId;
use crate::reconcile::{PassOptions, PassReport, Reconciler};
use crate::store::Store;
use crate::telemetry::metrics::Metrics;

/// Exit codes shared by every command.
pub mod exit {
    pub const OK: u8 = 0;
    /// `plan`: changes or drift pending.
    pub const CHANGES: u8 = 1;
    pub const FAILURE: u8 = 2;
}

/// An opened database and Cal.com client.
pub struct App {
    pub settings: Settings,
    pub reconciler: Arc<Reconciler>,
}

/// Connects to the database without checking its schema.
pub async fn connect(settings: &Settings) -> anyhow::Result<Store> {
    Store::connect(
        settings.database_url.expose_secret(),
        settings.max_connections,
    )
    .await
    .context("cannot open the database (check database.url)")
}

/// `check-config --connect`: the database and each account's key, one line each
/// on stderr. Returns whether everything works.
pub async fn check_connections(settings: &Settings) -> bool {
    let mut ok = true;
    match connect(settings).await {
        Ok(store) => match store.migrations_current().await {
            Ok(true) => eprintln!("database: reachable, calsync migrations current"),
            Ok(false) => {
                ok = false;
                eprintln!(
                    "database: reachable, but calsync migrations are not current; run `calsync migrate`"
                );
            }
            Err(e) => {
                ok = false;
                eprintln!("database: {e}");
            }
        },
        Err(e) => {
            ok = false;
            eprintln!("database: {e:#}");
        }
    }
    let calcom = match CalcomClient::new(settings.calcom.clone(), Arc::new(Metrics::new())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Cal.com: {e}");
            return false;
        }
    };
    for a in &settings.accounts {
        match calcom.account(&a.name, a.api_key.clone()).me().await {
            Ok((id, username)) => eprintln!(
                "account {}: the Cal.com key works (user {id}{})",
                a.name,
                if username.is_empty() {
                    String::new()
                } else {
                    format!(", {username}")
                }
            ),
            Err(e) => {
                ok = false;
                eprintln!("account {}: {e}", a.name);
            }
        }
    }
    ok
}

impl App {
    /// Connects and checks that the schema is ready for a pass.
    pub async fn open(settings: Settings, metrics: Arc<Metrics>) -> anyhow::Result<App> {
        let store = connect(&settings).await?;
        Self::with_store(settings, store, metrics).await
    }

    pub async fn with_store(
        settings: Settings,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<App> {
        if !store.migrations_current().await? {
            bail!(
                "the database is not migrated to this calsync version; run `calsync migrate` first"
            );
        }
        store.verify_services().await?;
        let calcom = CalcomClient::new(settings.calcom.clone(), metrics.clone())?;
        Ok(App {
            reconciler: Arc::new(Reconciler::new(store, calcom, metrics)),
            settings,
        })
    }

    /// The configured accounts named on the command line (all when none is named).
    pub fn select(&self, names: &[String]) -> anyhow::Result<Vec<Account>> {
        select_accounts(&self.settings, names)
    }

    pub async fn pass(&self, names: &[String], dry_run: bool) -> anyhow::Result<PassReport> {
        let selected = self.select(names)?;
        let pass = self.reconciler.pass(
            &self.settings.accounts,
            &selected,
            self.settings.policy,
            PassOptions {
                dry_run,
                max_concurrent_accounts: self.settings.max_concurrent_accounts,
                orphan_checks_per_pass: self.settings.orphan_checks_per_pass,
            },
        );
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Ok(pass.await);
        }
        // On a terminal, a long pass shows how far it is, once a second.
        let total = selected.len();
        let before = self.reconciler.accounts_finished();
        let started = std::time::Instant::now();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.tick().await;
        tokio::pin!(pass);
        let report = loop {
            tokio::select! {
                report = &mut pass => break report,
                _ = tick.tick() => {
                    let done = self.reconciler.accounts_finished().saturating_sub(before);
                    eprint!(
                        "\rcalsync: {done}/{total} accounts finished, {} s",
                        started.elapsed().as_secs()
                    );
                }
            }
        };
        if started.elapsed() >= std::time::Duration::from_secs(1) {
            eprintln!(
                "\rcalsync: {total}/{total} accounts finished in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Ok(report)
    }
}

pub fn select_accounts(settings: &Settings, names: &[String]) -> anyhow::Result<Vec<Account>> {
    if names.is_empty() {
        return Ok(settings.accounts.clone());
    }
    names
        .iter()
        .map(|n| {
            settings.account(n).cloned().with_context(|| {
                let known: Vec<&str> = settings.accounts.iter().map(|a| a.name.as_str()).collect();
                format!(
                    "no account named {n:?} in the config (configured: {})",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// `calsync once` / `calsync plan`: prints the report, returns the exit code.
pub fn print_pass(report: &PassReport, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(report)?),
        Format::Text => print!("{}", report.to_text()),
    }
    Ok(())
}

/// `calsync drift`: the ledger entries in `state` (open by default).
pub async fn print_drift(
    store: &Store,
    account: Option<&str>,
    state: crate::store::DriftState,
    format: Format,
) -> anyhow::Result<usize> {
    let records = store.drift_records(state, account).await?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&drift_json(&records))?),
        Format::Text if records.is_empty() => match state {
            crate::store::DriftState::Open => {
                println!("No open drift: Cal.com agrees with the platform.")
            }
            crate::store::DriftState::Closed => println!("No closed drift entries."),
            crate::store::DriftState::All => println!("The drift ledger is empty."),
        },
        Format::Text => {
            println!(
                "{:>8}  {:>10}  {:<16}  {:<11}  {:<22}  {:<22}  {:<22}  {:<20}  {:>5}  state",
                "service",
                "event type",
                "field",
                "origin",
                "platform",
                "Cal.com",
                "last agreed",
                "first seen (UTC)",
                "seen"
            );
            for r in &records {
                let e = &r.entry;
                let state = match (r.resolution, r.resolved_at) {
                    (Some(res), Some(at)) => {
                        format!("{} {}", res.as_str(), at.format("%Y-%m-%d %H:%M:%S"))
                    }
                    _ => "open".to_owned(),
                };
                println!(
                    "{:>8}  {:>10}  {:<16}  {:<11}  {:<22}  {:<22}  {:<22}  {:<20}  {:>5}  {}",
                    e.service_id.0,
                    e.calcom_event_type_id.0,
                    e.field.as_str(),
                    e.origin.as_str(),
                    clip(&e.platform_value, 22),
                    clip(&e.calcom_value, 22),
                    clip(e.baseline_value.as_deref().unwrap_or("-"), 22),
                    e.first_seen_at.format("%Y-%m-%d %H:%M:%S"),
                    e.times_seen,
                    state
                );
            }
            if records.iter().any(|r| r.resolved_at.is_none()) {
                println!(
                    "\nOpen entries: the platform values are in force. To repair Cal.com: `calsync push --service ID` (or set sync.repush_drifted = true); price must be changed in Cal.com itself. Closed entries are kept as history (`--state closed`)."
                );
            }
        }
    }
    Ok(records.len())
}

/// The drift ledger as JSON (the same for `calsync drift` and the operator API).
pub fn drift_json(records: &[crate::store::DriftRecord]) -> serde_json::Value {
    records
        .iter()
        .map(|r| {
            let e = &r.entry;
            serde_json::json!({
                "service_id": e.service_id,
                "calcom_event_type_id": e.calcom_event_type_id,
                "account": e.account,
                "field": e.field,
                "origin": e.origin,
                "platform_value": e.platform_value,
                "calcom_value": e.calcom_value,
                "baseline_value": e.baseline_value,
                "first_seen_at": e.first_seen_at.and_utc().to_rfc3339(),
                "last_seen_at": e.last_seen_at.and_utc().to_rfc3339(),
                "times_seen": e.times_seen,
                "state": if r.resolved_at.is_some() { "closed" } else { "open" },
                "resolution": r.resolved_at.and(r.resolution),
                "resolved_at": r.resolved_at.map(|t| t.and_utc().to_rfc3339()),
            })
        })
        .collect()
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// `calsync push --service ID`.
pub async fn push(app: &App, id: i64, format: Format) -> anyhow::Result<u8> {
    let result = app
        .reconciler
        .push_service(&app.settings.accounts, ServiceId(id))
        .await;
    match (result, format) {
        (Ok(done), Format::Json) => {
            println!("{}", serde_json::to_string_pretty(&done)?);
            Ok(if done.not_pushable.is_empty() {
                exit::OK
            } else {
                exit::FAILURE
            })
        }
        (Ok(done), Format::Text) => {
            if done.pushed.is_empty() && done.not_pushable.is_empty() {
                println!(
                    "service {id}: Cal.com already has the platform's values; nothing to push."
                );
            } else if !done.pushed.is_empty() {
                let fields: Vec<&str> = done.pushed.iter().map(|f| f.as_str()).collect();
                println!(
                    "service {id}: pushed {} to Cal.com (account {}).",
                    fields.join(", "),
                    done.account
                );
            }
            for d in &done.not_pushable {
                println!(
                    "service {id}: {} differs (platform {}, Cal.com {}) and cannot be set through Cal.com API v2: change it in Cal.com.",
                    d.field, d.platform, d.calcom
                );
            }
            if done.edited_meanwhile {
                println!(
                    "service {id}: the platform edited it meanwhile; it stays pending and the next pass pushes the newer values."
                );
            }
            Ok(if done.not_pushable.is_empty() {
                exit::OK
            } else {
                exit::FAILURE
            })
        }
        (Err(e), _) => Err(e.into()),
    }
}
