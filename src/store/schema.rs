//! What calsync needs from the platform's `services` table, checked against the
//! catalog of whichever backend is in use, and the embedded migrations.
//!
//! The check is pure ([`check`]): each backend only describes the table as a
//! [`TableShape`]. It reports every problem at once, in one
//! [`StoreError::IncompatibleSchema`](super::StoreError::IncompatibleSchema).

use sqlx::migrate::Migrator;

use super::Backend;

/// sqlx's bookkeeping table, renamed so that everything calsync creates in the
/// platform's database is recognisably calsync's.
pub(crate) const MIGRATIONS_TABLE: &str = "calsync_migrations";

/// The embedded migrations for a backend, recorded in [`MIGRATIONS_TABLE`].
pub(crate) fn migrator(backend: Backend) -> Migrator {
    let mut migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        Backend::MySql => sqlx::migrate!("migrations/mysql"),
    };
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// A column type, as far as calsync cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Integer,
    Decimal,
    Float,
    Text,
    Boolean,
    Timestamp,
    Json,
    Other,
}

/// One column of the existing table.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    /// The type as the catalog spells it (shown in messages).
    pub declared: String,
    pub kind: Kind,
    pub nullable: bool,
    /// Has a default, or is generated (identity, auto-increment, rowid alias).
    pub has_default: bool,
    /// MySQL character set of a text column.
    pub charset: Option<String>,
}

/// The existing `services` table, or `None` when it does not exist.
#[derive(Debug, Clone)]
pub(crate) struct TableShape {
    pub columns: Vec<Column>,
    /// A unique, non-partial index on exactly `calcom_event_type_id`.
    pub unique_event_type_index: bool,
}

/// What calsync does with a column, which decides the types it accepts.
#[derive(Clone, Copy)]
enum Use {
    Integer,
    Price,
    Text,
    Flag,
    Timestamp,
}

/// Every column calsync reads or writes; `true` = calsync writes NULL into it.
const NEEDED: [(&str, Use, bool); 17] = [
    ("id", Use::Integer, false),
    ("company_id", Use::Integer, false),
    ("branch_id", Use::Integer, false),
    ("name", Use::Text, false),
    ("description", Use::Text, true),
    ("duration_minutes", Use::Integer, false),
    ("price", Use::Price, false),
    ("currency", Use::Text, false),
    ("is_active", Use::Flag, false),
    ("is_online", Use::Flag, false),
    ("composite", Use::Flag, false),
    ("calcom_event_type_id", Use::Integer, false),
    ("sync_status", Use::Text, false),
    ("last_calcom_sync", Use::Timestamp, false),
    ("sync_error", Use::Text, true),
    ("created_at", Use::Timestamp, false),
    ("updated_at", Use::Timestamp, false),
];

/// Columns an import supplies; any other NOT NULL column needs a default.
const INSERTED: [&str; 14] = [
    "company_id",
    "name",
    "description",
    "duration_minutes",
    "price",
    "currency",
    "is_active",
    "is_online",
    "composite",
    "calcom_event_type_id",
    "sync_status",
    "last_calcom_sync",
    "created_at",
    "updated_at",
];

/// Columns that hold Cal.com text (titles may contain emoji).
const UNICODE_TEXT: [&str; 3] = ["name", "description", "sync_error"];

/// Lists everything that keeps calsync from using the table; empty = compatible.
pub(crate) fn check(backend: Backend, shape: Option<&TableShape>) -> Vec<String> {
    let Some(shape) = shape else {
        return vec!["table services does not exist".into()];
    };
    let mut problems = Vec::new();
    for (name, usage, writes_null) in NEEDED {
        let Some(column) = shape
            .columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
        else {
            problems.push(format!("services.{name} is missing"));
            continue;
        };
        let (accepted, expected) = accepted(backend, usage);
        if !accepted.contains(&column.kind) {
            problems.push(format!(
                "services.{name} is {}, expected {expected}",
                column.declared
            ));
        }
        if writes_null && !column.nullable {
            problems.push(format!(
                "services.{name} is NOT NULL, but calsync stores NULL there when there is no value"
            ));
        }
        if backend == Backend::MySql
            && UNICODE_TEXT.contains(&name)
            && let Some(charset) = &column.charset
            && !charset.eq_ignore_ascii_case("utf8mb4")
        {
            problems.push(format!(
                "services.{name} uses character set {charset}, expected utf8mb4 (Cal.com titles may contain emoji)"
            ));
        }
    }
    for column in &shape.columns {
        let supplied = INSERTED.iter().any(|c| column.name.eq_ignore_ascii_case(c));
        if !supplied && !column.nullable && !column.has_default {
            problems.push(format!(
                "services.{} is NOT NULL without a default, so calsync cannot insert imported services",
                column.name
            ));
        }
    }
    if !shape.unique_event_type_index {
        problems.push(
            "services.calcom_event_type_id has no unique index (calsync relies on it to import each event type once)"
                .into(),
        );
    }
    problems
}

