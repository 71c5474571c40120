//! A running calsync against a fresh database and the simulator.
//!
//! [`TestApp::spawn`] gives one test everything a pass needs: a migrated database
//! of its own on the chosen backend, a Cal.com simulator on `127.0.0.1:0`, settings
//! parsed and validated from TOML exactly as the binary does it, an [`App`] built
//! with [`App::with_store`], a fresh [`Metrics`] registry, and the pass's log lines.
//!
//! calsync reaches the simulator through a small recording proxy owned by the
//! harness. The simulator's own request log keeps no bodies, and two scenarios
//! need what actually went over the wire: that no PATCH ever carries a price, and
//! that a platform edit can land while a PATCH is in flight ([`TestApp::hold_next`]).
//!
//! ```ignore
//! let app = TestApp::spawn(backend).await;
//! let et = app.given_event_type(json!({"title": "Haircut", "lengthInMinutes": 30}));
//! app.sync_once().await;
//! app.edit_in_calcom(et, json!({"lengthInMinutes": 45}));
//! app.sync_once().await;
//! assert_eq!(app.service_for(et).await.duration_minutes, 30);
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use calsync::app::App;
use calsync::config::Config;
use calsync::domain::{DriftEntry, Field, Policy, ServiceId};
use calsync::reconcile::{ManualPush, ManualPushError, PassOptions, PassReport};
use calsync::simulate::{SimConfig, Simulator};
use calsync::store::DriftRecord;
use calsync::telemetry::metrics::Metrics;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::instrument::WithSubscriber;

use super::config::{AccountSpec, ConfigFile};
use super::db::{RawService, TestBackend, TestDb, fresh};
use super::logs::LogCapture;

/// The account every scenario has unless it configures its own.
pub const ACCOUNT: &str = "berlin";
/// The platform company of [`ACCOUNT`].
pub const COMPANY: i64 = 1;
/// The Cal.com API key of [`ACCOUNT`]; it must never show up in any output.
pub const API_KEY: &str = "cal_live_berlin_7f3a9c0d1e2b4a6f";

/// Bounded waits: long enough for a slow CI machine, short enough to fail a hung
/// test in reasonable time.
const WAIT: Duration = Duration::from_secs(30);

/// Options of a [`TestApp`] beyond the defaults.
pub struct TestAppBuilder {
    backend: TestBackend,
    accounts: Vec<AccountSpec>,
    seed_event_types: usize,
}

impl TestAppBuilder {
    /// Replaces the default account with the given ones (in this order).
    pub fn accounts(mut self, accounts: Vec<AccountSpec>) -> Self {
        self.accounts = accounts;
        self
    }

    /// The simulator starts with this many event types for each valid key.
    pub fn seed_event_types(mut self, count: usize) -> Self {
        self.seed_event_types = count;
        self
    }

    pub async fn spawn(self) -> TestApp {
        let backend = self.backend;
        let db = fresh(backend).await;
        let calcom = Simulator::start(
            "127.0.0.1:0".parse().expect("loopback address"),
            SimConfig {
                api_keys: self
                    .accounts
                    .iter()
                    .filter(|a| a.valid)
                    .map(|a| a.api_key.clone())
                    .collect(),
                seed_event_types: self.seed_event_types,
                // Cal.com's real limit is 120 a minute; scenarios about passes, not
                // about throttling, must never be blocked by it.
                rate_limit: 100_000,
                ..SimConfig::default()
            },
        )
        .await
        .expect("starting the Cal.com simulator");
        let proxy = Proxy::start(calcom.base_url()).await;

        let toml = scenario_config(&db.url, &proxy.base_url())
            .accounts(&self.accounts)
            .text();
        let settings = Config::from_toml(&toml)
            .unwrap_or_else(|e| panic!("test settings do not parse: {e}\n{toml}"))
            .validate()
            .unwrap_or_else(|e| panic!("test settings are invalid: {e}\n{toml}"));
        let metrics = Arc::new(Metrics::new());
        let app = App::with_store(settings, db.store.clone(), metrics.clone())
            .await
            .unwrap_or_else(|e| panic!("opening calsync on the {backend} test database: {e:#}"));
        TestApp {
            db,
            calcom,
            metrics,
            app,
            proxy,
            logs: LogCapture::new(),
        }
    }
}

