//! Wiring: opens the store and the Cal.com client from validated settings, and
//! implements the one-shot commands on top of the reconciler.

use std::sync::Arc;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;

use crate::calcom::CalcomClient;
use crate::cli::Format;
use crate::config::{Account, Settings};
use crate::domain::ServiceId;
use crate::reconcile::report::{ReportStream, StreamedPass};
use crate::reconcile::{
    AccountReport, DecidedBy, DecisionOutcome, PassOptions, PassReport, PassTimes, Reconciler,
    ReportOrder,
};
use crate::store::{DecisionKind, Store};
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

    /// One pass over the accounts named (all when none is named), its report kept
    /// whole.
    pub async fn pass(&self, names: &[String], dry_run: bool) -> anyhow::Result<PassReport> {
        let selected = self.select(names)?;
        let mut accounts = Vec::with_capacity(selected.len());
        let times = self
            .pass_over(&selected, dry_run, |report| accounts.push(report))
            .await;
        Ok(PassReport::new(dry_run, times, accounts))
    }

    /// `calsync once` / `calsync plan`: one pass, its report printed to stdout as
    /// the accounts finish.
    pub async fn pass_printed(
        &self,
        names: &[String],
        dry_run: bool,
        format: Format,
    ) -> anyhow::Result<StreamedPass> {
        let selected = self.select(names)?;
        let stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        let mut stream =
            ReportStream::start(stdout, format == Format::Json, dry_run, chrono::Utc::now());
        let times = self
            .pass_over(&selected, dry_run, |report| stream.account(&report))
            .await;
        stream
            .finish(times)
            .context("cannot write the pass report to stdout")
    }

    /// One pass over `selected`, each account's report handed to `each` in
    /// account order.
    async fn pass_over(
        &self,
        selected: &[Account],
        dry_run: bool,
        mut each: impl FnMut(AccountReport),
    ) -> PassTimes {
        let pass = self.reconciler.pass_each(
            &self.settings.accounts,
            selected,
            self.settings.policy,
            PassOptions {
                dry_run,
                max_concurrent_accounts: self.settings.max_concurrent_accounts,
                orphan_checks_per_pass: self.settings.orphan_checks_per_pass,
            },
            ReportOrder::Accounts,
            |_, report| each(report),
        );
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return pass.await;
        }
        // On a terminal, a long pass shows how far it is, once a second.
        let total = selected.len();
        let before = self.reconciler.accounts_finished();
        let started = std::time::Instant::now();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.tick().await;
        tokio::pin!(pass);
        let times = loop {
            tokio::select! {
                times = &mut pass => break times,
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
        times
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

/// `calsync drift`: the ledger entries in `state` (open by default); with
/// `--state all`, the decisions journal too.
pub async fn print_drift(
    store: &Store,
    account: Option<&str>,
    state: crate::store::DriftState,
    format: Format,
) -> anyhow::Result<usize> {
    use crate::store::DriftState;
    let records = store.drift_records(state, account).await?;
    // Each entry shows the decisions taken on it; `--state all` lists the journal.
    let decisions = store.decisions(None, account, 1000).await?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&drift_json(&records, &decisions))?
        ),
        Format::Text if records.is_empty() => match state {
            DriftState::Open => {
                println!("No open drift: Cal.com agrees with the platform.")
            }
            DriftState::Acknowledged => println!("No acknowledged drift entries."),
            DriftState::Closed => println!("No closed drift entries."),
            DriftState::All => println!("The drift ledger is empty."),
        },
        Format::Text => {
            println!(
                "{:>8}  {:>10}  {:<16}  {:<13}  {:<22}  {:<22}  {:<22}  {:<20}  {:>5}  state",
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
            let now = chrono::Utc::now().naive_utc();
            for r in &records {
                let e = &r.entry;
                let state = match (r.resolution, r.resolved_at, &e.acknowledged) {
                    (Some(res), Some(at), _) => {
                        format!("{} {}", res.as_str(), at.format("%Y-%m-%d %H:%M:%S"))
                    }
                    (_, _, Some(a)) if a.until > now => format!(
                        "open, acknowledged by {} until {} UTC: {}",
                        a.by,
                        a.until.format("%Y-%m-%d %H:%M:%S"),
                        a.note
                    ),
                    (_, _, Some(a)) => format!(
                        "open (acknowledgement by {} expired {} UTC)",
                        a.by,
                        a.until.format("%Y-%m-%d %H:%M:%S")
                    ),
                    _ => "open".to_owned(),
                };
                println!(
                    "{:>8}  {:>10}  {:<16}  {:<13}  {:<22}  {:<22}  {:<22}  {:<20}  {:>5}  {}",
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
                    "\nOpen entries: the platform values are in force. Decide: `calsync push --service ID` repairs Cal.com (or set sync.repush_drifted = true); `calsync drift adopt --service ID` takes Cal.com's values into the platform; `calsync drift ack --service ID --for 7d --note WHY` silences the alerts for a while; `[sync.ownership]` makes Cal.com the owner of a field for good. Price must be changed in Cal.com itself. Closed entries are kept as history (`--state closed`)."
                );
            }
        }
    }
    if format == Format::Text && state == DriftState::All {
        print_decisions(&decisions);
    }
    Ok(records.len())
}

