//! The operator console: the platform's status tooltip and its "→ Zu Cal.com
//! syncen" button as web pages under `/console/` of `server.listen`, enabled
//! when `server.admin_token` is set.
//!
//! It owns the console's routes, its sessions and its HTML; it must never put a
//! token in a URL, a page or a log line, serve anything from elsewhere (no CDN:
//! styles and the icon are compiled in), or change state on a GET. Every page
//! is server-rendered and works without JavaScript; every response carries
//! `Content-Security-Policy: default-src 'self'` (plus no framing, no foreign
//! form targets).
//!
//! Files, by job: this one (the route table and the HTTP answers), `session`
//! (login, cookies, CSRF), `i18n` (every string in German and English), `pages`
//! (what each page loads and does), `views` (the HTML), `style.css`.
//!
//! Routes (`S` = needs a session, `A` = needs the admin token's session, every
//! POST needs the session's CSRF token; the login form has its own):
//!
//! | route | |
//! |---|---|
//! | `GET /console/` | → the services |
//! | `GET /console/login`, `POST /console/login` | the login form; the token becomes a session cookie |
//! | `POST /console/logout` | S: ends the session |
//! | `GET /console/services` | S: the listing (`account`, `show`, `q`, `after`/`before`) |
//! | `GET /console/services/{id}` | S: the tooltip's three sections, open drift, history |
//! | `GET /console/services/{id}/push` | S: the push confirmation |
//! | `POST /console/services/{id}/push` | A: pushes, then back to the service with the outcome |
//! | `GET /console/accounts` | S: last pass, last failure and request budget per account; a held account with its guard message |
//! | `GET`, `POST /console/services/{id}/drift/{field}/adopt` | A: confirmation (with a note), then Cal.com's value into the platform |
//! | `GET`, `POST /console/services/{id}/drift/{field}/acknowledge` | A: confirmation (how long, why), then the acknowledgement |
//! | `POST /console/services/{id}/drift/{field}/unacknowledge` | A: ends the acknowledgement |
//! | `GET`, `POST /console/accounts/{name}/approve` | A: confirmation (with a note), then the approval of a held account |
//!
//! Every decision runs through the daemon's typed operations, like the JSON
//! operator API's, and is journaled with the admin session as `console`.

mod i18n;
mod pages;
mod session;
mod views;

pub use i18n::Lang;
pub use session::Role;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use maud::Markup;
use tracing::info;

use crate::daemon::Daemon;
use crate::domain::ServiceId;
use pages::Unavailable;
use session::{Current, LOGIN_COOKIE, LOGIN_FORM_TTL, SESSION_COOKIE, Sessions};
use views::{Frame, Nav};

type Body = Full<Bytes>;

/// Form bodies above this are refused (a login form or a CSRF token).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The content security policy of every console response.
pub const CSP: &str =
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const STYLE: &str = include_str!("style.css");
const FAVICON: &str = include_str!("favicon.svg");

/// The console's state across requests (its sessions).
#[derive(Default)]
pub struct Console {
    sessions: Sessions,
}

