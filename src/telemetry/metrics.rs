//! Every Prometheus metric calsync exports, in one place, on one registry that
//! [`Metrics`] owns (never the crate-global default registry, so each test can
//! build its own). The names are a public contract: `dashboards/calsync.json`,
//! `alerts/calsync.rules.yml` and operators' own queries use them verbatim, so a
//! rename here is a breaking change for all of them. Label values come from
//! closed sets (the consts below, [`Field`], [`SyncStatus`]) or from configured
//! account names; never ids, error text, URLs or secrets, which would blow up
//! cardinality or leak data into the monitoring system.

use prometheus::{Encoder, Gauge, IntCounter, IntGauge, Opts, Registry, TextEncoder};

use super::compact::{
    self, CounterFamily, FloatGaugeFamily, GaugeFamily, HistogramFamily, Interner,
};

use crate::domain::{Field, GuardReason, SyncStatus};

/// Values of the `result` label on `calsync_pushed_total` and
/// `calsync_reconcile_runs_total`.
pub mod result {
    /// The push or pass completed.
    pub const SUCCESS: &str = "success";
    /// The push or pass failed; the log line says why.
    pub const FAILURE: &str = "failure";
    /// The pass committed, but a record was unreadable or a push failed.
    pub const PARTIAL: &str = "partial";
    /// The blast-radius guard held the account: nothing was written.
    pub const HELD: &str = "held";
    /// Every value of a push result, for code that must visit each label set.
    pub const ALL: [&str; 2] = [SUCCESS, FAILURE];
    /// Every value of a pass result.
    pub const PASS: [&str; 4] = [SUCCESS, PARTIAL, HELD, FAILURE];
}

/// Values of the `endpoint` label on the `calsync_calcom_request*` metrics: one per
/// Cal.com API v2 operation calsync performs, never the URL path (which holds ids).
pub mod endpoint {
    /// `GET /v2/event-types` for the key's own user.
    pub const LIST_EVENT_TYPES: &str = "list_event_types";
    /// `GET /v2/teams/{teamId}/event-types`.
    pub const LIST_TEAM_EVENT_TYPES: &str = "list_team_event_types";
    /// `GET /v2/organizations/{orgId}/teams/event-types`.
    pub const LIST_ORG_EVENT_TYPES: &str = "list_org_event_types";
    /// `GET /v2/event-types/{id}`.
    pub const GET_EVENT_TYPE: &str = "get_event_type";
    /// `PATCH /v2/event-types/{id}`.
    pub const UPDATE_EVENT_TYPE: &str = "update_event_type";
    /// `PATCH /v2/teams/{teamId}/event-types/{id}`.
    pub const UPDATE_TEAM_EVENT_TYPE: &str = "update_team_event_type";
    /// `POST /v2/event-types`.
    pub const CREATE_EVENT_TYPE: &str = "create_event_type";
    /// `GET /v2/me` (`calsync check-config --connect`).
    pub const GET_ME: &str = "get_me";
    /// Every value, for code that must visit each label set.
    pub const ALL: [&str; 8] = [
        LIST_EVENT_TYPES,
        LIST_TEAM_EVENT_TYPES,
        LIST_ORG_EVENT_TYPES,
        GET_EVENT_TYPE,
        UPDATE_EVENT_TYPE,
        UPDATE_TEAM_EVENT_TYPE,
        CREATE_EVENT_TYPE,
        GET_ME,
    ];
}

/// Values of the `code` label on `calsync_calcom_requests_total`: the HTTP status
/// as decimal digits (`"200"`, `"401"`, `"429"`, see [`code::status`]) or one of
/// these words when no status was received.
pub mod code {
    /// The request or its response did not finish within the client timeout.
    pub const TIMEOUT: &str = "timeout";
    /// No connection could be made (DNS, TCP, TLS).
    pub const CONNECT: &str = "connect";
    /// A status arrived but the body could not be read or decoded.
    pub const BODY: &str = "body";

    /// The label value for an HTTP status code, e.g. `status(429) == "429"`.
    pub fn status(code: u16) -> String {
        code.to_string()
    }
}

