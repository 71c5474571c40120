//! `calsync demo`: a self-contained tour that needs nothing but the binary. It
//! starts the Cal.com simulator on loopback, uses a temporary SQLite database, and
//! walks through the scenarios calsync exists for, narrating each step.

use std::sync::Arc;

use anyhow::{Context, ensure};
use serde_json::json;

use crate::app::{App, exit};
use crate::config::Config;
use crate::domain::{Field, ServiceId, SyncStatus};
use crate::reconcile::PassReport;
use crate::simulate::{SimConfig, Simulator};
use crate::store::Store;
use crate::telemetry::logging::{self, Console};
use crate::telemetry::metrics::Metrics;

const KEY: &str = "cal_demo_0123456789abcdef";

fn say(text: &str) {
    println!("{text}");
}

fn step(n: u32, title: &str) {
    println!(
        "\n── {n}. {title} {}",
        "─".repeat(60usize.saturating_sub(title.len()))
    );
}

pub async fn run() -> anyhow::Result<u8> {
    let _guard = logging::init(
        crate::config::LogFormat::Text,
        "calsync=warn",
        Console::Stdout,
        None,
        1,
    )?;
    let dir = std::env::temp_dir().join(format!("calsync-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = tour(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| exit::OK)
}

async fn tour(dir: &std::path::Path) -> anyhow::Result<()> {
    let sim = Simulator::start(
        "127.0.0.1:0".parse()?,
        SimConfig {
            api_keys: vec![KEY.into()],
            ..SimConfig::default()
        },
    )
    .await
    .context("cannot start the Cal.com simulator on loopback")?;
    let db = dir.join("demo.db");
    let toml = format!(
        r#"
        [database]
        url = "sqlite://{}?mode=rwc"
        [calcom]
        base_url = "{}"
        [[accounts]]
        name = "demo"
        company_id = 1
        api_key = "{KEY}"
        "#,
        db.display(),
        sim.base_url()
    );
    let settings = Config::from_toml(&toml)?.validate()?;

    say("calsync demo: the platform's services are the source of truth; Cal.com mirrors them.");
    say(&format!(
        "Using a temporary SQLite database and a Cal.com API v2 simulator at {}.",
        sim.base_url()
    ));

    for (title, slug, length, price) in [
        ("Haircut", "haircut", 30, 0),
        ("Deep-tissue massage", "deep-tissue", 60, 9000),
        ("Colour consultation", "colour", 15, 0),
    ] {
        let mut fields =
            json!({"title": title, "slug": slug, "lengthInMinutes": length, "description": ""});
        if price > 0 {
            fields["price"] = json!(price);
            fields["currency"] = json!("eur");
            fields["metadata"] =
                json!({"apps": {"stripe": {"enabled": true, "price": price, "currency": "eur"}}});
        }
        sim.create_event_type(KEY, fields);
    }

    let store = Store::connect(&format!("sqlite://{}?mode=rwc", db.display()), 2).await?;
    store.migrate().await?;
    let app = App::with_store(settings, store.clone(), Arc::new(Metrics::new())).await?;

    step(1, "New event types in Cal.com are imported");
    let report = app.pass(&[], false).await?;
    summary(&report);
    ensure!(report.accounts[0].imported == 3, "expected 3 imports");
    services(&store).await?;

    step(2, "A platform edit is pushed to Cal.com");
    let haircut = find(&store, "Haircut").await?;
    say(&format!(
        "The platform renames service {} to \"Haircut & styling\" and marks it pending (sync_status='pending').",
        haircut.0
    ));
    store
        .edit_as_platform(haircut, Some("Haircut & styling"), None)
        .await?;
    let report = app.pass(&[], false).await?;
    summary(&report);
    let et = event_type_of(&store, &sim, haircut).await?;
    say(&format!(
        "Cal.com now shows title {:?}.",
        et["title"].as_str().unwrap_or_default()
    ));
    ensure!(
        et["title"] == "Haircut & styling",
        "the push did not reach Cal.com"
    );

    step(
        3,
        "An edit in Cal.com's UI is PROTECTED and recorded, not applied",
    );
    let massage = find(&store, "Deep-tissue massage").await?;
    let massage_et = store
        .service(massage)
        .await?
        .and_then(|l| l.service.calcom_event_type_id)
        .context("massage is not linked")?;
    say(&format!(
        "Someone opens event type {} in Cal.com and changes its length 60 → 45 minutes and its price 90.00 → 80.00 EUR.",
        massage_et.0
    ));
    sim.edit_event_type(
        massage_et.0,
        json!({"lengthInMinutes": 45, "price": 8000,
               "metadata": {"apps": {"stripe": {"enabled": true, "price": 8000, "currency": "eur"}}}}),
    );
    let report = app.pass(&[], false).await?;
    summary(&report);
    let s = store
        .service(massage)
        .await?
        .context("massage vanished")?
        .service;
    say(&format!(
        "The platform still says {} minutes and {} (sync_status={}); the log line above starts with PROTECTION.",
        s.values.duration_minutes, s.values.price, s.sync_status
    ));
    ensure!(
        s.values.duration_minutes == 60,
        "a Cal.com edit reached the platform"
    );
    say("The Cal.com-side edit is kept in the drift ledger (`calsync drift`):");
    ledger(&store).await?;

    step(4, "Another new event type appears in Cal.com");
    sim.create_event_type(
        KEY,
        json!({"title": "Beard trim", "slug": "beard", "lengthInMinutes": 20}),
    );
    let report = app.pass(&[], false).await?;
    summary(&report);
    ensure!(report.accounts[0].imported == 1, "expected one import");

    step(5, "Re-push repairs Cal.com (`calsync push --service ID`)");
    let done = app
        .reconciler
        .push_service(&app.settings.accounts, app.settings.policy, massage)
        .await
        .context("the re-push failed")?;
    let fields: Vec<&str> = done.pushed.iter().map(|f| f.as_str()).collect();
    say(&format!(
        "Pushed {} for service {}.",
        fields.join(", "),
        massage.0
    ));
    let et = sim
        .event_type(massage_et.0)
        .context("event type vanished")?;
    say(&format!(
        "Cal.com's length is back to {} minutes.",
        et["lengthInMinutes"]
    ));
    ensure!(
        et["lengthInMinutes"] == 60,
        "the re-push did not reach Cal.com"
    );
    for d in &done.not_pushable {
        say(&format!(
            "The {} still differs (platform {}, Cal.com {}): Cal.com API v2 has no price input, so it stays in the ledger until someone changes it in Cal.com.",
            d.field, d.platform, d.calcom
        ));
    }
    ensure!(
        done.not_pushable.iter().any(|d| d.field == Field::Price),
        "price drift should remain"
    );
    ledger(&store).await?;

    say(
        "\nDone. Every Cal.com edit was either pushed over or kept in the ledger; no platform value was overwritten.",
    );
    sim.shutdown().await;
    Ok(())
}

fn summary(report: &PassReport) {
    for line in report.to_text().lines() {
        println!("   {line}");
    }
}

async fn services(store: &Store) -> anyhow::Result<()> {
    for l in store.services_page(0, 100).await? {
        let s = l.service;
        println!(
            "   service {:>2}  {:<22} {:>3} min  {:>12}  event type {:>4}  {}",
            s.id.0,
            s.values.name,
            s.values.duration_minutes,
            s.values.price.to_string(),
            s.calcom_event_type_id.map(|i| i.0).unwrap_or_default(),
            s.sync_status
        );
    }
    Ok(())
}

async fn ledger(store: &Store) -> anyhow::Result<()> {
    let open = store.open_drift(None).await?;
    if open.is_empty() {
        println!("   (no open drift)");
    }
    for e in open {
        println!(
            "   service {:>2}  {:<16} platform {:<12} Cal.com {:<12} seen {}×",
            e.service_id.0,
            e.field.as_str(),
            e.platform_value,
            e.calcom_value,
            e.times_seen
        );
    }
    Ok(())
}

async fn find(store: &Store, name: &str) -> anyhow::Result<ServiceId> {
    store
        .services_page(0, 100)
        .await?
        .into_iter()
        .find(|l| l.service.values.name == name)
        .map(|l| l.service.id)
        .with_context(|| format!("no service named {name:?}"))
}

async fn event_type_of(
    store: &Store,
    sim: &Simulator,
    id: ServiceId,
) -> anyhow::Result<serde_json::Value> {
    let s = store
        .service(id)
        .await?
        .context("service vanished")?
        .service;
    ensure!(
        s.sync_status == SyncStatus::Synced,
        "service {} is {}",
        id.0,
        s.sync_status
    );
    let et = s.calcom_event_type_id.context("not linked")?;
    sim.event_type(et.0).context("event type vanished")
}
