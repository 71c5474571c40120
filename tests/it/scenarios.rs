//! Reconcile scenarios on every backend: what a pass does with each kind of
//! difference between Cal.com and the platform's `services` table.
//!
//! Each `scenario!` becomes `<scenario>::{sqlite, postgres, mariadb}`, each with a
//! fresh database, simulator and [`TestApp`]. Arrange in Cal.com or the platform,
//! run a pass, assert on the platform's rows (read with plain SQL), Cal.com's state,
//! the drift ledger, the report, the metrics and the log.

use calsync::domain::{Field, Owner, Ownership, Resolution, ServiceId};
use calsync::reconcile::PassReport;
use calsync::reconcile::report::Item;
use serde_json::{Value, json};

use crate::support::app::{ACCOUNT, API_KEY, COMPANY, TestApp, haircut, scenario};
use crate::support::config::AccountSpec;
use crate::support::db::{PlatformService, TestBackend, backend_tests};

// ---------------------------------------------------------------- fixtures

/// Paid through Stripe (90.00 EUR), with a stale top-level price that must be
/// ignored because the Stripe app is enabled.
fn paid_massage() -> Value {
    json!({
        "title": "Deep-tissue massage",
        "slug": "deep-tissue",
        "lengthInMinutes": 60,
        "description": "Sixty minute session.",
        "price": 5000,
        "currency": "usd",
        "metadata": {"apps": {"stripe": {"enabled": true, "price": 9000, "currency": "eur"}}},
    })
}

/// The Cal.com edit of a paid event type's price (in minor units, EUR).
fn stripe_price(minor: i64) -> Value {
    json!({
        "price": minor,
        "currency": "eur",
        "metadata": {"apps": {"stripe": {"enabled": true, "price": minor, "currency": "eur"}}},
    })
}