/// Buckets of `calsync_reconcile_duration_seconds`: a pass over a small account
/// takes well under a second, a large one with pushes and rate limiting minutes.
const RECONCILE_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0,
];

/// Buckets of `calsync_calcom_request_duration_seconds`, up to the client timeout.
const REQUEST_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];

/// An account's Cal.com request budget, as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalcomBudget {
    /// Requests left in the current window, from the last response's headers.
    pub remaining: Option<i64>,
    /// Requests Cal.com refused with 429 since the process started.
    pub rate_limited: u64,
}

/// The process's metrics. Cheap to clone fields out of (each is an `Arc` inside);
/// share one `Metrics` per process, or build a fresh one per test.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Label values of every family, each stored once (see [`compact`]).
    interner: Interner,
    /// `(account, endpoint, code)` label sets of `calcom_requests_total` in use,
    /// so [`Metrics::forget_account`] can drop an account's.
    request_labels: std::sync::Mutex<std::collections::BTreeSet<(String, &'static str, String)>>,

    /// `calsync_protection_triggered_total{account, field}`.
    pub protection_triggered_total: CounterFamily,
    /// `calsync_calcom_overwrites_total{account, field}`.
    pub calcom_overwrites_total: CounterFamily,
    /// `calsync_drifted_services{account}`.
    pub drifted_services: GaugeFamily,
    /// `calsync_drift_fields{account, field}`.
    pub drift_fields: GaugeFamily,
    /// `calsync_drift_oldest_age_seconds{account}`.
    pub drift_oldest_age_seconds: FloatGaugeFamily,
    /// `calsync_drift_acknowledged_fields{account}`.
    pub drift_acknowledged_fields: GaugeFamily,
    /// `calsync_push_needs_human{account}`.
    pub push_needs_human: GaugeFamily,
    /// `calsync_push_backoff_services{account}`.
    pub push_backoff_services: GaugeFamily,
    /// `calsync_guard_tripped_total{account, reason}`.
    pub guard_tripped_total: CounterFamily,
    /// `calsync_decisions_total{kind}`.
    pub decisions_total: CounterFamily,
    /// `calsync_imported_total{account}`.
    pub imported_total: CounterFamily,
    /// `calsync_pushed_total{account, result}`.
    pub pushed_total: CounterFamily,
    /// `calsync_orphaned_services{account}`.
    pub orphaned_services: GaugeFamily,
    /// `calsync_listing_inconsistencies_total{account}`.
    pub listing_inconsistencies_total: CounterFamily,
    /// `calsync_unreadable_records_total{account}`.
    pub unreadable_records_total: CounterFamily,
    /// `calsync_empty_listings_guarded_total{account}`.
    pub empty_listings_guarded_total: CounterFamily,
    /// `calsync_ready`: 1 while `/readyz` answers 200.
    pub ready: IntGauge,
    /// `calsync_config_last_reload_successful`.
    pub config_last_reload_successful: IntGauge,
    /// `calsync_config_last_reload_success_timestamp_seconds`.
    pub config_last_reload_success_timestamp_seconds: Gauge,
    /// `calsync_event_types{account}`.
    pub event_types: GaugeFamily,
    /// `calsync_services{account, sync_status}`.
    pub services: GaugeFamily,
    /// `calsync_reconcile_runs_total{account, result}`.
    pub reconcile_runs_total: CounterFamily,
    /// `calsync_reconcile_duration_seconds{account}`.
    pub reconcile_duration_seconds: HistogramFamily,
    /// `calsync_reconcile_skipped_total`.
    pub reconcile_skipped_total: IntCounter,
    /// `calsync_last_success_timestamp_seconds{account}`.
    pub last_success_timestamp_seconds: FloatGaugeFamily,
    /// `calsync_calcom_requests_total{account, endpoint, code}`: count requests
    /// with [`Metrics::count_request`].
    pub calcom_requests_total: CounterFamily,
    /// `calsync_run_record_failures_total{account}`.
    pub run_record_failures_total: CounterFamily,
    /// `calsync_http_accept_failures_total`.
    pub http_accept_failures_total: IntCounter,
    /// `calsync_calcom_retries_total{account}`.
    pub calcom_retries_total: CounterFamily,
    /// `calsync_calcom_rate_limited_total{account}`.
    pub calcom_rate_limited_total: CounterFamily,
    /// `calsync_calcom_request_duration_seconds{endpoint}`.
    pub calcom_request_duration_seconds: HistogramFamily,
    /// `calsync_calcom_rate_limit_remaining{account}`.
    pub calcom_rate_limit_remaining: GaugeFamily,
    /// `calsync_build_info{version}`, always 1.
    pub build_info: GaugeFamily,
    /// `calsync_leader`: 1 while this process holds the reconcile lease, else 0.
    pub leader: IntGauge,
}

