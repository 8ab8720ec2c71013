//! The heartbeat format both ways: [`write`] (`ecg-train dataset heartbeat`)
//! and [`run`] (`ecg-train heartbeat`, training on such files).
//!
//! `ecg-train dataset heartbeat`: any WFDB database we read, written in the
//! heartbeat format of Kachuee et al. 2018 ([`crate::signal::heartbeat`], the
//! steps there) as the Kaggle `mitbih_train.csv` spells it: one beat per row,
//! 187 values then the class (0-4 = N S V F Q, AAMI), no header. The rows are
//! the database's reference beats, so each keeps its label; a side file
//! (`<out>.rows.csv`: row, record, sample, symbol, class) keeps its record and
//! place, so that inter-patient splits (DS1 / DS2) remain possible, which the
//! Kaggle files do not allow.
//!
//! `ecg-train heartbeat --data FILE.csv [--test FILE.csv] --arch ...` trains a
//! network on such rows (the Kaggle files as they are, or ours) with the
//! training loop of the other models ([`super::training`]), exports it to
//! ONNX with the burn-vs-ONNX-Runtime parity check, and writes a card of kind
//! `heartbeat` that `ecg-serve --heartbeat-model` serves: `POST /predict` with
//! such a CSV answers one label per row.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::cnn_lstm::CnnLstmConfig;
use super::data::{load_record, SplitMix, WindowSet, BEAT_VALIDATION, DS1, DS2, PACED};
use super::experiment::strings;
use super::inference::predict_onnx;
use super::metrics::MultiReport;
use super::model::AttentionNetConfig;
use super::resnet::ResNetConfig;
use super::training::{fit_and_export_with, Selection, TrainingConfig};
use crate::engine::{Provider, Runtime};
use crate::model::card::{sha256_hex, BeatDecision, Split, TensorSpec, TrainingRecord};
use crate::model::{HeartbeatModel, HeartbeatPreprocessing, ModelCard, ModelKind};
use crate::signal::heartbeat::{heartbeat_rows, read_rows, LENGTH};
use crate::signal::AamiClass;

/// `ecg-train dataset heartbeat`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct HeartbeatOptions {
    /// Folder of WFDB records (`.hea`, `.dat`, `.atr`).
    #[arg(long, env = "ECG_DB", default_value = "../shared/data/mitdb")]
    pub db: PathBuf,
    /// The CSV to write; its side file is <out without .csv>.rows.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Records to write (comma-separated; default: every record with an .atr).
    #[arg(long, value_delimiter = ',')]
    pub records: Option<Vec<String>>,
    /// The lead (MLII for MIT-BIH; another name falls back to the first lead
    /// with a warning).
    #[arg(long, default_value = "MLII")]
    pub lead: String,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub rows: usize,
    /// Rows per class, N S V F Q.
    pub per_class: [usize; 5],
    /// Reference beats with no row (lonely, flat or in a record's last, short window).
    pub left_out: usize,
    pub side_file: PathBuf,
}

/// One labelled row of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    pub samples: Vec<f32>,
    /// The reference beat's sample and annotation code.
    pub sample: u64,
    pub symbol: String,
    /// 0-4 = N S V F Q (a beat code outside the AAMI classes counts as Q).
    pub class: u8,
}

/// The heartbeat rows of one record's reference beats (lead `lead`, or the
/// first with a warning), and how many beats have none. What both
/// `ecg-train dataset heartbeat` and the trainer's `--db` sets are made of.
pub fn record_rows(db: &Path, name: &str, lead: &str) -> Result<(Vec<RecordRow>, usize)> {
    let (rec, ann) = load_record(db, name)?;
    let choice = rec.select_lead(lead, true)?;
    if let Some(w) = &choice.fallback_warning {
        eprintln!("warning: {name}: {w}");
    }
    let beats: Vec<_> = ann.iter().filter(|a| a.is_beat()).collect();
    let at: Vec<usize> = beats.iter().map(|a| a.sample as usize).collect();
    let rows = heartbeat_rows(&rec.leads[choice.index].samples, rec.sampling_rate, &at)?;
    let left_out = beats.len() - rows.len();
    let rows = rows
        .into_iter()
        .map(|row| {
            let a = beats[row.beat];
            RecordRow {
                samples: row.samples,
                sample: a.sample,
                symbol: a.symbol.to_string(),
                class: a.aami().map_or(4, |c| c.index()) as u8,
            }
        })
        .collect();
    Ok((rows, left_out))
}

