//! Every word the console shows, in German and English. A string is a field of
//! [`Text`], so a string missing in one language does not compile. The German
//! strings of the platform's old status tooltip are kept verbatim.
//!
//! The language is `console.language`, or with `auto` the first of German and
//! English in the browser's `Accept-Language` (English when it names neither).

use chrono::NaiveDateTime;

use crate::config::ConsoleLanguage;

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    De,
    En,
}

impl Lang {
    /// The configured language, or the browser's choice with `auto`.
    pub fn choose(configured: ConsoleLanguage, accept_language: Option<&str>) -> Lang {
        match configured {
            ConsoleLanguage::German => Lang::De,
            ConsoleLanguage::English => Lang::En,
            ConsoleLanguage::Auto => accept_language.map_or(Lang::En, negotiate),
        }
    }

    /// The `lang` attribute of the page.
    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::De => &DE,
            Lang::En => &EN,
        }
    }

    /// "vor 2 Stunden" / "2 hours ago" for `then`, seen at `now`.
    pub fn ago(self, then: NaiveDateTime, now: NaiveDateTime) -> String {
        let secs = (now - then).num_seconds();
        if secs < 0 {
            // Clocks of two replicas may differ a little.
            return self.text().just_now.to_owned();
        }
        let (n, unit) = match secs {
            0..=59 => return self.text().just_now.to_owned(),
            60..=3599 => (secs / 60, Unit::Minute),
            3600..=86_399 => (secs / 3600, Unit::Hour),
            _ => (secs / 86_400, Unit::Day),
        };
        let one = n == 1;
        match self {
            Lang::De => {
                let word = match (unit, one) {
                    (Unit::Minute, true) => "Minute",
                    (Unit::Minute, false) => "Minuten",
                    (Unit::Hour, true) => "Stunde",
                    (Unit::Hour, false) => "Stunden",
                    (Unit::Day, true) => "Tag",
                    (Unit::Day, false) => "Tagen",
                };
                format!("vor {n} {word}")
            }
            Lang::En => {
                let word = match (unit, one) {
                    (Unit::Minute, true) => "minute",
                    (Unit::Minute, false) => "minutes",
                    (Unit::Hour, true) => "hour",
                    (Unit::Hour, false) => "hours",
                    (Unit::Day, true) => "day",
                    (Unit::Day, false) => "days",
                };
                format!("{n} {word} ago")
            }
        }
    }

    /// "3 von 120 Services" / "3 of 120 services".
    pub fn showing(self, shown: usize, total: i64) -> String {
        match self {
            Lang::De => format!("{shown} von {total} Services"),
            Lang::En => format!("{shown} of {total} services"),
        }
    }

    /// The push outcome for price differences Cal.com API v2 cannot take.
    pub fn price_in_calcom(self, platform: &str, calcom: &str) -> String {
        match self {
            Lang::De => format!(
                "Der Preis unterscheidet sich (Platform {platform}, Cal.com {calcom}) und muss in Cal.com geändert werden (Event-Typ → Apps → Stripe)."
            ),
            Lang::En => format!(
                "The price differs (platform {platform}, Cal.com {calcom}) and must be changed in Cal.com (event type → Apps → Stripe)."
            ),
        }
    }

    /// "Gesendet: name, duration_minutes" / "Sent: …".
    pub fn sent_fields(self, fields: &str) -> String {
        match self {
            Lang::De => format!("Gesendet: {fields}."),
            Lang::En => format!("Sent: {fields}."),
        }
    }

    /// A refused push, with the reason (Cal.com's answer when it refused).
    pub fn refused(self, reason: &str) -> String {
        match self {
            Lang::De => format!("Abgelehnt: {reason}"),
            Lang::En => format!("Refused: {reason}"),
        }
    }

    /// "Service 17" in the page title.
    pub fn service_title(self, id: i64) -> String {
        format!("Service {id}")
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Minute,
    Hour,
    Day,
}

/// The first of `de` and `en` in an `Accept-Language` header, by weight then
/// order; English when neither is named.
fn negotiate(header: &str) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|v| v.parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        let lang = match tag.split('-').next() {
            Some("de") => Lang::De,
            Some("en") => Lang::En,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::En, |(_, l)| l)
}

