//! The reconcile pass, per account: load → pure diff → pure plan → apply → report.
//!
//! | difference | action |
//! |---|---|
//! | unknown event type | import as a new service (`import_unknown`), exactly once |
//! | known, equal | sync metadata only: `last_calcom_sync`, `sync_status='synced'`, `sync_error=NULL` |
//! | known, different | PROTECTION: business columns untouched, metadata updated, drift ledger entry per field; re-pushed when `repush_drifted` (never price) |
//! | known, different, `allow_calcom_overwrites` | Cal.com values written to the platform (with the policy's grant), logged and counted |
//! | platform edit (`pending`) | pushed when `push_pending`; marked synced only if unchanged meanwhile |
//! | unreadable record | per-record error naming the event type; nothing written from it |
//! | orphaned (absent from a complete listing) | `sync_status='error'` with a message; never deleted; an empty listing orphans nothing |

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
