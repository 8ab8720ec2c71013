//! `ecg-train`: train the segment and beat models on MIT-BIH, export them to ONNX, evaluate them.
//!
//! ```text
//! ecg-train segment --db ../shared/data/mitdb --out models/
//! ecg-train beat --db ../shared/data/mitdb --out models/
//! ecg-train stack --model models/ecg-segment-net.onnx --out models/
//! ecg-train evaluate --model models/ecg-segment.onnx --db ../shared/data/mitdb
//! ecg-train beat --config runs/beat.yaml --out /tmp/beat   # options from a file
//! ecg-train dataset heartbeat --out data/mitdb-heartbeat.csv
//! ecg-train heartbeat --data data/mitdb-heartbeat.csv --split inter-patient
//! ecg-train finetune --from models/ecg-heartbeat.onnx --db ../shared/data/svdb --records 800,801 --test-records 802
//! ```
//!
//! Every run that writes a model also writes `<out>/<name>.run.yaml`: all its
//! options, which `--config` takes back.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use ecg_serve::model::ModelCard;
use ecg_serve::model::{BeatPreprocessing, SegmentPreprocessing};
use ecg_serve::train::beat_mlp::{self, BeatMlpOptions};
use ecg_serve::train::data::{BEAT_VALIDATION, DEFAULT_VALIDATION};
use ecg_serve::train::experiment::{SplitKind, TrainOptions};
use ecg_serve::train::heartbeat::{
    self, FinetuneOptions, HeartbeatOptions, HeartbeatTrainOptions, PtbOptions,
};
use ecg_serve::train::model::AttentionNetConfig;
use ecg_serve::train::stack::{self, StackOptions};
use ecg_serve::train::training::{Selection, TrainingConfig};
use ecg_serve::train::{beat, evaluate, segment};
use ecg_serve::train::{run_config, sweep, tracking};

#[derive(Parser)]
#[command(version, about = "Train, export and evaluate ecg-serve's models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Read the command's options from this YAML (or .toml) file, keyed by the
    /// flags' names (`batch-size: 64`); flags and environment variables
    /// override it, and an unknown key is an error.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// MLflow tracking server (http://host:port): one run per training, with
    /// its options, metrics, tags and artifacts; off when unset. A server that
    /// is down or slow is a warning, never a lost training.
    #[arg(long, global = true, env = "MLFLOW_TRACKING_URI", value_name = "URI")]
    mlflow_uri: Option<String>,
    /// MLflow experiment (created if missing).
    #[arg(
        long,
        global = true,
        env = "MLFLOW_EXPERIMENT_NAME",
        default_value = "ecg-train"
    )]
    mlflow_experiment: String,
}

/// Options both trainers share.
#[derive(Args)]
struct Common {
    /// Folder of MIT-BIH records (.hea, .dat, .atr).
    #[arg(long, env = "ECG_DB", default_value = "../shared/data/mitdb")]
    db: PathBuf,
    /// Output folder for <name>.onnx, <name>.json (card), metrics log and report.
    #[arg(long, default_value = "models")]
    out: PathBuf,
    #[arg(long, default_value = "1.0.0")]
    version: String,
    /// inter-patient (DS1 -> DS2) or random (examples pooled; reported as such).
    #[arg(long, value_enum, default_value = "inter-patient")]
    split: SplitKind,
    /// DS1 records held out of training for early stopping (default: segment
    /// 101,124,209,223; beat 101,124,220,223).
    #[arg(long, value_delimiter = ',')]
    val_records: Vec<String>,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Epochs without a better validation score before stopping.
    #[arg(long, default_value_t = 4)]
    patience: usize,
    /// Multiply the learning rate by this after every epoch.
    #[arg(long, default_value_t = 0.85)]
    lr_decay: f64,
    /// Gaussian noise (z-score units) added to training windows; 0 = none.
    #[arg(long, default_value_t = 0.05)]
    noise_std: f64,
    /// Leave out the sinusoidal position code before the attention.
    #[arg(long)]
    no_position_code: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use at most this many examples per set (for quick checks; not for a real model).
    #[arg(long)]
    max_windows: Option<usize>,
}