/// Every fixed string of the console, once per language.
pub struct Text {
    pub console: &'static str,
    pub skip_to_content: &'static str,
    pub nav_label: &'static str,
    pub services: &'static str,
    pub accounts: &'static str,
    pub log_out: &'static str,
    pub signed_in_admin: &'static str,
    pub signed_in_viewer: &'static str,

    pub login_heading: &'static str,
    pub login_intro: &'static str,
    pub token_label: &'static str,
    pub log_in: &'static str,
    pub login_failed: &'static str,
    pub login_expired: &'static str,
    pub logged_out: &'static str,

    pub filter_heading: &'static str,
    pub account: &'static str,
    pub all_accounts: &'static str,
    pub show: &'static str,
    pub show_all: &'static str,
    pub show_synced: &'static str,
    pub show_pending: &'static str,
    pub show_error: &'static str,
    pub show_never: &'static str,
    pub show_drifted: &'static str,
    pub show_orphaned: &'static str,
    pub search: &'static str,
    pub search_hint: &'static str,
    pub apply_filters: &'static str,
    pub no_services: &'static str,
    pub previous_page: &'static str,
    pub next_page: &'static str,
    pub pages_label: &'static str,

    pub col_name: &'static str,
    pub col_duration: &'static str,
    pub col_price: &'static str,
    pub col_bookable: &'static str,
    pub col_sync: &'static str,
    pub col_verified: &'static str,
    pub col_calcom_id: &'static str,
    pub minutes: &'static str,
    pub never: &'static str,
    pub just_now: &'static str,
    pub open_drift_badge: &'static str,
    pub orphaned_badge: &'static str,

    pub bookability: &'static str,
    pub can_be_booked: &'static str,
    pub cannot_be_booked: &'static str,
    pub phone_and_online: &'static str,
    pub phone_only: &'static str,
    pub not_bookable_how: &'static str,

    pub calcom_sync: &'static str,
    pub status_synced: &'static str,
    pub status_pending: &'static str,
    pub status_error: &'static str,
    pub status_never: &'static str,
    pub direction_label: &'static str,
    pub direction: &'static str,
    pub last_sync: &'static str,
    pub event_type_id: &'static str,
    pub not_linked: &'static str,
    pub last_error: &'static str,

    pub service_settings: &'static str,
    pub active: &'static str,
    pub online_visible: &'static str,
    pub yes: &'static str,
    pub no: &'static str,

    pub open_drift: &'static str,
    pub open_drift_intro: &'static str,
    pub no_open_drift: &'static str,
    pub field: &'static str,
    pub platform_value: &'static str,
    pub calcom_value: &'static str,
    pub baseline_value: &'static str,
    pub no_baseline: &'static str,
    pub origin: &'static str,
    pub origin_calcom_edit: &'static str,
    pub origin_conflict: &'static str,
    pub origin_normalised: &'static str,
    pub origin_platform_edit: &'static str,
    pub first_seen: &'static str,
    pub last_seen: &'static str,
    pub times_seen: &'static str,
    pub history: &'static str,
    pub no_history: &'static str,
    pub state: &'static str,
    pub state_open: &'static str,
    pub resolution_agreed: &'static str,
    pub resolution_repushed: &'static str,
    pub resolution_superseded: &'static str,
    pub resolution_overwritten: &'static str,
    pub resolution_orphaned: &'static str,
    pub resolution_adopted: &'static str,
    pub resolution_ignored: &'static str,

    pub push_button: &'static str,
    pub push_heading: &'static str,
    pub push_text: &'static str,
    pub push_confirm: &'static str,
    pub cancel: &'static str,
    pub pushed: &'static str,
    pub already_equal: &'static str,
    pub edited_meanwhile: &'static str,
    pub read_only: &'static str,
    pub back_to_services: &'static str,
    pub service_missing: &'static str,

