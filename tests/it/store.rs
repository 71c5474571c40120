//! The store's contract, scenario by scenario, on SQLite, PostgreSQL and MariaDB.
//! Each `backend_tests!` scenario becomes `<scenario>::{sqlite, postgres, mariadb}`.

use calsync::domain::{
    BusinessValues, Currency, EventType, EventTypeId, Field, Minutes, Money, Origin, Owner,
    Ownership, Resolution, ServiceId, SyncStatus, TeamId,
};
use calsync::store::{
    AccountScope, AccountWrite, Backend, Confirmation, DriftObservation, DriftResolution,
    MetadataUpdate, NewService, Overwrite, RegistryEntry, RunRecord, ServicesTable, Store,
    StoreError,
};
use chrono::NaiveDateTime;

use crate::support::db::{PlatformService, TestBackend, TestDb, backend_tests, empty};

fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").expect("test timestamp")
}

fn eur(cents: i64) -> Money {
    Money::new(cents, Currency::EUR)
}

fn values(name: &str, minutes: i32, price: Money) -> BusinessValues {
    BusinessValues {
        name: name.to_owned(),
        description: None,
        duration_minutes: minutes,
        is_active: true,
        is_online: true,
        price,
    }
}

fn import(company_id: i64, event_type: i64, values: BusinessValues) -> NewService {
    NewService {
        company_id,
        event_type_id: EventTypeId(event_type),
        values,
    }
}

/// What the store reads for a service, as business values.
async fn business(db: &TestDb, id: ServiceId) -> BusinessValues {
    db.store
        .service(id)
        .await
        .expect("reading a service")
        .expect("service exists")
        .service
        .values
}

// ---------------------------------------------------------------- migrations

backend_tests!(
    migrating_twice_is_idempotent,
    |backend: TestBackend| async move {
        let db = empty(backend).await;
        assert!(!db.store.migrations_current().await.unwrap());

        let first = db.store.migrate().await.unwrap();
        assert_eq!(first.applied, [1, 2, 3, 4, 5]);
        assert_eq!(first.services, ServicesTable::Created);
        let ddl = db.services_ddl().await;

        let second = db.store.migrate().await.unwrap();
        assert!(second.applied.is_empty(), "{second:?}");
        assert_eq!(second.services, ServicesTable::Verified);
        assert!(db.store.migrations_current().await.unwrap());
        assert_eq!(db.services_ddl().await, ddl);
        assert_eq!(db.count("SELECT COUNT(*) FROM calsync_migrations").await, 5);
    }
);

/// A platform table in the style each platform stack tends to create: other
/// integer widths, `timestamptz`, an ENUM status, extra columns.
fn platform_table(backend: TestBackend) -> &'static str {
    match backend {
        TestBackend::Sqlite => {
            "CREATE TABLE services (
                id INTEGER PRIMARY KEY,
                company_id INTEGER NOT NULL,
                branch_id INTEGER,
                name TEXT NOT NULL,
                description TEXT,
                duration_minutes INT NOT NULL,
                price NUMERIC NOT NULL DEFAULT 0,
                currency VARCHAR(3) NOT NULL DEFAULT 'EUR',
                is_active INTEGER NOT NULL DEFAULT 1,
                is_online INTEGER NOT NULL DEFAULT 1,
                composite INTEGER NOT NULL DEFAULT 0,
                segments TEXT,
                color VARCHAR(7) NOT NULL DEFAULT '#ffffff',
                calcom_event_type_id BIGINT,
                sync_status VARCHAR(10) NOT NULL DEFAULT 'never',
                last_calcom_sync DATETIME,
                sync_error TEXT,
                created_at DATETIME,
                updated_at DATETIME
            );
            CREATE UNIQUE INDEX services_calcom_event_type_id_unique ON services (calcom_event_type_id);
            CREATE INDEX services_company ON services (company_id, is_active);"
        }
        TestBackend::Postgres => {
            "CREATE TABLE services (
                id SERIAL PRIMARY KEY,
                company_id INTEGER NOT NULL,
                branch_id INTEGER,
                name VARCHAR(255) NOT NULL,
                description TEXT,
                duration_minutes SMALLINT NOT NULL,
                price NUMERIC(10, 2) NOT NULL DEFAULT 0,
                currency VARCHAR(3) NOT NULL DEFAULT 'eur',
                is_active BOOLEAN NOT NULL DEFAULT TRUE,
                is_online BOOLEAN,
                composite BOOLEAN NOT NULL DEFAULT FALSE,
                segments JSON,
                color VARCHAR(7) NOT NULL DEFAULT '#ffffff',
                calcom_event_type_id INTEGER,
                sync_status TEXT NOT NULL DEFAULT 'never',
                last_calcom_sync TIMESTAMPTZ,
                sync_error TEXT,
                created_at TIMESTAMPTZ DEFAULT now(),
                updated_at TIMESTAMPTZ DEFAULT now(),
                CONSTRAINT services_calcom_event_type_id_unique UNIQUE (calcom_event_type_id)
            );
            CREATE INDEX services_company ON services (company_id);"
        }
        TestBackend::MariaDb => {
            "CREATE TABLE services (
                id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                company_id INT UNSIGNED NOT NULL,
                branch_id INT UNSIGNED NULL,
                name VARCHAR(191) NOT NULL,
                description TEXT NULL,
                duration_minutes SMALLINT UNSIGNED NOT NULL,
                price DECIMAL(10, 2) NOT NULL DEFAULT 0.00,
                currency CHAR(3) NOT NULL DEFAULT 'EUR',
                is_active TINYINT(1) NOT NULL DEFAULT 1,
                is_online TINYINT(1) NOT NULL DEFAULT 1,
                composite TINYINT(1) NOT NULL DEFAULT 0,
                segments LONGTEXT NULL,
                color VARCHAR(7) NOT NULL DEFAULT '#ffffff',
                calcom_event_type_id BIGINT UNSIGNED NULL,
                sync_status ENUM('synced', 'pending', 'error', 'never') NOT NULL DEFAULT 'never',
                last_calcom_sync TIMESTAMP NULL DEFAULT NULL,
                sync_error TEXT NULL,
                created_at TIMESTAMP NULL DEFAULT NULL,
                updated_at TIMESTAMP NULL DEFAULT NULL,
                UNIQUE KEY services_calcom_event_type_id_unique (calcom_event_type_id),
                KEY services_company_id_foreign (company_id)
            ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci"
        }
    }
}

