//! Statements whose SQL is the same for SQLite and MySQL/MariaDB (`?`
//! placeholders, nothing dialect-specific): written once here and instantiated in
//! each backend module, where `BACKEND`, `SERVICE_SELECT`, `DRIFT_SELECT` and the
//! row types resolve to that backend's own. PostgreSQL (`$n` placeholders) keeps
//! its own copies.

macro_rules! statements {
    ($db:ty, $pool:ty, $conn:ty) => {
        pub(super) async fn ping(pool: &$pool, st: &Statements) -> Result<(), StoreError> {
            st.tick();
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(on(BACKEND, "pinging the database"))?;
            Ok(())
        }

        pub(super) async fn service(
            pool: &$pool,
            st: &Statements,
            id: ServiceId,
        ) -> Result<Option<LinkedService>, StoreError> {
            st.tick();
            let row = sqlx::query_as::<_, ServiceRow>(sqlx::AssertSqlSafe(format!(
                "{SERVICE_SELECT} WHERE s.id = ?"
            )))
            .bind(id.0)
            .fetch_optional(pool)
            .await
            .map_err(on(BACKEND, "reading a service"))?;
            row.map(LinkedService::try_from).transpose()
        }

        pub(super) async fn services_page(
            pool: &$pool,
            st: &Statements,
            offset: i64,
            limit: i64,
        ) -> Result<Vec<ServiceRow>, StoreError> {
            st.tick();
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SERVICE_SELECT} ORDER BY s.id LIMIT ? OFFSET ?"
            )))
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await
            .map_err(on(BACKEND, "listing services"))
        }

        pub(super) async fn edit_as_platform(
            pool: &$pool,
            st: &Statements,
            id: ServiceId,
            name: Option<&str>,
            duration_minutes: Option<i32>,
            now: chrono::NaiveDateTime,
        ) -> Result<bool, StoreError> {
            st.tick();
            let done = sqlx::query(
                "UPDATE services SET name = COALESCE(?, name), \
                 duration_minutes = COALESCE(?, duration_minutes), sync_status = 'pending', \
                 updated_at = ? WHERE id = ?",
            )
            .bind(name)
            .bind(duration_minutes)
            .bind(now)
            .bind(id.0)
            .execute(pool)
            .await
            .map_err(on(BACKEND, "editing a service as the platform"))?;
            Ok(done.rows_affected() > 0)
        }

        pub(super) async fn drift_rows(
            pool: &$pool,
            st: &Statements,
            query: DriftQuery<'_>,
        ) -> Result<Vec<DriftRow>, StoreError> {
            let q = match query {
                DriftQuery::State { state, account } => {
                    let state = super::drift_state_filter(state);
                    match account {
                        None => sqlx::query_as::<_, DriftRow>(sqlx::AssertSqlSafe(format!(
                            "{DRIFT_SELECT} WHERE {state} ORDER BY id"
                        ))),
                        Some(account) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "{DRIFT_SELECT} WHERE {state} AND account = ? ORDER BY id"
                        )))
                        .bind(account),
                    }
                }
                DriftQuery::OpenFor(id) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{DRIFT_SELECT} WHERE open_key IS NOT NULL AND service_id = ?"
                )))
                .bind(id.0),
                DriftQuery::History(id) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{DRIFT_SELECT} WHERE service_id = ? ORDER BY id"
                )))
                .bind(id.0),
            };
            st.tick();
            q.fetch_all(pool)
                .await
                .map_err(on(BACKEND, "reading drift"))
        }

        pub(super) async fn record_run(
            pool: &$pool,
            st: &Statements,
            run: &RunRecord,
        ) -> Result<(), StoreError> {
            let mut conn = pool
                .acquire()
                .await
                .map_err(on(BACKEND, "recording a run"))?;
            insert_run(&mut conn, st, run).await
        }

        async fn insert_run(
            conn: &mut $conn,
            st: &Statements,
            run: &RunRecord,
        ) -> Result<(), StoreError> {
            st.tick();
            sqlx::query(
                "INSERT INTO calsync_runs (account, started_at, finished_at, result, summary, error) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&run.account)
            .bind(run.started_at)
            .bind(run.finished_at)
            .bind(run.result)
            .bind(run.summary.to_string())
            .bind(run.error.as_deref())
            .execute(conn)
            .await
            .map_err(on(BACKEND, "recording a run"))?;
            Ok(())
        }

        pub(super) async fn last_runs(
            pool: &$pool,
            st: &Statements,
            limit: i64,
        ) -> Result<Vec<StoredRun>, StoreError> {
            st.tick();
            let rows: Vec<RunRow> = sqlx::query_as(
                "SELECT id, account, started_at, finished_at, result, summary, error \
                 FROM calsync_runs ORDER BY id DESC LIMIT ?",
            )
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(on(BACKEND, "reading runs"))?;
            Ok(rows.into_iter().map(StoredRun::from).collect())
        }

        async fn resolve_drift(
            conn: &mut $conn,
            st: &Statements,
            now: chrono::NaiveDateTime,
            groups: &[(crate::domain::Resolution, Vec<String>)],
        ) -> Result<(), StoreError> {
            for (resolution, keys) in groups {
                for keys in keys.chunks(ID_CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("UPDATE calsync_drift SET resolved_at = ");
                    // `agreed` keeps a resolution recorded as intent before a push
                    // (a crash between the push and this pass's commit).
                    qb.push_bind(now).push(if *resolution == crate::domain::Resolution::Agreed {
                        ", resolution = COALESCE(resolution, "
                    } else {
                        ", resolution = COALESCE(NULL, "
                    });
                    qb.push_bind(resolution.as_str())
                        .push("), open_key = NULL WHERE open_key IN (");
                    let mut list = qb.separated(", ");
                    for key in keys {
                        list.push_bind(key.as_str());
                    }
                    qb.push(")");
                    st.tick();
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(on(BACKEND, "resolving drift"))?;
                }
            }
            Ok(())
        }

        async fn mark_gone(
            conn: &mut $conn,
            st: &Statements,
            w: &PreparedWrite<'_>,
        ) -> Result<(), StoreError> {
            for ids in w.gone.chunks(ID_CHUNK) {
                let mut qb = QueryBuilder::<$db>::new("UPDATE calsync_event_types SET gone_at = ");
                qb.push_bind(w.now).push(" WHERE event_type_id IN ");
                id_list(&mut qb, ids.iter().copied());
                st.tick();
                qb.build()
                    .persistent(false)
                    .execute(&mut *conn)
                    .await
                    .map_err(on(BACKEND, "marking event types gone"))?;
            }
            Ok(())
        }

        fn id_list(qb: &mut QueryBuilder<$db>, ids: impl IntoIterator<Item = i64>) {
            qb.push("(");
            let mut list = qb.separated(", ");
            for id in ids {
                list.push_bind(id);
            }
            qb.push(")");
        }

        pub(super) async fn load_account(
            pool: &$pool,
            st: &Statements,
            scope: AccountScope<'_>,
        ) -> Result<AccountSnapshot, StoreError> {
            let mut rows: Vec<ServiceRow> = Vec::new();
            for ids in scope.listed.chunks(ID_CHUNK) {
                let mut qb = QueryBuilder::<$db>::new(SERVICE_SELECT);
                qb.push(" WHERE s.calcom_event_type_id IN ");
                id_list(&mut qb, ids.iter().map(|id| id.0));
                st.tick();
                rows.extend(
                    qb.build_query_as::<ServiceRow>()
                        .persistent(false)
                        .fetch_all(pool)
                        .await
                        .map_err(on(BACKEND, "loading listed services"))?,
                );
            }
            st.tick();
            rows.extend(
                sqlx::query_as::<_, ServiceRow>(sqlx::AssertSqlSafe(format!(
                    "{SERVICE_SELECT} WHERE r.account = ? UNION ALL {SERVICE_SELECT} \
                     WHERE r.event_type_id IS NULL AND s.calcom_event_type_id IS NOT NULL AND s.company_id = ?"
                )))
                .bind(scope.account)
                .bind(scope.company_id)
                .fetch_all(pool)
                .await
                .map_err(on(BACKEND, "loading the account's services"))?,
            );
            st.tick();
            let drift = sqlx::query_as::<_, DriftRow>(sqlx::AssertSqlSafe(format!(
                "{DRIFT_SELECT} WHERE open_key IS NOT NULL AND account = ?"
            )))
            .bind(scope.account)
            .fetch_all(pool)
            .await
            .map_err(on(BACKEND, "loading open drift"))?;
            super::snapshot(rows, drift)
        }
    };
}

pub(super) use statements;
