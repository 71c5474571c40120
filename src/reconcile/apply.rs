//! Effects of a pass: list (Cal.com), load (store), diff and plan (pure), push
//! (Cal.com), commit (store, one transaction per account), then report (logs and
//! metrics). Accounts run concurrently, each within its key's budget; one
//! account's failure never stops another's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use secrecy::ExposeSecret;
use tracing::instrument::WithSubscriber;
use tracing::{Instrument, info, info_span};

use super::diff::{Diff, Difference, OrphanScope, compare, diff, differing};
use super::plan::{
    Decision, Plan, PlanInput, Push, PushFailure, PushOutcome, build_write, normalised, plan,
    push_intents, push_precheck,
};
use super::report::{AccountReport, PassReport, PassTimes};
use crate::calcom::{AccountClient, CalcomClient};
use crate::domain::{Account, Field, Policy, ServiceId, SyncStatus};
use crate::store::{AccountScope, AccountWrite, RunRecord, Store};
use crate::telemetry::events::{
    AccountFailed, AccountPassFinished, CalcomOverwriteApplied, EmptyListingGuarded,
    EventTypeImported, GuardApprovalUsed, GuardTripped, ListingInconsistent, OrphanChecksDeferred,
    ProtectionStillOpen, ProtectionTriggered, PushFailed, PushGaveUp, PushNormalised,
    PushSucceeded, RecordRejected, RunRecordFailed, ServiceOrphaned,
};
use crate::telemetry::metrics::Metrics;

/// How a pass runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassOptions {
    /// Plan only: no pushes, no writes (`calsync plan`, `once --dry-run`).
    pub dry_run: bool,
    pub max_concurrent_accounts: usize,
    /// Missing event types one account pass may ask Cal.com about
    /// (`sync.orphan_checks_per_pass`); the rest wait for the next pass.
    pub orphan_checks_per_pass: usize,
}

/// In which order [`Reconciler::pass_each`] hands out account reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOrder {
    /// In the order of the accounts given (a report printed as it comes).
    Accounts,
    /// As each account finishes: nothing is held back.
    Finished,
}

/// [`ReportOrder::Accounts`]: how many times `max_concurrent_accounts` accounts
/// may be done or running past the first account whose report is not handed
/// out yet.
pub const REORDER_WINDOW: usize = 32;

/// Runs passes. Keeps one client per account across passes, so a key's budget and
/// any Cal.com block survive from one pass to the next.
pub struct Reconciler {
    store: Store,
    calcom: CalcomClient,
    metrics: Arc<Metrics>,
    clients: Mutex<HashMap<String, (String, AccountClient)>>,
    /// Cancelled at shutdown: account passes that have not started writing stop
    /// (nothing of theirs is written); those writing finish.
    stopping: tokio_util::sync::CancellationToken,
    /// Account passes finished since start (progress on a terminal).
    finished: std::sync::atomic::AtomicU64,
}

/// The stage an account pass reports when it stopped for a shutdown.
const STOPPED: &str = "stopped";
/// The stage an account pass reports when it panicked.
const INTERNAL: &str = "internal";

/// Runs one account's pass so that a panic in it is that account's failure,
/// reported, counted and journaled like any other (stage `internal`), instead of
/// a task that vanishes from the pass with nothing but a log line.
async fn contained<F>(pass: F) -> Result<AccountReport, (&'static str, String)>
where
    F: std::future::Future<Output = Result<AccountReport, (&'static str, String)>>,
{
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(pass)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err((
                INTERNAL,
                format!("internal error (a bug in calsync): {what}"),
            ))
        })
}

/// Why a manual push did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ManualPushError {
    #[error("service {0} does not exist")]
    NoSuchService(ServiceId),
    #[error(
        "service {0} is not linked to a Cal.com event type (calcom_event_type_id is NULL); nothing to push to"
    )]
    NotLinked(ServiceId),
    #[error(
        "no configured account can reach service {id}'s event type (company {company}); add an [[accounts]] entry for that company"
    )]
    NoAccount { id: ServiceId, company: i64 },
    #[error("{0}")]
    Calcom(#[from] crate::calcom::CalcomError),
    #[error("Cal.com's {0}")]
    Unreadable(crate::calcom::RecordError),
    #[error("push failed: {0}")]
    Push(String),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// What a manual push did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManualPush {
    pub service_id: ServiceId,
    pub account: String,
    /// Fields sent to Cal.com (empty when it already agreed).
    pub pushed: Vec<Field>,
    /// Differences Cal.com cannot take through API v2 (price).
    pub not_pushable: Vec<crate::domain::FieldDiff>,
    /// Whether the service is synced now (false when the platform edited it again
    /// meanwhile, or a price difference remains).
    pub marked_synced: bool,
    /// The platform changed the service while it was pushed: it stays pending and
    /// the next pass pushes the newer values.
    pub edited_meanwhile: bool,
}

