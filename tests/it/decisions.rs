//! Operators decide, on every backend: per-field ownership (`calcom` takes
//! Cal.com's edits in, `ignore` never compares), adopting and acknowledging drift,
//! push backoff and the needs-human state, and the blast-radius guard with its
//! approval.

use calsync::domain::{Backoff, Field, Origin, Owner, Ownership, Resolution};
use calsync::reconcile::report::Item;
use calsync::reconcile::{DecidedBy, DecisionError};
use calsync::simulate::{Fault, FaultKind};
use calsync::store::{DecisionKind, DriftState};
use serde_json::json;

use crate::support::app::{ACCOUNT, TestApp, haircut, scenario};
use crate::support::db::backend_tests;

fn owning(field: Field, owner: Owner) -> Ownership {
    let mut o = Ownership::default();
    o.set(field, owner);
    o
}

fn tester(note: &str) -> DecidedBy {
    DecidedBy {
        by: "tester".into(),
        note: Some(note.into()),
    }
}

fn gauge(app: &TestApp, series: &str) -> f64 {
    app.metric(series).unwrap_or(0.0)
}

// ---------------------------------------------------------------- ownership

scenario!(
    a_field_calcom_owns_takes_calcom_edits_in_and_keeps_the_old_value,
    |app| async move {
        app.set_policy(|p| p.ownership = owning(Field::DurationMinutes, Owner::Calcom));
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_calcom(
            et,
            json!({"lengthInMinutes": 45, "title": "Haircut deluxe"}),
        );

        let report = app.sync_once().await;

        assert!(!report.has_failures(), "{report:#?}");
        let s = app.service(id).await;
        assert_eq!(s.duration_minutes, 45, "Cal.com owns the duration");
        assert_eq!(s.name, "Haircut", "the platform still owns the name");
        assert_eq!(app.overwrites(Field::DurationMinutes), 1);
        assert_eq!(app.protections(Field::DurationMinutes), 0);
        assert_eq!(app.protections(Field::Name), 1);
        let history = app.drift_history(id).await;
        let overwritten = history
            .iter()
            .find(|r| r.entry.field == Field::DurationMinutes)
            .expect("the old platform value is in the ledger");
        assert_eq!(
            (
                overwritten.entry.platform_value.as_str(),
                overwritten.entry.calcom_value.as_str(),
                overwritten.resolution
            ),
            ("30", "45", Some(Resolution::Overwritten))
        );
        assert!(app.logs().contains("OVERWRITE"), "{}", app.logs());
        // The next pass finds the duration in agreement.
        let again = app.sync_once().await;
        assert_eq!(only(&again).counts.overwrites, 0, "{again:#?}");
    }
);

scenario!(
    a_platform_edit_of_a_field_calcom_owns_is_recorded_not_pushed,
    |app| async move {
        app.set_policy(|p| p.ownership = owning(Field::DurationMinutes, Owner::Calcom));
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_platform(id, "Haircut", 50).await;

        let report = app.sync_once().await;

        assert!(!report.has_failures(), "{report:#?}");
        assert!(app.calcom_patches().is_empty(), "nothing is pushed");
        assert_eq!(app.calcom_event_type(et)["lengthInMinutes"], 30);
        let s = app.service(id).await;
        assert_eq!(s.duration_minutes, 50, "the platform's value is not lost");
        assert!(
            s.sync_error
                .as_deref()
                .is_some_and(|e| e.contains("which Cal.com owns")),
            "{s:?}"
        );
        let open = app.open_drift().await;
        assert_eq!(open.len(), 1, "{open:#?}");
        assert_eq!(
            (open[0].field, open[0].origin),
            (Field::DurationMinutes, Origin::PlatformEdit)
        );
        assert_eq!(app.protections(Field::DurationMinutes), 0);
    }
);

