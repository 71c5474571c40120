//! The three-way reconcile on every backend: each row of the README's "How a pass
//! works" table, the upgrade path without a baseline, PROTECTION once per edit,
//! `drift --state`, orphans only on proof under a paging race, and records the
//! databases cannot store.

use calsync::domain::{Field, Origin, Resolution};
use calsync::simulate::{ListingRace, Normalise};
use calsync::store::DriftState;
use serde_json::{Value, json};

use crate::support::app::{ACCOUNT, API_KEY, COMPANY, TestApp, haircut, scenario};
use crate::support::config::AccountSpec;
use crate::support::db::{PlatformService, backend_tests};

/// The PATCH bodies sent for one event type.
fn patches_of(app: &TestApp, et: i64) -> Vec<Value> {
    app.calcom_patches()
        .into_iter()
        .filter(|r| r.path.ends_with(&format!("/{et}")))
        .map(|r| r.json())
        .collect()
}

// ------------------------------------------------- P = B, C ≠ B: Cal.com edit

scenario!(
    a_calcom_edit_is_protected_once_not_every_pass,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_calcom(et, json!({"lengthInMinutes": 45}));

        for _ in 0..3 {
            let report = app.sync_once().await;
            assert!(!report.has_failures(), "{report:#?}");
        }

        assert_eq!(
            app.service(id).await.duration_minutes,
            30,
            "platform value kept"
        );
        assert_eq!(
            app.calcom_event_type(et)["lengthInMinutes"],
            45,
            "not pushed back"
        );
        assert_eq!(app.protections(Field::DurationMinutes), 1, "once per edit");
        assert_eq!(
            app.logs().matches("PROTECTION").count(),
            1,
            "{}",
            app.logs()
        );
        let open = app.ledger(DriftState::Open).await;
        assert_eq!(open.len(), 1, "{open:#?}");
        let e = &open[0].entry;
        assert_eq!(
            (
                e.field,
                e.origin,
                e.platform_value.as_str(),
                e.calcom_value.as_str()
            ),
            (Field::DurationMinutes, Origin::CalcomEdit, "30", "45")
        );
        assert_eq!(e.baseline_value.as_deref(), Some("30"));
        assert_eq!(e.times_seen, 3);
        assert_eq!(
            app.metric(&format!(
                "calsync_drifted_services{{account=\"{ACCOUNT}\"}}"
            )),
            Some(1.0),
            "open drift stays visible in the gauges"
        );
        assert!(patches_of(&app, et).is_empty());
    }
);

scenario!(
    a_new_calcom_value_is_a_new_protection_and_the_old_one_is_kept,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.edit_in_calcom(et, json!({"lengthInMinutes": 45}));
        app.sync_once().await;
        app.edit_in_calcom(et, json!({"lengthInMinutes": 50}));
        app.sync_once().await;
        app.sync_once().await;

        assert_eq!(app.protections(Field::DurationMinutes), 2);
        let all = app.ledger(DriftState::All).await;
        let values: Vec<(&str, Option<Resolution>)> = all
            .iter()
            .map(|r| {
                (
                    r.entry.calcom_value.as_str(),
                    r.resolution.filter(|_| r.resolved_at.is_some()),
                )
            })
            .collect();
        assert!(
            values.contains(&("45", Some(Resolution::Superseded))),
            "{all:#?}"
        );
        assert!(values.contains(&("50", None)), "{all:#?}");
        assert_eq!(app.service(id).await.duration_minutes, 30);
    }
);

