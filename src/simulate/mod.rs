//! A Cal.com API v2 simulator: a real HTTP/1 server speaking the subset calsync
//! uses (personal, team and organization event types) with Cal.com's shapes,
//! envelopes, error messages, version header, per-key throttling and block, plus
//! injectable faults and a `/_sim` control surface. Integration tests, `calsync
//! demo` and the benchmarks run against it. It owns only its in-memory data; it
//! must never be reachable from the daemon's own code paths (calsync talks to
//! it only over HTTP, like to Cal.com), and it never prints or logs an API key.
//!
//! Files, following a request: `server.rs` (accept, faults, throttling, log) →
//! `routes.rs` (the `/v2` rules) with `input.rs` (what create and update accept)
//! → `state.rs` (users, event types by owner, teams, orgs) and `shape.rs` (the
//! output objects). `envelope.rs` formats responses, `faults.rs`,
//! `ratelimit.rs` and `requests.rs` own their parts, `seed.rs` the catalogue,
//! and `admin.rs` the `/_sim` endpoints and their in-process twins.

mod admin;
mod behaviour;
mod envelope;
mod faults;
mod input;
mod ratelimit;
mod requests;
mod routes;
mod seed;
mod server;
mod shape;
mod state;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use behaviour::{ListingRace, Normalise};
pub use faults::{Fault, FaultKind};
pub use requests::RequestLogEntry;

use faults::FaultBook;
use ratelimit::{Limits, RateLimiter};
use requests::RequestLog;
use state::World;

/// `calsync simulate` options.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// An API key the simulator accepts (repeat for several users).
    #[arg(long = "api-key", required = true)]
    pub api_keys: Vec<String>,
    /// Event types created for each key at start.
    #[arg(long, default_value_t = 0)]
    pub seed_event_types: usize,
    /// Requests per window per key before it is blocked.
    #[arg(long, default_value_t = 120)]
    pub rate_limit: u32,
    #[arg(long, default_value_t = 60)]
    pub rate_window_secs: u64,
    /// How long a key that went over the limit is refused.
    #[arg(long, default_value_t = 60)]
    pub block_secs: u64,
}

/// What a simulator starts with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub api_keys: Vec<String>,
    pub seed_event_types: usize,
    pub rate_limit: u32,
    pub rate_window: Duration,
    pub block: Duration,
}

impl Default for SimConfig {
    /// No keys, no seed, and Cal.com's API-key limits: 120 requests per 60 s,
    /// then blocked for 60 s.
    fn default() -> Self {
        SimConfig {
            api_keys: Vec::new(),
            seed_event_types: 0,
            rate_limit: 120,
            rate_window: Duration::from_secs(60),
            block: Duration::from_secs(60),
        }
    }
}

impl From<&SimulateArgs> for SimConfig {
    fn from(args: &SimulateArgs) -> Self {
        SimConfig {
            api_keys: args.api_keys.clone(),
            seed_event_types: args.seed_event_types,
            rate_limit: args.rate_limit,
            rate_window: Duration::from_secs(args.rate_window_secs),
            block: Duration::from_secs(args.block_secs),
        }
    }
}