/// The scenarios' settings: fast retries, no throttling.
fn scenario_config(database_url: &str, base_url: &str) -> ConfigFile {
    ConfigFile::new(database_url, base_url)
        .set("database.max_connections", 4)
        .set("calcom.timeout_secs", 20)
        .set("calcom.requests_per_minute", 100_000)
        .set("calcom.max_attempts", 2)
        .set("calcom.retry_initial_delay_ms", 1)
}

/// calsync wired to its own database and simulator; see the module docs.
pub struct TestApp {
    pub db: TestDb,
    /// The simulated Cal.com: act on it as someone in Cal.com's UI would.
    pub calcom: Simulator,
    pub metrics: Arc<Metrics>,
    pub app: App,
    proxy: Proxy,
    logs: LogCapture,
}

impl TestApp {
    /// One account ([`ACCOUNT`], company [`COMPANY`], [`API_KEY`]), default policy.
    pub async fn spawn(backend: TestBackend) -> TestApp {
        Self::builder(backend).spawn().await
    }

    pub fn builder(backend: TestBackend) -> TestAppBuilder {
        TestAppBuilder {
            backend,
            accounts: vec![AccountSpec::new(ACCOUNT, COMPANY, API_KEY)],
            seed_event_types: 0,
        }
    }

    // ------------------------------------------------------------------ passes

    /// One reconcile pass over every account, as `calsync once` runs it.
    pub async fn sync_once(&self) -> PassReport {
        self.pass(false).await
    }

    /// A dry run, as `calsync plan` runs it: nothing pushed, nothing written.
    pub async fn plan(&self) -> PassReport {
        self.pass(true).await
    }

    async fn pass(&self, dry_run: bool) -> PassReport {
        self.app
            .pass(&[], dry_run)
            .with_subscriber(self.logs.dispatch())
            .await
            .expect("selecting every account cannot fail")
    }

    /// Starts a pass in the background (to act while it is in flight).
    pub fn spawn_sync(&self) -> JoinHandle<PassReport> {
        let reconciler = self.app.reconciler.clone();
        let accounts = self.app.settings.accounts.clone();
        let policy = self.app.settings.policy;
        let options = PassOptions {
            dry_run: false,
            max_concurrent_accounts: self.app.settings.max_concurrent_accounts,
            orphan_checks_per_pass: self.app.settings.orphan_checks_per_pass,
        };
        let dispatch = self.logs.dispatch();
        tokio::spawn(
            async move { reconciler.pass(&accounts, &accounts, policy, options).await }
                .with_subscriber(dispatch),
        )
    }

    /// The manual "sync to Cal.com" action (`calsync push --service ID`).
    pub async fn push_service(&self, id: ServiceId) -> Result<ManualPush, ManualPushError> {
        self.app
            .reconciler
            .push_service(&self.app.settings.accounts, self.app.settings.policy, id)
            .with_subscriber(self.logs.dispatch())
            .await
    }

    /// Changes the operator's policy for the following passes.
    /// Changes the policy; its field ownership becomes every account's (as a
    /// config with `[sync.ownership]` and no account overrides would).
    pub fn set_policy(&mut self, change: impl FnOnce(&mut Policy)) {
        let settings = &mut self.app.settings;
        change(&mut settings.policy);
        for a in &mut settings.accounts {
            a.ownership = settings.policy.ownership;
        }
    }

    // ------------------------------------------------------------------ Cal.com

    /// Creates an event type and imports it with a pass; its id and the new
    /// service's.
    pub async fn imported(&self, fields: Value) -> (i64, ServiceId) {
        let et = self.given_event_type(fields);
        let report = self.sync_once().await;
        assert!(!report.has_failures(), "{report:#?}");
        (et, ServiceId(self.service_for(et).await.id))
    }

