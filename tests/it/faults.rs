//! Faults between calsync and its two counterparts, and what a pass must do
//! about each. Cal.com side: 429 blocks, 5xx, connection resets, timeouts, slow
//! answers, broken and endless bodies, proxy HTML pages, revoked keys and bad
//! records (all injected through the simulator). Database side: a daemon started
//! while the database is unreachable, and connections dropped in the middle of a
//! pass (through a TCP proxy the test controls).
//!
//! Every scenario asserts the outcome: what the report says, which rows changed
//! (read with plain SQL), what reached Cal.com (the simulator's request log), and
//! that the next pass finishes the job. Scenarios run on SQLite unless the
//! database is what is being tested.

use std::sync::Arc;
use std::time::{Duration, Instant};

use calsync::app::App;
use calsync::domain::ServiceId;
use calsync::reconcile::report::Item;
use calsync::simulate::{Fault, FaultKind, RequestLogEntry, Simulator};
use calsync::telemetry::metrics::Metrics;
use serde_json::{Value, json};

use crate::support::app::{haircut, scenario};
use crate::support::binary;
use crate::support::config::AccountSpec;
use crate::support::daemon::DaemonProcess;
use crate::support::db::{RawService, TestBackend, TestDb, backend_tests, fresh, server_tests};
use crate::support::fault_rig::{
    FIRST_BACKOFF_MS, FaultRig, MAX_ATTEMPTS, MAX_BODY_BYTES, WAIT, account, event_type,
    fault_config, open_app, series,
};
use crate::support::net::{free_port, wait_ok};
use crate::support::simulator::simulator;
use crate::support::tcp_proxy::TcpProxy;

/// The account every fault is aimed at.
const VIENNA: &str = "vienna";
const VIENNA_COMPANY: i64 = 11;
const VIENNA_KEY: &str = "cal_live_vienna_5c1d7e2f90ab34cd";
/// The account that must go on regardless.
const LISBON: &str = "lisbon";
const LISBON_COMPANY: i64 = 12;
const LISBON_KEY: &str = "cal_live_lisbon_8e0f2a4b6c1d3e5f";
/// A key Cal.com does not know (revoked).
const REVOKED: &str = "porto";
const REVOKED_COMPANY: i64 = 13;
const REVOKED_KEY: &str = "cal_live_porto_revoked_0a9b8c7d6e";

// ====================================================================== 429

