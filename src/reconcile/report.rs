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
    pub fn has_failures(&self) -> bool {
        self.accounts.iter().any(AccountReport::has_failures)
    }

    pub fn has_changes(&self) -> bool {
        self.accounts.iter().any(|a| !a.items.is_empty())
    }

    /// Human-readable, one block per account.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for a in &self.accounts {
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
                out.push_str(&match (a.result, g.approved, self.dry_run) {
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