backend_tests!(
    migrating_leaves_an_existing_platform_table_unchanged,
    |backend: TestBackend| async move {
        let db = empty(backend).await;
        db.exec_script(platform_table(backend)).await;
        let before = db.services_ddl().await;

        let report = db.store.migrate().await.unwrap();

        assert_eq!(report.services, ServicesTable::Verified);
        assert_eq!(
            db.services_ddl().await,
            before,
            "the platform table was altered"
        );
        // And calsync works on it: import, read back, confirm.
        let now = at("2024-05-01 10:00:00");
        let mut write = AccountWrite::new("acme", now);
        write.imports = vec![import(7, 70, values("Cut", 45, eur(4550)))];
        let outcome = db.store.apply(write).await.unwrap();
        let (_, id) = outcome.imported[0];
        let linked = db.store.service(id).await.unwrap().unwrap();
        assert_eq!(linked.service.values, values("Cut", 45, eur(4550)));
        assert_eq!(linked.service.last_calcom_sync, Some(now));
        assert_eq!(linked.service.sync_status, SyncStatus::Synced);
        let mut write = AccountWrite::new("acme", at("2024-05-01 11:00:00"));
        write.confirmations = vec![Confirmation {
            id,
            expected: values("Cut", 45, eur(4550)),
        }];
        assert_eq!(db.store.apply(write).await.unwrap().confirmed, 1);
        assert_eq!(db.raw_service(id).await.price, "45.50");
    }
);

backend_tests!(
    verifying_an_incompatible_table_lists_every_problem,
    |backend: TestBackend| async move {
        let db = empty(backend).await;
        let id = match backend {
            TestBackend::Sqlite => "INTEGER PRIMARY KEY",
            TestBackend::Postgres => "SERIAL PRIMARY KEY",
            TestBackend::MariaDb => "INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY",
        };
        db.exec(&format!(
            "CREATE TABLE services (
            id {id},
            company_id INTEGER NOT NULL,
            branch_id INTEGER NULL,
            name VARCHAR(255) NOT NULL,
            description TEXT NULL,
            duration_minutes INTEGER NOT NULL,
            price TEXT NOT NULL,
            currency CHAR(3) NOT NULL,
            is_active BOOLEAN NOT NULL,
            is_online BOOLEAN NOT NULL,
            composite BOOLEAN NOT NULL DEFAULT FALSE,
            calcom_event_type_id BIGINT NULL,
            last_calcom_sync TIMESTAMP NULL,
            created_at TIMESTAMP NULL,
            updated_at TIMESTAMP NULL
        )"
        ))
        .await;

        let Err(StoreError::IncompatibleSchema { problems }) = db.store.migrate().await else {
            panic!("an incompatible services table must fail migrate");
        };
        assert_eq!(
            problems,
            [
                "services.price is text, expected a decimal/numeric type",
                "services.sync_status is missing",
                "services.sync_error is missing",
                "services.calcom_event_type_id has no unique index (calsync relies on it to import each event type once)",
            ]
        );
        let err = db.store.verify_services().await.unwrap_err();
        assert_eq!(err.kind(), "incompatible_schema");
        assert!(
            err.to_string().contains("services.price is text")
                && err.to_string().contains("services.sync_error is missing")
        );
    }
);

backend_tests!(
    verifying_without_a_services_table_says_so,
    |backend: TestBackend| async move {
        let db = empty(backend).await;
        let Err(StoreError::IncompatibleSchema { problems }) = db.store.verify_services().await
        else {
            panic!("a missing table must fail verification");
        };
        assert_eq!(problems, ["table services does not exist"]);
    }
);

// ---------------------------------------------------------------- imports