/// The side file beside `out`.
pub fn side_file(out: &Path) -> PathBuf {
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    out.with_file_name(format!("{stem}.rows.csv"))
}

/// Writes the data set.
pub fn write(opts: &HeartbeatOptions) -> Result<Written> {
    let records = match &opts.records {
        Some(r) => r.clone(),
        None => {
            let mut names: Vec<String> = std::fs::read_dir(&opts.db)
                .map_err(|e| anyhow::anyhow!("--db: cannot read {}: {e}", opts.db.display()))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|f| f.strip_suffix(".atr").map(str::to_string))
                .collect();
            names.sort();
            names
        }
    };
    anyhow::ensure!(
        !records.is_empty(),
        "--db: no records with annotations (.atr) in {}",
        opts.db.display()
    );
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let open = |p: &Path| -> Result<std::io::BufWriter<std::fs::File>> {
        Ok(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        ))
    };
    let side = side_file(&opts.out);
    let (mut csv, mut rows_csv) = (open(&opts.out)?, open(&side)?);
    writeln!(rows_csv, "row,record,sample,symbol,class")?;
    let mut written = Written {
        rows: 0,
        per_class: [0; 5],
        left_out: 0,
        side_file: side.clone(),
    };
    for name in &records {
        let (rows, left_out) = record_rows(&opts.db, name, &opts.lead)?;
        written.left_out += left_out;
        for row in rows {
            let values: Vec<String> = row.samples.iter().map(|v| v.to_string()).collect();
            writeln!(csv, "{},{}", values.join(","), row.class)?;
            writeln!(
                rows_csv,
                "{},{name},{},{},{}",
                written.rows, row.sample, row.symbol, row.class
            )?;
            written.rows += 1;
            written.per_class[row.class as usize] += 1;
        }
        eprintln!("{name}: {} rows so far", written.rows);
    }
    csv.flush()?;
    rows_csv.flush()?;
    Ok(written)
}

/// The networks `ecg-train heartbeat` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// Kachuee et al. 2018's residual CNN ([`super::resnet`]).
    KachueeResnet,
    /// The CNN + self-attention network of our segment and beat-net models
    /// ([`super::model`]) on one channel of 187 samples (15 tokens).
    AttentionCnn,
    /// Two convolutions and an LSTM ([`super::cnn_lstm`]).
    CnnLstm,
}

/// How rows become train / validation / test sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RowSplit {
    /// Rows pooled and shuffled: 80 / 10 / 10, or 90 / 10 train / validation
    /// with `--test` (what the papers on the Kaggle files do; patients leak
    /// between the sets).
    Random,
    /// By record, from the side file `<data>.rows.csv`: DS1 trains (less the
    /// validation records), DS2 tests (from `--test` when given); paced
    /// records left out (de Chazal 2004).
    InterPatient,
}

/// `ecg-train heartbeat`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct HeartbeatTrainOptions {
    /// Heartbeat CSV to train on: 187 values in [0, 1] and the class (0-4)
    /// per row, no header (Kaggle's mitbih_train.csv, or `ecg-train dataset
    /// heartbeat`'s output).
    #[arg(long)]
    pub data: PathBuf,
    /// Heartbeat CSV to test on (Kaggle's mitbih_test.csv); without it the
    /// test rows come from --data, by --split.
    #[arg(long)]
    pub test: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "random")]
    pub split: RowSplit,
    #[arg(long, value_enum, default_value = "kachuee-resnet")]
    pub arch: Arch,
    /// Output folder for <name>.onnx, its card <name>.json, metrics log and report.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    #[arg(long, default_value = "ecg-heartbeat")]
    pub name: String,
    #[arg(long, default_value = "1.0.0")]
    pub version: String,
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Multiply the learning rate by this after every epoch.
    #[arg(long, default_value_t = 0.9)]
    pub lr_decay: f64,
    /// Epochs without a better validation macro F1 before stopping.
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// Class weights are (inverse class frequency) ^ this: 0 none (as the
    /// paper, which balanced by augmentation instead), 1 full.
    #[arg(long, default_value_t = 0.0)]
    pub class_weight_power: f64,
    /// Gaussian noise added to training rows (the rows' [0, 1] units; 0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub noise_std: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Use at most this many rows per set (quick checks; not for a real model).
    #[arg(long)]
    pub max_rows: Option<usize>,
}