scenario!(
    a_calcom_edit_is_not_lost_when_it_meets_a_platform_edit,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        // The platform changes the duration (and marks the service pending); someone
        // renames the event type in Cal.com before the next pass.
        app.db
            .store
            .edit_as_platform(id, None, Some(45))
            .await
            .unwrap();
        app.edit_in_calcom(et, json!({"title": "Haircut & style"}));

        let report = app.sync_once().await;
        assert!(!report.has_failures(), "{report:#?}");

        let now = app.calcom_event_type(et);
        assert_eq!(now["lengthInMinutes"], 45, "the platform edit was pushed");
        assert_eq!(
            now["title"], "Haircut & style",
            "Cal.com's title was not pushed over"
        );
        let patches = patches_of(&app, et);
        assert_eq!(patches.len(), 1, "{patches:?}");
        assert!(patches[0].get("title").is_none(), "{patches:?}");
        let s = app.service(id).await;
        assert_eq!((s.name.as_str(), s.duration_minutes), ("Haircut", 45));
        let open = app.ledger(DriftState::Open).await;
        assert_eq!(open.len(), 1, "{open:#?}");
        assert_eq!(
            (
                open[0].entry.field,
                open[0].entry.origin,
                open[0].entry.calcom_value.as_str()
            ),
            (Field::Name, Origin::CalcomEdit, "Haircut & style")
        );
        assert_eq!(app.protections(Field::Name), 1);
        assert_eq!(s.sync_status, "error", "the drift is shown on the service");
        assert!(s.sync_error.unwrap_or_default().contains("name"));
    }
);

// ------------------------------------------------- C = B, P ≠ B: platform edit

scenario!(
    an_unmarked_platform_edit_is_pushed_not_reported,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        // A bulk SQL update: no `pending`.
        app.db
            .exec(&format!(
                "UPDATE services SET duration_minutes = 60 WHERE id = {}",
                id.0
            ))
            .await;

        let report = app.sync_once().await;
        assert!(!report.has_failures(), "{report:#?}");

        assert_eq!(app.calcom_event_type(et)["lengthInMinutes"], 60);
        assert_eq!(app.protections(Field::DurationMinutes), 0, "{}", app.logs());
        assert!(!app.logs().contains("PROTECTION"), "{}", app.logs());
        assert!(app.ledger(DriftState::All).await.is_empty());
        let s = app.service(id).await;
        assert_eq!((s.duration_minutes, s.sync_status.as_str()), (60, "synced"));
        // And it stays quiet.
        app.sync_once().await;
        assert_eq!(patches_of(&app, et).len(), 1);
    }
);

scenario!(
    without_detection_an_unmarked_platform_edit_waits_and_says_why,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.set_policy(|p| p.detect_platform_edits = false);
        app.db
            .exec(&format!(
                "UPDATE services SET duration_minutes = 60 WHERE id = {}",
                id.0
            ))
            .await;

        app.sync_once().await;

        assert_eq!(app.calcom_event_type(et)["lengthInMinutes"], 30);
        assert_eq!(app.protections(Field::DurationMinutes), 0);
        let s = app.service(id).await;
        assert_eq!(s.sync_status, "error");
        assert!(
            s.sync_error
                .unwrap_or_default()
                .contains("detect_platform_edits"),
            "the message says what to do"
        );
        // Marking it pending pushes it.
        app.db
            .exec(&format!(
                "UPDATE services SET sync_status = 'pending' WHERE id = {}",
                id.0
            ))
            .await;
        app.sync_once().await;
        assert_eq!(app.calcom_event_type(et)["lengthInMinutes"], 60);
    }
);

// ------------------------------------------------- P ≠ B, C ≠ B: conflict

scenario!(
    in_a_conflict_the_platform_wins_and_calcom_value_is_superseded,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.db
            .store
            .edit_as_platform(id, None, Some(45))
            .await
            .unwrap();
        app.edit_in_calcom(et, json!({"lengthInMinutes": 50}));

        let report = app.sync_once().await;
        assert!(!report.has_failures(), "{report:#?}");

        assert_eq!(app.calcom_event_type(et)["lengthInMinutes"], 45);
        let closed = app.ledger(DriftState::Closed).await;
        assert_eq!(closed.len(), 1, "{closed:#?}");
        let e = &closed[0];
        assert_eq!(e.entry.origin, Origin::Conflict);
        assert_eq!(e.resolution, Some(Resolution::Superseded));
        assert_eq!(
            (
                e.entry.platform_value.as_str(),
                e.entry.calcom_value.as_str(),
                e.entry.baseline_value.as_deref()
            ),
            ("45", "50", Some("30"))
        );
        assert_eq!(app.protections(Field::DurationMinutes), 1);
        let line = app
            .logs()
            .lines()
            .find(|l| l.contains("PROTECTION"))
            .map(str::to_owned)
            .unwrap_or_default();
        assert!(
            line.contains("both changed") && line.contains("baseline"),
            "{line}"
        );
        assert_eq!(app.service(id).await.sync_status, "synced");
    }
);

