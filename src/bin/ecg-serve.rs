//! `ecg-serve`: the HTTP service. Parses flags (each with an env var), sets up
//! logging, logs the effective configuration, serves until SIGTERM / SIGINT.
//! `ecg-serve --probe-ready` checks a running server instead (container health
//! check); `ecg-serve analyze PATH... --out DIR` analyses records on disk.

use clap::Parser;
use ecg_serve::server::config::{Command, Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc keeps freed pages for reuse: each request allocates and frees tens of
/// MB (signal, filtered copy, windows), which glibc's malloc hands back to the OS
/// and page-faults in again every time (decoding record 100: 19.1 ms with glibc,
/// 8.0 ms with mimalloc; `cargo bench --bench pipeline`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if config.probe_ready {
        match ecg_serve::server::probe_ready(&config.local_addr()) {
            Ok(()) => std::process::exit(0),
            Err(why) => {
                eprintln!("not ready: {why}");
                std::process::exit(1)
            }
        }
    }
    // A batch run shows its progress bar; the log says only what went wrong.
    let level = if config.command.is_some() {
        "warn"
    } else {
        "info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    if let Some(Command::Analyze(args)) = &config.command {
        match ecg_serve::batch::run(&config, args).await {
            Ok(outcome) => {
                let (ok, skipped, failed) = (
                    outcome.count("ok"),
                    outcome.count("skipped"),
                    outcome.count("failed"),
                );
                let analysed = ok + failed;
                eprintln!(
                    "{} records: {ok} analysed, {skipped} kept from an earlier run, {failed} failed; {:.1} s ({:.2} records/s); summary: {}",
                    outcome.rows.len(),
                    outcome.seconds,
                    analysed as f64 / outcome.seconds.max(1e-9),
                    outcome.summary.display()
                );
                let code = if failed > 0 && !args.tolerate_failures {
                    1
                } else {
                    0
                };
                std::process::exit(code);
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(2);
            }
        }
    }
    tracing::info!(config = %serde_json::to_string(&config)?, api_key = config.api_key.is_some(), "effective configuration");
    if let Err(e) =
        ecg_serve::server::serve(config, ecg_serve::server::shutdown_signal(), |_| {}).await
    {
        // A start-up failure (port taken, CUDA asked for and unavailable): one clear line.
        tracing::error!("{e:#}");
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}
