//! What a pass did (or, dry, would do), for the CLI, the run journal, the operator
//! API and exit codes.

use serde::Serialize;

use super::plan::{Decision, FieldAction, Hold, Plan, PlanCounts, PushReason};
use crate::domain::{EventTypeId, FieldDiff, GuardReason, Ownership, ServiceId};

/// What the blast-radius guard did (or, in a plan, would do) for an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardReport {
    pub reason: GuardReason,
    pub linked: usize,
    pub orphans: usize,
    pub overwrites: usize,
    /// An operator's approval let the pass through.
    pub approved: bool,
    pub message: String,
}

/// One line of a plan or pass report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Item {
    Import {
        event_type_id: EventTypeId,
        title: String,
    },
    Drift {
        service_id: ServiceId,
        event_type_id: EventTypeId,
        fields: Vec<FieldDiff>,
    },
    Overwrite {
        service_id: ServiceId,
        event_type_id: EventTypeId,
        fields: Vec<FieldDiff>,
    },
    Push {
        service_id: ServiceId,
        event_type_id: EventTypeId,
        reason: PushReason,
        fields: Vec<String>,
    },
    /// A platform edit that is not pushed (pushing is off, the service is not
    /// marked pending and detection is off, or API v2 cannot set the field).
    NotPushed {
        service_id: ServiceId,
        event_type_id: EventTypeId,
        fields: Vec<FieldDiff>,
    },
    Orphan {
        service_id: ServiceId,
        event_type_id: Option<EventTypeId>,
    },
    /// A linked event type missing from the listing, kept until Cal.com confirms
    /// it is gone.
    MissingKept {
        service_id: ServiceId,
        event_type_id: Option<EventTypeId>,
        reason: String,
    },
    Unreadable {
        event_type_id: Option<EventTypeId>,
        error: String,
    },
    NotImported {
        event_type_id: EventTypeId,
    },
    /// A push that failed before waits for its next attempt, or for a human.
    Waiting {
        service_id: ServiceId,
        event_type_id: EventTypeId,
        fields: Vec<FieldDiff>,
        attempts: u32,
        next_attempt_at: chrono::NaiveDateTime,
        needs_human: bool,
        last_error: String,
    },
}

/// One account's part of a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccountReport {
    pub account: String,
    /// `success`, `partial` (committed, but a record was unreadable or a push
    /// failed), `held` (the blast-radius guard stopped it; nothing but the run
    /// journal line was written) or `failure` (nothing was committed).
    pub result: &'static str,
    pub error: Option<String>,
    pub counts: PlanCounts,
    pub imported: usize,
    pub pushed: usize,
    pub push_failures: usize,
    pub overwritten: u64,
    pub confirmation_conflicts: u64,
    pub empty_listing_guarded: bool,
    pub calcom_requests: u32,
    pub sql_statements: u64,
    /// Rows of the platform's `services` table the pass inserted or updated.
    pub services_written: u64,
    /// Who owns each field for this account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
    /// The blast-radius guard, when it trips.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardReport>,
    pub items: Vec<Item>,
}

impl AccountReport {
    pub fn failed(account: &str, error: String) -> Self {
        Self {
            account: account.into(),
            result: "failure",
            error: Some(error),
            ..Self::default()
        }
    }

