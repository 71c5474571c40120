//! What really differs between SQLite, PostgreSQL and MySQL/MariaDB, and nothing
//! else. Every statement of the store is written once, in the file of its concern
//! (`services`, `drift`, `baseline`, `registry`, `runs`), against [`Dialect`];
//! each backend supplies here:
//!
//! - how a value is bound ([`Dialect::cell`]): PostgreSQL casts every parameter
//!   (`$1::int8`), because it types parameters of a `VALUES` list from text;
//!   MySQL casts integers (`CAST(? AS SIGNED)`), because a derived table built
//!   from `UNION ALL` takes its column types from the first row;
//! - the batched row form ([`Dialect::rows`]): `(VALUES …) AS v(cols)` on
//!   PostgreSQL, `(SELECT column1 AS …, … FROM (VALUES …)) AS v` on SQLite,
//!   `(SELECT ? AS …, … UNION ALL SELECT …) AS v` on MySQL (neither `VALUES ROW()`
//!   nor `JSON_TABLE` exists on every MySQL/MariaDB version);
//! - the shape of an `UPDATE` joined with such rows ([`Dialect::update_join`]);
//! - the upsert clause ([`Dialect::upsert`], [`Dialect::excluded`]);
//! - casts of what is read (integers, text, timestamps, flags, prices) and how text
//!   is compared in a guard (MySQL: `utf8mb4_bin`, so a change of letter case is a
//!   change and mixed column collations cannot break a guard);
//! - how a transaction begins (SQLite: `BEGIN IMMEDIATE`, so two passes serialise
//!   on the file lock instead of failing when a reader tries to upgrade);
//! - an id list whose statement text does not change with every list
//!   ([`Dialect::id_in`]), so the per-account reads of a pass stay prepared;
//! - running a built statement and decoding its rows.
//!
//! Prices: SQLite stores `decimal(10,2)` as REAL; every such value is within 2^53
//! hundredths, so `ROUND(price * 100)` reads back the exact hundredths written.
//! Timestamps are UTC on every backend (sqlx sets the session time zone), so
//! PostgreSQL reads `timestamp` and `timestamptz` platform columns alike as
//! `::timestamp`, and MySQL reads `TIMESTAMP` and `DATETIME` as `DATETIME(6)`.

use std::future::Future;

use chrono::NaiveDateTime;
use sqlx::{MySql, Postgres, QueryBuilder, Sqlite};

use super::Backend;
use super::decisions::DecisionRow;
use super::rows::{DriftRow, RunRow, ServiceRow};

/// One bound value of a statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Flag(bool),
    Time(NaiveDateTime),
    OptTime(Option<NaiveDateTime>),
}

type Fut<'a, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;

/// A SQL dialect: see the module docs for what each method supplies.
pub(crate) trait Dialect: sqlx::Database {
    const BACKEND: Backend;
    /// `BEGIN` statement of the account transaction, when not the default.
    const BEGIN: Option<&'static str>;