/// The rows of a heartbeat CSV as a set (one channel of [`LENGTH`]); each
/// row's record and sample from the side file when there is one (else the
/// file's name and the row number).
pub fn load_csv(path: &Path) -> Result<WindowSet> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table = read_rows(&path.display().to_string(), &bytes)?;
    let Some(labels) = table.labels.clone() else {
        bail!(
            "{}: rows of 187 values without a class; training and testing need the 188th column (0-4 = N S V F Q)",
            path.display()
        );
    };
    let n = table.rows();
    let side = side_file(path);
    let (records, starts) = if side.exists() {
        read_side_file(&side, n)?
    } else {
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        (vec![stem.to_string(); n], (0..n).collect())
    };
    Ok(WindowSet {
        window_len: LENGTH,
        channels: 1,
        windows: table.values,
        labels,
        records,
        starts,
        ..Default::default()
    })
}

/// The record and sample of each of `n` rows from a side file.
fn read_side_file(side: &Path, n: usize) -> Result<(Vec<String>, Vec<usize>)> {
    let mut reader =
        csv::Reader::from_path(side).with_context(|| format!("cannot read {}", side.display()))?;
    let (mut records, mut starts) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (i, r) in reader.records().enumerate() {
        let r = r.with_context(|| format!("{}: row {}", side.display(), i + 2))?;
        let (Some(record), Some(sample)) = (r.get(1), r.get(2).and_then(|s| s.parse().ok())) else {
            bail!(
                "{}: row {}: expected row,record,sample,...",
                side.display(),
                i + 2
            );
        };
        records.push(record.to_string());
        starts.push(sample);
    }
    if records.len() != n {
        bail!(
            "{} names {} rows, its data file has {n}",
            side.display(),
            records.len()
        );
    }
    Ok((records, starts))
}

/// The rows of some records of a database, as `ecg-train dataset heartbeat`
/// writes them (`ecg-train evaluate` of a heartbeat model).
pub fn load_db(db: &Path, records: &[String], lead: &str) -> Result<WindowSet> {
    let mut set = WindowSet {
        window_len: LENGTH,
        channels: 1,
        ..Default::default()
    };
    for name in records {
        let (rows, _) = record_rows(db, name, lead)?;
        for row in rows {
            set.windows.extend_from_slice(&row.samples);
            set.labels.push(row.class);
            set.records.push(name.clone());
            set.starts.push(row.sample as usize);
        }
    }
    Ok(set)
}

/// Rows whose record is in `names`.
fn of_records(set: &WindowSet, names: &[String]) -> WindowSet {
    let idx: Vec<usize> = (0..set.len())
        .filter(|&i| names.contains(&set.records[i]))
        .collect();
    set.subset(&idx)
}

/// Up to `max` rows of `set`, drawn at random (all when `None`).
fn capped(set: WindowSet, max: Option<usize>, rng: &mut SplitMix) -> WindowSet {
    match max {
        Some(m) if m < set.len() => {
            let mut idx: Vec<usize> = (0..set.len()).collect();
            rng.shuffle(&mut idx);
            idx.truncate(m);
            idx.sort_unstable();
            set.subset(&idx)
        }
        _ => set,
    }
}

