//! The pass schedule: a 6-field cron expression (with seconds), parsed the same way
//! tokio-cron-scheduler parses it, so `check-config` rejects what `run` would.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// Parses a 6-field cron expression (`sec min hour dom month dow`).
pub fn parse(expr: &str) -> Result<Cron, String> {
    if expr.split_whitespace().count() != 6 {
        return Err(format!(
            "{expr:?} must have 6 fields with seconds first, e.g. \"0 */5 * * * *\" for every five minutes"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?} is not a valid cron expression: {e}"))
}

/// The gap between the next two runs after `now`: what "one interval" means for
/// staleness checks.
pub fn interval(cron: &Cron, now: DateTime<Utc>) -> Option<std::time::Duration> {
    let mut it = cron.iter_after(now);
    let a = it.next()?;
    let b = it.next()?;
    (b - a).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_minute_schedule_has_a_five_minute_interval() {
        let cron = parse("0 */5 * * * *").unwrap();
        assert_eq!(
            interval(&cron, Utc::now()),
            Some(std::time::Duration::from_secs(300))
        );
    }

    #[test]
    fn five_field_expressions_are_rejected_with_an_example() {
        let err = parse("*/5 * * * *").unwrap_err();
        assert!(err.contains("6 fields"), "{err}");
    }
}