backend_tests!(
    imports_are_inserted_once_when_passes_race,
    |db| async move {
        let now = at("2024-05-01 10:00:00");
        for round in 0..3_i64 {
            let ids: Vec<i64> = (round * 100 + 1..=round * 100 + 40).collect();
            let write = |account: &str, reversed: bool| {
                let mut w = AccountWrite::new(account, now);
                w.imports = ids
                    .iter()
                    .map(|id| import(1, *id, values(&format!("Service {id}"), 30, eur(1000))))
                    .collect();
                if reversed {
                    w.imports.reverse();
                }
                w
            };
            let (a, b) = (db.store.clone(), db.store.clone());
            let (wa, wb) = (write("a", false), write("b", true));
            let (a, b) = tokio::join!(
                tokio::spawn(async move { a.apply(wa).await }),
                tokio::spawn(async move { b.apply(wb).await })
            );
            let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
            let mut imported: Vec<i64> = a
                .imported
                .iter()
                .chain(&b.imported)
                .map(|(et, _)| et.0)
                .collect();
            imported.sort();
            assert_eq!(
                imported, ids,
                "round {round}: every event type imported exactly once"
            );
        }
        assert_eq!(db.count("SELECT COUNT(*) FROM services").await, 120);

        // A later import of a linked event type inserts nothing.
        let mut again = AccountWrite::new("a", now);
        again.imports = vec![import(1, 1, values("Service 1", 30, eur(1000)))];
        assert!(db.store.apply(again).await.unwrap().imported.is_empty());
    }
);

backend_tests!(
    an_import_that_loses_to_a_concurrent_writer_imports_nothing,
    |db| async move {
        let racer = async {
            db.exec_held(
            "INSERT INTO services (company_id, name, duration_minutes, calcom_event_type_id, sync_status) \
             VALUES (1, 'Racer', 30, 5, 'synced')",
            std::time::Duration::from_millis(600),
        )
        .await
        };
        let pass = async {
            // Start while the racer's row is written but not committed.
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            let mut write = AccountWrite::new("acme", at("2024-05-01 10:00:00"));
            write.imports = vec![
                import(1, 5, values("Mine", 30, eur(100))),
                import(1, 6, values("Other", 30, eur(100))),
            ];
            db.store.apply(write).await
        };
        let ((), outcome) = tokio::join!(racer, pass);

        let imported: Vec<i64> = outcome
            .unwrap()
            .imported
            .iter()
            .map(|(et, _)| et.0)
            .collect();
        assert_eq!(imported, [6], "event type 5 belongs to the racer");
        let names: Vec<String> = db
            .raw_services()
            .await
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["Racer", "Other"]);
    }
);

backend_tests!(
    service_timestamps_read_back_to_the_microsecond,
    |db| async move {
        // MySQL reads them as microseconds since 1970 (`Dialect::stamp`), the
        // others as timestamps: the same values either way.
        let now =
            NaiveDateTime::parse_from_str("2024-05-01 10:00:00.123456", "%Y-%m-%d %H:%M:%S%.f")
                .unwrap();
        let mut write = AccountWrite::new("acme", now);
        write.imports = vec![import(3, 303, values("Cut", 45, eur(4550)))];
        write.baselines = vec![calsync::store::BaselineWrite {
            service_id: None,
            event_type_id: EventTypeId(303),
            baseline: calsync::domain::Baseline {
                fields: Default::default(),
                agreed_at: Some(now),
            },
        }];
        let outcome = db.store.apply(write).await.unwrap();
        let (_, id) = outcome.imported[0];
        let linked = db.store.service(id).await.unwrap().unwrap();
        assert_eq!(linked.service.last_calcom_sync, Some(now));
        assert_eq!(linked.service.updated_at, Some(now));
        let baseline = linked
            .baseline
            .expect("the baseline written with the import");
        assert_eq!(baseline.agreed_at, Some(now));
    }
);

backend_tests!(imports_store_exact_values, |db| async move {
    let now = at("2024-05-01 10:00:00");
    let emoji = values("Corte ✂️ 💇‍♀️ & barba", 45, eur(1_234_567_899));
    let rtl = BusinessValues {
        description: Some("قص الشعر مع تصفيف — שיער 🧔".into()),
        is_online: false,
        ..values(
            "تصفيف الشعر",
            60,
            Money::new(1, Currency::parse("usd").unwrap()),
        )
    };
    let mut write = AccountWrite::new("acme", now);
    write.imports = vec![import(3, 301, emoji.clone()), import(3, 302, rtl.clone())];
    let outcome = db.store.apply(write).await.unwrap();
    assert_eq!(outcome.imported.len(), 2);
    let id_of = |et: i64| outcome.imported.iter().find(|(e, _)| e.0 == et).unwrap().1;

    assert_eq!(business(&db, id_of(301)).await, emoji);
    assert_eq!(business(&db, id_of(302)).await, rtl);
    let raw = db.raw_service(id_of(301)).await;
    assert_eq!(raw.price, "12345678.99");
    assert_eq!(raw.name, "Corte ✂️ 💇‍♀️ & barba");
    assert_eq!(raw.description, None);
    assert_eq!(raw.company_id, 3);
    assert_eq!(raw.calcom_event_type_id, Some(301));
    assert_eq!(raw.sync_status, "synced");
    assert_eq!(raw.last_calcom_sync, Some(now));
    assert_eq!(raw.created_at, Some(now));
    assert_eq!(raw.updated_at, Some(now));
    assert!(!raw.composite);
    let raw = db.raw_service(id_of(302)).await;
    assert_eq!(raw.price, "0.01");
    assert_eq!(raw.currency, "USD");
    assert_eq!(
        raw.description.as_deref(),
        Some("قص الشعر مع تصفيف — שיער 🧔")
    );
});

