//! The fault suite's rig: a fresh database, the simulator, and calsync talking
//! to the simulator through a counting [`TcpProxy`] (so a scenario can tell how
//! much of a body calsync read), with calsync's Cal.com options set so faults
//! show quickly: a 1 s timeout, [`MAX_ATTEMPTS`] attempts with a
//! [`FIRST_BACKOFF_MS`] first backoff, a [`MAX_BODY_BYTES`] body cap, and no
//! local throttling.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calsync::app::App;
use calsync::config::Config;
use calsync::reconcile::report::{AccountReport, PassReport};
use calsync::simulate::{RequestLogEntry, SimConfig, Simulator};
use calsync::telemetry::metrics::Metrics;
use serde_json::{Value, json};

use super::config::{AccountSpec, ConfigFile};
use super::db::{RawService, TestBackend, TestDb, fresh};
use super::tcp_proxy::TcpProxy;

/// Attempts per Cal.com request (`calcom.max_attempts`).
pub const MAX_ATTEMPTS: usize = 3;
/// The first backoff (`calcom.retry_initial_delay_ms`).
pub const FIRST_BACKOFF_MS: u64 = 100;
/// The body cap (`calcom.max_body_bytes`).
pub const MAX_BODY_BYTES: u64 = 1_048_576;

/// Upper bound for anything a scenario waits on; a hang fails instead of blocking.
pub const WAIT: Duration = Duration::from_secs(25);

/// The rig's configuration for this database, Cal.com URL and accounts.
pub fn fault_config(database_url: &str, base_url: &str, accounts: &[AccountSpec]) -> ConfigFile {
    ConfigFile::new(database_url, base_url)
        .set("database.max_connections", 4)
        .set("calcom.timeout_secs", 1)
        .set("calcom.max_attempts", MAX_ATTEMPTS as i64)
        .set("calcom.retry_initial_delay_ms", FIRST_BACKOFF_MS as i64)
        .set("calcom.max_body_bytes", MAX_BODY_BYTES as i64)
        .set("calcom.requests_per_minute", 100_000)
        .accounts(accounts)
}

/// calsync opened in-process with [`fault_config`] and these metrics.
pub async fn open_app(
    database_url: &str,
    base_url: &str,
    accounts: &[AccountSpec],
    metrics: Arc<Metrics>,
) -> App {
    let text = fault_config(database_url, base_url, accounts).text();
    let settings = Config::from_toml(&text)
        .unwrap_or_else(|e| panic!("settings do not parse: {e}\n{text}"))
        .validate()
        .unwrap_or_else(|e| panic!("settings are invalid: {e}\n{text}"));
    App::open(settings, metrics)
        .await
        .unwrap_or_else(|e| panic!("opening calsync: {e:#}"))
}

/// See the module docs.
pub struct FaultRig {
    pub db: TestDb,
    pub sim: Simulator,
    /// Between calsync and the simulator.
    pub wire: TcpProxy,
    pub app: App,
    pub metrics: Arc<Metrics>,
    accounts: Vec<AccountSpec>,
}

impl FaultRig {
    pub async fn start(backend: TestBackend, accounts: Vec<AccountSpec>) -> FaultRig {
        let db = fresh(backend).await;
        let sim = Simulator::start(
            "127.0.0.1:0".parse().expect("loopback"),
            SimConfig {
                api_keys: accounts
                    .iter()
                    .filter(|a| a.valid)
                    .map(|a| a.api_key.clone())
                    .collect(),
                rate_limit: 100_000,
                ..SimConfig::default()
            },
        )
        .await
        .expect("starting the simulator");
        let wire = TcpProxy::start(sim.addr(), true).await;
        let metrics = Arc::new(Metrics::new());
        let app = open_app(&db.url, &wire.base_url(), &accounts, metrics.clone()).await;
        FaultRig {
            db,
            sim,
            wire,
            app,
            metrics,
            accounts,
        }
    }

    /// One pass over every account, bounded by [`WAIT`].
    pub async fn pass(&self) -> PassReport {
        tokio::time::timeout(WAIT, self.app.pass(&[], false))
            .await
            .expect("a pass must finish: every request is bounded by calcom.timeout_secs")
            .expect("every account is selected")
    }

    /// Creates an event type of `key`'s user; returns its id.
    pub fn given(&self, key: &str, fields: Value) -> i64 {
        let created = self.sim.create_event_type(key, fields);
        created["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("the simulator returned no id: {created}"))
    }

    pub fn edit(&self, id: i64, fields: Value) {
        assert!(self.sim.edit_event_type(id, fields), "no event type {id}");
    }

    pub fn user(&self, key: &str) -> i64 {
        self.sim.user_id(key).expect("a key the simulator knows")
    }

    /// The simulator's log entries for one key's user.
    pub fn requests_of(&self, key: &str) -> Vec<RequestLogEntry> {
        let user = self.user(key);
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.user_id == Some(user))
            .collect()
    }

    /// The listing requests of one key's user, waiting (bounded) for `count` of
    /// them: a delayed request is logged only when the simulator answers it.
    pub async fn wait_for_listings(&self, key: &str, count: usize) -> Vec<RequestLogEntry> {
        let listings = || {
            self.requests_of(key)
                .into_iter()
                .filter(|r| r.path.starts_with("/v2/event-types"))
                .collect::<Vec<_>>()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while listings().len() < count && Instant::now() <= deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A little longer, to see any request beyond the bound.
        tokio::time::sleep(Duration::from_millis(300)).await;
        listings()
    }

    pub async fn rows_of(&self, company: i64) -> Vec<RawService> {
        self.db
            .raw_services()
            .await
            .into_iter()
            .filter(|s| s.company_id == company)
            .collect()
    }

    pub async fn row_for(&self, event_type: i64) -> Option<RawService> {
        self.db
            .raw_services()
            .await
            .into_iter()
            .find(|s| s.calcom_event_type_id == Some(event_type))
    }

    /// A config file for the calsync binary, for the same database and simulator
    /// (directly, not through the proxy).
    pub fn write_cli_config(&self, dir: &Path) -> PathBuf {
        fault_config(&self.db.url, &self.sim.base_url(), &self.accounts)
            .write(dir.join("calsync.toml"))
    }
}

/// An event type as the simulator takes it.
pub fn event_type(title: &str, slug: &str, minutes: i64) -> Value {
    json!({"title": title, "slug": slug, "lengthInMinutes": minutes})
}

/// One account's part of a pass report.
pub fn account<'a>(report: &'a PassReport, name: &str) -> &'a AccountReport {
    report
        .accounts
        .iter()
        .find(|a| a.account == name)
        .unwrap_or_else(|| panic!("no report for account {name}: {report:#?}"))
}

/// The value of one `/metrics` series given by its name and label pairs.
pub fn series(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.encode().lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| set.split(',').any(|pair| pair == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}