    /// The drift ledger entries in `state`, of every account.
    pub async fn ledger(&self, state: calsync::store::DriftState) -> Vec<DriftRecord> {
        self.db
            .store
            .drift_records(state, None)
            .await
            .expect("reading the ledger")
    }

    /// Creates a personal event type of [`API_KEY`]'s user; returns its id.
    pub fn given_event_type(&self, fields: Value) -> i64 {
        self.given_event_type_of(API_KEY, fields)
    }

    /// Creates a personal event type of the given key's user; returns its id.
    pub fn given_event_type_of(&self, api_key: &str, fields: Value) -> i64 {
        let created = self.calcom.create_event_type(api_key, fields);
        created["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("the simulator returned no id: {created}"))
    }

    /// The event type as Cal.com stores it now.
    pub fn calcom_event_type(&self, id: i64) -> Value {
        self.calcom
            .event_type(id)
            .unwrap_or_else(|| panic!("event type {id} does not exist in the simulator"))
    }

    /// Edits the event type as someone would in Cal.com's web UI.
    pub fn edit_in_calcom(&self, id: i64, fields: Value) {
        assert!(
            self.calcom.edit_event_type(id, fields),
            "event type {id} does not exist in the simulator"
        );
    }

    pub fn delete_in_calcom(&self, id: i64) {
        assert!(
            self.calcom.delete_event_type(id),
            "event type {id} does not exist in the simulator"
        );
    }

    /// Every request calsync sent to Cal.com, in arrival order, with its body.
    pub fn calcom_requests(&self) -> Vec<SeenRequest> {
        self.proxy.state.seen()
    }

    /// The PATCH requests calsync sent to Cal.com.
    pub fn calcom_patches(&self) -> Vec<SeenRequest> {
        self.calcom_requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .collect()
    }

    /// Holds the next request with this method at the edge of Cal.com until the
    /// returned [`Hold`] is released: it has left calsync, Cal.com has not seen it.
    pub fn hold_next(&self, method: &str) -> Hold {
        let (arrived_tx, arrived_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *lock(&self.proxy.state.gate) = Some(Gate {
            method: method.to_owned(),
            arrived: arrived_tx,
            release: release_rx,
        });
        Hold {
            arrived: Some(arrived_rx),
            release: Some(release_tx),
        }
    }

    // ------------------------------------------------------------------ platform

    /// Plays the platform's UI: renames the service, changes its duration and
    /// marks it `pending`.
    pub async fn edit_in_platform(&self, id: ServiceId, name: &str, duration_minutes: i32) {
        let edited = self
            .db
            .store
            .edit_as_platform(id, Some(name), Some(duration_minutes))
            .await
            .expect("editing a service as the platform");
        assert!(edited, "service {id} does not exist");
    }

    /// A service read with plain SQL (not through calsync).
    pub async fn service(&self, id: ServiceId) -> RawService {
        self.db.raw_service(id).await
    }

    /// The service linked to a Cal.com event type.
    pub async fn service_for(&self, event_type: i64) -> RawService {
        self.services()
            .await
            .into_iter()
            .find(|s| s.calcom_event_type_id == Some(event_type))
            .unwrap_or_else(|| panic!("no service is linked to event type {event_type}"))
    }

    /// Every service, by id, read with plain SQL.
    pub async fn services(&self) -> Vec<RawService> {
        self.db.raw_services().await
    }

    /// The open drift ledger of every account.
    pub async fn open_drift(&self) -> Vec<DriftEntry> {
        self.db
            .store
            .open_drift(None)
            .await
            .expect("reading the drift ledger")
    }

    /// Every ledger entry of one service, open and resolved, oldest first.
    pub async fn drift_history(&self, id: ServiceId) -> Vec<DriftRecord> {
        self.db
            .store
            .drift_history(id)
            .await
            .expect("reading the drift history")
    }

    // ------------------------------------------------------------------ telemetry

    /// `calsync_protection_triggered_total{account=ACCOUNT, field}`.
    pub fn protections(&self, field: Field) -> u64 {
        self.protections_of(ACCOUNT, field)
    }

    pub fn protections_of(&self, account: &str, field: Field) -> u64 {
        self.metrics
            .protection_triggered_total
            .with_label_values(&[account, field.as_str()])
            .get()
    }

    /// `calsync_calcom_overwrites_total{account=ACCOUNT, field}`.
    pub fn overwrites(&self, field: Field) -> u64 {
        self.metrics
            .calcom_overwrites_total
            .with_label_values(&[ACCOUNT, field.as_str()])
            .get()
    }

    /// The value of one exported series, e.g.
    /// `calsync_imported_total{account="berlin"}`, as `/metrics` would serve it.
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics.encode().lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// Every log line calsync wrote during this app's passes and pushes.
    pub fn logs(&self) -> String {
        self.logs.text()
    }
}

/// A request held by [`TestApp::hold_next`].
pub struct Hold {
    arrived: Option<oneshot::Receiver<()>>,
    release: Option<oneshot::Sender<()>>,
}

impl Hold {
    /// Waits (bounded) until calsync has sent the request.
    pub async fn arrived(&mut self) {
        let arrived = self
            .arrived
            .take()
            .expect("waiting for the held request twice");
        tokio::time::timeout(WAIT, arrived)
            .await
            .expect("calsync never sent the request the test was waiting for")
            .expect("the proxy dropped the held request");
    }

    /// Lets the request go on to Cal.com.
    pub fn release(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

/// One request as it left calsync.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub body: String,
}

impl SeenRequest {
    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

// ---------------------------------------------------------------------- proxy

/// Forwards every request to the simulator unchanged, recording it first.
struct Proxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    seen: Mutex<Vec<SeenRequest>>,
    gate: Mutex<Option<Gate>>,
}

struct Gate {
    method: String,
    arrived: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

type ProxyError = Box<dyn std::error::Error + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread cannot leave a Vec or an Option half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ProxyState {
    fn seen(&self) -> Vec<SeenRequest> {
        lock(&self.seen).clone()
    }
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        // calsync's client installs the same provider; reqwest needs one either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the recording proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(ProxyState {
            upstream,
            client: reqwest::Client::builder()
                .timeout(WAIT)
                .build()
                .expect("building the proxy's HTTP client"),
            seen: Mutex::new(Vec::new()),
            gate: Mutex::new(None),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| forward(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy { addr, state }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn forward(
    state: Arc<ProxyState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    lock(&state.seen).push(SeenRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });

    let gate = {
        let mut gate = lock(&state.gate);
        if gate
            .as_ref()
            .is_some_and(|g| g.method.eq_ignore_ascii_case(parts.method.as_str()))
        {
            gate.take()
        } else {
            None
        }
    };
    if let Some(gate) = gate {
        let _ = gate.arrived.send(());
        // Released by the test, or by dropping its Hold; bounded regardless.
        let _ = tokio::time::timeout(WAIT, gate.release).await;
    }

    let mut upstream = state
        .client
        .request(parts.method.clone(), format!("{}{path}", state.upstream));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.body(body).send().await?;
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        let hop = [
            hyper::header::CONTENT_LENGTH,
            hyper::header::TRANSFER_ENCODING,
            hyper::header::CONNECTION,
        ];
        if !hop.contains(name) {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await?;
    Ok(response.body(Full::new(bytes))?)
}

/// One scenario per backend, each with its own default [`TestApp`] as `$app`:
/// `scenario!(name, |app| async move { … })` becomes `name::{sqlite, postgres, mariadb}`.
macro_rules! scenario {
    ($name:ident, |$app:ident| $body:expr) => {
        $crate::support::db::backend_tests!($name, |backend: TestBackend| async move {
            #[allow(
                unused_mut,
                reason = "only scenarios that change the policy need it mutable"
            )]
            let mut $app = $crate::support::app::TestApp::spawn(backend).await;
            $body.await
        });
    };
}
pub(crate) use scenario;

/// A plain event type most scenarios start from.
pub fn haircut() -> serde_json::Value {
    serde_json::json!({
        "title": "Haircut",
        "slug": "haircut",
        "lengthInMinutes": 30,
        "description": "Wash, cut and finish.",
    })
}
