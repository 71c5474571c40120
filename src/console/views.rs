//! The console's HTML (maud: checked at compile time, every value escaped).
//!
//! Views take what [`super::pages`] loaded and render it; they read nothing
//! themselves. No inline script or style anywhere (the CSP forbids both): the
//! look is `style.css`, and every page works without JavaScript. Each control
//! has a label, tables have header cells, and the order of the page is the order
//! of the keyboard.

use chrono::NaiveDateTime;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::i18n::{Lang, Text};
use super::session::{Current, Notice, Role, Tone};
use crate::domain::{Origin, Resolution, SyncStatus};
use crate::store::{DriftRecord, LinkedService, ServiceShow, StoredRun};
use crate::telemetry::metrics::CalcomBudget;

/// Which part of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Services,
    Accounts,
    /// Login and error pages.
    Outside,
}

/// What every page's frame needs.
pub struct Frame<'a> {
    pub lang: Lang,
    pub now: NaiveDateTime,
    pub session: Option<&'a Current>,
    pub nav: Nav,
}

impl Frame<'_> {
    fn t(&self) -> &'static Text {
        self.lang.text()
    }

    fn admin(&self) -> bool {
        self.session.is_some_and(|s| s.role == Role::Admin)
    }

    /// The hidden CSRF field every state-changing form carries.
    fn csrf(&self) -> Markup {
        html! {
            @if let Some(s) = self.session {
                input type="hidden" name="csrf" value=(s.csrf);
            }
        }
    }

    /// A time as "vor 2 Stunden", the exact UTC time on hover and in `datetime`.
    fn time(&self, at: Option<NaiveDateTime>) -> Markup {
        match at {
            None => html! { span.muted { (self.t().never) } },
            Some(at) => html! {
                time datetime=(at.and_utc().to_rfc3339())
                    title=(at.format("%Y-%m-%d %H:%M:%S UTC").to_string()) {
                    (self.lang.ago(at, self.now))
                }
            },
        }
    }

    fn exact(&self, at: NaiveDateTime) -> Markup {
        html! {
            time datetime=(at.and_utc().to_rfc3339()) {
                (at.format("%Y-%m-%d %H:%M UTC").to_string())
            }
        }
    }

    /// The page around `body`.
    pub fn page(&self, title: &str, body: Markup) -> Markup {
        let t = self.t();
        html! {
            (DOCTYPE)
            html lang=(self.lang.code()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="color-scheme" content="light dark";
                    title { (title) " · " (t.console) }
                    link rel="icon" type="image/svg+xml" href="/console/favicon.svg";
                    link rel="stylesheet" href="/console/style.css";
                }
                body {
                    a.skip href="#main" { (t.skip_to_content) }
                    header.top {
                        p.brand { "calsync" }
                        @if let Some(session) = self.session {
                            nav aria-label=(t.nav_label) {
                                ul {
                                    li { a href="/console/services" aria-current=[(self.nav == Nav::Services).then_some("page")] { (t.services) } }
                                    li { a href="/console/accounts" aria-current=[(self.nav == Nav::Accounts).then_some("page")] { (t.accounts) } }
                                }
                            }
                            div.who {
                                span { (match session.role { Role::Admin => t.signed_in_admin, Role::Viewer => t.signed_in_viewer }) }
                                form method="post" action="/console/logout" {
                                    (self.csrf())
                                    button.link type="submit" { (t.log_out) }
                                }
                            }
                        }
                    }
                    main #main {
                        @if let Some(notice) = self.session.and_then(|s| s.notice.as_ref()) {
                            (notice_box(notice))
                        }
                        (body)
                    }
                }
            }
        }
    }
}

fn notice_box(notice: &Notice) -> Markup {
    let tone = match notice.tone {
        Tone::Success => "success",
        Tone::Warning => "warning",
        Tone::Error => "error",
    };
    html! {
        div class={ "notice " (tone) } role="status" {
            @for line in &notice.lines { p { (line) } }
        }
    }
}

