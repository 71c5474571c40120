//! reliability tests.