impl Reconciler {
    pub fn new(store: Store, calcom: CalcomClient, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            calcom,
            metrics,
            clients: Mutex::new(HashMap::new()),
            stopping: tokio_util::sync::CancellationToken::new(),
            finished: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Account passes finished since this reconciler was built.
    pub fn accounts_finished(&self) -> u64 {
        self.finished.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Shutdown: account passes still listing or planning stop before they write
    /// anything; a pass already writing commits. New passes stop at once.
    pub fn stop_before_writing(&self) {
        self.stopping.cancel();
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn client_for(&self, account: &Account) -> AccountClient {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let key = account.api_key.expose_secret();
        if let Some((k, c)) = clients.get(&account.name)
            && k == key
        {
            return c.clone();
        }
        let client = self.calcom.account(&account.name, account.api_key.clone());
        clients.insert(account.name.clone(), (key.to_owned(), client.clone()));
        client
    }

    /// One pass over the given accounts. Each account runs as its own task (so
    /// parsing and planning use every core), at most `max_concurrent_accounts` at
    /// once. Dropping the returned future aborts the accounts still running; their
    /// transactions roll back.
    pub async fn pass(
        self: &Arc<Self>,
        all: &[Account],
        selected: &[Account],
        policy: Policy,
        options: PassOptions,
    ) -> PassReport {
        let mut accounts = Vec::with_capacity(selected.len());
        let times = self
            .pass_each(
                all,
                selected,
                policy,
                options,
                ReportOrder::Accounts,
                |_, report| accounts.push(report),
            )
            .await;
        PassReport::new(options.dry_run, times, accounts)
    }

    /// [`Self::pass`], handing each account's report to `each` (with the
    /// account's position in `selected`) instead of keeping them all: a first
    /// pass over a million event types holds a report item per import. In
    /// [`ReportOrder::Accounts`] a report waits for the accounts before it, and
    /// an account starts only while fewer than [`REORDER_WINDOW`] ×
    /// `max_concurrent_accounts` accounts separate it from the first one not
    /// handed out yet: one slow account holds back the pass instead of letting
    /// every other account's report pile up behind it.
    pub async fn pass_each(
        self: &Arc<Self>,
        all: &[Account],
        selected: &[Account],
        policy: Policy,
        options: PassOptions,
        order: ReportOrder,
        mut each: impl FnMut(usize, AccountReport),
    ) -> PassTimes {
        let started_at = Utc::now();
        let clock = Instant::now();
        let companies: HashMap<i64, usize> = all.iter().fold(HashMap::new(), |mut m, a| {
            *m.entry(a.company_id).or_default() += 1;
            m
        });
        let concurrency = options.max_concurrent_accounts.max(1);
        let window = match order {
            ReportOrder::Accounts => concurrency.saturating_mul(REORDER_WINDOW),
            ReportOrder::Finished => usize::MAX,
        };
        // Tasks are spawned as they may run, so an account waiting its turn holds
        // nothing: a pass's memory follows `max_concurrent_accounts` (and the
        // window), not the number of accounts.
        let mut tasks = tokio::task::JoinSet::new();
        let mut positions: HashMap<tokio::task::Id, usize> = HashMap::new();
        let spawn = |tasks: &mut tokio::task::JoinSet<(usize, AccountReport)>, i: usize| {
            let account: Account = selected[i].clone();
            let sole = companies.get(&account.company_id).copied().unwrap_or(0) <= 1;
            let policy = policy.with_ownership(account.ownership);
            let span = info_span!("account", account = %account.name);
            let me = self.clone();
            tasks
                .spawn(
                    async move {
                        let pass = Box::pin(me.account_pass(&account, sole, policy, options));
                        (i, pass.await)
                    }
                    .instrument(span)
                    // Keep the caller's subscriber (a scoped one in tests and tools).
                    .with_current_subscriber(),
                )
                .id()
        };
        let unfinished = |i: usize| {
            let error = "the account pass did not finish";
            AccountFailed {
                account: &selected[i].name,
                stage: INTERNAL,
                error,
            }
            .emit((!options.dry_run).then_some(self.metrics.as_ref()));
            AccountReport::failed(&selected[i].name, format!("{INTERNAL}: {error}"))
        };
        // Reports that finished before an earlier account (`Accounts` only).
        let mut waiting: BTreeMap<usize, AccountReport> = BTreeMap::new();
        let (mut next, mut spawned) = (0usize, 0usize);
        loop {
            while tasks.len() < concurrency
                && spawned < selected.len()
                && spawned < next.saturating_add(window)
            {
                let id = spawn(&mut tasks, spawned);
                positions.insert(id, spawned);
                spawned += 1;
            }
            let Some(joined) = tasks.join_next_with_id().await else {
                break;
            };
            // `contained` turns a panic into the account's own failure; a task
            // that was cancelled instead is reported (and counted) here.
            let (i, report) = match joined {
                Ok((id, (i, report))) => {
                    positions.remove(&id);
                    (i, report)
                }
                Err(e) => match positions.remove(&e.id()) {
                    Some(i) => (i, unfinished(i)),
                    None => continue,
                },
            };
            match order {
                ReportOrder::Finished => each(i, report),
                ReportOrder::Accounts => {
                    waiting.insert(i, report);
                    while let Some(report) = waiting.remove(&next) {
                        each(next, report);
                        next += 1;
                    }
                }
            }
        }
        PassTimes {
            started_at,
            finished_at: Utc::now(),
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    async fn account_pass(
        &self,
        account: &Account,
        sole: bool,
        policy: Policy,
        options: PassOptions,
    ) -> AccountReport {
        let started_at = Utc::now().naive_utc();
        let clock = Instant::now();
        // Its own counter: accounts run concurrently on one pool.
        let store = self.store.counted();
        let result =
            contained(self.account_pass_inner(&store, account, sole, policy, options, started_at))
                .await;
        let mut report = match result {
            Ok(r) => r,
            Err((STOPPED, error)) => {
                info!(account = %account.name, "Account pass stopped before writing because calsync is shutting down; the next start does the work.");
                return AccountReport::failed(&account.name, error);
            }
            Err((stage, error)) => {
                AccountFailed {
                    account: &account.name,
                    stage,
                    error: &error,
                }
                .emit((!options.dry_run).then_some(self.metrics.as_ref()));
                if !options.dry_run {
                    let run = RunRecord {
                        account: account.name.clone(),
                        started_at,
                        finished_at: Utc::now().naive_utc(),
                        result: "failure",
                        summary: serde_json::json!({ "stage": stage }),
                        error: Some(error.clone()),
                    };
                    if let Err(e) = store.record_run(&run).await {
                        RunRecordFailed {
                            account: &account.name,
                            error: &e.to_string(),
                        }
                        .emit(&self.metrics);
                    }
                }
                AccountReport::failed(&account.name, format!("{stage}: {error}"))
            }
        };
        report.sql_statements = store.statements();
        self.finished
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !options.dry_run && report.result != "failure" {
            let c = &report.counts;
            AccountPassFinished {
                account: &account.name,
                result: report.result,
                event_types: c.event_types,
                imported: report.imported,
                in_sync: c.in_sync,
                drifted: c.drifted,
                new_calcom_edits: c.protections,
                pushed: report.pushed,
                push_failures: report.push_failures,
                orphans: c.orphans,
                unreadable: c.unreadable,
                duration_ms: clock.elapsed().as_millis(),
            }
            .emit();
        }
        if !options.dry_run {
            let m = &self.metrics;
            // A failure was counted by its AccountFailed event.
            if report.result != "failure" {
                m.reconcile_runs_total
                    .with_label_values(&[account.name.as_str(), report.result])
                    .inc();
            }
            m.reconcile_duration_seconds
                .with_label_values(&[account.name.as_str()])
                .observe(clock.elapsed().as_secs_f64());
            // A partial pass committed too: it is a success with findings. A held
            // pass wrote nothing, so it is not (the guard's alert pages for it).
            if matches!(report.result, "success" | "partial") {
                m.last_success_timestamp_seconds
                    .with_label_values(&[account.name.as_str()])
                    .set(Utc::now().timestamp() as f64);
            }
        }
        report
    }

    async fn account_pass_inner(
        &self,
        store: &Store,
        account: &Account,
        sole: bool,
        policy: Policy,
        options: PassOptions,
        started_at: chrono::NaiveDateTime,
    ) -> Result<AccountReport, (&'static str, String)> {
        let client = self.client_for(account);
        let stopped = || {
            (
                STOPPED,
                "calsync is stopping; nothing was written for this account, the next start does it"
                    .to_owned(),
            )
        };
        let listing = tokio::select! {
            listed = client.list_all(&account.team_ids, account.org_id) => {
                listed.map_err(|e| ("list", e.to_string()))?
            }
            _ = self.stopping.cancelled() => return Err(stopped()),
        };
        let ids = listing.ids();
        let listed_records = listing.records.len();
        let snapshot = store
            .load_account(AccountScope {
                account: &account.name,
                company_id: account.company_id,
                listed: &ids,
            })
            .await
            .map_err(|e| ("load", e.to_string()))?;
        let mut d = diff(
            listing.records,
            &snapshot.services,
            OrphanScope {
                account: &account.name,
                company_id: account.company_id,
                sole_account_for_company: sole,
                ownership: policy.ownership,
            },
        );
        let mut proof = self
            .prove_missing(&client, &mut d, options.orphan_checks_per_pass)
            .await;
        let mut p = plan(
            d,
            PlanInput {
                account: &account.name,
                company_id: account.company_id,
                policy,
                services: &snapshot.services,
                open_drift: &snapshot.open_drift,
                listed_records,
                now: Utc::now().naive_utc(),
            },
        );
        p.kept_missing = std::mem::take(&mut proof.kept);
        let mut report = AccountReport::from_plan(&p);
        report.calcom_requests = listing.requests + proof.requests;
        report.ownership = Some(policy.ownership);
        let guard = super::plan::GuardCheck::of(&p, policy, proof.newly_gone.len());
        report.guard = guard.report();
        if options.dry_run {
            return Ok(report);
        }

        // The last moment to stop without leaving anything half done.
        if self.stopping.is_cancelled() {
            return Err(stopped());
        }
        // The blast-radius guard: hold the account unless an operator approved.
        let mut approval_used = None;
        if let Some(reason) = guard.tripped {
            match store
                .unused_approval(&account.name)
                .await
                .map_err(|e| ("load", e.to_string()))?
            {
                Some(id) => {
                    approval_used = Some(id);
                    GuardApprovalUsed {
                        account: &account.name,
                        reason: reason.as_str(),
                        orphans: guard.orphans,
                        overwrites: guard.overwrites,
                        linked: guard.linked,
                    }
                    .emit();
                    if let Some(g) = report.guard.as_mut() {
                        g.approved = true;
                    }
                }
                None => {
                    GuardTripped {
                        account: &account.name,
                        reason,
                        orphans: guard.orphans,
                        overwrites: guard.overwrites,
                        linked: guard.linked,
                        policy: policy.guard,
                    }
                    .emit(&self.metrics);
                    let run = RunRecord {
                        account: account.name.clone(),
                        started_at,
                        finished_at: Utc::now().naive_utc(),
                        result: "held",
                        summary: serde_json::json!({
                            "guard": report.guard,
                            "counts": p.counts(),
                        }),
                        error: Some(format!(
                            "held by the blast-radius guard ({}): nothing was written; check Cal.com, then `calsync approve --account {}`",
                            guard.describe(reason),
                            account.name
                        )),
                    };
                    store
                        .record_run(&run)
                        .await
                        .map_err(|e| ("write", e.to_string()))?;
                    report.result = "held";
                    report.error = run.error;
                    return Ok(report);
                }
            }
        }
        // Cal.com values about to be pushed over reach the ledger first.
        let announced = self
            .record_intents(store, &p)
            .await
            .map_err(|e| ("write", e.to_string()))?;
        let mut outcomes = HashMap::new();
        let pushes: Vec<Push> = p.pushes().cloned().collect();
        for push in &pushes {
            let outcome = self.execute_push(&client, push).await;
            match &outcome {
                PushOutcome::Succeeded(_) => report.pushed += 1,
                PushOutcome::Failed(_) => report.push_failures += 1,
            }
            outcomes.insert(push.service.id, outcome);
        }
        report.calcom_requests += pushes.len() as u32;

        let now = Utc::now().naive_utc();
        let mut write = build_write(&p, &outcomes, now);
        write.gone = proof.newly_gone.iter().map(|(_, et)| *et).collect();
        write.approval_used = approval_used;
        let gauges = Gauges::after(&p, &snapshot.open_drift, &write);
        let write_states = write.push_states.clone();
        write.run = Some(RunRecord {
            account: account.name.clone(),
            // When the pass began (before listing), so the journal shows how long
            // it took and when passes ran.
            started_at,
            finished_at: Utc::now().naive_utc(),
            result: if report.counts.unreadable > 0 || report.push_failures > 0 {
                "partial"
            } else {
                "success"
            },
            summary: serde_json::to_value(p.counts()).unwrap_or_default(),
            error: None,
        });
        let outcome = store
            .apply(write)
            .await
            .map_err(|e| ("write", e.to_string()))?;
        if report.counts.unreadable > 0 || report.push_failures > 0 {
            report.result = "partial";
        }
        report.imported = outcome.imported.len();
        report.overwritten = outcome.overwritten;
        report.services_written = outcome.services_written;
        report.confirmation_conflicts = outcome.confirmation_conflicts;
        if outcome.confirmation_conflicts > 0 {
            info!(
                account = %account.name,
                services = outcome.confirmation_conflicts,
                "Some services were edited in the platform while calsync pushed them; they stay pending and the next pass pushes the newer values."
            );
        }
        self.announce(&p, &outcomes, |key| !announced.contains(&key));
        self.emit_events(&p, &outcome, &proof);
        self.emit_gave_up(&p, &write_states);
        gauges.publish(&self.metrics, &account.name);
        Ok(report)
    }

    /// Asks Cal.com about linked event types missing from the listing: only a 404
    /// from Cal.com itself makes an orphan. An event type Cal.com still has means
    /// the listing was inconsistent (it shifted while being paged); the service is
    /// kept as it was. At most `budget` checks per pass (each is a request against
    /// the key's budget); known orphans are not asked about again.
    async fn prove_missing(&self, client: &AccountClient, d: &mut Diff, budget: usize) -> Proof {
        let mut proof = Proof::default();
        let mut deferred = 0usize;
        for linked in std::mem::take(&mut d.missing) {
            let service = linked.service;
            let Some(id) = service.calcom_event_type_id else {
                continue;
            };
            let registry = linked.registry.as_ref();
            if registry.is_some_and(|r| r.gone_at.is_some()) {
                d.differences.push(Difference::Orphaned(service));
                continue;
            }
            if proof.requests as usize >= budget {
                deferred += 1;
                proof.kept.push((
                    service,
                    "missing from the listing; not checked yet (sync.orphan_checks_per_pass)"
                        .into(),
                ));
                continue;
            }
            proof.requests += 1;
            match client.get(id, registry.and_then(|r| r.team_id)).await {
                Err(crate::calcom::CalcomError::EventTypeGone(_)) => {
                    proof.newly_gone.push((service.id, id));
                    d.differences.push(Difference::Orphaned(service));
                }
                Ok(_) => {
                    proof.inconsistent.push((service.id, id));
                    proof.kept.push((
                        service,
                        "missing from the listing, but Cal.com still has it".into(),
                    ));
                }
                Err(e) => {
                    deferred += 1;
                    proof.kept.push((
                        service,
                        format!("missing from the listing; checking with Cal.com failed: {e}"),
                    ));
                }
            }
        }
        proof.deferred = deferred;
        proof
    }

    async fn execute_push(&self, client: &AccountClient, push: &Push) -> PushOutcome {
        let reason = push.reason.as_str();
        let result = match push_precheck(push) {
            Err(error) => Err(PushFailure {
                error,
                refused: true,
            }),
            Ok(()) => match client
                .update(push.event_type.id, push.event_type.team_id, &push.patch)
                .await
            {
                Ok(Ok(now)) => Ok(now),
                Ok(Err(record)) => Err(PushFailure {
                    error: format!(
                        "Cal.com answered with an event type calsync cannot read: {record}"
                    ),
                    refused: false,
                }),
                Err(e) => Err(PushFailure {
                    refused: e.refused(),
                    error: e.to_string(),
                }),
            },
        };
        match result {
            Ok(now) => {
                let replaced: Vec<_> = differing(&push.service.values, &push.event_type)
                    .into_iter()
                    .filter(|(f, _, _)| push.fields.contains(f))
                    .map(|(field, p, c)| crate::domain::FieldDiff {
                        field,
                        platform: p.label(),
                        calcom: c.label(),
                        baseline: None,
                        change: None,
                    })
                    .collect();
                PushSucceeded {
                    account: client.name(),
                    service_id: push.service.id,
                    event_type_id: push.event_type.id,
                    reason,
                    replaced: &replaced,
                }
                .emit(&self.metrics);
                for n in normalised(push, &now) {
                    PushNormalised {
                        account: client.name(),
                        service_id: push.service.id,
                        event_type_id: push.event_type.id,
                        field: n.field.as_str(),
                        sent: &n.sent,
                        stored: &n.stored,
                    }
                    .emit();
                }
                PushOutcome::Succeeded(now)
            }
            Err(failure) => {
                PushFailed {
                    account: client.name(),
                    service_id: push.service.id,
                    event_type_id: push.event_type.id,
                    reason,
                    error: &failure.error,
                }
                .emit(&self.metrics);
                PushOutcome::Failed(failure)
            }
        }
    }

    /// Writes the Cal.com values the plan's pushes will replace to the ledger, in
    /// a transaction of their own, before any push; then announces them (once),
    /// whatever happens next. Returns the fields announced.
    async fn record_intents(
        &self,
        store: &Store,
        p: &Plan,
    ) -> Result<HashSet<(ServiceId, Field)>, crate::store::StoreError> {
        let intents = push_intents(p);
        let announced: HashSet<(ServiceId, Field)> =
            intents.iter().map(|o| (o.service_id, o.field)).collect();
        if !intents.is_empty() {
            let mut w = AccountWrite::new(p.account.clone(), Utc::now().naive_utc());
            w.drift_upserts = intents;
            store.apply(w).await?;
            self.announce(p, &HashMap::new(), |key| announced.contains(&key));
        }
        Ok(announced)
    }

    /// PROTECTION for the Cal.com-side values this plan sees for the first time
    /// (among the fields `which` selects), and DEBUG lines for those already in the
    /// ledger. Called once the values are committed to the ledger.
    fn announce(
        &self,
        p: &Plan,
        pushes: &HashMap<ServiceId, PushOutcome>,
        which: impl Fn((ServiceId, Field)) -> bool,
    ) {
        let account = p.account.as_str();
        for sp in p.services() {
            let id = sp.service().id;
            let (new, seen): (Vec<_>, Vec<_>) = sp
                .calcom_side()
                .filter(|f| which((id, f.change.field)))
                .partition(|f| f.protection());
            if !new.is_empty() {
                let fields: Vec<_> = new.iter().map(|f| f.change.diff()).collect();
                let pushed_over = sp
                    .push
                    .as_ref()
                    .is_some_and(|push| new.iter().any(|f| push.fields.contains(&f.change.field)));
                ProtectionTriggered {
                    account,
                    service_id: id,
                    service_name: &sp.service().values.name,
                    event_type_id: sp.cmp.event_type.id,
                    fields: &fields,
                    repush: pushed_over && !matches!(pushes.get(&id), Some(PushOutcome::Failed(_))),
                    conflict: new
                        .iter()
                        .any(|f| f.change.change == crate::domain::Change::Conflict),
                }
                .emit(&self.metrics);
            }
            if !seen.is_empty() {
                let fields: Vec<_> = seen.iter().map(|f| f.change.diff()).collect();
                ProtectionStillOpen {
                    account,
                    service_id: id,
                    fields: &fields,
                }
                .emit();
            }
        }
    }

    fn emit_events(&self, p: &Plan, outcome: &crate::store::ApplyOutcome, proof: &Proof) {
        let account = p.account.as_str();
        for sp in p.services() {
            let id = sp.service().id;
            if outcome.overwritten > 0 {
                let fields: Vec<_> = sp.overwrites().map(|f| f.change.diff()).collect();
                if !fields.is_empty() {
                    CalcomOverwriteApplied {
                        account,
                        service_id: id,
                        service_name: &sp.service().values.name,
                        event_type_id: sp.cmp.event_type.id,
                        fields: &fields,
                    }
                    .emit(&self.metrics);
                }
            }
        }
        let titles: HashMap<_, _> = p
            .decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Import(e) => Some((e.id, e.title.as_str())),
                _ => None,
            })
            .collect();
        for (et, service) in &outcome.imported {
            EventTypeImported {
                account,
                service_id: *service,
                event_type_id: *et,
                title: titles.get(et).copied().unwrap_or_default(),
            }
            .emit(&self.metrics);
        }
        for (service_id, event_type_id) in &proof.newly_gone {
            ServiceOrphaned {
                account,
                service_id: *service_id,
                event_type_id: Some(*event_type_id),
            }
            .emit();
        }
        for (service_id, event_type_id) in &proof.inconsistent {
            ListingInconsistent {
                account,
                service_id: *service_id,
                event_type_id: *event_type_id,
            }
            .emit(&self.metrics);
        }
        if proof.deferred > 0 {
            OrphanChecksDeferred {
                account,
                services: proof.deferred,
                reason: "more missing event types than sync.orphan_checks_per_pass, or Cal.com could not be asked",
            }
            .emit();
        }
        for d in &p.decisions {
            if let Decision::Unreadable { error, service } = d {
                RecordRejected {
                    account,
                    service_id: service.as_ref().map(|s| s.id),
                    error: &error.to_string(),
                }
                .emit(&self.metrics);
            }
        }
        if p.empty_listing_guarded {
            EmptyListingGuarded {
                account,
                linked: p.guarded_services,
            }
            .emit(&self.metrics);
        }
    }

    /// ERROR lines for pushes that need a human since this pass (not those that
    /// needed one before).
    fn emit_gave_up(&self, p: &Plan, states: &[crate::store::PushStateWrite]) {
        for w in states.iter().filter(|w| w.state.needs_human) {
            let before = p.decisions.iter().find_map(|d| match d {
                Decision::Reconcile(sp) if sp.service().id == w.service_id => {
                    Some(sp.cmp.push_state.as_ref())
                }
                _ => None,
            });
            if before.flatten().is_some_and(|s| s.needs_human) {
                continue;
            }
            PushGaveUp {
                account: &p.account,
                service_id: w.service_id,
                attempts: w.state.attempts,
                error: &w.state.last_error,
            }
            .emit();
        }
    }

    /// One linked service, the account that reaches its event type, that
    /// account's client, and the event type as Cal.com has it now.
    pub(super) async fn fetch_linked(
        &self,
        accounts: &[Account],
        id: ServiceId,
    ) -> Result<
        (
            crate::store::LinkedService,
            Account,
            AccountClient,
            crate::domain::EventType,
        ),
        ManualPushError,
    > {
        let linked = self
            .store
            .service(id)
            .await?
            .ok_or(ManualPushError::NoSuchService(id))?;
        let service = &linked.service;
        let event_type_id = service
            .calcom_event_type_id
            .ok_or(ManualPushError::NotLinked(id))?;
        let account = linked
            .registry
            .as_ref()
            .and_then(|r| accounts.iter().find(|a| a.name == r.account))
            .or_else(|| accounts.iter().find(|a| a.company_id == service.company_id))
            .ok_or(ManualPushError::NoAccount {
                id,
                company: service.company_id,
            })?
            .clone();
        let client = self.client_for(&account);
        let team = linked.registry.as_ref().and_then(|r| r.team_id);
        let event_type = client
            .get(event_type_id, team)
            .await?
            .map_err(ManualPushError::Unreadable)?;
        Ok((linked, account, client, event_type))
    }

    /// The manual "sync to Cal.com" action for one service: every differing
    /// pushable field is pushed (the operator decided), and every Cal.com value it
    /// replaces is kept in the ledger.
    pub async fn push_service(
        &self,
        accounts: &[Account],
        policy: Policy,
        id: ServiceId,
    ) -> Result<ManualPush, ManualPushError> {
        let (linked, account, client, event_type) = self.fetch_linked(accounts, id).await?;
        let account = &account;
        let policy = policy.with_ownership(account.ownership);
        let cmp = compare(&linked, &event_type, &policy.ownership);
        let not_pushable: Vec<_> = cmp
            .fields
            .iter()
            .filter(|f| !f.field.pushable())
            .map(|f| f.diff())
            .collect();
        let open = self.store.drift_for_service(id).await?;
        let now = Utc::now().naive_utc();
        let p = Plan::single(&account.name, account.company_id, policy, cmp, open, now);
        let push = p.pushes().next().cloned();
        let announced = self.record_intents(&self.store, &p).await?;
        let mut outcomes = HashMap::new();
        if let Some(push) = &push {
            match self.execute_push(&client, push).await {
                PushOutcome::Failed(f) => {
                    // A manual push starts the retry count over.
                    let mut w = AccountWrite::new(account.name.clone(), Utc::now().naive_utc());
                    w.metadata.push(crate::store::MetadataUpdate {
                        id,
                        status: SyncStatus::Error,
                        error: Some(format!("manual push failed: {}", f.error)),
                    });
                    w.push_states_cleared.push(id);
                    self.store.apply(w).await?;
                    return Err(ManualPushError::Push(f.error));
                }
                ok => {
                    outcomes.insert(id, ok);
                }
            }
        }
        let write = build_write(&p, &outcomes, Utc::now().naive_utc());
        let outcome = self.store.apply(write).await?;
        self.announce(&p, &outcomes, |key| !announced.contains(&key));
        self.emit_events(&p, &outcome, &Proof::default());
        Ok(ManualPush {
            service_id: id,
            account: account.name.clone(),
            pushed: push.map(|p| p.fields).unwrap_or_default(),
            marked_synced: outcome.confirmation_conflicts == 0 && not_pushable.is_empty(),
            edited_meanwhile: outcome.confirmation_conflicts > 0,
            not_pushable,
        })
    }
}

/// What asking Cal.com about missing event types found.
#[derive(Debug, Default)]
struct Proof {
    /// Requests it took.
    requests: u32,
    /// Services whose event type Cal.com confirmed gone in this pass.
    newly_gone: Vec<(ServiceId, crate::domain::EventTypeId)>,
    /// Event types Cal.com still has although the listing missed them.
    inconsistent: Vec<(ServiceId, crate::domain::EventTypeId)>,
    /// Services left as they were, and why.
    kept: Vec<(crate::domain::Service, String)>,
    /// Checks left for a later pass (budget spent, or Cal.com failed).
    deferred: usize,
}

/// Per-account gauges, computed from the plan and the write it commits.
struct Gauges {
    event_types: i64,
    orphans: i64,
    drifted_services: i64,
    drift_fields: BTreeMap<Field, i64>,
    oldest_age_secs: f64,
    acknowledged: i64,
    needs_human: i64,
    backoff: i64,
    statuses: BTreeMap<SyncStatus, i64>,
}

impl Gauges {
    fn after(p: &Plan, open_before: &[crate::domain::DriftEntry], w: &AccountWrite) -> Self {
        let mut open: HashMap<(ServiceId, Field), chrono::NaiveDateTime> = open_before
            .iter()
            .map(|e| ((e.service_id, e.field), e.first_seen_at))
            .collect();
        for r in &w.drift_replaced {
            open.remove(&(r.service_id, r.field));
        }
        for u in w.drift_upserts.iter().filter(|u| u.closed.is_none()) {
            open.entry((u.service_id, u.field)).or_insert(w.now);
        }
        for r in &w.drift_resolutions {
            open.remove(&(r.service_id, r.field));
        }
        // Acknowledged entries (not expired, not replaced by a newer Cal.com
        // value) stay open but are left out of the gauges alerts use.
        let replaced: HashSet<(ServiceId, Field)> = w
            .drift_replaced
            .iter()
            .map(|r| (r.service_id, r.field))
            .collect();
        let acked: HashSet<(ServiceId, Field)> = open_before
            .iter()
            .filter(|e| e.acknowledged_at(w.now))
            .map(|e| (e.service_id, e.field))
            .filter(|k| !replaced.contains(k) && open.contains_key(k))
            .collect();
        open.retain(|k, _| !acked.contains(k));
        let mut drift_fields = BTreeMap::new();
        let mut services = HashSet::new();
        for (service, field) in open.keys() {
            *drift_fields.entry(*field).or_insert(0) += 1;
            services.insert(*service);
        }
        let oldest = open.values().min().copied();
        let oldest_age_secs = oldest
            .map(|t| (w.now - t).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);

        // Status of every service the pass touched, as it will be after commit.
        let mut before: HashMap<ServiceId, SyncStatus> = HashMap::new();
        let mut orphans = 0;
        for d in &p.decisions {
            let s = match d {
                Decision::InSync(c) => Some(&c.service),
                Decision::Reconcile(sp) => Some(sp.service()),
                Decision::Unreadable { service, .. } => service.as_ref(),
                Decision::Orphan(s) => {
                    orphans += 1;
                    Some(s)
                }
                Decision::Import(_) | Decision::NotImported(_) => None,
            };
            if let Some(s) = s {
                before.insert(s.id, s.sync_status);
            }
        }
        for (s, _) in &p.kept_missing {
            before.insert(s.id, s.sync_status);
        }
        let mut status = before.clone();
        let confirmed: HashSet<ServiceId> = w.confirmations.iter().map(|c| c.id).collect();
        for id in &confirmed {
            status.insert(*id, SyncStatus::Synced);
        }
        for m in &w.metadata {
            let was = before.get(&m.id).copied();
            let confirmed = confirmed.contains(&m.id);
            status.insert(
                m.id,
                if was == Some(SyncStatus::Pending) && !confirmed {
                    SyncStatus::Pending
                } else {
                    m.status
                },
            );
        }
        let mut statuses: BTreeMap<SyncStatus, i64> =
            SyncStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for s in status.values() {
            *statuses.entry(*s).or_insert(0) += 1;
        }
        *statuses.entry(SyncStatus::Synced).or_insert(0) += w.imports.len() as i64;

        // Push retry states after the commit, of the services this pass saw.
        let mut states: HashMap<ServiceId, bool> = HashMap::new();
        for d in &p.decisions {
            let (id, state) = match d {
                Decision::InSync(c) => (c.service.id, c.push_state.as_ref()),
                Decision::Reconcile(sp) => (sp.service().id, sp.cmp.push_state.as_ref()),
                _ => continue,
            };
            if let Some(s) = state {
                states.insert(id, s.needs_human);
            }
        }
        for id in &w.push_states_cleared {
            states.remove(id);
        }
        for s in &w.push_states {
            states.insert(s.service_id, s.state.needs_human);
        }
        let needs_human = states.values().filter(|h| **h).count() as i64;
        Self {
            event_types: p.event_types as i64,
            orphans,
            drifted_services: services.len() as i64,
            drift_fields,
            oldest_age_secs,
            acknowledged: acked.len() as i64,
            needs_human,
            backoff: states.len() as i64 - needs_human,
            statuses,
        }
    }

    fn publish(&self, m: &Metrics, account: &str) {
        m.event_types
            .with_label_values(&[account])
            .set(self.event_types);
        m.orphaned_services
            .with_label_values(&[account])
            .set(self.orphans);
        m.drifted_services
            .with_label_values(&[account])
            .set(self.drifted_services);
        for field in Field::ALL {
            m.drift_fields
                .with_label_values(&[account, field.as_str()])
                .set(self.drift_fields.get(&field).copied().unwrap_or(0));
        }
        m.drift_oldest_age_seconds
            .with_label_values(&[account])
            .set(self.oldest_age_secs);
        m.drift_acknowledged_fields
            .with_label_values(&[account])
            .set(self.acknowledged);
        m.push_needs_human
            .with_label_values(&[account])
            .set(self.needs_human);
        m.push_backoff_services
            .with_label_values(&[account])
            .set(self.backoff);
        for (status, n) in &self.statuses {
            m.services
                .with_label_values(&[account, status.as_str()])
                .set(*n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_account_pass_is_that_accounts_internal_failure() {
        let failed = contained(async { panic!("index out of bounds") }).await;
        let (stage, error) = failed.expect_err("a panic is a failure");
        assert_eq!(stage, INTERNAL);
        assert!(error.contains("index out of bounds"), "{error}");

        let formatted = contained(async { panic!("service {} has no row", ServiceId(7)) }).await;
        assert!(
            formatted
                .expect_err("a panic")
                .1
                .contains("service 7 has no row"),
            "a formatted message is kept"
        );
    }

    #[tokio::test]
    async fn a_pass_that_does_not_panic_is_passed_through() {
        let ok = contained(async { Ok(AccountReport::failed("berlin", "x".into())) }).await;
        assert_eq!(ok.expect("no panic").account, "berlin");
        let err = contained(async { Err(("list", "HTTP 503".to_owned())) }).await;
        assert_eq!(
            err.expect_err("its own failure"),
            ("list", "HTTP 503".to_owned())
        );
    }
}