fn print_decisions(decisions: &[crate::store::StoredDecision]) {
    if decisions.is_empty() {
        println!("\nNo decisions journaled.");
        return;
    }
    println!("\nDecisions (newest first):");
    for d in decisions {
        let fields: Vec<&str> = d.fields.iter().map(|f| f.as_str()).collect();
        let what = match d.service_id {
            Some(s) => format!("service {s} {}", fields.join(",")),
            None => format!("account {}", d.account.as_deref().unwrap_or("-")),
        };
        let until = d
            .until
            .map(|t| format!(" until {}", t.format("%Y-%m-%d %H:%M:%S")))
            .unwrap_or_default();
        let used = match (d.kind, d.consumed_at) {
            (DecisionKind::Approve, Some(t)) => {
                format!(" (used by the pass at {})", t.format("%Y-%m-%d %H:%M:%S"))
            }
            (DecisionKind::Approve, None) => " (not used yet)".to_owned(),
            _ => String::new(),
        };
        println!(
            "  {}  {:<13}  {what}{until}{used}  by {}{}",
            d.decided_at.format("%Y-%m-%d %H:%M:%S"),
            d.kind.as_str(),
            d.decided_by,
            d.note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        );
    }
}

/// One journaled decision as JSON.
pub fn decision_json(d: &crate::store::StoredDecision) -> serde_json::Value {
    serde_json::json!({
        "id": d.id,
        "kind": d.kind,
        "account": d.account,
        "service_id": d.service_id,
        "fields": d.fields,
        "note": d.note,
        "decided_by": d.decided_by,
        "decided_at": d.decided_at.and_utc().to_rfc3339(),
        "until": d.until.map(|t| t.and_utc().to_rfc3339()),
        "consumed_at": d.consumed_at.map(|t| t.and_utc().to_rfc3339()),
    })
}