// ------------------------------------------------- normalisation

scenario!(
    a_normalised_push_is_recorded_once_and_never_repushed,
    |app| async move {
        let (et, id) = app.imported(haircut()).await;
        app.calcom.set_normalise(Normalise {
            trim_titles: true,
            round_lengths_to: Some(5),
        });
        app.db
            .store
            .edit_as_platform(id, Some("Haircut "), Some(32))
            .await
            .unwrap();

        for _ in 0..3 {
            let report = app.sync_once().await;
            assert!(!report.has_failures(), "{report:#?}");
        }

        assert_eq!(patches_of(&app, et).len(), 1, "no push loop");
        let now = app.calcom_event_type(et);
        assert_eq!(
            (now["title"].as_str(), now["lengthInMinutes"].as_i64()),
            (Some("Haircut"), Some(30))
        );
        let normalised: Vec<_> = app
            .ledger(DriftState::All)
            .await
            .into_iter()
            .filter(|r| r.entry.origin == Origin::Normalised)
            .collect();
        assert_eq!(normalised.len(), 2, "{normalised:#?}");
        assert!(normalised.iter().all(|r| r.resolved_at.is_some()));
        assert_eq!(app.protections(Field::DurationMinutes), 0);
        let s = app.service(id).await;
        assert_eq!((s.duration_minutes, s.sync_status.as_str()), (32, "synced"));
        // A later Cal.com edit is still recognised against the normalised pair.
        app.edit_in_calcom(et, json!({"lengthInMinutes": 40}));
        app.sync_once().await;
        assert_eq!(app.protections(Field::DurationMinutes), 1);
    }
);

// ------------------------------------------------- upgrade without a baseline

scenario!(
    a_service_without_a_baseline_records_what_a_push_replaces,
    |app| async move {
        let et = app.given_event_type(haircut());
        // Linked by hand, pending, with values that differ from Cal.com's.
        let id = app
            .db
            .insert_service(
                &PlatformService::new(COMPANY, "Haircut deluxe")
                    .description("Wash, cut and finish.")
                    .duration(30)
                    .event_type(et)
                    .status("pending"),
            )
            .await;

        let report = app.sync_once().await;
        assert!(!report.has_failures(), "{report:#?}");

        assert_eq!(app.calcom_event_type(et)["title"], "Haircut deluxe");
        let closed = app.ledger(DriftState::Closed).await;
        assert_eq!(closed.len(), 1, "{closed:#?}");
        assert_eq!(closed[0].entry.calcom_value, "Haircut");
        assert_eq!(closed[0].entry.origin, Origin::Conflict);
        assert_eq!(closed[0].resolution, Some(Resolution::Superseded));
        assert_eq!(closed[0].entry.baseline_value, None);
        // From now on it has a baseline: an unmarked platform edit is pushed.
        app.db
            .exec(&format!(
                "UPDATE services SET duration_minutes = 45 WHERE id = {}",
                id.0
            ))
            .await;
        app.sync_once().await;
        assert_eq!(app.calcom_event_type(et)["lengthInMinutes"], 45);
    }
);

// ------------------------------------------------- drift --state

scenario!(closed_entries_stay_findable_by_state, |app| async move {
    let (et, id) = app.imported(haircut()).await;
    app.edit_in_calcom(et, json!({"lengthInMinutes": 45}));
    app.sync_once().await;
    app.edit_in_calcom(et, json!({"lengthInMinutes": 30}));
    app.sync_once().await;

    assert!(app.ledger(DriftState::Open).await.is_empty());
    let closed = app.ledger(DriftState::Closed).await;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].resolution, Some(Resolution::Agreed));
    assert_eq!(closed[0].entry.service_id, id);
    let json = calsync::app::drift_json(&closed, &[]);
    let e = &json[0];
    for key in [
        "origin",
        "resolution",
        "resolved_at",
        "baseline_value",
        "state",
    ] {
        assert!(e.get(key).is_some(), "{key} missing: {e}");
    }
    assert_eq!(e["state"], "closed");
    assert_eq!(e["resolution"], "agreed");
    assert_eq!(e["origin"], "calcom_edit");
    assert_eq!(app.ledger(DriftState::All).await.len(), 1);
});

