//! Reconcile scenarios on every backend.
