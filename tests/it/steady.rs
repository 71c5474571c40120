//! A steady pass on every backend: what it writes to the platform's `services`
//! table (nothing, unless `sync.touch_last_calcom_sync` keeps the old stamp on
//! every row), and what the `calsync_service_status` view tells the platform's UI
//! (when each service was last verified, and which fields have open drift).

use std::time::Duration;

use calsync::reconcile::{AccountReport, PassReport};
use serde_json::json;

use crate::support::app::{ACCOUNT, TestApp, haircut, scenario};
use crate::support::db::RawService;

fn only(report: &PassReport) -> &AccountReport {
    assert_eq!(report.accounts.len(), 1, "{report:#?}");
    assert!(!report.has_failures(), "{report:#?}");
    &report.accounts[0]
}

/// A pass that starts measurably later than the previous one (timestamps have
/// microsecond precision on every backend, but passes can be quicker than that
/// on a fast machine).
async fn later_pass(app: &TestApp) -> PassReport {
    tokio::time::sleep(Duration::from_millis(5)).await;
    app.sync_once().await
}

/// `n` personal event types "Service 0", "Service 1", … of 30 to 59 minutes.
fn given_services(app: &TestApp, n: usize) {
    for i in 0..n {
        app.given_event_type(json!({
            "title": format!("Service {i}"),
            "slug": format!("service-{i}"),
            "lengthInMinutes": 30 + i % 30,
        }));
    }
}

fn stamps(rows: &[RawService]) -> Vec<(i64, Option<chrono::NaiveDateTime>)> {
    rows.iter().map(|s| (s.id, s.last_calcom_sync)).collect()
}

scenario!(
    a_second_pass_over_an_unchanged_account_writes_no_service_row,
    |app| async move {
        given_services(&app, 5);
        let first = app.sync_once().await;
        assert_eq!(only(&first).imported, 5);
        assert_eq!(only(&first).services_written, 5, "{first:#?}");
        let before = app.services().await;

        let second = later_pass(&app).await;

        assert_eq!(only(&second).counts.in_sync, 5, "{second:#?}");
        assert_eq!(
            only(&second).services_written,
            0,
            "a steady pass wrote rows of services"
        );
        assert_eq!(
            app.services().await,
            before,
            "a steady pass changed a row of services (last_calcom_sync, updated_at, ...)"
        );
    }
);

scenario!(
    the_status_view_shows_last_verified_advancing_with_each_pass,
    |app| async move {
        let et = app.given_event_type(haircut());
        let _ = app.sync_once().await;
        let row = app.service_for(et).await;
        let first = app.db.service_status().await;
        assert_eq!(first.len(), 1, "{first:#?}");
        assert_eq!(first[0].service_id, row.id);
        assert_eq!(first[0].calcom_event_type_id, Some(et));
        assert_eq!(first[0].account.as_deref(), Some(ACCOUNT));
        assert_eq!(first[0].sync_status, "synced");
        assert_eq!(first[0].open_drift_fields, None);
        let verified = first[0].last_verified_at.expect("verified by the import");

        let _ = later_pass(&app).await;
        let second = app.db.service_status().await;
        let again = second[0].last_verified_at.expect("verified again");
        assert!(again > verified, "{again} is not after {verified}");
        assert_eq!(
            app.service(calsync::domain::ServiceId(row.id))
                .await
                .last_calcom_sync,
            row.last_calcom_sync,
            "the row itself is not stamped"
        );

        let _ = later_pass(&app).await;
        let third = app.db.service_status().await;
        assert!(third[0].last_verified_at.expect("verified") > again);
    }
);

scenario!(
    the_status_view_lists_open_drift_fields_and_drift_passes_write_nothing_new,
    |app| async move {
        let et = app.given_event_type(haircut());
        let _ = app.sync_once().await;
        app.edit_in_calcom(
            et,
            json!({"title": "Haircut deluxe", "lengthInMinutes": 45}),
        );

        let recorded = later_pass(&app).await;
        assert_eq!(
            only(&recorded).services_written,
            1,
            "the service now says why it is not synced"
        );
        let view = app.db.service_status().await;
        assert_eq!(view[0].sync_status, "error");
        assert_eq!(
            view[0].open_drift_fields.as_deref(),
            Some("duration_minutes,name")
        );
        let verified = view[0].last_verified_at.expect("verified");
        let before = app.services().await;

        // The same drift again: the ledger counts it, the row already says so.
        let again = later_pass(&app).await;
        assert_eq!(only(&again).services_written, 0, "{again:#?}");
        assert_eq!(app.services().await, before);
        let view = app.db.service_status().await;
        assert_eq!(
            view[0].open_drift_fields.as_deref(),
            Some("duration_minutes,name")
        );
        assert!(view[0].last_verified_at.expect("verified") > verified);

        // Cal.com goes back: the row changes, the view's drift is gone.
        app.edit_in_calcom(et, json!({"title": "Haircut", "lengthInMinutes": 30}));
        let healed = later_pass(&app).await;
        assert_eq!(only(&healed).services_written, 1, "{healed:#?}");
        let view = app.db.service_status().await;
        assert_eq!(view[0].sync_status, "synced");
        assert_eq!(view[0].open_drift_fields, None);
    }
);

scenario!(
    touch_last_calcom_sync_stamps_every_unchanged_row_as_before,
    |app| async move {
        app.set_policy(|p| p.touch_last_calcom_sync = true);
        given_services(&app, 3);
        let _ = app.sync_once().await;
        let before = app.services().await;

        let second = later_pass(&app).await;

        assert_eq!(only(&second).services_written, 3, "{second:#?}");
        let after = app.services().await;
        for ((id, old), (_, new)) in stamps(&before).into_iter().zip(stamps(&after)) {
            assert!(
                new > old,
                "service {id}: last_calcom_sync {new:?} after {old:?}"
            );
        }
        let business: Vec<_> = after.iter().map(RawService::business).collect();
        let unchanged: Vec<_> = before.iter().map(RawService::business).collect();
        assert_eq!(business, unchanged);
        let view = app.db.service_status().await;
        for (row, status) in after.iter().zip(&view) {
            assert_eq!(status.last_verified_at, row.last_calcom_sync);
        }
    }
);

scenario!(
    an_account_listing_more_than_one_read_holds_stays_steady,
    |app| async move {
        // Over 1,000 listed event types an account's services are read in chunks
        // instead of one statement; the pass must come out the same.
        given_services(&app, 1_100);
        let first = app.sync_once().await;
        assert_eq!(only(&first).imported, 1_100, "{first:#?}");

        let second = later_pass(&app).await;

        assert_eq!(only(&second).counts.in_sync, 1_100, "{second:#?}");
        assert_eq!(only(&second).imported, 0, "{second:#?}");
        assert_eq!(only(&second).services_written, 0, "{second:#?}");
    }
);