/// The sync status badge of the platform's tooltip.
fn status_badge(t: &Text, status: SyncStatus) -> Markup {
    let (class, label) = match status {
        SyncStatus::Synced => ("success", t.status_synced),
        SyncStatus::Pending => ("warning", t.status_pending),
        SyncStatus::Error => ("error", t.status_error),
        SyncStatus::Never => ("gray", t.status_never),
    };
    html! { span class={ "badge " (class) } data-status=(status.as_str()) { (label) } }
}

/// Can be booked at all (active), and how (by phone; online when also visible).
fn bookable_badge(t: &Text, s: &crate::domain::Service) -> Markup {
    if s.values.is_active {
        html! { span.badge.success { (t.can_be_booked) } }
    } else {
        html! { span.badge.error { (t.cannot_be_booked) } }
    }
}

fn how_bookable(t: &Text, s: &crate::domain::Service) -> &'static str {
    match (s.values.is_active, s.values.is_online) {
        (true, true) => t.phone_and_online,
        (true, false) => t.phone_only,
        (false, _) => t.not_bookable_how,
    }
}

fn yes_no(t: &Text, v: bool) -> Markup {
    if v {
        html! { span.badge.success { (t.yes) } }
    } else {
        html! { span.badge.gray { (t.no) } }
    }
}

fn origin_label(t: &Text, o: Origin) -> &'static str {
    match o {
        Origin::CalcomEdit => t.origin_calcom_edit,
        Origin::Conflict => t.origin_conflict,
        Origin::Normalised => t.origin_normalised,
        Origin::PlatformEdit => t.origin_platform_edit,
    }
}

fn resolution_label(t: &Text, r: Resolution) -> &'static str {
    match r {
        Resolution::Agreed => t.resolution_agreed,
        Resolution::Repushed => t.resolution_repushed,
        Resolution::Superseded => t.resolution_superseded,
        Resolution::Overwritten => t.resolution_overwritten,
        Resolution::Orphaned => t.resolution_orphaned,
        Resolution::Adopted => t.resolution_adopted,
        Resolution::Ignored => t.resolution_ignored,
    }
}

/// The upload icon of the push button (decorative).
const UPLOAD_ICON: &str = r#"<svg class="icon" aria-hidden="true" focusable="false" viewBox="0 0 24 24" width="18" height="18"><path fill="currentColor" d="M11 16V7.8l-3.6 3.6L6 10l6-6 6 6-1.4 1.4L13 7.8V16h-2zm-6 4v-2h14v2H5z"/></svg>"#;

pub fn login(frame: &Frame<'_>, login_csrf: &str, problem: Option<&str>) -> Markup {
    let t = frame.t();
    frame.page(
        t.login_heading,
        html! {
            section.card.narrow {
                h1 { (t.login_heading) }
                p { (t.login_intro) }
                @if let Some(problem) = problem {
                    div.notice.error role="alert" { p { (problem) } }
                }
                form method="post" action="/console/login" {
                    input type="hidden" name="login_csrf" value=(login_csrf);
                    label for="token" { (t.token_label) }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button.primary type="submit" { (t.log_in) }
                }
            }
        },
    )
}

/// A page that only says something (not found, refused).
pub fn message(frame: &Frame<'_>, heading: &str, text: &str) -> Markup {
    let t = frame.t();
    frame.page(
        heading,
        html! {
            h1 { (heading) }
            p { (text) }
            @if frame.session.is_some() {
                p { a href="/console/services" { (t.back_to_services) } }
            }
        },
    )
}

/// The services listing's filters, as the form and the links keep them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub account: Option<String>,
    pub show: Option<ServiceShow>,
    pub search: String,
}

