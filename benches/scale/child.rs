//! calsync as a child process, driven the way an operator drives it: a generated
//! config file, `calsync migrate`, `calsync once --format json` (a pass) and
//! `calsync run` (the idle daemon). Its CPU time and peak RSS come from `wait4` in
//! a small helper process ([`measure_child`]); a child running longer than the
//! pass timeout is killed and reported as timed out, never waited for.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde::Deserialize;

use calsync::simulate::Simulator;

use crate::databases::{BenchDb, Writes};
use crate::{BIN, Knobs};

/// First argument of the bench binary re-executed as the measuring helper.
pub const MEASURE_CHILD: &str = "--measure-child";

/// `scale --measure-child REPORT ARGS…`: runs calsync with ARGS (stdio
/// inherited), writes its pid to `REPORT.pid` (so the bench can kill it on a
/// timeout), reaps it with `wait4`, writes "exit-code cpu-µs peak-rss-kB" to
/// REPORT. Why a helper: Linux folds the memory of the process a child was
/// spawned from into the child's `ru_maxrss` (until `exec` the child shares or
/// copies the parent's memory), so spawned straight from the bench, which holds
/// the simulator's event types, every calsync would report at least the bench's
/// own size. This freshly started, small process spawns calsync instead.
pub fn measure_child(args: &[std::ffi::OsString]) -> std::process::ExitCode {
    let Some((report, rest)) = args.split_first() else {
        eprintln!("{MEASURE_CHILD} REPORT ARGS…");
        return std::process::ExitCode::FAILURE;
    };
    let measured = (|| -> anyhow::Result<()> {
        let child = std::process::Command::new(BIN).args(rest).spawn()?;
        std::fs::write(pid_file(Path::new(report)), child.id().to_string())?;
        let exit = rusage::wait(child.id() as i32)?;
        std::fs::write(
            report,
            format!(
                "{} {} {}",
                exit.code.unwrap_or(-1),
                exit.cpu.as_micros(),
                exit.max_rss_kb
            ),
        )?;
        Ok(())
    })();
    match measured {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{MEASURE_CHILD}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn pid_file(report: &Path) -> PathBuf {
    let mut name = report.as_os_str().to_owned();
    name.push(".pid");
    PathBuf::from(name)
}

/// One `calsync once` child, as measured.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    pub wall: f64,
    pub cpu: f64,
    pub rss_mb: f64,
    /// Killed after this many seconds: every other field is then incomplete.
    pub timed_out: Option<u64>,
    /// Sum of `sql_statements` over the accounts of the JSON report. calsync
    /// counts them with one store-wide counter, so under concurrency each account
    /// also counts its neighbours' statements: this sum overstates.
    pub sql: u64,
    /// Statements of one account's pass run alone (`--account`), where the
    /// counter is exact; every account does the same work in this benchmark.
    pub sql_solo: Option<u64>,
    /// Seconds from spawning calsync to its first Cal.com request (process
    /// start, config, database connect, schema checks).
    pub startup: f64,
    /// Sum of `calcom_requests` over the accounts of the JSON report.
    pub http: u64,
    /// `/v2` requests the simulator logged during the pass.
    pub http_sim: u64,
    pub imports: u64,
    pub in_sync: u64,
    pub drifted: u64,
    /// Sum of `services_written` (rows of `services` inserted or updated), as
    /// calsync reports it.
    pub services_written: u64,
    /// What the database says was written (see [`Writes`]).
    pub writes: Writes,
    pub failed_accounts: u64,
    pub log_bytes: u64,
}

impl Pass {
    pub fn summary(&self) -> String {
        match self.timed_out {
            Some(secs) => format!("timed out after {secs} s"),
            None => format!(
                "{:.2} s ({:.2} s CPU, {:.1} MB peak), {} imported, {} in sync, {} drifted, {} SQL statements",
                self.wall,
                self.cpu,
                self.rss_mb,
                self.imports,
                self.in_sync,
                self.drifted,
                self.sql
            ),
        }
    }
}

/// The idle daemon's memory.
#[derive(Debug, Clone, Default)]
pub struct Idle {
    pub rss_mb: f64,
    pub hwm_mb: f64,
}

/// How to run calsync for one scenario.
pub struct Calsync {
    config: PathBuf,
    dir: PathBuf,
    listen: u16,
    timeout: Duration,
    /// When the simulator started: its request log counts milliseconds from it.
    sim_started: Instant,
}

/// How a child ended, with its resources.
struct ChildRun {
    spawned: Instant,
    exit: Option<i32>,
    timed_out: bool,
    wall: f64,
    cpu: f64,
    max_rss_kb: u64,
    stdout: Vec<u8>,
    log: PathBuf,
}

#[derive(Deserialize)]
struct PassJson {
    accounts: Vec<AccountJson>,
}

#[derive(Deserialize)]
struct AccountJson {
    result: String,
    error: Option<String>,
    imported: u64,
    calcom_requests: u64,
    sql_statements: u64,
    #[serde(default)]
    services_written: u64,
    counts: CountsJson,
}

#[derive(Deserialize)]
struct CountsJson {
    in_sync: u64,
    drifted: u64,
}

impl Calsync {
    /// Writes the config file for this scenario into `dir`.
    pub fn new(
        knobs: &Knobs,
        dir: &Path,
        db_url: &str,
        base_url: &str,
        keys: &[String],
        sim_started: Instant,
    ) -> anyhow::Result<Calsync> {
        let listen = free_port()?;
        Ok(Calsync {
            config: write_config(dir, db_url, base_url, keys, knobs, listen)?,
            dir: dir.to_path_buf(),
            listen,
            timeout: knobs.pass_timeout,
            sim_started,
        })
    }

    /// Runs `calsync --config … ARGS`, stdout captured, stderr (logs) to a file;
    /// kills calsync once it has run longer than the timeout.
    async fn run(&self, args: &[&str], label: &str) -> anyhow::Result<ChildRun> {
        let log = self.dir.join(format!("{label}.log"));
        let usage = self.dir.join(format!("{label}.rusage"));
        let _ = std::fs::remove_file(pid_file(&usage));
        let mut command = std::process::Command::new(std::env::current_exe()?);
        scrub_env(&mut command);
        command
            .arg(MEASURE_CHILD)
            .arg(&usage)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            let spawned = Instant::now();
            let mut child = command.spawn().context("starting calsync")?;
            let mut stdout = child.stdout.take().context("calsync's stdout")?;
            // Read while it runs: a large report does not fit a pipe buffer.
            let reader = std::thread::spawn(move || {
                let mut buf = Vec::new();
                stdout.read_to_end(&mut buf).map(|_| buf)
            });
            // The watchdog kills calsync (not the helper, which still reaps it
            // and reports) unless told the helper ended first.
            let (done, ended) = std::sync::mpsc::channel::<()>();
            let pids = pid_file(&usage);
            let watchdog = std::thread::spawn(move || {
                if ended.recv_timeout(timeout).is_ok() {
                    return false;
                }
                match std::fs::read_to_string(&pids).map(|p| p.trim().parse::<i32>()) {
                    Ok(Ok(pid)) => rusage::signal(pid, rusage::SIGKILL).is_ok(),
                    _ => false,
                }
            });
            let helper = child.wait()?;
            let wall = spawned.elapsed().as_secs_f64();
            let _ = done.send(());
            let timed_out = watchdog
                .join()
                .map_err(|_| anyhow::anyhow!("the watchdog panicked"))?;
            let stdout = reader
                .join()
                .map_err(|_| anyhow::anyhow!("the stdout reader panicked"))??;
            ensure!(helper.success(), "the measuring helper failed ({helper})");
            let usage = std::fs::read_to_string(&usage)?;
            let fields: Vec<i64> = usage
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .with_context(|| format!("reading {usage:?}"))?;
            let [code, cpu_us, max_rss_kb] = fields[..] else {
                bail!("the measuring helper wrote {usage:?}");
            };
            Ok(ChildRun {
                spawned,
                exit: (code >= 0).then_some(code as i32),
                timed_out,
                wall,
                cpu: cpu_us as f64 / 1e6,
                max_rss_kb: max_rss_kb as u64,
                stdout,
                log,
            })
        })
        .await?
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let run = self.run(&["migrate"], "migrate").await?;
        ensure!(
            run.exit == Some(0),
            "calsync migrate failed (exit {:?}{}): {}",
            run.exit,
            if run.timed_out { ", timed out" } else { "" },
            log_tail(&run.log)
        );
        Ok(())
    }

    /// `calsync once --format json`, with the simulator's request log and the
    /// database's writes around it.
    pub async fn pass(&self, sim: &Simulator, db: &BenchDb, label: &str) -> anyhow::Result<Pass> {
        let mark = db.mark().await?;
        let mut pass = self.once(sim, &[], label).await?;
        pass.writes = db.writes_since(mark).await?;
        Ok(pass)
    }

    /// One account's pass alone: its exact statement count (`None` when it
    /// timed out).
    pub async fn solo(&self, sim: &Simulator, label: &str) -> anyhow::Result<Option<u64>> {
        let pass = self.once(sim, &["--account", "acct-0000"], label).await?;
        Ok(pass.timed_out.is_none().then_some(pass.sql))
    }

    async fn once(&self, sim: &Simulator, extra: &[&str], label: &str) -> anyhow::Result<Pass> {
        sim.clear_requests();
        let mut args = vec!["once", "--format", "json"];
        args.extend_from_slice(extra);
        let run = self.run(&args, label).await?;
        let requests = sim.requests();
        let offset = run.spawned.saturating_duration_since(self.sim_started);
        let mut pass = Pass {
            startup: requests
                .iter()
                .map(|r| r.at_ms)
                .min()
                .map_or(f64::NAN, |ms| ms as f64 / 1000.0 - offset.as_secs_f64()),
            wall: run.wall,
            cpu: run.cpu,
            rss_mb: run.max_rss_kb as f64 / 1024.0,
            http_sim: requests.len() as u64,
            log_bytes: std::fs::metadata(&run.log).map_or(0, |m| m.len()),
            ..Pass::default()
        };
        if run.timed_out {
            eprintln!("  {label}: killed after {} s", self.timeout.as_secs());
            pass.timed_out = Some(self.timeout.as_secs());
            return Ok(pass);
        }
        let report: PassJson = serde_json::from_slice(&run.stdout).with_context(|| {
            format!(
                "calsync once ({label}) exited {:?} without a JSON report: {}",
                run.exit,
                log_tail(&run.log)
            )
        })?;
        for a in &report.accounts {
            pass.sql += a.sql_statements;
            pass.http += a.calcom_requests;
            pass.imports += a.imported;
            pass.in_sync += a.counts.in_sync;
            pass.drifted += a.counts.drifted;
            pass.services_written += a.services_written;
            if a.result != "success" {
                pass.failed_accounts += 1;
                eprintln!(
                    "  {label}: an account failed: {}",
                    a.error.as_deref().unwrap_or("?")
                );
            }
        }
        if pass.http != pass.http_sim {
            eprintln!(
                "  {label}: calsync reported {} Cal.com requests, the simulator logged {}",
                pass.http, pass.http_sim
            );
        }
        Ok(pass)
    }

    /// `calsync run`: waits for `/readyz` (after the start-up pass), lets it
    /// settle, reads VmRSS, then stops it with SIGTERM.
    pub async fn idle(&self, settle_secs: u64) -> anyhow::Result<Idle> {
        let log = self.dir.join("run.log");
        let mut command = std::process::Command::new(BIN);
        scrub_env(&mut command);
        let mut child = tokio::process::Command::from(command)
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(self.dir.join("run.stderr"))?)
            .kill_on_drop(true)
            .spawn()
            .context("starting calsync run")?;
        let pid = child.id().context("calsync run's pid")?;
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/readyz", self.listen);
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!("calsync run exited ({status}); see {}", log.display());
            }
            ensure!(
                Instant::now() < deadline,
                "calsync run was not ready within {} s; see {}",
                self.timeout.as_secs(),
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(settle_secs)).await;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kb = |field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(f64::NAN)
        };
        let idle = Idle {
            rss_mb: kb("VmRSS:") / 1024.0,
            hwm_mb: kb("VmHWM:") / 1024.0,
        };
        rusage::signal(pid as i32, rusage::SIGTERM)?;
        match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("  calsync run did not stop within 60 s of SIGTERM; killing it");
                let _ = child.kill().await;
            }
        }
        Ok(idle)
    }
}