fn merged(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Creates the event type in Cal.com and lets a pass import it.
fn only(report: &PassReport) -> &calsync::reconcile::AccountReport {
    assert_eq!(report.accounts.len(), 1, "{report:#?}");
    &report.accounts[0]
}

/// Every key anywhere in a JSON value, nested ones included.
fn keys(v: &Value) -> Vec<String> {
    match v {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(keys(v)))
            .collect(),
        Value::Array(items) => items.iter().flat_map(keys).collect(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------- imports

scenario!(new_event_type_is_imported_exactly_once, |app| async move {
    let massage = app.given_event_type(paid_massage());
    let staff_only = app.given_event_type(json!({
        "title": "Staff training", "slug": "staff-training", "lengthInMinutes": 90, "hidden": true,
    }));

    let first = app.sync_once().await;
    let second = app.sync_once().await;

    assert_eq!(only(&first).imported, 2, "{first:#?}");
    assert_eq!(only(&second).imported, 0, "{second:#?}");
    assert_eq!(only(&second).counts.imports, 0);
    assert_eq!(only(&second).counts.in_sync, 2);
    assert_eq!(app.services().await.len(), 2);
    assert_eq!(
        app.metric(&format!("calsync_imported_total{{account=\"{ACCOUNT}\"}}")),
        Some(2.0)
    );

    let s = app.service_for(massage).await;
    assert_eq!(s.company_id, COMPANY);
    assert_eq!(
        s.business(),
        (
            "Deep-tissue massage".into(),
            Some("Sixty minute session.".into()),
            60,
            "90.00".into(),
            "EUR".into(),
            true,
            true
        ),
        "values come from Cal.com, the price from the enabled Stripe app"
    );
    assert!(!s.composite);
    assert_eq!(s.sync_status, "synced");
    assert_eq!(s.sync_error, None);
    assert!(s.last_calcom_sync.is_some());

    let hidden = app.service_for(staff_only).await;
    assert_eq!(
        (hidden.is_active, hidden.is_online),
        (true, false),
        "hidden in Cal.com = not online"
    );
    assert_eq!(hidden.price, "0.00");
    assert!(app.calcom_patches().is_empty(), "an import pushes nothing");
});

// ---------------------------------------------------------------- in sync

scenario!(
    known_and_equal_event_type_gets_only_sync_metadata,
    |app| async move {
        let et = app.given_event_type(
            json!({"title": "Haircut", "slug": "haircut", "lengthInMinutes": 30}),
        );
        let id = app
            .db
            .insert_service(
                &PlatformService::new(COMPANY, "Haircut")
                    .duration(30)
                    .event_type(et)
                    .status("error"),
            )
            .await;
        app.db
            .exec(&format!(
                "UPDATE services SET sync_error = 'an old problem' WHERE id = {}",
                id.0
            ))
            .await;
        let before = app.service(id).await;

        let report = app.sync_once().await;

        let after = app.service(id).await;
        assert_eq!(after.business(), before.business());
        assert_eq!(
            after.updated_at, before.updated_at,
            "updated_at belongs to the platform"
        );
        assert_eq!(after.created_at, before.created_at);
        assert_eq!(after.sync_status, "synced");
        assert_eq!(after.sync_error, None);
        assert!(before.last_calcom_sync.is_none() && after.last_calcom_sync.is_some());
        let account = only(&report);
        assert_eq!(
            (account.counts.in_sync, account.imported),
            (1, 0),
            "{report:#?}"
        );
        assert!(account.items.is_empty(), "{report:#?}");
        assert!(app.open_drift().await.is_empty());
        assert!(app.calcom_patches().is_empty());

        let again = app.sync_once().await;
        assert!(only(&again).items.is_empty(), "{again:#?}");
        assert_eq!(app.service(id).await.business(), before.business());
        assert_eq!(app.service(id).await.updated_at, before.updated_at);
    }
);

// ---------------------------------------------------------------- protection

scenario!(
    calcom_edit_is_protected_and_recorded_not_applied,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        let before = app.service(id).await;

        app.edit_in_calcom(
            et,
            json!({"title": "Haircut deluxe", "lengthInMinutes": 45, "hidden": true}),
        );
        let report = app.sync_once().await;

        let after = app.service(id).await;
        assert_eq!(
            after.business(),
            before.business(),
            "Cal.com's edit must not reach the platform"
        );
        assert_eq!(after.updated_at, before.updated_at);
        assert_eq!(after.sync_status, "error");
        let why = after
            .sync_error
            .expect("the service says why it is not synced");
        for word in [
            "name",
            "duration_minutes",
            "visibility",
            "platform values were kept",
        ] {
            assert!(why.contains(word), "{why:?} lacks {word:?}");
        }

        let drift = app.open_drift().await;
        let sides: Vec<(Field, &str, &str, i64)> = drift
            .iter()
            .map(|e| {
                (
                    e.field,
                    e.platform_value.as_str(),
                    e.calcom_value.as_str(),
                    e.times_seen,
                )
            })
            .collect();
        assert_eq!(
            sides,
            [
                (Field::Name, "Haircut", "Haircut deluxe", 1),
                (Field::DurationMinutes, "30", "45", 1),
                (Field::Visibility, "bookable", "hidden", 1),
            ]
        );
        assert!(
            drift.iter().all(|e| e.service_id == id
                && e.calcom_event_type_id.0 == et
                && e.account == ACCOUNT)
        );

        for field in [Field::Name, Field::DurationMinutes, Field::Visibility] {
            assert_eq!(app.protections(field), 1, "{field}");
        }
        assert_eq!(app.protections(Field::Price), 0);
        assert_eq!(app.protections(Field::Description), 0);
        assert_eq!(
        app.metric(&format!("calsync_protection_triggered_total{{account=\"{ACCOUNT}\",field=\"duration_minutes\"}}")),
        Some(1.0)
    );
        let logs = app.logs();
        assert!(
            logs.lines().any(|l| l.contains("WARN")
                && l.contains("PROTECTION")
                && l.contains(&format!("service_id={}", id.0))),
            "no PROTECTION warning for service {id}:\n{logs}"
        );
        assert!(!logs.contains(API_KEY));

        assert_eq!(only(&report).counts.drifted, 1);
        assert!(
            only(&report)
                .items
                .iter()
                .any(|i| matches!(i, Item::Drift { service_id, .. } if *service_id == id)),
            "{report:#?}"
        );
        assert!(
            app.calcom_patches().is_empty(),
            "protection pushes nothing unless asked to"
        );
        assert_eq!(
            app.calcom_event_type(et)["title"],
            "Haircut deluxe",
            "Cal.com keeps its edit too"
        );
    }
);

scenario!(
    drift_seen_again_is_refreshed_not_announced_again,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_calcom(
            et,
            json!({"title": "Haircut deluxe", "lengthInMinutes": 45}),
        );
        app.sync_once().await;
        let first = app.open_drift().await;

        app.sync_once().await;

        let second = app.open_drift().await;
        assert_eq!(second.len(), 2);
        for (was, now) in first.iter().zip(&second) {
            assert_eq!((now.service_id, now.field), (was.service_id, was.field));
            assert_eq!(now.times_seen, 2, "{now:?}");
            assert_eq!(now.first_seen_at, was.first_seen_at);
            assert!(now.last_seen_at >= was.last_seen_at);
        }
        // One PROTECTION per edit, not per pass.
        assert_eq!(app.protections(Field::Name), 1);
        assert_eq!(app.protections(Field::DurationMinutes), 1);
        assert_eq!(app.service(id).await.name, "Haircut");
        assert_eq!(app.service(id).await.duration_minutes, 30);
    }
);

scenario!(
    drift_resolves_when_calcom_is_edited_back,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_calcom(
            et,
            json!({"title": "Haircut deluxe", "lengthInMinutes": 45, "hidden": true}),
        );
        app.sync_once().await;
        assert_eq!(app.open_drift().await.len(), 3);

        app.edit_in_calcom(
            et,
            json!({"title": "Haircut", "lengthInMinutes": 30, "hidden": false}),
        );
        let report = app.sync_once().await;

        assert!(app.open_drift().await.is_empty());
        let history = app.drift_history(id).await;
        assert_eq!(history.len(), 3);
        for record in &history {
            assert_eq!(record.resolution, Some(Resolution::Agreed), "{record:?}");
            assert!(record.resolved_at.is_some());
        }
        let s = app.service(id).await;
        assert_eq!(
            (s.sync_status.as_str(), s.sync_error.as_deref()),
            ("synced", None)
        );
        assert!(only(&report).items.is_empty(), "{report:#?}");
    }
);

