//! Reliability: one active replica, platform edits racing passes, and crash
//! safety of `calsync once` killed at random points.
//!
//! - `only_one_lease_holder_at_a_time`, `a_lease_whose_connection_dies_is_lost_and_taken_over`
//!   (every backend): the store's [`calsync::store::Lease`].
//! - `two_calsync_run_processes_on_{postgres,mariadb}_...`: real `calsync run`
//!   replicas on one database and one simulator: exactly one leader, passes never
//!   overlap (the run journal), a leader whose lease session is killed stands by,
//!   SIGKILL of the leader hands over to the standby, SIGTERM gives the lease back.
//! - `reliability_report`: the crash harness (the real `calsync once` on
//!   PostgreSQL, SIGKILLed at a random delay each round until
//!   `CALSYNC_CRASH_KILLS` kills, 25 by default) and the concurrent-writer check
//!   (every backend; passes run in-process back to back, the code path of
//!   `calsync once`), then a summary block ending in `violations: N`; the test
//!   asserts N = 0. Run it with `cargo test --test it reliability -- --nocapture`.
//!   `CALSYNC_CRASH_SEED` replays a run (the seed is printed).
//!
//! No test asserts a duration: waits are bounded only to fail a hung test.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calsync::domain::{Field, ServiceId};
use calsync::simulate::{Fault, FaultKind, SimConfig, Simulator};
use calsync::store::StoredRun;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::support::app::TestApp;
use crate::support::binary;
use crate::support::config::{AccountSpec, ConfigFile};
use crate::support::daemon::DaemonProcess;
use crate::support::db::{Business, RawService, TestBackend, TestDb, backend_tests, empty, fresh};
use crate::support::net::free_port;

const KEY: &str = "cal_live_reliability_key_0001";
const TOKEN: &str = "admin-token-reliability-0123456789";
const LEASE: &str = calsync::daemon::LEASE_NAME;
/// Bound of every wait, to fail a hung test; never a performance claim.
const WAIT: Duration = Duration::from_secs(45);
/// Lengths Cal.com accepts, for edits on either side.
const LENGTHS: [i64; 6] = [15, 20, 30, 45, 60, 90];

// ------------------------------------------------------------------ the lease

backend_tests!(only_one_lease_holder_at_a_time, |db| async move {
    let mut first = db.store.lease(LEASE).await.unwrap();
    let mut second = db.store.lease(LEASE).await.unwrap();
    assert!(first.try_acquire().await.unwrap());
    assert!(!second.try_acquire().await.unwrap());
    assert!(first.is_held().await);
    assert!(
        first.try_acquire().await.unwrap(),
        "taking a held lease again only confirms it"
    );
    let mut other = db.store.lease("another").await.unwrap();
    assert!(
        other.try_acquire().await.unwrap(),
        "leases with other names are independent"
    );

    first.release().await;
    assert!(!first.held());
    assert!(
        second.try_acquire().await.unwrap(),
        "a released lease is free at once"
    );
    assert!(!first.try_acquire().await.unwrap());

    // Dropping a lease closes its connection; the server then frees the lock.
    drop(second);
    let deadline = Instant::now() + WAIT;
    while !first.try_acquire().await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "a dropped lease was never released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
});