/// Everything the connections share.
pub(crate) struct Shared {
    world: RwLock<World>,
    faults: FaultBook,
    limiter: RateLimiter,
    log: RequestLog,
    behaviour: behaviour::Behaviour,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, World> {
        // Writers never leave the world half-updated (each change is one insert
        // or remove), so a lock poisoned by a panicking test thread is still sound.
        self.world
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, World> {
        self.world
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running simulator. Dropping it stops the server too; [`Simulator::shutdown`]
/// also waits for connections to close.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Simulator {
    /// Seeds the configured keys and starts serving on `listen`.
    pub async fn start(listen: SocketAddr, config: SimConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        // Seeding 100k event types takes a moment; keep it off the async workers.
        let keys = config.api_keys.clone();
        let per_key = config.seed_event_types;
        let world = tokio::task::spawn_blocking(move || seeded_world(&keys, per_key))
            .await
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            world: RwLock::new(world),
            behaviour: behaviour::Behaviour::default(),
            faults: FaultBook::default(),
            limiter: RateLimiter::new(Limits {
                limit: config.rate_limit,
                window: config.rate_window,
                block: config.block,
            }),
            log: RequestLog::new(),
        });
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(server::accept_loop(
            listener,
            shared.clone(),
            stop.clone(),
            tasks.clone(),
        ));
        Ok(Simulator {
            addr,
            shared,
            stop,
            tasks,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, to use as calsync's Cal.com base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight responses finish briefly, closes every
    /// connection and waits for them.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// The user id behind a key (keys given at start or registered since).
    pub fn user_id(&self, api_key: &str) -> Option<i64> {
        self.shared.user_id(api_key)
    }

    /// Creates a personal event type for the key's user (a new user for an
    /// unknown key), storing `fields` verbatim over the defaults, as a UI edit
    /// would. Returns the stored object, with its id.
    pub fn create_event_type(&self, api_key: &str, fields: Value) -> Value {
        self.shared.admin_create_personal(api_key, fields)
    }

    /// Creates the team, or replaces its admins; unknown keys become users.
    pub fn create_team(&self, team_id: i64, admin_api_keys: &[&str]) {
        self.shared.admin_create_team(team_id, admin_api_keys);
    }

    /// Creates an event type of the team (the team is created if unknown), its
    /// admins as hosts. Returns the stored object.
    pub fn create_team_event_type(&self, team_id: i64, fields: Value) -> Value {
        self.shared.admin_create_for_team(team_id, fields)
    }

    /// Creates the organization or replaces its teams and members (the users
    /// of `api_keys`).
    pub fn create_org(&self, org_id: i64, team_ids: &[i64], api_keys: &[&str]) {
        self.shared.admin_create_org(org_id, team_ids, api_keys);
    }

    /// Merges any top-level fields into an event type, as an edit in Cal.com's
    /// UI (price, currency, metadata, hidden, even values of the wrong type).
    /// The id never changes; a new slug moves `bookingUrl`.
    pub fn edit_event_type(&self, id: i64, patch: Value) -> bool {
        self.shared.admin_edit(id, patch)
    }

    /// The stored event type, as `GET` returns it.
    pub fn event_type(&self, id: i64) -> Option<Value> {
        self.shared.admin_event_type(id)
    }

    pub fn delete_event_type(&self, id: i64) -> bool {
        self.shared.admin_delete(id)
    }

    /// From now on, PATCHes are normalised this way before they are stored (as a
    /// real server trims or rounds values); `Normalise::default()` turns it off.
    pub fn set_normalise(&self, normalise: Normalise) {
        self.shared.behaviour.set_normalise(normalise);
    }

    /// Arms (or with `None` disarms) a deletion in the middle of paging an
    /// organization's listing.
    pub fn set_listing_race(&self, race: Option<ListingRace>) {
        self.shared.behaviour.set_race(race);
    }

    pub fn inject_fault(&self, fault: Fault) {
        self.shared.faults.inject(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Every `/v2` request received since start or the last clear.
    pub fn requests(&self) -> Vec<RequestLogEntry> {
        self.shared.log.entries()
    }

    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// New limits for every credential; current counts and blocks are dropped.
    pub fn set_rate_limit(&self, limit: u32, window: Duration, block: Duration) {
        self.shared.set_limits(limit, window, block);
    }
}

/// One user per key (a key given twice is one user), each with its catalogue.
fn seeded_world(keys: &[String], per_key: usize) -> World {
    let mut world = World::new();
    for key in keys {
        let user = world.register_key(key);
        if world.user_count(user) == 0 {
            for fields in seed::catalogue(user, per_key) {
                world.create_seeded(user, &fields);
            }
        }
    }
    world
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `calsync simulate`: serves until `shutdown` is cancelled. Prints the URL
/// line, then one line per key naming its user, never the key.
pub async fn run(args: SimulateArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let simulator = Simulator::start(args.listen, SimConfig::from(&args))
        .await
        .with_context(|| format!("cannot start the simulator on {}", args.listen))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "calsync simulator listening on {}",
            simulator.base_url()
        )?;
        out.flush()?;
        for (n, key) in args.api_keys.iter().enumerate() {
            let user = simulator.user_id(key).unwrap_or_default();
            let count = simulator.shared.read().user_count(user);
            writeln!(out, "key #{} → user id {user}, {count} event types", n + 1)?;
        }
        out.flush()?;
    }
    shutdown.cancelled().await;
    simulator.shutdown().await;
    Ok(())
}