scenario!(
    an_ignored_field_is_never_compared_pushed_or_written,
    |app| async move {
        app.set_policy(|p| p.ownership = owning(Field::Name, Owner::Ignore));
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_calcom(et, json!({"title": "Cut (Cal.com)"}));
        app.edit_in_platform(id, "Cut (platform)", 30).await;

        let report = app.sync_once().await;

        assert!(!report.has_failures(), "{report:#?}");
        assert!(
            app.calcom_patches().is_empty(),
            "{:?}",
            app.calcom_patches()
        );
        assert_eq!(app.service(id).await.name, "Cut (platform)");
        assert_eq!(app.calcom_event_type(et)["title"], "Cut (Cal.com)");
        assert!(app.open_drift().await.is_empty());
        assert_eq!(app.protections(Field::Name), 0);
        assert_eq!(app.service(id).await.sync_status, "synced");
    }
);

// ---------------------------------------------------------------- adopt

scenario!(
    adopting_takes_calcom_values_into_the_platform_once,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_calcom(
            et,
            json!({"lengthInMinutes": 45, "title": "Haircut deluxe"}),
        );
        app.sync_once().await;
        assert_eq!(app.open_drift().await.len(), 2);

        let done = app
            .app
            .reconciler
            .adopt(
                &app.app.settings.accounts,
                app.app.settings.policy,
                id,
                &[Field::DurationMinutes],
                &tester("the salon lengthened it on purpose"),
            )
            .await
            .expect("adopting an open entry");

        assert_eq!(done.fields, [Field::DurationMinutes]);
        let s = app.service(id).await;
        assert_eq!((s.duration_minutes, s.name.as_str()), (45, "Haircut"));
        let closed = app.ledger(DriftState::Closed).await;
        assert_eq!(closed.len(), 1, "{closed:#?}");
        assert_eq!(closed[0].resolution, Some(Resolution::Adopted));
        let open = app.open_drift().await;
        assert_eq!(open.len(), 1, "the name stays open: {open:#?}");
        let decisions = app.db.store.decisions(Some(id), None, 10).await.unwrap();
        assert_eq!(decisions.len(), 1);
        assert_eq!(
            (
                decisions[0].kind,
                decisions[0].decided_by.as_str(),
                decisions[0].note.as_deref()
            ),
            (
                DecisionKind::Adopt,
                "tester",
                Some("the salon lengthened it on purpose")
            )
        );
        assert_eq!(gauge(&app, "calsync_decisions_total{kind=\"adopt\"}"), 1.0);

        // The next pass agrees on the duration: no push, no new entry.
        let report = app.sync_once().await;
        assert!(app.calcom_patches().is_empty(), "{report:#?}");
        assert_eq!(app.calcom_event_type(et)["lengthInMinutes"], 45);
        assert_eq!(app.open_drift().await.len(), 1);
    }
);