impl Common {
    fn options(
        self,
        name: String,
        net: AttentionNetConfig,
        epochs: usize,
        default_validation: &[&str],
    ) -> TrainOptions {
        let validation_records = if self.val_records.is_empty() {
            default_validation.iter().map(|s| s.to_string()).collect()
        } else {
            self.val_records
        };
        let training = TrainingConfig::new(net.with_position_code(!self.no_position_code))
            .with_max_epochs(epochs)
            .with_batch_size(self.batch_size)
            .with_learning_rate(self.lr)
            .with_patience(self.patience)
            .with_lr_decay(self.lr_decay)
            .with_noise_std(self.noise_std)
            .with_seed(self.seed);
        TrainOptions {
            db: self.db,
            out: self.out,
            name,
            version: self.version,
            split: self.split,
            validation_records,
            training,
            max_windows: self.max_windows,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train the 10 s segment model (Normal / Abnormal), export ONNX + model card, evaluate.
    Segment {
        #[command(flatten)]
        common: Common,
        /// The network's name; `ecg-train stack` turns it into the served `ecg-segment`.
        #[arg(long, default_value = "ecg-segment-net")]
        name: String,
        #[arg(long, default_value_t = 12)]
        epochs: usize,
        /// Train on the 0/1 labels instead of soft targets (the non-N beat fraction).
        #[arg(long)]
        hard_targets: bool,
        /// Hop between training windows (samples); serving uses the card's 1800.
        #[arg(long, default_value_t = 900)]
        train_hop: usize,
        /// Abnormal when the non-N fraction of a window's beats exceeds this.
        #[arg(long, default_value_t = 0.5)]
        abnormal_fraction: f64,
        /// Leave out the second input of six rhythm features per window
        /// (prematurity, RR irregularity, pauses, rate; from detected beats).
        #[arg(long)]
        no_rhythm_features: bool,
        /// Training only: probability of zeroing a whole window's signal
        /// embedding, so the rhythm features alone must carry the decision
        /// that often (0: off, as for the shipped model).
        #[arg(long, default_value_t = 0.0)]
        signal_dropout: f64,
        /// Add a linear path from the rhythm features straight to the logits.
        #[arg(long)]
        feature_logits: bool,
        /// The card's decision threshold: the validation ROC point with at
        /// least this Normal specificity, e.g. 0.95 (0: 0.5, the argmax, as
        /// for the shipped model; measured on DS2, validation's 95 % point
        /// did not carry to new patients: 74 % specificity there).
        #[arg(long, default_value_t = 0.0)]
        target_specificity: f64,
    },
    /// Train the beat model (AAMI N, S, V, F, Q per detected beat): a small
    /// network on per-beat features, on DS1 + svdb, every choice by record-wise
    /// cross-validation, then DS2 once; export ONNX + card.
    Beat(BeatMlpOptions),
    /// Train the beat morphology network of ecg-beat 1 (CNN + attention on the
    /// beat window beside the record's template, and RR features; DS1 only).
    BeatNet {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "ecg-beat-net")]
        name: String,
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Class weights are (inverse class frequency) ^ this: 1 full, 0 none.
        #[arg(long, default_value_t = 1.0)]
        class_weight_power: f64,
        /// Cap on any class weight (Q has a handful of DS1 beats).
        #[arg(long, default_value_t = 10.0)]
        max_class_weight: f64,
        /// Training beats move by up to this many samples (R-peak jitter; 0 = off).
        #[arg(long, default_value_t = 0)]
        shift_max: usize,
        /// Training beats are scaled by 1 + N(0, this) (0 = off).
        #[arg(long, default_value_t = 0.0)]
        scale_std: f64,
        /// Stride of the first convolution (2 halves the network's work).
        #[arg(long, default_value_t = 1)]
        conv1_stride: usize,
        /// Kernel and stride of the step that makes tokens (samples per token =
        /// 4 x conv1-stride x this).
        #[arg(long, default_value_t = 3)]
        token_stride: usize,
    },
    /// Stack a trained segment network with a logistic regression on its rhythm
    /// features (fitted on the network's training records), built into a new
    /// ONNX graph and card; prints validation and test metrics of both.
    Stack(StackOptions),
    /// Search hyper-parameters: trials of another command from a Weights &
    /// Biases-style sweep file (method grid | random | bayes, metric,
    /// parameters, early_terminate, run_cap), pruned on their intermediate
    /// metric; resumes its study; ends with a table of trials and the best
    /// trial's run config.
    Sweep {
        /// The sweep file (YAML).
        file: PathBuf,
        /// Trials in the study in all, an earlier run's included (the file's
        /// run_cap and a grid's size bound it).
        #[arg(long, env = "ECG_SWEEP_TRIALS", default_value_t = 10)]
        trials: usize,
        /// The study folder: each trial's output, the study journal
        /// (study.jsonl, from which the sweep resumes) and best.yaml
        /// [default: studies/<the file's name without extension>].
        #[arg(long, env = "ECG_SWEEP_STUDY")]
        study: Option<PathBuf>,
    },
    /// Train a beat classifier on heartbeat CSV rows (Kachuee et al. 2018's
    /// format, the Kaggle mitbih_train.csv / mitbih_test.csv as they are, or
    /// `ecg-train dataset heartbeat`'s output): --arch kachuee-resnet,
    /// attention-cnn, cnn-lstm or crt-net, their hyper-parameters by
    /// --network; export ONNX + a card that `ecg-serve --heartbeat-model`
    /// serves. `ecg-train beat --arch ...` / `--data ...` runs this.
    Heartbeat(HeartbeatTrainOptions),
    /// Adapt a trained heartbeat model to other records (any database, any
    /// rate): its burn record as the start, the backbone frozen (only the
    /// dense head learns) or not; held-out records measured before and after.
    Finetune(FinetuneOptions),
    /// Write a database in another data set format.
    #[command(subcommand)]
    Dataset(Dataset),
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

/// The data set formats `ecg-train dataset` writes.
#[derive(Subcommand)]
enum Dataset {
    /// Kachuee et al. 2018's heartbeat CSV (the Kaggle mitbih_train.csv
    /// format): 187 samples at 125 Hz in [0, 1] and the class per row, plus
    /// <out>.rows.csv with each row's record and sample.
    Heartbeat(HeartbeatOptions),
    /// The MI transfer set of Kachuee et al. 2018 from the PTB Diagnostic ECG
    /// Database: heartbeat rows of detected beats, class 0 for healthy
    /// controls' records and 1 for myocardial infarction's (`Reason for
    /// admission`); other diagnoses left out.
    Ptb(PtbOptions),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::command();
    let argv = match run_config::expand(&cli, heartbeat_alias(&cli, std::env::args_os().collect()))
    {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let matches = cli.clone().get_matches_from(argv);
    let parsed = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let Some((command, sub_matches)) = matches.subcommand() else {
        return Ok(());
    };
    let written = write_effective(&cli, command, sub_matches)?;
    let tracked = match (&parsed.mlflow_uri, &written) {
        (Some(uri), Some(run)) => {
            start_tracking(uri, &parsed.mlflow_experiment, command, run);
            true
        }
        _ => false,
    };
    let mlflow = parsed
        .mlflow_uri
        .clone()
        .map(|u| (u, parsed.mlflow_experiment.clone()));
    let result = run(parsed.command, &cli, mlflow);
    if tracked {
        if let Some(run) = &written {
            finish_tracking(run, &result);
        }
    }
    result
}

/// `ecg-train beat --arch ...` or `--data FILE.csv` (what users of the
/// heartbeat-format projects type) is `ecg-train heartbeat`: the networks on
/// heartbeat rows. `beat` itself trains the recording beat model, which has
/// neither flag.
fn heartbeat_alias(cli: &clap::Command, mut argv: Vec<OsString>) -> Vec<OsString> {
    let command = argv
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, a)| a.to_str().is_some_and(|a| cli.find_subcommand(a).is_some()));
    let Some((at, "beat")) = command.map(|(i, a)| (i, a.to_str().unwrap_or_default())) else {
        return argv;
    };
    let heartbeat_flag = |a: &OsString| {
        let a = a.to_string_lossy();
        ["--arch", "--data"]
            .iter()
            .any(|f| a == *f || a.starts_with(&format!("{f}=")))
    };
    if argv[at + 1..].iter().any(heartbeat_flag) {
        eprintln!("note: `ecg-train beat --arch/--data` trains on heartbeat rows: running `ecg-train heartbeat` (see `ecg-train heartbeat --help`)");
        argv[at] = OsString::from("heartbeat");
    }
    argv
}

