//! Configuration: defaults < TOML file < `CALSYNC_<SECTION>__<KEY>` environment
//! variables (figment), validated into typed values with errors that name the key.
//!
//! Secrets (API keys, the admin token, a database URL with a password) are held as
//! `SecretString` and are redacted whenever the configuration is printed. This
//! module must never log or format a secret.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use crate::domain::{Backoff, Field, Guard, Owner, Ownership, Policy};

/// Where the config file is read from when neither `--config` nor
/// `CALSYNC_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/calsync/calsync.toml";

/// The seed importer's switch, honoured as an alias of
/// `sync.allow_calcom_overwrites`.
pub const LEGACY_OVERWRITE_ENV: &str = "CALCOM_ALLOW_OVERWRITES";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The file as written by the operator (all optional, with defaults).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub calcom: CalcomConfig,
    pub accounts: Vec<AccountConfig>,
    pub sync: SyncConfig,
    pub server: ServerConfig,
    pub console: ConsoleConfig,
    pub log: LogConfig,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// May carry a password: printed with the password redacted.
    #[serde(serialize_with = "redact_url")]
    pub url: Option<SecretString>,
    /// Read the URL from this file instead (systemd credentials).
    pub url_file: Option<PathBuf>,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            max_connections: 5,
        }
    }
}

/// The embedded default: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://calsync.db?mode=rwc";

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalcomConfig {
    pub base_url: String,
    pub timeout_secs: u64,
    /// Per API key, reads and writes together (Cal.com's default limit is 120).
    pub requests_per_minute: u32,
    pub max_attempts: u32,
    /// First retry delay; later ones grow exponentially, with jitter.
    pub retry_initial_delay_ms: u64,
    /// Responses larger than this are cut off and reported.
    pub max_body_bytes: u64,
}

impl Default for CalcomConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.cal.com".into(),
            timeout_secs: 30,
            requests_per_minute: 120,
            max_attempts: 5,
            retry_initial_delay_ms: 500,
            max_body_bytes: 32 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub name: String,
    pub company_id: i64,
    #[serde(default, serialize_with = "redact_secret")]
    pub api_key: Option<SecretString>,
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    #[serde(default)]
    pub team_ids: Vec<i64>,
    #[serde(default)]
    pub org_id: Option<i64>,
    /// Overrides of single fields of `sync.ownership` for this account.
    #[serde(default)]
    pub ownership: OwnershipConfig,
}

/// `[sync.ownership]` (and an account's `ownership = { … }`): who owns each field,
/// `platform`, `calcom` or `ignore`. A field left out keeps the default (or, for an
/// account, the `sync.ownership` value).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwnershipConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Owner>,
}

impl OwnershipConfig {
    fn entries(&self) -> [(Field, Option<Owner>); 5] {
        [
            (Field::Name, self.name),
            (Field::Description, self.description),
            (Field::DurationMinutes, self.duration_minutes),
            (Field::Visibility, self.visibility),
            (Field::Price, self.price),
        ]
    }

    /// `base` with this table's entries in force.
    pub fn over(&self, base: Ownership) -> Ownership {
        let mut out = base;
        for (field, owner) in self.entries() {
            if let Some(owner) = owner {
                out.set(field, owner);
            }
        }
        out
    }
}

/// `[sync.guard]`: the blast-radius guard.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    pub max_orphan_percent: u32,
    pub max_overwrite_percent: u32,
    pub min_services: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        let g = Guard::default();
        Self {
            max_orphan_percent: g.max_orphan_percent,
            max_overwrite_percent: g.max_overwrite_percent,
            min_services: g.min_services,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    pub schedule: String,
    pub jitter_secs: u64,
    pub max_concurrent_accounts: usize,
    pub shutdown_timeout_secs: u64,
    pub import_unknown: bool,
    pub push_pending: bool,
    pub repush_drifted: bool,
    pub allow_calcom_overwrites: bool,
    pub detect_platform_edits: bool,
    /// Rewrite `last_calcom_sync` on every unchanged service each pass (the old
    /// behaviour, one row write per service and pass).
    pub touch_last_calcom_sync: bool,
    pub orphan_checks_per_pass: usize,
    pub max_push_attempts: u32,
    pub push_backoff_initial_secs: u64,
    pub push_backoff_max_secs: u64,
    pub ownership: OwnershipConfig,
    pub guard: GuardConfig,
}