    pub fn from_plan(plan: &Plan) -> Self {
        // Grouped by kind, in the order a reader scans a plan.
        let mut groups: [Vec<Item>; 8] = Default::default();
        for d in &plan.decisions {
            match d {
                Decision::Import(et) => groups[0].push(Item::Import {
                    event_type_id: et.id,
                    title: et.title.clone(),
                }),
                Decision::NotImported(id) => {
                    groups[1].push(Item::NotImported { event_type_id: *id })
                }
                Decision::InSync(_) => {}
                Decision::Reconcile(sp) => {
                    let id = sp.service().id;
                    let event_type_id = sp.cmp.event_type.id;
                    let drift: Vec<FieldDiff> = sp.calcom_side().map(|f| f.change.diff()).collect();
                    if !drift.is_empty() {
                        groups[2].push(Item::Drift {
                            service_id: id,
                            event_type_id,
                            fields: drift,
                        });
                    }
                    let over: Vec<FieldDiff> = sp.overwrites().map(|f| f.change.diff()).collect();
                    if !over.is_empty() {
                        groups[3].push(Item::Overwrite {
                            service_id: id,
                            event_type_id,
                            fields: over,
                        });
                    }
                    let waiting: Vec<FieldDiff> = sp
                        .fields
                        .iter()
                        .filter(|f| {
                            matches!(
                                f.action,
                                FieldAction::Hold(Hold::Backoff | Hold::NeedsHuman)
                            )
                        })
                        .map(|f| f.change.diff())
                        .collect();
                    if let (false, Some(state)) = (waiting.is_empty(), &sp.cmp.push_state) {
                        groups[4].push(Item::Waiting {
                            service_id: id,
                            event_type_id,
                            fields: waiting,
                            attempts: state.attempts,
                            next_attempt_at: state.next_attempt_at,
                            needs_human: state.needs_human,
                            last_error: state.last_error.clone(),
                        });
                    }
                    let held: Vec<FieldDiff> = sp
                        .fields
                        .iter()
                        .filter(|f| {
                            matches!(f.action, FieldAction::Hold(h)
                                if !matches!(h, Hold::Backoff | Hold::NeedsHuman))
                        })
                        .map(|f| f.change.diff())
                        .collect();
                    if !held.is_empty() {
                        groups[4].push(Item::NotPushed {
                            service_id: id,
                            event_type_id,
                            fields: held,
                        });
                    }
                    if let Some(p) = &sp.push {
                        groups[5].push(Item::Push {
                            service_id: id,
                            event_type_id,
                            reason: p.reason,
                            fields: p.fields.iter().map(|f| f.as_str().to_owned()).collect(),
                        });
                    }
                }
                Decision::Orphan(s) => groups[6].push(Item::Orphan {
                    service_id: s.id,
                    event_type_id: s.calcom_event_type_id,
                }),
                Decision::Unreadable { error, .. } => groups[7].push(Item::Unreadable {
                    event_type_id: error.event_type_id,
                    error: error.to_string(),
                }),
            }
        }
        let mut items: Vec<Item> = groups.into_iter().flatten().collect();
        for (s, reason) in &plan.kept_missing {
            items.push(Item::MissingKept {
                service_id: s.id,
                event_type_id: s.calcom_event_type_id,
                reason: reason.clone(),
            });
        }
        Self {
            account: plan.account.clone(),
            result: "success",
            counts: plan.counts(),
            empty_listing_guarded: plan.empty_listing_guarded,
            items,
            ..Self::default()
        }
    }

    /// A failure for exit codes: the account failed or was held by the guard, a
    /// record was unreadable, or a push failed.
    pub fn has_failures(&self) -> bool {
        matches!(self.result, "failure" | "held")
            || self.counts.unreadable > 0
            || self.push_failures > 0
    }
}

/// Version of the JSON shape of a [`PassReport`] (`once` and `plan --format json`,
/// `POST /api/v1/reconcile`); `docs/pass-report.schema.json` describes it. Bumped
/// when a field changes meaning or is removed (additions keep it).
pub const SCHEMA_VERSION: u32 = 1;

/// A whole pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassReport {
    pub schema_version: u32,
    pub dry_run: bool,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: u64,
    pub accounts: Vec<AccountReport>,
}

/// When a pass ran: what a [`PassReport`] holds besides its accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassTimes {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: u64,
}

impl Default for PassReport {
    fn default() -> Self {
        let now = chrono::Utc::now();
        Self {
            schema_version: SCHEMA_VERSION,
            dry_run: false,
            started_at: now,
            finished_at: now,
            duration_ms: 0,
            accounts: Vec::new(),
        }
    }
}

impl PassReport {
    /// A pass's report from its times and its accounts' reports.
    pub fn new(dry_run: bool, times: PassTimes, accounts: Vec<AccountReport>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            dry_run,
            started_at: times.started_at,
            finished_at: times.finished_at,
            duration_ms: times.duration_ms,
            accounts,
        }
    }

    pub fn has_failures(&self) -> bool {
        self.accounts.iter().any(AccountReport::has_failures)
    }

    pub fn has_changes(&self) -> bool {
        self.accounts.iter().any(|a| !a.items.is_empty())
    }

    /// Human-readable, one block per account.
    pub fn to_text(&self) -> String {
        self.accounts
            .iter()
            .map(|a| a.to_text(self.dry_run))
            .collect()
    }
}