/// The train / validation / test sets and the split that made them.
fn sets(opts: &HeartbeatTrainOptions) -> Result<(Split, [WindowSet; 3])> {
    let data = load_csv(&opts.data)?;
    let test_file = opts.test.as_deref().map(load_csv).transpose()?;
    let mut rng = SplitMix::new(opts.seed);
    let file = |p: &Path| p.display().to_string();
    let (split, [train, val, test]) = match opts.split {
        RowSplit::Random => {
            let mut idx: Vec<usize> = (0..data.len()).collect();
            rng.shuffle(&mut idx);
            let tenth = data.len() / 10;
            let (val_idx, rest) = idx.split_at(tenth);
            let (test, train_idx) = match test_file {
                Some(t) => (t, rest),
                None => {
                    let (test_idx, train_idx) = rest.split_at(tenth);
                    (data.subset(test_idx), train_idx)
                }
            };
            let named = |what: &str| vec![format!("{what} rows of {}", file(&opts.data))];
            let split = Split {
                kind: format!(
                    "RANDOM split of heartbeat rows ({}; patients leak between the sets, figures are not inter-patient)",
                    match &opts.test {
                        Some(t) => format!("90/10 train/validation, test {}", file(t)),
                        None => "80/10/10".into(),
                    }
                ),
                train_records: named("random 80-90 %"),
                validation_records: named("random 10 %"),
                test_records: match &opts.test {
                    Some(t) => vec![file(t)],
                    None => named("random 10 %"),
                },
                excluded_records: vec![],
            };
            (split, [data.subset(train_idx), data.subset(val_idx), test])
        }
        RowSplit::InterPatient => {
            let val_names = strings(&BEAT_VALIDATION);
            let train_names: Vec<String> = strings(&DS1)
                .into_iter()
                .filter(|r| !val_names.contains(r))
                .collect();
            let test = of_records(test_file.as_ref().unwrap_or(&data), &strings(&DS2));
            let (train, val) = (
                of_records(&data, &train_names),
                of_records(&data, &val_names),
            );
            if train.is_empty() || test.is_empty() {
                bail!(
                    "--split inter-patient needs rows of the MIT-BIH records DS1 and DS2 named in the side file {} (`ecg-train dataset heartbeat` writes it; the Kaggle files have none: use --split random)",
                    side_file(&opts.data).display()
                );
            }
            let split = Split {
                kind: "inter-patient: DS1 -> DS2 (de Chazal 2004), heartbeat rows".into(),
                train_records: train_names,
                validation_records: val_names,
                test_records: strings(&DS2),
                excluded_records: strings(&PACED),
            };
            (split, [train, val, test])
        }
    };
    let m = opts.max_rows;
    Ok((
        split,
        [
            capped(train, m, &mut rng),
            capped(val, m, &mut rng),
            capped(test, m, &mut rng),
        ],
    ))
}

fn describe(name: &str, set: &WindowSet) {
    let counts = set.class_counts(AamiClass::ALL.len());
    eprintln!(
        "{name:<10} {:>6} rows (N {}, S {}, V {}, F {}, Q {})",
        set.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4]
    );
}

/// The class names in index order.
fn labels() -> Vec<&'static str> {
    AamiClass::ALL.iter().map(|c| c.as_str()).collect()
}