impl Default for SyncConfig {
    fn default() -> Self {
        let policy = Policy::default();
        Self {
            schedule: "0 */5 * * * *".into(),
            jitter_secs: 10,
            max_concurrent_accounts: 8,
            shutdown_timeout_secs: 30,
            import_unknown: policy.import_unknown,
            push_pending: policy.push_pending,
            repush_drifted: policy.repush_drifted,
            allow_calcom_overwrites: false,
            detect_platform_edits: policy.detect_platform_edits,
            touch_last_calcom_sync: policy.touch_last_calcom_sync,
            orphan_checks_per_pass: 10,
            max_push_attempts: policy.backoff.max_attempts,
            push_backoff_initial_secs: policy.backoff.initial_secs,
            push_backoff_max_secs: policy.backoff.max_secs,
            ownership: OwnershipConfig::default(),
            guard: GuardConfig::default(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    #[serde(serialize_with = "redact_secret")]
    pub admin_token: Option<SecretString>,
    pub admin_token_file: Option<PathBuf>,
    /// Read-only access to the console: sees everything, changes nothing.
    #[serde(serialize_with = "redact_secret")]
    pub viewer_token: Option<SecretString>,
    pub viewer_token_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            admin_token: None,
            admin_token_file: None,
            viewer_token: None,
            viewer_token_file: None,
        }
    }
}

/// The console's language: `auto` follows the browser's `Accept-Language`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum ConsoleLanguage {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "de")]
    German,
    #[serde(rename = "en")]
    English,
}

/// `[console]`: the operator console under `/console/` (enabled with
/// `server.admin_token`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    pub language: ConsoleLanguage,
    /// The console is reached through a proxy that terminates HTTPS: its
    /// cookies get the `Secure` attribute (a browser then never sends them over
    /// plain HTTP).
    pub behind_https_proxy: bool,
    /// How long a login lasts, whatever the activity.
    pub session_ttl_secs: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            language: ConsoleLanguage::Auto,
            behind_https_proxy: false,
            session_ttl_secs: 8 * 3600,
        }
    }
}

/// The validated `[console]` section.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub language: ConsoleLanguage,
    /// `Secure` on the console's cookies (`console.behind_https_proxy`).
    pub secure_cookies: bool,
    pub session_ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
    pub directory: Option<PathBuf>,
    pub max_files: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
            directory: None,
            max_files: 14,
        }
    }
}

fn redact_secret<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("[redacted]"),
        None => s.serialize_none(),
    }
}

fn redact_url<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(url) => s.serialize_str(&redacted_url(url.expose_secret())),
        None => s.serialize_none(),
    }
}

/// A database URL with any password replaced, safe to print.
pub fn redacted_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("redacted"));
            }
            // Query parameters may carry a password too (e.g. `password=`).
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let secret = k.eq_ignore_ascii_case("password") || k.contains("pass");
                    (
                        k.into_owned(),
                        if secret {
                            "redacted".into()
                        } else {
                            v.into_owned()
                        },
                    )
                })
                .collect();
            if !pairs.is_empty() {
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        Err(_) => "[unparseable database URL, not shown]".into(),
    }
}

/// Which file to read: `--config`, else `CALSYNC_CONFIG`, else the default path.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CALSYNC_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

