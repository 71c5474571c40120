//! Fresh databases per test.