impl AccountReport {
    /// This account's block of [`PassReport::to_text`].
    pub fn to_text(&self, dry_run: bool) -> String {
        let a = self;
        let mut out = String::new();
        let c = &a.counts;
        out.push_str(&format!(
            "account {}: {}{}\n",
            a.account,
            a.result,
            match (&a.error, a.result) {
                (Some(e), _) => format!(" ({e})"),
                (None, "partial") => format!(
                    " (committed; {} unreadable record(s), {} failed push(es): see below and the log)",
                    c.unreadable, a.push_failures
                ),
                (None, _) => String::new(),
            }
        ));
        if a.result != "failure" {
            out.push_str(&format!(
                "  event types {}, in sync {}, imports {}, drifted {} (new Cal.com edits {}), overwrites {}, platform edits {}, pushes {}{}, orphans {}, unreadable {}\n",
                c.event_types,
                c.in_sync,
                c.imports,
                c.drifted,
                c.protections,
                c.overwrites,
                c.platform_edits,
                c.pushes,
                if a.push_failures > 0 { format!(" ({} failed)", a.push_failures) } else { String::new() },
                c.orphans,
                c.unreadable
            ));
        }
        if let Some(o) = &a.ownership
            && *o != Ownership::default()
        {
            let owners: Vec<String> = o
                .entries()
                .into_iter()
                .map(|(f, owner)| format!("{f} {owner}"))
                .collect();
            out.push_str(&format!("  ownership: {}\n", owners.join(", ")));
        }
        if c.acknowledged > 0 {
            out.push_str(&format!(
                "  acknowledged drift entries: {} (left out of the drift gauges; `calsync drift --state acknowledged`)\n",
                c.acknowledged
            ));
        }
        if let Some(g) = &a.guard {
            out.push_str(&match (a.result, g.approved, dry_run) {
                ("held", _, _) => format!(
                    "  ! held by the blast-radius guard: {}; nothing was written. Check Cal.com, then `calsync approve --account {}`\n",
                    g.message, a.account
                ),
                (_, true, _) => format!(
                    "  ! the blast-radius guard tripped ({}) and an operator's approval let this pass through\n",
                    g.message
                ),
                (_, false, _) => format!(
                    "  ! the blast-radius guard would hold this account: {}; `calsync approve --account {}` lets one pass through\n",
                    g.message, a.account
                ),
            });
        }
        if a.empty_listing_guarded {
            out.push_str("  ! Cal.com listed no event types although services are linked: nothing was orphaned\n");
        }
        for item in &a.items {
            out.push_str("  ");
            out.push_str(&item_text(item));
            out.push('\n');
        }
        out
    }
}