/// Trains `opts.arch` on the rows, exports and checks it, measures it on the
/// test rows and writes `<out>/<name>.onnx`, its card, metrics log and report.
pub fn run(opts: &HeartbeatTrainOptions) -> Result<PathBuf> {
    let (split, [train, val, test]) = sets(opts)?;
    for (name, set) in [("train", &train), ("validation", &val), ("test", &test)] {
        describe(name, set);
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let base = opts.out.join(&opts.name);
    let classes = AamiClass::ALL.len();
    let attention = AttentionNetConfig::beat(1, LENGTH, 0);
    let mut cfg = TrainingConfig::new(attention.clone())
        .with_max_epochs(opts.epochs)
        .with_batch_size(opts.batch_size)
        .with_learning_rate(opts.lr)
        .with_lr_decay(opts.lr_decay)
        .with_patience(opts.patience)
        .with_noise_std(opts.noise_std)
        .with_class_weight_power(opts.class_weight_power)
        .with_max_class_weight(10.0)
        .with_soft_targets(false)
        .with_selection(Selection::MacroF1)
        .with_seed(opts.seed);
    let resnet = ResNetConfig::new().with_classes(classes);
    resnet.validate().map_err(anyhow::Error::msg)?;
    let (name, version) = (opts.name.as_str(), opts.version.as_str());
    let sets = [&train, &val, &test];
    let (fitted, network) = match opts.arch {
        Arch::KachueeResnet => (
            fit_and_export_with(
                &mut cfg,
                (classes, |d: &burn::prelude::Device| resnet.init(d)),
                sets,
                &base,
                |net| super::onnx::export_resnet(net, &resnet, name, version),
            )?,
            serde_json::to_value(&resnet)?,
        ),
        Arch::AttentionCnn => (
            fit_and_export_with(
                &mut cfg,
                (classes, |d: &burn::prelude::Device| attention.init(d)),
                sets,
                &base,
                |net| super::onnx::export(net, &attention, name, version),
            )?,
            serde_json::to_value(&attention)?,
        ),
        Arch::CnnLstm => {
            let lstm = CnnLstmConfig::new().with_classes(classes);
            (
                fit_and_export_with(
                    &mut cfg,
                    (classes, |d: &burn::prelude::Device| lstm.init(d)),
                    sets,
                    &base,
                    |net| super::onnx::export_cnn_lstm(net, &lstm, name, version),
                )?,
                serde_json::to_value(&lstm)?,
            )
        }
    };
    let names = labels();
    let val_report = MultiReport::new(
        &MultiReport::argmax(&fitted.val_probs, classes),
        &val.labels,
        &names,
    );
    let test_pred = MultiReport::argmax(&fitted.test_probs, classes);
    let test_report = MultiReport::new(&test_pred, &test.labels, &names);
    print!(
        "{}",
        val_report.table(&format!("validation: {}", split.kind))
    );
    print!("{}", test_report.table(&format!("test: {}", split.kind)));
    let mut metrics = json!({
        "test": test_report,
        "validation": val_report,
        "parity": fitted.parity,
        "best_epoch": fitted.best_epoch,
        "epochs_run": fitted.epochs_run,
        "measured_with": format!("ecg-train heartbeat (ONNX Runtime, {} test rows)", test.len()),
    });
    if opts.split == RowSplit::InterPatient {
        metrics["test_per_record"] = super::beat::per_record(&test, &test_pred);
    }
    std::fs::write(
        base.with_extension("report.json"),
        serde_json::to_string_pretty(&metrics)?,
    )?;
    let mut config = match serde_json::to_value(&cfg)? {
        serde_json::Value::Object(map) => map,
        _ => Default::default(),
    };
    config.remove("model");
    config.insert("arch".into(), serde_json::to_value(opts.arch)?);
    config.insert("network".into(), network);
    config.insert(
        "choices".into(),
        json!("the paper's network and Adam at 1e-3; batch, decay, patience and no class weights set before training, none tuned; the epoch kept is the validation rows' best macro F1; the test rows were read once, after training"),
    );
    let card = ModelCard {
        name: opts.name.clone(),
        version: opts.version.clone(),
        file: format!("{}.onnx", opts.name),
        sha256: sha256_hex(&fitted.bytes),
        labels: strings(&names),
        input: TensorSpec {
            name: "signal".into(),
            shape: vec![-1, 1, LENGTH as i64],
            description: "one heartbeat row (preprocessing.steps): 187 samples at 125 Hz in [0, 1]"
                .into(),
        },
        outputs: vec![TensorSpec {
            name: "logits".into(),
            shape: vec![-1, classes as i64],
            description: "class logits; softmax gives probabilities in `labels` order".into(),
        }],
        attention: None,
        kind: ModelKind::Heartbeat(HeartbeatModel {
            preprocessing: HeartbeatPreprocessing::kachuee(),
            decision: BeatDecision {
                chosen_by: "argmax over the five classes".into(),
            },
            label_rule:
                "the row's class column: the AAMI class of its reference beat (0-4 = N S V F Q)"
                    .into(),
        }),
        split,
        training: TrainingRecord {
            config,
            stack: None,
        },
        metrics,
        created_by: format!("ecg-train {}", env!("CARGO_PKG_VERSION")),
    };
    let card_path = base.with_extension("json");
    card.write(&card_path)?;
    eprintln!(
        "wrote {} and {}",
        fitted.onnx_path.display(),
        card_path.display()
    );
    Ok(card_path)
}

/// `ecg-train evaluate` for a heartbeat model: its figures measured again
/// through ONNX Runtime on the rows of the card's test records (or
/// `records`) of `db`, made as `ecg-train dataset heartbeat` makes them.
pub fn evaluate(
    card: &ModelCard,
    bytes: &[u8],
    db: &Path,
    records: &[String],
) -> Result<MultiReport> {
    card.heartbeat()?;
    let set = load_db(db, records, "MLII")?;
    let mut session = Runtime::get()?.session(bytes, 2, Provider::Cpu)?;
    let k = card.labels.len();
    let predicted = MultiReport::argmax(&predict_onnx(&mut session, &set, 256)?, k);
    let names: Vec<&str> = card.labels.iter().map(String::as_str).collect();
    let report = MultiReport::new(&predicted, &set.labels, &names);
    print!(
        "{}",
        report.table(&format!(
            "{} {} on the heartbeat rows of {} records ({})",
            card.name,
            card.version,
            records.len(),
            card.split.kind
        ))
    );
    Ok(report)
}
