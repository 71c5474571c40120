//! calsync's entry point: parse the command line, load the configuration, set up
//! logging, run the command, and turn errors into exit codes (0 ok, 1 `plan`
//! found changes, 2 failure). Errors are printed with their context and never
//! with a secret.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use calsync::app::{self, App, exit};
use calsync::cli::{Cli, Command};
use calsync::config::{self, Config, Settings};
use calsync::telemetry::logging::{self, Console, LogGuard};
use calsync::telemetry::metrics::Metrics;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let json = wants_json(&cli.command);
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            if json {
                // Scripts that asked for JSON get the failure as JSON on stdout too.
                println!(
                    "{}",
                    serde_json::json!({
                        "schema_version": calsync::reconcile::report::SCHEMA_VERSION,
                        "error": { "message": format!("{e:#}") },
                    })
                );
            }
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// Whether the command was asked for JSON output.
fn wants_json(command: &Command) -> bool {
    use calsync::cli::Format;
    match command {
        Command::Drift {
            action: Some(action),
            ..
        } => action.format() == Format::Json,
        Command::Once { format, .. }
        | Command::Plan { format, .. }
        | Command::Drift { format, .. }
        | Command::Approve { format, .. }
        | Command::Push { format, .. } => *format == Format::Json,
        _ => false,
    }
}

struct Loaded {
    config: Config,
    path: PathBuf,
}

fn load(cli: &Cli) -> anyhow::Result<Loaded> {
    let explicit = cli.config.is_some() || std::env::var_os("CALSYNC_CONFIG").is_some();
    let path = config::config_path(cli.config.as_deref());
    let config = Config::load(&path, explicit)?;
    for warning in config.file_warnings(&path) {
        eprintln!("warning: {warning}");
    }
    Ok(Loaded { config, path })
}

fn settings(cli: &Cli, need_accounts: bool) -> anyhow::Result<(Settings, PathBuf)> {
    let loaded = load(cli)?;
    let settings = loaded.config.validate()?;
    if need_accounts {
        require_accounts(&settings, &loaded.path)?;
    }
    Ok((settings, loaded.path))
}

/// At least one account, and when there is none because there is no file at
/// the default path, an error that says so.
fn require_accounts(settings: &Settings, path: &std::path::Path) -> anyhow::Result<()> {
    if settings.accounts.is_empty() && !path.exists() {
        anyhow::bail!(
            "no configuration file at {} (the default); pass --config PATH or set CALSYNC_CONFIG, or create it from config/calsync.example.toml",
            path.display()
        );
    }
    settings.require_accounts()?;
    Ok(())
}

fn logs(settings: &Settings, console: Console) -> anyhow::Result<LogGuard> {
    logging::init(
        settings.log_format,
        &settings.log_level,
        console,
        settings.log_directory.as_deref(),
        settings.log_max_files,
    )
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::CheckConfig { connect } => {
            let loaded = load(&cli)?;
            let settings = loaded.config.validate()?;
            require_accounts(&settings, &loaded.path)?;
            println!(
                "# effective configuration ({}; secrets redacted)",
                loaded.path.display()
            );
            print!("{}", loaded.config.redacted_toml());
            println!(
                "\n# effective field ownership per account ([sync.ownership], the account's ownership, sync.allow_calcom_overwrites)"
            );
            for line in settings.ownership_lines() {
                println!("# {line}");
            }
            eprintln!(
                "configuration is valid: {} account(s), schedule {:?}",
                settings.accounts.len(),
                settings.schedule
            );
            if *connect {
                return Ok(if app::check_connections(&settings).await {
                    exit::OK
                } else {
                    exit::FAILURE
                });
            }
            Ok(exit::OK)
        }
        Command::Migrate => {
            let (settings, _) = settings(&cli, false)?;
            let _guard = logs(&settings, Console::Stderr)?;
            let store = app::connect(&settings).await?;
            let report = store.migrate().await?;
            println!("{report}");
            Ok(exit::OK)
        }
        Command::Once {
            accounts,
            dry_run,
            format,
        } => {
            let (settings, _) = settings(&cli, true)?;
            let _guard = logs(&settings, Console::Stderr)?;
            let app = App::open(settings, Arc::new(Metrics::new())).await?;
            let pass = app.pass_printed(accounts, *dry_run, *format).await?;
            Ok(if pass.has_failures {
                exit::FAILURE
            } else {
                exit::OK
            })
        }
        Command::Plan { accounts, format } => {
            let (settings, _) = settings(&cli, true)?;
            let _guard = logs(&settings, Console::Stderr)?;
            let app = App::open(settings, Arc::new(Metrics::new())).await?;
            let pass = app.pass_printed(accounts, true, *format).await?;
            Ok(if pass.failed_account {
                exit::FAILURE
            } else if pass.has_changes {
                exit::CHANGES
            } else {
                exit::OK
            })
        }
        Command::Drift {
            action: Some(action),
            ..
        } => {
            let (settings, _) = settings(&cli, true)?;
            let _guard = logs(&settings, Console::Stderr)?;
            let app = App::open(settings, Arc::new(Metrics::new())).await?;
            app::decide_drift(&app, action).await
        }
        Command::Approve {
            account,
            note,
            by,
            format,
        } => {
            let (settings, _) = settings(&cli, true)?;
            let _guard = logs(&settings, Console::Stderr)?;
            let app = App::open(settings, Arc::new(Metrics::new())).await?;
            app::approve(&app, account, note.clone(), by.clone(), *format).await
        }
        Command::Drift {
            action: None,
            account,
            state,
            format,
        } => {
            let (settings, _) = settings(&cli, false)?;
            let _guard = logs(&settings, Console::Stderr)?;
            if let Some(name) = account
                && !settings.accounts.iter().any(|a| &a.name == name)
            {
                let known: Vec<&str> = settings.accounts.iter().map(|a| a.name.as_str()).collect();
                anyhow::bail!(
                    "--account {name:?}: no such account in the configuration (configured: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            }
            let store = app::connect(&settings).await?;
            app::print_drift(&store, account.as_deref(), (*state).into(), *format).await?;
            Ok(exit::OK)
        }
        Command::Push { service, format } => {
            let (settings, _) = settings(&cli, true)?;
            let _guard = logs(&settings, Console::Stderr)?;
            let app = App::open(settings, Arc::new(Metrics::new())).await?;
            app::push(&app, *service, *format).await
        }
        Command::Run => {
            let (settings, path) = settings(&cli, true)?;
            let guard = logs(&settings, Console::Stdout)?;
            // SIGTERM and SIGINT stop the daemon; registered before it serves, so
            // a signal that arrives once it answers is never the default action.
            let stop = tokio_util::sync::CancellationToken::new();
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let mut int =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            {
                let stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    stop.cancel();
                });
            }
            calsync::daemon::run(
                settings,
                path,
                cli.config.is_some(),
                guard,
                calsync::http::serve,
                stop,
            )
            .await
        }
        Command::Simulate(args) => {
            let token = tokio_util::sync::CancellationToken::new();
            let stop = token.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                stop.cancel();
            });
            calsync::simulate::run(args.clone(), token).await?;
            Ok(exit::OK)
        }
        Command::Demo => calsync::demo::run().await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "calsync", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Manpage => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
            Ok(exit::OK)
        }
    }
}