    fn cell<'a>(qb: &mut QueryBuilder<Self>, cell: Cell<'a>);

    /// A derived table `v` with these columns, one row per item.
    fn rows_of<'a>(qb: &mut QueryBuilder<Self>, columns: &[&str], rows: Vec<Vec<Cell<'a>>>);

    /// `UPDATE <table> AS s` joined with the rows `v` on `on` (a guard may be
    /// part of it), setting `set` (`column`, value) pairs. The default is the
    /// `UPDATE … SET … FROM v WHERE …` form of SQLite and PostgreSQL.
    fn update_join<'a>(
        qb: &mut QueryBuilder<Self>,
        table: &str,
        columns: &[&str],
        rows: Vec<Vec<Cell<'a>>>,
        on: &str,
        set: Vec<(&str, Set<'a>)>,
    ) {
        qb.push("UPDATE ").push(table).push(" AS s");
        push_set(qb, set, "");
        qb.push(" FROM ");
        Self::rows_of(qb, columns, rows);
        qb.push(" WHERE ").push(on);
    }

    /// The upsert clause: on a conflict of `key`, set `set` (column, expression
    /// over [`Dialect::excluded`] and [`Dialect::current`]).
    fn upsert(key: &str, set: &[(&str, String)]) -> String {
        let set: Vec<String> = set.iter().map(|(c, e)| format!("{c} = {e}")).collect();
        format!(" ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", "))
    }
    /// The proposed value of `column` inside an upsert clause.
    fn excluded(column: &str) -> String {
        format!("excluded.{column}")
    }
    /// The existing row's `column` inside an upsert clause.
    fn current(table: &str, column: &str) -> String {
        format!("{table}.{column}")
    }

    fn int(expr: &str) -> String {
        expr.to_owned()
    }
    fn text(expr: &str) -> String {
        expr.to_owned()
    }
    fn time(expr: &str) -> String {
        expr.to_owned()
    }
    /// A timestamp read into a [`Stamp`](super::rows::Stamp): as [`Dialect::time`]
    /// except on MySQL (see there).
    fn stamp(expr: &str) -> String {
        Self::time(expr)
    }
    /// A boolean column read as a boolean, NULL as false.
    fn flag(expr: &str) -> String {
        format!("(COALESCE({expr}, 0) <> 0)")
    }
    /// A bound boolean compared as a boolean.
    fn flag_value(expr: &str) -> String {
        format!("({expr} <> 0)")
    }
    /// `decimal(10,2)` as integer hundredths.
    fn cents(expr: &str) -> String;
    /// What goes around integer hundredths to make an exact decimal.
    const CENTS_TO_DECIMAL: (&'static str, &'static str);
    /// Integer hundredths as an exact decimal.
    fn from_cents(expr: &str) -> String {
        let (pre, post) = Self::CENTS_TO_DECIMAL;
        format!("{pre}{expr}{post}")
    }
    /// What follows a bound text to store it in a JSON column.
    const JSON: &'static str;
    /// Whether a statement may start with a data-modifying `WITH` (an `INSERT`
    /// whose effect another statement's text follows): PostgreSQL only.
    const WRITING_WITH: bool = false;
    fn trim_upper(expr: &str) -> String {
        format!("UPPER(TRIM({expr}))")
    }
    /// Byte-exact text equality.
    fn text_eq(a: &str, b: &str) -> String {
        format!("{a} = {b}")
    }

    /// ` IN (…)` of `ids` (not empty) whose text depends only on how many ids
    /// there are, rounded up to a power of two (the last id repeats), so the
    /// statements of a pass share a handful of texts and each connection
    /// prepares them once. PostgreSQL binds one array instead: one text.
    fn id_in(qb: &mut QueryBuilder<Self>, ids: &[i64]) {
        let padded = ids.len().next_power_of_two();
        let last = ids.last().copied().unwrap_or_default();
        qb.push(" IN ");
        id_list(
            qb,
            ids.iter()
                .copied()
                .chain(std::iter::repeat_n(last, padded - ids.len())),
        );
    }

    /// Runs a statement; rows affected. `kept`: through a statement kept
    /// prepared on the connection.
    fn execute_kept<'a>(
        conn: &'a mut Self::Connection,
        qb: QueryBuilder<Self>,
        kept: bool,
    ) -> Fut<'a, u64>;
    fn execute<'a>(conn: &'a mut Self::Connection, qb: QueryBuilder<Self>) -> Fut<'a, u64> {
        Self::execute_kept(conn, qb, false)
    }
    /// [`Dialect::execute`] through a statement kept prepared on the
    /// connection: only for texts of one fixed shape that a pass runs once per
    /// account (on MySQL an unprepared statement costs a round trip of its own
    /// to prepare it, and one server-side prepare, every time).
    fn execute_prepared<'a>(
        conn: &'a mut Self::Connection,
        qb: QueryBuilder<Self>,
    ) -> Fut<'a, u64> {
        Self::execute_kept(conn, qb, true)
    }
    /// Reads services with a statement kept prepared on the connection: only
    /// for texts of a fixed shape (see [`Dialect::id_in`]), which a pass runs
    /// once per account.
    fn services_prepared<'a>(
        conn: &'a mut Self::Connection,
        qb: QueryBuilder<Self>,
    ) -> Fut<'a, Vec<ServiceRow>>;
    /// [`Dialect::drift`] through a statement kept prepared, as
    /// [`Dialect::services_prepared`].
    fn drift_prepared<'a>(
        conn: &'a mut Self::Connection,
        qb: QueryBuilder<Self>,
    ) -> Fut<'a, Vec<DriftRow>>;
    fn services<'a>(
        conn: &'a mut Self::Connection,
        qb: QueryBuilder<Self>,
    ) -> Fut<'a, Vec<ServiceRow>>;
    fn drift<'a>(conn: &'a mut Self::Connection, qb: QueryBuilder<Self>) -> Fut<'a, Vec<DriftRow>>;
    fn runs<'a>(conn: &'a mut Self::Connection, qb: QueryBuilder<Self>) -> Fut<'a, Vec<RunRow>>;
    fn decisions<'a>(
        conn: &'a mut Self::Connection,
        qb: QueryBuilder<Self>,
    ) -> Fut<'a, Vec<DecisionRow>>;
    fn pairs<'a>(
        conn: &'a mut Self::Connection,
        qb: QueryBuilder<Self>,
    ) -> Fut<'a, Vec<(i64, i64)>>;
    fn counts<'a>(
        conn: &'a mut Self::Connection,
        qb: QueryBuilder<Self>,
    ) -> Fut<'a, Vec<(i64, Option<String>, i64)>>;
    fn times<'a>(
        conn: &'a mut Self::Connection,
        qb: QueryBuilder<Self>,
    ) -> Fut<'a, Vec<(i64, Option<NaiveDateTime>)>>;
}