backend_tests!(prices_read_back_as_exact_hundredths, |db| async move {
    for (i, cents) in [0_i64, 1, 10, 99, 4550, 1_234_567_899, 9_999_999_999]
        .into_iter()
        .enumerate()
    {
        let id = db
            .insert_service(
                &PlatformService::new(1, &format!("p{i}"))
                    .price(cents, "EUR")
                    .event_type(900 + i as i64),
            )
            .await;
        assert_eq!(
            business(&db, id).await.price,
            eur(cents),
            "{cents} hundredths"
        );
    }
});

// ---------------------------------------------------------------- status writes

backend_tests!(metadata_keeps_pending_rows_pending, |db| async move {
    let pending = db
        .insert_service(
            &PlatformService::new(1, "Edited")
                .event_type(1)
                .status("pending"),
        )
        .await;
    let synced = db
        .insert_service(
            &PlatformService::new(1, "Quiet")
                .event_type(2)
                .status("synced"),
        )
        .await;
    let before = (
        db.raw_service(pending).await.business(),
        db.raw_service(synced).await.business(),
    );
    let now = at("2024-05-02 08:30:00");

    let mut write = AccountWrite::new("acme", now);
    write.metadata = [pending, synced]
        .into_iter()
        .map(|id| MetadataUpdate {
            id,
            status: SyncStatus::Error,
            error: Some("Cal.com said 500".into()),
        })
        .collect();
    db.store.apply(write).await.unwrap();

    let (p, s) = (db.raw_service(pending).await, db.raw_service(synced).await);
    assert_eq!(p.sync_status, "pending");
    assert_eq!(s.sync_status, "error");
    for row in [&p, &s] {
        assert_eq!(row.sync_error.as_deref(), Some("Cal.com said 500"));
        assert_eq!(row.last_calcom_sync, Some(now));
    }
    assert_eq!(
        (p.business(), s.business()),
        before,
        "business columns untouched"
    );

    let mut write = AccountWrite::new("acme", now);
    write.metadata = vec![MetadataUpdate {
        id: synced,
        status: SyncStatus::Synced,
        error: None,
    }];
    db.store.apply(write).await.unwrap();
    let s = db.raw_service(synced).await;
    assert_eq!((s.sync_status.as_str(), s.sync_error), ("synced", None));
});

backend_tests!(
    confirmations_apply_only_while_the_row_is_unchanged,
    |db| async move {
        let pushed = db
            .insert_service(
                &PlatformService::new(1, "Cut")
                    .duration(45)
                    .price(3000, "EUR")
                    .event_type(1)
                    .status("pending"),
            )
            .await;
        let edited = db
            .insert_service(
                &PlatformService::new(1, "Colour")
                    .duration(90)
                    .event_type(2)
                    .status("pending"),
            )
            .await;
        // Stored as '' and lower-case currency: still equal to what was read.
        let loose = db
            .insert_service(
                &PlatformService::new(1, "Beard")
                    .description("")
                    .price(1500, "eur")
                    .active(false)
                    .online(false)
                    .event_type(3)
                    .status("pending"),
            )
            .await;
        let snapshot = [
            business(&db, pushed).await,
            business(&db, edited).await,
            business(&db, loose).await,
        ];
        assert_eq!(snapshot[2].description, None);
        assert_eq!(snapshot[2].price, eur(1500));

        // The platform edits one row after the pass read it.
        db.exec(&format!(
            "UPDATE services SET name = 'Colour & gloss' WHERE id = {}",
            edited.0
        ))
        .await;
        let now = at("2024-05-03 09:00:00");
        let mut write = AccountWrite::new("acme", now);
        write.confirmations = [pushed, edited, loose]
            .into_iter()
            .zip(snapshot)
            .map(|(id, expected)| Confirmation { id, expected })
            .collect();
        let outcome = db.store.apply(write).await.unwrap();

        assert_eq!((outcome.confirmed, outcome.confirmation_conflicts), (2, 1));
        for id in [pushed, loose] {
            let row = db.raw_service(id).await;
            assert_eq!(
                (
                    row.sync_status.as_str(),
                    row.sync_error,
                    row.last_calcom_sync
                ),
                ("synced", None, Some(now))
            );
        }
        let row = db.raw_service(edited).await;
        assert_eq!(
            row.sync_status, "pending",
            "the platform's edit still needs a push"
        );
        assert_eq!(row.name, "Colour & gloss");
        assert_eq!(row.last_calcom_sync, None);
    }
);

backend_tests!(
    confirmations_notice_case_only_and_emoji_edits,
    |db| async move {
        let id = db
            .insert_service(
                &PlatformService::new(1, "Corte 💇")
                    .event_type(1)
                    .status("pending"),
            )
            .await;
        let expected = business(&db, id).await;
        db.exec(&format!(
            "UPDATE services SET name = 'CORTE 💇' WHERE id = {}",
            id.0
        ))
        .await;
        let mut write = AccountWrite::new("acme", at("2024-05-03 09:00:00"));
        write.confirmations = vec![Confirmation { id, expected }];
        let outcome = db.store.apply(write).await.unwrap();
        assert_eq!((outcome.confirmed, outcome.confirmation_conflicts), (0, 1));
    }
);

