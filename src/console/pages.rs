//! Each console page: read what it shows from the daemon and the store, hand it
//! to [`super::views`]. Actions (the push) run through the daemon's typed
//! operations, the same as the JSON operator API's.

use std::collections::HashMap;

use maud::Markup;

use super::i18n::Lang;
use super::session::{Notice, Tone};
use super::views::{self, AccountView, Filters, Frame, Listing, Row, ServiceView};
use crate::daemon::{Daemon, DecideRefused, PushRefused};
use crate::domain::{Field, ServiceId, SyncStatus};
use crate::reconcile::ManualPush;
use crate::store::{AccountRef, PageAt, ServiceQuery, ServiceSearch, Store, StoreError};

/// Services per page of the listing.
pub const PAGE_SIZE: i64 = 50;

/// Why a page could not be shown.
#[derive(Debug)]
pub enum Unavailable {
    /// Not connected yet, or a query failed (the message names it).
    Database(String),
    NotFound,
}

impl From<StoreError> for Unavailable {
    fn from(e: StoreError) -> Self {
        Unavailable::Database(e.to_string())
    }
}

fn store(daemon: &Daemon) -> Result<&Store, Unavailable> {
    daemon
        .store()
        .ok_or_else(|| Unavailable::Database("the database is not connected yet".into()))
}

/// `GET /console/services?account=&show=&q=&after=|before=`.
pub async fn services(
    frame: &Frame<'_>,
    daemon: &Daemon,
    query: &HashMap<String, String>,
) -> Result<Markup, Unavailable> {
    let settings = daemon.settings();
    let account = query.get("account").and_then(|name| settings.account(name));
    let filters = Filters {
        account: account.map(|a| a.name.clone()),
        show: query.get("show").and_then(|w| Filters::parse_show(w)),
        search: query
            .get("q")
            .map(|q| q.trim().to_owned())
            .unwrap_or_default(),
    };
    let cursor = |key: &str| query.get(key).and_then(|v| v.parse::<i64>().ok());
    let at = match (cursor("after"), cursor("before")) {
        (Some(id), _) => PageAt::After(ServiceId(id)),
        (None, Some(id)) => PageAt::Before(ServiceId(id)),
        (None, None) => PageAt::First,
    };
    let page = store(daemon)?
        .services_listing(&ServiceQuery {
            account: account.map(|a| AccountRef {
                name: &a.name,
                company_id: a.company_id,
            }),
            show: filters.show,
            search: ServiceSearch::new(&filters.search),
            at,
            limit: PAGE_SIZE,
        })
        .await?;
    let ids: Vec<ServiceId> = page.services.iter().map(|(s, _)| s.service.id).collect();
    let verified = store(daemon)?.last_verified(&ids).await?;
    let first = page.services.first().map(|(s, _)| s.service.id.0);
    let last = page.services.last().map(|(s, _)| s.service.id.0);
    let listing = Listing {
        accounts: settings.accounts.iter().map(|a| a.name.as_str()).collect(),
        filters: &filters,
        rows: page
            .services
            .iter()
            .map(|(service, open_drift)| Row {
                service,
                open_drift: *open_drift,
                last_verified: verified.get(&service.service.id).copied(),
            })
            .collect(),
        total: page.total,
        previous: page
            .has_previous
            .then(|| first.map(|id| filters.url(Some(("before", id)))))
            .flatten(),
        next: page
            .has_next
            .then(|| last.map(|id| filters.url(Some(("after", id)))))
            .flatten(),
    };
    Ok(views::services(frame, &listing))
}

/// `GET /console/services/{id}`.
pub async fn service(
    frame: &Frame<'_>,
    daemon: &Daemon,
    id: ServiceId,
) -> Result<Markup, Unavailable> {
    let store = store(daemon)?;
    let linked = store.service(id).await?.ok_or(Unavailable::NotFound)?;
    let open = store.drift_for_service(id).await?;
    let mut history = store.drift_history(id).await?;
    // Newest first: what happened last is what an operator looks for.
    history.reverse();
    let settings = daemon.settings();
    let account = linked
        .registry
        .as_ref()
        .map(|r| r.account.clone())
        .or_else(|| {
            settings
                .accounts
                .iter()
                .find(|a| a.company_id == linked.service.company_id)
                .map(|a| a.name.clone())
        });
    Ok(views::service(
        frame,
        &ServiceView {
            linked: &linked,
            account: account.as_deref(),
            open: &open,
            history: &history,
            last_verified: store.last_verified(&[id]).await?.get(&id).copied(),
        },
    ))
}