scenario!(
    adopting_is_refused_when_either_side_changed_since_the_entry,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_calcom(et, json!({"lengthInMinutes": 45}));
        app.sync_once().await;
        let adopt = |fields: Vec<Field>| {
            let app = &app;
            async move {
                app.app
                    .reconciler
                    .adopt(
                        &app.app.settings.accounts,
                        app.app.settings.policy,
                        id,
                        &fields,
                        &tester("check"),
                    )
                    .await
            }
        };

        app.edit_in_calcom(et, json!({"lengthInMinutes": 50}));
        let err = adopt(vec![]).await.expect_err("Cal.com changed");
        assert!(matches!(err, DecisionError::CalcomChanged { .. }), "{err}");
        assert!(err.to_string().contains("\"45\""), "{err}");

        app.edit_in_calcom(et, json!({"lengthInMinutes": 45}));
        app.edit_in_platform(id, "Haircut", 35).await;
        let err = adopt(vec![]).await.expect_err("the platform changed");
        assert!(
            matches!(err, DecisionError::PlatformChanged { .. }),
            "{err}"
        );

        let err = adopt(vec![Field::Price]).await.expect_err("no open entry");
        assert!(
            err.to_string()
                .contains("has no open drift entry for price"),
            "{err}"
        );
        assert_eq!(
            app.service(id).await.duration_minutes,
            35,
            "nothing changed"
        );
        assert!(app.ledger(DriftState::Closed).await.is_empty());
        assert!(
            app.db
                .store
                .decisions(None, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
);

// ---------------------------------------------------------------- acknowledge

scenario!(
    acknowledged_drift_leaves_the_gauges_until_calcom_changes_again,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_calcom(et, json!({"lengthInMinutes": 45}));
        app.sync_once().await;
        let series =
            format!("calsync_drift_fields{{account=\"{ACCOUNT}\",field=\"duration_minutes\"}}");
        assert_eq!(gauge(&app, &series), 1.0);

        let until = chrono::Utc::now().naive_utc() + chrono::Duration::hours(2);
        let r = &app.app.reconciler;
        r.acknowledge(id, &[], until, &tester("salon is testing 45 min"))
            .await
            .expect("acknowledging");
        app.sync_once().await;

        assert_eq!(gauge(&app, &series), 0.0, "acknowledged: out of the gauge");
        assert_eq!(
            gauge(
                &app,
                &format!("calsync_drift_acknowledged_fields{{account=\"{ACCOUNT}\"}}")
            ),
            1.0
        );
        let acked = app.ledger(DriftState::Acknowledged).await;
        assert_eq!(acked.len(), 1, "still open and visible");
        let ack = acked[0].entry.acknowledged.clone().unwrap();
        assert_eq!(
            (ack.by.as_str(), ack.note.as_str()),
            ("tester", "salon is testing 45 min")
        );
        assert_eq!(app.protections(Field::DurationMinutes), 1);

        // A new Cal.com value is a new edit: PROTECTION again, counted again.
        app.edit_in_calcom(et, json!({"lengthInMinutes": 50}));
        app.sync_once().await;
        assert_eq!(app.protections(Field::DurationMinutes), 2);
        assert_eq!(gauge(&app, &series), 1.0);
        assert!(app.ledger(DriftState::Acknowledged).await.is_empty());

        // Acknowledge again, then end it early.
        r.acknowledge(id, &[Field::DurationMinutes], until, &tester("again"))
            .await
            .unwrap();
        r.unacknowledge(id, &[], &tester("done testing"))
            .await
            .unwrap();
        app.sync_once().await;
        assert_eq!(gauge(&app, &series), 1.0);
        let kinds: Vec<DecisionKind> = app
            .db
            .store
            .decisions(Some(id), None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                DecisionKind::Unacknowledge,
                DecisionKind::Acknowledge,
                DecisionKind::Acknowledge
            ]
        );
    }
);

scenario!(
    an_acknowledgement_expires_and_bad_ones_are_refused,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_calcom(et, json!({"lengthInMinutes": 45}));
        app.sync_once().await;
        let r = &app.app.reconciler;
        let now = chrono::Utc::now().naive_utc();

        let past = r
            .acknowledge(id, &[], now - chrono::Duration::minutes(1), &tester("x"))
            .await
            .expect_err("in the past");
        assert!(matches!(past, DecisionError::UntilPast(_)), "{past}");
        let no_note = r
            .acknowledge(
                id,
                &[],
                now + chrono::Duration::hours(1),
                &DecidedBy {
                    by: "tester".into(),
                    note: None,
                },
            )
            .await
            .expect_err("a note is required");
        assert!(matches!(no_note, DecisionError::NoteMissing), "{no_note}");
        let not_open = r
            .acknowledge(
                id,
                &[Field::Name],
                now + chrono::Duration::hours(1),
                &tester("x"),
            )
            .await
            .expect_err("no open entry for the name");
        assert!(
            not_open
                .to_string()
                .contains("no open drift entry for name")
        );

        r.acknowledge(
            id,
            &[],
            now + chrono::Duration::seconds(2),
            &tester("short"),
        )
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        app.sync_once().await;
        assert_eq!(
            gauge(
                &app,
                &format!(
                    "calsync_drift_fields{{account=\"{ACCOUNT}\",field=\"duration_minutes\"}}"
                )
            ),
            1.0,
            "an expired acknowledgement counts again"
        );
        assert!(app.ledger(DriftState::Acknowledged).await.is_empty());
    }
);

