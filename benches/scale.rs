//! Scale benchmark: prints a table; see README "Performance".
fn main() {}