backend_tests!(
    a_lease_whose_connection_dies_is_lost_and_taken_over,
    |db| async move {
        let mut leader = db.store.lease(LEASE).await.unwrap();
        let mut standby = db.store.lease(LEASE).await.unwrap();
        assert!(leader.try_acquire().await.unwrap());
        assert!(!standby.try_acquire().await.unwrap());

        sever_lease(&db).await;
        assert!(
            !leader.is_held().await,
            "a severed lease must be found lost"
        );
        assert!(leader.loss_reason().is_some());

        let deadline = Instant::now() + WAIT;
        while !standby.try_acquire().await.unwrap() {
            assert!(
                Instant::now() < deadline,
                "the standby never took the lost lease"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !leader.try_acquire().await.unwrap(),
            "the old holder reconnects and finds the lease taken"
        );
    }
);

/// Breaks the current holder's hold the way an outage would: its server
/// session is killed (SQLite: its lock file is removed).
async fn sever_lease(db: &TestDb) {
    match db.backend {
        TestBackend::Postgres => {
            let killed = db
                .count(
                    "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks \
                     WHERE locktype = 'advisory' AND granted \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                )
                .await;
            assert_eq!(killed, 1, "exactly one session holds the lease");
        }
        TestBackend::MariaDb => {
            let lock = format!("calsync:{LEASE}@{}", db.name());
            let holder = db
                .count(&format!("SELECT CAST(IS_USED_LOCK('{lock}') AS SIGNED)"))
                .await;
            db.exec(&format!("KILL CONNECTION {holder}")).await;
        }
        TestBackend::Sqlite => {
            let file = sqlite_file(&db.url);
            std::fs::remove_file(format!("{}.{LEASE}.lock", file.display())).unwrap();
        }
    }
}

fn sqlite_file(url: &str) -> PathBuf {
    let rest = url.trim_start_matches("sqlite://");
    PathBuf::from(rest.split('?').next().unwrap())
}

// ------------------------------------------------------------ shared helpers

async fn simulator() -> Simulator {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Simulator::start(
        "127.0.0.1:0".parse().unwrap(),
        SimConfig {
            api_keys: vec![KEY.into()],
            // Scenarios about crashes and replicas, not throttling.
            rate_limit: 1_000_000,
            ..SimConfig::default()
        },
    )
    .await
    .expect("starting the Cal.com simulator")
}

/// A replica's config: one account with [`KEY`], the operator API with [`TOKEN`].
fn config(db_url: &str, sim: &Simulator, listen_port: u16, schedule: &str) -> ConfigFile {
    ConfigFile::new(db_url, &sim.base_url())
        .set("database.max_connections", 4)
        .set("calcom.retry_initial_delay_ms", 10)
        .set("calcom.max_attempts", 2)
        .set("calcom.requests_per_minute", 100_000)
        .set("sync.schedule", schedule)
        .set("sync.jitter_secs", 0)
        .set("sync.shutdown_timeout_secs", 10)
        .set("server.listen", format!("127.0.0.1:{listen_port}"))
        .set("server.admin_token", TOKEN)
        .account(AccountSpec::new("berlin", 1, KEY))
}

/// Runs `calsync migrate` with this config; panics with its output on failure.
async fn migrate(config: &Path) {
    let out = binary::calsync()
        .args(["--config", config.to_str().unwrap(), "migrate"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "calsync migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn event_type_of(sim: &Simulator, id: Option<i64>) -> Option<Value> {
    sim.event_type(id?)
}

// ------------------------------------------------------------ replicas

/// One `calsync run` process; its output goes to `NAME.log`.
struct Replica {
    name: &'static str,
    process: DaemonProcess,
}

impl Replica {
    async fn start(
        name: &'static str,
        dir: &Path,
        db: &TestDb,
        sim: &Simulator,
        schedule: &str,
    ) -> Replica {
        let port = free_port();
        let config = config(&db.url, sim, port, schedule).write(dir.join(format!("{name}.toml")));
        let process = DaemonProcess::start(&config, port, dir.join(format!("{name}.log")), |_| {});
        Replica { name, process }
    }

    fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    /// `calsync_leader` as `/metrics` shows it; `None` while it does not answer.
    async fn leader_gauge(&self) -> Option<i64> {
        let text = self
            .process
            .http
            .get(self.url("/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("calsync_leader "))
            .and_then(|v| v.trim().parse().ok())
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        match self.process.http.get(self.url(path)).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn reconcile(&self) -> (u16, Value) {
        let r = self
            .process
            .http
            .post(self.url("/api/v1/reconcile"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until `/readyz` answers 200 with this role.
    async fn wait_ready_as(&self, role: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) = self.get_json("/readyz").await;
            if status == 200 && body["role"] == role {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never became ready as {role}; last /readyz: {status} {body}\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> String {
        self.process.output()
    }

    fn sigkill(&mut self) {
        self.process.child.start_kill().unwrap();
    }

    /// SIGTERM, then the exit code.
    async fn stop(self) -> (i32, String) {
        let name = self.name;
        let (code, logs) = self.process.stop(WAIT).await;
        let code = code.unwrap_or_else(|| panic!("{name} ignored SIGTERM:\n{logs}"));
        (code, logs)
    }
}

/// Polls both replicas until exactly one reports `calsync_leader 1`; fails if
/// both ever report 1 in one round of polls. Returns the leader's index.
async fn one_leader(replicas: [&Replica; 2]) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let a = replicas[0].leader_gauge().await;
        let b = replicas[1].leader_gauge().await;
        assert!(
            !(a == Some(1) && b == Some(1)),
            "two leaders at once:\n{}\n{}",
            replicas[0].logs(),
            replicas[1].logs()
        );
        match (a, b) {
            (Some(1), Some(0)) => return 0,
            (Some(0), Some(1)) => return 1,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no single leader emerged: {a:?} {b:?}\n{}\n{}",
            replicas[0].logs(),
            replicas[1].logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_gauge(replica: &Replica, want: i64) {
    let deadline = Instant::now() + WAIT;
    while replica.leader_gauge().await != Some(want) {
        assert!(
            Instant::now() < deadline,
            "{} never reported calsync_leader {want}\n{}",
            replica.name,
            replica.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Journal lines never overlap in time: each pass starts after the previous
/// one (of any replica) finished.
fn assert_runs_never_overlap(runs: &[StoredRun]) {
    let mut runs: Vec<&StoredRun> = runs.iter().collect();
    runs.sort_by_key(|r| (r.started_at, r.finished_at));
    for pair in runs.windows(2) {
        assert!(
            pair[1].started_at >= pair[0].finished_at,
            "passes overlapped: run {} ran {}..{} and run {} started at {}",
            pair[0].id,
            pair[0].started_at,
            pair[0].finished_at,
            pair[1].id,
            pair[1].started_at
        );
    }
}

async fn two_replicas_scenario(backend: TestBackend) {
    let sim = simulator().await;
    for (title, length) in [("Cut", 30), ("Colour", 90), ("Trim", 15), ("Wash", 20)] {
        sim.create_event_type(KEY, json!({"title": title, "lengthInMinutes": length}));
    }
    let db = fresh(backend).await;
    let dir = tempfile::tempdir().unwrap();
    // Every two seconds: one interval is also the standby's retry period.
    let schedule = "*/2 * * * * *";
    let mut replicas = [
        Replica::start("a", dir.path(), &db, &sim, schedule).await,
        Replica::start("b", dir.path(), &db, &sim, schedule).await,
    ];

    let lead = one_leader([&replicas[0], &replicas[1]]).await;
    replicas[lead].wait_ready_as("leader").await;
    replicas[1 - lead].wait_ready_as("standby").await;
    // Still one leader a few polls later.
    for _ in 0..5 {
        assert_eq!(replicas[lead].leader_gauge().await, Some(1));
        assert_eq!(replicas[1 - lead].leader_gauge().await, Some(0));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = replicas[1 - lead].reconcile().await;
    assert!(
        status == 503 || status == 409,
        "a standby must refuse passes: {status} {body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("standby:"),
        "{body}"
    );
    let (status, body) = replicas[lead].reconcile().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM services").await,
        4,
        "the leader imported the event types"
    );

    // The leader's lease session dies (the process lives on): it stops
    // reconciling and stands by; one of the two leads again.
    sever_lease(&db).await;
    let deadline = Instant::now() + WAIT;
    while !replicas[lead].logs().contains("Lost the reconcile lease") {
        assert!(
            Instant::now() < deadline,
            "the leader never noticed its lost lease:\n{}",
            replicas[lead].logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lead = one_leader([&replicas[0], &replicas[1]]).await;

    // The leader dies without any cleanup.
    replicas[lead].sigkill();
    let killed_at = Instant::now();
    let standby = &replicas[1 - lead];
    wait_gauge(standby, 1).await;
    eprintln!(
        "{backend}: the standby took over {:.1} s after the leader was killed (schedule interval 2 s)",
        killed_at.elapsed().as_secs_f64()
    );
    // ... and reconciles: a platform edit reaches Cal.com.
    let edited = db.raw_services().await[0].clone();
    db.store
        .edit_as_platform(ServiceId(edited.id), Some("Renamed after failover"), None)
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let now = db.raw_service(ServiceId(edited.id)).await;
        let calcom = event_type_of(&sim, now.calcom_event_type_id).unwrap();
        if now.sync_status == "synced" && calcom["title"] == "Renamed after failover" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new leader never pushed the edit ({} / {})\n{}",
            now.sync_status,
            calcom["title"],
            standby.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A replacement joins as a standby; SIGTERM of the leader hands it the lease.
    let c = Replica::start("c", dir.path(), &db, &sim, schedule).await;
    c.wait_ready_as("standby").await;
    assert_eq!(c.leader_gauge().await, Some(0));
    let [a, b] = replicas;
    let (dead, survivor) = if lead == 0 { (a, b) } else { (b, a) };
    let dead_logs = dead.logs();
    let (code, survivor_logs) = survivor.stop().await;
    assert_eq!(code, 0, "{survivor_logs}");
    wait_gauge(&c, 1).await;
    c.wait_ready_as("leader").await;
    let (code, c_logs) = c.stop().await;
    assert_eq!(code, 0, "{c_logs}");

    let all = format!("{dead_logs}\n{survivor_logs}\n{c_logs}");
    for line in [
        "Standing by: another calsync holds the reconcile lease",
        "Acquired the reconcile lease",
        "Lost the reconcile lease",
    ] {
        assert!(all.contains(line), "no {line:?} in the logs:\n{all}");
    }
    assert!(c_logs.contains("Acquired the reconcile lease"), "{c_logs}");
    let runs = db.store.last_runs(10_000).await.unwrap();
    assert!(runs.len() >= 3, "passes ran: {runs:?}");
    assert_runs_never_overlap(&runs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_calsync_run_processes_on_postgres_elect_one_leader_and_fail_over() {
    two_replicas_scenario(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_calsync_run_processes_on_mariadb_elect_one_leader_and_fail_over() {
    two_replicas_scenario(TestBackend::MariaDb).await;
}

// ------------------------------------------------------------ the report

/// What the report adds up.
#[derive(Default)]
struct Tally {
    scenarios: Vec<String>,
    kills: u64,
    /// Kills whose round found a violation.
    failed_kills: u64,
    finished_before_kill: u64,
    kill_phases: BTreeMap<&'static str, u64>,
    delayed_responses: u64,
    platform_edits: u64,
    calcom_edits: u64,
    created: u64,
    deleted_event_types: u64,
    deleted_services: u64,
    raced_confirmations: u64,
    invariants: u64,
    violations: Vec<String>,
}

impl Tally {
    /// Counts one invariant check; records a violation when it does not hold.
    fn check(&mut self, holds: bool, violation: impl FnOnce() -> String) {
        self.invariants += 1;
        if !holds {
            self.violations.push(violation());
        }
    }

    fn print(&self, seed: u64) {
        let phases: Vec<String> = self
            .kill_phases
            .iter()
            .map(|(p, n)| format!("{p}: {n}"))
            .collect();
        let lines = [
            "==================== calsync reliability report ====================".to_owned(),
            format!("scenarios run: {}", self.scenarios.len()),
            format!("  {}", self.scenarios.join("\n  ")),
            format!(
                "faults injected: {} (SIGKILLs: {}, delayed Cal.com responses: {})",
                self.kills + self.delayed_responses,
                self.kills,
                self.delayed_responses
            ),
            format!(
                "kills survived: {} of {} ({}); {} of {} runs finished before their kill",
                self.kills - self.failed_kills,
                self.kills,
                phases.join(", "),
                self.finished_before_kill,
                self.kills + self.finished_before_kill
            ),
            format!(
                "changes applied: platform edits {}, Cal.com-side edits {}, event types created {}, event types deleted {}, services deleted {}",
                self.platform_edits,
                self.calcom_edits,
                self.created,
                self.deleted_event_types,
                self.deleted_services
            ),
            format!(
                "platform edits that raced a push (left pending, pushed later): {}",
                self.raced_confirmations
            ),
            format!("invariants checked: {}", self.invariants),
            format!("violations: {}", self.violations.len()),
            format!("seed: {seed} (CALSYNC_CRASH_SEED replays this run)"),
            "=====================================================================".to_owned(),
        ];
        println!("\n{}", lines.join("\n"));
        for v in self.violations.iter().take(30) {
            println!("VIOLATION: {v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_report() {
    let kills: u64 = std::env::var("CALSYNC_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let seed: u64 = std::env::var("CALSYNC_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    let mut tally = Tally::default();
    crash_harness(kills, seed, &mut tally).await;
    for backend in TestBackend::ALL {
        concurrent_writer(backend, seed, &mut tally).await;
    }
    tally.print(seed);
    assert_eq!(
        tally.kills, kills,
        "the harness could not land the wanted number of kills"
    );
    assert!(
        tally.violations.is_empty(),
        "{} invariant violation(s); see the report above",
        tally.violations.len()
    );
}

// ------------------------------------------------------------ crash harness

/// What the harness, playing the platform, knows about the services.
struct Model {
    /// Business columns as the platform last wrote them (or as imported).
    expected: HashMap<i64, Business>,
    /// Services the platform marked pending and calsync has not been seen to
    /// confirm: (name, duration) the platform wrote.
    pending: HashMap<i64, (String, i64)>,
}

/// `calsync once`, the real binary, against PostgreSQL, killed at a random
/// delay in each round. See the module docs.
async fn crash_harness(kills: u64, seed: u64, tally: &mut Tally) {
    let mut rng = StdRng::seed_from_u64(seed);
    let sim = simulator().await;
    for i in 0..30 {
        sim.create_event_type(
            KEY,
            json!({"title": format!("Service {i}"), "lengthInMinutes": *LENGTHS.choose(&mut rng).unwrap()}),
        );
    }
    let db = empty(TestBackend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    // A local server: no TLS handshake, so start-up is short and more kills land
    // inside the pass itself.
    let url = format!("{}?sslmode=disable", db.url);
    let config =
        config(&url, &sim, free_port(), "0 */5 * * * *").write(dir.path().join("calsync.toml"));
    migrate(&config).await;
    tally.scenarios.push(format!(
        "crash harness on postgres: `calsync once` SIGKILLed at 0-300 ms until {kills} kills, each round followed by an unkilled pass"
    ));

    let code = once(&config).await;
    assert_eq!(code, 0, "the first pass must be clean");
    let mut model = Model {
        expected: HashMap::new(),
        pending: HashMap::new(),
    };
    check_invariants(&db, &sim, &mut model, tally, "start", false).await;

    // A run that finishes before its kill time is not a kill; rounds go on until
    // the wanted number of kills (bounded, should the binary get much faster).
    let mut round = 0;
    while tally.kills < kills && round < kills * 4 {
        round += 1;
        let label = format!("round {round}");
        let violations_before = tally.violations.len();
        mutate(&db, &sim, &mut model, &mut rng, round, tally).await;
        // A slower or faster Cal.com each round, so the pass (listing, pushes,
        // commit) lands at different points of the 0-300 ms kill window.
        sim.clear_faults();
        let latency = *[0, 5, 15, 30].choose(&mut rng).unwrap();
        if latency > 0 {
            sim.inject_fault(Fault::new(FaultKind::Delay { ms: latency }).times(0));
        }

        // The killed run.
        let runs_before = db.count("SELECT COUNT(*) FROM calsync_runs").await;
        let seq_before = sim.requests().last().map_or(0, |r| r.seq);
        let delay = Duration::from_millis(rng.random_range(0..=300));
        let mut child = binary::calsync()
            .args(["--config", config.to_str().unwrap(), "once"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let killed = tokio::select! {
            status = child.wait() => {
                let code = status.unwrap().code();
                tally.check(code == Some(0), || format!("[{label}] an unkilled run exited {code:?}"));
                false
            }
            _ = tokio::time::sleep(delay) => {
                child.start_kill().unwrap();
                child.wait().await.unwrap();
                true
            }
        };
        // A request the process sent just before it died may still be on its way
        // through the delayed simulator; let it land before looking.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let requests: Vec<_> = sim
            .requests()
            .into_iter()
            .filter(|r| r.seq > seq_before)
            .collect();
        if latency > 0 {
            tally.delayed_responses += requests.len() as u64;
        }
        if killed {
            tally.kills += 1;
            let committed = db.count("SELECT COUNT(*) FROM calsync_runs").await > runs_before;
            let patches = requests.iter().filter(|r| r.method == "PATCH").count();
            let phase = match (requests.is_empty(), patches, committed) {
                (_, _, true) => "after the commit",
                (true, _, false) => "before Cal.com answered anything",
                (false, 0, false) => "after the listing, before any push landed",
                (false, _, false) => "after some pushes landed",
            };
            *tally.kill_phases.entry(phase).or_default() += 1;
        } else {
            tally.finished_before_kill += 1;
        }
        check_invariants(
            &db,
            &sim,
            &mut model,
            tally,
            &format!("{label}, after the kill"),
            false,
        )
        .await;

        // The follow-up run, not killed, must complete cleanly.
        let seq_before = sim.requests().last().map_or(0, |r| r.seq);
        let code = once(&config).await;
        if latency > 0 {
            tally.delayed_responses +=
                sim.requests().iter().filter(|r| r.seq > seq_before).count() as u64;
        }
        tally.check(code == 0, || {
            format!("[{label}] the follow-up `calsync once` exited {code} instead of 0")
        });
        check_invariants(
            &db,
            &sim,
            &mut model,
            tally,
            &format!("{label}, after the follow-up"),
            true,
        )
        .await;
        if killed && tally.violations.len() > violations_before {
            tally.failed_kills += 1;
        }
    }
}

/// `calsync once` to completion; its exit code.
async fn once(config: &Path) -> i32 {
    let out = tokio::time::timeout(
        WAIT,
        binary::calsync()
            .args(["--config", config.to_str().unwrap(), "once"])
            .output(),
    )
    .await
    .expect("`calsync once` hung")
    .unwrap();
    out.status.code().unwrap_or(-1)
}

/// One round of changes on both sides, as users would make them between passes.
async fn mutate(
    db: &TestDb,
    sim: &Simulator,
    model: &mut Model,
    rng: &mut StdRng,
    round: u64,
    tally: &mut Tally,
) {
    let services = db.raw_services().await;
    // Platform edits: new name and length, marked pending.
    let mut ids: Vec<i64> = services.iter().map(|s| s.id).collect();
    ids.shuffle(rng);
    for (i, id) in ids.iter().take(rng.random_range(3..=8)).enumerate() {
        let name = format!("Service {id} r{round}.{i}");
        let length = *LENGTHS.choose(rng).unwrap();
        assert!(
            db.store
                .edit_as_platform(ServiceId(*id), Some(&name), Some(length as i32))
                .await
                .unwrap()
        );
        let expected = model
            .expected
            .get_mut(id)
            .expect("every service is modelled");
        expected.0 = name.clone();
        expected.2 = length;
        model.pending.insert(*id, (name, length));
        tally.platform_edits += 1;
    }
    // Cal.com-side edits (drift calsync must record, never copy).
    let live: Vec<i64> = services
        .iter()
        .filter_map(|s| s.calcom_event_type_id)
        .filter(|id| sim.event_type(*id).is_some())
        .collect();
    let count = rng.random_range(1..=3);
    let picked: Vec<i64> = live.choose_multiple(rng, count).copied().collect();
    for id in &picked {
        let patch = if rng.random_bool(0.5) {
            json!({"title": format!("Edited in Cal.com r{round}")})
        } else {
            json!({"lengthInMinutes": *LENGTHS.choose(rng).unwrap()})
        };
        assert!(sim.edit_event_type(*id, patch));
        tally.calcom_edits += 1;
    }
    // New event types, to be imported.
    for i in 0..rng.random_range(0..=2) {
        sim.create_event_type(
            KEY,
            json!({"title": format!("New r{round}.{i}"), "lengthInMinutes": *LENGTHS.choose(rng).unwrap()}),
        );
        tally.created += 1;
    }
    // Deletions: an event type in Cal.com (its service is orphaned, never
    // deleted), now and then a service in the platform (its event type is
    // imported again as a new service). Enough stay for a non-empty listing.
    if live.len() > 15 && rng.random_bool(0.3) {
        let id = *live.choose(rng).unwrap();
        assert!(sim.delete_event_type(id));
        tally.deleted_event_types += 1;
    }
    if services.len() > 15 && rng.random_bool(0.15) {
        let id = services.choose(rng).unwrap().id;
        db.exec(&format!("DELETE FROM services WHERE id = {id}"))
            .await;
        model.expected.remove(&id);
        model.pending.remove(&id);
        tally.deleted_services += 1;
    }
}

/// The invariants, checked against the database and the simulator:
/// 1. no two services share an event type id;
/// 2. no service disappears, and no business column differs from what the
///    platform last wrote (or, for an import, from what was first imported);
/// 3. no pending edit is lost: a service the platform marked pending is still
///    pending, or for each of name and length Cal.com holds the platform's value
///    or the drift ledger holds Cal.com's (an edit made in Cal.com since the two
///    last agreed, kept out of the platform);
/// 4. after an unkilled pass (`settled`): nothing linked to a live event type
///    is left pending.
async fn check_invariants(
    db: &TestDb,
    sim: &Simulator,
    model: &mut Model,
    tally: &mut Tally,
    when: &str,
    settled: bool,
) {
    let services = db.raw_services().await;
    let by_id: HashMap<i64, &RawService> = services.iter().map(|s| (s.id, s)).collect();

    let mut links: HashMap<i64, Vec<i64>> = HashMap::new();
    for s in &services {
        if let Some(et) = s.calcom_event_type_id {
            links.entry(et).or_default().push(s.id);
        }
    }
    let shared: Vec<_> = links.iter().filter(|(_, ids)| ids.len() > 1).collect();
    tally.check(shared.is_empty(), || {
        format!("[{when}] services share event types: {shared:?}")
    });

    for (id, expected) in &model.expected {
        let Some(row) = by_id.get(id) else {
            tally.check(false, || format!("[{when}] service {id} disappeared"));
            continue;
        };
        tally.check(row.business() == *expected, || {
            format!(
                "[{when}] service {id}: business columns {:?}, but the platform last wrote {expected:?}",
                row.business()
            )
        });
    }
    for s in &services {
        if let std::collections::hash_map::Entry::Vacant(entry) = model.expected.entry(s.id) {
            // Imported since the last check: calsync wrote these values from
            // Cal.com; from now on only the platform may change them.
            tally.check(s.calcom_event_type_id.is_some(), || {
                format!("[{when}] service {} appeared without an event type", s.id)
            });
            entry.insert(s.business());
        }
    }

    let open = db
        .store
        .open_drift(None)
        .await
        .expect("reading the drift ledger");
    let pending: Vec<(i64, (String, i64))> =
        model.pending.iter().map(|(k, v)| (*k, v.clone())).collect();
    for (id, (name, length)) in pending {
        let Some(row) = by_id.get(&id) else {
            // Reported above as disappeared.
            continue;
        };
        if row.sync_status == "pending" {
            tally.check(true, String::new);
            continue;
        }
        let calcom = event_type_of(sim, row.calcom_event_type_id);
        // Each field holds the platform's edit in Cal.com, or Cal.com's own value
        // is open in the drift ledger (a Cal.com-side edit the three-way reconcile
        // kept out of the platform, where the platform had not changed it since the
        // two last agreed).
        let recorded = |field: Field, value: String| {
            open.iter().any(|e| {
                e.service_id == ServiceId(id) && e.field == field && e.calcom_value == value
            })
        };
        let holds = calcom.as_ref().is_some_and(|et| {
            let title = et["title"].as_str().unwrap_or_default();
            (title == name || recorded(Field::Name, title.to_owned()))
                && (et["lengthInMinutes"] == length
                    || recorded(Field::DurationMinutes, et["lengthInMinutes"].to_string()))
        });
        tally.check(holds, || {
            format!(
                "[{when}] service {id} is {} but Cal.com has {:?} instead of the platform's edit ({name:?}, {length}), and the drift ledger does not hold Cal.com's value",
                row.sync_status,
                calcom.as_ref().map(|et| (et["title"].clone(), et["lengthInMinutes"].clone()))
            )
        });
        model.pending.remove(&id);
    }

    if settled {
        for s in &services {
            let live = event_type_of(sim, s.calcom_event_type_id).is_some();
            tally.check(!(live && s.sync_status == "pending"), || {
                format!(
                    "[{when}] service {} is still pending after a clean pass: {:?}",
                    s.id, s.sync_error
                )
            });
        }
    }
}

// ------------------------------------------------------------ concurrent writer

/// Passes run back to back (with `push_pending`, slowed Cal.com so edits land
/// mid-push) while the platform keeps editing services. After every pass, every
/// synced service's name and length must be what Cal.com has (no edit marked
/// synced without its push); after a final quiet pass, nothing is pending and
/// Cal.com has every service's current values.
async fn concurrent_writer(backend: TestBackend, seed: u64, tally: &mut Tally) {
    const SERVICES: usize = 12;
    const EDITS: u64 = 80;
    let app = TestApp::spawn(backend).await;
    for i in 0..SERVICES {
        app.given_event_type(json!({"title": format!("Writer {i}"), "lengthInMinutes": 30}));
    }
    let first = app.sync_once().await;
    assert_eq!(first.accounts[0].imported, SERVICES, "{first:?}");
    app.calcom
        .inject_fault(Fault::new(FaultKind::Delay { ms: 10 }).times(0));
    let seq_before = app.calcom.requests().last().map_or(0, |r| r.seq);
    let ids: Vec<i64> = app.services().await.iter().map(|s| s.id).collect();
    let written: Arc<Mutex<HashMap<i64, (String, i64)>>> = Arc::default();

    let writer = {
        let store = app.db.store.clone();
        let written = written.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5752_4954_4552);
            for n in 0..EDITS {
                let id = *ids.choose(&mut rng).unwrap();
                let name = format!("Writer {id} edit {n}");
                let length = *LENGTHS.choose(&mut rng).unwrap();
                store
                    .edit_as_platform(ServiceId(id), Some(&name), Some(length as i32))
                    .await
                    .unwrap();
                written.lock().unwrap().insert(id, (name, length));
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..25))).await;
            }
        })
    };

    let label = format!("concurrent writer on {backend}");
    let mut passes = 0;
    let mut raced = 0;
    while !writer.is_finished() {
        let report = app.sync_once().await;
        passes += 1;
        let account = &report.accounts[0];
        tally.check(account.result == "success", || {
            format!("[{label}] a pass failed: {:?}", account.error)
        });
        raced += account.confirmation_conflicts;
        synced_rows_match_calcom(&app, tally, &label).await;
    }
    writer.await.unwrap();
    let quiet = app.sync_once().await;
    tally.check(!quiet.has_failures(), || {
        format!("[{label}] the quiet pass failed: {quiet:?}")
    });
    synced_rows_match_calcom(&app, tally, &label).await;
    let written = written.lock().unwrap().clone();
    for s in app.services().await {
        tally.check(s.sync_status == "synced", || {
            format!(
                "[{label}] service {} is {} after the quiet pass",
                s.id, s.sync_status
            )
        });
        if let Some((name, length)) = written.get(&s.id) {
            tally.check(s.name == *name && s.duration_minutes == *length, || {
                format!(
                    "[{label}] service {} has ({:?}, {}) but the platform last wrote ({name:?}, {length})",
                    s.id, s.name, s.duration_minutes
                )
            });
        }
    }
    tally.delayed_responses += app
        .calcom
        .requests()
        .iter()
        .filter(|r| r.seq > seq_before)
        .count() as u64;
    tally.platform_edits += EDITS;
    tally.raced_confirmations += raced;
    tally.scenarios.push(format!(
        "concurrent writer on {backend}: {EDITS} platform edits during {passes} passes ({raced} landed mid-push), then a quiet pass"
    ));
}

/// Every service not pending must show in Cal.com with its own name and length.
async fn synced_rows_match_calcom(app: &TestApp, tally: &mut Tally, label: &str) {
    for s in app.services().await {
        if s.sync_status == "pending" {
            continue;
        }
        let et = app.calcom_event_type(s.calcom_event_type_id.unwrap());
        tally.check(
            et["title"].as_str() == Some(s.name.as_str())
                && et["lengthInMinutes"] == s.duration_minutes,
            || {
                format!(
                    "[{label}] service {} is {} with ({:?}, {}) but Cal.com has ({}, {})",
                    s.id,
                    s.sync_status,
                    s.name,
                    s.duration_minutes,
                    et["title"],
                    et["lengthInMinutes"]
                )
            },
        );
    }
}
