//! Config files, written the one way every test writes them.
//!
//! [`ConfigFile`] is the only writer of calsync configuration in the suite: the
//! in-process harnesses ([`super::app::TestApp`], [`super::fault_rig::FaultRig`])
//! parse its text, and the tests that run the binary write it to disk. A renamed
//! key is changed here once. Sections come out in the order their first key was
//! set, then one `[[accounts]]` entry per [`AccountSpec`]; only what a test sets
//! is written, so a file without secrets stays without them.
//!
//! ```ignore
//! let path = ConfigFile::new(&db.url, &sim.base_url())
//!     .set("calcom.max_attempts", 2)
//!     .set("server.admin_token", TOKEN)
//!     .account(AccountSpec::new("berlin", 1, KEY))
//!     .write(dir.join("calsync.toml"));
//! ```

use std::path::{Path, PathBuf};

/// One `[[accounts]]` entry.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    pub name: String,
    pub company_id: i64,
    pub api_key: String,
    /// Written as `api_key_file` instead of `api_key` when set.
    pub api_key_file: Option<PathBuf>,
    pub team_ids: Vec<i64>,
    pub org_id: Option<i64>,
    /// Whether the simulator knows the key; an unknown `cal_` key gets HTTP 401,
    /// as a revoked key does in Cal.com.
    pub valid: bool,
}

impl AccountSpec {
    pub fn new(name: &str, company_id: i64, api_key: &str) -> Self {
        Self {
            name: name.to_owned(),
            company_id,
            api_key: api_key.to_owned(),
            api_key_file: None,
            team_ids: Vec::new(),
            org_id: None,
            valid: true,
        }
    }

    /// Also lists (and pushes through) this team's event types.
    pub fn team(mut self, team_id: i64) -> Self {
        self.team_ids.push(team_id);
        self
    }

    /// Also lists the organization's teams' event types (paged).
    pub fn org(mut self, org_id: i64) -> Self {
        self.org_id = Some(org_id);
        self
    }

    /// A key Cal.com rejects with 401.
    pub fn revoked(mut self) -> Self {
        self.valid = false;
        self
    }

    /// The key is read from this file (`api_key_file`), not written inline.
    pub fn key_file(mut self, path: &Path) -> Self {
        self.api_key_file = Some(path.to_owned());
        self
    }
}

/// A TOML string literal (quoted and escaped).
pub fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A calsync configuration; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    sections: Vec<(String, Vec<(String, toml::Value)>)>,
    accounts: Vec<AccountSpec>,
}

impl ConfigFile {
    /// `database.url` and `calcom.base_url`; everything else at its default.
    pub fn new(database_url: &str, base_url: &str) -> Self {
        Self::default()
            .set("database.url", database_url)
            .set("calcom.base_url", base_url)
    }

    /// Sets `section.key` (replacing an earlier value of the same key).
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        let (section, name) = key
            .split_once('.')
            .unwrap_or_else(|| panic!("config key {key:?} has no section"));
        let value = value.into();
        let keys = match self.sections.iter_mut().find(|(s, _)| s == section) {
            Some((_, keys)) => keys,
            None => {
                self.sections.push((section.to_owned(), Vec::new()));
                &mut self.sections.last_mut().expect("just pushed").1
            }
        };
        match keys.iter_mut().find(|(k, _)| k == name) {
            Some((_, old)) => *old = value,
            None => keys.push((name.to_owned(), value)),
        }
        self
    }

    /// Adds one `[[accounts]]` entry.
    pub fn account(mut self, spec: AccountSpec) -> Self {
        self.accounts.push(spec);
        self
    }

    /// Adds one `[[accounts]]` entry per spec, in order.
    pub fn accounts(mut self, specs: &[AccountSpec]) -> Self {
        self.accounts.extend_from_slice(specs);
        self
    }

    /// The file's text.
    pub fn text(&self) -> String {
        let mut toml = String::new();
        for (section, keys) in &self.sections {
            toml.push_str(&format!("[{section}]\n"));
            for (key, value) in keys {
                toml.push_str(&format!("{key} = {value}\n"));
            }
            toml.push('\n');
        }
        for a in &self.accounts {
            toml.push_str(&format!(
                "[[accounts]]\nname = {}\ncompany_id = {}\n",
                toml_string(&a.name),
                a.company_id,
            ));
            match &a.api_key_file {
                Some(file) => toml.push_str(&format!(
                    "api_key_file = {}\n",
                    toml_string(&file.display().to_string())
                )),
                None => toml.push_str(&format!("api_key = {}\n", toml_string(&a.api_key))),
            }
            if !a.team_ids.is_empty() {
                let teams: Vec<String> = a.team_ids.iter().map(i64::to_string).collect();
                toml.push_str(&format!("team_ids = [{}]\n", teams.join(", ")));
            }
            if let Some(org) = a.org_id {
                toml.push_str(&format!("org_id = {org}\n"));
            }
            toml.push('\n');
        }
        toml
    }

    /// Writes the file readable by its owner only, as calsync expects of a file
    /// that holds secrets; returns its path.
    pub fn write(&self, path: impl AsRef<Path>) -> PathBuf {
        self.write_with_mode(path, 0o600)
    }

    /// Writes the file with this mode (to test the check of it).
    pub fn write_with_mode(&self, path: impl AsRef<Path>, mode: u32) -> PathBuf {
        write_text(path, &self.text(), mode)
    }
}

/// Writes `text` (e.g. a deliberately broken config) with `mode`; returns the path.
pub fn write_text(path: impl AsRef<Path>, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = path.as_ref().to_owned();
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
    path
}
