//! Tracing setup: text or JSON lines on stdout (journald) or stderr (one-shot
//! commands whose stdout is a report), plus an optional daily rolling file.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::config::LogFormat;

/// Where console lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    Stdout,
    Stderr,
}

/// Keeps the file writer flushing; drop it last.
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`; an
/// unusable one is an error naming the variable.
pub fn init(
    format: LogFormat,
    level: &str,
    console: Console,
    directory: Option<&Path>,
    max_files: usize,
) -> anyhow::Result<LogGuard> {
    let spec = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            if let Some(problem) = crate::config::log_filter_problem(&v) {
                anyhow::bail!("RUST_LOG {problem}; unset it to use log.level");
            }
            v
        }
        _ => level.to_owned(),
    };
    // Whatever the filter says about other targets, operator-visible events at
    // WARN and above (PROTECTION, OVERWRITE, ORPHANED, failures) and every ERROR
    // reach the log.
    let filter = || -> anyhow::Result<_> {
        let user = EnvFilter::try_new(&spec)?;
        let always = Targets::new()
            .with_target("calsync::telemetry::events", LevelFilter::WARN)
            .with_default(LevelFilter::ERROR);
        Ok(user.or(always))
    };
    let writer = match console {
        Console::Stdout => BoxMakeWriter::new(std::io::stdout),
        Console::Stderr => BoxMakeWriter::new(std::io::stderr),
    };
    let console_layer = match format {
        LogFormat::Json => fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .with_filter(filter()?)
            .boxed(),
        LogFormat::Text => fmt::layer()
            .with_writer(writer)
            .with_ansi(false)
            .with_filter(filter()?)
            .boxed(),
    };
    let (file_layer, guard) = match directory {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("log.directory {}: {}", dir.display(), e))?;
            let appender = Builder::new()
                .rotation(Rotation::DAILY)
                .filename_prefix("calsync")
                .filename_suffix("log")
                .max_log_files(max_files)
                .build(dir)
                .map_err(|e| anyhow::anyhow!("log.directory {}: {}", dir.display(), e))?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = match format {
                LogFormat::Json => fmt::layer()
                    .json()
                    .with_writer(writer)
                    .with_filter(filter()?)
                    .boxed(),
                LogFormat::Text => fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer)
                    .with_filter(filter()?)
                    .boxed(),
            };
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let layers: Vec<_> = std::iter::once(console_layer).chain(file_layer).collect();
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(LogGuard { _file: guard })
}