    pub accounts_intro: &'static str,
    pub company: &'static str,
    pub last_pass: &'static str,
    pub no_pass_yet: &'static str,
    pub result_success: &'static str,
    pub result_partial: &'static str,
    pub show_acknowledged: &'static str,
    pub show_needs_human: &'static str,
    pub acknowledgement: &'static str,
    pub decide: &'static str,
    pub acknowledged: &'static str,
    pub until: &'static str,
    pub ack_expired: &'static str,
    pub adopt_button: &'static str,
    pub ack_button: &'static str,
    pub unack_button: &'static str,
    pub adopt_heading: &'static str,
    pub adopt_text: &'static str,
    pub adopt_confirm: &'static str,
    pub ack_heading: &'static str,
    pub ack_text: &'static str,
    pub ack_confirm: &'static str,
    pub ack_for: &'static str,
    pub ack_one_day: &'static str,
    pub ack_one_week: &'static str,
    pub ack_one_month: &'static str,
    pub note: &'static str,
    pub approve_heading: &'static str,
    pub approve_text: &'static str,
    pub approve_confirm: &'static str,
    pub approve_button: &'static str,
    pub result_held: &'static str,
    pub held: &'static str,
    pub adopted_notice: &'static str,
    pub acknowledged_notice: &'static str,
    pub unacknowledged_notice: &'static str,
    pub approved_notice: &'static str,
    pub result_failure: &'static str,
    pub duration: &'static str,
    pub counts: &'static str,
    pub count_event_types: &'static str,
    pub count_in_sync: &'static str,
    pub count_imports: &'static str,
    pub count_pushes: &'static str,
    pub count_drifted: &'static str,
    pub count_orphans: &'static str,
    pub count_unreadable: &'static str,
    pub last_failure: &'static str,
    pub no_failure: &'static str,
    pub rate_limit_remaining: &'static str,
    pub rate_limit_unknown: &'static str,
    pub rate_limited_requests: &'static str,
    pub services_by_status: &'static str,

    pub database_unavailable: &'static str,
    pub not_found: &'static str,
    pub forbidden_viewer: &'static str,
    pub csrf_refused: &'static str,
}

