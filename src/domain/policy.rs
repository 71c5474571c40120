//! The write policy. The only way to obtain an [`OverwriteGrant`], the token the store
//! demands before it writes a business column of an existing service, is
//! [`Policy::overwrite_grant`], which hands one out only when the operator set
//! `sync.allow_calcom_overwrites`. Skipping the policy therefore does not compile.

use serde::Serialize;

/// What the operator allows a pass to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub import_unknown: bool,
    pub push_pending: bool,
    pub repush_drifted: bool,
    pub allow_calcom_overwrites: bool,
    /// Push a platform edit found by comparing with the baseline even when the
    /// platform did not mark the service `pending` (`sync.detect_platform_edits`).
    pub detect_platform_edits: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            import_unknown: true,
            push_pending: true,
            repush_drifted: false,
            allow_calcom_overwrites: false,
            detect_platform_edits: true,
        }
    }
}

/// Permission to write business columns of existing services with Cal.com values.
/// Not `Clone`, not constructible outside this module.
#[derive(Debug)]
pub struct OverwriteGrant {
    _private: (),
}

impl Policy {
    pub fn overwrite_grant(&self) -> Option<OverwriteGrant> {
        self.allow_calcom_overwrites
            .then_some(OverwriteGrant { _private: () })
    }
}