backend_tests!(
    overwrites_write_only_granted_fields_guarded_by_expected_values,
    |db| async move {
        let clean = db
            .insert_service(
                &PlatformService::new(1, "Massage")
                    .duration(60)
                    .price(7000, "EUR")
                    .event_type(1)
                    .status("synced"),
            )
            .await;
        let pending = db
            .insert_service(
                &PlatformService::new(1, "Nails")
                    .duration(30)
                    .event_type(2)
                    .status("pending"),
            )
            .await;
        let edited = db
            .insert_service(
                &PlatformService::new(1, "Brows")
                    .duration(20)
                    .event_type(3)
                    .status("synced"),
            )
            .await;
        let expected: Vec<BusinessValues> = [
            business(&db, clean).await,
            business(&db, pending).await,
            business(&db, edited).await,
        ]
        .into();
        db.exec(&format!(
            "UPDATE services SET duration_minutes = 25 WHERE id = {}",
            edited.0
        ))
        .await;
        let untouched = (db.raw_service(pending).await, db.raw_service(edited).await);

        let calcom = BusinessValues {
            description: Some("Deep tissue 🌿".into()),
            is_online: false,
            ..values("Massage (Cal.com)", 75, eur(1_234_567_899))
        };
        let et = EventType {
            id: EventTypeId(1),
            team_id: None,
            title: calcom.name.clone(),
            slug: "massage".into(),
            description: calcom.description.clone().unwrap_or_default(),
            length: Minutes::new(75).unwrap(),
            length_options: None,
            hidden: true,
            price: calcom.price,
        };
        let now = at("2024-05-04 12:00:00");
        // Cal.com owns every field for `clean` and `edited`, only the duration for
        // `pending`: the grants decide what each row's write may change.
        let all = Ownership::all(Owner::Calcom);
        let mut duration_only = Ownership::default();
        duration_only.set(Field::DurationMinutes, Owner::Calcom);
        let mut write = AccountWrite::new("acme", now);
        for ((id, expected), owners) in [clean, pending, edited]
            .into_iter()
            .zip(expected.clone())
            .zip([all, duration_only, all])
        {
            let mut o = Overwrite::new(id, expected);
            for f in Field::ALL {
                if let Some(grant) = owners.grant(f) {
                    o.take(&grant, &et);
                }
            }
            write.overwrites.push(o);
        }
        let outcome = db.store.apply(write).await.unwrap();

        assert_eq!(outcome.overwritten, 2, "clean and pending; edited changed");
        assert_eq!(business(&db, clean).await, calcom);
        let row = db.raw_service(clean).await;
        assert_eq!(
            (row.price.as_str(), row.sync_status.as_str(), row.updated_at),
            ("12345678.99", "synced", Some(now))
        );
        // Only the granted duration changed; the row stays pending (its own edit
        // still waits for its push).
        let after = business(&db, pending).await;
        assert_eq!(
            after,
            BusinessValues {
                duration_minutes: 75,
                ..expected[1].clone()
            }
        );
        assert_eq!(db.raw_service(pending).await.sync_status, "pending");
        assert_ne!(db.raw_service(pending).await, untouched.0);
        assert_eq!(db.raw_service(edited).await, untouched.1);
    }
);

backend_tests!(
    an_all_or_nothing_write_rolls_back_when_a_guard_fails,
    |db| async move {
        let a = db
            .insert_service(
                &PlatformService::new(1, "Massage")
                    .duration(60)
                    .event_type(1),
            )
            .await;
        let b = db
            .insert_service(&PlatformService::new(1, "Nails").duration(30).event_type(2))
            .await;
        let expected = [business(&db, a).await, business(&db, b).await];
        db.exec(&format!(
            "UPDATE services SET duration_minutes = 25 WHERE id = {}",
            b.0
        ))
        .await;
        let et = EventType {
            id: EventTypeId(1),
            team_id: None,
            title: "Massage (Cal.com)".into(),
            slug: "m".into(),
            description: String::new(),
            length: Minutes::new(90).unwrap(),
            length_options: None,
            hidden: false,
            price: eur(0),
        };
        let owners = Ownership::all(Owner::Calcom);
        let mut write = AccountWrite::new("acme", at("2024-05-04 12:00:00"));
        for (id, expected) in [a, b].into_iter().zip(expected.clone()) {
            let mut o = Overwrite::new(id, expected);
            o.take(&owners.grant(Field::Name).unwrap(), &et);
            write.overwrites.push(o);
        }
        write.all_overwrites_or_nothing = true;
        write.drift_resolutions.push(DriftResolution {
            service_id: a,
            field: Field::Name,
            resolution: Resolution::Adopted,
        });
        let outcome = db.store.apply(write).await.unwrap();

        assert!(outcome.rolled_back);
        assert_eq!(business(&db, a).await, expected[0], "nothing was written");
    }
);

// ---------------------------------------------------------------- drift ledger

fn seen(service: ServiceId, field: Field, calcom: &str) -> DriftObservation {
    DriftObservation {
        service_id: service,
        event_type_id: EventTypeId(500 + service.0),
        field,
        origin: Origin::CalcomEdit,
        platform_value: "60".into(),
        calcom_value: calcom.into(),
        baseline_value: None,
        closed: None,
        intent: None,
    }
}

