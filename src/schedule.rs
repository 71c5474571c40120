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
        .map_err(|e| {
            format!(
                "{expr:?} is not a valid cron expression ({e}){}",
                out_of_range(expr)
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )
        })
}

/// Names the field whose number is out of its range, when one is.
fn out_of_range(expr: &str) -> Option<String> {
    const FIELDS: [(&str, u32, u32); 6] = [
        ("second", 0, 59),
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    for (part, (name, lo, hi)) in expr.split_whitespace().zip(FIELDS) {
        for n in part
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|d| d.parse::<u32>().ok())
        {
            if n < lo || n > hi {
                return Some(format!(
                    "{n} is out of range for the {name} field ({lo}..={hi})"
                ));
            }
        }
    }
    None
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