impl Config {
    /// Reads defaults < file < environment. A missing file is an error only when
    /// it was named explicitly (flag or `CALSYNC_CONFIG`).
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        if explicit && !path.exists() {
            return Err(ConfigError::Load(format!(
                "config file {} does not exist; create it from config/calsync.example.toml",
                path.display()
            )));
        }
        let figment = Figment::new()
            .merge(Toml::file(path))
            .merge(
                Env::raw()
                    .only(&[LEGACY_OVERWRITE_ENV])
                    .map(|_| "sync.allow_calcom_overwrites".into()),
            )
            .merge(
                Env::prefixed("CALSYNC_")
                    // CALSYNC_CONFIG names the file; CALSYNC_TEST_* and CALSYNC_BENCH_*
                    // belong to the test suite and the benchmark. Every other CALSYNC_* variable is a key, and an
                    // unknown one is an error naming it.
                    .filter(|key| {
                        let key = key.as_str().to_ascii_uppercase();
                        key != "CONFIG" && !key.starts_with("TEST_") && !key.starts_with("BENCH_")
                    })
                    .split("__"),
            );
        Self::from_figment(figment)
    }

    /// Parses a TOML string with no environment (tests, fuzzing).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        figment.extract::<Config>().map_err(|e| {
            // figment's messages name the key path and the source file; join all of
            // them so the operator fixes every problem at once.
            let all: Vec<String> = e.into_iter().map(|e| describe_load_error(&e)).collect();
            ConfigError::Load(all.join("; "))
        })
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// Warnings about the file itself (secrets in a group/world readable file).
    pub fn file_warnings(&self, path: &Path) -> Vec<String> {
        let holds_secret = self.accounts.iter().any(|a| a.api_key.is_some())
            || self.server.admin_token.is_some()
            || self.server.viewer_token.is_some()
            || self
                .database
                .url
                .as_ref()
                .is_some_and(|u| url_has_password(u.expose_secret()));
        let mut out = Vec::new();
        #[cfg(unix)]
        if holds_secret {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode();
                if mode & 0o077 != 0 {
                    out.push(format!(
                        "config file {} holds secrets and is readable by group or others (mode {:o}); run `chmod 600 {}` or move the secrets to api_key_file/admin_token_file/url_file",
                        path.display(),
                        mode & 0o777,
                        path.display()
                    ));
                }
            }
        }
        out
    }

    /// Validates every key and resolves secret files into [`Settings`].
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let database_url = match (&self.database.url, &self.database.url_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "database.url_file",
                    "set either database.url or database.url_file, not both",
                ));
            }
            (Some(url), None) => url.clone(),
            (None, Some(file)) => read_secret_file("database.url_file", file)?,
            (None, None) => SecretString::from(DEFAULT_DATABASE_URL),
        };
        let scheme = database_url
            .expose_secret()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !matches!(
            scheme.as_str(),
            "sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb"
        ) {
            return Err(ConfigError::invalid(
                "database.url",
                "must start with sqlite://, postgres://, postgresql://, mysql:// or mariadb://",
            ));
        }
        in_range(
            "database.max_connections",
            self.database.max_connections,
            1,
            100,
        )?;

        let base_url = url::Url::parse(&self.calcom.base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ConfigError::invalid(
                    "calcom.base_url",
                    "must be an http(s) URL such as https://api.cal.com",
                )
            })?;
        in_range("calcom.timeout_secs", self.calcom.timeout_secs, 1, 600)?;
        in_range(
            "calcom.requests_per_minute",
            self.calcom.requests_per_minute,
            1,
            100_000,
        )?;
        in_range("calcom.max_attempts", self.calcom.max_attempts, 1, 20)?;
        in_range(
            "calcom.retry_initial_delay_ms",
            self.calcom.retry_initial_delay_ms,
            1,
            60_000,
        )?;
        in_range(
            "calcom.max_body_bytes",
            self.calcom.max_body_bytes,
            1024,
            1 << 32,
        )?;

        // `allow_calcom_overwrites` makes Cal.com the owner of every field that
        // `[sync.ownership]` does not name; the table and an account's overrides win.
        let default_owner = if self.sync.allow_calcom_overwrites {
            Owner::Calcom
        } else {
            Owner::Platform
        };
        let ownership = self.sync.ownership.over(Ownership::all(default_owner));

        let mut names = HashSet::new();
        let mut accounts = Vec::with_capacity(self.accounts.len());
        for (i, a) in self.accounts.iter().enumerate() {
            let key = |k: &str| format!("accounts[{i}].{k}");
            let valid_name = !a.name.is_empty()
                && a.name.len() <= 64
                && a.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                return Err(ConfigError::invalid(
                    key("name"),
                    "must be 1-64 characters of letters, digits, '-' or '_' (it is a metric label)",
                ));
            }
            if !names.insert(a.name.clone()) {
                return Err(ConfigError::invalid(
                    key("name"),
                    format!("account name {:?} is used twice", a.name),
                ));
            }
            if a.company_id <= 0 {
                return Err(ConfigError::invalid(
                    key("company_id"),
                    "must be a positive platform company id",
                ));
            }
            let api_key = match (&a.api_key, &a.api_key_file) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::invalid(
                        key("api_key_file"),
                        "set either api_key or api_key_file, not both",
                    ));
                }
                (Some(k), None) => k.clone(),
                (None, Some(file)) => read_secret_file(&key("api_key_file"), file)?,
                (None, None) => {
                    return Err(ConfigError::invalid(
                        key("api_key"),
                        "missing: set api_key or api_key_file to the account's Cal.com API key",
                    ));
                }
            };
            if api_key.expose_secret().trim().is_empty() {
                return Err(ConfigError::invalid(key("api_key"), "is empty"));
            }
            if let Some(t) = a.team_ids.iter().find(|t| **t <= 0) {
                return Err(ConfigError::invalid(
                    key("team_ids"),
                    format!("team id {t} is not a positive id"),
                ));
            }
            if a.org_id.is_some_and(|o| o <= 0) {
                return Err(ConfigError::invalid(
                    key("org_id"),
                    "must be a positive organisation id",
                ));
            }
            // Two accounts with one key would list the same event types, and which
            // company gets the imports would be decided by a race.
            if let Some(other) = accounts
                .iter()
                .find(|o: &&Account| o.api_key.expose_secret() == api_key.expose_secret())
            {
                return Err(ConfigError::invalid(
                    key("api_key"),
                    format!(
                        "is the same Cal.com API key as account {:?}'s; each account needs its own key",
                        other.name
                    ),
                ));
            }
            accounts.push(Account {
                name: a.name.clone(),
                company_id: a.company_id,
                api_key,
                team_ids: a.team_ids.clone(),
                org_id: a.org_id,
                ownership: a.ownership.over(ownership),
            });
        }

        crate::schedule::parse(&self.sync.schedule)
            .map_err(|m| ConfigError::invalid("sync.schedule", m))?;
        in_range("sync.jitter_secs", self.sync.jitter_secs, 0, 3600)?;
        in_range(
            "sync.max_concurrent_accounts",
            self.sync.max_concurrent_accounts,
            1,
            1024,
        )?;
        in_range(
            "sync.orphan_checks_per_pass",
            self.sync.orphan_checks_per_pass,
            0,
            1000,
        )?;
        in_range(
            "sync.max_push_attempts",
            self.sync.max_push_attempts,
            1,
            100,
        )?;
        in_range(
            "sync.push_backoff_initial_secs",
            self.sync.push_backoff_initial_secs,
            1,
            86_400,
        )?;
        in_range(
            "sync.push_backoff_max_secs",
            self.sync.push_backoff_max_secs,
            self.sync.push_backoff_initial_secs,
            30 * 86_400,
        )?;
        in_range(
            "sync.guard.max_orphan_percent",
            self.sync.guard.max_orphan_percent,
            0,
            100,
        )?;
        in_range(
            "sync.guard.max_overwrite_percent",
            self.sync.guard.max_overwrite_percent,
            0,
            100,
        )?;
        in_range(
            "sync.guard.min_services",
            self.sync.guard.min_services,
            0,
            10_000_000,
        )?;
        in_range(
            "sync.shutdown_timeout_secs",
            self.sync.shutdown_timeout_secs,
            1,
            3600,
        )?;

        let listen: SocketAddr = self.server.listen.parse().map_err(|_| {
            ConfigError::invalid(
                "server.listen",
                "must be an address:port such as 127.0.0.1:9464",
            )
        })?;
        let admin_token = match (&self.server.admin_token, &self.server.admin_token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "server.admin_token_file",
                    "set either admin_token or admin_token_file, not both",
                ));
            }
            (Some(t), None) => Some(t.clone()),
            (None, Some(file)) => Some(read_secret_file("server.admin_token_file", file)?),
            (None, None) => None,
        };
        if let Some(t) = &admin_token
            && t.expose_secret().len() < 16
        {
            return Err(ConfigError::invalid(
                "server.admin_token",
                "must be at least 16 characters (e.g. `openssl rand -hex 32`)",
            ));
        }

        let viewer_token = match (&self.server.viewer_token, &self.server.viewer_token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "server.viewer_token_file",
                    "set either viewer_token or viewer_token_file, not both",
                ));
            }
            (Some(t), None) => Some(t.clone()),
            (None, Some(file)) => Some(read_secret_file("server.viewer_token_file", file)?),
            (None, None) => None,
        };
        if let Some(viewer) = &viewer_token {
            if viewer.expose_secret().len() < 16 {
                return Err(ConfigError::invalid(
                    "server.viewer_token",
                    "must be at least 16 characters (e.g. `openssl rand -hex 32`)",
                ));
            }
            match &admin_token {
                None => {
                    return Err(ConfigError::invalid(
                        "server.viewer_token",
                        "needs server.admin_token: the console is enabled by the admin token",
                    ));
                }
                Some(admin) if admin.expose_secret() == viewer.expose_secret() => {
                    return Err(ConfigError::invalid(
                        "server.viewer_token",
                        "is the same as server.admin_token; the read-only token must differ",
                    ));
                }
                Some(_) => {}
            }
        }
        in_range(
            "console.session_ttl_secs",
            self.console.session_ttl_secs,
            60,
            30 * 24 * 3600,
        )?;

        if let Some(problem) = log_filter_problem(&self.log.level) {
            return Err(ConfigError::invalid("log.level", problem));
        }
        in_range("log.max_files", self.log.max_files, 1, 3650)?;

        Ok(Settings {
            database_url,
            max_connections: self.database.max_connections,
            calcom: CalcomSettings {
                base_url,
                timeout: Duration::from_secs(self.calcom.timeout_secs),
                requests_per_minute: self.calcom.requests_per_minute,
                max_attempts: self.calcom.max_attempts,
                retry_initial_delay: Duration::from_millis(self.calcom.retry_initial_delay_ms),
                max_body_bytes: self.calcom.max_body_bytes,
            },
            accounts,
            policy: Policy {
                import_unknown: self.sync.import_unknown,
                push_pending: self.sync.push_pending,
                repush_drifted: self.sync.repush_drifted,
                detect_platform_edits: self.sync.detect_platform_edits,
                touch_last_calcom_sync: self.sync.touch_last_calcom_sync,
                ownership,
                guard: Guard {
                    max_orphan_percent: self.sync.guard.max_orphan_percent,
                    max_overwrite_percent: self.sync.guard.max_overwrite_percent,
                    min_services: self.sync.guard.min_services,
                },
                backoff: Backoff {
                    max_attempts: self.sync.max_push_attempts,
                    initial_secs: self.sync.push_backoff_initial_secs,
                    max_secs: self.sync.push_backoff_max_secs,
                },
            },
            orphan_checks_per_pass: self.sync.orphan_checks_per_pass,
            schedule: self.sync.schedule.clone(),
            jitter: Duration::from_secs(self.sync.jitter_secs),
            max_concurrent_accounts: self.sync.max_concurrent_accounts,
            shutdown_timeout: Duration::from_secs(self.sync.shutdown_timeout_secs),
            listen,
            admin_token,
            viewer_token,
            console: ConsoleSettings {
                language: self.console.language,
                secure_cookies: self.console.behind_https_proxy,
                session_ttl: Duration::from_secs(self.console.session_ttl_secs),
            },
            log_format: self.log.format,
            log_level: self.log.level.clone(),
            log_directory: self.log.directory.clone(),
            log_max_files: self.log.max_files,
        })
    }
}