scenario!(
    calcom_edit_never_reaches_the_platform_with_overwrites_off,
    |app| async move {
        let (et, id) = app.imported(paid_massage()).await;
        let before = app.service(id).await;

        app.edit_in_calcom(
        et,
        merged(json!({"title": "Massage", "lengthInMinutes": 50, "description": "Changed in Cal.com"}), stripe_price(7000)),
    );
        for _ in 0..3 {
            let report = app.sync_once().await;
            assert_eq!(only(&report).overwritten, 0);
            assert_eq!(app.service(id).await.business(), before.business());
        }

        assert_eq!(app.service(id).await.updated_at, before.updated_at);
        for field in Field::ALL {
            assert_eq!(app.overwrites(field), 0, "{field}");
        }
        assert_eq!(
            app.open_drift().await.len(),
            4,
            "name, description, duration and price are all recorded"
        );
    }
);

scenario!(
    plan_reports_drift_and_pending_edits_but_changes_nothing,
    |app| async move {
        let (drifted, drifted_id) = app.imported(haircut()).await;
        let edited = app.given_event_type(paid_massage());
        app.sync_once().await;
        let edited_id = ServiceId(app.service_for(edited).await.id);
        app.edit_in_calcom(drifted, json!({"lengthInMinutes": 45}));
        app.edit_in_platform(edited_id, "Massage & stretch", 75)
            .await;
        let new = app.given_event_type(
            json!({"title": "Beard trim", "slug": "beard", "lengthInMinutes": 15}),
        );
        let rows = app.services().await;

        let report = app.plan().await;

        assert!(report.dry_run);
        let items = &only(&report).items;
        assert!(
            items
                .iter()
                .any(|i| matches!(i, Item::Import { event_type_id, .. } if event_type_id.0 == new)),
            "{items:#?}"
        );
        assert!(
            items
                .iter()
                .any(|i| matches!(i, Item::Drift { service_id, .. } if *service_id == drifted_id)),
            "{items:#?}"
        );
        assert!(
            items
                .iter()
                .any(|i| matches!(i, Item::Push { service_id, .. } if *service_id == edited_id)),
            "{items:#?}"
        );
        assert_eq!(app.services().await, rows, "a dry run writes nothing");
        assert!(app.open_drift().await.is_empty());
        assert!(app.calcom_patches().is_empty(), "a dry run pushes nothing");
        assert_eq!(
            app.calcom_event_type(edited)["title"],
            "Deep-tissue massage"
        );
        assert_eq!(
            app.protections(Field::DurationMinutes),
            0,
            "nothing is counted for a dry run"
        );
    }
);

// ---------------------------------------------------------------- pushes