// ---------------------------------------------------------------- backoff

fn patch_fault(status: u16) -> Fault {
    Fault {
        method: Some("PATCH".into()),
        path_prefix: None,
        api_key: None,
        kind: FaultKind::Status { status, body: None },
        times: 0,
    }
}

scenario!(
    a_refused_push_needs_a_human_and_is_not_sent_again,
    |app| async move {
        let (_et, id) = app.imported(haircut()).await;
        app.calcom.inject_fault(patch_fault(400));
        app.edit_in_platform(id, "Haircut", 50).await;

        let first = app.sync_once().await;
        assert_eq!(only(&first).push_failures, 1, "{first:#?}");
        for _ in 0..3 {
            app.sync_once().await;
        }

        assert_eq!(
            app.calcom_patches().len(),
            1,
            "a refused PATCH is sent once"
        );
        let s = app.service(id).await;
        assert_eq!(
            s.sync_status, "error",
            "a push that needs a human is an error"
        );
        assert_eq!(s.duration_minutes, 50, "the platform's edit is kept");
        let error = s.sync_error.unwrap_or_default();
        assert!(error.starts_with("needs a human:"), "{error}");
        assert!(error.contains("HTTP 400"), "{error}");
        assert_eq!(
            gauge(
                &app,
                &format!("calsync_push_needs_human{{account=\"{ACCOUNT}\"}}")
            ),
            1.0
        );
        assert!(app.logs().contains("PUSH NEEDS A HUMAN"), "{}", app.logs());
        let plan = app.plan().await;
        assert!(
            only(&plan).items.iter().any(|i| matches!(
                i,
                Item::Waiting {
                    needs_human: true,
                    ..
                }
            )),
            "{plan:#?}"
        );

        // A manual push (after the cause is fixed) resets it.
        app.calcom.clear_faults();
        app.push_service(id).await.expect("the manual push");
        app.sync_once().await;
        assert_eq!(app.service(id).await.sync_status, "synced");
        assert_eq!(
            gauge(
                &app,
                &format!("calsync_push_needs_human{{account=\"{ACCOUNT}\"}}")
            ),
            0.0
        );
    }
);

scenario!(
    a_failing_push_backs_off_then_gives_up_and_a_platform_change_starts_over,
    |app| async move {
        app.set_policy(|p| {
            p.backoff = Backoff {
                max_attempts: 2,
                initial_secs: 1,
                max_secs: 1,
            }
        });
        let (_et, id) = app.imported(haircut()).await;
        app.calcom.inject_fault(patch_fault(503));
        app.edit_in_platform(id, "Haircut", 50).await;

        app.sync_once().await;
        let after_first = app.calcom_patches().len();
        assert!(after_first >= 1);
        // At once: the backoff holds it.
        let held = app.sync_once().await;
        assert_eq!(app.calcom_patches().len(), after_first, "{held:#?}");
        assert_eq!(only(&held).counts.backoff, 1, "{held:#?}");
        assert!(
            app.service(id)
                .await
                .sync_error
                .is_some_and(|e| e.contains("attempt 1 of 2")),
        );
        // After the backoff: the second and last attempt.
        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
        app.sync_once().await;
        let after_second = app.calcom_patches().len();
        assert!(after_second > after_first);
        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
        app.sync_once().await;
        assert_eq!(app.calcom_patches().len(), after_second, "given up");
        assert!(
            app.service(id)
                .await
                .sync_error
                .is_some_and(|e| e.starts_with("needs a human:"))
        );

        // A platform change is new values: tried again, and it goes through.
        app.calcom.clear_faults();
        app.edit_in_platform(id, "Haircut", 55).await;
        app.sync_once().await;
        let s = app.service(id).await;
        assert_eq!((s.sync_status.as_str(), s.duration_minutes), ("synced", 55));
    }
);