/// Rebuilds the simulator's blocks from its log: a 429 outside a known block
/// starts one lasting `block`. Returns, for each entry index, the end of the block
/// in force at that entry (for 429s only).
fn block_ends(entries: &[RequestLogEntry], block_ms: u64) -> Vec<Option<u64>> {
    let mut end: Option<u64> = None;
    entries
        .iter()
        .map(|e| {
            if e.status != 429 {
                return None;
            }
            match end {
                Some(until) if e.at_ms < until => Some(until),
                _ => {
                    end = Some(e.at_ms + block_ms);
                    end
                }
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_silences_the_key_until_each_block_passes_and_the_pass_then_completes() {
    let rig = FaultRig::start(
        TestBackend::Sqlite,
        vec![AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY)],
    )
    .await;
    let ids: Vec<i64> = (0..3)
        .map(|i| {
            rig.given(
                VIENNA_KEY,
                event_type(&format!("Cut {i}"), &format!("cut-{i}"), 30),
            )
        })
        .collect();
    let first = rig.pass().await;
    assert!(!first.has_failures(), "{first:#?}");
    // Three platform edits: the pass needs a listing and three PATCHes.
    for (i, et) in ids.iter().enumerate() {
        let row = rig.row_for(*et).await.expect("imported");
        let edited = rig
            .db
            .store
            .edit_as_platform(ServiceId(row.id), Some(&format!("Cut {i} (new)")), Some(45))
            .await
            .expect("platform edit");
        assert!(edited);
    }

    // Cal.com's throttler: 3 requests a second, then the key is refused for 1 s.
    let block = Duration::from_secs(1);
    rig.sim.set_rate_limit(3, Duration::from_secs(1), block);
    rig.sim.clear_requests();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let other_client = reqwest::Client::new();
    let storm_url = |round: u32| format!("{}/v2/event-types?storm={round}", rig.sim.base_url());
    // Another user of the same key exhausts it until it is blocked.
    let exhaust = |round: u32| {
        let client = other_client.clone();
        let url = storm_url(round);
        async move {
            for _ in 0..50 {
                let status = client
                    .get(&url)
                    .bearer_auth(VIENNA_KEY)
                    .header("cal-api-version", "2024-06-14")
                    .send()
                    .await
                    .expect("the simulator answers")
                    .status();
                if status == 429 {
                    return;
                }
            }
            panic!("the key was never blocked");
        }
    };
    exhaust(0).await;
    let pass = {
        let reconciler = rig.app.reconciler.clone();
        let accounts = rig.app.settings.accounts.clone();
        let policy = rig.app.settings.policy;
        tokio::spawn(async move {
            reconciler
                .pass(
                    &accounts,
                    &accounts,
                    policy,
                    calsync::reconcile::PassOptions {
                        dry_run: false,
                        max_concurrent_accounts: 4,
                        orphan_checks_per_pass: 10,
                    },
                )
                .await
        })
    };
    // Two more blocks while the pass runs.
    for round in 1..=2 {
        tokio::time::sleep(block + Duration::from_millis(150)).await;
        exhaust(round).await;
    }
    let report = tokio::time::timeout(WAIT, pass)
        .await
        .expect("the pass finishes once the blocks pass")
        .expect("the pass task");

    let vienna = account(&report, VIENNA);
    assert_eq!(vienna.result, "success", "{vienna:#?}");
    assert_eq!(vienna.pushed, 3, "{vienna:#?}");
    for (i, et) in ids.iter().enumerate() {
        let now = rig.sim.event_type(*et).expect("exists");
        assert_eq!(now["title"], format!("Cut {i} (new)"));
        assert_eq!(now["lengthInMinutes"], 45);
        assert_eq!(rig.row_for(*et).await.expect("row").sync_status, "synced");
    }

    let mut log = rig.requests_of(VIENNA_KEY);
    log.sort_by_key(|e| (e.at_ms, e.seq));
    let ends = block_ends(&log, block.as_millis() as u64);
    let is_calsync = |e: &RequestLogEntry| !e.path.contains("storm=");
    let calsync_429s: Vec<usize> = (0..log.len())
        .filter(|&i| is_calsync(&log[i]) && log[i].status == 429)
        .collect();
    assert!(
        !calsync_429s.is_empty(),
        "calsync never met a block, so nothing was proven: {log:#?}"
    );
    // The log's clock is whole milliseconds, taken just after each decision.
    const CLOCK_SLACK_MS: u64 = 5;
    for &i in &calsync_429s {
        let until = ends[i].expect("every 429 lies in a block");
        let early: Vec<&RequestLogEntry> = log[i + 1..]
            .iter()
            .filter(|e| is_calsync(e) && e.at_ms + CLOCK_SLACK_MS < until)
            .collect();
        assert!(
            early.is_empty(),
            "after the 429 at {} ms calsync sent {early:#?} before the block ended at {until} ms",
            log[i].at_ms
        );
    }
    let last = log
        .iter()
        .rev()
        .find(|e| is_calsync(e))
        .expect("calsync sent requests");
    assert_eq!(last.status, 200, "the pass ended with a success: {log:#?}");
    assert!(
        series(
            &rig.metrics,
            "calsync_calcom_requests_total",
            &[("code", "429")]
        )
        .is_some_and(|n| n >= 1.0),
        "{}",
        rig.metrics.encode()
    );
}

// ====================================================================== listing failures

/// What a scenario expects of the failed listing.
struct ListingFault {
    fault: Fault,
    /// Words the account's error must contain.
    says: &'static [&'static str],
    /// Requests the listing may take: every attempt when retryable, else one.
    attempts: usize,
    /// The `code` label the attempts are counted under when the simulator cannot
    /// log them (a request the client gave up on is dropped before it is logged).
    unlogged_code: Option<&'static str>,
}

/// Two accounts; the fault hits only vienna's listing. Vienna has, since the last
/// pass: an event type deleted, one edited, one new, and a platform edit; a pass
/// that acted on a partial or unreadable listing would orphan, record drift,
/// import or push. None of that may happen, lisbon must reconcile in the same
/// pass, and the next pass (without the fault) must do all of it.
async fn listing_failure_changes_nothing_for_the_account(case: ListingFault) {
    let rig = FaultRig::start(
        TestBackend::Sqlite,
        vec![
            AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY),
            AccountSpec::new(LISBON, LISBON_COMPANY, LISBON_KEY),
        ],
    )
    .await;
    let gone = rig.given(VIENNA_KEY, event_type("Beard trim", "beard-trim", 15));
    let edited = rig.given(VIENNA_KEY, event_type("Balayage", "balayage", 120));
    let pending = rig.given(VIENNA_KEY, event_type("Manicure", "manicure", 45));
    rig.given(LISBON_KEY, event_type("Massage", "massage", 60));
    let first = rig.pass().await;
    assert!(!first.has_failures(), "{first:#?}");

    rig.sim.delete_event_type(gone);
    rig.edit(edited, json!({"title": "Balayage & toner"}));
    let new = rig.given(VIENNA_KEY, event_type("Lash lift", "lash-lift", 60));
    let pending_row = rig.row_for(pending).await.expect("imported");
    assert!(
        rig.db
            .store
            .edit_as_platform(ServiceId(pending_row.id), Some("Manicure deluxe"), Some(50))
            .await
            .expect("platform edit")
    );
    let lisbon_new = rig.given(LISBON_KEY, event_type("Facial", "facial", 30));
    let before = rig.rows_of(VIENNA_COMPANY).await;
    let runs_before = rig.db.count("SELECT COUNT(*) FROM calsync_runs").await;
    rig.sim.clear_requests();
    rig.sim
        .inject_fault(case.fault.clone().api_key(VIENNA_KEY).times(0));

    let report = rig.pass().await;

    let vienna = account(&report, VIENNA);
    assert_eq!(vienna.result, "failure", "{vienna:#?}");
    let error = vienna.error.clone().unwrap_or_default();
    assert!(error.starts_with("list: "), "{error}");
    for word in case.says {
        assert!(error.contains(word), "{error:?} lacks {word:?}");
    }
    assert!(!error.contains(VIENNA_KEY), "{error}");
    assert!(
        vienna.items.is_empty(),
        "a failed account plans nothing: {vienna:#?}"
    );
    assert!(report.has_failures(), "the exit code must say failure");
    assert_eq!(
        rig.rows_of(VIENNA_COMPANY).await,
        before,
        "a pass that could not list vienna changed its services"
    );
    assert!(
        rig.row_for(new).await.is_none(),
        "imported from a failed listing"
    );
    assert!(
        rig.db
            .store
            .open_drift(Some(VIENNA))
            .await
            .expect("ledger")
            .is_empty(),
        "drift recorded from a failed listing"
    );
    let vienna_requests = rig.requests_of(VIENNA_KEY);
    assert!(
        vienna_requests.iter().all(|r| r.method == "GET"),
        "pushed although the listing failed: {vienna_requests:#?}"
    );
    assert_eq!(
        rig.sim.event_type(pending).expect("exists")["title"],
        "Manicure",
        "Cal.com changed although the listing failed"
    );
    // Bounded retries.
    match case.unlogged_code {
        None => {
            let attempts = rig.wait_for_listings(VIENNA_KEY, case.attempts).await;
            assert_eq!(attempts.len(), case.attempts, "{attempts:#?}");
        }
        Some(code) => assert_eq!(
            series(
                &rig.metrics,
                "calsync_calcom_requests_total",
                &[("endpoint", "list_event_types"), ("code", code)]
            ),
            Some(case.attempts as f64),
            "{}",
            rig.metrics.encode()
        ),
    }
    // The journal keeps the failure, with the reason.
    assert_eq!(
        rig.db.count("SELECT COUNT(*) FROM calsync_runs").await,
        runs_before + 2
    );
    let runs = rig.db.store.last_runs(2).await.expect("journal");
    let failed = runs
        .iter()
        .find(|r| r.account == VIENNA)
        .expect("vienna's run is journaled");
    assert_eq!(failed.result, "failure");
    assert!(failed.error.as_deref().is_some_and(|e| !e.is_empty()));

    // The other account reconciled in the same pass.
    let lisbon = account(&report, LISBON);
    assert_eq!(lisbon.result, "success", "{lisbon:#?}");
    assert_eq!(lisbon.imported, 1);
    assert_eq!(
        rig.row_for(lisbon_new).await.expect("lisbon imported").name,
        "Facial"
    );

    // Without the fault, the next pass does what the failed one could not.
    rig.sim.clear_faults();
    let next = rig.pass().await;
    let vienna = account(&next, VIENNA);
    assert_eq!(vienna.result, "success", "{vienna:#?}");
    assert_eq!(vienna.counts.orphans, 1, "{vienna:#?}");
    assert_eq!(vienna.counts.drifted, 1, "{vienna:#?}");
    assert_eq!(vienna.imported, 1, "{vienna:#?}");
    assert_eq!(vienna.pushed, 1, "{vienna:#?}");
    assert_eq!(
        rig.sim.event_type(pending).expect("exists")["title"],
        "Manicure deluxe"
    );
    assert_eq!(rig.row_for(new).await.expect("imported").name, "Lash lift");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_with_backoff_then_fails_the_account_and_changes_nothing() {
    listing_failure_changes_nothing_for_the_account(ListingFault {
        fault: Fault::new(FaultKind::Status {
            status: 503,
            body: None,
        }),
        says: &["HTTP 503"],
        attempts: MAX_ATTEMPTS,
        unlogged_code: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_are_retried_then_fail_the_account_and_change_nothing() {
    listing_failure_changes_nothing_for_the_account(ListingFault {
        fault: Fault::new(FaultKind::Reset),
        says: &["list_event_types", "talking to Cal.com"],
        attempts: MAX_ATTEMPTS,
        unlogged_code: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_slower_than_the_timeout_are_retried_then_fail_the_account_and_change_nothing() {
    listing_failure_changes_nothing_for_the_account(ListingFault {
        fault: Fault::new(FaultKind::Delay { ms: 1_600 }),
        says: &["timeout"],
        attempts: MAX_ATTEMPTS,
        unlogged_code: Some("timeout"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_fails_the_account_cleanly_and_changes_nothing() {
    listing_failure_changes_nothing_for_the_account(ListingFault {
        fault: Fault::new(FaultKind::MalformedJson),
        says: &["not the expected JSON", "invalid JSON"],
        attempts: 1,
        unlogged_code: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_fails_the_account_cleanly_and_changes_nothing() {
    listing_failure_changes_nothing_for_the_account(ListingFault {
        fault: Fault::new(FaultKind::Truncated),
        says: &["list_event_types", "talking to Cal.com"],
        attempts: MAX_ATTEMPTS,
        unlogged_code: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_proxy_page_with_200_fails_the_account_cleanly_and_changes_nothing() {
    listing_failure_changes_nothing_for_the_account(ListingFault {
        fault: Fault::new(FaultKind::Html { status: 200 }),
        says: &["HTML page"],
        attempts: 1,
        unlogged_code: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_502_page_is_retried_then_fails_the_account_cleanly_and_changes_nothing() {
    listing_failure_changes_nothing_for_the_account(ListingFault {
        fault: Fault::new(FaultKind::Html { status: 502 }),
        says: &["HTTP 502", "HTML page"],
        attempts: MAX_ATTEMPTS,
        unlogged_code: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_body_is_cut_off_at_max_body_bytes_without_reading_it() {
    // A response no bigger than the cap must pass, so the cap is the only reason.
    let rig = FaultRig::start(
        TestBackend::Sqlite,
        vec![AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY)],
    )
    .await;
    let et = rig.given(VIENNA_KEY, event_type("Haircut", "haircut", 30));
    assert!(!rig.pass().await.has_failures());
    let before = rig.rows_of(VIENNA_COMPANY).await;
    let bytes_before = rig.wire.downstream_bytes();
    rig.sim.clear_requests();
    rig.sim.inject_fault(
        Fault::new(FaultKind::HugeBody {
            bytes: 100 * 1024 * 1024,
        })
        .api_key(VIENNA_KEY),
    );
    rig.edit(et, json!({"title": "Haircut (edited)"}));

    let started = Instant::now();
    let report = rig.pass().await;
    let took = started.elapsed();

    let vienna = account(&report, VIENNA);
    assert_eq!(vienna.result, "failure", "{vienna:#?}");
    let error = vienna.error.clone().unwrap_or_default();
    assert!(error.contains("calcom.max_body_bytes"), "{error}");
    assert!(error.contains(&MAX_BODY_BYTES.to_string()), "{error}");
    assert_eq!(rig.rows_of(VIENNA_COMPANY).await, before);
    assert_eq!(
        rig.requests_of(VIENNA_KEY).len(),
        1,
        "a body over the cap is not retried"
    );
    // calsync stopped reading soon after the cap: what crossed the wire is the cap
    // plus socket buffers, nowhere near the 100 MB the server was sending.
    let read = rig.wire.downstream_bytes() - bytes_before;
    assert!(
        read < 24 * 1024 * 1024,
        "calsync read {read} bytes of a body capped at {MAX_BODY_BYTES} (took {took:?})"
    );
    // And the next pass is unaffected.
    let next = rig.pass().await;
    assert_eq!(account(&next, VIENNA).counts.drifted, 1, "{next:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_within_the_timeout_are_waited_for_without_retrying() {
    let rig = FaultRig::start(
        TestBackend::Sqlite,
        vec![
            AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY),
            AccountSpec::new(LISBON, LISBON_COMPANY, LISBON_KEY),
        ],
    )
    .await;
    let et = rig.given(VIENNA_KEY, event_type("Haircut", "haircut", 30));
    rig.given(LISBON_KEY, event_type("Massage", "massage", 60));
    // Every request of vienna (listing and PATCH) takes 600 ms; the timeout is 1 s.
    rig.sim.inject_fault(
        Fault::new(FaultKind::Delay { ms: 600 })
            .api_key(VIENNA_KEY)
            .times(0),
    );
    let first = rig.pass().await;
    assert!(!first.has_failures(), "{first:#?}");
    let row = rig
        .row_for(et)
        .await
        .expect("imported through slow answers");
    assert!(
        rig.db
            .store
            .edit_as_platform(ServiceId(row.id), Some("Haircut & wash"), None)
            .await
            .expect("platform edit")
    );
    rig.sim.clear_requests();

    let report = rig.pass().await;

    assert!(!report.has_failures(), "{report:#?}");
    assert_eq!(account(&report, VIENNA).pushed, 1);
    assert_eq!(
        rig.sim.event_type(et).expect("exists")["title"],
        "Haircut & wash"
    );
    assert_eq!(rig.row_for(et).await.expect("row").sync_status, "synced");
    let sent: Vec<(String, String)> = rig
        .requests_of(VIENNA_KEY)
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        sent,
        vec![
            ("GET".to_owned(), "/v2/event-types".to_owned()),
            ("PATCH".to_owned(), format!("/v2/event-types/{et}")),
        ],
        "a slow answer is not a reason to send anything twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_account_holds_back_the_accounts_past_the_report_window() {
    // Reports are handed out in config order: while the first account is slow,
    // only the accounts inside the window may run, so the reports waiting for
    // it stay bounded (instead of every other account's).
    let window = calsync::reconcile::REORDER_WINDOW
        * calsync::config::SyncConfig::default().max_concurrent_accounts;
    let specs: Vec<AccountSpec> = (0..window + 6)
        .map(|i| {
            AccountSpec::new(
                &format!("acct-{i:03}"),
                i as i64 + 1,
                &format!("cal_window_{i:03}"),
            )
        })
        .collect();
    let rig = FaultRig::start(TestBackend::Sqlite, specs.clone()).await;
    rig.sim.inject_fault(
        Fault::new(FaultKind::Delay { ms: 800 })
            .api_key(&specs[0].api_key)
            .path_prefix("/v2/event-types"),
    );

    let report = rig.pass().await;

    assert!(!report.has_failures(), "{report:#?}");
    let names: Vec<&str> = report.accounts.iter().map(|a| a.account.as_str()).collect();
    let expected: Vec<&str> = specs.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, expected, "reports come in config order");
    let answered = |i: usize| {
        rig.requests_of(&specs[i].api_key)
            .into_iter()
            .find(|r| r.path.starts_with("/v2/event-types"))
            .unwrap_or_else(|| panic!("no listing request of account {i}"))
            .seq
    };
    let slow = answered(0);
    assert!(
        (1..window).any(|i| answered(i) < slow),
        "accounts inside the window run while the first one is slow"
    );
    for i in window..specs.len() {
        assert!(
            answered(i) > slow,
            "account {i} started while account 0, {window} places before it, was still running"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_backoff_grows_between_attempts() {
    let rig = FaultRig::start(
        TestBackend::Sqlite,
        vec![AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY)],
    )
    .await;
    rig.sim.inject_fault(
        Fault::new(FaultKind::Status {
            status: 500,
            body: None,
        })
        .api_key(VIENNA_KEY)
        .times(0),
    );
    let report = rig.pass().await;
    assert_eq!(account(&report, VIENNA).result, "failure");
    let log = rig.requests_of(VIENNA_KEY);
    assert_eq!(log.len(), MAX_ATTEMPTS, "{log:#?}");
    // Attempt n+1 waits at least first_backoff * 2^n (jitter only adds to it).
    for (n, pair) in log.windows(2).enumerate() {
        let gap = pair[1].at_ms - pair[0].at_ms;
        let floor = FIRST_BACKOFF_MS << n;
        assert!(
            gap + 1 >= floor,
            "retry {} came {gap} ms after the previous attempt; the backoff is at least {floor} ms",
            n + 1
        );
    }
    assert_eq!(
        series(
            &rig.metrics,
            "calsync_calcom_requests_total",
            &[("endpoint", "list_event_types"), ("code", "500")]
        ),
        Some(MAX_ATTEMPTS as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_listing_exits_once_with_2_and_names_the_account() {
    let rig = FaultRig::start(
        TestBackend::Sqlite,
        vec![
            AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY),
            AccountSpec::new(LISBON, LISBON_COMPANY, LISBON_KEY),
        ],
    )
    .await;
    rig.given(VIENNA_KEY, event_type("Haircut", "haircut", 30));
    let lisbon = rig.given(LISBON_KEY, event_type("Massage", "massage", 60));
    rig.sim.inject_fault(
        Fault::new(FaultKind::Status {
            status: 502,
            body: None,
        })
        .api_key(VIENNA_KEY)
        .times(0),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let config = rig.write_cli_config(dir.path());

    let out = tokio::time::timeout(
        WAIT,
        binary::calsync()
            .args(["--config", config.to_str().expect("UTF-8"), "once"])
            .output(),
    )
    .await
    .expect("once finishes")
    .expect("running calsync");
    let stdout = String::from_utf8_lossy(&out.stdout);

    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("account vienna: failure"), "{stdout}");
    assert!(stdout.contains("HTTP 502"), "{stdout}");
    assert!(stdout.contains("account lisbon: success"), "{stdout}");
    assert!(rig.rows_of(VIENNA_COMPANY).await.is_empty());
    assert!(rig.row_for(lisbon).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_team_listing_fails_the_whole_account_and_orphans_nothing() {
    let mut vienna = AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY);
    vienna.team_ids.push(77);
    let rig = FaultRig::start(TestBackend::Sqlite, vec![vienna]).await;
    rig.sim.create_team(77, &[VIENNA_KEY]);
    let personal = rig.given(VIENNA_KEY, event_type("Haircut", "haircut", 30));
    let team = rig
        .sim
        .create_team_event_type(77, event_type("Team colour", "team-colour", 90))["id"]
        .as_i64()
        .expect("team event type id");
    let first = rig.pass().await;
    assert!(!first.has_failures(), "{first:#?}");
    assert!(rig.row_for(team).await.is_some() && rig.row_for(personal).await.is_some());
    let before = rig.rows_of(VIENNA_COMPANY).await;
    // The personal listing works; the team's fails.
    rig.sim.inject_fault(
        Fault::new(FaultKind::Status {
            status: 500,
            body: None,
        })
        .path_prefix("/v2/teams/77/event-types")
        .times(0),
    );

    let report = rig.pass().await;

    let vienna = account(&report, VIENNA);
    assert_eq!(vienna.result, "failure", "{vienna:#?}");
    assert!(
        vienna
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("list_team_event_types"),
        "{vienna:#?}"
    );
    assert_eq!(
        rig.rows_of(VIENNA_COMPANY).await,
        before,
        "a partial listing orphaned or touched services"
    );
}

// Only Cal.com's own "Event types not found" 404 means an empty personal
// listing; a proxy's 404 page fails the account instead of orphaning services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_404_page_for_the_personal_listing_orphans_nothing() {
    let mut vienna = AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY);
    vienna.team_ids.push(78);
    let rig = FaultRig::start(TestBackend::Sqlite, vec![vienna]).await;
    rig.sim.create_team(78, &[VIENNA_KEY]);
    let personal = rig.given(VIENNA_KEY, event_type("Haircut", "haircut", 30));
    rig.sim
        .create_team_event_type(78, event_type("Team colour", "team-colour", 90));
    let first = rig.pass().await;
    assert!(!first.has_failures(), "{first:#?}");
    let before = rig.rows_of(VIENNA_COMPANY).await;
    // A load balancer answers the personal listing with its own 404 page; the
    // team listing works.
    rig.sim.inject_fault(
        Fault::new(FaultKind::Html { status: 404 })
            .method("GET")
            .path_prefix("/v2/event-types")
            .times(0),
    );

    let report = rig.pass().await;

    let vienna = account(&report, VIENNA);
    assert_eq!(
        vienna.counts.orphans, 0,
        "an HTML 404 page was taken for an empty personal listing: {vienna:#?}"
    );
    assert_eq!(rig.rows_of(VIENNA_COMPANY).await.len(), before.len());
    let row = rig.row_for(personal).await.expect("still linked");
    assert_ne!(row.sync_status, "error", "{row:#?}");
}

// ====================================================================== bad records

/// Event types as someone could leave them in Cal.com, each with the words its
/// per-record error must contain.
fn bad_records() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"title": "Wrong length type", "slug": "bad-1", "lengthInMinutes": "60"}),
            "lengthInMinutes is a string",
        ),
        (
            json!({"title": 42, "slug": "bad-2", "lengthInMinutes": 30}),
            "title is a number",
        ),
        (
            json!({"title": "Hidden as text", "slug": "bad-3", "lengthInMinutes": 30, "hidden": "no"}),
            "hidden is a string",
        ),
        (
            json!({"title": "Zero minutes", "slug": "bad-4", "lengthInMinutes": 0}),
            "lengthInMinutes 0 is out of range",
        ),
        (
            json!({"title": "Too long", "slug": "bad-5", "lengthInMinutes": 100000}),
            "lengthInMinutes 100000 is out of range",
        ),
        (
            json!({"title": "t".repeat(10_000), "slug": "bad-6", "lengthInMinutes": 30}),
            "title is 10000 characters long",
        ),
        (
            json!({"title": null, "slug": "bad-7", "lengthInMinutes": 30}),
            "title is missing",
        ),
        (
            json!({"title": "Negative price", "slug": "bad-8", "lengthInMinutes": 30,
                   "price": -500, "currency": "eur", "metadata": {}}),
            "price -500 is negative",
        ),
    ]
}

const EMOJI_RTL: &str = "💆‍♀️ تدليك عميق — עיסוי 🇵🇹";
const EMOJI_RTL_EDIT: &str = "🧖🏽 علاج الوجه ‏(60)‏ ✨";

backend_tests!(
    bad_records_are_rejected_one_by_one_and_everything_else_reconciles,
    |backend: TestBackend| async move {
        let rig = FaultRig::start(
            backend,
            vec![
                AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY),
                AccountSpec::new(LISBON, LISBON_COMPANY, LISBON_KEY),
            ],
        )
        .await;
        let emoji = rig.given(VIENNA_KEY, event_type(EMOJI_RTL, "massage-rtl", 60));
        let plain = rig.given(VIENNA_KEY, event_type("Haircut", "haircut", 30));
        let later_bad_length = rig.given(VIENNA_KEY, event_type("Blow-dry", "blow-dry", 30));
        let later_bad_title = rig.given(VIENNA_KEY, event_type("Facial", "facial", 45));
        let bad: Vec<(i64, &str)> = bad_records()
            .into_iter()
            .map(|(fields, says)| (rig.given(VIENNA_KEY, fields), says))
            .collect();
        let lisbon = rig.given(LISBON_KEY, event_type("Massage", "massage", 60));

        let first = rig.pass().await;

        let vienna = account(&first, VIENNA);
        assert_eq!(vienna.result, "partial", "{vienna:#?}");
        assert_eq!(vienna.imported, 4, "{vienna:#?}");
        assert_eq!(vienna.counts.unreadable, bad.len(), "{vienna:#?}");
        assert!(
            first.has_failures(),
            "unreadable records make the exit code say failure"
        );
        for (id, says) in &bad {
            let error = vienna
                .items
                .iter()
                .find_map(|i| match i {
                    Item::Unreadable {
                        event_type_id: Some(e),
                        error,
                    } if e.0 == *id => Some(error.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no error for event type {id}: {vienna:#?}"));
            assert!(error.starts_with(&format!("event type {id}: ")), "{error}");
            assert!(error.contains(says), "{error:?} lacks {says:?}");
            assert!(error.len() < 400, "the error quotes the bad value: {error}");
            assert!(
                rig.row_for(*id).await.is_none(),
                "event type {id} was imported"
            );
        }
        assert_eq!(account(&first, LISBON).imported, 1);
        assert!(rig.row_for(lisbon).await.is_some());
        // The emoji and right-to-left title is stored exactly.
        let stored = rig.row_for(emoji).await.expect("imported");
        assert_eq!(stored.name, EMOJI_RTL);
        assert_eq!(rig.rows_of(VIENNA_COMPANY).await.len(), 4);

        // Linked event types turning bad: their services keep their values.
        let before_length = rig.row_for(later_bad_length).await.expect("row");
        let before_title = rig.row_for(later_bad_title).await.expect("row");
        rig.edit(later_bad_length, json!({"lengthInMinutes": 0}));
        rig.edit(
            later_bad_title,
            json!({"title": "f".repeat(10_000), "description": null}),
        );
        let plain_row = rig.row_for(plain).await.expect("row");
        assert!(
            rig.db
                .store
                .edit_as_platform(ServiceId(plain_row.id), Some("Haircut & wash"), Some(40))
                .await
                .expect("platform edit")
        );

        let second = rig.pass().await;

        let vienna = account(&second, VIENNA);
        assert_eq!(vienna.result, "partial", "{vienna:#?}");
        assert_eq!(vienna.counts.unreadable, bad.len() + 2, "{vienna:#?}");
        assert_eq!(
            vienna.counts.drifted, 0,
            "bad values are not drift: {vienna:#?}"
        );
        assert_eq!(
            vienna.counts.orphans, 0,
            "unreadable is not gone: {vienna:#?}"
        );
        assert_eq!(vienna.pushed, 1, "{vienna:#?}");
        for (id, before, says) in [
            (
                later_bad_length,
                &before_length,
                "lengthInMinutes 0 is out of range",
            ),
            (
                later_bad_title,
                &before_title,
                "title is 10000 characters long",
            ),
        ] {
            let now = rig.row_for(id).await.expect("still linked");
            assert_eq!(now.business(), before.business(), "event type {id}");
            assert_eq!(now.sync_status, "error");
            let error = now.sync_error.clone().unwrap_or_default();
            assert!(error.contains(&format!("event type {id}")), "{error}");
            assert!(error.contains(says), "{error}");
            assert!(error.len() < 400, "{error}");
        }
        assert!(
            rig.db
                .store
                .open_drift(None)
                .await
                .expect("ledger")
                .is_empty()
        );
        assert_eq!(
            rig.sim.event_type(plain).expect("exists")["title"],
            "Haircut & wash"
        );
        let emoji_row = rig.row_for(emoji).await.expect("row");
        assert_eq!(emoji_row.name, EMOJI_RTL, "in sync, untouched");

        // Round trip: a platform edit to another such title reaches Cal.com exactly
        // and is then in sync.
        assert!(
            rig.db
                .store
                .edit_as_platform(ServiceId(emoji_row.id), Some(EMOJI_RTL_EDIT), None)
                .await
                .expect("platform edit")
        );
        let third = rig.pass().await;
        assert_eq!(account(&third, VIENNA).pushed, 1, "{third:#?}");
        assert_eq!(
            rig.sim.event_type(emoji).expect("exists")["title"],
            EMOJI_RTL_EDIT
        );
        let fourth = rig.pass().await;
        let vienna = account(&fourth, VIENNA);
        assert_eq!(
            (vienna.counts.drifted, vienna.pushed),
            (0, 0),
            "{vienna:#?}"
        );
        let emoji_row = rig.row_for(emoji).await.expect("row");
        assert_eq!(emoji_row.name, EMOJI_RTL_EDIT);
        assert_eq!(emoji_row.sync_status, "synced");
    }
);

// An item whose id cannot be read makes the listing partial: nothing is orphaned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_record_whose_id_cannot_be_read_orphans_nothing() {
    let rig = FaultRig::start(
        TestBackend::Sqlite,
        vec![AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY)],
    )
    .await;
    let kept = rig.given(VIENNA_KEY, event_type("Haircut", "haircut", 30));
    let mangled = rig.given(VIENNA_KEY, event_type("Facial", "facial", 45));
    let first = rig.pass().await;
    assert!(!first.has_failures(), "{first:#?}");
    let before = rig.row_for(mangled).await.expect("imported");

    // Cal.com (or something between) answers the listing with the second id as a
    // string: every other field is as Cal.com stores it.
    let mut bad = rig.sim.event_type(mangled).expect("exists");
    bad["id"] = json!(mangled.to_string());
    let listing = json!({
        "status": "success",
        "data": [rig.sim.event_type(kept).expect("exists"), bad],
    });
    rig.sim.inject_fault(
        Fault::new(FaultKind::Status {
            status: 200,
            body: Some(listing.to_string()),
        })
        .method("GET")
        .path_prefix("/v2/event-types")
        .api_key(VIENNA_KEY),
    );

    let report = rig.pass().await;

    let vienna = account(&report, VIENNA);
    assert_eq!(vienna.result, "partial", "{vienna:#?}");
    assert_eq!(vienna.counts.unreadable, 1, "{vienna:#?}");
    assert!(
        report.has_failures(),
        "an unreadable record makes the exit code 2"
    );
    let after = rig.row_for(mangled).await.expect("still linked");
    assert_eq!(after.business(), before.business());
    assert_eq!(
        vienna.counts.orphans, 0,
        "a service was orphaned although its event type is still listed: {vienna:#?}\nrow: {after:#?}"
    );
    assert_ne!(after.sync_status, "error", "{after:#?}");
}

// ====================================================================== 401

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_fails_only_its_account_with_a_clear_error_and_is_counted() {
    let revoked = AccountSpec::new(REVOKED, REVOKED_COMPANY, REVOKED_KEY).revoked();
    let rig = FaultRig::start(
        TestBackend::Sqlite,
        vec![
            revoked,
            AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY),
        ],
    )
    .await;
    let et = rig.given(VIENNA_KEY, event_type("Haircut", "haircut", 30));

    let report = rig.pass().await;

    let porto = account(&report, REVOKED);
    assert_eq!(porto.result, "failure", "{porto:#?}");
    let error = porto.error.clone().unwrap_or_default();
    assert!(
        error.contains("rejected the API key of account porto"),
        "the error names the account: {error}"
    );
    assert!(error.contains("HTTP 401"), "{error}");
    assert!(!error.contains(REVOKED_KEY), "{error}");
    assert!(report.has_failures());
    assert_eq!(
        series(
            &rig.metrics,
            "calsync_calcom_requests_total",
            &[("endpoint", "list_event_types"), ("code", "401")]
        ),
        Some(1.0),
        "one 401, counted, and not retried:\n{}",
        rig.metrics.encode()
    );
    assert_eq!(
        series(
            &rig.metrics,
            "calsync_reconcile_runs_total",
            &[("account", REVOKED), ("result", "failure")]
        ),
        Some(1.0)
    );
    assert!(rig.rows_of(REVOKED_COMPANY).await.is_empty());
    // The other account goes on.
    assert_eq!(account(&report, VIENNA).result, "success");
    assert!(rig.row_for(et).await.is_some());
    let runs = rig.db.store.last_runs(5).await.expect("journal");
    let journaled = runs
        .iter()
        .find(|r| r.account == REVOKED)
        .expect("the failure is journaled");
    assert_eq!(journaled.result, "failure");
    assert!(
        journaled
            .error
            .as_deref()
            .is_some_and(|e| e.contains("account porto") && !e.contains(REVOKED_KEY)),
        "{journaled:?}"
    );
}

// ====================================================================== database

// A failed pass whose journal line cannot be written either (here: the journal
// table is gone) is still reported, counted, and its WARN line and counter agree.
scenario!(
    a_failed_pass_the_journal_cannot_record_is_still_counted_and_said,
    |app| async move {
        app.given_event_type(haircut());
        app.db.exec("DROP TABLE calsync_runs").await;

        let report = app.sync_once().await;

        let berlin = &report.accounts[0];
        assert_eq!(berlin.result, "failure", "{berlin:#?}");
        let logs = app.logs();
        let unrecorded: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("Could not record the failed run in calsync_runs"))
            .collect();
        assert_eq!(unrecorded.len(), 1, "{logs}");
        assert!(unrecorded[0].contains(" WARN "), "{logs}");
        assert!(unrecorded[0].contains("account=\"berlin\""), "{logs}");
        assert_eq!(
            app.metric("calsync_run_record_failures_total{account=\"berlin\"}"),
            Some(1.0)
        );
        assert_eq!(
            app.metric("calsync_reconcile_runs_total{account=\"berlin\",result=\"failure\"}"),
            Some(1.0)
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_waits_for_an_unreachable_database_says_why_and_then_reconciles_without_restart()
{
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = fresh(TestBackend::Postgres).await;
    let proxy = TcpProxy::start(db.server_addr(), false).await;
    let sim = simulator(&[VIENNA_KEY], 3).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = fault_config(
        &proxy.database_url(&db),
        &sim.base_url(),
        &[AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY)],
    )
    .set("sync.schedule", "0 0 0 1 1 *")
    .set("sync.jitter_secs", 0)
    .set("server.listen", format!("127.0.0.1:{port}"))
    .write(dir.path().join("calsync.toml"));
    let mut daemon = DaemonProcess::start(&config, port, dir.path().join("calsync.out"), |_| {});
    let http = daemon.http.clone();
    let readyz = daemon.url("/readyz");

    // Not ready, and the reason names the database problem.
    let deadline = Instant::now() + WAIT;
    let reason = loop {
        if let Ok(r) = http.get(&readyz).send().await {
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 503, "ready without a database: {body}");
            let reason = body["reason"].as_str().unwrap_or_default().to_owned();
            if proxy.accepted() > 0 && reason.contains("cannot") {
                break reason;
            }
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never explained the failure"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(reason.starts_with("database"), "{reason}");
    assert!(reason.contains("PostgreSQL"), "{reason}");
    assert!(
        reason.contains(&format!("127.0.0.1:{}", proxy.addr.port())),
        "{reason}"
    );
    assert!(db.raw_services().await.is_empty());

    // The database comes back: the same process connects, passes and is ready.
    proxy.set_forwarding(true);
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(r) = http.get(&readyz).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            daemon.child.try_wait().expect("daemon status").is_none(),
            "the daemon exited instead of waiting for the database"
        );
        assert!(
            Instant::now() < deadline,
            "never ready after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        daemon.child.try_wait().expect("daemon status").is_none(),
        "no restart"
    );
    assert_eq!(
        db.raw_services().await.len(),
        3,
        "the first pass imported the catalogue"
    );

    // Lost again while running: not ready, saying why; back: ready again.
    proxy.set_forwarding(false);
    proxy.cut_all();
    let deadline = Instant::now() + WAIT;
    loop {
        let r = http.get(&readyz).send().await.expect("the daemon answers");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status == 503 {
            let reason = body["reason"].as_str().unwrap_or_default();
            assert!(reason.starts_with("database"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still ready without a database: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.set_forwarding(true);
    wait_ok(&http, &readyz).await;
    assert!(
        daemon.child.try_wait().expect("daemon status").is_none(),
        "no restart"
    );
    daemon.stop(WAIT).await;
}

/// Everything pass 2 of the mid-pass scenarios is meant to write.
struct MidPass {
    drifted: i64,
    pending: i64,
    new: i64,
    in_sync: i64,
}

/// Pass 1 directly, then a second calsync whose database connections go through
/// `proxy`, with a drift, a pending platform edit (pushed with a slow PATCH) and a
/// new event type waiting.
async fn mid_pass_setup(db: &TestDb, sim: &Simulator, proxy: &TcpProxy) -> (App, MidPass) {
    let accounts = [AccountSpec::new(VIENNA, VIENNA_COMPANY, VIENNA_KEY)];
    let direct = open_app(
        &db.url,
        &sim.base_url(),
        &accounts,
        Arc::new(Metrics::new()),
    )
    .await;
    let given = |title: &str, slug: &str| {
        sim.create_event_type(VIENNA_KEY, event_type(title, slug, 30))["id"]
            .as_i64()
            .expect("id")
    };
    let drifted = given("Haircut", "haircut");
    let pending = given("Manicure", "manicure");
    let in_sync = given("Facial", "facial");
    let first = direct.pass(&[], false).await.expect("pass");
    assert!(!first.has_failures(), "{first:#?}");
    drop(direct);

    assert!(sim.edit_event_type(drifted, json!({"title": "Haircut (Cal.com)"})));
    let pending_row = db
        .raw_services()
        .await
        .into_iter()
        .find(|s| s.calcom_event_type_id == Some(pending))
        .expect("imported");
    assert!(
        db.store
            .edit_as_platform(ServiceId(pending_row.id), Some("Manicure deluxe"), Some(50))
            .await
            .expect("platform edit")
    );
    let new = given("Lash lift", "lash-lift");
    // A fresh store: its statements are prepared (sent in clear) on first use.
    let through = open_app(
        &proxy.database_url(db),
        &sim.base_url(),
        &accounts,
        Arc::new(Metrics::new()),
    )
    .await;
    (
        through,
        MidPass {
            drifted,
            pending,
            new,
            in_sync,
        },
    )
}

/// What of pass 2's writes is in the database: (drift recorded, pending confirmed,
/// new imported, in-sync service verified).
async fn landed(db: &TestDb, m: &MidPass, before: &[RawService]) -> [bool; 4] {
    let rows = db.raw_services().await;
    let row = |et: i64| rows.iter().find(|s| s.calcom_event_type_id == Some(et));
    let stamp = |et: i64| row(et).and_then(|s| s.last_calcom_sync);
    let before_stamp = |et: i64| {
        before
            .iter()
            .find(|s| s.calcom_event_type_id == Some(et))
            .and_then(|s| s.last_calcom_sync)
    };
    let status = db.service_status().await;
    let verified = |et: i64| {
        status
            .iter()
            .find(|s| s.calcom_event_type_id == Some(et))
            .and_then(|s| s.last_verified_at)
    };
    [
        !db.store.open_drift(None).await.expect("ledger").is_empty()
            && stamp(m.drifted) != before_stamp(m.drifted),
        row(m.pending).is_some_and(|s| s.sync_status == "synced"),
        row(m.new).is_some(),
        // An unchanged row is not stamped: its account's verification time is.
        verified(m.in_sync) > before_stamp(m.in_sync),
    ]
}

async fn next_pass_finishes_the_job(app: &App, db: &TestDb, sim: &Simulator, m: &MidPass) {
    let next = app.pass(&[], false).await.expect("pass");
    assert!(!next.has_failures(), "{next:#?}");
    let rows = db.raw_services().await;
    let row = |et: i64| {
        rows.iter()
            .find(|s| s.calcom_event_type_id == Some(et))
            .unwrap_or_else(|| panic!("no service for event type {et}"))
    };
    assert_eq!(row(m.pending).sync_status, "synced");
    assert_eq!(row(m.pending).name, "Manicure deluxe");
    assert_eq!(
        sim.event_type(m.pending).expect("exists")["title"],
        "Manicure deluxe"
    );
    assert_eq!(row(m.new).name, "Lash lift");
    assert_eq!(row(m.drifted).name, "Haircut", "drift is never applied");
    let drift = db.store.open_drift(None).await.expect("ledger");
    assert_eq!(drift.len(), 1, "{drift:#?}");
    assert_eq!(drift[0].calcom_value, "Haircut (Cal.com)");
}

server_tests!(
    a_connection_cut_inside_the_account_transaction_leaves_nothing_and_the_next_pass_finishes,
    |backend: TestBackend| async move {
        let db = fresh(backend).await;
        let sim = simulator(&[VIENNA_KEY], 0).await;
        let proxy = TcpProxy::start(db.server_addr(), true).await;
        let (app, m) = mid_pass_setup(&db, &sim, &proxy).await;
        let before = db.raw_services().await;
        let runs_before = db.count("SELECT COUNT(*) FROM calsync_runs").await;
        // The journal line comes last but one (the account's verification time
        // follows): by then every write of services and the ledger has been
        // sent and executed, uncommitted.
        proxy.cut_when_client_sends(b"calsync_runs");

        let report = tokio::time::timeout(WAIT, app.pass(&[], false))
            .await
            .expect("the pass finishes")
            .expect("pass");

        assert!(
            proxy.fired(),
            "the transaction never reached its journal line"
        );
        let vienna = account(&report, VIENNA);
        assert_eq!(vienna.result, "failure", "{vienna:#?}");
        assert!(
            vienna
                .error
                .as_deref()
                .unwrap_or_default()
                .starts_with("write: "),
            "{vienna:#?}"
        );
        assert_eq!(
            db.raw_services().await,
            before,
            "part of a rolled-back account transaction is visible"
        );
        assert_eq!(landed(&db, &m, &before).await, [false; 4]);
        let runs = db.store.last_runs(10).await.expect("journal");
        assert!(
            runs.iter().filter(|r| r.result == "success").count()
                == usize::try_from(runs_before).expect("count"),
            "the rolled-back run line is visible: {runs:#?}"
        );

        next_pass_finishes_the_job(&app, &db, &sim, &m).await;
    }
);

server_tests!(
    connections_dropped_during_a_slow_push_leave_all_or_nothing_and_the_next_pass_finishes,
    |backend: TestBackend| async move {
        let db = fresh(backend).await;
        let sim = simulator(&[VIENNA_KEY], 0).await;
        let proxy = TcpProxy::start(db.server_addr(), true).await;
        let (app, m) = mid_pass_setup(&db, &sim, &proxy).await;
        let before = db.raw_services().await;
        sim.clear_requests();
        sim.inject_fault(Fault::new(FaultKind::Delay { ms: 1_500 }).method("PATCH"));

        let app = Arc::new(app);
        let pass = {
            let app = app.clone();
            tokio::spawn(async move { app.pass(&[], false).await })
        };
        // The listing is logged when answered; the PATCH follows the load.
        let deadline = Instant::now() + WAIT;
        while !sim.requests().iter().any(|r| r.method == "GET") {
            assert!(Instant::now() < deadline, "the pass never listed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let open = proxy.open();
        let accepted = proxy.accepted();
        assert!(open > 0, "no database connection was open to be dropped");
        proxy.cut_all();
        let report = tokio::time::timeout(WAIT, pass)
            .await
            .expect("the pass finishes")
            .expect("pass task")
            .expect("pass");

        let vienna = account(&report, VIENNA);
        let landed = landed(&db, &m, &before).await;
        match vienna.result {
            "success" => {
                assert_eq!(landed, [true; 4], "a pass reported success: {vienna:#?}");
                assert!(
                    proxy.accepted() > accepted,
                    "the write went through a connection opened after the drop"
                );
            }
            _ => {
                assert_eq!(landed, [false; 4], "a failed pass left part of its writes");
                assert_eq!(db.raw_services().await, before);
            }
        }

        next_pass_finishes_the_job(&app, &db, &sim, &m).await;
    }
);