backend_tests!(drift_entries_open_count_and_close, |db| async move {
    let a = ServiceId(10);
    let b = ServiceId(4);
    let t1 = at("2024-06-01 10:00:00");
    let t2 = at("2024-06-01 11:00:00");
    let t3 = at("2024-06-01 12:00:00");
    let t4 = at("2024-06-01 13:00:00");

    let mut w = AccountWrite::new("acme", t1);
    w.drift_upserts = vec![
        seen(a, Field::DurationMinutes, "45"),
        seen(a, Field::Name, "x"),
        seen(b, Field::Price, "1.00 EUR"),
    ];
    db.store.apply(w).await.unwrap();
    let mut w = AccountWrite::new("acme", t2);
    w.drift_upserts = vec![seen(a, Field::DurationMinutes, "50")];
    db.store.apply(w).await.unwrap();

    let open = db.store.open_drift(Some("acme")).await.unwrap();
    let keys: Vec<(i64, Field)> = open.iter().map(|d| (d.service_id.0, d.field)).collect();
    assert_eq!(
        keys,
        [
            (4, Field::Price),
            (10, Field::Name),
            (10, Field::DurationMinutes)
        ]
    );
    let duration = &open[2];
    assert_eq!(
        (
            duration.times_seen,
            duration.first_seen_at,
            duration.last_seen_at
        ),
        (2, t1, t2)
    );
    assert_eq!(
        (
            duration.platform_value.as_str(),
            duration.calcom_value.as_str()
        ),
        ("60", "50")
    );
    assert_eq!(duration.calcom_event_type_id, EventTypeId(510));
    assert!(db.store.open_drift(Some("other")).await.unwrap().is_empty());
    assert_eq!(db.store.open_drift(None).await.unwrap().len(), 3);

    let mut w = AccountWrite::new("acme", t3);
    w.drift_resolutions = vec![
        DriftResolution {
            service_id: a,
            field: Field::DurationMinutes,
            resolution: Resolution::Agreed,
        },
        DriftResolution {
            service_id: b,
            field: Field::Price,
            resolution: Resolution::Orphaned,
        },
    ];
    db.store.apply(w).await.unwrap();
    let open = db.store.drift_for_service(a).await.unwrap();
    assert_eq!(
        open.iter().map(|d| d.field).collect::<Vec<_>>(),
        [Field::Name]
    );

    // Seen again after it was resolved: a new entry, history kept.
    let mut w = AccountWrite::new("acme", t4);
    w.drift_upserts = vec![seen(a, Field::DurationMinutes, "55")];
    db.store.apply(w).await.unwrap();
    let open = db.store.drift_for_service(a).await.unwrap();
    let again = open
        .iter()
        .find(|d| d.field == Field::DurationMinutes)
        .unwrap();
    assert_eq!((again.times_seen, again.first_seen_at), (1, t4));
    let history = db.store.drift_history(a).await.unwrap();
    let durations: Vec<_> = history
        .iter()
        .filter(|d| d.entry.field == Field::DurationMinutes)
        .collect();
    assert_eq!(durations.len(), 2);
    assert_eq!(
        (durations[0].resolution, durations[0].resolved_at),
        (Some(Resolution::Agreed), Some(t3))
    );
    assert_eq!(durations[0].entry.times_seen, 2);
    assert_eq!(
        (durations[1].resolution, durations[1].resolved_at),
        (None, None)
    );
});

// ---------------------------------------------------------------- registry and scope

backend_tests!(registry_upserts_follow_the_event_type, |db| async move {
    let id = db
        .insert_service(&PlatformService::new(1, "Cut").event_type(77))
        .await;
    assert_eq!(db.store.service(id).await.unwrap().unwrap().registry, None);

    let entry = |account: &str, team: Option<i64>| RegistryEntry {
        event_type_id: EventTypeId(77),
        account: account.into(),
        team_id: team.map(TeamId),
        gone_at: None,
    };
    let mut w = AccountWrite::new("acme", at("2024-06-01 10:00:00"));
    w.registry = vec![entry("acme", None)];
    db.store.apply(w).await.unwrap();
    assert_eq!(
        db.store.service(id).await.unwrap().unwrap().registry,
        Some(entry("acme", None))
    );

    let mut w = AccountWrite::new("salon-team", at("2024-06-02 10:00:00"));
    w.registry = vec![entry("salon-team", Some(5))];
    db.store.apply(w).await.unwrap();
    assert_eq!(
        db.store.service(id).await.unwrap().unwrap().registry,
        Some(entry("salon-team", Some(5)))
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM calsync_event_types").await,
        1
    );
});

