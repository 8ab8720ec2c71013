//! `ecg-eval`: measure the signal library against a WFDB database.
//!
//! `ecg-eval qrs --db ../shared/data/mitdb` runs the R-peak detector on every
//! record and prints the bxb-style table (Se and +P per record and pooled).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc keeps freed pages for reuse: each request allocates and frees tens of
/// MB (signal, filtered copy, windows), which glibc's malloc hands back to the OS
/// and page-faults in again every time (decoding record 100: 19.1 ms with glibc,
/// 8.0 ms with mimalloc; `cargo bench --bench pipeline`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Measure ecg-serve's signal library against annotated databases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score the R-peak detector against reference beat annotations (WFDB bxb rules).
    Qrs {
        /// Folder of WFDB records (.hea, .dat, .atr).
        #[arg(long, env = "ECG_DB", default_value = "../shared/data/mitdb")]
        db: PathBuf,
        /// Records to score (default: every .hea in the folder).
        #[arg(long, value_delimiter = ',')]
        records: Vec<String>,
        /// Match window in seconds (bxb: 0.15).
        #[arg(long, default_value_t = 0.15)]
        window_s: f64,
        /// Start scoring at this time in seconds (bxb's default is 300; 0 scores whole records).
        #[arg(long, default_value_t = 0.0)]
        start_s: f64,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Qrs {
            db,
            records,
            window_s,
            start_s,
            json,
        } => {
            let report = ecg_serve::eval::qrs::run(&db, &records, window_s, start_s)?;
            print!("{}", report.table());
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
            }
            Ok(())
        }
    }
}
