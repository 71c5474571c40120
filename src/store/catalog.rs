//! The database catalogs, which really differ per backend: whether a table exists,
//! and the shape of the platform's `services` table (columns, types, nullability,
//! defaults, the unique index on `calcom_event_type_id`) for the schema check.

use sqlx::{MySqlPool, PgPool, SqlitePool};

use super::Backend;
use super::batch::Statements;
use super::error::{StoreError, on};
use super::schema::{self, Column, TableShape};

pub(super) mod sqlite {
    use super::*;

    const BACKEND: Backend = Backend::Sqlite;

    pub(crate) async fn table_exists(
        pool: &SqlitePool,
        st: &Statements,
        name: &'static str,
    ) -> Result<bool, StoreError> {
        st.tick();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind(name)
        .fetch_one(pool)
        .await
        .map_err(on(BACKEND, "looking up a table"))?;
        Ok(n > 0)
    }

    pub(crate) async fn services_shape(
        pool: &SqlitePool,
        st: &Statements,
    ) -> Result<Option<TableShape>, StoreError> {
        st.tick();
        let rows: Vec<(String, String, bool, Option<String>, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\" <> 0, dflt_value, pk FROM pragma_table_info('services')",
        )
        .fetch_all(pool)
        .await
        .map_err(on(BACKEND, "reading the services columns"))?;
        if rows.is_empty() {
            return Ok(None);
        }
        // A single-column INTEGER PRIMARY KEY is the rowid: generated on insert.
        let rowid_pk = rows.iter().filter(|r| r.4 > 0).count() == 1;
        let columns = rows
            .into_iter()
            .map(|(name, declared, not_null, default, pk)| {
                let rowid = rowid_pk && pk > 0 && declared.eq_ignore_ascii_case("INTEGER");
                Column {
                    kind: schema::sqlite_kind(&declared),
                    declared: if declared.is_empty() {
                        "untyped".into()
                    } else {
                        declared.to_lowercase()
                    },
                    nullable: !not_null && !rowid,
                    has_default: default.is_some() || rowid,
                    charset: None,
                    name,
                }
            })
            .collect();
        st.tick();
        let unique: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_index_list('services') AS il \
             WHERE il.\"unique\" = 1 AND il.partial = 0 \
             AND (SELECT COUNT(*) FROM pragma_index_info(il.name)) = 1 \
             AND (SELECT ii.name FROM pragma_index_info(il.name) AS ii) = 'calcom_event_type_id'",
        )
        .fetch_one(pool)
        .await
        .map_err(on(BACKEND, "reading the services indexes"))?;
        Ok(Some(TableShape {
            columns,
            unique_event_type_index: unique > 0,
        }))
    }
}

pub(super) mod postgres {
    use super::*;

    const BACKEND: Backend = Backend::Postgres;

    pub(crate) async fn table_exists(
        pool: &PgPool,
        st: &Statements,
        name: &'static str,
    ) -> Result<bool, StoreError> {
        st.tick();
        sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(name)
            .fetch_one(pool)
            .await
            .map_err(on(BACKEND, "looking up a table"))
    }

    pub(crate) async fn services_shape(
        pool: &PgPool,
        st: &Statements,
    ) -> Result<Option<TableShape>, StoreError> {
        st.tick();
        // Domains are judged by their base type.
        let rows: Vec<(String, String, String, bool, bool)> = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
             COALESCE(bt.typname, t.typname)::text, NOT a.attnotnull, \
             (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
             WHERE a.attrelid = to_regclass('services') AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
        )
        .fetch_all(pool)
        .await
        .map_err(on(BACKEND, "reading the services columns"))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let columns = rows
            .into_iter()
            .map(|(name, declared, typname, nullable, has_default)| Column {
                name,
                declared,
                kind: schema::postgres_kind(&typname),
                nullable,
                has_default,
                charset: None,
            })
            .collect();
        st.tick();
        let unique: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = to_regclass('services') AND i.indisunique AND i.indnkeyatts = 1 \
             AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = 'calcom_event_type_id')",
        )
        .fetch_one(pool)
        .await
        .map_err(on(BACKEND, "reading the services indexes"))?;
        Ok(Some(TableShape {
            columns,
            unique_event_type_index: unique,
        }))
    }
}

pub(super) mod mysql {
    use super::*;

    const BACKEND: Backend = Backend::MySql;

    pub(crate) async fn table_exists(
        pool: &MySqlPool,
        st: &Statements,
        name: &'static str,
    ) -> Result<bool, StoreError> {
        st.tick();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        )
        .bind(name)
        .fetch_one(pool)
        .await
        .map_err(on(BACKEND, "looking up a table"))?;
        Ok(n > 0)
    }

    pub(crate) async fn services_shape(
        pool: &MySqlPool,
        st: &Statements,
    ) -> Result<Option<TableShape>, StoreError> {
        st.tick();
        // information_schema columns are cast because MySQL 8 reports some of them
        // as binary strings.
        let rows: Vec<(String, String, String, bool, bool, Option<String>)> = sqlx::query_as(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(DATA_TYPE AS CHAR), \
             IS_NULLABLE = 'YES', \
             (COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%auto_increment%' OR EXTRA LIKE '%GENERATED%'), \
             CAST(CHARACTER_SET_NAME AS CHAR) \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'services' ORDER BY ORDINAL_POSITION",
        )
        .fetch_all(pool)
        .await
        .map_err(on(BACKEND, "reading the services columns"))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let columns = rows
            .into_iter()
            .map(
                |(name, declared, data_type, nullable, has_default, charset)| Column {
                    name,
                    declared,
                    kind: schema::mysql_kind(&data_type),
                    nullable,
                    has_default,
                    charset,
                },
            )
            .collect();
        st.tick();
        let unique: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'services' AND NON_UNIQUE = 0 \
             GROUP BY INDEX_NAME \
             HAVING COUNT(*) = 1 AND MAX(CAST(COLUMN_NAME AS CHAR)) = 'calcom_event_type_id' \
             AND MAX(SUB_PART) IS NULL) AS x",
        )
        .fetch_one(pool)
        .await
        .map_err(on(BACKEND, "reading the services indexes"))?;
        Ok(Some(TableShape {
            columns,
            unique_event_type_index: unique > 0,
        }))
    }
}