/// `GET /console/services/{id}/push`: the confirmation.
pub async fn confirm_push(
    frame: &Frame<'_>,
    daemon: &Daemon,
    id: ServiceId,
) -> Result<Markup, Unavailable> {
    let linked = store(daemon)?
        .service(id)
        .await?
        .ok_or(Unavailable::NotFound)?;
    Ok(views::confirm_push(frame, &linked))
}

/// `POST /console/services/{id}/push`: pushes, and says how it went.
pub async fn push(daemon: &Daemon, lang: Lang, id: ServiceId) -> Notice {
    push_notice(lang, daemon.push(id).await)
}

/// The notice for a push's outcome: pushed, already equal, a price that must be
/// changed in Cal.com, edited meanwhile, or refused with the reason.
pub fn push_notice(lang: Lang, outcome: Result<ManualPush, PushRefused>) -> Notice {
    let t = lang.text();
    match outcome {
        Ok(done) => {
            let mut lines = Vec::new();
            let mut tone = Tone::Success;
            if !done.pushed.is_empty() {
                lines.push(t.pushed.to_owned());
                let fields: Vec<&str> = done.pushed.iter().map(|f| f.as_str()).collect();
                lines.push(lang.sent_fields(&fields.join(", ")));
            } else if done.not_pushable.is_empty() {
                lines.push(t.already_equal.to_owned());
            }
            for d in &done.not_pushable {
                tone = Tone::Warning;
                lines.push(lang.price_in_calcom(&d.platform, &d.calcom));
            }
            if done.edited_meanwhile {
                tone = Tone::Warning;
                lines.push(t.edited_meanwhile.to_owned());
            }
            Notice { tone, lines }
        }
        Err(e) => Notice {
            tone: Tone::Error,
            lines: vec![lang.refused(&e.to_string())],
        },
    }
}

/// `GET /console/services/{id}/drift/{field}/adopt|acknowledge`: the
/// confirmation, for an open entry of that field.
pub async fn confirm_decision(
    frame: &Frame<'_>,
    daemon: &Daemon,
    id: ServiceId,
    field: Field,
    adopt: bool,
) -> Result<Markup, Unavailable> {
    let store = store(daemon)?;
    let linked = store.service(id).await?.ok_or(Unavailable::NotFound)?;
    let open = store.drift_for_service(id).await?;
    let entry = open
        .iter()
        .find(|e| e.field == field)
        .ok_or(Unavailable::NotFound)?;
    let d = if adopt {
        views::Decide::Adopt {
            linked: &linked,
            entry,
        }
    } else {
        views::Decide::Acknowledge {
            linked: &linked,
            entry,
        }
    };
    Ok(views::confirm_decision(frame, &d))
}

/// `GET /console/accounts/{name}/approve`: the confirmation, with why the
/// account is held (when it is).
pub async fn confirm_approve(
    frame: &Frame<'_>,
    daemon: &Daemon,
    account: &str,
) -> Result<Markup, Unavailable> {
    if daemon.settings().account(account).is_none() {
        return Err(Unavailable::NotFound);
    }
    let last = store(daemon)?.latest_runs(false).await?;
    let reason = last
        .iter()
        .find(|r| r.account == account && r.result == "held")
        .and_then(|r| r.error.clone());
    Ok(views::confirm_decision(
        frame,
        &views::Decide::Approve {
            account,
            reason: reason.as_deref(),
        },
    ))
}

/// Who the console records as the decider of what an admin session decides.
const BY_CONSOLE: &str = "console";

/// A form's note, when it holds one.
fn note(form: &HashMap<String, String>) -> Option<String> {
    form.get("note")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
}

/// `POST …/drift/{field}/adopt|acknowledge|unacknowledge`: the decision, and
/// how it went.
pub async fn decide(
    daemon: &Daemon,
    lang: Lang,
    id: ServiceId,
    field: Field,
    action: &str,
    form: &HashMap<String, String>,
) -> Notice {
    let t = lang.text();
    let fields = [field];
    let by = BY_CONSOLE;
    let (outcome, done) = match action {
        "adopt" => (
            daemon.adopt(id, &fields, note(form), by).await,
            t.adopted_notice,
        ),
        "acknowledge" => {
            let days = match form.get("for").map(String::as_str) {
                Some("1d") => 1,
                Some("30d") => 30,
                _ => 7,
            };
            let until = chrono::Utc::now().naive_utc() + chrono::Duration::days(days);
            (
                daemon.acknowledge(id, &fields, until, note(form), by).await,
                t.acknowledged_notice,
            )
        }
        _ => (
            daemon.unacknowledge(id, &fields, note(form), by).await,
            t.unacknowledged_notice,
        ),
    };
    decision_notice(lang, outcome.map(|_| ()), done)
}