scenario!(platform_edit_is_pushed_to_calcom, |app| async move {
    let (et, id) = app.imported(haircut()).await;

    app.edit_in_platform(id, "Haircut & styling", 40).await;
    assert_eq!(app.service(id).await.sync_status, "pending");
    let report = app.sync_once().await;

    let event_type = app.calcom_event_type(et);
    assert_eq!(event_type["title"], "Haircut & styling");
    assert_eq!(event_type["lengthInMinutes"], 40);
    let s = app.service(id).await;
    assert_eq!(
        (s.name.as_str(), s.duration_minutes),
        ("Haircut & styling", 40)
    );
    assert_eq!(
        (s.sync_status.as_str(), s.sync_error.as_deref()),
        ("synced", None)
    );
    assert_eq!(only(&report).pushed, 1, "{report:#?}");
    assert_eq!(only(&report).counts.platform_edits, 1);

    let patches = app.calcom_patches();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].path, format!("/v2/event-types/{et}"));
    assert_eq!(
        patches[0].json(),
        json!({"title": "Haircut & styling", "lengthInMinutes": 40})
    );
    assert!(
        app.open_drift().await.is_empty(),
        "a platform edit is not drift"
    );
    assert_eq!(app.protections(Field::Name), 0);

    let again = app.sync_once().await;
    assert!(only(&again).items.is_empty(), "{again:#?}");
    assert_eq!(app.calcom_patches().len(), 1);
});

scenario!(
    platform_edit_during_a_push_stays_pending_and_the_next_pass_pushes_it,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_platform(id, "Haircut & styling", 40).await;

        let mut patch = app.hold_next("PATCH");
        let pass = app.spawn_sync();
        patch.arrived().await;
        app.edit_in_platform(id, "Haircut, styling & finish", 50)
            .await;
        patch.release();
        let report = pass.await.expect("the pass task panicked");

        assert_eq!(only(&report).pushed, 1, "{report:#?}");
        assert_eq!(only(&report).confirmation_conflicts, 1, "{report:#?}");
        assert_eq!(
            app.calcom_event_type(et)["title"],
            "Haircut & styling",
            "the first PATCH carried the older edit"
        );
        let s = app.service(id).await;
        assert_eq!(
            s.sync_status, "pending",
            "the newer edit is not in Cal.com yet"
        );
        assert_eq!(
            (s.name.as_str(), s.duration_minutes),
            ("Haircut, styling & finish", 50)
        );

        let next = app.sync_once().await;

        assert_eq!(only(&next).pushed, 1, "{next:#?}");
        let event_type = app.calcom_event_type(et);
        assert_eq!(event_type["title"], "Haircut, styling & finish");
        assert_eq!(event_type["lengthInMinutes"], 50);
        let s = app.service(id).await;
        assert_eq!(
            (s.sync_status.as_str(), s.sync_error.as_deref()),
            ("synced", None)
        );
        assert_eq!(
            (s.name.as_str(), s.duration_minutes),
            ("Haircut, styling & finish", 50)
        );
        assert!(app.open_drift().await.is_empty());
    }
);

scenario!(
    manual_push_repairs_calcom_and_resolves_drift,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        let before = app.service(id).await;
        app.edit_in_calcom(
            et,
            json!({"title": "Haircut deluxe", "lengthInMinutes": 45}),
        );
        app.sync_once().await;
        assert_eq!(app.open_drift().await.len(), 2);

        let done = app
            .push_service(id)
            .await
            .expect("the manual push succeeds");

        assert_eq!(done.pushed, [Field::Name, Field::DurationMinutes]);
        assert!(done.not_pushable.is_empty(), "{done:?}");
        assert!(done.marked_synced);
        let event_type = app.calcom_event_type(et);
        assert_eq!(
            (
                event_type["title"].clone(),
                event_type["lengthInMinutes"].clone()
            ),
            (json!("Haircut"), json!(30))
        );
        let s = app.service(id).await;
        assert_eq!(s.business(), before.business());
        assert_eq!(
            (s.sync_status.as_str(), s.sync_error.as_deref()),
            ("synced", None)
        );
        let open = app.open_drift().await;
        assert!(
            open.is_empty(),
            "the push repaired Cal.com, yet drift stays open: {open:#?}"
        );
        let history = app.drift_history(id).await;
        assert!(
            history
                .iter()
                .all(|r| r.resolution == Some(Resolution::Repushed)),
            "{history:#?}"
        );
    }
);