/// The model a run writes: its options, `--out` and `--name`.
struct Written {
    options: run_config::Options,
    out: PathBuf,
    name: String,
}

impl Written {
    fn file(&self, suffix: &str) -> PathBuf {
        self.out.join(format!("{}.{suffix}", self.name))
    }
}

/// Opens the MLflow run: the options as params; git commit, host, command and
/// the data folders' digests as tags. Ctrl-C marks it KILLED.
fn start_tracking(uri: &str, experiment: &str, command: &str, run: &Written) {
    // Params as the flags spell them.
    let params: Vec<(String, String)> = run
        .options
        .iter()
        .map(|(k, v)| (k.clone(), run_config::flag_text(v)))
        .collect();
    let mut tags = vec![
        (
            "mlflow.source.git.commit".to_string(),
            env!("ECG_GIT_SHA").to_string(),
        ),
        (
            "mlflow.source.name".to_string(),
            format!("ecg-train {command}"),
        ),
        ("command".to_string(), command.to_string()),
        (
            "host".to_string(),
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
        ),
    ];
    for key in ["db", "svdb", "nstdb"] {
        if let Some(serde_json::Value::String(dir)) = run.options.get(key) {
            if let Some(digest) = tracking::folder_digest(std::path::Path::new(dir)) {
                tags.push((format!("data.{key}.sha256"), digest));
            }
        }
    }
    tracking::start(uri, experiment, &run.name, &params, &tags);
    let _ = ctrlc::set_handler(|| {
        tracking::finish("KILLED");
        eprintln!("interrupted: the MLflow run is marked KILLED");
        std::process::exit(130);
    });
}