/// The drift ledger as JSON (the same for `calsync drift` and the operator API).
/// Each entry carries the decisions taken on its field while it was open.
pub fn drift_json(
    records: &[crate::store::DriftRecord],
    decisions: &[crate::store::StoredDecision],
) -> serde_json::Value {
    records
        .iter()
        .map(|r| {
            let e = &r.entry;
            let taken: Vec<serde_json::Value> = decisions
                .iter()
                .filter(|d| {
                    d.service_id == Some(e.service_id)
                        && d.fields.contains(&e.field)
                        && d.decided_at >= e.first_seen_at
                        && r.resolved_at.is_none_or(|end| d.decided_at <= end)
                })
                .map(decision_json)
                .collect();
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
                "acknowledged_until": e.acknowledged.as_ref().map(|a| a.until.and_utc().to_rfc3339()),
                "acknowledged_note": e.acknowledged.as_ref().map(|a| a.note.clone()),
                "acknowledged_by": e.acknowledged.as_ref().map(|a| a.by.clone()),
                "decisions": taken,
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

/// Who runs a command: `--by`, else the OS user (`SUDO_USER` when run with
/// sudo), else `unknown`.
pub fn decided_by(by: Option<String>) -> String {
    by.filter(|b| !b.trim().is_empty())
        .or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `calsync drift adopt|ack|unack`: prints what was decided; exit 0 done, 2
/// refused (the error says why; nothing was changed).
pub async fn decide_drift(app: &App, action: &crate::cli::DriftAction) -> anyhow::Result<u8> {
    use crate::cli::DriftAction;
    let r = &app.reconciler;
    let (outcome, format) = match action {
        DriftAction::Adopt {
            service,
            fields,
            note,
            by,
            format,
        } => {
            let who = DecidedBy {
                by: decided_by(by.clone()),
                note: note.clone(),
            };
            (
                r.adopt(
                    &app.settings.accounts,
                    app.settings.policy,
                    ServiceId(*service),
                    fields,
                    &who,
                )
                .await,
                *format,
            )
        }
        DriftAction::Ack {
            service,
            fields,
            for_,
            until,
            note,
            by,
            format,
        } => {
            let until = match (for_, until) {
                (Some(d), _) => {
                    chrono::Utc::now().naive_utc()
                        + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX)
                }
                (None, Some(t)) => t.naive_utc(),
                (None, None) => bail!("give --for DURATION or --until RFC3339"),
            };
            let who = DecidedBy {
                by: decided_by(by.clone()),
                note: Some(note.clone()),
            };
            (
                r.acknowledge(ServiceId(*service), fields, until, &who)
                    .await,
                *format,
            )
        }
        DriftAction::Unack {
            service,
            fields,
            note,
            by,
            format,
        } => {
            let who = DecidedBy {
                by: decided_by(by.clone()),
                note: note.clone(),
            };
            (
                r.unacknowledge(ServiceId(*service), fields, &who).await,
                *format,
            )
        }
    };
    print_decision(outcome?, format)
}

/// `calsync approve --account NAME`.
pub async fn approve(
    app: &App,
    account: &str,
    note: Option<String>,
    by: Option<String>,
    format: Format,
) -> anyhow::Result<u8> {
    app.select(&[account.to_owned()])
        .map_err(|e| anyhow::anyhow!("--account {account:?}: {e:#}"))?;
    let who = DecidedBy {
        by: decided_by(by),
        note,
    };
    let outcome = app.reconciler.approve(account, &who).await?;
    print_decision(outcome, format)
}

fn print_decision(o: DecisionOutcome, format: Format) -> anyhow::Result<u8> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&o)?);
        return Ok(exit::OK);
    }
    let fields: Vec<&str> = o.fields.iter().map(|f| f.as_str()).collect();
    let service = o.service_id.map(|s| s.0).unwrap_or_default();
    match o.kind {
        DecisionKind::Adopt => println!(
            "service {service}: took Cal.com's {} into the platform (account {}); the ledger entries are closed as adopted.",
            fields.join(", "),
            o.account.as_deref().unwrap_or("-")
        ),
        DecisionKind::Acknowledge => println!(
            "service {service}: acknowledged {} until {} UTC; the entries stay open (`calsync drift --state acknowledged`) and leave the drift alerts until then, or until Cal.com's value changes.",
            fields.join(", "),
            o.until
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default()
        ),
        DecisionKind::Unacknowledge => println!(
            "service {service}: acknowledgement of {} ended; the entries count in the drift alerts again.",
            fields.join(", ")
        ),
        DecisionKind::Approve => println!(
            "account {}: approved; its next pass goes through the blast-radius guard once.",
            o.account.as_deref().unwrap_or("-")
        ),
    }
    Ok(exit::OK)
}

/// `calsync push --service ID`.
pub async fn push(app: &App, id: i64, format: Format) -> anyhow::Result<u8> {
    let result = app
        .reconciler
        .push_service(&app.settings.accounts, app.settings.policy, ServiceId(id))
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