pub const DE: Text = Text {
    console: "calsync-Konsole",
    skip_to_content: "Zum Inhalt springen",
    nav_label: "Hauptnavigation",
    services: "Services",
    accounts: "Konten",
    log_out: "Abmelden",
    signed_in_admin: "Angemeldet als Administrator",
    signed_in_viewer: "Angemeldet mit Lesezugriff",

    login_heading: "Anmelden",
    login_intro: "Melden Sie sich mit dem Admin-Token (server.admin_token) oder dem Lese-Token (server.viewer_token) an.",
    token_label: "Token",
    log_in: "Anmelden",
    login_failed: "Dieses Token ist nicht gültig.",
    login_expired: "Das Anmeldeformular ist abgelaufen. Bitte erneut versuchen.",
    logged_out: "Sie wurden abgemeldet.",

    filter_heading: "Filter",
    account: "Konto",
    all_accounts: "Alle Konten",
    show: "Anzeigen",
    show_all: "Alle",
    show_synced: "Synchronisiert",
    show_pending: "Wartet auf Sync",
    show_error: "Sync-Fehler",
    show_never: "Noch nie synchronisiert",
    show_drifted: "Abweichungen in Cal.com",
    show_orphaned: "Event-Typ gelöscht",
    search: "Suche",
    search_hint: "Name, Service-ID oder Cal.com-ID",
    apply_filters: "Filtern",
    no_services: "Keine Services entsprechen diesen Filtern.",
    previous_page: "← Vorherige Seite",
    next_page: "Nächste Seite →",
    pages_label: "Seiten",

    col_name: "Name",
    col_duration: "Dauer",
    col_price: "Preis",
    col_bookable: "Buchbar",
    col_sync: "Sync-Status",
    col_verified: "Zuletzt geprüft",
    col_calcom_id: "Cal.com-ID",
    minutes: "Min.",
    never: "nie",
    just_now: "gerade eben",
    open_drift_badge: "Abweichung",
    orphaned_badge: "Event-Typ gelöscht",

    bookability: "Buchbarkeit",
    can_be_booked: "✅ KANN GEBUCHT WERDEN",
    cannot_be_booked: "❌ KANN NICHT GEBUCHT WERDEN",
    phone_and_online: "📞 Telefonisch + 🌐 Online buchbar",
    phone_only: "📞 Nur telefonisch buchbar",
    not_bookable_how: "Weder telefonisch noch online buchbar",

    calcom_sync: "Cal.com Synchronisation",
    status_synced: "✓ Synchronisiert",
    status_pending: "⏳ Wartet auf Sync",
    status_error: "❌ Sync-Fehler",
    status_never: "⚪ Noch nie synchronisiert",
    direction_label: "Richtung",
    direction: "Ihre Platform → Cal.com ✅",
    last_sync: "Letzte Synchronisierung",
    event_type_id: "Cal.com Event-Typ",
    not_linked: "nicht verknüpft",
    last_error: "Letzter Fehler",

    service_settings: "Service-Einstellungen",
    active: "Aktiv",
    online_visible: "Online sichtbar",
    yes: "Ja",
    no: "Nein",

    open_drift: "Offene Abweichungen",
    open_drift_intro: "Werte, die in Cal.com anders sind als in der Platform. Die Platform-Werte gelten; die Cal.com-Werte sind hier festgehalten.",
    no_open_drift: "Keine offenen Abweichungen: Cal.com stimmt mit der Platform überein.",
    field: "Feld",
    platform_value: "Platform",
    calcom_value: "Cal.com",
    baseline_value: "Zuletzt übereinstimmend",
    no_baseline: "—",
    origin: "Ursprung",
    origin_calcom_edit: "In Cal.com geändert",
    origin_conflict: "Auf beiden Seiten geändert",
    origin_normalised: "Von Cal.com angepasst",
    origin_platform_edit: "In der Platform geändert (Cal.com führt das Feld)",
    first_seen: "Zuerst gesehen",
    last_seen: "Zuletzt gesehen",
    times_seen: "Gesehen",
    history: "Verlauf der Abweichungen",
    no_history: "Für diesen Service wurde noch keine Abweichung festgehalten.",
    state: "Stand",
    state_open: "offen",
    resolution_agreed: "wieder übereinstimmend",
    resolution_repushed: "Platform-Wert erneut gesendet",
    resolution_superseded: "ersetzt",
    resolution_overwritten: "Cal.com-Wert übernommen",
    resolution_orphaned: "Event-Typ gelöscht",
    resolution_adopted: "Cal.com-Wert übernommen (Entscheidung)",
    resolution_ignored: "Feld wird ignoriert",

    push_button: "→ Zu Cal.com syncen",
    push_heading: "Service zu Cal.com synchronisieren",
    push_text: "Ihre Platform-Daten werden zu Cal.com gesendet. Dies überschreibt die Cal.com-Daten mit Ihren aktuellen Einstellungen.",
    push_confirm: "Jetzt synchronisieren",
    cancel: "Abbrechen",
    pushed: "Dienstleistung mit Cal.com synchronisiert",
    already_equal: "Cal.com hat bereits die Werte der Platform; es war nichts zu senden.",
    edited_meanwhile: "Die Platform hat den Service währenddessen geändert: Er wartet weiter auf Sync, und der nächste Lauf sendet die neueren Werte.",
    read_only: "Lesezugriff: Änderungen sind mit diesem Token nicht möglich.",
    back_to_services: "← Zurück zu den Services",
    service_missing: "Diesen Service gibt es nicht.",

    accounts_intro: "Der letzte Lauf je Konto aus dem Lauf-Journal, der letzte Fehler und das Anfragebudget bei Cal.com.",
    company: "Firma",
    last_pass: "Letzter Lauf",
    no_pass_yet: "Noch kein Lauf",
    result_success: "✓ Erfolgreich",
    result_partial: "⚠ Teilweise",
    show_acknowledged: "Mit bestätigter Abweichung",
    show_needs_human: "Push braucht einen Menschen",
    acknowledgement: "Bestätigung",
    decide: "Entscheiden",
    acknowledged: "Bestätigt",
    until: "bis",
    ack_expired: "Bestätigung abgelaufen am",
    adopt_button: "Cal.com-Wert übernehmen",
    ack_button: "Bestätigen",
    unack_button: "Bestätigung beenden",
    adopt_heading: "Cal.com-Wert in die Platform übernehmen",
    adopt_text: "Der Cal.com-Wert dieses Feldes wird in Ihre Platform-Daten übernommen und ersetzt den Platform-Wert. Der bisherige Wert bleibt im Verlauf. Hat sich eine Seite seit der Aufzeichnung geändert, wird nichts übernommen.",
    adopt_confirm: "Übernehmen",
    ack_heading: "Abweichung bestätigen",
    ack_text: "Die Abweichung bleibt offen und sichtbar, löst aber bis zum gewählten Zeitpunkt keinen Drift-Alarm aus. Ändert sich der Cal.com-Wert erneut, gilt das als neue Änderung.",
    ack_confirm: "Bestätigen",
    ack_for: "Für",
    ack_one_day: "1 Tag",
    ack_one_week: "7 Tage",
    ack_one_month: "30 Tage",
    note: "Begründung",
    approve_heading: "Gesperrtes Konto freigeben",
    approve_text: "Der nächste Abgleich dieses Kontos darf einmal mehr Dienstleistungen verwaisen oder mit Cal.com-Werten überschreiben, als der Schutz erlaubt. Prüfen Sie vorher in Cal.com, ob die Änderung gewollt ist.",
    approve_confirm: "Freigeben",
    approve_button: "Freigeben",
    result_held: "⏸ Angehalten",
    held: "Angehalten vom Schutz",
    adopted_notice: "Cal.com-Wert übernommen",
    acknowledged_notice: "Abweichung bestätigt",
    unacknowledged_notice: "Bestätigung beendet",
    approved_notice: "Konto freigegeben: der nächste Abgleich läuft einmal durch",
    result_failure: "❌ Fehlgeschlagen",
    duration: "Dauer",
    counts: "Zahlen",
    count_event_types: "Event-Typen",
    count_in_sync: "übereinstimmend",
    count_imports: "importiert",
    count_pushes: "gesendet",
    count_drifted: "mit Abweichung",
    count_orphans: "Event-Typ gelöscht",
    count_unreadable: "unlesbar",
    last_failure: "Letzter Fehler",
    no_failure: "Kein Fehler im Journal",
    rate_limit_remaining: "Verbleibende Anfragen im Fenster",
    rate_limit_unknown: "noch keine Antwort von Cal.com",
    rate_limited_requests: "Abgewiesene Anfragen (429) seit dem Start",
    services_by_status: "Services nach Status",

    database_unavailable: "Die Datenbank ist noch nicht verbunden. Bitte gleich erneut versuchen.",
    not_found: "Diese Seite gibt es nicht.",
    forbidden_viewer: "Mit dem Lese-Token sind keine Änderungen möglich.",
    csrf_refused: "Die Anfrage wurde abgelehnt, weil ihr das Formular-Token fehlt oder es nicht passt. Laden Sie die Seite neu und versuchen Sie es erneut.",
};