/// `POST /console/accounts/{name}/approve`.
pub async fn approve(
    daemon: &Daemon,
    lang: Lang,
    account: &str,
    form: &HashMap<String, String>,
) -> Notice {
    let outcome = daemon
        .approve(account, note(form), BY_CONSOLE)
        .await
        .map(|_| ());
    decision_notice(lang, outcome, lang.text().approved_notice)
}

fn decision_notice(lang: Lang, outcome: Result<(), DecideRefused>, done: &str) -> Notice {
    match outcome {
        Ok(()) => Notice {
            tone: Tone::Success,
            lines: vec![done.to_owned()],
        },
        Err(e) => Notice {
            tone: Tone::Error,
            lines: vec![lang.refused(&e.to_string())],
        },
    }
}

/// `GET /console/accounts`.
pub async fn accounts(frame: &Frame<'_>, daemon: &Daemon) -> Result<Markup, Unavailable> {
    let settings = daemon.settings();
    let store = store(daemon)?;
    let last = store.latest_runs(false).await?;
    let failures = store.latest_runs(true).await?;
    let companies: Vec<i64> = settings.accounts.iter().map(|a| a.company_id).collect();
    let counts = store.status_counts(&companies).await?;
    let views: Vec<AccountView<'_>> = settings
        .accounts
        .iter()
        .map(|a| AccountView {
            name: &a.name,
            company_id: a.company_id,
            last: last.iter().find(|r| r.account == a.name),
            last_failure: failures.iter().find(|r| r.account == a.name),
            budget: daemon.metrics().calcom_budget(&a.name),
            statuses: SyncStatus::ALL
                .into_iter()
                .map(|s| {
                    let n = counts
                        .iter()
                        .filter(|(c, st, _)| *c == a.company_id && *st == s)
                        .map(|(_, _, n)| n)
                        .sum();
                    (s, n)
                })
                .collect(),
        })
        .collect();
    Ok(views::accounts(frame, &views))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Field, FieldDiff};
    use crate::reconcile::ManualPushError;

    fn done(pushed: Vec<Field>, not_pushable: Vec<FieldDiff>) -> ManualPush {
        ManualPush {
            service_id: ServiceId(1),
            account: "berlin".into(),
            pushed,
            not_pushable,
            marked_synced: true,
            edited_meanwhile: false,
        }
    }

    #[test]
    fn a_push_says_pushed_in_the_platform_s_words() {
        let n = push_notice(Lang::De, Ok(done(vec![Field::DurationMinutes], vec![])));
        assert_eq!(n.tone, Tone::Success);
        assert_eq!(n.lines[0], "Dienstleistung mit Cal.com synchronisiert");
        assert!(n.lines[1].contains("duration_minutes"));
        let n = push_notice(Lang::En, Ok(done(vec![Field::Name], vec![])));
        assert_eq!(n.lines[0], "Service synchronised with Cal.com");
    }

    #[test]
    fn a_push_of_equal_values_a_price_and_a_refusal_each_say_so() {
        let n = push_notice(Lang::En, Ok(done(vec![], vec![])));
        assert_eq!(n.tone, Tone::Success);
        assert!(n.lines[0].contains("nothing to send"));

        let price = FieldDiff {
            field: Field::Price,
            platform: "25.00 EUR".into(),
            calcom: "30.00 EUR".into(),
            baseline: None,
            change: None,
        };
        let n = push_notice(Lang::De, Ok(done(vec![], vec![price])));
        assert_eq!(n.tone, Tone::Warning);
        assert!(n.lines[0].contains("in Cal.com geändert werden"), "{n:?}");

        let n = push_notice(
            Lang::En,
            Err(PushRefused::Push(ManualPushError::Push(
                "Cal.com answered 400: lengthInMinutes must be positive".into(),
            ))),
        );
        assert_eq!(n.tone, Tone::Error);
        assert!(n.lines[0].starts_with("Refused: push failed: Cal.com answered 400"));
    }
}