// ---------------------------------------------------------------- the guard

backend_tests!(
    the_guard_holds_an_account_that_would_orphan_too_many_until_approved,
    |backend: TestBackend| async move {
        let app = TestApp::builder(backend).seed_event_types(10).spawn().await;
        let first = app.sync_once().await;
        assert_eq!(only(&first).imported, 10);
        let services = app.services().await;
        for s in &services[..3] {
            app.delete_in_calcom(s.calcom_event_type_id.unwrap());
        }

        let held = app.sync_once().await;

        let a = only(&held);
        assert_eq!(a.result, "held", "{held:#?}");
        assert!(held.has_failures(), "`once` exits 2 for a held account");
        let guard = a.guard.as_ref().expect("the guard's counts");
        assert_eq!((guard.linked, guard.orphans), (10, 3));
        assert!(
            app.services()
                .await
                .iter()
                .all(|s| s.sync_status == "synced"),
            "nothing was written"
        );
        assert_eq!(
            gauge(
                &app,
                &format!("calsync_guard_tripped_total{{account=\"{ACCOUNT}\",reason=\"orphans\"}}")
            ),
            1.0
        );
        assert!(app.logs().contains("GUARD:"), "{}", app.logs());
        let last = app.db.store.last_runs(1).await.unwrap();
        assert_eq!(last[0].result, "held");

        // Held again until an operator approves; then exactly one pass goes through.
        assert_eq!(only(&app.sync_once().await).result, "held");
        app.app
            .reconciler
            .approve(ACCOUNT, &tester("the salon closed three services"))
            .await
            .expect("approving a held account");
        let through = app.sync_once().await;
        assert_eq!(only(&through).result, "success", "{through:#?}");
        assert_eq!(only(&through).counts.orphans, 3);
        let orphaned = app
            .services()
            .await
            .into_iter()
            .filter(|s| s.sync_status == "error")
            .count();
        assert_eq!(orphaned, 3);
        let approvals = app
            .db
            .store
            .decisions(None, Some(ACCOUNT), 10)
            .await
            .unwrap();
        assert_eq!(approvals[0].kind, DecisionKind::Approve);
        assert!(approvals[0].consumed_at.is_some(), "the approval was used");

        // Not held any more: nothing to approve.
        let err = app
            .app
            .reconciler
            .approve(ACCOUNT, &tester("again"))
            .await
            .expect_err("not held");
        assert!(matches!(err, DecisionError::NotHeld { .. }), "{err}");
    }
);

backend_tests!(
    the_guard_holds_mass_overwrites,
    |backend: TestBackend| async move {
        let mut app = TestApp::builder(backend).seed_event_types(10).spawn().await;
        app.set_policy(|p| p.ownership = Ownership::all(Owner::Calcom));
        app.sync_once().await;
        let before = app.services().await;
        for s in &before[..3] {
            app.edit_in_calcom(
                s.calcom_event_type_id.unwrap(),
                json!({"lengthInMinutes": s.duration_minutes + 7}),
            );
        }

        let plan = app.plan().await;
        assert_eq!(
            only(&plan).guard.as_ref().map(|g| g.overwrites),
            Some(3),
            "plan says what the guard would do: {plan:#?}"
        );
        let held = app.sync_once().await;

        assert_eq!(only(&held).result, "held", "{held:#?}");
        assert_eq!(app.services().await, before, "nothing was written");
        assert_eq!(app.overwrites(Field::DurationMinutes), 0);
    }
);

fn only(report: &calsync::reconcile::PassReport) -> &calsync::reconcile::AccountReport {
    assert_eq!(report.accounts.len(), 1, "{report:#?}");
    &report.accounts[0]
}