impl Metrics {
    /// Builds every metric on a fresh registry, registers the process collector
    /// (Linux only) and sets `calsync_build_info{version="<crate version>"} 1`.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let interner = Interner::default();

        let protection_triggered_total = labelled(
            &registry,
            &interner,
            "calsync_protection_triggered_total",
            "New Cal.com-side values of a known service's field that calsync kept out of the platform or pushed over (PROTECTION), once per distinct value.",
            &["account", "field"],
            &[],
        );
        let calcom_overwrites_total = labelled(
            &registry,
            &interner,
            "calsync_calcom_overwrites_total",
            "Platform business fields overwritten with the Cal.com value because overwrites were explicitly allowed.",
            &["account", "field"],
            &[],
        );
        let drifted_services = labelled(
            &registry,
            &interner,
            "calsync_drifted_services",
            "Services whose Cal.com event type currently differs from the platform, per the drift ledger.",
            &["account"],
            &[],
        );
        let drift_fields = labelled(
            &registry,
            &interner,
            "calsync_drift_fields",
            "Open drift ledger entries per field.",
            &["account", "field"],
            &[],
        );
        let drift_oldest_age_seconds = labelled(
            &registry,
            &interner,
            "calsync_drift_oldest_age_seconds",
            "Age in seconds of the oldest open drift ledger entry, 0 when there is none.",
            &["account"],
            &[],
        );
        let drift_acknowledged_fields = labelled(
            &registry,
            &interner,
            "calsync_drift_acknowledged_fields",
            "Open drift ledger entries an operator acknowledged (not expired); left out of calsync_drift_fields, calsync_drifted_services and calsync_drift_oldest_age_seconds.",
            &["account"],
            &[],
        );
        let push_needs_human = labelled(
            &registry,
            &interner,
            "calsync_push_needs_human",
            "Services whose push Cal.com refused or that failed sync.max_push_attempts times: calsync no longer retries them until the platform changes or an operator pushes.",
            &["account"],
            &[],
        );
        let push_backoff_services = labelled(
            &registry,
            &interner,
            "calsync_push_backoff_services",
            "Services whose failed push waits for its next attempt (sync.push_backoff_*).",
            &["account"],
            &[],
        );
        let guard_tripped_total = labelled(
            &registry,
            &interner,
            "calsync_guard_tripped_total",
            "Account passes the blast-radius guard held (nothing written) because they would orphan or overwrite too large a share of the account's services.",
            &["account", "reason"],
            &[],
        );
        let decisions_total = labelled(
            &registry,
            &interner,
            "calsync_decisions_total",
            "Operator decisions about drift and held accounts (adopt, acknowledge, unacknowledge, approve).",
            &["kind"],
            &[],
        );
        let imported_total = labelled(
            &registry,
            &interner,
            "calsync_imported_total",
            "Cal.com event types imported as new platform services.",
            &["account"],
            &[],
        );
        let pushed_total = labelled(
            &registry,
            &interner,
            "calsync_pushed_total",
            "Pushes of platform values to Cal.com event types, by result.",
            &["account", "result"],
            &[],
        );
        let orphaned_services = labelled(
            &registry,
            &interner,
            "calsync_orphaned_services",
            "Platform services linked to a Cal.com event type that no longer exists.",
            &["account"],
            &[],
        );
        let listing_inconsistencies_total = labelled(
            &registry,
            &interner,
            "calsync_listing_inconsistencies_total",
            "Linked event types missing from a listing that Cal.com still had when asked (the service was kept).",
            &["account"],
            &[],
        );
        let unreadable_records_total = labelled(
            &registry,
            &interner,
            "calsync_unreadable_records_total",
            "Cal.com records skipped because calsync cannot read or store them; nothing was written from them.",
            &["account"],
            &[],
        );
        let empty_listings_guarded_total = labelled(
            &registry,
            &interner,
            "calsync_empty_listings_guarded_total",
            "Passes in which Cal.com listed no event types although services are linked; nothing was orphaned.",
            &["account"],
            &[],
        );
        let ready = IntGauge::with_opts(Opts::new(
            "calsync_ready",
            "1 while /readyz answers 200 (a ready leader or a healthy standby), 0 while it answers 503.",
        ))
        .expect("valid metric definition");
        register(&registry, &ready);
        let config_last_reload_successful = IntGauge::with_opts(Opts::new(
            "calsync_config_last_reload_successful",
            "1 after start and after a successful config reload (SIGHUP), 0 after a rejected one.",
        ))
        .expect("valid metric definition");
        register(&registry, &config_last_reload_successful);
        config_last_reload_successful.set(1);
        let config_last_reload_success_timestamp_seconds = Gauge::with_opts(Opts::new(
            "calsync_config_last_reload_success_timestamp_seconds",
            "Unix time in seconds of the start or of the last successful config reload.",
        ))
        .expect("valid metric definition");
        register(&registry, &config_last_reload_success_timestamp_seconds);
        config_last_reload_success_timestamp_seconds.set(chrono::Utc::now().timestamp() as f64);
        let event_types = labelled(
            &registry,
            &interner,
            "calsync_event_types",
            "Cal.com event types seen in the last reconcile pass.",
            &["account"],
            &[],
        );
        let services = labelled(
            &registry,
            &interner,
            "calsync_services",
            "Platform services linked to Cal.com, by sync status.",
            &["account", "sync_status"],
            &[],
        );
        let reconcile_runs_total = labelled(
            &registry,
            &interner,
            "calsync_reconcile_runs_total",
            "Reconcile passes finished, by result.",
            &["account", "result"],
            &[],
        );
        let reconcile_duration_seconds = labelled(
            &registry,
            &interner,
            "calsync_reconcile_duration_seconds",
            "Wall-clock duration of a reconcile pass in seconds.",
            &["account"],
            &RECONCILE_BUCKETS,
        );
        let reconcile_skipped_total = IntCounter::with_opts(Opts::new(
            "calsync_reconcile_skipped_total",
            "Scheduled reconcile passes skipped because the previous one was still running or another process held the lease.",
        ))
        .expect("valid metric definition");
        register(&registry, &reconcile_skipped_total);
        let last_success_timestamp_seconds = labelled(
            &registry,
            &interner,
            "calsync_last_success_timestamp_seconds",
            "Unix time in seconds at which the last successful reconcile pass finished.",
            &["account"],
            &[],
        );
        let calcom_requests_total = labelled(
            &registry,
            &interner,
            "calsync_calcom_requests_total",
            "Requests sent to the Cal.com API, by account, endpoint and HTTP status or transport failure.",
            &["account", "endpoint", "code"],
            &[],
        );
        let run_record_failures_total = labelled(
            &registry,
            &interner,
            "calsync_run_record_failures_total",
            "Failed account passes whose line could not be written to the run journal (calsync_runs), by account.",
            &["account"],
            &[],
        );
        let http_accept_failures_total = IntCounter::with_opts(Opts::new(
            "calsync_http_accept_failures_total",
            "Connections the HTTP server (metrics, health, operator API) failed to accept.",
        ))
        .expect("valid metric definition");
        register(&registry, &http_accept_failures_total);
        let calcom_retries_total = labelled(
            &registry,
            &interner,
            "calsync_calcom_retries_total",
            "Cal.com requests sent again after a retryable failure (5xx, timeout, connection error, 429), by account.",
            &["account"],
            &[],
        );
        let calcom_rate_limited_total = labelled(
            &registry,
            &interner,
            "calsync_calcom_rate_limited_total",
            "HTTP 429 answers from Cal.com, by account; each stops requests with the account's key until the announced reset (60 s without one).",
            &["account"],
            &[],
        );
        let calcom_request_duration_seconds = labelled(
            &registry,
            &interner,
            "calsync_calcom_request_duration_seconds",
            "Duration of Cal.com API requests in seconds, until the response body is read.",
            &["endpoint"],
            &REQUEST_BUCKETS,
        );
        let calcom_rate_limit_remaining = labelled(
            &registry,
            &interner,
            "calsync_calcom_rate_limit_remaining",
            "Requests left in the current Cal.com rate-limit window, from the last response's headers.",
            &["account"],
            &[],
        );
        let build_info: GaugeFamily = labelled(
            &registry,
            &interner,
            "calsync_build_info",
            "Always 1; the version label says which calsync build is running.",
            &["version"],
            &[],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let leader = IntGauge::with_opts(Opts::new(
            "calsync_leader",
            "1 when this process holds the reconcile lease, 0 otherwise.",
        ))
        .expect("valid metric definition");
        register(&registry, &leader);

        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics are registered once per registry");

        Metrics {
            registry,
            interner,
            request_labels: std::sync::Mutex::new(std::collections::BTreeSet::new()),
            protection_triggered_total,
            calcom_overwrites_total,
            drifted_services,
            drift_fields,
            drift_oldest_age_seconds,
            drift_acknowledged_fields,
            push_needs_human,
            push_backoff_services,
            guard_tripped_total,
            decisions_total,
            imported_total,
            pushed_total,
            orphaned_services,
            listing_inconsistencies_total,
            unreadable_records_total,
            empty_listings_guarded_total,
            ready,
            config_last_reload_successful,
            config_last_reload_success_timestamp_seconds,
            event_types,
            services,
            reconcile_runs_total,
            reconcile_duration_seconds,
            reconcile_skipped_total,
            last_success_timestamp_seconds,
            calcom_requests_total,
            run_record_failures_total,
            http_accept_failures_total,
            calcom_retries_total,
            calcom_rate_limited_total,
            calcom_request_duration_seconds,
            calcom_rate_limit_remaining,
            build_info,
            leader,
        }
    }

