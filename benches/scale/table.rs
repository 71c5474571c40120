//! Rendering: the per-pass table (every backend × size) and, when the replay
//! ran, the store-cost table, as Markdown with aligned columns (readable in a
//! terminal too). Numbers only; nothing here measures.

use std::fmt::Write as _;

use calsync::config::{DatabaseConfig, SyncConfig};

use crate::child::Pass;
use crate::workloads::Floor;
use crate::{Knobs, Scenario, Size};

/// "20k (100×200)": total event types, accounts × event types per account.
fn size_label(size: Size) -> String {
    let total = if size.total >= 1_000 && size.total.is_multiple_of(1_000) {
        format!("{}k", size.total / 1_000)
    } else {
        size.total.to_string()
    };
    format!("{total} ({}×{})", size.accounts(), size.per_account)
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

const NONE: &str = "–";

/// A Markdown table with aligned columns.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            let _ = write!(s, " {c}{} |", " ".repeat(pad));
        }
        s
    };
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut out = line(&header);
    out.push('\n');
    out.push_str(&line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    ));
    for row in rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

/// The measured rows of one scenario, by name, for growth between sizes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Row {
    First,
    Steady,
    Drift,
    SteadyFloor,
    FirstFloor,
    Baseline,
}

impl Row {
    fn name(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Steady => "steady",
            Self::Drift => "drift 1%",
            Self::SteadyFloor => "floor: steady",
            Self::FirstFloor => "floor: first",
            Self::Baseline => "baseline",
        }
    }

    /// Its wall seconds, `None` when it timed out.
    fn wall(self, s: &Scenario) -> Option<f64> {
        let pass = |p: &Pass| p.timed_out.is_none().then_some(p.wall);
        match self {
            Self::First => pass(&s.first),
            Self::Steady => pass(&s.steady),
            Self::Drift => pass(&s.drift),
            Self::SteadyFloor => Some(s.floors.steady.total()),
            Self::FirstFloor => Some(s.floors.first.total()),
            Self::Baseline => Some(s.baseline.total()),
        }
    }
}

/// Time ratio ÷ size ratio against the next smaller size of the same backend and
/// event types per account: 1.00× is linear.
fn growth(scenarios: &[Scenario], s: &Scenario, row: Row) -> String {
    let previous = scenarios
        .iter()
        .filter(|p| {
            p.backend == s.backend
                && p.size.per_account == s.size.per_account
                && p.size.total < s.size.total
        })
        .max_by_key(|p| p.size.total);
    match (previous, row.wall(s)) {
        (Some(p), Some(wall)) => match row.wall(p) {
            Some(before) if before > 0.0 => format!(
                "{:.2}× linear (vs {})",
                (wall / before) / (s.size.total as f64 / p.size.total as f64),
                size_label(p.size)
            ),
            _ => NONE.into(),
        },
        _ => NONE.into(),
    }
}