// ------------------------------------------------- orphans only on proof

backend_tests!(
    orphans_only_on_proof_under_a_paging_race,
    |backend: TestBackend| async move {
        const ORG: i64 = 9;
        const TEAM: i64 = 91;
        let app = TestApp::builder(backend)
            .accounts(vec![AccountSpec::new(ACCOUNT, COMPANY, API_KEY).org(ORG)])
            .spawn()
            .await;
        app.calcom.create_team(TEAM, &[API_KEY]);
        app.calcom.create_org(ORG, &[TEAM], &[API_KEY]);
        // More than one page (250) of organization event types.
        let ids: Vec<i64> = (0..260)
        .map(|i| {
            app.calcom.create_team_event_type(
                TEAM,
                json!({"title": format!("Service {i}"), "slug": format!("s-{i}"), "lengthInMinutes": 30}),
            )["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
        let first = app.sync_once().await;
        assert!(!first.has_failures(), "{first:#?}");
        assert_eq!(app.services().await.len(), 260);

        // An event type of the first page is deleted while the listing is paged: the
        // second page then starts one item later, and event type #250 is never listed.
        app.calcom.set_listing_race(Some(ListingRace {
            org_id: ORG,
            after_page: 0,
            delete_event_type_id: ids[10],
        }));
        let racing = app.sync_once().await;
        assert!(!racing.has_failures(), "{racing:#?}");
        let skipped = app.service_for(ids[250]).await;
        assert_ne!(skipped.sync_status, "error", "{skipped:?}");
        assert_eq!(
            app.metric(&format!(
                "calsync_listing_inconsistencies_total{{account=\"{ACCOUNT}\"}}"
            )),
            Some(1.0)
        );
        assert!(
            app.logs().contains("listing inconsistent"),
            "{}",
            app.logs()
        );
        assert_eq!(
            app.service_for(ids[10]).await.sync_status,
            "synced",
            "listed on page 0"
        );

        // Next pass: the deleted one is missing, Cal.com answers 404: orphaned.
        let next = app.sync_once().await;
        assert!(!next.has_failures(), "{next:#?}");
        let gone = app.service_for(ids[10]).await;
        assert_eq!(gone.sync_status, "error");
        assert!(gone.sync_error.unwrap_or_default().contains("404"));
        assert!(app.logs().contains("ORPHANED"));
        assert_eq!(app.service_for(ids[250]).await.sync_status, "synced");
        // A known orphan is not asked about again.
        let before = app
            .calcom_requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&format!("/{}", ids[10])))
            .count();
        app.sync_once().await;
        let after = app
            .calcom_requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&format!("/{}", ids[10])))
            .count();
        assert_eq!(before, after);
    }
);

// ------------------------------------------------- unstorable values

scenario!(
    a_nul_in_a_title_is_a_per_record_error_and_the_rest_reconciles,
    |app| async move {
        let (good, good_id) = app.imported(haircut()).await;
        let bad = app.given_event_type(
            json!({"title": "Cut\u{0000}", "slug": "nul", "lengthInMinutes": 30}),
        );
        app.db
            .store
            .edit_as_platform(good_id, None, Some(40))
            .await
            .unwrap();

        let report = app.sync_once().await;

        let a = &report.accounts[0];
        assert_eq!(
            a.result, "partial",
            "committed, with a finding: {report:#?}"
        );
        assert_eq!(a.counts.unreadable, 1);
        assert_eq!(
            app.metric(&format!(
                "calsync_unreadable_records_total{{account=\"{ACCOUNT}\"}}"
            )),
            Some(1.0)
        );
        let item = serde_json::to_string(&a.items).unwrap();
        assert!(
            item.contains(&format!("event type {bad}")) && item.contains("title"),
            "{item}"
        );
        assert!(item.contains("U+0000"), "{item}");
        // The neighbour's push is confirmed.
        assert_eq!(app.calcom_event_type(good)["lengthInMinutes"], 40);
        assert_eq!(app.service(good_id).await.sync_status, "synced");
        assert_eq!(
            app.services().await.len(),
            1,
            "nothing was written from the bad record"
        );
    }
);