/// Whether a path belongs to the console.
pub fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// One request to a path under `/console`.
pub async fn handle(req: Request<Incoming>, daemon: &Daemon, console: &Console) -> Response<Body> {
    let settings = daemon.settings();
    if settings.admin_token.is_none() {
        return plain(
            StatusCode::NOT_FOUND,
            "the console is disabled; set server.admin_token or server.admin_token_file",
        );
    }
    let lang = Lang::choose(
        settings.console.language,
        req.headers()
            .get(hyper::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let session = session::cookie(req.headers(), SESSION_COOKIE)
        .and_then(|id| console.sessions.current(id, &settings));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let rest = path.trim_start_matches("/console").trim_start_matches('/');
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let now = chrono::Utc::now().naive_utc();
    let frame = Frame {
        lang,
        now,
        session: session.as_ref(),
        nav: match segments.first() {
            Some(&"services") => Nav::Services,
            Some(&"accounts") => Nav::Accounts,
            _ => Nav::Outside,
        },
    };
    let t = lang.text();

    // Unauthenticated routes.
    match (&method, segments.as_slice()) {
        (&Method::GET, ["style.css"]) => return asset("text/css; charset=utf-8", STYLE),
        (&Method::GET, ["favicon.svg"]) => return asset("image/svg+xml", FAVICON),
        (&Method::GET, ["login"]) => {
            if session.is_some() {
                return redirect("/console/services", Vec::new());
            }
            let problem = match query.get("problem").map(String::as_str) {
                Some("expired") => Some(t.login_expired),
                Some("out") => Some(t.logged_out),
                _ => None,
            };
            return login_form(&frame, &settings, StatusCode::OK, problem);
        }
        (&Method::POST, ["login"]) => {
            let cookie = session::cookie(req.headers(), LOGIN_COOKIE).map(str::to_owned);
            let form = match form(req).await {
                Ok(f) => f,
                Err(r) => return r,
            };
            let presented = form.get("login_csrf").map(String::as_str);
            let double_submitted = match (cookie.as_deref(), presented) {
                (Some(c), Some(p)) => !c.is_empty() && session::same(c, p),
                _ => false,
            };
            if !double_submitted {
                return redirect("/console/login?problem=expired", Vec::new());
            }
            let token = form.get("token").map(String::as_str).unwrap_or_default();
            let Some(role) = Role::of_token(token, &settings) else {
                info!(
                    "Console login refused: the token is neither server.admin_token nor server.viewer_token."
                );
                return login_form(
                    &frame,
                    &settings,
                    StatusCode::UNAUTHORIZED,
                    Some(t.login_failed),
                );
            };
            let ttl = settings.console.session_ttl;
            let id = console.sessions.open(role, token, ttl);
            info!(role = role.as_str(), "Console login.");
            let secure = settings.console.secure_cookies;
            return redirect(
                "/console/services",
                vec![
                    session::set_cookie(SESSION_COOKIE, &id, ttl, secure),
                    session::set_cookie(LOGIN_COOKIE, "", Duration::ZERO, secure),
                ],
            );
        }
        _ => {}
    }

    let Some(current) = session.as_ref() else {
        return match method {
            Method::GET | Method::HEAD => redirect("/console/login", Vec::new()),
            _ => html(
                StatusCode::FORBIDDEN,
                views::message(&frame, t.login_heading, t.login_expired),
                Vec::new(),
            ),
        };
    };

    if method == Method::POST {
        // A browser says where a request comes from; refuse other sites outright
        // (SameSite=Strict already keeps the cookie from them).
        let cross_site = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "cross-site");
        let form = match form(req).await {
            Ok(f) => f,
            Err(r) => return r,
        };
        if cross_site || !session::csrf_ok(current, form.get("csrf").map(String::as_str)) {
            return html(
                StatusCode::FORBIDDEN,
                views::message(&frame, t.csrf_refused, t.csrf_refused),
                Vec::new(),
            );
        }
        return post(&frame, daemon, console, current, segments.as_slice(), &form).await;
    }

    let page = match (&method, segments.as_slice()) {
        (&Method::GET, []) => return redirect("/console/services", Vec::new()),
        (&Method::GET, ["services"]) => pages::services(&frame, daemon, &query).await,
        (&Method::GET, ["services", id]) => match service_id(id) {
            Some(id) => pages::service(&frame, daemon, id).await,
            None => Err(Unavailable::NotFound),
        },
        (&Method::GET, ["services", id, "push"]) => match service_id(id) {
            Some(id) if current.role == Role::Admin => {
                pages::confirm_push(&frame, daemon, id).await
            }
            Some(_) => {
                return html(
                    StatusCode::FORBIDDEN,
                    views::message(&frame, t.forbidden_viewer, t.read_only),
                    Vec::new(),
                );
            }
            None => Err(Unavailable::NotFound),
        },
        (&Method::GET, ["accounts"]) => pages::accounts(&frame, daemon).await,
        (
            &Method::GET,
            ["services", _, "drift", _, "adopt" | "acknowledge"] | ["accounts", _, "approve"],
        ) if current.role != Role::Admin => {
            return html(
                StatusCode::FORBIDDEN,
                views::message(&frame, t.forbidden_viewer, t.read_only),
                Vec::new(),
            );
        }
        (
            &Method::GET,
            [
                "services",
                id,
                "drift",
                field,
                action @ ("adopt" | "acknowledge"),
            ],
        ) => match (service_id(id), crate::domain::Field::parse(field)) {
            (Some(id), Some(field)) => {
                pages::confirm_decision(&frame, daemon, id, field, action == &"adopt").await
            }
            _ => Err(Unavailable::NotFound),
        },
        (&Method::GET, ["accounts", name, "approve"]) => {
            pages::confirm_approve(&frame, daemon, name).await
        }
        _ => Err(Unavailable::NotFound),
    };
    match page {
        Ok(markup) => html(StatusCode::OK, markup, Vec::new()),
        Err(e) => unavailable(&frame, e),
    }
}

/// The state-changing routes, after the session and its CSRF token were checked.
async fn post(
    frame: &Frame<'_>,
    daemon: &Daemon,
    console: &Console,
    current: &Current,
    segments: &[&str],
    form: &HashMap<String, String>,
) -> Response<Body> {
    let t = frame.lang.text();
    if let ["logout"] = segments {
        console.sessions.close(&current.id);
        info!(role = current.role.as_str(), "Console logout.");
        let secure = daemon.settings().console.secure_cookies;
        return redirect(
            "/console/login?problem=out",
            vec![session::set_cookie(
                SESSION_COOKIE,
                "",
                Duration::ZERO,
                secure,
            )],
        );
    }
    if current.role != Role::Admin {
        return html(
            StatusCode::FORBIDDEN,
            views::message(frame, t.forbidden_viewer, t.read_only),
            Vec::new(),
        );
    }
    match segments {
        ["services", id, "push"] => {
            let Some(id) = service_id(id) else {
                return unavailable(frame, Unavailable::NotFound);
            };
            let notice = pages::push(daemon, frame.lang, id).await;
            info!(
                service_id = id.0,
                outcome = ?notice.tone,
                "Console push to Cal.com."
            );
            console.sessions.notify(&current.id, notice);
            redirect(&format!("/console/services/{}", id.0), Vec::new())
        }
        [
            "services",
            id,
            "drift",
            field,
            action @ ("adopt" | "acknowledge" | "unacknowledge"),
        ] => {
            let (Some(id), Some(field)) = (service_id(id), crate::domain::Field::parse(field))
            else {
                return unavailable(frame, Unavailable::NotFound);
            };
            let notice = pages::decide(daemon, frame.lang, id, field, action, form).await;
            info!(
                service_id = id.0,
                field = field.as_str(),
                decision = *action,
                outcome = ?notice.tone,
                "Console decision about drift."
            );
            console.sessions.notify(&current.id, notice);
            redirect(&format!("/console/services/{}", id.0), Vec::new())
        }
        ["accounts", name, "approve"] => {
            let notice = pages::approve(daemon, frame.lang, name, form).await;
            info!(account = *name, outcome = ?notice.tone, "Console approval of a held account.");
            console.sessions.notify(&current.id, notice);
            redirect("/console/accounts", Vec::new())
        }
        _ => unavailable(frame, Unavailable::NotFound),
    }
}

fn service_id(segment: &str) -> Option<ServiceId> {
    segment.parse().ok().map(ServiceId)
}

/// The login form with a fresh double-submit token.
fn login_form(
    frame: &Frame<'_>,
    settings: &crate::config::Settings,
    status: StatusCode,
    problem: Option<&str>,
) -> Response<Body> {
    let login_csrf = session::random_token();
    html(
        status,
        views::login(frame, &login_csrf, problem),
        vec![session::set_cookie(
            LOGIN_COOKIE,
            &login_csrf,
            LOGIN_FORM_TTL,
            settings.console.secure_cookies,
        )],
    )
}

fn unavailable(frame: &Frame<'_>, e: Unavailable) -> Response<Body> {
    let t = frame.lang.text();
    match e {
        Unavailable::NotFound => html(
            StatusCode::NOT_FOUND,
            views::message(frame, t.not_found, t.service_missing),
            Vec::new(),
        ),
        Unavailable::Database(reason) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            views::message(frame, t.database_unavailable, &reason),
            Vec::new(),
        ),
    }
}