pub const EN: Text = Text {
    console: "calsync console",
    skip_to_content: "Skip to content",
    nav_label: "Main navigation",
    services: "Services",
    accounts: "Accounts",
    log_out: "Log out",
    signed_in_admin: "Signed in as administrator",
    signed_in_viewer: "Signed in read-only",

    login_heading: "Log in",
    login_intro: "Log in with the admin token (server.admin_token) or the read-only token (server.viewer_token).",
    token_label: "Token",
    log_in: "Log in",
    login_failed: "This token is not valid.",
    login_expired: "The login form expired. Please try again.",
    logged_out: "You have been logged out.",

    filter_heading: "Filters",
    account: "Account",
    all_accounts: "All accounts",
    show: "Show",
    show_all: "All",
    show_synced: "Synced",
    show_pending: "Waiting for sync",
    show_error: "Sync error",
    show_never: "Never synced",
    show_drifted: "Differs in Cal.com",
    show_orphaned: "Event type deleted",
    search: "Search",
    search_hint: "Name, service id or Cal.com id",
    apply_filters: "Filter",
    no_services: "No services match these filters.",
    previous_page: "← Previous page",
    next_page: "Next page →",
    pages_label: "Pages",

    col_name: "Name",
    col_duration: "Duration",
    col_price: "Price",
    col_bookable: "Bookable",
    col_sync: "Sync status",
    col_verified: "Last verified",
    col_calcom_id: "Cal.com id",
    minutes: "min",
    never: "never",
    just_now: "just now",
    open_drift_badge: "Differs",
    orphaned_badge: "Event type deleted",

    bookability: "Bookability",
    can_be_booked: "✅ CAN BE BOOKED",
    cannot_be_booked: "❌ CANNOT BE BOOKED",
    phone_and_online: "📞 By phone + 🌐 bookable online",
    phone_only: "📞 By phone only",
    not_bookable_how: "Neither by phone nor online",

    calcom_sync: "Cal.com synchronisation",
    status_synced: "✓ Synced",
    status_pending: "⏳ Waiting for sync",
    status_error: "❌ Sync error",
    status_never: "⚪ Never synced",
    direction_label: "Direction",
    direction: "Your platform → Cal.com ✅",
    last_sync: "Last synchronised",
    event_type_id: "Cal.com event type",
    not_linked: "not linked",
    last_error: "Last error",

    service_settings: "Service settings",
    active: "Active",
    online_visible: "Visible online",
    yes: "Yes",
    no: "No",

    open_drift: "Open differences",
    open_drift_intro: "Values that differ in Cal.com from the platform. The platform values are in force; the Cal.com values are kept here.",
    no_open_drift: "No open differences: Cal.com agrees with the platform.",
    field: "Field",
    platform_value: "Platform",
    calcom_value: "Cal.com",
    baseline_value: "Last agreed",
    no_baseline: "—",
    origin: "Origin",
    origin_calcom_edit: "Edited in Cal.com",
    origin_conflict: "Changed on both sides",
    origin_normalised: "Adjusted by Cal.com",
    origin_platform_edit: "Edited in the platform (Cal.com owns the field)",
    first_seen: "First seen",
    last_seen: "Last seen",
    times_seen: "Seen",
    history: "History of differences",
    no_history: "No difference has been recorded for this service yet.",
    state: "State",
    state_open: "open",
    resolution_agreed: "agree again",
    resolution_repushed: "platform value pushed again",
    resolution_superseded: "superseded",
    resolution_overwritten: "Cal.com value taken over",
    resolution_orphaned: "event type deleted",
    resolution_adopted: "Cal.com value adopted (decision)",
    resolution_ignored: "field ignored",

    push_button: "→ Sync to Cal.com",
    push_heading: "Synchronise service to Cal.com",
    push_text: "Your platform data is sent to Cal.com. This overwrites the Cal.com data with your current settings.",
    push_confirm: "Synchronise now",
    cancel: "Cancel",
    pushed: "Service synchronised with Cal.com",
    already_equal: "Cal.com already has the platform's values; there was nothing to send.",
    edited_meanwhile: "The platform changed the service meanwhile: it keeps waiting for sync, and the next pass sends the newer values.",
    read_only: "Read-only access: this token cannot change anything.",
    back_to_services: "← Back to services",
    service_missing: "This service does not exist.",

    accounts_intro: "Each account's last pass from the run journal, its last failure, and its Cal.com request budget.",
    company: "Company",
    last_pass: "Last pass",
    no_pass_yet: "No pass yet",
    result_success: "✓ Success",
    result_partial: "⚠ Partial",
    show_acknowledged: "With acknowledged drift",
    show_needs_human: "Push needs a human",
    acknowledgement: "Acknowledgement",
    decide: "Decide",
    acknowledged: "Acknowledged",
    until: "until",
    ack_expired: "Acknowledgement expired",
    adopt_button: "Adopt Cal.com value",
    ack_button: "Acknowledge",
    unack_button: "End acknowledgement",
    adopt_heading: "Take the Cal.com value into the platform",
    adopt_text: "The Cal.com value of this field is taken into your platform data and replaces the platform value. The old value stays in the history. If either side changed since the entry was recorded, nothing is taken.",
    adopt_confirm: "Adopt",
    ack_heading: "Acknowledge the drift",
    ack_text: "The drift stays open and visible but raises no drift alert until the chosen time. If the Cal.com value changes again, that is a new edit.",
    ack_confirm: "Acknowledge",
    ack_for: "For",
    ack_one_day: "1 day",
    ack_one_week: "7 days",
    ack_one_month: "30 days",
    note: "Reason",
    approve_heading: "Approve the held account",
    approve_text: "The next pass of this account may, once, orphan or overwrite more services than the guard allows. Check in Cal.com first that the change is intended.",
    approve_confirm: "Approve",
    approve_button: "Approve",
    result_held: "⏸ Held",
    held: "Held by the guard",
    adopted_notice: "Cal.com value adopted",
    acknowledged_notice: "Drift acknowledged",
    unacknowledged_notice: "Acknowledgement ended",
    approved_notice: "Account approved: its next pass goes through once",
    result_failure: "❌ Failed",
    duration: "Duration",
    counts: "Counts",
    count_event_types: "event types",
    count_in_sync: "in sync",
    count_imports: "imported",
    count_pushes: "pushed",
    count_drifted: "differing",
    count_orphans: "event type deleted",
    count_unreadable: "unreadable",
    last_failure: "Last failure",
    no_failure: "No failure in the journal",
    rate_limit_remaining: "Requests left in the window",
    rate_limit_unknown: "no answer from Cal.com yet",
    rate_limited_requests: "Refused requests (429) since start",
    services_by_status: "Services by status",

    database_unavailable: "The database is not connected yet. Please try again shortly.",
    not_found: "There is no such page.",
    forbidden_viewer: "The read-only token cannot change anything.",
    csrf_refused: "The request was refused because its form token is missing or does not match. Reload the page and try again.",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .naive_utc()
    }

    #[test]
    fn accept_language_picks_german_or_english_by_weight() {
        let pick = |h| Lang::choose(ConsoleLanguage::Auto, Some(h));
        assert_eq!(pick("de-DE,de;q=0.9,en;q=0.8"), Lang::De);
        assert_eq!(pick("en-US,en;q=0.9,de;q=0.8"), Lang::En);
        assert_eq!(pick("fr-FR,de;q=0.5,en;q=0.4"), Lang::De);
        assert_eq!(pick("en;q=0.2,de;q=0.7"), Lang::De);
        assert_eq!(pick("fr"), Lang::En);
        assert_eq!(pick("de;q=0"), Lang::En);
        assert_eq!(Lang::choose(ConsoleLanguage::Auto, None), Lang::En);
    }

    #[test]
    fn the_configured_language_wins_over_the_browser() {
        assert_eq!(
            Lang::choose(ConsoleLanguage::German, Some("en-US")),
            Lang::De
        );
        assert_eq!(Lang::choose(ConsoleLanguage::English, Some("de")), Lang::En);
    }

    #[test]
    fn relative_times_read_like_the_platform_tooltip() {
        let now = at(1_000_000);
        assert_eq!(Lang::De.ago(at(1_000_000 - 7200), now), "vor 2 Stunden");
        assert_eq!(Lang::De.ago(at(1_000_000 - 3600), now), "vor 1 Stunde");
        assert_eq!(Lang::De.ago(at(1_000_000 - 300), now), "vor 5 Minuten");
        assert_eq!(Lang::De.ago(at(1_000_000 - 3 * 86_400), now), "vor 3 Tagen");
        assert_eq!(Lang::De.ago(at(1_000_000 - 10), now), "gerade eben");
        assert_eq!(Lang::En.ago(at(1_000_000 - 7200), now), "2 hours ago");
        assert_eq!(Lang::En.ago(at(1_000_000 - 60), now), "1 minute ago");
        assert_eq!(Lang::En.ago(at(1_000_000 + 5), now), "just now");
    }

    #[test]
    fn the_tooltip_strings_are_kept_verbatim() {
        assert_eq!(DE.push_button, "→ Zu Cal.com syncen");
        assert_eq!(DE.push_heading, "Service zu Cal.com synchronisieren");
        assert_eq!(
            DE.push_text,
            "Ihre Platform-Daten werden zu Cal.com gesendet. Dies überschreibt die Cal.com-Daten mit Ihren aktuellen Einstellungen."
        );
        assert_eq!(DE.pushed, "Dienstleistung mit Cal.com synchronisiert");
        assert_eq!(DE.direction, "Ihre Platform → Cal.com ✅");
        assert_eq!(DE.phone_and_online, "📞 Telefonisch + 🌐 Online buchbar");
        for s in [
            DE.status_synced,
            DE.status_pending,
            DE.status_error,
            DE.status_never,
        ] {
            assert!(
                [
                    "✓ Synchronisiert",
                    "⏳ Wartet auf Sync",
                    "❌ Sync-Fehler",
                    "⚪ Noch nie synchronisiert"
                ]
                .contains(&s)
            );
        }
    }
}
