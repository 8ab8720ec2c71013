//! `ecg-train`: train the segment model on MIT-BIH, export it to ONNX, evaluate it.
//!
//! ```text
//! ecg-train segment --db ../shared/data/mitdb --out models/
//! ecg-train evaluate --model models/ecg-segment.onnx --db ../shared/data/mitdb
//! ```

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ecg_serve::train::data::DEFAULT_VALIDATION;
use ecg_serve::train::model::SegmentNetConfig;
use ecg_serve::train::segment::{self, SegmentOptions, SplitKind};
use ecg_serve::train::training::TrainingConfig;

#[derive(Parser)]
#[command(version, about = "Train, export and evaluate ecg-serve's models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the 10 s segment model (Normal / Abnormal), export ONNX + model card, evaluate.
    Segment {
        /// Folder of MIT-BIH records (.hea, .dat, .atr).
        #[arg(long, env = "ECG_DB", default_value = "../shared/data/mitdb")]
        db: PathBuf,
        /// Output folder for <name>.onnx, <name>.json (card), metrics log and report.
        #[arg(long, default_value = "models")]
        out: PathBuf,
        #[arg(long, default_value = "ecg-segment")]
        name: String,
        #[arg(long, default_value = "1.0.0")]
        version: String,
        /// inter-patient (DS1 -> DS2) or random (windows pooled; reported as such).
        #[arg(long, value_enum, default_value = "inter-patient")]
        split: SplitKind,
        /// DS1 records held out of training for early stopping.
        #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_VALIDATION.map(String::from))]
        val_records: Vec<String>,
        #[arg(long, default_value_t = 12)]
        epochs: usize,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Epochs without a better validation ROC AUC before stopping.
        #[arg(long, default_value_t = 4)]
        patience: usize,
        /// Multiply the learning rate by this after every epoch.
        #[arg(long, default_value_t = 0.85)]
        lr_decay: f64,
        /// Gaussian noise (z-score units) added to training windows; 0 = none.
        #[arg(long, default_value_t = 0.05)]
        noise_std: f64,
        /// Train on the 0/1 labels instead of soft targets (the non-N beat fraction).
        #[arg(long)]
        hard_targets: bool,
        /// Leave out the sinusoidal position code before the attention.
        #[arg(long)]
        no_position_code: bool,
        /// Hop between training windows (samples); serving uses the card's 1800.
        #[arg(long, default_value_t = 900)]
        train_hop: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Abnormal when the non-N fraction of a window's beats exceeds this.
        #[arg(long, default_value_t = 0.5)]
        abnormal_fraction: f64,
        /// Use at most this many windows per set (for quick checks; not for a real model).
        #[arg(long)]
        max_windows: Option<usize>,
    },
    /// Measure a trained model (ONNX Runtime) on its card's test records.
    Evaluate {
        /// The .onnx file; its card is the .json beside it.
        #[arg(long)]
        model: PathBuf,
        #[arg(long, env = "ECG_DB", default_value = "../shared/data/mitdb")]
        db: PathBuf,
        /// Records to evaluate on instead of the card's test records.
        #[arg(long, value_delimiter = ',')]
        records: Vec<String>,
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Segment {
            db,
            out,
            name,
            version,
            split,
            val_records,
            epochs,
            batch_size,
            lr,
            patience,
            lr_decay,
            noise_std,
            hard_targets,
            no_position_code,
            train_hop,
            seed,
            abnormal_fraction,
            max_windows,
        } => {
            let net = SegmentNetConfig::new().with_position_code(!no_position_code);
            let training = TrainingConfig::new(net)
                .with_max_epochs(epochs)
                .with_batch_size(batch_size)
                .with_learning_rate(lr)
                .with_patience(patience)
                .with_lr_decay(lr_decay)
                .with_noise_std(noise_std)
                .with_soft_targets(!hard_targets)
                .with_seed(seed)
                .with_abnormal_fraction(abnormal_fraction)
                .with_train_hop(train_hop);
            let opts = SegmentOptions {
                db,
                out,
                name,
                version,
                split,
                validation_records: val_records,
                training,
                max_windows,
            };
            segment::run(&opts)?;
        }
        Command::Evaluate {
            model,
            db,
            records,
            json,
        } => {
            let report = segment::evaluate(&model, &db, &records)?;
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            }
        }
    }
    Ok(())
}