/// calsync reads every `CALSYNC_*` variable as configuration and rejects unknown
/// keys, so the bench's own knobs (`CALSYNC_BENCH_*`) must not reach it; nor may
/// an operator's overrides or log filter change what is measured.
fn scrub_env(command: &mut std::process::Command) {
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("CALSYNC_") || n == "CALCOM_ALLOW_OVERWRITES" || n == "RUST_LOG" {
            command.env_remove(&name);
        }
    }
}

/// calsync's config for a scenario: the database, Cal.com, the accounts, a
/// far-away schedule (so `calsync run` makes only its start-up pass), no jitter
/// and the listen address; everything else at calsync's defaults
/// (`calcom.requests_per_minute` 120: one listing per account and pass fits it),
/// unless the concurrency knobs are set.
fn write_config(
    dir: &Path,
    db_url: &str,
    base_url: &str,
    keys: &[String],
    knobs: &Knobs,
    listen: u16,
) -> anyhow::Result<PathBuf> {
    let mut toml = format!("[database]\nurl = \"{db_url}\"\n");
    if let Some(n) = knobs.max_connections {
        writeln!(toml, "max_connections = {n}")?;
    }
    write!(
        toml,
        "\n[calcom]\nbase_url = \"{base_url}\"\n\n\
         [sync]\nschedule = \"0 0 0 1 1 *\"\njitter_secs = 0\n"
    )?;
    if let Some(n) = knobs.concurrency {
        writeln!(toml, "max_concurrent_accounts = {n}")?;
    }
    write!(toml, "\n[server]\nlisten = \"127.0.0.1:{listen}\"\n")?;
    for (i, key) in keys.iter().enumerate() {
        write!(
            toml,
            "\n[[accounts]]\nname = \"acct-{i:04}\"\ncompany_id = {}\napi_key = \"{key}\"\n",
            i + 1
        )?;
    }
    let path = dir.join("calsync.toml");
    // It holds API keys: calsync warns about a config readable by others.
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    std::io::Write::write_all(&mut file, toml.as_bytes())?;
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The last lines of a child's log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "{} (from {})",
        lines[lines.len().saturating_sub(5)..].join("\n"),
        path.display()
    )
}