    /// Creates every counter label set of `account` at zero. Call it for each
    /// configured account at start-up and after a reload: `increase()` and
    /// `rate()` only see an event if the series existed before it, so without
    /// this the first PROTECTION or failed pass of an account would not alert.
    /// Gauges are left alone: a gauge at 0 would be a false reading (a last
    /// success at Unix time 0 would page as stale).
    pub fn init_account(&self, account: &str) {
        for field in Field::ALL {
            let labels = [account, field.as_str()];
            self.protection_triggered_total.with_label_values(&labels);
            self.calcom_overwrites_total.with_label_values(&labels);
        }
        for result in result::ALL {
            self.pushed_total.with_label_values(&[account, result]);
        }
        for result in result::PASS {
            self.reconcile_runs_total
                .with_label_values(&[account, result]);
        }
        self.imported_total.with_label_values(&[account]);
        for reason in GuardReason::ALL {
            self.guard_tripped_total
                .with_label_values(&[account, reason.as_str()]);
        }
        self.unreadable_records_total.with_label_values(&[account]);
        self.empty_listings_guarded_total
            .with_label_values(&[account]);
        self.listing_inconsistencies_total
            .with_label_values(&[account]);
        self.calcom_retries_total.with_label_values(&[account]);
        self.calcom_rate_limited_total.with_label_values(&[account]);
        self.run_record_failures_total.with_label_values(&[account]);
    }