/// A TOML parse error quotes the offending line, which may hold a secret: keep
/// the position and the explanation, drop the quoted source.
/// One figment error in the operator's words: the key as written in the file
/// (no internal profile prefix) and the file, or the environment variable as it
/// must be spelled; never a line of the source (it may hold a secret).
fn describe_load_error(e: &figment::Error) -> String {
    let kind = without_source_lines(&e.kind.to_string());
    if e.path.is_empty() {
        let source = e
            .metadata
            .as_ref()
            .and_then(|m| m.source.as_ref())
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        return format!("{kind}{source}");
    }
    let key = e.path.join(".").to_ascii_lowercase();
    let from_env = e
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.to_ascii_lowercase().contains("environment"));
    if from_env {
        let prefixed = format!(
            "CALSYNC_{}",
            e.path
                .iter()
                .map(|p| p.to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join("__")
        );
        let var = if key == "sync.allow_calcom_overwrites"
            && std::env::var_os(&prefixed).is_none()
            && std::env::var_os(LEGACY_OVERWRITE_ENV).is_some()
        {
            LEGACY_OVERWRITE_ENV.to_owned()
        } else {
            prefixed
        };
        format!("environment variable {var} (key {key}): {kind}")
    } else {
        let file = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
            Some(figment::Source::File(path)) => format!(" in {}", path.display()),
            Some(other) => format!(" in {other}"),
            None => String::new(),
        };
        format!("key {key}{file}: {kind}")
    }
}