fn item_text(item: &Item) -> String {
    let fields = |f: &[FieldDiff]| {
        f.iter()
            .map(|d| {
                let base = d
                    .baseline
                    .as_deref()
                    .map(|b| format!(" (last agreed {b:?})"))
                    .unwrap_or_default();
                format!(
                    "{}: platform {:?} vs Cal.com {:?}{base}",
                    d.field, d.platform, d.calcom
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match item {
        Item::Import {
            event_type_id,
            title,
        } => format!("import   event type {event_type_id} {title:?}"),
        Item::NotImported { event_type_id } => {
            format!(
                "unknown  event type {event_type_id} (not imported: sync.import_unknown is off)"
            )
        }
        Item::Drift {
            service_id,
            event_type_id,
            fields: f,
        } => format!(
            "drift    service {service_id} / event type {event_type_id}: {}",
            fields(f)
        ),
        Item::Overwrite {
            service_id,
            event_type_id,
            fields: f,
        } => format!(
            "overwrite service {service_id} from event type {event_type_id}: {}",
            fields(f)
        ),
        Item::Push {
            service_id,
            event_type_id,
            reason,
            fields: f,
        } => format!(
            "push     service {service_id} → event type {event_type_id} ({}): {}",
            serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            f.join(", ")
        ),
        Item::Orphan {
            service_id,
            event_type_id,
        } => format!(
            "orphan   service {service_id}: event type {} is gone from Cal.com",
            event_type_id.map(|i| i.to_string()).unwrap_or_default()
        ),
        Item::Unreadable { error, .. } => format!("invalid  {error}"),
        Item::NotPushed {
            service_id,
            event_type_id,
            fields: f,
        } => format!(
            "held     service {service_id} / event type {event_type_id} (platform edit not pushed): {}",
            fields(f)
        ),
        Item::Waiting {
            service_id,
            event_type_id,
            fields: f,
            attempts,
            next_attempt_at,
            needs_human,
            last_error,
        } => {
            if *needs_human {
                format!(
                    "human    service {service_id} / event type {event_type_id}: push needs a human after {attempts} attempt(s) ({last_error}): {}",
                    fields(f)
                )
            } else {
                format!(
                    "backoff  service {service_id} / event type {event_type_id}: push waits until {} UTC (attempt {attempts} failed: {last_error}): {}",
                    next_attempt_at.format("%Y-%m-%d %H:%M:%S"),
                    fields(f)
                )
            }
        }
        Item::MissingKept {
            service_id,
            event_type_id,
            reason,
        } => format!(
            "missing  service {service_id}: event type {} {reason}; kept as it was",
            event_type_id.map(|i| i.to_string()).unwrap_or_default()
        ),
    }
}

/// A pass report written as its accounts finish, in the same JSON shape as
/// [`PassReport`] (`finished_at` and `duration_ms` come after `accounts`, the only
/// fields not known before the pass) or as [`PassReport::to_text`]. Only the
/// accounts not yet written are held, so the report of a pass that imports a
/// million event types never sits in memory whole.
pub struct ReportStream<W: std::io::Write> {
    out: W,
    json: bool,
    dry_run: bool,
    written: usize,
    failures: bool,
    changes: bool,
    failed_account: bool,
    /// The first write that failed (a closed pipe): later writes are skipped, the
    /// pass goes on, and [`Self::finish`] returns it.
    error: Option<std::io::Error>,
}

/// What a streamed pass's exit code depends on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamedPass {
    /// As [`PassReport::has_failures`].
    pub has_failures: bool,
    /// As [`PassReport::has_changes`].
    pub has_changes: bool,
    /// An account's result was `failure`.
    pub failed_account: bool,
}

impl<W: std::io::Write> ReportStream<W> {
    /// Starts the report; for JSON, everything up to the first account.
    pub fn start(
        out: W,
        json: bool,
        dry_run: bool,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let mut s = Self {
            out,
            json,
            dry_run,
            written: 0,
            failures: false,
            changes: false,
            failed_account: false,
            error: None,
        };
        if json {
            let head = format!(
                "{{\n  \"schema_version\": {SCHEMA_VERSION},\n  \"dry_run\": {dry_run},\n  \"started_at\": {},\n  \"accounts\": [",
                json_value(&started_at)
            );
            s.write(|out| out.write_all(head.as_bytes()));
        }
        s
    }

    /// One account's report, in pass order.
    pub fn account(&mut self, report: &AccountReport) {
        self.failures |= report.has_failures();
        self.changes |= !report.items.is_empty();
        self.failed_account |= report.result == "failure";
        if self.json {
            let lead: &[u8] = if self.written == 0 {
                b"\n    "
            } else {
                b",\n    "
            };
            self.write(|out| {
                out.write_all(lead)?;
                serde_json::to_writer_pretty(Indented(out), report).map_err(std::io::Error::from)
            });
        } else {
            let text = report.to_text(self.dry_run);
            self.write(|out| out.write_all(text.as_bytes()));
        }
        self.written += 1;
    }

    /// Ends the report and flushes it.
    pub fn finish(mut self, times: PassTimes) -> std::io::Result<StreamedPass> {
        if self.json {
            let tail = format!(
                "{}],\n  \"finished_at\": {},\n  \"duration_ms\": {}\n}}\n",
                if self.written == 0 { "" } else { "\n  " },
                json_value(&times.finished_at),
                times.duration_ms
            );
            self.write(|out| out.write_all(tail.as_bytes()));
        }
        self.write(|out| out.flush());
        match self.error {
            Some(e) => Err(e),
            None => Ok(StreamedPass {
                has_failures: self.failures,
                has_changes: self.changes,
                failed_account: self.failed_account,
            }),
        }
    }

    fn write(&mut self, f: impl FnOnce(&mut W) -> std::io::Result<()>) {
        if self.error.is_none()
            && let Err(e) = f(&mut self.out)
        {
            self.error = Some(e);
        }
    }
}

fn json_value(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Indents everything written through it by two levels (an item of the
/// top-level `accounts` list). JSON strings never hold a raw line break, so every
/// `\n` is between tokens.
struct Indented<'a, W: std::io::Write>(&'a mut W);

impl<W: std::io::Write> std::io::Write for Indented<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            self.0.write_all(&rest[..=at])?;
            self.0.write_all(b"    ")?;
            rest = &rest[at + 1..];
        }
        self.0.write_all(rest)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Field;

    fn accounts() -> Vec<AccountReport> {
        let import = |id: i64, title: &str| Item::Import {
            event_type_id: EventTypeId(id),
            title: title.into(),
        };
        vec![
            AccountReport {
                account: "berlin".into(),
                result: "success",
                items: vec![
                    import(1, "Cut"),
                    // Escapes: a line break inside a string must not be indented.
                    import(2, "Colour\nand \"gloss\""),
                ],
                ..AccountReport::default()
            },
            AccountReport::failed("hamburg", "listing: Cal.com answered 500".into()),
            AccountReport {
                account: "munich".into(),
                result: "partial",
                items: vec![Item::Drift {
                    service_id: ServiceId(7),
                    event_type_id: EventTypeId(70),
                    fields: vec![FieldDiff {
                        field: Field::Name,
                        platform: "Cut".into(),
                        calcom: "Cut & dry".into(),
                        baseline: Some("Cut".into()),
                        change: None,
                    }],
                }],
                ..AccountReport::default()
            },
        ]
    }

    fn times() -> PassTimes {
        let at = |s: &str| s.parse().expect("a timestamp");
        PassTimes {
            started_at: at("2026-12-06T08:00:00Z"),
            finished_at: at("2026-12-06T08:00:02.5Z"),
            duration_ms: 2500,
        }
    }

    fn streamed(accounts: &[AccountReport], json: bool) -> (String, StreamedPass) {
        let mut out = Vec::new();
        let mut stream = ReportStream::start(&mut out, json, false, times().started_at);
        for a in accounts {
            stream.account(a);
        }
        let pass = stream.finish(times()).expect("writing to memory");
        (String::from_utf8(out).expect("UTF-8"), pass)
    }

    /// The report as one document: the shape `once` printed before it streamed,
    /// with the two fields known only at the end moved after `accounts`.
    #[derive(Serialize)]
    struct Whole<'a> {
        schema_version: u32,
        dry_run: bool,
        started_at: chrono::DateTime<chrono::Utc>,
        accounts: &'a [AccountReport],
        finished_at: chrono::DateTime<chrono::Utc>,
        duration_ms: u64,
    }

    fn whole(accounts: &[AccountReport]) -> String {
        let t = times();
        let doc = Whole {
            schema_version: SCHEMA_VERSION,
            dry_run: false,
            started_at: t.started_at,
            accounts,
            finished_at: t.finished_at,
            duration_ms: t.duration_ms,
        };
        serde_json::to_string_pretty(&doc).expect("serialisable") + "\n"
    }

    #[test]
    fn a_streamed_json_report_is_the_whole_report_byte_for_byte() {
        for n in 0..=3 {
            let accounts = &accounts()[..n];
            let (text, _) = streamed(accounts, true);
            assert_eq!(text, whole(accounts), "{n} account(s)");
            let report = PassReport {
                schema_version: SCHEMA_VERSION,
                dry_run: false,
                started_at: times().started_at,
                finished_at: times().finished_at,
                duration_ms: 2500,
                accounts: accounts.to_vec(),
            };
            let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(parsed, serde_json::to_value(&report).expect("a value"));
        }
    }

    #[test]
    fn a_streamed_text_report_is_the_whole_text_report() {
        let accounts = accounts();
        let report = PassReport {
            accounts: accounts.clone(),
            ..PassReport::default()
        };
        assert_eq!(streamed(&accounts, false).0, report.to_text());
    }

    #[test]
    fn a_streamed_report_says_what_the_exit_code_needs() {
        let accounts = accounts();
        let (_, all) = streamed(&accounts, true);
        assert_eq!(
            all,
            StreamedPass {
                has_failures: true,
                has_changes: true,
                failed_account: true
            }
        );
        let (_, quiet) = streamed(&[AccountReport::default()], false);
        assert_eq!(quiet, StreamedPass::default());
    }

    struct ClosedPipe;

    impl std::io::Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_report_that_cannot_be_written_is_an_error_at_the_end() {
        let mut stream = ReportStream::start(ClosedPipe, true, false, times().started_at);
        for a in &accounts() {
            stream.account(a);
        }
        let e = stream.finish(times()).expect_err("the pipe is closed");
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