scenario!(
    manual_push_leaves_price_drift_open_and_reports_it_as_not_pushable,
    |app| async move {
        let (et, id) = app.imported(paid_massage()).await;
        app.edit_in_calcom(et, merged(json!({"title": "Massage"}), stripe_price(8000)));
        app.sync_once().await;

        let done = app
            .push_service(id)
            .await
            .expect("the manual push succeeds");

        assert_eq!(done.pushed, [Field::Name]);
        assert_eq!(done.not_pushable.len(), 1, "{done:?}");
        let price = &done.not_pushable[0];
        assert_eq!(
            (price.field, price.platform.as_str(), price.calcom.as_str()),
            (Field::Price, "90.00 EUR", "80.00 EUR")
        );
        assert!(!done.marked_synced, "a price difference remains");
        let event_type = app.calcom_event_type(et);
        assert_eq!(event_type["title"], "Deep-tissue massage");
        assert_eq!(
            event_type["metadata"]["apps"]["stripe"]["price"], 8000,
            "API v2 cannot set prices"
        );
        let s = app.service(id).await;
        assert_eq!(s.price, "90.00");
        assert_eq!(s.sync_status, "error");
        let why = s.sync_error.unwrap_or_default();
        assert!(
            why.contains("price") && why.contains("cannot set prices"),
            "{why:?}"
        );
        for patch in app.calcom_patches() {
            assert!(
                !keys(&patch.json()).iter().any(|k| k.contains("price")),
                "{patch:?}"
            );
        }
        let open: Vec<Field> = app.open_drift().await.iter().map(|e| e.field).collect();
        assert_eq!(open, [Field::Price], "only the price is still drifted");
    }
);

scenario!(
    repush_drifted_converges_calcom_and_never_pushes_price,
    |app| async move {
        app.set_policy(|p| p.repush_drifted = true);
        let (et, id) = app.imported(paid_massage()).await;
        let before = app.service(id).await;

        app.edit_in_calcom(
            et,
            merged(
                json!({"title": "Massage -30%", "lengthInMinutes": 45, "hidden": true}),
                stripe_price(6300),
            ),
        );
        let report = app.sync_once().await;
        let open_after_repush: Vec<Field> =
            app.open_drift().await.iter().map(|e| e.field).collect();

        let event_type = app.calcom_event_type(et);
        assert_eq!(event_type["title"], "Deep-tissue massage");
        assert_eq!(event_type["lengthInMinutes"], 60);
        assert_eq!(event_type["hidden"], false);
        assert_eq!(
            event_type["metadata"]["apps"]["stripe"]["price"], 6300,
            "the price stays Cal.com's"
        );
        assert_eq!(app.service(id).await.business(), before.business());
        assert_eq!(only(&report).pushed, 1, "{report:#?}");
        let patches = app.calcom_patches();
        assert_eq!(patches.len(), 1);
        for patch in &patches {
            let body = patch.json();
            assert!(
                !keys(&body)
                    .iter()
                    .any(|k| k.contains("price") || k == "currency" || k == "metadata"),
                "{patch:?}"
            );
        }
        let why = app.service(id).await.sync_error.unwrap_or_default();
        assert!(why.contains("price"), "{why:?}");

        let again = app.sync_once().await;
        assert_eq!(
            only(&again).pushed,
            0,
            "nothing pushable is left: {again:#?}"
        );
        assert_eq!(app.calcom_patches().len(), 1, "the price is never pushed");

        // Drift first seen and re-pushed in the same pass is closed as repushed.
        assert_eq!(
            open_after_repush,
            [Field::Price],
            "only the price still differs after the re-push"
        );
        let history = app.drift_history(id).await;
        let resolution = |field: Field| {
            history
                .iter()
                .find(|r| r.entry.field == field)
                .and_then(|r| r.resolution)
        };
        for field in [Field::Name, Field::DurationMinutes, Field::Visibility] {
            assert_eq!(
                resolution(field),
                Some(Resolution::Repushed),
                "{field}: {history:#?}"
            );
        }
    }
);

// ---------------------------------------------------------------- overwrites

