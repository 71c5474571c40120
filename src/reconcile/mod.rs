//! Reconcile pass.