backend_tests!(
    loading_an_account_reads_listed_and_scoped_services,
    |db| async move {
        let s = |company: i64, name: &str| PlatformService::new(company, name);
        let listed_own = db
            .insert_service(&s(1, "listed, registered here").event_type(11))
            .await;
        let listed_foreign = db
            .insert_service(&s(2, "listed, other company").event_type(21))
            .await;
        let registered = db
            .insert_service(&s(1, "registered here, not listed").event_type(31))
            .await;
        let unregistered = db
            .insert_service(&s(1, "own company, never registered").event_type(41))
            .await;
        db.insert_service(&s(1, "registered to another account").event_type(51))
            .await;
        db.insert_service(&s(1, "not linked")).await;
        db.insert_service(&s(3, "other company, never registered").event_type(71))
            .await;
        let reg = |id: i64, account: &str| RegistryEntry {
            event_type_id: EventTypeId(id),
            account: account.into(),
            team_id: None,
            gone_at: None,
        };
        let mut w = AccountWrite::new("acme", at("2024-06-01 10:00:00"));
        w.registry = vec![reg(11, "acme"), reg(31, "acme"), reg(51, "other")];
        w.drift_upserts = vec![seen(registered, Field::Name, "x")];
        db.store.apply(w).await.unwrap();
        let mut w = AccountWrite::new("other", at("2024-06-01 10:00:00"));
        w.drift_upserts = vec![seen(listed_foreign, Field::Name, "y")];
        db.store.apply(w).await.unwrap();

        let listed = [EventTypeId(11), EventTypeId(21), EventTypeId(999)];
        let snapshot = db
            .store
            .load_account(AccountScope {
                account: "acme",
                company_id: 1,
                listed: &listed,
            })
            .await
            .unwrap();

        let ids: Vec<ServiceId> = snapshot.services.iter().map(|l| l.service.id).collect();
        assert_eq!(ids, [listed_own, listed_foreign, registered, unregistered]);
        assert_eq!(
            snapshot.services[0]
                .registry
                .as_ref()
                .map(|r| r.account.as_str()),
            Some("acme")
        );
        assert_eq!(snapshot.services[1].registry, None);
        assert_eq!(snapshot.open_drift.len(), 1);
        assert_eq!(snapshot.open_drift[0].service_id, registered);
    }
);

backend_tests!(unknown_status_words_read_as_never, |db| async move {
    let id = db
        .insert_service(
            &PlatformService::new(1, "Odd")
                .event_type(1)
                .status("archived"),
        )
        .await;
    assert_eq!(
        db.store
            .service(id)
            .await
            .unwrap()
            .unwrap()
            .service
            .sync_status,
        SyncStatus::Never
    );
    db.insert_service(&PlatformService::new(1, "Never").event_type(2))
        .await;
    db.insert_service(
        &PlatformService::new(1, "Waiting")
            .event_type(3)
            .status("pending"),
    )
    .await;
    db.insert_service(
        &PlatformService::new(2, "Elsewhere")
            .event_type(4)
            .status("synced"),
    )
    .await;
    db.insert_service(&PlatformService::new(9, "Not asked").event_type(5))
        .await;
    let counts = db.store.status_counts(&[1, 2]).await.unwrap();
    assert_eq!(
        counts,
        [
            (1, SyncStatus::Pending, 1),
            (1, SyncStatus::Never, 2),
            (2, SyncStatus::Synced, 1)
        ]
    );
});

// ---------------------------------------------------------------- journal

backend_tests!(runs_are_journaled_newest_first, |db| async move {
    let run = |account: &str, result: &'static str, minute: u32| RunRecord {
        account: account.into(),
        started_at: at(&format!("2024-06-01 10:{minute:02}:00")),
        finished_at: at(&format!("2024-06-01 10:{minute:02}:30")),
        result,
        summary: serde_json::json!({ "imported": minute, "note": "ünïcode ✓" }),
        error: (result == "failure").then(|| "Cal.com unreachable".to_owned()),
    };
    db.store
        .record_run(&run("acme", "failure", 1))
        .await
        .unwrap();
    let mut w = AccountWrite::new("acme", at("2024-06-01 10:02:30"));
    w.run = Some(run("acme", "success", 2));
    db.store.apply(w).await.unwrap();

    let runs = db.store.last_runs(10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].result.as_str(), runs[0].error.as_deref()),
        ("success", None)
    );
    assert_eq!(
        runs[0].summary,
        serde_json::json!({ "imported": 2, "note": "ünïcode ✓" })
    );
    assert_eq!(runs[1].error.as_deref(), Some("Cal.com unreachable"));
    assert_eq!(runs[1].started_at, at("2024-06-01 10:01:00"));
    assert_eq!(db.store.last_runs(1).await.unwrap().len(), 1);
});

// ---------------------------------------------------------------- batching

/// Upper bound on statements for one large pass; the point is "constant", not
/// "per row".
const BOUND: u64 = 20;

