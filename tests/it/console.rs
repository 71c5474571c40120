//! The operator console: its listing queries on every backend, its access rules
//! over plain HTTP, and the whole of it in headless Chromium (log in, filter,
//! see the drift, push through the confirmation, CSRF, the viewer, German and
//! English, no console errors, axe-core on every page, screenshots for the
//! README in `docs/console/`).

use std::path::PathBuf;

use calsync::domain::{ServiceId, SyncStatus};
use calsync::store::{AccountRef, PageAt, ServiceQuery, ServiceSearch, ServiceShow};
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::json;

use crate::support::app::{TestApp, haircut};
use crate::support::browser::{self, Browser};
use crate::support::config::AccountSpec;
use crate::support::daemon::{DaemonSpec, RunningDaemon};
use crate::support::db::backend_tests;

const ADMIN: &str = "console-admin-token-0123456789";
const VIEWER: &str = "console-viewer-token-0123456789";
const BERLIN_KEY: &str = "cal_live_console_berlin_0001";
const HAMBURG_KEY: &str = "cal_live_console_hamburg_0002";

fn tokens() -> String {
    format!("admin_token = \"{ADMIN}\"\nviewer_token = \"{VIEWER}\"\n")
}

fn query(show: Option<ServiceShow>) -> ServiceQuery<'static> {
    ServiceQuery {
        account: None,
        show,
        search: None,
        at: PageAt::First,
        limit: 50,
    }
}

// ------------------------------------------------------------ the listing

backend_tests!(
    listing_filters_searches_and_pages_by_account,
    |backend: TestBackend| async move {
        let app = TestApp::builder(backend)
            .accounts(vec![
                AccountSpec::new("berlin", 1, BERLIN_KEY),
                AccountSpec::new("hamburg", 2, HAMBURG_KEY),
            ])
            .spawn()
            .await;
        let haircut_et = app.given_event_type_of(BERLIN_KEY, haircut());
        let color = app.given_event_type_of(
            BERLIN_KEY,
            json!({"title": "Colour 100%_done", "slug": "colour", "lengthInMinutes": 60}),
        );
        let gone = app.given_event_type_of(
            BERLIN_KEY,
            json!({"title": "Beard trim", "slug": "beard", "lengthInMinutes": 15}),
        );
        for i in 0..5 {
            app.given_event_type_of(
                HAMBURG_KEY,
                json!({"title": format!("Massage {i}"), "slug": format!("massage-{i}"), "lengthInMinutes": 50}),
            );
        }
        app.sync_once().await;
        app.edit_in_calcom(haircut_et, json!({"lengthInMinutes": 45}));
        app.delete_in_calcom(gone);
        let pending = ServiceId(app.service_for(color).await.id);
        app.sync_once().await;
        app.edit_in_platform(pending, "Colour 100%_done", 75).await;
        let store = &app.db.store;

        let all = store.services_listing(&query(None)).await.unwrap();
        assert_eq!(all.total, 8);
        assert_eq!(all.services.len(), 8);
        assert!(!all.has_previous && !all.has_next);

        let drifted = store
            .services_listing(&query(Some(ServiceShow::Drifted)))
            .await
            .unwrap();
        let ids: Vec<i64> = drifted
            .services
            .iter()
            .map(|(s, _)| s.service.id.0)
            .collect();
        assert_eq!(ids, vec![app.service_for(haircut_et).await.id]);
        assert_eq!(drifted.services[0].1, 1, "one open drift entry");

        let orphaned = store
            .services_listing(&query(Some(ServiceShow::Orphaned)))
            .await
            .unwrap();
        assert_eq!(orphaned.total, 1);
        assert_eq!(orphaned.services[0].0.service.values.name, "Beard trim");

        let waiting = store
            .services_listing(&query(Some(ServiceShow::Status(SyncStatus::Pending))))
            .await
            .unwrap();
        assert_eq!(waiting.services[0].0.service.id, pending);
        let errors = store
            .services_listing(&query(Some(ServiceShow::Status(SyncStatus::Error))))
            .await
            .unwrap();
        assert_eq!(errors.total, 2, "the drifted and the orphaned service");
        let synced = store
            .services_listing(&query(Some(ServiceShow::Status(SyncStatus::Synced))))
            .await
            .unwrap();
        assert_eq!(synced.total, 5);

        // `%` and `_` are searched for as themselves, case-insensitively.
        let mut q = query(None);
        q.search = ServiceSearch::new("  100%_DONE ");
        let found = store.services_listing(&q).await.unwrap();
        assert_eq!(found.total, 1);
        q.search = ServiceSearch::new("100%x");
        assert_eq!(store.services_listing(&q).await.unwrap().total, 0);
        q.search = ServiceSearch::new(&haircut_et.to_string());
        assert_eq!(
            store.services_listing(&q).await.unwrap().services[0]
                .0
                .service
                .values
                .name,
            "Haircut",
            "a number finds the Cal.com id"
        );

        let berlin = ServiceQuery {
            account: Some(AccountRef {
                name: "berlin",
                company_id: 1,
            }),
            ..query(None)
        };
        assert_eq!(store.services_listing(&berlin).await.unwrap().total, 3);

        // Pages of two, forwards and back, cover every hamburg service once.
        let hamburg = |at| ServiceQuery {
            account: Some(AccountRef {
                name: "hamburg",
                company_id: 2,
            }),
            at,
            limit: 2,
            ..query(None)
        };
        let mut seen = Vec::new();
        let mut at = PageAt::First;
        loop {
            let page = store.services_listing(&hamburg(at)).await.unwrap();
            assert_eq!(page.total, 5);
            seen.extend(page.services.iter().map(|(s, _)| s.service.id));
            if !page.has_next {
                break;
            }
            at = PageAt::After(page.services.last().unwrap().0.service.id);
        }
        assert_eq!(seen.len(), 5);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        let back = store
            .services_listing(&hamburg(PageAt::Before(seen[4])))
            .await
            .unwrap();
        let ids: Vec<ServiceId> = back.services.iter().map(|(s, _)| s.service.id).collect();
        assert_eq!(ids, vec![seen[2], seen[3]]);
        assert!(back.has_previous && back.has_next);

        let latest = store.latest_runs(false).await.unwrap();
        let names: Vec<&str> = latest.iter().map(|r| r.account.as_str()).collect();
        assert_eq!(names, vec!["berlin", "hamburg"]);
        assert!(store.latest_runs(true).await.unwrap().is_empty());
    }
);