fn accepted(backend: Backend, usage: Use) -> (&'static [Kind], &'static str) {
    // SQLite stores by value, not by declared type: any numeric declaration keeps
    // a price exact enough for hundredths, and timestamps are often TEXT columns.
    // MySQL and SQLite booleans are integers; PostgreSQL needs `boolean`.
    match (usage, backend) {
        (Use::Integer, _) => (&[Kind::Integer], "an integer type"),
        (Use::Price, Backend::Sqlite) => (
            &[Kind::Decimal, Kind::Float, Kind::Integer],
            "a decimal/numeric type",
        ),
        (Use::Price, _) => (&[Kind::Decimal], "a decimal/numeric type"),
        (Use::Text, _) => (&[Kind::Text], "a text type (varchar, char or text)"),
        (Use::Flag, Backend::Postgres) => (&[Kind::Boolean], "boolean"),
        (Use::Flag, _) => (&[Kind::Boolean, Kind::Integer], "a boolean or integer type"),
        (Use::Timestamp, Backend::Sqlite) => (&[Kind::Timestamp, Kind::Text], "a timestamp type"),
        (Use::Timestamp, _) => (&[Kind::Timestamp], "a timestamp type"),
    }
}

/// PostgreSQL `pg_type.typname` to [`Kind`].
pub(crate) fn postgres_kind(typname: &str) -> Kind {
    match typname {
        "int2" | "int4" | "int8" => Kind::Integer,
        "numeric" => Kind::Decimal,
        "float4" | "float8" => Kind::Float,
        "text" | "varchar" | "bpchar" => Kind::Text,
        "bool" => Kind::Boolean,
        "timestamp" | "timestamptz" => Kind::Timestamp,
        "json" | "jsonb" => Kind::Json,
        _ => Kind::Other,
    }
}

/// MySQL `information_schema.COLUMNS.DATA_TYPE` to [`Kind`].
pub(crate) fn mysql_kind(data_type: &str) -> Kind {
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => Kind::Integer,
        "bit" | "bool" | "boolean" => Kind::Boolean,
        "decimal" | "numeric" => Kind::Decimal,
        "float" | "double" | "real" => Kind::Float,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" => Kind::Text,
        "datetime" | "timestamp" => Kind::Timestamp,
        "json" => Kind::Json,
        _ => Kind::Other,
    }
}

/// SQLite declared type to [`Kind`], following SQLite's affinity rules (INT, then
/// CHAR/CLOB/TEXT, then BLOB, then REAL/FLOA/DOUB) and telling the NUMERIC-affinity
/// names apart by keyword.
pub(crate) fn sqlite_kind(declared: &str) -> Kind {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Kind::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Kind::Text
    } else if t.contains("BLOB") || t.is_empty() {
        Kind::Other
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Kind::Float
    } else if t.contains("BOOL") {
        Kind::Boolean
    } else if t.contains("DATE") || t.contains("TIME") {
        Kind::Timestamp
    } else if t.contains("DEC") || t.contains("NUMERIC") {
        Kind::Decimal
    } else if t.contains("JSON") {
        Kind::Json
    } else {
        Kind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, declared: &str, kind: Kind) -> Column {
        Column {
            name: name.into(),
            declared: declared.into(),
            kind,
            nullable: true,
            has_default: false,
            charset: None,
        }
    }

    fn complete() -> Vec<Column> {
        NEEDED
            .iter()
            .map(|(name, usage, _)| {
                let (kinds, _) = accepted(Backend::Postgres, *usage);
                column(name, "ok", kinds[0])
            })
            .collect()
    }

    #[test]
    fn a_complete_table_passes() {
        let shape = TableShape {
            columns: complete(),
            unique_event_type_index: true,
        };
        assert!(check(Backend::Postgres, Some(&shape)).is_empty());
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let mut columns = complete();
        columns.retain(|c| c.name != "sync_status" && c.name != "sync_error");
        let price = columns.iter_mut().find(|c| c.name == "price").unwrap();
        price.declared = "text".into();
        price.kind = Kind::Text;
        let mut color = column("color", "varchar(10)", Kind::Text);
        color.nullable = false;
        columns.push(color);
        let shape = TableShape {
            columns,
            unique_event_type_index: false,
        };
        let problems = check(Backend::Postgres, Some(&shape));
        assert_eq!(
            problems,
            [
                "services.price is text, expected a decimal/numeric type",
                "services.sync_status is missing",
                "services.sync_error is missing",
                "services.color is NOT NULL without a default, so calsync cannot insert imported services",
                "services.calcom_event_type_id has no unique index (calsync relies on it to import each event type once)",
            ]
        );
    }

    #[test]
    fn sqlite_affinity_names_classify() {
        assert_eq!(sqlite_kind("BIGINT"), Kind::Integer);
        assert_eq!(sqlite_kind("decimal(10,2)"), Kind::Decimal);
        assert_eq!(sqlite_kind("VARCHAR(255)"), Kind::Text);
        assert_eq!(sqlite_kind("boolean"), Kind::Boolean);
        assert_eq!(sqlite_kind("TIMESTAMP"), Kind::Timestamp);
        assert_eq!(sqlite_kind("DOUBLE"), Kind::Float);
    }
}
