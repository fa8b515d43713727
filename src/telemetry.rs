//! Logging: `tracing` to stderr, text for people or JSON for shippers (`log.format`), and the
//! capture layer that ships warnings, errors and business events as log records once `serve`,
//! `api` or `worker` installs it.

use service::config::{LogFormat, LogSettings};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// `RUST_LOG` wins over `log.level` when set.
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(service::telemetry::capture::CaptureLayer);
    let result = match settings.format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    if result.is_err() {
        eprintln!("logging was already initialised");
    }
}