backend_tests!(
    statements_stay_bounded_for_two_thousand_services,
    |db| async move {
        const N: i64 = 2_000;
        let store = &db.store;
        let mut w = AccountWrite::new("acme", at("2024-07-01 10:00:00"));
        w.imports = (1..=N)
            .map(|i| import(1, i, values(&format!("Service {i} ✂️"), 30, eur(i * 100))))
            .collect();
        let before = store.statements();
        assert_eq!(store.apply(w).await.unwrap().imported.len(), N as usize);
        let imports = store.statements() - before;

        let listed: Vec<EventTypeId> = (1..=N).map(EventTypeId).collect();
        let before = store.statements();
        let snapshot = store
            .load_account(AccountScope {
                account: "acme",
                company_id: 1,
                listed: &listed,
            })
            .await
            .unwrap();
        let load = store.statements() - before;
        assert_eq!(snapshot.services.len(), N as usize);

        let mut w = AccountWrite::new("acme", at("2024-07-01 11:00:00"));
        w.metadata = snapshot
            .services
            .iter()
            .map(|l| MetadataUpdate {
                id: l.service.id,
                status: SyncStatus::Synced,
                error: None,
            })
            .collect();
        w.drift_upserts = snapshot
            .services
            .iter()
            .map(|l| DriftObservation {
                service_id: l.service.id,
                event_type_id: l.service.calcom_event_type_id.unwrap(),
                field: Field::DurationMinutes,
                origin: Origin::CalcomEdit,
                platform_value: "30".into(),
                calcom_value: "45".into(),
                baseline_value: None,
                closed: None,
                intent: None,
            })
            .collect();
        let before = store.statements();
        store.apply(w).await.unwrap();
        let metadata_and_drift = store.statements() - before;

        let mut w = AccountWrite::new("acme", at("2024-07-01 12:00:00"));
        w.confirmations = snapshot
            .services
            .iter()
            .map(|l| Confirmation {
                id: l.service.id,
                expected: l.service.values.clone(),
            })
            .collect();
        w.drift_resolutions = snapshot
            .services
            .iter()
            .map(|l| DriftResolution {
                service_id: l.service.id,
                field: Field::DurationMinutes,
                resolution: Resolution::Agreed,
            })
            .collect();
        let before = store.statements();
        let outcome = store.apply(w).await.unwrap();
        let confirm_and_resolve = store.statements() - before;
        assert_eq!(outcome.confirmed, N as u64);

        eprintln!(
            "{}: statements for {N} rows: import {imports}, load {load}, metadata+drift {metadata_and_drift}, confirm+resolve {confirm_and_resolve}",
            db.backend
        );
        for (what, count) in [
            ("import", imports),
            ("load", load),
            ("metadata+drift", metadata_and_drift),
            ("confirm+resolve", confirm_and_resolve),
        ] {
            assert!(
                count <= BOUND,
                "{what} took {count} statements for {N} rows"
            );
        }
        assert!(store.open_drift(Some("acme")).await.unwrap().is_empty());
        assert_eq!(
            db.count("SELECT COUNT(*) FROM calsync_drift WHERE times_seen = 1")
                .await,
            N
        );
    }
);

// ---------------------------------------------------------------- connecting

#[tokio::test]
async fn connect_errors_name_backend_and_target_but_no_credentials() {
    for (url, backend, target) in [
        (
            "postgres://calsync:hunter2@127.0.0.1:1/shop",
            "PostgreSQL",
            "127.0.0.1:1/shop",
        ),
        (
            "mariadb://calsync:hunter2@127.0.0.1:1/shop",
            "MySQL/MariaDB",
            "127.0.0.1:1/shop",
        ),
        // Reachable servers that refuse: an unknown database, an unknown user.
        (
            "postgres://postgres:hunter2@127.0.0.1:5432/calsync_no_such_db",
            "PostgreSQL",
            "127.0.0.1:5432/calsync_no_such_db",
        ),
        (
            "mysql://calsync_nobody:hunter2@127.0.0.1:3306/test",
            "MySQL/MariaDB",
            "127.0.0.1:3306/test",
        ),
    ] {
        let err = Store::connect(url, 1).await.unwrap_err();
        let message = err.to_string();
        eprintln!("{message}");
        assert_eq!(err.kind(), "connect", "{message}");
        assert!(
            message.contains(backend) && message.contains(target),
            "{message}"
        );
        assert!(
            !message.contains("hunter2") && !format!("{err:?}").contains("hunter2"),
            "{message}"
        );
    }
    let err = Store::connect("oracle://scott:tiger@db/orcl", 1)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "invalid_url");
    assert!(!err.to_string().contains("tiger"));
}

#[tokio::test]
async fn each_scheme_selects_its_backend() {
    for backend in TestBackend::ALL {
        let db = crate::support::db::fresh(backend).await;
        let expected = match backend {
            TestBackend::Sqlite => Backend::Sqlite,
            TestBackend::Postgres => Backend::Postgres,
            TestBackend::MariaDb => Backend::MySql,
        };
        assert_eq!(db.store.backend(), expected);
        db.store.ping().await.unwrap();
    }
    let url = {
        let db = crate::support::db::fresh(TestBackend::MariaDb).await;
        let store = Store::connect(&db.url.replacen("mysql://", "mariadb://", 1), 1)
            .await
            .unwrap();
        store.ping().await.unwrap();
        db.url.clone()
    };
    assert!(url.starts_with("mysql://"));
}

backend_tests!(
    platform_edits_mark_pending_and_pages_list_services,
    |db| async move {
        let cut = db
            .insert_service(
                &PlatformService::new(1, "Cut")
                    .duration(30)
                    .event_type(1)
                    .status("synced"),
            )
            .await;
        let nails = db
            .insert_service(&PlatformService::new(1, "Nails").event_type(2))
            .await;

        assert!(
            db.store
                .edit_as_platform(cut, Some("Cut & style"), None)
                .await
                .unwrap()
        );
        assert!(
            db.store
                .edit_as_platform(nails, None, Some(50))
                .await
                .unwrap()
        );
        assert!(
            !db.store
                .edit_as_platform(ServiceId(999), Some("ghost"), None)
                .await
                .unwrap()
        );

        let page = db.store.services_page(0, 10).await.unwrap();
        let seen: Vec<(&str, i32, SyncStatus)> = page
            .iter()
            .map(|l| {
                (
                    l.service.values.name.as_str(),
                    l.service.values.duration_minutes,
                    l.service.sync_status,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("Cut & style", 30, SyncStatus::Pending),
                ("Nails", 50, SyncStatus::Pending)
            ]
        );
        let second: Vec<ServiceId> = db
            .store
            .services_page(1, 10)
            .await
            .unwrap()
            .iter()
            .map(|l| l.service.id)
            .collect();
        assert_eq!(second, [nails]);
    }
);