scenario!(
    overwrite_escape_hatch_copies_calcom_values_into_the_platform,
    |app| async move {
        app.set_policy(|p| p.ownership = Ownership::all(Owner::Calcom));
        let (et, id) = app.imported(haircut()).await;
        let before = app.service(id).await;

        app.edit_in_calcom(
            et,
            json!({"title": "Haircut deluxe", "lengthInMinutes": 45}),
        );
        let report = app.sync_once().await;

        let after = app.service(id).await;
        assert_eq!(
            (after.name.as_str(), after.duration_minutes),
            ("Haircut deluxe", 45)
        );
        assert_eq!(
            (
                after.description.clone(),
                after.price.clone(),
                after.is_active,
                after.is_online
            ),
            (
                before.description.clone(),
                before.price.clone(),
                before.is_active,
                before.is_online
            )
        );
        assert_eq!(
            (after.sync_status.as_str(), after.sync_error.as_deref()),
            ("synced", None)
        );
        assert!(
            after.updated_at > before.updated_at,
            "an overwrite is a change to the row"
        );
        assert_eq!(only(&report).overwritten, 1, "{report:#?}");
        assert_eq!(app.overwrites(Field::Name), 1);
        assert_eq!(app.overwrites(Field::DurationMinutes), 1);
        assert_eq!(
            app.metric(&format!(
                "calsync_calcom_overwrites_total{{account=\"{ACCOUNT}\",field=\"name\"}}"
            )),
            Some(1.0)
        );
        assert_eq!(app.protections(Field::Name), 0);
        assert!(app.logs().contains("OVERWRITE"), "{}", app.logs());
        assert!(app.calcom_patches().is_empty());

        // The overwritten fields are recorded and closed in the same pass.
        let open = app.open_drift().await;
        assert!(
            open.is_empty(),
            "both sides agree after the overwrite: {open:#?}"
        );
        let history = app.drift_history(id).await;
        assert!(
            !history.is_empty()
                && history
                    .iter()
                    .all(|r| r.resolution == Some(Resolution::Overwritten)),
            "{history:#?}"
        );
    }
);

// ---------------------------------------------------------------- orphans

scenario!(
    orphaned_service_is_marked_error_and_never_deleted,
    |app| async move {
        let (gone, orphan) = app.imported(haircut()).await;
        let kept = app.given_event_type(paid_massage());
        app.sync_once().await;
        let before = app.service(orphan).await;

        app.delete_in_calcom(gone);
        let report = app.sync_once().await;

        assert_eq!(app.services().await.len(), 2, "nothing is deleted");
        let s = app.service(orphan).await;
        assert_eq!(s.business(), before.business());
        assert_eq!(s.calcom_event_type_id, Some(gone), "the link is kept");
        assert_eq!(s.sync_status, "error");
        let why = s.sync_error.unwrap_or_default();
        assert!(
            why.contains("is gone") && why.contains(&gone.to_string()),
            "{why:?}"
        );
        assert_eq!(app.service_for(kept).await.sync_status, "synced");
        assert_eq!(only(&report).counts.orphans, 1);
        assert!(
            only(&report)
                .items
                .iter()
                .any(|i| matches!(i, Item::Orphan { service_id, .. } if *service_id == orphan)),
            "{report:#?}"
        );

        app.sync_once().await;
        assert_eq!(app.services().await.len(), 2);
        assert_eq!(app.service(orphan).await.sync_status, "error");
    }
);

scenario!(
    empty_listing_orphans_nothing_and_is_reported,
    |app| async move {
        let (a, first) = app.imported(haircut()).await;
        let b = app.given_event_type(paid_massage());
        app.sync_once().await;
        let second = ServiceId(app.service_for(b).await.id);

        app.delete_in_calcom(a);
        app.delete_in_calcom(b);
        let report = app.sync_once().await;

        let account = only(&report);
        assert!(account.empty_listing_guarded, "{report:#?}");
        assert_eq!(
            app.metric(&format!(
                "calsync_empty_listings_guarded_total{{account=\"{ACCOUNT}\"}}"
            )),
            Some(1.0),
            "the warning and its counter go together"
        );
        assert_eq!(account.counts.orphans, 0);
        assert!(
            report.to_text().contains("nothing was orphaned"),
            "{}",
            report.to_text()
        );
        for id in [first, second] {
            let s = app.service(id).await;
            assert_eq!(
                (s.sync_status.as_str(), s.sync_error.as_deref()),
                ("synced", None),
                "service {id}"
            );
        }
        assert_eq!(app.services().await.len(), 2);
        // The warning counts the linked services it kept.
        let logs = app.logs();
        let line = logs
            .lines()
            .find(|l| l.contains("listed no event types"))
            .unwrap_or_else(|| panic!("no warning about the empty listing:\n{logs}"));
        assert!(
            line.contains("WARN") && line.contains("linked_services=2"),
            "{line}"
        );
    }
);