/// A bounded `application/x-www-form-urlencoded` body.
async fn form(req: Request<Incoming>) -> Result<HashMap<String, String>, Response<Body>> {
    match Limited::new(req.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
    {
        Ok(body) => Ok(url::form_urlencoded::parse(&body.to_bytes())
            .into_owned()
            .collect()),
        Err(_) => Err(plain(StatusCode::PAYLOAD_TOO_LARGE, "form too large")),
    }
}

/// Headers every console response carries.
fn secured(builder: hyper::http::response::Builder) -> hyper::http::response::Builder {
    builder
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-store")
}

fn html(status: StatusCode, markup: Markup, cookies: Vec<String>) -> Response<Body> {
    let mut builder = secured(Response::builder().status(status))
        .header(CONTENT_TYPE, "text/html; charset=utf-8");
    for c in cookies {
        builder = builder.header(SET_COOKIE, c);
    }
    builder
        .body(Full::new(Bytes::from(markup.into_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// `303 See Other`: after a POST, and for pages that moved.
fn redirect(location: &str, cookies: Vec<String>) -> Response<Body> {
    let mut builder =
        secured(Response::builder().status(StatusCode::SEE_OTHER)).header(LOCATION, location);
    for c in cookies {
        builder = builder.header(SET_COOKIE, c);
    }
    builder
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn asset(content_type: &str, body: &'static str) -> Response<Body> {
    secured(Response::builder().status(StatusCode::OK))
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn plain(status: StatusCode, message: &str) -> Response<Body> {
    secured(Response::builder().status(status))
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(message.to_owned())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
