//! Who is logged in to the console: sessions, their cookies and CSRF tokens.
//!
//! - A login presents the admin or the viewer token once, in a form POST; the
//!   token is compared in constant time and never stored in a cookie, a URL or a
//!   page. The browser gets a random 256-bit session id in a cookie that is
//!   `HttpOnly`, `SameSite=Strict`, limited to `/console/`, expiring after
//!   `console.session_ttl_secs`, and `Secure` with `console.behind_https_proxy`.
//! - Each session has its own random CSRF token, put in every form; a
//!   state-changing request without it is refused. The login form itself is
//!   protected by a double-submit token (a short-lived cookie and the same value
//!   in the form), so another site cannot log a browser in.
//! - A session remembers the token it was opened with: when the operator changes
//!   or removes that token (and reloads), the session ends at its next request.
//! - Sessions live in memory: a restart logs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::config::Settings;

/// The session cookie.
pub const SESSION_COOKIE: &str = "calsync_session";
/// The login form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "calsync_login";
/// How long a login form may be left open.
pub const LOGIN_FORM_TTL: Duration = Duration::from_secs(15 * 60);
/// Sessions kept at most; the oldest make room.
const MAX_SESSIONS: usize = 10_000;

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Logged in with `server.admin_token`: sees and acts.
    Admin,
    /// Logged in with `server.viewer_token`: sees everything, changes nothing.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// The configured token of this role, if any.
    fn token(self, settings: &Settings) -> Option<&SecretString> {
        match self {
            Role::Admin => settings.admin_token.as_ref(),
            Role::Viewer => settings.viewer_token.as_ref(),
        }
    }

    /// The role a presented token grants (compared in constant time).
    pub fn of_token(presented: &str, settings: &Settings) -> Option<Role> {
        [Role::Admin, Role::Viewer].into_iter().find(|role| {
            role.token(settings)
                .is_some_and(|t| same(presented, t.expose_secret()))
        })
    }
}

/// A message shown once, on the next page the session sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub tone: Tone,
    pub lines: Vec<String>,
}

/// The colour of a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Success,
    Warning,
    Error,
}

struct Session {
    role: Role,
    csrf: String,
    /// The token it was opened with, to end it when that token changes.
    token: SecretString,
    expires: Instant,
    notice: Option<Notice>,
}

/// A live session as a request sees it.
#[derive(Debug, Clone)]
pub struct Current {
    pub id: String,
    pub role: Role,
    pub csrf: String,
    /// Taken: shown once.
    pub notice: Option<Notice>,
}

/// The console's sessions.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `role` (whose token was just presented); returns its id.
    pub fn open(&self, role: Role, token: &str, ttl: Duration) -> String {
        let now = Instant::now();
        let id = random_token();
        let mut open = self.lock();
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            open.remove(&oldest);
        }
        open.insert(
            id.clone(),
            Session {
                role,
                csrf: random_token(),
                token: SecretString::from(token.to_owned()),
                expires: now + ttl,
                notice: None,
            },
        );
        id
    }

    /// The live session with this id: not expired, and its token still the
    /// configured one. Takes its notice.
    pub fn current(&self, id: &str, settings: &Settings) -> Option<Current> {
        let mut open = self.lock();
        let session = open.get_mut(id)?;
        let valid = session.expires > Instant::now()
            && session
                .role
                .token(settings)
                .is_some_and(|t| same(session.token.expose_secret(), t.expose_secret()));
        if !valid {
            open.remove(id);
            return None;
        }
        Some(Current {
            id: id.to_owned(),
            role: session.role,
            csrf: session.csrf.clone(),
            notice: session.notice.take(),
        })
    }

    /// Leaves a notice for the session's next page.
    pub fn notify(&self, id: &str, notice: Notice) {
        if let Some(s) = self.lock().get_mut(id) {
            s.notice = Some(notice);
        }
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Whether a form's CSRF token is the session's (constant time).
pub fn csrf_ok(session: &Current, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| !p.is_empty() && same(p, &session.csrf))
}

/// Constant-time equality (the length may leak, not the content).
pub fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// 256 random bits, hex.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a hyper::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for a console cookie; `max_age` zero deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/console/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn settings(admin: &str, viewer: Option<&str>) -> Settings {
        let mut text = format!("[server]\nadmin_token = \"{admin}\"\n");
        if let Some(v) = viewer {
            text.push_str(&format!("viewer_token = \"{v}\"\n"));
        }
        Config::from_toml(&text).unwrap().validate().unwrap()
    }

    const ADMIN: &str = "admin-token-0123456789";
    const VIEWER: &str = "viewer-token-0123456789";

    #[test]
    fn tokens_grant_their_role_and_nothing_else_does() {
        let s = settings(ADMIN, Some(VIEWER));
        assert_eq!(Role::of_token(ADMIN, &s), Some(Role::Admin));
        assert_eq!(Role::of_token(VIEWER, &s), Some(Role::Viewer));
        assert_eq!(Role::of_token("", &s), None);
        assert_eq!(Role::of_token("admin-token-012345678", &s), None);
        let without_viewer = settings(ADMIN, None);
        assert_eq!(Role::of_token(VIEWER, &without_viewer), None);
    }

    #[test]
    fn a_session_ends_when_it_expires_or_its_token_changes() {
        let s = settings(ADMIN, None);
        let sessions = Sessions::default();
        let id = sessions.open(Role::Admin, ADMIN, Duration::from_secs(60));
        let current = sessions.current(&id, &s).expect("live");
        assert_eq!(current.role, Role::Admin);
        assert!(csrf_ok(&current, Some(&current.csrf)));
        assert!(!csrf_ok(&current, Some("")));
        assert!(!csrf_ok(&current, None));
        assert!(!csrf_ok(&current, Some(&random_token())));

        let rotated = settings("another-admin-token-0123", None);
        assert!(sessions.current(&id, &rotated).is_none());
        assert!(sessions.current(&id, &s).is_none(), "ended for good");

        let short = sessions.open(Role::Admin, ADMIN, Duration::ZERO);
        assert!(sessions.current(&short, &s).is_none());
    }

    #[test]
    fn a_notice_is_shown_once() {
        let s = settings(ADMIN, None);
        let sessions = Sessions::default();
        let id = sessions.open(Role::Admin, ADMIN, Duration::from_secs(60));
        let notice = Notice {
            tone: Tone::Success,
            lines: vec!["done".into()],
        };
        sessions.notify(&id, notice.clone());
        assert_eq!(sessions.current(&id, &s).unwrap().notice, Some(notice));
        assert_eq!(sessions.current(&id, &s).unwrap().notice, None);
        sessions.close(&id);
        assert!(sessions.current(&id, &s).is_none());
    }

    #[test]
    fn cookies_are_http_only_strict_and_scoped_to_the_console() {
        let c = set_cookie(SESSION_COOKIE, "abc", Duration::from_secs(3600), false);
        assert_eq!(
            c,
            "calsync_session=abc; Path=/console/; Max-Age=3600; HttpOnly; SameSite=Strict"
        );
        assert!(
            set_cookie(SESSION_COOKIE, "abc", Duration::from_secs(1), true).ends_with("; Secure")
        );
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            hyper::header::COOKIE,
            "a=1; calsync_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
    }
}