// ------------------------------------------------------- access over HTTP

/// An `application/x-www-form-urlencoded` body, as a browser posts a form.
trait FormOf {
    fn form_of<V: AsRef<str>>(self, fields: &[(&str, V)]) -> Self;
}

impl FormOf for reqwest::RequestBuilder {
    fn form_of<V: AsRef<str>>(self, fields: &[(&str, V)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_ref())))
            .finish();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// The value of `name="field" value="…"` in a page.
fn hidden(page: &str, field: &str) -> String {
    let marker = format!("name=\"{field}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {field} field in {page}"))
        + marker.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn cookie_of(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// A logged-in client: its session cookie and CSRF token.
struct Login {
    cookie: String,
    csrf: String,
}

async fn log_in(d: &RunningDaemon, token: &str) -> Login {
    let form = d.http.get(d.url("/console/login")).send().await.unwrap();
    let login_cookie = cookie_of(&form, "calsync_login").expect("a login cookie");
    let pair = login_cookie.split(';').next().unwrap().to_owned();
    let login_csrf = hidden(&form.text().await.unwrap(), "login_csrf");
    let r = d
        .http
        .post(d.url("/console/login"))
        .header("cookie", &pair)
        .form_of(&[("login_csrf", login_csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/console/services");
    let session = cookie_of(&r, "calsync_session").expect("a session cookie");
    let cookie = session.split(';').next().unwrap().to_owned();
    let page = d
        .http
        .get(d.url("/console/services"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Login {
        cookie,
        csrf: hidden(&page, "csrf"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_access_needs_a_session_csrf_and_the_admin_token() {
    let d = RunningDaemon::start(DaemonSpec {
        accounts: vec![AccountSpec::new("berlin", 1, BERLIN_KEY)],
        seed_event_types: 2,
        server: &tokens(),
        extra: "",
    })
    .await;

    let r = d.http.get(d.url("/console/services")).send().await.unwrap();
    assert_eq!(r.status(), 303, "no session: to the login");
    assert_eq!(r.headers()[LOCATION], "/console/login");

    let form = d.http.get(d.url("/console/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let csp = form.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    let login_cookie = cookie_of(&form, "calsync_login").unwrap();
    assert!(
        login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"),
        "{login_cookie}"
    );

    // The login form's own CSRF token: a login without it is refused.
    let r = d
        .http
        .post(d.url("/console/login"))
        .form_of(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[LOCATION], "/console/login?problem=expired");
    assert!(cookie_of(&r, "calsync_session").is_none());

    // A wrong token is refused, and not echoed.
    let pair = login_cookie.split(';').next().unwrap();
    let login_csrf = hidden(&form.text().await.unwrap(), "login_csrf");
    let r = d
        .http
        .post(d.url("/console/login"))
        .header("cookie", pair)
        .form_of(&[
            ("login_csrf", login_csrf.as_str()),
            ("token", "not-the-token-0123456789"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(cookie_of(&r, "calsync_session").is_none());
    assert!(!r.text().await.unwrap().contains("not-the-token"));

    // The session cookie: HttpOnly, SameSite=Strict, scoped, expiring, and not
    // Secure on plain HTTP (console.behind_https_proxy is off).
    let form = d.http.get(d.url("/console/login")).send().await.unwrap();
    let pair = cookie_of(&form, "calsync_login").unwrap();
    let pair = pair.split(';').next().unwrap().to_owned();
    let login_csrf = hidden(&form.text().await.unwrap(), "login_csrf");
    let r = d
        .http
        .post(d.url("/console/login"))
        .header("cookie", &pair)
        .form_of(&[("login_csrf", login_csrf.as_str()), ("token", ADMIN)])
        .send()
        .await
        .unwrap();
    let session = cookie_of(&r, "calsync_session").unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console/",
        "Max-Age=28800",
    ] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "{session}");

    let admin = log_in(&d, ADMIN).await;
    let service = d
        .http
        .get(d.url("/console/services/1"))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(service.status(), 200);
    let page = service.text().await.unwrap();
    assert!(
        page.contains("/console/services/1/push"),
        "the admin sees the button"
    );
    assert!(!page.contains(ADMIN) && !page.contains(VIEWER));

    let push = |cookie: String, csrf: Option<String>| {
        let request = d
            .http
            .post(d.url("/console/services/1/push"))
            .header("cookie", cookie);
        async move {
            match csrf {
                Some(c) => request.form_of(&[("csrf", c)]),
                None => request.form_of(&[("x", "y")]),
            }
            .send()
            .await
            .unwrap()
            .status()
        }
    };
    assert_eq!(push(admin.cookie.clone(), None).await, 403, "no CSRF token");
    assert_eq!(
        push(admin.cookie.clone(), Some("0".repeat(64))).await,
        403,
        "a wrong CSRF token"
    );
    let viewer = log_in(&d, VIEWER).await;
    assert_eq!(
        push(viewer.cookie.clone(), Some(viewer.csrf.clone())).await,
        403,
        "the viewer cannot push"
    );
    let confirm = d
        .http
        .get(d.url("/console/services/1/push"))
        .header("cookie", &viewer.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 403);
    let viewer_page = d
        .http
        .get(d.url("/console/services/1"))
        .header("cookie", &viewer.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!viewer_page.contains("/console/services/1/push"));
    assert_eq!(
        push(admin.cookie.clone(), Some(admin.csrf.clone())).await,
        303,
        "the admin's push with its token"
    );

    // Logout ends the session.
    let r = d
        .http
        .post(d.url("/console/logout"))
        .header("cookie", &admin.cookie)
        .form_of(&[("csrf", admin.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        cookie_of(&r, "calsync_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = d
        .http
        .get(d.url("/console/services"))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[LOCATION], "/console/login");

    let logs = d.logs();
    assert!(logs.contains("Console login"), "{logs}");
    for secret in [ADMIN, VIEWER, admin.csrf.as_str()] {
        assert!(!logs.contains(secret), "a token in the logs:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_is_off_without_an_admin_token_and_secure_behind_https() {
    let off = RunningDaemon::start(DaemonSpec {
        accounts: vec![AccountSpec::new("berlin", 1, BERLIN_KEY)],
        seed_event_types: 0,
        server: "",
        extra: "",
    })
    .await;
    let r = off
        .http
        .get(off.url("/console/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    drop(off);

    let proxied = RunningDaemon::start(DaemonSpec {
        accounts: vec![AccountSpec::new("berlin", 1, BERLIN_KEY)],
        seed_event_types: 0,
        server: &tokens(),
        extra: "[console]\nbehind_https_proxy = true\nlanguage = \"de\"\n",
    })
    .await;
    let r = proxied
        .http
        .get(proxied.url("/console/login"))
        .header("accept-language", "en-US,en")
        .send()
        .await
        .unwrap();
    assert!(
        cookie_of(&r, "calsync_login")
            .unwrap()
            .ends_with("; Secure")
    );
    let page = r.text().await.unwrap();
    assert!(
        page.contains("lang=\"de\"") && page.contains("Anmelden"),
        "console.language wins over the browser"
    );
}

// ------------------------------------------------------------- the browser

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/console")
}

async fn log_in_browser(b: &Browser, d: &RunningDaemon, token: &str) {
    b.goto(&d.url("/console/")).await;
    assert!(
        b.url().await.ends_with("/console/login"),
        "{}",
        b.url().await
    );
    b.fill("#token", token).await;
    b.click_to_page("main form button[type=submit]").await;
    assert!(
        b.url().await.ends_with("/console/services"),
        "{}",
        b.url().await
    );
}

/// The browser log after a request the test made fail on purpose: only those.
async fn expected_refusals(b: &Browser) {
    for e in b.console_errors().await {
        assert!(e.contains("403"), "unexpected console error {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() {
    let Some(tools) = browser::tools() else {
        return;
    };
    let d = RunningDaemon::start(DaemonSpec {
        accounts: vec![
            AccountSpec::new("berlin", 1, BERLIN_KEY),
            AccountSpec::new("hamburg", 2, HAMBURG_KEY),
        ],
        seed_event_types: 4,
        server: &tokens(),
        // A guard that holds hamburg once it would orphan two of its services.
        extra: "[sync.guard]\nmin_services = 1\nmax_orphan_percent = 20\n",
    })
    .await;
    let hamburg: Vec<i64> = ["Wash", "Blow-dry", "Fringe trim"]
        .into_iter()
        .map(|title| {
            d.sim.create_event_type(
                HAMBURG_KEY,
                json!({"title": title, "slug": title.to_lowercase().replace(' ', "-"), "lengthInMinutes": 20}),
            )["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    // A service whose duration someone changes in Cal.com.
    let keratin = d.sim.create_event_type(
        BERLIN_KEY,
        json!({"title": "Keratin smoothing", "slug": "keratin", "lengthInMinutes": 90,
               "description": "Smoothing treatment with keratin."}),
    )["id"]
        .as_i64()
        .unwrap();
    d.reconcile(ADMIN).await;
    assert!(
        d.sim
            .edit_event_type(keratin, json!({"lengthInMinutes": 120}))
    );
    d.reconcile(ADMIN).await;

    let shots = screenshots();
    let de = Browser::start(&tools, "de-DE,de").await;
    de.goto(&d.url("/console/")).await;
    de.check_page("login").await;
    de.screenshot(&shots.join("login.png")).await;
    log_in_browser(&de, &d, ADMIN).await;
    assert_eq!(de.text("h1").await, "Services");
    de.check_page("services").await;

    // Filter to drifted: only the keratin treatment.
    de.client
        .find(fantoccini::Locator::Css("select#show"))
        .await
        .unwrap()
        .select_by_value("drifted")
        .await
        .unwrap();
    de.click_to_page("form.filters button").await;
    assert!(
        de.url().await.contains("show=drifted"),
        "{}",
        de.url().await
    );
    let rows = de
        .client
        .find_all(fantoccini::Locator::Css("tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(de.text("tbody th a").await, "Keratin smoothing");
    assert!(de.has("tbody [data-drift]").await);
    de.check_page("services, drifted").await;
    de.screenshot(&shots.join("services-drifted.png")).await;

    // Both values side by side, with the baseline.
    de.click_to_page("tbody th a").await;
    let service_url = de.url().await;
    assert_eq!(
        de.text("tr[data-field=duration_minutes] td.platform").await,
        "90"
    );
    assert_eq!(
        de.text("tr[data-field=duration_minutes] td.calcom").await,
        "120"
    );
    assert_eq!(
        de.text("tr[data-field=duration_minutes] td.baseline").await,
        "90"
    );
    assert_eq!(de.text("#sync-status").await, "❌ Sync-Fehler");
    assert!(de.source().await.contains("Ihre Platform → Cal.com ✅"));
    assert_eq!(de.text("#push").await, "→ Zu Cal.com syncen");
    de.check_page("service").await;
    de.screenshot(&shots.join("service-drift.png")).await;

    // The push, through its confirmation.
    de.click_to_page("#push").await;
    assert_eq!(de.text("h1").await, "Service zu Cal.com synchronisieren");
    assert!(de.source().await.contains(
        "Ihre Platform-Daten werden zu Cal.com gesendet. Dies überschreibt die Cal.com-Daten mit Ihren aktuellen Einstellungen."
    ));
    de.check_page("push confirmation").await;
    de.screenshot(&shots.join("push-confirm.png")).await;
    de.click_to_page("#confirm").await;
    assert_eq!(de.url().await, service_url);
    assert!(
        de.text("main .notice")
            .await
            .contains("Dienstleistung mit Cal.com synchronisiert"),
        "{}",
        de.source().await
    );
    assert_eq!(de.text("#sync-status").await, "✓ Synchronisiert");
    assert!(de.has("#sync-status [data-status=synced]").await);
    assert_eq!(d.sim.event_type(keratin).unwrap()["lengthInMinutes"], 90);
    de.check_page("service after the push").await;
    de.screenshot(&shots.join("service-pushed.png")).await;

    // Acknowledge a new Cal.com edit, through its confirmation.
    assert!(
        d.sim
            .edit_event_type(keratin, json!({"title": "Keratin deluxe"}))
    );
    d.reconcile(ADMIN).await;
    de.goto(&service_url).await;
    de.click_to_page("tr[data-field=name] td.decide a[href$=acknowledge]")
        .await;
    assert_eq!(de.text("h1").await, "Abweichung bestätigen");
    assert!(de.text("dd.calcom").await.contains("Keratin deluxe"));
    de.check_page("acknowledge confirmation").await;
    de.fill("#note", "Umbenennung wird mit dem Salon besprochen")
        .await;
    de.screenshot(&shots.join("acknowledge-confirm.png")).await;
    de.click_to_page("#confirm").await;
    assert!(
        de.text("main .notice")
            .await
            .contains("Abweichung bestätigt"),
        "{}",
        de.source().await
    );
    assert!(
        de.text("tr[data-field=name] td.ack")
            .await
            .contains("Umbenennung wird mit dem Salon besprochen")
    );
    de.check_page("service, acknowledged").await;

    // Adopt a Cal.com duration into the platform, through its confirmation.
    assert!(
        d.sim
            .edit_event_type(keratin, json!({"lengthInMinutes": 100}))
    );
    d.reconcile(ADMIN).await;
    de.goto(&service_url).await;
    de.click_to_page("tr[data-field=duration_minutes] td.decide a[href$=adopt]")
        .await;
    assert_eq!(
        de.text("h1").await,
        "Cal.com-Wert in die Platform übernehmen"
    );
    de.check_page("adopt confirmation").await;
    de.screenshot(&shots.join("adopt-confirm.png")).await;
    de.click_to_page("#confirm").await;
    assert!(
        de.text("main .notice")
            .await
            .contains("Cal.com-Wert übernommen"),
        "{}",
        de.source().await
    );
    assert!(!de.has("tr[data-field=duration_minutes] td.decide").await);
    assert_eq!(d.sim.event_type(keratin).unwrap()["lengthInMinutes"], 100);

    // A held account, approved through its confirmation.
    for et in &hamburg[..2] {
        assert!(d.sim.delete_event_type(*et));
    }
    d.reconcile(ADMIN).await;
    de.goto(&d.url("/console/accounts")).await;
    assert!(
        de.text("[data-account=hamburg]")
            .await
            .contains("Angehalten"),
        "{}",
        de.source().await
    );
    de.check_page("accounts, held").await;
    de.screenshot(&shots.join("accounts-held.png")).await;
    de.click_to_page("[data-account=hamburg] a[href$=approve]")
        .await;
    assert_eq!(de.text("h1").await, "Gesperrtes Konto freigeben");
    de.check_page("approve confirmation").await;
    de.fill("#note", "Zwei Dienstleistungen wurden eingestellt")
        .await;
    de.click_to_page("#confirm").await;
    assert!(
        de.text("main .notice").await.contains("Konto freigegeben"),
        "{}",
        de.source().await
    );
    d.reconcile(ADMIN).await;
    de.goto(&d.url("/console/accounts")).await;
    assert!(
        !de.text("[data-account=hamburg]")
            .await
            .contains("Angehalten")
    );

    // A POST without the CSRF token (or with a wrong one) is refused.
    let push = service_url.trim_start_matches(&d.url("")).to_owned() + "/push";
    assert_eq!(de.post_form(&push, &[]).await, 403);
    assert_eq!(de.post_form(&push, &[("csrf", "forged")]).await, 403);
    expected_refusals(&de).await;

    de.goto(&d.url("/console/accounts")).await;
    assert!(de.has("[data-account=berlin]").await && de.has("[data-account=hamburg]").await);
    assert!(
        de.text("[data-account=berlin]")
            .await
            .contains("✓ Erfolgreich")
    );
    de.check_page("accounts").await;
    de.screenshot(&shots.join("accounts.png")).await;

    // Logout, then the read-only token: no button, and a push is refused.
    de.click_to_page(".who button").await;
    assert!(de.url().await.contains("/console/login"));
    assert!(de.source().await.contains("Sie wurden abgemeldet."));
    log_in_browser(&de, &d, VIEWER).await;
    de.goto(&service_url).await;
    assert!(!de.has("#push").await);
    assert!(de.source().await.contains("Lesezugriff"));
    de.check_page("service, read-only").await;
    let csrf = de
        .client
        .find(fantoccini::Locator::Css(".who input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(de.post_form(&push, &[("csrf", &csrf)]).await, 403);
    expected_refusals(&de).await;
    de.close().await;

    // English, from the browser's Accept-Language.
    let en = Browser::start(&tools, "en-US,en").await;
    log_in_browser(&en, &d, ADMIN).await;
    assert!(en.source().await.contains("lang=\"en\""));
    assert!(en.text("form.filters").await.contains("Show"));
    en.check_page("services (en)").await;
    en.screenshot(&shots.join("services-en.png")).await;
    en.goto(&service_url).await;
    assert_eq!(en.text("#push").await, "→ Sync to Cal.com");
    assert!(en.source().await.contains("Your platform → Cal.com ✅"));
    en.check_page("service (en)").await;
    en.screenshot(&shots.join("service-en.png")).await;
    // Dark mode follows the system theme, and keeps its contrast.
    assert_eq!(en.background().await, "rgb(246, 247, 249)");
    en.prefer_dark().await;
    en.goto(&service_url).await;
    assert_eq!(en.background().await, "rgb(11, 17, 32)");
    en.check_page("service (en, dark)").await;
    en.screenshot(&shots.join("service-dark.png")).await;
    en.goto(&d.url("/console/services")).await;
    en.check_page("services (en, dark)").await;
    en.goto(&service_url).await;
    en.click_to_page("#push").await;
    assert_eq!(en.text("h1").await, "Synchronise service to Cal.com");
    en.check_page("push confirmation (en)").await;
    en.goto(&d.url("/console/accounts")).await;
    en.check_page("accounts (en)").await;
    en.close().await;

    let logs = d.logs();
    for secret in [ADMIN, VIEWER, BERLIN_KEY] {
        assert!(!logs.contains(secret), "a secret in the logs");
    }
}