/// The value of one `SET` item of [`Dialect::update_join`].
pub(crate) enum Set<'a> {
    Expr(String),
    Bind(Cell<'a>),
}

/// Pushes `c1, c2, …` of bound cells.
pub(crate) fn list<'a, D: Dialect>(qb: &mut QueryBuilder<D>, cells: Vec<Cell<'a>>) {
    for (i, c) in cells.into_iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        D::cell(qb, c);
    }
}

/// Pushes `(c1, c2, …)` of bound cells.
pub(crate) fn tuple<'a, D: Dialect>(qb: &mut QueryBuilder<D>, cells: Vec<Cell<'a>>) {
    qb.push("(");
    list(qb, cells);
    qb.push(")");
}

/// Pushes ` VALUES (…), (…)` of an INSERT.
pub(crate) fn values<'a, D: Dialect>(
    qb: &mut QueryBuilder<D>,
    rows: impl IntoIterator<Item = Vec<Cell<'a>>>,
) {
    qb.push(" VALUES ");
    for (i, row) in rows.into_iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        tuple(qb, row);
    }
}

/// Pushes `(?, ?, …)` of ids, for `IN`.
pub(crate) fn id_list<D: Dialect>(qb: &mut QueryBuilder<D>, ids: impl IntoIterator<Item = i64>) {
    tuple(qb, ids.into_iter().map(Cell::Int).collect());
}

fn push_set<'a, D: Dialect>(qb: &mut QueryBuilder<D>, set: Vec<(&str, Set<'a>)>, prefix: &str) {
    for (i, (column, value)) in set.into_iter().enumerate() {
        qb.push(if i == 0 { " SET " } else { ", " })
            .push(prefix)
            .push(column)
            .push(" = ");
        match value {
            Set::Expr(e) => {
                qb.push(e);
            }
            Set::Bind(c) => D::cell(qb, c),
        }
    }
}

macro_rules! run {
    ($db:ty) => {
        fn execute_kept<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            mut qb: QueryBuilder<$db>,
            kept: bool,
        ) -> Fut<'a, u64> {
            Box::pin(async move {
                qb.build()
                    .persistent(kept)
                    .execute(conn)
                    .await
                    .map(|done| done.rows_affected())
            })
        }
        fn services<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            mut qb: QueryBuilder<$db>,
        ) -> Fut<'a, Vec<ServiceRow>> {
            Box::pin(async move { qb.build_query_as().persistent(false).fetch_all(conn).await })
        }
        fn services_prepared<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            mut qb: QueryBuilder<$db>,
        ) -> Fut<'a, Vec<ServiceRow>> {
            Box::pin(async move { qb.build_query_as().fetch_all(conn).await })
        }
        fn drift_prepared<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            mut qb: QueryBuilder<$db>,
        ) -> Fut<'a, Vec<DriftRow>> {
            Box::pin(async move { qb.build_query_as().fetch_all(conn).await })
        }
        fn drift<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            mut qb: QueryBuilder<$db>,
        ) -> Fut<'a, Vec<DriftRow>> {
            Box::pin(async move { qb.build_query_as().persistent(false).fetch_all(conn).await })
        }
        fn runs<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            mut qb: QueryBuilder<$db>,
        ) -> Fut<'a, Vec<RunRow>> {
            Box::pin(async move { qb.build_query_as().persistent(false).fetch_all(conn).await })
        }
        fn decisions<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            mut qb: QueryBuilder<$db>,
        ) -> Fut<'a, Vec<DecisionRow>> {
            Box::pin(async move { qb.build_query_as().persistent(false).fetch_all(conn).await })
        }
        fn pairs<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            mut qb: QueryBuilder<$db>,
        ) -> Fut<'a, Vec<(i64, i64)>> {
            Box::pin(async move { qb.build_query_as().persistent(false).fetch_all(conn).await })
        }
        fn counts<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            mut qb: QueryBuilder<$db>,
        ) -> Fut<'a, Vec<(i64, Option<String>, i64)>> {
            Box::pin(async move { qb.build_query_as().persistent(false).fetch_all(conn).await })
        }
        fn times<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            mut qb: QueryBuilder<$db>,
        ) -> Fut<'a, Vec<(i64, Option<NaiveDateTime>)>> {
            Box::pin(async move { qb.build_query_as().persistent(false).fetch_all(conn).await })
        }
    };
}