impl Filters {
    /// The value of `show` in URLs.
    pub fn show_word(show: ServiceShow) -> &'static str {
        match show {
            ServiceShow::Status(s) => s.as_str(),
            ServiceShow::Drifted => "drifted",
            ServiceShow::Orphaned => "orphaned",
            ServiceShow::Acknowledged => "acknowledged",
            ServiceShow::NeedsHuman => "needs_human",
        }
    }

    pub fn parse_show(word: &str) -> Option<ServiceShow> {
        match word {
            "drifted" => Some(ServiceShow::Drifted),
            "orphaned" => Some(ServiceShow::Orphaned),
            "acknowledged" => Some(ServiceShow::Acknowledged),
            "needs_human" => Some(ServiceShow::NeedsHuman),
            other => SyncStatus::parse(other).map(ServiceShow::Status),
        }
    }

    /// `/console/services?…` with these filters and an optional cursor.
    pub fn url(&self, cursor: Option<(&str, i64)>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(a) = &self.account {
            q.append_pair("account", a);
        }
        if let Some(s) = self.show {
            q.append_pair("show", Self::show_word(s));
        }
        if !self.search.is_empty() {
            q.append_pair("q", &self.search);
        }
        if let Some((k, v)) = cursor {
            q.append_pair(k, &v.to_string());
        }
        let q = q.finish();
        if q.is_empty() {
            "/console/services".into()
        } else {
            format!("/console/services?{q}")
        }
    }
}

/// One row of the listing.
pub struct Row<'a> {
    pub service: &'a LinkedService,
    pub open_drift: i64,
    /// When calsync last verified it (its account's last pass, or its own last
    /// metadata write); `last_calcom_sync` when it never was.
    pub last_verified: Option<NaiveDateTime>,
}

pub struct Listing<'a> {
    pub accounts: Vec<&'a str>,
    pub filters: &'a Filters,
    pub rows: Vec<Row<'a>>,
    pub total: i64,
    pub previous: Option<String>,
    pub next: Option<String>,
}

pub fn services(frame: &Frame<'_>, l: &Listing<'_>) -> Markup {
    let t = frame.t();
    let shows: [(Option<ServiceShow>, &str); 9] = [
        (None, t.show_all),
        (Some(ServiceShow::Status(SyncStatus::Synced)), t.show_synced),
        (
            Some(ServiceShow::Status(SyncStatus::Pending)),
            t.show_pending,
        ),
        (Some(ServiceShow::Status(SyncStatus::Error)), t.show_error),
        (Some(ServiceShow::Status(SyncStatus::Never)), t.show_never),
        (Some(ServiceShow::Drifted), t.show_drifted),
        (Some(ServiceShow::Acknowledged), t.show_acknowledged),
        (Some(ServiceShow::NeedsHuman), t.show_needs_human),
        (Some(ServiceShow::Orphaned), t.show_orphaned),
    ];
    frame.page(
        t.services,
        html! {
            h1 { (t.services) }
            form.filters method="get" action="/console/services" role="search" aria-label=(t.filter_heading) {
                div.field {
                    label for="account" { (t.account) }
                    select #account name="account" {
                        option value="" selected[l.filters.account.is_none()] { (t.all_accounts) }
                        @for a in &l.accounts {
                            option value=(a) selected[l.filters.account.as_deref() == Some(*a)] { (a) }
                        }
                    }
                }
                div.field {
                    label for="show" { (t.show) }
                    select #show name="show" {
                        @for (show, label) in shows {
                            option value=(show.map(Filters::show_word).unwrap_or("")) selected[l.filters.show == show] { (label) }
                        }
                    }
                }
                div.field.grow {
                    label for="q" { (t.search) }
                    input #q type="search" name="q" value=(l.filters.search) placeholder=(t.search_hint);
                }
                button.primary type="submit" { (t.apply_filters) }
            }
            p.summary { (frame.lang.showing(l.rows.len(), l.total)) }
            @if l.rows.is_empty() {
                p.empty { (t.no_services) }
            } @else {
                div.table-wrap {
                    table.services {
                        thead {
                            tr {
                                th scope="col" { (t.col_name) }
                                @if l.filters.account.is_none() { th scope="col" { (t.account) } }
                                th scope="col" { (t.col_duration) }
                                th scope="col" { (t.col_price) }
                                th scope="col" { (t.col_bookable) }
                                th scope="col" { (t.col_sync) }
                                th scope="col" { (t.col_verified) }
                                th scope="col" { (t.col_calcom_id) }
                            }
                        }
                        tbody {
                            @for row in &l.rows {
                                @let s = &row.service.service;
                                tr data-service-id=(s.id.0) {
                                    th scope="row" { a href={ "/console/services/" (s.id.0) } { (s.values.name) } }
                                    @if l.filters.account.is_none() {
                                        td { (row.service.registry.as_ref().map(|r| r.account.as_str()).unwrap_or("—")) }
                                    }
                                    td.num { (s.values.duration_minutes) " " (t.minutes) }
                                    td.num { (s.values.price) }
                                    td { (bookable_badge(t, s)) }
                                    td {
                                        (status_badge(t, s.sync_status))
                                        @if row.open_drift > 0 {
                                            " " span.badge.warning data-drift=(row.open_drift) { (t.open_drift_badge) " (" (row.open_drift) ")" }
                                        }
                                        @if row.service.registry.as_ref().is_some_and(|r| r.gone_at.is_some()) {
                                            " " span.badge.error { (t.orphaned_badge) }
                                        }
                                    }
                                    td { (frame.time(row.last_verified.or(s.last_calcom_sync))) }
                                    td { @match s.calcom_event_type_id { Some(id) => code { (id.0) }, None => span.muted { (t.not_linked) } } }
                                }
                            }
                        }
                    }
                }
            }
            @if l.previous.is_some() || l.next.is_some() {
                nav.pager aria-label=(t.pages_label) {
                    @if let Some(p) = &l.previous { a rel="prev" href=(p) { (t.previous_page) } }
                    @if let Some(n) = &l.next { a rel="next" href=(n) { (t.next_page) } }
                }
            }
        },
    )
}

