//! The reconcile pass, per account: load → pure three-way diff → pure plan →
//! apply → report. Each service is compared once ([`diff::compare`]) into one
//! [`Difference`]; `plan` turns it into one [`plan::Decision`] with a
//! [`plan::FieldAction`] per differing field, matched exhaustively where the write
//! is built. P = platform, C = Cal.com, B = the baseline both last agreed on:
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
//! | service | action |
//! |---|---|
//! | unknown event type | import (`import_unknown`), exactly once, with its baseline |
//! | every field agrees | metadata only; a pending service is confirmed |
//! | `allow_calcom_overwrites` | Cal.com-side values written to the platform with the policy's grant |
//! | unreadable record | per-record error naming the event type; nothing written from it |
//! | missing from the listing | orphaned only once Cal.com answers 404 (bounded checks per pass); else kept, `listing inconsistent` |
//!
//! Cal.com values a push will replace are written to the ledger (with the
//! resolution they will get) in a transaction of their own before the PATCH, so
//! a crash between push and commit loses nothing.

pub mod apply;
pub mod diff;
pub mod plan;
pub mod report;

pub use apply::{ManualPush, ManualPushError, PassOptions, Reconciler};
pub use diff::{Difference, compare, diff};
pub use plan::{Plan, PushOutcome, PushReason, build_write, plan};
pub use report::{AccountReport, PassReport};

#[cfg(test)]
mod tests;