fn without_source_lines(message: &str) -> String {
    message
        .lines()
        .filter(|line| {
            let t = line.trim_start();
            let quoted = t
                .split_once('|')
                .is_some_and(|(head, _)| head.trim().chars().all(|c| c.is_ascii_digit()));
            !quoted
        })
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Why a log filter (`log.level`, `RUST_LOG`) is not usable, or `None`. Each
/// comma-separated directive must be a level or `target=level`: a bare word such
/// as `verbose` is valid filter syntax (it names a target) but would silence every
/// other target, PROTECTION lines included, so it is refused.
pub fn log_filter_problem(spec: &str) -> Option<String> {
    let level = |w: &str| LOG_LEVELS.contains(&w.trim().to_ascii_lowercase().as_str());
    if spec.trim().is_empty() {
        return Some("is empty; use a level such as info".into());
    }
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let ok = match directive.rsplit_once('=') {
            Some((target, lvl)) => !target.trim().is_empty() && level(lvl),
            None => level(directive),
        };
        if !ok {
            return Some(format!(
                "{directive:?} is neither a level ({}) nor target=level (e.g. calsync=debug)",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(spec)
        .err()
        .map(|e| format!("{e} (try info, debug or calsync=debug)"))
}

fn in_range<T: PartialOrd + fmt::Display + Copy>(
    key: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::invalid(
            key,
            format!("{v} is out of range ({lo}..={hi})"),
        ));
    }
    Ok(())
}

fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_owned(),
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (the calsync user must be able to read it)".to_owned()
            }
            std::io::ErrorKind::IsADirectory => "it is a directory, not a file".to_owned(),
            _ => e.to_string(),
        };
        ConfigError::invalid(key, format!("cannot read {}: {why}", path.display()))
    })?;
    Ok(SecretString::from(text.trim().to_owned()))
}