// ---------------------------------------------------------------- price

scenario!(
    price_edit_in_calcom_is_recorded_as_price_drift_and_never_pushed,
    |app| async move {
        app.set_policy(|p| p.repush_drifted = true);
        let (et, id) = app.imported(paid_massage()).await;

        app.edit_in_calcom(et, stripe_price(8000));
        let report = app.sync_once().await;

        let drift = app.open_drift().await;
        assert_eq!(drift.len(), 1, "{drift:#?}");
        assert_eq!(
            (
                drift[0].field,
                drift[0].platform_value.as_str(),
                drift[0].calcom_value.as_str()
            ),
            (Field::Price, "90.00 EUR", "80.00 EUR")
        );
        let s = app.service(id).await;
        assert_eq!((s.price.as_str(), s.currency.as_str()), ("90.00", "EUR"));
        let why = s.sync_error.unwrap_or_default();
        assert!(why.contains("cannot set prices"), "{why:?}");
        assert_eq!(app.protections(Field::Price), 1);
        assert!(
            app.calcom_patches().is_empty(),
            "even with repush_drifted, a price is never pushed"
        );
        assert_eq!((only(&report).pushed, only(&report).counts.pushes), (0, 0));
        assert_eq!(
            app.calcom_event_type(et)["metadata"]["apps"]["stripe"]["price"],
            8000
        );
    }
);

// ---------------------------------------------------------------- bad records