impl Dialect for Sqlite {
    const BACKEND: Backend = Backend::Sqlite;
    const BEGIN: Option<&'static str> = Some("BEGIN IMMEDIATE");

    fn cell<'a>(qb: &mut QueryBuilder<Self>, cell: Cell<'a>) {
        match cell {
            Cell::Int(v) => qb.push_bind(v),
            Cell::OptInt(v) => qb.push_bind(v),
            Cell::Text(v) => qb.push_bind(v),
            Cell::OptText(v) => qb.push_bind(v),
            Cell::Flag(v) => qb.push_bind(v),
            Cell::Time(v) => qb.push_bind(v),
            Cell::OptTime(v) => qb.push_bind(v),
        };
    }

    fn rows_of<'a>(qb: &mut QueryBuilder<Self>, columns: &[&str], rows: Vec<Vec<Cell<'a>>>) {
        qb.push("(SELECT ");
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push(format!("column{} AS {c}", i + 1));
        }
        qb.push(" FROM (");
        values(qb, rows);
        qb.push(")) AS v");
    }

    fn cents(expr: &str) -> String {
        format!("CAST(ROUND({expr} * 100) AS INTEGER)")
    }
    const CENTS_TO_DECIMAL: (&'static str, &'static str) = ("(", " / 100.0)");
    const JSON: &'static str = "";
    run!(Sqlite);
}

impl Dialect for Postgres {
    const BACKEND: Backend = Backend::Postgres;
    const BEGIN: Option<&'static str> = None;

    fn cell<'a>(qb: &mut QueryBuilder<Self>, cell: Cell<'a>) {
        match cell {
            Cell::Int(v) => qb.push_bind(v).push("::int8"),
            Cell::OptInt(v) => qb.push_bind(v).push("::int8"),
            Cell::Text(v) => qb.push_bind(v).push("::text"),
            Cell::OptText(v) => qb.push_bind(v).push("::text"),
            Cell::Flag(v) => qb.push_bind(v).push("::bool"),
            Cell::Time(v) => qb.push_bind(v).push("::timestamp"),
            Cell::OptTime(v) => qb.push_bind(v).push("::timestamp"),
        };
    }

    fn rows_of<'a>(qb: &mut QueryBuilder<Self>, columns: &[&str], rows: Vec<Vec<Cell<'a>>>) {
        qb.push("(");
        values(qb, rows);
        qb.push(") AS v(").push(columns.join(", ")).push(")");
    }

    fn id_in(qb: &mut QueryBuilder<Self>, ids: &[i64]) {
        qb.push(" = ANY(").push_bind(ids.to_vec()).push("::int8[])");
    }

    fn int(expr: &str) -> String {
        format!("{expr}::int8")
    }
    fn text(expr: &str) -> String {
        format!("{expr}::text")
    }
    fn time(expr: &str) -> String {
        format!("{expr}::timestamp")
    }
    fn flag(expr: &str) -> String {
        format!("COALESCE({expr}, false)")
    }
    fn flag_value(expr: &str) -> String {
        expr.to_owned()
    }
    fn cents(expr: &str) -> String {
        format!("round({expr} * 100)::int8")
    }
    const CENTS_TO_DECIMAL: (&'static str, &'static str) = ("(", "::numeric / 100)");
    const JSON: &'static str = "::jsonb";
    const WRITING_WITH: bool = true;
    fn trim_upper(expr: &str) -> String {
        format!("upper(btrim({expr}::text))")
    }
    run!(Postgres);
}

impl Dialect for MySql {
    const BACKEND: Backend = Backend::MySql;
    const BEGIN: Option<&'static str> = None;