fn url_has_password(raw: &str) -> bool {
    url::Url::parse(raw)
        .is_ok_and(|u| u.password().is_some() || u.query_pairs().any(|(k, _)| k.contains("pass")))
}

/// Validated, resolved configuration: what the rest of the program uses.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: SecretString,
    pub max_connections: u32,
    pub calcom: CalcomSettings,
    pub accounts: Vec<Account>,
    pub policy: Policy,
    pub schedule: String,
    pub jitter: Duration,
    pub max_concurrent_accounts: usize,
    /// Event types missing from a listing that one account pass asks Cal.com
    /// about before orphaning their services (`sync.orphan_checks_per_pass`).
    pub orphan_checks_per_pass: usize,
    pub shutdown_timeout: Duration,
    pub listen: SocketAddr,
    pub admin_token: Option<SecretString>,
    /// Read-only console access (`server.viewer_token`).
    pub viewer_token: Option<SecretString>,
    pub console: ConsoleSettings,
    pub log_format: LogFormat,
    pub log_level: String,
    pub log_directory: Option<PathBuf>,
    pub log_max_files: usize,
}

#[derive(Debug, Clone)]
pub struct CalcomSettings {
    pub base_url: url::Url,
    pub timeout: Duration,
    pub requests_per_minute: u32,
    pub max_attempts: u32,
    pub retry_initial_delay: Duration,
    pub max_body_bytes: u64,
}