pub struct ServiceView<'a> {
    pub linked: &'a LinkedService,
    pub account: Option<&'a str>,
    pub open: &'a [crate::domain::DriftEntry],
    pub history: &'a [DriftRecord],
    pub last_verified: Option<NaiveDateTime>,
}

pub fn service(frame: &Frame<'_>, v: &ServiceView<'_>) -> Markup {
    let t = frame.t();
    let s = &v.linked.service;
    let id = s.id.0;
    frame.page(
        &s.values.name,
        html! {
            p.crumbs { a href="/console/services" { (t.back_to_services) } }
            h1 { (s.values.name) }
            p.muted {
                (frame.lang.service_title(id))
                @if let Some(a) = v.account { " · " (t.account) " " (a) }
            }
            div.cards {
                section.card aria-labelledby="bookability" {
                    h2 #bookability { (t.bookability) }
                    p { (bookable_badge(t, s)) }
                    p { (how_bookable(t, s)) }
                }
                section.card aria-labelledby="sync" {
                    h2 #sync { (t.calcom_sync) }
                    p #sync-status { (status_badge(t, s.sync_status)) }
                    dl {
                        div { dt { (t.direction_label) } dd { (t.direction) } }
                        div { dt { (t.last_sync) } dd { (frame.time(v.last_verified.or(s.last_calcom_sync))) } }
                        div { dt { (t.event_type_id) } dd { @match s.calcom_event_type_id { Some(e) => code { (e.0) }, None => span.muted { (t.not_linked) } } } }
                        @if let Some(e) = &s.sync_error {
                            div { dt { (t.last_error) } dd.error-text { (e) } }
                        }
                    }
                }
                section.card aria-labelledby="settings" {
                    h2 #settings { (t.service_settings) }
                    dl {
                        div { dt { (t.active) } dd { (yes_no(t, s.values.is_active)) } }
                        div { dt { (t.online_visible) } dd { (yes_no(t, s.values.is_online)) } }
                    }
                }
            }
            div.actions {
                @if frame.admin() {
                    @if s.calcom_event_type_id.is_some() {
                        a.button.success #push href={ "/console/services/" (id) "/push" } {
                            (PreEscaped(UPLOAD_ICON)) " " (t.push_button)
                        }
                    }
                } @else {
                    p.muted { (t.read_only) }
                }
            }
            section aria-labelledby="drift" {
                h2 #drift { (t.open_drift) }
                @if v.open.is_empty() {
                    p { (t.no_open_drift) }
                } @else {
                    p { (t.open_drift_intro) }
                    div.table-wrap {
                        table.drift {
                            thead {
                                tr {
                                    th scope="col" { (t.field) }
                                    th scope="col" { (t.platform_value) }
                                    th scope="col" { (t.calcom_value) }
                                    th scope="col" { (t.baseline_value) }
                                    th scope="col" { (t.origin) }
                                    th scope="col" { (t.first_seen) }
                                    th scope="col" { (t.last_seen) }
                                    th scope="col" { (t.times_seen) }
                                    th scope="col" { (t.acknowledgement) }
                                    @if frame.admin() {
                                        th scope="col" { (t.decide) }
                                    }
                                }
                            }
                            tbody {
                                @for e in v.open { (drift_row(frame, id, e)) }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="history" {
                h2 #history { (t.history) }
                @if v.history.is_empty() {
                    p { (t.no_history) }
                } @else {
                    div.table-wrap {
                        table.history {
                            thead {
                                tr {
                                    th scope="col" { (t.field) }
                                    th scope="col" { (t.platform_value) }
                                    th scope="col" { (t.calcom_value) }
                                    th scope="col" { (t.baseline_value) }
                                    th scope="col" { (t.origin) }
                                    th scope="col" { (t.first_seen) }
                                    th scope="col" { (t.state) }
                                }
                            }
                            tbody {
                                @for r in v.history {
                                    @let e = &r.entry;
                                    tr {
                                        th scope="row" { code { (e.field.as_str()) } }
                                        td { (e.platform_value) }
                                        td { (e.calcom_value) }
                                        td { (e.baseline_value.as_deref().unwrap_or(t.no_baseline)) }
                                        td { (origin_label(t, e.origin)) }
                                        td { (frame.exact(e.first_seen_at)) }
                                        td {
                                            @match (r.resolution, r.resolved_at) {
                                                (Some(res), Some(at)) => { (resolution_label(t, res)) ", " (frame.exact(at)) },
                                                _ => span.badge.warning { (t.state_open) },
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One open drift entry: platform, Cal.com and baseline side by side, its
/// acknowledgement, and for admins the decisions (adopt and acknowledge, each
/// through a confirmation page; ending an acknowledgement is one CSRF form).
fn drift_row(frame: &Frame<'_>, id: i64, e: &crate::domain::DriftEntry) -> Markup {
    let t = frame.t();
    let field = e.field.as_str();
    let now = chrono::Utc::now().naive_utc();
    html! {
        tr data-field=(field) {
            th scope="row" { code { (field) } }
            td.platform { (e.platform_value) }
            td.calcom { (e.calcom_value) }
            td.baseline { (e.baseline_value.as_deref().unwrap_or(t.no_baseline)) }
            td { (origin_label(t, e.origin)) }
            td { (frame.time(Some(e.first_seen_at))) }
            td { (frame.time(Some(e.last_seen_at))) }
            td.num { (e.times_seen) "×" }
            td.ack {
                @match &e.acknowledged {
                    Some(a) if a.until > now => {
                        span.badge.gray { (t.acknowledged) } " "
                        (a.by) ", " (t.until) " " (frame.exact(a.until)) ": " (a.note)
                    },
                    Some(a) => span.muted { (t.ack_expired) " " (frame.exact(a.until)) },
                    None => span.muted { "—" },
                }
            }
            @if frame.admin() {
                td.decide {
                    a.button.secondary.small href={ "/console/services/" (id) "/drift/" (field) "/adopt" } { (t.adopt_button) }
                    " "
                    @if e.acknowledged_at(now) {
                        form.inline method="post" action={ "/console/services/" (id) "/drift/" (field) "/unacknowledge" } {
                            (frame.csrf())
                            button.secondary.small type="submit" { (t.unack_button) }
                        }
                    } @else {
                        a.button.secondary.small href={ "/console/services/" (id) "/drift/" (field) "/acknowledge" } { (t.ack_button) }
                    }
                }
            }
        }
    }
}

/// What a decision confirmation page is about.
pub enum Decide<'a> {
    Adopt {
        linked: &'a LinkedService,
        entry: &'a crate::domain::DriftEntry,
    },
    Acknowledge {
        linked: &'a LinkedService,
        entry: &'a crate::domain::DriftEntry,
    },
    Approve {
        account: &'a str,
        reason: Option<&'a str>,
    },
}

/// The confirmation of a decision: what it does, a note, and for an
/// acknowledgement how long.
pub fn confirm_decision(frame: &Frame<'_>, d: &Decide<'_>) -> Markup {
    let t = frame.t();
    let (heading, text, action, back, confirm) = match d {
        Decide::Adopt { linked, entry } => (
            t.adopt_heading,
            t.adopt_text,
            format!(
                "/console/services/{}/drift/{}/adopt",
                linked.service.id.0,
                entry.field.as_str()
            ),
            format!("/console/services/{}", linked.service.id.0),
            t.adopt_confirm,
        ),
        Decide::Acknowledge { linked, entry } => (
            t.ack_heading,
            t.ack_text,
            format!(
                "/console/services/{}/drift/{}/acknowledge",
                linked.service.id.0,
                entry.field.as_str()
            ),
            format!("/console/services/{}", linked.service.id.0),
            t.ack_confirm,
        ),
        Decide::Approve { account, .. } => (
            t.approve_heading,
            t.approve_text,
            format!("/console/accounts/{account}/approve"),
            "/console/accounts".to_owned(),
            t.approve_confirm,
        ),
    };
    frame.page(
        heading,
        html! {
            section.card.narrow.confirm aria-labelledby="confirm-heading" {
                h1 #confirm-heading { (heading) }
                p { (text) }
                @match d {
                    Decide::Adopt { linked, entry } | Decide::Acknowledge { linked, entry } => {
                        p { strong { (linked.service.values.name) } " · " code { (entry.field.as_str()) } }
                        dl {
                            div { dt { (t.platform_value) } dd.platform { (entry.platform_value) } }
                            div { dt { (t.calcom_value) } dd.calcom { (entry.calcom_value) } }
                        }
                    },
                    Decide::Approve { account, reason } => {
                        p { strong { (account) } }
                        @if let Some(r) = reason { p.error-text { (r) } }
                    },
                }
                form method="post" action=(action) {
                    (frame.csrf())
                    @if let Decide::Acknowledge { .. } = d {
                        div.field {
                            label for="for" { (t.ack_for) }
                            select #for name="for" {
                                option value="1d" { (t.ack_one_day) }
                                option value="7d" selected { (t.ack_one_week) }
                                option value="30d" { (t.ack_one_month) }
                            }
                        }
                    }
                    div.field {
                        label for="note" { (t.note) }
                        input #note type="text" name="note" maxlength="500"
                            required[matches!(d, Decide::Acknowledge { .. })];
                    }
                    div.buttons {
                        button.success #confirm type="submit" { (confirm) }
                        a.button.secondary href=(back) { (t.cancel) }
                    }
                }
            }
        },
    )
}

pub fn confirm_push(frame: &Frame<'_>, linked: &LinkedService) -> Markup {
    let t = frame.t();
    let s = &linked.service;
    frame.page(
        t.push_heading,
        html! {
            section.card.narrow.confirm aria-labelledby="confirm-heading" {
                h1 #confirm-heading { (t.push_heading) }
                p { (t.push_text) }
                p {
                    strong { (s.values.name) }
                    @if let Some(e) = s.calcom_event_type_id { " · " (t.event_type_id) " " code { (e.0) } }
                }
                form method="post" action={ "/console/services/" (s.id.0) "/push" } {
                    (frame.csrf())
                    div.buttons {
                        button.success #confirm type="submit" { (PreEscaped(UPLOAD_ICON)) " " (t.push_confirm) }
                        a.button.secondary href={ "/console/services/" (s.id.0) } { (t.cancel) }
                    }
                }
            }
        },
    )
}

/// One account's card on the accounts page.
pub struct AccountView<'a> {
    pub name: &'a str,
    pub company_id: i64,
    pub last: Option<&'a StoredRun>,
    pub last_failure: Option<&'a StoredRun>,
    pub budget: CalcomBudget,
    pub statuses: Vec<(SyncStatus, i64)>,
}

fn result_badge(t: &Text, result: &str) -> Markup {
    let (class, label) = match result {
        "success" => ("success", t.result_success),
        "partial" => ("warning", t.result_partial),
        "held" => ("warning", t.result_held),
        _ => ("error", t.result_failure),
    };
    html! { span class={ "badge " (class) } { (label) } }
}

fn duration(run: &StoredRun) -> String {
    let ms = (run.finished_at - run.started_at).num_milliseconds().max(0);
    if ms < 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} s", ms / 1000)
    }
}

pub fn accounts(frame: &Frame<'_>, accounts: &[AccountView<'_>]) -> Markup {
    let t = frame.t();
    let counts = |run: &StoredRun| -> Vec<(&'static str, i64)> {
        [
            ("event_types", t.count_event_types),
            ("in_sync", t.count_in_sync),
            ("imports", t.count_imports),
            ("pushes", t.count_pushes),
            ("drifted", t.count_drifted),
            ("orphans", t.count_orphans),
            ("unreadable", t.count_unreadable),
        ]
        .into_iter()
        .filter_map(|(key, label)| run.summary.get(key)?.as_i64().map(|n| (label, n)))
        .collect()
    };
    frame.page(
        t.accounts,
        html! {
            h1 { (t.accounts) }
            p { (t.accounts_intro) }
            div.cards.accounts {
                @for a in accounts {
                    section.card data-account=(a.name) aria-labelledby={ "account-" (a.name) } {
                        h2 id={ "account-" (a.name) } { (a.name) }
                        dl {
                            div { dt { (t.company) } dd { (a.company_id) } }
                            div {
                                dt { (t.last_pass) }
                                dd {
                                    @match a.last {
                                        Some(run) => {
                                            (result_badge(t, &run.result)) " "
                                            (frame.time(Some(run.finished_at)))
                                            ", " (t.duration) " " (duration(run))
                                        },
                                        None => span.muted { (t.no_pass_yet) },
                                    }
                                }
                            }
                            @if let Some(run) = a.last {
                                @let c = counts(run);
                                @if !c.is_empty() {
                                    div {
                                        dt { (t.counts) }
                                        dd { ul.inline { @for (label, n) in c { li { (n) " " (label) } } } }
                                    }
                                }
                            }
                            div {
                                dt { (t.last_failure) }
                                dd {
                                    @match a.last_failure {
                                        Some(run) => {
                                            (frame.time(Some(run.finished_at))) ": "
                                            span.error-text { (run.error.as_deref().unwrap_or("")) }
                                        },
                                        None => span.muted { (t.no_failure) },
                                    }
                                }
                            }
                            div {
                                dt { (t.rate_limit_remaining) }
                                dd {
                                    @match a.budget.remaining {
                                        Some(n) => { (n) },
                                        None => span.muted { (t.rate_limit_unknown) },
                                    }
                                }
                            }
                            div { dt { (t.rate_limited_requests) } dd { (a.budget.rate_limited) } }
                            div {
                                dt { (t.services_by_status) }
                                dd {
                                    ul.inline {
                                        @for (status, n) in &a.statuses {
                                            li { (status_badge(t, *status)) " " (n) }
                                        }
                                    }
                                }
                            }
                            @if let Some(run) = a.last.filter(|r| r.result == "held") {
                                div.held {
                                    dt { (t.held) }
                                    dd {
                                        span.error-text { (run.error.as_deref().unwrap_or("")) }
                                        @if frame.admin() {
                                            " "
                                            a.button.success.small href={ "/console/accounts/" (a.name) "/approve" } { (t.approve_button) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