scenario!(
    unreadable_record_is_reported_and_the_rest_still_reconciles,
    |app| async move {
        let (broken, broken_id) = app.imported(haircut()).await;
        let healthy = app.given_event_type(paid_massage());
        app.sync_once().await;
        let healthy_id = ServiceId(app.service_for(healthy).await.id);
        let before = app.service(broken_id).await;

        app.edit_in_calcom(broken, json!({"lengthInMinutes": 0}));
        let never_valid = app
            .given_event_type(json!({"title": "Broken", "slug": "broken", "lengthInMinutes": 0}));
        app.edit_in_platform(healthy_id, "Massage & stretch", 75)
            .await;
        let report = app.sync_once().await;

        assert!(report.has_failures(), "{report:#?}");
        let account = only(&report);
        assert_eq!(
            account.result, "partial",
            "one bad record does not fail the account: the pass commits, and says what it skipped"
        );
        assert_eq!(account.counts.unreadable, 2, "{report:#?}");
        for et in [broken, never_valid] {
            let error = account
                .items
                .iter()
                .find_map(|i| match i {
                    Item::Unreadable {
                        event_type_id,
                        error,
                    } if event_type_id.map(|e| e.0) == Some(et) => Some(error),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no unreadable item for event type {et}: {report:#?}"));
            assert!(
                error.contains(&format!("event type {et}"))
                    && error.contains("lengthInMinutes 0 is out of range"),
                "{error}"
            );
        }

        let s = app.service(broken_id).await;
        assert_eq!(
            s.business(),
            before.business(),
            "nothing invalid is written"
        );
        assert_eq!(s.sync_status, "error");
        let why = s.sync_error.unwrap_or_default();
        assert!(
            why.contains(&format!("event type {broken}")) && why.contains("lengthInMinutes 0"),
            "{why:?}"
        );
        assert_eq!(
            app.services().await.len(),
            2,
            "an unreadable event type is not imported"
        );

        let event_type = app.calcom_event_type(healthy);
        assert_eq!(
            (
                event_type["title"].clone(),
                event_type["lengthInMinutes"].clone()
            ),
            (json!("Massage & stretch"), json!(75))
        );
        assert_eq!(app.service(healthy_id).await.sync_status, "synced");
        assert!(
            app.calcom_patches()
                .iter()
                .all(|p| p.path != format!("/v2/event-types/{broken}"))
        );
    }
);

// ---------------------------------------------------------------- accounts

backend_tests!(
    failing_account_does_not_stop_another_account,
    |backend: TestBackend| async move {
        let app = TestApp::builder(backend)
            .accounts(vec![
                AccountSpec::new("lisbon", 2, "cal_live_lisbon_revoked_000000").revoked(),
                AccountSpec::new(ACCOUNT, COMPANY, API_KEY),
            ])
            .spawn()
            .await;
        let et = app.given_event_type(haircut());

        let report = app.sync_once().await;

        assert!(report.has_failures());
        let (lisbon, berlin) = (&report.accounts[0], &report.accounts[1]);
        assert_eq!(
            (lisbon.account.as_str(), lisbon.result),
            ("lisbon", "failure"),
            "{report:#?}"
        );
        let error = lisbon.error.clone().unwrap_or_default();
        assert!(error.contains("401") && error.contains("lisbon"), "{error}");
        assert!(!error.contains("cal_live_lisbon_revoked_000000"), "{error}");
        assert_eq!(
            (berlin.account.as_str(), berlin.result, berlin.imported),
            (ACCOUNT, "success", 1),
            "{report:#?}"
        );
        assert_eq!(app.service_for(et).await.company_id, COMPANY);
        assert_eq!(
            app.metric("calsync_reconcile_runs_total{account=\"lisbon\",result=\"failure\"}"),
            Some(1.0)
        );
        assert_eq!(
            app.metric(&format!(
                "calsync_reconcile_runs_total{{account=\"{ACCOUNT}\",result=\"success\"}}"
            )),
            Some(1.0)
        );
        let logs = app.logs();
        assert!(!logs.contains("cal_live_lisbon_revoked_000000") && !logs.contains(API_KEY));
    }
);

/// Statements the second pass (everything in sync) sends, with `n` event types.
async fn in_sync_pass_statements(backend: TestBackend, n: usize) -> u64 {
    let app = TestApp::builder(backend).seed_event_types(n).spawn().await;
    let first = app.sync_once().await;
    assert_eq!(only(&first).imported, n, "{:?}", only(&first).items.first());
    let second = app.sync_once().await;
    assert_eq!(only(&second).counts.in_sync, n, "{second:?}");
    only(&second).sql_statements
}

backend_tests!(
    sql_statements_per_pass_do_not_grow_with_event_types,
    |backend: TestBackend| async move {
        let small = in_sync_pass_statements(backend, 30).await;
        let large = in_sync_pass_statements(backend, 300).await;

        // Read the account's services, read its open drift, journal the run
        // and stamp the account verified: PostgreSQL writes both in one
        // statement, MySQL in two; SQLite also opens and commits a transaction
        // (it has no round trips to save, and one commit is cheaper there than
        // two).
        let expected = match backend {
            TestBackend::Postgres => 3,
            TestBackend::MariaDb => 4,
            TestBackend::Sqlite => 6,
        };
        assert_eq!(
            large, expected,
            "{large} statements for 300 event types in sync"
        );
        assert_eq!(
            small, large,
            "30 event types took {small} statements, 300 took {large}"
        );
    }
);

backend_tests!(
    team_event_types_are_imported_and_pushed_through_the_team_endpoint,
    |backend: TestBackend| async move {
        let app = TestApp::builder(backend)
            .accounts(vec![AccountSpec::new(ACCOUNT, COMPANY, API_KEY).team(77)])
            .spawn()
            .await;
        app.calcom.create_team(77, &[API_KEY]);
        let created = app.calcom.create_team_event_type(
            77,
            json!({"title": "Group pilates", "slug": "group-pilates", "lengthInMinutes": 55}),
        );
        let et = created["id"].as_i64().expect("team event type id");

        let report = app.sync_once().await;

        assert_eq!(only(&report).imported, 1, "{report:#?}");
        let s = app.service_for(et).await;
        assert_eq!(
            (s.name.as_str(), s.duration_minutes, s.company_id),
            ("Group pilates", 55, COMPANY)
        );

        app.edit_in_platform(ServiceId(s.id), "Group pilates (advanced)", 60)
            .await;
        let report = app.sync_once().await;

        assert_eq!(only(&report).pushed, 1, "{report:#?}");
        let paths: Vec<String> = app.calcom_patches().into_iter().map(|p| p.path).collect();
        assert_eq!(paths, [format!("/v2/teams/77/event-types/{et}")]);
        let event_type = app.calcom_event_type(et);
        assert_eq!(
            (
                event_type["title"].clone(),
                event_type["lengthInMinutes"].clone()
            ),
            (json!("Group pilates (advanced)"), json!(60))
        );
        assert_eq!(event_type["teamId"], 77);
        assert_eq!(app.service(ServiceId(s.id)).await.sync_status, "synced");
    }
);