/// Closes the MLflow run: the card's name and version as tags, the report's
/// figures as final metrics, the files as artifacts, and the status.
fn finish_tracking(run: &Written, result: &anyhow::Result<()>) {
    if let Err(e) = result {
        tracking::set_tags(&[("error".to_string(), format!("{e:#}"))]);
        tracking::finish("FAILED");
        return;
    }
    if let Ok(card) = ModelCard::read(&run.file("json")) {
        tracking::set_tags(&[
            ("model.name".to_string(), card.name),
            ("model.version".to_string(), card.version),
            ("model.sha256".to_string(), card.sha256),
        ]);
    }
    if let Some(report) = std::fs::read(run.file("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    {
        let numbers = tracking::numbers(&report, "final");
        let refs: Vec<(&str, f64)> = numbers.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        tracking::log_metrics(&refs, 0);
    }
    let files: Vec<PathBuf> = ["onnx", "json", "report.json", "metrics.jsonl", "run.yaml"]
        .iter()
        .map(|s| run.file(s))
        .collect();
    tracking::log_artifacts(&files);
    tracking::finish("FINISHED");
}

/// Runs one command.
fn run(
    command: Command,
    cli: &clap::Command,
    mlflow: Option<(String, String)>,
) -> anyhow::Result<()> {
    match command {
        Command::Sweep {
            file,
            trials,
            study,
        } => {
            let study = study.unwrap_or_else(|| {
                PathBuf::from("studies").join(file.file_stem().unwrap_or_default())
            });
            let outcome = sweep::run(
                cli,
                &sweep::SweepRun {
                    file: &file,
                    study,
                    trials,
                    exe: std::env::current_exe()?,
                    mlflow,
                },
            )?;
            print!("{}", outcome.table());
        }
        Command::Dataset(Dataset::Ptb(opts)) => {
            let w = heartbeat::write_ptb(&opts)?;
            println!(
                "{}: {} rows (healthy {}, MI {}); {} records of other diagnoses left out; {} detected beats without a row; records and samples in {}",
                opts.out.display(),
                w.written.rows,
                w.written.per_class[0],
                w.written.per_class[1],
                w.other_records,
                w.written.left_out,
                w.written.side_file.display()
            );
        }
        Command::Dataset(Dataset::Heartbeat(opts)) => {
            let w = heartbeat::write(&opts)?;
            println!(
                "{}: {} rows (N {}, S {}, V {}, F {}, Q {}); {} reference beats without a row; records and samples in {}",
                opts.out.display(),
                w.rows,
                w.per_class[0],
                w.per_class[1],
                w.per_class[2],
                w.per_class[3],
                w.per_class[4],
                w.left_out,
                w.side_file.display()
            );
        }
        Command::Segment {
            common,
            name,
            epochs,
            hard_targets,
            train_hop,
            abnormal_fraction,
            no_rhythm_features,
            signal_dropout,
            feature_logits,
            target_specificity,
        } => {
            let prep = if no_rhythm_features {
                SegmentPreprocessing::mitdb_default()
            } else {
                SegmentPreprocessing::mitdb_segment()
            };
            let with_features = prep.feature_width() > 0;
            let net = AttentionNetConfig::new()
                .with_features(prep.feature_width())
                .with_feature_logits(with_features && feature_logits)
                .with_signal_dropout(if with_features { signal_dropout } else { 0.0 });
            let mut opts = common.options(name, net, epochs, &DEFAULT_VALIDATION);
            opts.training = opts
                .training
                .with_soft_targets(!hard_targets)
                .with_abnormal_fraction(abnormal_fraction)
                .with_train_hop(train_hop)
                .with_target_specificity(target_specificity);
            segment::run(&opts, prep)?;
        }
        Command::BeatNet {
            common,
            name,
            epochs,
            class_weight_power,
            max_class_weight,
            shift_max,
            scale_std,
            conv1_stride,
            token_stride,
        } => {
            let prep = BeatPreprocessing::mitdb_beat();
            let net = AttentionNetConfig::beat(
                prep.beat.channels(),
                prep.beat.samples(),
                prep.feature_width(),
            )
            .with_conv1_stride(conv1_stride)
            .with_token_stride(token_stride);
            let mut opts = common.options(name, net, epochs, &BEAT_VALIDATION);
            opts.training = opts
                .training
                .with_soft_targets(false)
                .with_selection(Selection::MacroF1)
                .with_class_weight_power(class_weight_power)
                .with_max_class_weight(max_class_weight)
                .with_shift_max(shift_max)
                .with_scale_std(scale_std);
            beat::run(&opts)?;
        }
        Command::Heartbeat(opts) => {
            heartbeat::run(&opts)?;
        }
        Command::Finetune(opts) => {
            heartbeat::finetune(&opts)?;
        }
        Command::Stack(opts) => {
            stack::run(&opts)?;
        }
        Command::Beat(opts) => {
            beat_mlp::run(&opts)?;
        }
        Command::Evaluate {
            model,
            db,
            records,
            json,
        } => {
            let report = evaluate::evaluate(&model, &db, &records)?;
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            }
        }
    }
    Ok(())
}

/// `<out>/<name>.run.yaml`: every option of this run, for commands that write
/// a model (those with `--out` and `--name`).
fn write_effective(
    cli: &clap::Command,
    name: &str,
    matches: &clap::ArgMatches,
) -> anyhow::Result<Option<Written>> {
    let Some(sub) = cli.find_subcommand(name) else {
        return Ok(None);
    };
    let options = run_config::effective(sub, matches);
    let (Some(serde_json::Value::String(out)), Some(serde_json::Value::String(model))) =
        (options.get("out"), options.get("name"))
    else {
        return Ok(None);
    };
    let (out, model) = (PathBuf::from(out), model.clone());
    std::fs::create_dir_all(&out)?;
    let path = out.join(format!("{model}.run.yaml"));
    let header = format!(
        "# The options of `ecg-train {name}` that made {model} (every one, defaults included);\n# `ecg-train {name} --config {}` runs it again.\n",
        path.display()
    );
    run_config::write(&path, &options, &header)?;
    eprintln!("run config: {}", path.display());
    Ok(Some(Written {
        options,
        out,
        name: model,
    }))
}