    /// The registry every metric is on, for a caller that adds its own collector.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// An account's Cal.com request budget as last seen, read without creating a
    /// series (a gauge touched here would export a remaining budget of 0 that
    /// Cal.com never reported).
    pub fn calcom_budget(&self, account: &str) -> CalcomBudget {
        use prometheus::core::Collector;
        let of_account = |m: &&prometheus::proto::Metric| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "account" && l.value() == account)
        };
        let remaining = self
            .calcom_rate_limit_remaining
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .find(of_account)
            .map(|m| m.get_gauge().get_value() as i64);
        let rate_limited = self
            .calcom_requests_total
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .filter(of_account)
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "code" && l.value() == code::status(429))
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum();
        CalcomBudget {
            remaining,
            rate_limited,
        }
    }

    /// Everything in the Prometheus text exposition format (what `/metrics` serves).
    pub fn encode(&self) -> String {
        let families = self.registry.gather();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("encoding gathered metrics into memory cannot fail");
        String::from_utf8(out).expect("the text encoder writes UTF-8")
    }

    /// Drops every label set of `account`, so an account removed by a config
    /// reload stops being exported (otherwise its last values would be served
    /// forever and keep alerts firing). Label sets that were never created are
    /// ignored. Per-endpoint request metrics carry no account and are kept.
    /// One Cal.com request of a configured account.
    pub fn count_request(&self, account: &str, endpoint: &'static str, code: &str) {
        self.calcom_requests_total
            .with_label_values(&[account, endpoint, code])
            .inc();
        let mut seen = self
            .request_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen.len() < 10_000 {
            seen.insert((account.to_owned(), endpoint, code.to_owned()));
        }
    }

    pub fn forget_account(&self, account: &str) {
        {
            let mut seen = self
                .request_labels
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            seen.retain(|(a, endpoint, code)| {
                if a == account {
                    let _ = self.calcom_requests_total.remove_label_values(&[
                        a.as_str(),
                        endpoint,
                        code.as_str(),
                    ]);
                    false
                } else {
                    true
                }
            });
        }
        for vec in [
            &self.drifted_services,
            &self.orphaned_services,
            &self.event_types,
            &self.calcom_rate_limit_remaining,
            &self.drift_acknowledged_fields,
            &self.push_needs_human,
            &self.push_backoff_services,
        ] {
            let _ = vec.remove_label_values(&[account]);
        }
        for vec in [
            &self.drift_oldest_age_seconds,
            &self.last_success_timestamp_seconds,
        ] {
            let _ = vec.remove_label_values(&[account]);
        }
        let _ = self.imported_total.remove_label_values(&[account]);
        for reason in GuardReason::ALL {
            let _ = self
                .guard_tripped_total
                .remove_label_values(&[account, reason.as_str()]);
        }
        let _ = self
            .listing_inconsistencies_total
            .remove_label_values(&[account]);
        let _ = self
            .reconcile_duration_seconds
            .remove_label_values(&[account]);

        for field in Field::ALL {
            let labels = [account, field.as_str()];
            let _ = self.protection_triggered_total.remove_label_values(&labels);
            let _ = self.calcom_overwrites_total.remove_label_values(&labels);
            let _ = self.drift_fields.remove_label_values(&labels);
        }
        for result in result::ALL {
            let _ = self.pushed_total.remove_label_values(&[account, result]);
        }
        for result in result::PASS {
            let _ = self
                .reconcile_runs_total
                .remove_label_values(&[account, result]);
        }
        let _ = self
            .unreadable_records_total
            .remove_label_values(&[account]);
        let _ = self
            .empty_listings_guarded_total
            .remove_label_values(&[account]);
        let _ = self.calcom_retries_total.remove_label_values(&[account]);
        let _ = self
            .run_record_failures_total
            .remove_label_values(&[account]);
        let _ = self
            .calcom_rate_limited_total
            .remove_label_values(&[account]);
        for status in SyncStatus::ALL {
            let _ = self
                .services
                .remove_label_values(&[account, status.as_str()]);
        }
        self.interner.prune();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

// The definitions below are constants of this file; a failure is a programming
// error caught by the first test that calls `Metrics::new()`, hence `expect`.

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: &C) {
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique within calsync's registry");
}