/// `wait4(2)` and `kill(2)` from the C library std already links: one child's own
/// peak RSS and CPU time (`RUSAGE_CHILDREN` would mix every child reaped so far).
/// Declared here because `libc` is not a dependency of this package.
mod rusage {
    use std::io;
    use std::os::raw::{c_int, c_long};
    use std::time::Duration;

    pub const SIGKILL: c_int = 9;
    pub const SIGTERM: c_int = 15;

    #[repr(C)]
    #[derive(Default)]
    struct Timeval {
        sec: c_long,
        usec: c_long,
    }

    /// `struct rusage` on Linux: two timevals, then 14 longs (`ru_maxrss` first).
    #[repr(C)]
    #[derive(Default)]
    struct Rusage {
        utime: Timeval,
        stime: Timeval,
        maxrss: c_long,
        rest: [c_long; 13],
    }

    unsafe extern "C" {
        fn wait4(pid: c_int, status: *mut c_int, options: c_int, usage: *mut Rusage) -> c_int;
        fn kill(pid: c_int, signal: c_int) -> c_int;
    }

    pub struct Exit {
        /// The exit code, or `None` when a signal ended it.
        pub code: Option<i32>,
        /// User + system time.
        pub cpu: Duration,
        /// Peak resident set size (kB on Linux).
        pub max_rss_kb: u64,
    }

    /// Reaps `pid` (which must be a child not waited for otherwise).
    pub fn wait(pid: i32) -> io::Result<Exit> {
        let mut status: c_int = 0;
        let mut usage = Rusage::default();
        loop {
            // SAFETY: both pointers are valid for writes for the duration of the
            // call, and `Rusage` has the C layout of `struct rusage` on Linux.
            let r = unsafe { wait4(pid, &mut status, 0, &mut usage) };
            if r == pid {
                break;
            }
            let e = io::Error::last_os_error();
            if r == -1 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let time = |t: &Timeval| Duration::from_micros((t.sec as u64) * 1_000_000 + t.usec as u64);
        Ok(Exit {
            code: ((status & 0x7f) == 0).then_some((status >> 8) & 0xff),
            cpu: time(&usage.utime) + time(&usage.stime),
            max_rss_kb: usage.maxrss.max(0) as u64,
        })
    }

    /// Sends `signal` to `pid` (a calsync this bench started).
    pub fn signal(pid: i32, signal: c_int) -> io::Result<()> {
        // SAFETY: kill has no memory effects.
        if unsafe { kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}
