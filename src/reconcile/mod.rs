//! The reconcile pass, per account: load → pure three-way diff → pure plan →
//! apply → report. Each service is compared once ([`diff::compare`]) into one
//! [`Difference`]; `plan` turns it into one [`plan::Decision`] with a
//! [`plan::FieldAction`] per differing field, matched exhaustively where the write
//! is built. P = platform, C = Cal.com, B = the baseline both last agreed on:
//!
//! | field | action |
//! |---|---|
//! | P = C | nothing; the baseline moves to P |
//! Fields the platform owns (`sync.ownership`, the default):
//!
//! | field | action |
//! |---|---|
//! | P = C | nothing; the baseline moves to P |
//! | P = B, C ≠ B (Cal.com edit) | PROTECTION once per value: business column untouched, ledger `calcom_edit`; pushed back only with `repush_drifted` (closed `repushed`) |
//! | C = B, P ≠ B (platform edit) | pushed when `push_pending` (pending, or `detect_platform_edits`); never a PROTECTION |
//! | P ≠ B, C ≠ B (conflict) | the platform wins when pushed; ledger `conflict`, closed `superseded` |
//! | Cal.com stores a pushed value differently | ledger `normalised` (closed), the pair becomes the baseline |
//! | no baseline yet | two-way: pending = platform edit, else Cal.com edit; Cal.com's value always recorded (`conflict`) |
//!
//! Fields Cal.com owns: a Cal.com edit or conflict is written into the platform
//! with the ownership's grant (OVERWRITE, ledger closed `overwritten`, the old
//! platform value kept); a platform edit is not pushed (ledger `platform_edit`).
//! Ignored fields are never compared or written; their open entries close
//! `ignored`.
//!
//! | service | action |
//! |---|---|
//! | unknown event type | import (`import_unknown`), exactly once, with its baseline |
//! | every field agrees | metadata only, when it changes; a pending service is confirmed |
//! | a push failed before with the same values | held until its backoff passes; after `max_push_attempts` or a refusal (4xx), held until a human acts (`needs a human:`) |
//! | the pass would orphan / overwrite more than `sync.guard` allows | the account is held: only its run journal line (`held`) is written, until `calsync approve` |
//! | unreadable record | per-record error naming the event type; nothing written from it |
//! | missing from the listing | orphaned only once Cal.com answers 404 (bounded checks per pass); else kept, `listing inconsistent` |
//!
//! Cal.com values a push will replace are written to the ledger (with the
//! resolution they will get) in a transaction of their own before the PATCH, so
//! a crash between push and commit loses nothing.

pub mod apply;
pub mod decide;
pub mod diff;
pub mod plan;
pub mod report;

pub use apply::{
    ManualPush, ManualPushError, PassOptions, REORDER_WINDOW, Reconciler, ReportOrder,
};
pub use decide::{DecidedBy, DecisionError, DecisionOutcome};
pub use diff::{Difference, compare, diff};
pub use plan::{Plan, PushOutcome, PushReason, build_write, plan};
pub use report::{AccountReport, PassReport, PassTimes};

#[cfg(test)]
mod tests;