/// A labelled family on compact series (`buckets` only for histograms).
fn labelled<V: compact::Value>(
    registry: &Registry,
    interner: &Interner,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> prometheus::core::MetricVec<compact::Builder<V>> {
    let family =
        compact::family(interner, name, help, labels, buckets).expect("valid metric definition");
    register(registry, &family);
    family
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name in the table of the README's "Metrics" section.
    const NAMES: [&str; 34] = [
        "calsync_drift_acknowledged_fields",
        "calsync_push_needs_human",
        "calsync_push_backoff_services",
        "calsync_guard_tripped_total",
        "calsync_decisions_total",
        "calsync_protection_triggered_total",
        "calsync_calcom_overwrites_total",
        "calsync_drifted_services",
        "calsync_drift_fields",
        "calsync_drift_oldest_age_seconds",
        "calsync_imported_total",
        "calsync_pushed_total",
        "calsync_orphaned_services",
        "calsync_listing_inconsistencies_total",
        "calsync_unreadable_records_total",
        "calsync_empty_listings_guarded_total",
        "calsync_ready",
        "calsync_config_last_reload_successful",
        "calsync_config_last_reload_success_timestamp_seconds",
        "calsync_event_types",
        "calsync_services",
        "calsync_reconcile_runs_total",
        "calsync_reconcile_duration_seconds",
        "calsync_reconcile_skipped_total",
        "calsync_last_success_timestamp_seconds",
        "calsync_calcom_requests_total",
        "calsync_calcom_retries_total",
        "calsync_calcom_rate_limited_total",
        "calsync_calcom_request_duration_seconds",
        "calsync_run_record_failures_total",
        "calsync_http_accept_failures_total",
        "calsync_calcom_rate_limit_remaining",
        "calsync_build_info",
        "calsync_leader",
    ];

    /// Sets one label set on every metric for `account`, as a pass would.
    fn touch_all(m: &Metrics, account: &str) {
        m.protection_triggered_total
            .with_label_values(&[account, Field::Price.as_str()])
            .inc();
        m.calcom_overwrites_total
            .with_label_values(&[account, Field::Name.as_str()])
            .inc();
        m.drifted_services.with_label_values(&[account]).set(2);
        m.drift_fields
            .with_label_values(&[account, Field::DurationMinutes.as_str()])
            .set(1);
        m.drift_oldest_age_seconds
            .with_label_values(&[account])
            .set(3600.0);
        m.imported_total.with_label_values(&[account]).inc();
        m.pushed_total
            .with_label_values(&[account, result::SUCCESS])
            .inc();
        m.pushed_total
            .with_label_values(&[account, result::FAILURE])
            .inc();
        m.orphaned_services.with_label_values(&[account]).set(0);
        m.listing_inconsistencies_total
            .with_label_values(&[account])
            .inc();
        m.unreadable_records_total
            .with_label_values(&[account])
            .inc();
        m.empty_listings_guarded_total
            .with_label_values(&[account])
            .inc();
        m.event_types.with_label_values(&[account]).set(12);
        for status in SyncStatus::ALL {
            m.services
                .with_label_values(&[account, status.as_str()])
                .set(3);
        }
        m.reconcile_runs_total
            .with_label_values(&[account, result::SUCCESS])
            .inc();
        m.reconcile_duration_seconds
            .with_label_values(&[account])
            .observe(1.7);
        m.reconcile_skipped_total.inc();
        m.last_success_timestamp_seconds
            .with_label_values(&[account])
            .set(1_700_000_000.0);
        m.count_request(account, endpoint::LIST_EVENT_TYPES, &code::status(200));
        m.count_request(account, endpoint::UPDATE_EVENT_TYPE, code::TIMEOUT);
        m.calcom_retries_total.with_label_values(&[account]).inc();
        m.run_record_failures_total
            .with_label_values(&[account])
            .inc();
        m.http_accept_failures_total.inc();
        m.calcom_rate_limited_total
            .with_label_values(&[account])
            .inc();
        m.calcom_request_duration_seconds
            .with_label_values(&[endpoint::LIST_EVENT_TYPES])
            .observe(0.2);
        m.calcom_rate_limit_remaining
            .with_label_values(&[account])
            .set(118);
        m.leader.set(1);
        m.drift_acknowledged_fields
            .with_label_values(&[account])
            .set(1);
        m.push_needs_human.with_label_values(&[account]).set(1);
        m.push_backoff_services.with_label_values(&[account]).set(1);
        m.guard_tripped_total
            .with_label_values(&[account, GuardReason::Orphans.as_str()])
            .inc();
        m.decisions_total.with_label_values(&["adopt"]).inc();
    }

    #[test]
    fn every_pinned_name_is_exported_once_touched() {
        let m = Metrics::new();
        touch_all(&m, "acme");
        let text = m.encode();
        for name in NAMES {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn the_readme_metrics_table_lists_exactly_the_pinned_names() {
        let readme = include_str!("../../README.md");
        let mut documented: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `calsync_"))
            .filter_map(|l| l.split_once('`'))
            .map(|(name, _)| name)
            .collect();
        documented.sort_unstable();
        documented.dedup();
        let mut pinned: Vec<&str> = NAMES
            .iter()
            .map(|n| n.trim_start_matches("calsync_"))
            .collect();
        pinned.sort_unstable();
        assert_eq!(documented, pinned);
    }

    #[test]
    fn build_info_carries_the_crate_version() {
        let text = Metrics::new().encode();
        let line = format!(
            "calsync_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&line), "{line} missing from:\n{text}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_exported() {
        let text = Metrics::new().encode();
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }

    #[test]
    fn each_instance_has_its_own_registry() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.leader.set(1);
        assert!(a.encode().contains("calsync_leader 1"));
        assert!(b.encode().contains("calsync_leader 0"));
    }

    #[test]
    fn forget_account_drops_only_that_accounts_label_sets() {
        let m = Metrics::new();
        touch_all(&m, "gone");
        touch_all(&m, "kept");
        m.forget_account("gone");
        // Forgetting twice, or an account never seen, is not an error.
        m.forget_account("gone");
        m.forget_account("never-configured");

        let text = m.encode();
        assert!(!text.contains("account=\"gone\""), "{text}");
        for name in NAMES {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} lost:\n{text}"
            );
        }
        assert!(text.contains("account=\"kept\""));
        // Request metrics have no account label and survive.
        assert!(text.contains("endpoint=\"list_event_types\""));
    }

    #[test]
    fn init_account_exports_zeroed_counters_and_no_gauges() {
        let m = Metrics::new();
        m.init_account("acme");
        let text = m.encode();
        for line in [
            "calsync_protection_triggered_total{account=\"acme\",field=\"price\"} 0",
            "calsync_calcom_overwrites_total{account=\"acme\",field=\"name\"} 0",
            "calsync_pushed_total{account=\"acme\",result=\"failure\"} 0",
            "calsync_reconcile_runs_total{account=\"acme\",result=\"failure\"} 0",
            "calsync_imported_total{account=\"acme\"} 0",
            "calsync_calcom_retries_total{account=\"acme\"} 0",
            "calsync_calcom_rate_limited_total{account=\"acme\"} 0",
            "calsync_run_record_failures_total{account=\"acme\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(
            !text.contains("calsync_last_success_timestamp_seconds{"),
            "{text}"
        );
        m.forget_account("acme");
        assert!(!m.encode().contains("account=\"acme\""));
    }

    #[test]
    fn endpoint_and_code_values_are_label_safe() {
        for value in endpoint::ALL
            .iter()
            .chain(&[code::TIMEOUT, code::CONNECT, code::BODY])
        {
            assert!(
                value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{value}"
            );
        }
        assert_eq!(code::status(429), "429");
    }

    /// `promtool check metrics` lints names, types, help texts and units. It runs
    /// whenever promtool is on PATH; in CI (`CI=true`), where `.ci/run` installs it,
    /// a missing promtool fails this test instead of skipping it.
    #[test]
    fn output_passes_promtool_check_metrics() {
        use std::io::Write;
        use std::process::{Command, Stdio};

        let m = Metrics::new();
        touch_all(&m, "acme");
        let text = m.encode();

        let child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
                assert!(
                    !in_ci,
                    "promtool is not on PATH but CI=true: .ci/run must install the `prometheus` package"
                );
                eprintln!("promtool not on PATH; skipping `promtool check metrics` outside CI");
                return;
            }
            Err(e) => panic!("could not run promtool: {e}"),
        };
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(text.as_bytes())
            .expect("write metrics to promtool");
        let out = child.wait_with_output().expect("wait for promtool");
        assert!(
            out.status.success(),
            "promtool check metrics failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
}
