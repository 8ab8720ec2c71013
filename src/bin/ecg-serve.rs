//! `ecg-serve`: the HTTP service. Parses flags (each with an env var), sets up
//! logging, logs the effective configuration, serves until SIGTERM / SIGINT.

use clap::Parser;
use ecg_serve::server::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    tracing::info!(config = %serde_json::to_string(&config)?, api_key = config.api_key.is_some(), "effective configuration");
    ecg_serve::server::serve(config, ecg_serve::server::shutdown_signal(), |_| {}).await
}