    fn cell<'a>(qb: &mut QueryBuilder<Self>, cell: Cell<'a>) {
        match cell {
            Cell::Int(v) => qb.push("CAST(").push_bind(v).push(" AS SIGNED)"),
            Cell::OptInt(v) => qb.push("CAST(").push_bind(v).push(" AS SIGNED)"),
            Cell::Text(v) => qb.push_bind(v),
            Cell::OptText(v) => qb.push_bind(v),
            Cell::Flag(v) => qb.push_bind(v),
            Cell::Time(v) => qb.push_bind(v),
            Cell::OptTime(v) => qb.push_bind(v),
        };
    }

    fn rows_of<'a>(qb: &mut QueryBuilder<Self>, columns: &[&str], rows: Vec<Vec<Cell<'a>>>) {
        qb.push("(");
        for (i, row) in rows.into_iter().enumerate() {
            qb.push(if i == 0 {
                "SELECT "
            } else {
                " UNION ALL SELECT "
            });
            for (j, cell) in row.into_iter().enumerate() {
                if j > 0 {
                    qb.push(", ");
                }
                Self::cell(qb, cell);
                if i == 0 {
                    qb.push(" AS ").push(columns[j]);
                }
            }
        }
        qb.push(") AS v");
    }

    fn update_join<'a>(
        qb: &mut QueryBuilder<Self>,
        table: &str,
        columns: &[&str],
        rows: Vec<Vec<Cell<'a>>>,
        on: &str,
        set: Vec<(&str, Set<'a>)>,
    ) {
        qb.push("UPDATE ").push(table).push(" AS s JOIN ");
        Self::rows_of(qb, columns, rows);
        qb.push(" ON ").push(on);
        push_set(qb, set, "s.");
    }

    fn upsert(_key: &str, set: &[(&str, String)]) -> String {
        // VALUES() is deprecated on MySQL 8.0.20+ but is the only spelling that
        // MariaDB also accepts.
        let set: Vec<String> = set.iter().map(|(c, e)| format!("{c} = {e}")).collect();
        format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "))
    }
    fn excluded(column: &str) -> String {
        format!("VALUES({column})")
    }
    fn current(_table: &str, column: &str) -> String {
        column.to_owned()
    }
    fn int(expr: &str) -> String {
        format!("CAST({expr} AS SIGNED)")
    }
    fn text(expr: &str) -> String {
        format!("CAST({expr} AS CHAR)")
    }
    fn time(expr: &str) -> String {
        format!("CAST({expr} AS DATETIME(6))")
    }
    /// Microseconds since 1970-01-01 00:00:00 (an integer): sqlx formats a
    /// debug message for every DATETIME value it reads in a binary row (about
    /// 9% of a steady pass's CPU on MariaDB), and none for an integer.
    fn stamp(expr: &str) -> String {
        format!(
            "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {})",
            Self::time(expr)
        )
    }
    fn cents(expr: &str) -> String {
        format!("CAST(ROUND({expr} * 100) AS SIGNED)")
    }
    const CENTS_TO_DECIMAL: (&'static str, &'static str) = ("CAST(", " AS DECIMAL(20, 0)) / 100");
    const JSON: &'static str = "";
    fn text_eq(a: &str, b: &str) -> String {
        format!("{a} = {b} COLLATE utf8mb4_bin")
    }
    run!(MySql);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_list<D: Dialect>(ids: &[i64]) -> String {
        let mut qb = QueryBuilder::<D>::new("SELECT 1 WHERE x");
        D::id_in(&mut qb, ids);
        qb.into_string()
    }

    #[test]
    fn id_lists_take_a_handful_of_statement_texts() {
        // SQLite and MySQL: the list is padded to a power of two, so 5, 6, 7 and
        // 8 ids share one text (and one prepared statement per connection).
        let five = in_list::<Sqlite>(&[1, 2, 3, 4, 5]);
        assert_eq!(five.matches('?').count(), 8, "{five}");
        assert_eq!(five, in_list::<Sqlite>(&[9, 8, 7, 6, 5, 4, 3, 2]));
        assert_eq!(in_list::<Sqlite>(&[7]).matches('?').count(), 1);
        assert_eq!(in_list::<MySql>(&[1, 2, 3]).matches('?').count(), 4);
        // PostgreSQL binds the whole list as one array: one text for any length.
        let pg = in_list::<Postgres>(&[1, 2, 3]);
        assert_eq!(pg, "SELECT 1 WHERE x = ANY($1::int8[])");
        assert_eq!(pg, in_list::<Postgres>(&(1..=700).collect::<Vec<_>>()));
    }
}