pub fn render_passes(scenarios: &[Scenario], knobs: &Knobs) -> String {
    let mut rows = Vec::new();
    for s in scenarios {
        let head = |row: &str| {
            vec![
                s.backend.name().to_owned(),
                size_label(s.size),
                row.to_owned(),
            ]
        };
        let accounts = s.size.accounts() as u64;
        let pass_row = |row: Row, p: &Pass, floor: &Floor, note: String| {
            let mut cells = head(row.name());
            if let Some(secs) = p.timed_out {
                cells.push(format!("timed out after {secs} s"));
                cells.extend(std::iter::repeat_n(NONE.to_owned(), 10));
                cells.push(note);
                return cells;
            }
            cells.extend([
                format!("{:.2}", p.wall),
                format!("{:.2}", p.cpu),
                format!("{:.2}", p.startup),
                format!("{:.1}", p.rss_mb),
                p.sql_solo
                    .map_or("?".into(), |n| format!("{n} ({})", n * accounts)),
                p.sql.to_string(),
                format!("{} / {}", p.services_written, p.writes.rows),
                p.writes.wal.map_or(NONE.into(), mb),
                format!("{} / {}", p.http, p.http_sim),
                ratio(p.wall, floor.total()),
                growth(scenarios, s, row),
                note,
            ]);
            cells
        };
        let failed = |p: &Pass| {
            if p.failed_accounts > 0 {
                format!("; {} ACCOUNTS FAILED", p.failed_accounts)
            } else {
                String::new()
            }
        };
        rows.push(pass_row(
            Row::First,
            &s.first,
            &s.floors.first,
            format!(
                "{} imported; log {} MB; ÷ first floor{}",
                s.first.imports,
                mb(s.first.log_bytes),
                failed(&s.first)
            ),
        ));
        rows.push(pass_row(
            Row::Steady,
            &s.steady,
            &s.floors.steady,
            format!(
                "{} in sync; ÷ steady floor; baseline ÷ steady {}{}",
                s.steady.in_sync,
                if s.steady.timed_out.is_none() {
                    ratio(s.baseline.total(), s.steady.wall)
                } else {
                    NONE.into()
                },
                failed(&s.steady)
            ),
        ));
        rows.push(pass_row(
            Row::Drift,
            &s.drift,
            &s.floors.steady,
            format!(
                "{} drifted, {} in sync; ÷ steady floor{}",
                s.drift.drifted,
                s.drift.in_sync,
                failed(&s.drift)
            ),
        ));
        let floor_row = |row: Row, f: &Floor, written: usize, what: &str| {
            let mut cells = head(row.name());
            cells.extend([
                format!("{:.2}", f.total()),
                NONE.into(),
                NONE.into(),
                NONE.into(),
                NONE.into(),
                f.statements.to_string(),
                format!("{written}"),
                f.wal.map_or(NONE.into(), mb),
                format!("{} / {}", f.http, f.http_sim),
                NONE.into(),
                growth(scenarios, s, row),
                format!("in bench: fetch {:.2} + {what} {:.2}", f.fetch, f.database),
            ]);
            cells
        };
        rows.push(floor_row(
            Row::SteadyFloor,
            &s.floors.steady,
            0,
            "one SELECT",
        ));
        rows.push(floor_row(
            Row::FirstFloor,
            &s.floors.first,
            s.size.total,
            "batched INSERT",
        ));
        let b = &s.baseline;
        let mut baseline = head(Row::Baseline.name());
        baseline.extend([
            format!(
                "{:.2}{}",
                b.total(),
                if b.extrapolated() { "*" } else { "" }
            ),
            NONE.into(),
            NONE.into(),
            NONE.into(),
            "2 per row".into(),
            (2 * b.rows_total as u64).to_string(),
            NONE.into(),
            NONE.into(),
            b.http.to_string(),
            NONE.into(),
            growth(scenarios, s, Row::Baseline),
            if b.extrapolated() {
                format!(
                    "*extrapolated from {} of {} rows (per-row SQL {:.2} s); fetch {:.2}",
                    b.rows_done, b.rows_total, b.sql, b.fetch
                )
            } else {
                format!("in bench: fetch {:.2} + per-row SQL {:.2}", b.fetch, b.sql)
            },
        ]);
        rows.push(baseline);
        if let Some(idle) = &s.idle {
            let mut cells = head("idle (run)");
            cells.extend([NONE.into(), NONE.into(), NONE.into()]);
            cells.push(format!("{:.1}", idle.rss_mb));
            cells.extend(std::iter::repeat_n(NONE.to_owned(), 7));
            cells.push(format!(
                "VmRSS after start-up pass + settle; VmHWM {:.1} MB",
                idle.hwm_mb
            ));
            rows.push(cells);
        }
    }
    let setting = |knob: Option<String>, default: String| match knob {
        Some(v) => format!("{v} (set by the bench)"),
        None => format!("{default} (default)"),
    };
    format!(
        "calsync with max_concurrent_accounts {}, max_connections {}; nothing maintains \
         the database between passes (no VACUUM, no ANALYZE).\n{}\n\n\
         Rows written: calsync's report / the database's count (PostgreSQL: n_tup_ins + \
         n_tup_upd + n_tup_del of `services`, every row version; SQLite and MariaDB: rows \
         whose content changed). WAL: PostgreSQL, cluster-wide. Growth: time ratio ÷ size \
         ratio against the next smaller size with as many event types per account.",
        setting(
            knobs.concurrency.map(|n| n.to_string()),
            SyncConfig::default().max_concurrent_accounts.to_string()
        ),
        setting(
            knobs.max_connections.map(|n| n.to_string()),
            DatabaseConfig::default().max_connections.to_string()
        ),
        table(
            &[
                "backend",
                "size",
                "pass",
                "wall s",
                "CPU s",
                "start-up s",
                "peak RSS MB",
                "SQL stmts/account alone (× accounts)",
                "SQL stmts (report Σ)",
                "services rows written (report / db)",
                "WAL MB",
                "HTTP reqs (report / sim)",
                "÷ floor",
                "growth (wall)",
                "note",
            ],
            &rows,
        )
    )
}

pub fn render_store_costs(scenarios: &[Scenario], concurrency: usize) -> String {
    let rows: Vec<Vec<String>> = scenarios
        .iter()
        .filter_map(|s| s.store.as_ref().map(|st| (s, st)))
        .map(|(s, st)| {
            let cost = st.apply_with - st.apply_without;
            vec![
                s.backend.name().to_owned(),
                size_label(s.size),
                s.steady
                    .timed_out
                    .map_or(format!("{:.2}", s.steady.wall), |_| NONE.into()),
                format!("{:.2}", s.floors.steady.fetch),
                format!("{:.2} ({:.0})", st.load, st.load_statements_per_account),
                format!("{:.2}", st.apply_without),
                format!("{:.2}", st.apply_with),
                format!("{cost:+.2}"),
                st.apply_with_one_connection
                    .map_or(NONE.into(), |v| format!("{v:.2}")),
                match (st.wal_without, st.wal_with) {
                    (Some(a), Some(b)) => format!("{} → {}", mb(a), mb(b)),
                    _ => NONE.into(),
                },
            ]
        })
        .collect();
    format!(
        "Steady pass, database work replayed in process through calsync's Store \
         ({concurrency} accounts at a time), and the cost of the metadata UPDATE on unchanged rows:\n{}",
        table(
            &[
                "backend",
                "size",
                "steady s",
                "listing fetch s",
                "load_account s (stmts/acct)",
                "apply: run line only s",
                "apply: + metadata s",
                "metadata cost s",
                "apply + metadata, 1 conn s",
                "apply WAL MB (w/o → with)",
            ],
            &rows,
        )
    )
}