/// One Cal.com account (one API key): the domain type, validated here.
pub use crate::domain::Account;

impl Settings {
    pub fn require_accounts(&self) -> Result<(), ConfigError> {
        if self.accounts.is_empty() {
            return Err(ConfigError::invalid(
                "accounts",
                "no [[accounts]] configured; add one per Cal.com API key (see config/calsync.example.toml)",
            ));
        }
        Ok(())
    }

    /// Whether two settings point at different databases (a reload cannot move).
    pub fn database_url_differs(&self, other: &Settings) -> bool {
        self.database_url.expose_secret() != other.database_url.expose_secret()
    }

    /// Each account's field ownership in force, one line per account (as
    /// `check-config` prints it).
    pub fn ownership_lines(&self) -> Vec<String> {
        self.accounts
            .iter()
            .map(|a| {
                let owners: Vec<String> = a
                    .ownership
                    .entries()
                    .into_iter()
                    .map(|(f, o)| format!("{f}={o}"))
                    .collect();
                format!("{}: {}", a.name, owners.join(" "))
            })
            .collect()
    }

    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[accounts]]
        name = "berlin"
        company_id = 1
        api_key = "cal_live_0123456789abcdef"
    "#;

    #[test]
    fn minimal_file_gets_defaults() {
        let s = Config::from_toml(MINIMAL).unwrap().validate().unwrap();
        assert_eq!(s.accounts.len(), 1);
        assert_eq!(s.calcom.requests_per_minute, 120);
        assert_eq!(s.schedule, "0 */5 * * * *");
        assert!(s.policy.import_unknown && s.policy.push_pending);
        assert!(!s.policy.repush_drifted);
        assert_eq!(s.policy.ownership, Ownership::all(Owner::Platform));
        assert_eq!(s.database_url.expose_secret(), DEFAULT_DATABASE_URL);
    }

    #[test]
    fn load_errors_name_the_key_as_written_and_never_a_profile() {
        let err = Config::from_toml("[calcom]\ntimout_secs = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key calcom.timout_secs"), "{err}");
        assert!(!err.contains("default."), "{err}");
    }

    #[test]
    fn a_missing_key_file_says_so_in_plain_words() {
        let text = "[[accounts]]\nname = \"a\"\ncompany_id = 1\napi_key_file = \"/nonexistent/calsync-key\"\n";
        let err = Config::from_toml(text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("accounts[0].api_key_file"), "{err}");
        assert!(err.contains("no such file"), "{err}");
    }

    #[test]
    fn log_filters_must_name_levels() {
        for ok in [
            "info",
            "warn,calsync=debug",
            "calsync::reconcile=trace",
            "OFF",
        ] {
            assert_eq!(log_filter_problem(ok), None, "{ok}");
        }
        for bad in ["verbose", "", "info,loud", "calsync=verbose", "=info"] {
            assert!(log_filter_problem(bad).is_some(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("[sync]\nrepush_drifed = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("repush_drifed"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            (
                "[calcom]\nrequests_per_minute = 0\n",
                "calcom.requests_per_minute",
            ),
            (
                "[sync]\nschedule = \"every five minutes\"\n",
                "sync.schedule",
            ),
            ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
            ("[database]\nurl = \"oracle://x\"\n", "database.url"),
            (
                "[[accounts]]\nname = \"a b\"\ncompany_id = 1\napi_key = \"k\"\n",
                "accounts[0].name",
            ),
            (
                "[[accounts]]\nname = \"a\"\ncompany_id = 1\n",
                "accounts[0].api_key",
            ),
            (
                "[[accounts]]\nname = \"a\"\ncompany_id = 1\napi_key = \"k\"\n\
                 [[accounts]]\nname = \"b\"\ncompany_id = 2\napi_key = \"k\"\n",
                "accounts[1].api_key",
            ),
            ("[log]\nlevel = \"verbose\"\n", "log.level"),
            ("[log]\nlevel = \"calsync=loud\"\n", "log.level"),
            (
                "[sync]\norphan_checks_per_pass = 5000\n",
                "sync.orphan_checks_per_pass",
            ),
        ];
        for (text, key) in cases {
            let err = Config::from_toml(text)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text:?} gave {err}");
        }
    }

    #[test]
    fn printed_config_never_shows_secrets() {
        let text = r#"
            [database]
            url = "postgres://calsync:hunter2pass@db.example:5432/platform"
            [server]
            admin_token = "admin-token-0123456789"
            [[accounts]]
            name = "berlin"
            company_id = 1
            api_key = "cal_live_supersecret"
        "#;
        let printed = Config::from_toml(text).unwrap().redacted_toml();
        for secret in [
            "hunter2pass",
            "admin-token-0123456789",
            "cal_live_supersecret",
        ] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("db.example"));
        let debug = format!("{:?}", Config::from_toml(text).unwrap().validate().unwrap());
        for secret in ["admin-token-0123456789", "cal_live_supersecret"] {
            assert!(!debug.contains(secret));
        }
    }

    #[test]
    fn a_syntax_error_names_the_line_but_never_quotes_it() {
        let text =
            "[[accounts]]\nname = \"a\"\ncompany_id = 1\napi_key = \"cal_live_secret_value\" x\n";
        let err = Config::from_toml(text).unwrap_err().to_string();
        assert!(!err.contains("cal_live_secret_value"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn the_viewer_token_is_checked_against_the_admin_token() {
        let admin = "admin_token = \"admin-token-0123456789\"\n";
        let cases = [
            ("viewer_token = \"short\"\n".to_owned(), "at least 16"),
            (
                "viewer_token = \"viewer-token-0123456789\"\n".to_owned(),
                "needs server.admin_token",
            ),
            (
                format!("{admin}viewer_token = \"admin-token-0123456789\"\n"),
                "must differ",
            ),
        ];
        for (server, why) in cases {
            let err = Config::from_toml(&format!("[server]\n{server}"))
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("server.viewer_token") && err.contains(why),
                "{err}"
            );
        }
        let s = Config::from_toml(&format!(
            "[server]\n{admin}viewer_token = \"viewer-token-0123456789\"\n\
             [console]\nlanguage = \"de\"\nbehind_https_proxy = true\nsession_ttl_secs = 600\n"
        ))
        .unwrap()
        .validate()
        .unwrap();
        assert!(s.viewer_token.is_some());
        assert_eq!(s.console.language, ConsoleLanguage::German);
        assert!(s.console.secure_cookies);
        assert_eq!(s.console.session_ttl, Duration::from_secs(600));
        let defaults = Config::from_toml("").unwrap().validate().unwrap();
        assert_eq!(defaults.console.language, ConsoleLanguage::Auto);
        assert!(!defaults.console.secure_cookies);
        let err = Config::from_toml("[console]\nsession_ttl_secs = 5\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("console.session_ttl_secs"), "{err}");
        let err = Config::from_toml("[console]\nlanguage = \"fr\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("console.language"), "{err}");
    }

    #[test]
    fn api_key_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "cal_live_fromfile\n").unwrap();
        let text = format!(
            "[[accounts]]\nname = \"a\"\ncompany_id = 1\napi_key_file = {:?}\n",
            file.display().to_string()
        );
        let s = Config::from_toml(&text).unwrap().validate().unwrap();
        assert_eq!(s.accounts[0].api_key.expose_secret(), "cal_live_fromfile");
    }
}
