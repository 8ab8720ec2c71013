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
use super::crt_net::CrtNetConfig;
use super::data::{load_record, SplitMix, WindowSet, BEAT_VALIDATION, DS1, DS2, PACED};
use super::experiment::strings;
use super::inference::predict_onnx;
use super::metrics::MultiReport;
use super::model::AttentionNetConfig;
use super::resnet::ResNetConfig;
use super::training::{fit_and_export_with, Classifier, Selection, TrainingConfig};
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

/// The records of `db`: its `RECORDS` file (PhysioNet's list, which names
/// PTB's `patient001/s0010_re`) when it has one, else every record of the
/// folder with a file ending in `.{ext}`.
fn list_records(db: &Path, ext: &str) -> Result<Vec<String>> {
    if let Ok(text) = std::fs::read_to_string(db.join("RECORDS")) {
        return Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect());
    }
    let suffix = format!(".{ext}");
    let mut names: Vec<String> = std::fs::read_dir(db)
        .map_err(|e| anyhow::anyhow!("--db: cannot read {}: {e}", db.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(&suffix).map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// Writes the data set.
pub fn write(opts: &HeartbeatOptions) -> Result<Written> {
    let records = match &opts.records {
        Some(r) => r.clone(),
        None => list_records(&opts.db, "atr")?,
    };
    anyhow::ensure!(
        !records.is_empty(),
        "--db: no records with annotations (.atr) in {}",
        opts.db.display()
    );
    write_rows(&opts.out, &records, |name| {
        record_rows(&opts.db, name, &opts.lead)
    })
}

/// `ecg-train dataset ptb`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct PtbOptions {
    /// A PTB Diagnostic ECG Database folder (its `RECORDS` file names
    /// `patient001/s0010_re` ...; each record a .hea, .dat and .xyz), or a
    /// folder of Challenge-format PTB records (.hea + .mat).
    #[arg(long)]
    pub db: PathBuf,
    /// The CSV to write; its side file is <out without .csv>.rows.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Records to write (comma-separated; default: RECORDS, or every .hea).
    #[arg(long, value_delimiter = ',')]
    pub records: Option<Vec<String>>,
    /// The lead (PTB names its limb lead II `ii`).
    #[arg(long, default_value = "ii")]
    pub lead: String,
}

/// What `ecg-train dataset ptb` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtbWritten {
    pub written: Written,
    /// Records of neither class (another reason for admission), left out.
    pub other_records: usize,
}

/// Kachuee et al.'s MI transfer set from PTB: heartbeat rows of our
/// detector's R peaks (PTB has no beat annotations), class 0 for a healthy
/// control's record and 1 for a myocardial infarction's (the record's
/// `Reason for admission`, [`crate::signal::wfdb::ptb`]); records of other
/// diagnoses are left out.
pub fn write_ptb(opts: &PtbOptions) -> Result<PtbWritten> {
    use crate::signal::wfdb::{parse_header, ptb};
    let records = match &opts.records {
        Some(r) => r.clone(),
        None => list_records(&opts.db, "hea")?,
    };
    anyhow::ensure!(
        !records.is_empty(),
        "--db: no records (RECORDS or .hea) in {}",
        opts.db.display()
    );
    let mut other = 0;
    let written = write_rows(&opts.out, &records, |name| {
        let path = opts.db.join(format!("{name}.hea"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let Some(class) = ptb::class(&parse_header(&format!("{name}.hea"), &text)?) else {
            other += 1;
            return Ok((Vec::new(), 0));
        };
        let rec = crate::eval::load_signals(&opts.db, name)?;
        let choice = rec.select_lead(&opts.lead, true)?;
        if let Some(w) = &choice.fallback_warning {
            eprintln!("warning: {name}: {w}");
        }
        let lead = &rec.leads[choice.index].samples;
        let peaks = crate::signal::qrs::detect_r_peaks(lead, rec.sampling_rate);
        let rows = heartbeat_rows(lead, rec.sampling_rate, &peaks)?;
        let left_out = peaks.len() - rows.len();
        let rows = rows
            .into_iter()
            .map(|row| RecordRow {
                samples: row.samples,
                sample: peaks[row.beat] as u64,
                symbol: "detected".into(),
                class: class.index(),
            })
            .collect();
        Ok((rows, left_out))
    })?;
    Ok(PtbWritten {
        written,
        other_records: other,
    })
}

/// Writes the rows `rows_of` gives for each record, and their side file.
fn write_rows(
    out: &Path,
    records: &[String],
    mut rows_of: impl FnMut(&str) -> Result<(Vec<RecordRow>, usize)>,
) -> Result<Written> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let open = |p: &Path| -> Result<std::io::BufWriter<std::fs::File>> {
        Ok(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        ))
    };
    let side = side_file(out);
    let (mut csv, mut rows_csv) = (open(out)?, open(&side)?);
    writeln!(rows_csv, "row,record,sample,symbol,class")?;
    let mut written = Written {
        rows: 0,
        per_class: [0; 5],
        left_out: 0,
        side_file: side.clone(),
    };
    for name in records {
        let (rows, left_out) = rows_of(name)?;
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// Kachuee et al. 2018's residual CNN ([`super::resnet`]).
    KachueeResnet,
    /// The CNN + self-attention network of our segment and beat-net models
    /// ([`super::model`]) on one channel of 187 samples (15 tokens).
    AttentionCnn,
    /// Two convolutions and an LSTM ([`super::cnn_lstm`]).
    CnnLstm,
    /// CRT-Net's convolutions, bidirectional GRU and Transformer encoder
    /// ([`super::crt_net`]).
    CrtNet,
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
    /// The architecture's hyper-parameters that differ from its defaults, as
    /// `key=value` items (`--network heads=4,dense=64`; in a run config a
    /// mapping, `network: {heads: 4}`). The card's `training.network` lists
    /// them all; an unknown key is an error naming the accepted ones.
    #[arg(long, value_delimiter = ',')]
    pub network: Vec<String>,
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
    /// Train on at most this many rows, drawn at random (an architecture too
    /// slow for the whole set here); validation and test rows stay whole.
    #[arg(long)]
    pub max_train_rows: Option<usize>,
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
    let train = capped(train, opts.max_train_rows, &mut rng);
    Ok((
        split,
        [
            capped(train, m, &mut rng),
            capped(val, m, &mut rng),
            capped(test, m, &mut rng),
        ],
    ))
}

fn describe(name: &str, set: &WindowSet, labels: &[String]) {
    let counts = set.class_counts(labels.len());
    let per: Vec<String> = labels
        .iter()
        .zip(&counts)
        .map(|(l, c)| format!("{l} {c}"))
        .collect();
    eprintln!("{name:<10} {:>6} rows ({})", set.len(), per.join(", "));
}

/// The label rule of rows with AAMI classes.
const AAMI_RULE: &str =
    "the row's class column: the AAMI class of its reference beat (0-4 = N S V F Q)";

/// The class names in index order.
fn labels() -> Vec<&'static str> {
    AamiClass::ALL.iter().map(|c| c.as_str()).collect()
}

/// Where a training starts.
enum Start<'a> {
    /// Freshly initialised weights.
    Fresh,
    /// A trained network's burn record, its backbone frozen or not.
    From { record: &'a Path, freeze: bool },
}

/// The network `fresh` makes (`trained` outputs) on the training device:
/// as it is, or with `start`'s weights and, when `classes` differs from
/// `trained`, a new last layer of `classes` outputs.
fn initial<M: Classifier>(
    fresh: impl FnOnce(&burn::prelude::Device) -> M,
    start: &Start,
    (trained, classes): (usize, usize),
) -> impl FnOnce(&burn::prelude::Device) -> Result<M> {
    let start = match start {
        Start::Fresh => None,
        Start::From { record, freeze } => Some((record.to_path_buf(), *freeze)),
    };
    move |device| {
        let net = fresh(device);
        let Some((record, freeze)) = start else {
            return Ok(net);
        };
        let net = net
            .try_load_file(&record)
            .map_err(|e| anyhow::anyhow!("cannot load {}: {e:?}", record.display()))?;
        let net = if classes != trained {
            net.with_new_head(classes, device)
        } else {
            net
        };
        Ok(if freeze { net.freeze_backbone() } else { net })
    }
}

/// What a heartbeat training (fresh or fine-tuned) needs besides its rows.
struct Job<'a> {
    out: &'a Path,
    name: &'a str,
    version: &'a str,
    arch: Arch,
    /// The architecture's hyper-parameters as trained (fine-tuning; `None`:
    /// its defaults with `overrides`).
    network: Option<serde_json::Value>,
    /// `--network`'s `key=value` items (fresh training).
    overrides: &'a [String],
    cfg: TrainingConfig,
    start: Start<'a>,
    /// Added to the card's `training`.
    notes: serde_json::Map<String, serde_json::Value>,
    /// The starting model's figures on the same test rows.
    before: Option<MultiReport>,
    /// The class names, in the rows' class order.
    labels: Vec<String>,
    /// How the rows were labelled (the card's `label_rule`).
    label_rule: String,
}

/// Trains `job.arch` on the rows, exports and checks it, measures it on the
/// test rows and writes `<out>/<name>.onnx`, its card, burn record, metrics
/// log and report.
fn fit(job: Job, split: Split, [train, val, test]: [WindowSet; 3]) -> Result<PathBuf> {
    for (name, set) in [("train", &train), ("validation", &val), ("test", &test)] {
        describe(name, set, &job.labels);
    }
    std::fs::create_dir_all(job.out)
        .with_context(|| format!("cannot create {}", job.out.display()))?;
    let base = job.out.join(job.name);
    let classes = job.labels.len();
    for (what, set) in [("train", &train), ("validation", &val), ("test", &test)] {
        if let Some(i) = set.labels.iter().position(|&l| usize::from(l) >= classes) {
            bail!(
                "{what} row {} ({} sample {}) has class {}; the model's classes are 0-{} ({})",
                i + 1,
                set.records[i],
                set.starts[i],
                set.labels[i],
                classes - 1,
                job.labels.join(", ")
            );
        }
    }
    let (name, version) = (job.name, job.version);
    let mut cfg = job.cfg.clone();
    let sets = [&train, &val, &test];
    let (fitted, network) = match job.arch {
        Arch::KachueeResnet => fit_network::<ResNetConfig>(&job, &mut cfg, sets, &base)?,
        Arch::AttentionCnn => fit_network::<AttentionNetConfig>(&job, &mut cfg, sets, &base)?,
        Arch::CnnLstm => fit_network::<CnnLstmConfig>(&job, &mut cfg, sets, &base)?,
        Arch::CrtNet => fit_network::<CrtNetConfig>(&job, &mut cfg, sets, &base)?,
    };
    let names: Vec<&str> = job.labels.iter().map(String::as_str).collect();
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
    if let Some(before) = &job.before {
        print!(
            "{}",
            before.table("test, the model fine-tuning started from")
        );
    }
    print!("{}", test_report.table(&format!("test: {}", split.kind)));
    let mut metrics = json!({
        "test": test_report,
        "validation": val_report,
        "parity": fitted.parity,
        "best_epoch": fitted.best_epoch,
        "epochs_run": fitted.epochs_run,
        "measured_with": format!("ecg-train (ONNX Runtime, {} test rows)", test.len()),
    });
    if let Some(before) = job.before {
        metrics["test_before_finetuning"] = serde_json::to_value(before)?;
    }
    if !split.kind.contains("RANDOM") {
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
    config.insert("arch".into(), serde_json::to_value(job.arch)?);
    config.insert("network".into(), network);
    config.insert(
        "record".into(),
        json!(fitted
            .record_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())),
    );
    config.extend(job.notes);
    let card = ModelCard {
        name: name.to_string(),
        version: version.to_string(),
        file: format!("{name}.onnx"),
        sha256: sha256_hex(&fitted.bytes),
        labels: job.labels.clone(),
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
            label_rule: job.label_rule.clone(),
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
        "wrote {}, {} and {}",
        fitted.onnx_path.display(),
        fitted.record_path.display(),
        card_path.display()
    );
    Ok(card_path)
}

/// An architecture's hyper-parameters, as `fit` needs them of each: its
/// defaults, its class count, a check, the network and its ONNX writer.
trait Network: serde::Serialize + serde::de::DeserializeOwned + Clone {
    type Net: Classifier;
    /// The paper's (or our other models') hyper-parameters for heartbeat rows.
    fn defaults() -> Self;
    fn classes(&self) -> usize;
    fn with_classes(self, classes: usize) -> Self;
    /// Why these hyper-parameters make no network, if they do not.
    fn check(&self) -> Result<(), String>;
    fn init(&self, device: &burn::prelude::Device) -> Self::Net;
    fn export(net: &Self::Net, cfg: &Self, name: &str, version: &str) -> Vec<u8>;
}

/// Why an odd kernel is needed ("same" padding of k / 2 on each side).
fn odd(what: &str, kernel: usize) -> Result<(), String> {
    if kernel.is_multiple_of(2) {
        return Err(format!("{what} {kernel} must be odd (\"same\" padding)"));
    }
    Ok(())
}

/// Why `heads` cannot split `width` channels, if it cannot.
fn divides(heads: usize, width: usize, what: &str) -> Result<(), String> {
    if heads == 0 || !width.is_multiple_of(heads) {
        return Err(format!(
            "heads {heads} must divide {what} {width} (each head reads width / heads channels)"
        ));
    }
    Ok(())
}

impl Network for ResNetConfig {
    type Net = super::resnet::ResNet;
    fn defaults() -> Self {
        ResNetConfig::new()
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn with_classes(self, classes: usize) -> Self {
        ResNetConfig::with_classes(self, classes)
    }
    fn check(&self) -> Result<(), String> {
        self.validate()
    }
    fn init(&self, device: &burn::prelude::Device) -> Self::Net {
        ResNetConfig::init(self, device)
    }
    fn export(net: &Self::Net, cfg: &Self, name: &str, version: &str) -> Vec<u8> {
        super::onnx::export_resnet(net, cfg, name, version)
    }
}

impl Network for AttentionNetConfig {
    type Net = super::model::AttentionNet;
    fn defaults() -> Self {
        AttentionNetConfig::beat(1, LENGTH, 0)
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn with_classes(self, classes: usize) -> Self {
        AttentionNetConfig::with_classes(self, classes)
    }
    fn check(&self) -> Result<(), String> {
        odd("conv1_kernel", self.conv1_kernel)?;
        odd("conv2_kernel", self.conv2_kernel)?;
        divides(self.heads, self.conv2_filters, "conv2_filters")?;
        if self.tokens() == 0 {
            return Err(format!(
                "{} samples make no token of {} samples (4 x conv1_stride x token_stride)",
                self.input_samples,
                self.samples_per_token()
            ));
        }
        Ok(())
    }
    fn init(&self, device: &burn::prelude::Device) -> Self::Net {
        AttentionNetConfig::init(self, device)
    }
    fn export(net: &Self::Net, cfg: &Self, name: &str, version: &str) -> Vec<u8> {
        super::onnx::export(net, cfg, name, version)
    }
}

impl Network for CnnLstmConfig {
    type Net = super::cnn_lstm::CnnLstm;
    fn defaults() -> Self {
        CnnLstmConfig::new()
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn with_classes(self, classes: usize) -> Self {
        CnnLstmConfig::with_classes(self, classes)
    }
    fn check(&self) -> Result<(), String> {
        odd("kernel", self.kernel)
    }
    fn init(&self, device: &burn::prelude::Device) -> Self::Net {
        CnnLstmConfig::init(self, device)
    }
    fn export(net: &Self::Net, cfg: &Self, name: &str, version: &str) -> Vec<u8> {
        super::onnx::export_cnn_lstm(net, cfg, name, version)
    }
}

impl Network for CrtNetConfig {
    type Net = super::crt_net::CrtNet;
    fn defaults() -> Self {
        CrtNetConfig::new()
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn with_classes(self, classes: usize) -> Self {
        CrtNetConfig::with_classes(self, classes)
    }
    fn check(&self) -> Result<(), String> {
        odd("kernel", self.kernel)?;
        divides(
            self.heads,
            self.d_model(),
            "the encoder's width 2 x gru_hidden",
        )
    }
    fn init(&self, device: &burn::prelude::Device) -> Self::Net {
        CrtNetConfig::init(self, device)
    }
    fn export(net: &Self::Net, cfg: &Self, name: &str, version: &str) -> Vec<u8> {
        super::onnx::export_crt_net(net, cfg, name, version)
    }
}

/// Hyper-parameters the rows fix: `--network` may not set them.
const FIXED_BY_THE_ROWS: [&str; 6] = [
    "input_samples",
    "input_channels",
    "features",
    "feature_units",
    "feature_logits",
    "classes",
];

/// `base` (an architecture's hyper-parameters as JSON) with `--network`'s
/// `key=value` items set: each key one the architecture has, each value of
/// the default's kind (a count stays a count of at least 1).
fn with_overrides(
    arch: Arch,
    base: serde_json::Value,
    items: &[String],
) -> Result<serde_json::Value> {
    let serde_json::Value::Object(mut map) = base else {
        bail!("{arch:?}'s hyper-parameters are not a mapping");
    };
    let settable: Vec<String> = map
        .keys()
        .filter(|k| !FIXED_BY_THE_ROWS.contains(&k.as_str()))
        .cloned()
        .collect();
    let name = serde_json::to_value(arch)?;
    let name = name.as_str().unwrap_or_default();
    for item in items {
        let Some((key, value)) = item.split_once('=') else {
            bail!("--network {item}: expected key=value, e.g. --network heads=4,dense=64");
        };
        let key = key.trim().replace('-', "_");
        if FIXED_BY_THE_ROWS.contains(&key.as_str()) {
            bail!("--network {key}: set by the rows (187 samples, one channel, no feature input, the data's classes), not by hand");
        }
        let Some(slot) = map.get_mut(&key) else {
            bail!(
                "--network {key}: {name} has no such hyper-parameter; accepted: {}",
                settable.join(", ")
            );
        };
        let value = value.trim();
        let parsed: serde_json::Value =
            serde_json::from_str(value).unwrap_or_else(|_| json!(value));
        let fits = match (&*slot, &parsed) {
            (serde_json::Value::Number(d), serde_json::Value::Number(v)) if d.is_u64() => {
                v.as_u64().is_some_and(|v| v >= 1)
            }
            (serde_json::Value::Number(_), serde_json::Value::Number(v)) => {
                v.as_f64().is_some_and(|v| v >= 0.0)
            }
            (serde_json::Value::Bool(_), serde_json::Value::Bool(_)) => true,
            _ => false,
        };
        if !fits {
            bail!(
                "--network {key}={value}: expected {} (the default is {slot})",
                match &*slot {
                    serde_json::Value::Number(d) if d.is_u64() => "a whole number of at least 1",
                    serde_json::Value::Number(_) => "a number of at least 0",
                    serde_json::Value::Bool(_) => "true or false",
                    _ => "the default's kind",
                }
            );
        }
        *slot = parsed;
    }
    Ok(serde_json::Value::Object(map))
}

/// Trains, exports and checks one architecture: the hyper-parameters as
/// trained (`job.network`, fine-tuning: its class count may differ from
/// this run's) or the defaults with `job.overrides`, then this run's
/// classes. Returns the fit and the hyper-parameters for the card.
fn fit_network<C: Network>(
    job: &Job,
    cfg: &mut TrainingConfig,
    sets: [&WindowSet; 3],
    base: &Path,
) -> Result<(super::training::Fitted, serde_json::Value)> {
    let classes = job.labels.len();
    let start = match &job.network {
        Some(trained) => trained.clone(),
        None => with_overrides(
            job.arch,
            serde_json::to_value(C::defaults().with_classes(classes))?,
            job.overrides,
        )?,
    };
    let c0: C = serde_json::from_value(start).context("--network")?;
    c0.check().map_err(|e| anyhow::anyhow!("--network: {e}"))?;
    let c = c0.clone().with_classes(classes);
    let (name, version) = (job.name, job.version);
    let fitted = fit_and_export_with(
        cfg,
        (
            classes,
            initial(|d| c0.init(d), &job.start, (c0.classes(), classes)),
        ),
        sets,
        base,
        |net| C::export(net, &c, name, version),
    )?;
    Ok((fitted, serde_json::to_value(&c)?))
}

/// The training loop's settings for heartbeat rows.
fn loop_config(
    (epochs, batch_size, patience): (usize, usize, usize),
    (lr, lr_decay): (f64, f64),
    class_weight_power: f64,
    noise_std: f64,
    seed: u64,
) -> TrainingConfig {
    TrainingConfig::new(AttentionNetConfig::beat(1, LENGTH, 0))
        .with_max_epochs(epochs)
        .with_batch_size(batch_size)
        .with_learning_rate(lr)
        .with_lr_decay(lr_decay)
        .with_patience(patience)
        .with_noise_std(noise_std)
        .with_class_weight_power(class_weight_power)
        .with_max_class_weight(10.0)
        .with_soft_targets(false)
        .with_selection(Selection::MacroF1)
        .with_seed(seed)
}

/// `ecg-train heartbeat`: trains `opts.arch` from fresh weights on the rows.
pub fn run(opts: &HeartbeatTrainOptions) -> Result<PathBuf> {
    let (split, sets) = sets(opts)?;
    let mut notes = serde_json::Map::new();
    notes.insert(
        "choices".into(),
        json!("the network as its paper (or our other models) has it and Adam at 1e-3; batch, decay, patience and no class weights set before training, none tuned; the epoch kept is the validation rows' best macro F1; the test rows were read once, after training"),
    );
    if let Some(m) = opts.max_train_rows {
        notes.insert("max_train_rows".into(), json!(m));
    }
    let job = Job {
        out: &opts.out,
        name: &opts.name,
        version: &opts.version,
        arch: opts.arch,
        network: None,
        overrides: &opts.network,
        cfg: loop_config(
            (opts.epochs, opts.batch_size, opts.patience),
            (opts.lr, opts.lr_decay),
            opts.class_weight_power,
            opts.noise_std,
            opts.seed,
        ),
        start: Start::Fresh,
        notes,
        before: None,
        labels: strings(&labels()),
        label_rule: AAMI_RULE.into(),
    };
    fit(job, split, sets)
}

/// What `ecg-train finetune --freeze` keeps fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Freeze {
    /// The feature extractor (convolutions, attention or LSTM): only the
    /// dense head learns.
    Backbone,
    /// Nothing: every weight learns, from the trained ones.
    None,
}

/// `ecg-train finetune`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct FinetuneOptions {
    /// The heartbeat model to start from (.onnx): its card (.json) and burn
    /// record (.bpk, which `ecg-train heartbeat` writes) beside it.
    #[arg(long)]
    pub from: PathBuf,
    #[arg(long, value_enum, default_value = "backbone")]
    pub freeze: Freeze,
    /// Heartbeat CSV to fine-tune on (e.g. `ecg-train dataset ptb`'s output,
    /// or the Kaggle ptbdb files); a random 10 % of its rows picks the epoch.
    #[arg(long, conflicts_with = "db")]
    pub data: Option<PathBuf>,
    /// Heartbeat CSV of held-out rows, measured before and after (with --data).
    #[arg(long, requires = "data")]
    pub test: Option<PathBuf>,
    /// Or: a folder of WFDB records with beat annotations (.atr), at any rate.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// With --db: records to fine-tune on (a random 10 % of their rows picks the epoch).
    #[arg(long, value_delimiter = ',', requires = "db")]
    pub records: Vec<String>,
    /// With --db: held-out records, measured before and after.
    #[arg(long, value_delimiter = ',', requires = "db")]
    pub test_records: Vec<String>,
    /// With --db: the lead (another name falls back to the first lead with a warning).
    #[arg(long, default_value = "ECG1")]
    pub lead: String,
    /// The classes of the new data, in class-index order (default: the
    /// model's). Another number of classes than the model's gives it a new
    /// last layer, e.g. `healthy,MI` for PTB.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    #[arg(long, default_value = "ecg-heartbeat-finetuned")]
    pub name: String,
    #[arg(long, default_value = "1.0.0")]
    pub version: String,
    #[arg(long, default_value_t = 6)]
    pub epochs: usize,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.9)]
    pub lr_decay: f64,
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Use at most this many rows per set (quick checks).
    #[arg(long)]
    pub max_rows: Option<usize>,
}

/// The part of a heartbeat card's `training` that fine-tuning reads back.
#[derive(Debug, serde::Deserialize)]
struct TrainedWith {
    arch: Arch,
    network: serde_json::Value,
    record: String,
}

/// `ecg-train finetune`: a trained heartbeat model adapted to other rows
/// (other records, or another task with a new last layer), its backbone
/// frozen or not, measured on held-out rows before and after.
pub fn finetune(opts: &FinetuneOptions) -> Result<PathBuf> {
    let (card, bytes) = ModelCard::open(&opts.from)?;
    card.heartbeat()?;
    let trained: TrainedWith = serde_json::from_value(serde_json::Value::Object(
        card.training.config.clone(),
    ))
    .with_context(|| {
        format!(
            "{}: its card's training does not name its arch, network and record (not trained by ecg-train heartbeat?)",
            opts.from.display()
        )
    })?;
    let record = card
        .model_path(&opts.from.with_extension("json"))
        .with_file_name(&trained.record);
    let mut rng = SplitMix::new(opts.seed);
    let (pool, test, split) = match (&opts.data, &opts.db) {
        (Some(data), _) => {
            let Some(test) = &opts.test else {
                bail!("--data needs --test: the held-out rows measured before and after");
            };
            let split = Split {
                kind: format!(
                    "fine-tuned on {} (a random 10 % of its rows for validation), tested on {}",
                    data.display(),
                    test.display()
                ),
                train_records: vec![data.display().to_string()],
                validation_records: vec![data.display().to_string()],
                test_records: vec![test.display().to_string()],
                excluded_records: vec![],
            };
            (load_csv(data)?, load_csv(test)?, split)
        }
        (None, Some(db)) => {
            if opts.records.is_empty() || opts.test_records.is_empty() {
                bail!("--db needs --records to fine-tune on and --test-records to measure");
            }
            if let Some(r) = opts.test_records.iter().find(|r| opts.records.contains(r)) {
                bail!("record {r} is in both --records and --test-records: the test records must be held out");
            }
            let d = db.display();
            let split = Split {
                kind: format!(
                    "fine-tuned on records of {d} (a random 10 % of their rows for validation), tested on other records of {d}"
                ),
                train_records: opts.records.clone(),
                validation_records: opts.records.clone(),
                test_records: opts.test_records.clone(),
                excluded_records: vec![],
            };
            (
                load_db(db, &opts.records, &opts.lead)?,
                load_db(db, &opts.test_records, &opts.lead)?,
                split,
            )
        }
        (None, None) => bail!("give the rows to fine-tune on: --data FILE.csv --test FILE.csv, or --db DIR --records ... --test-records ..."),
    };
    let mut idx: Vec<usize> = (0..pool.len()).collect();
    rng.shuffle(&mut idx);
    let (val_idx, train_idx) = idx.split_at(pool.len() / 10);
    let test = capped(test, opts.max_rows, &mut rng);
    let train = capped(pool.subset(train_idx), opts.max_rows, &mut rng);
    let val = capped(pool.subset(val_idx), opts.max_rows, &mut rng);
    let labels = if opts.labels.is_empty() {
        card.labels.clone()
    } else {
        opts.labels.clone()
    };
    // The model as it is, on the held-out rows (when it has their classes).
    let before = if labels == card.labels {
        let mut session = Runtime::get()?.session(&bytes, 2, Provider::Cpu)?;
        let names: Vec<&str> = labels.iter().map(String::as_str).collect();
        Some(MultiReport::new(
            &MultiReport::argmax(&predict_onnx(&mut session, &test, 256)?, names.len()),
            &test.labels,
            &names,
        ))
    } else {
        None
    };
    let mut notes = serde_json::Map::new();
    notes.insert(
        "finetuned_from".into(),
        json!({
            "name": card.name, "version": card.version, "sha256": card.sha256,
            "freeze": opts.freeze, "labels": card.labels,
            "new_head": labels.len() != card.labels.len(),
        }),
    );
    let label_rule = match card.heartbeat()?.label_rule.as_str() {
        rule if labels == card.labels => rule.to_string(),
        _ => format!(
            "the row's class column, 0-{}: {}",
            labels.len() - 1,
            labels.join(", ")
        ),
    };
    let job = Job {
        out: &opts.out,
        name: &opts.name,
        version: &opts.version,
        arch: trained.arch,
        network: Some(trained.network),
        overrides: &[],
        cfg: loop_config(
            (opts.epochs, opts.batch_size, opts.patience),
            (opts.lr, opts.lr_decay),
            0.0,
            0.0,
            opts.seed,
        ),
        start: Start::From {
            record: &record,
            freeze: opts.freeze == Freeze::Backbone,
        },
        notes,
        before,
        labels,
        label_rule,
    };
    fit(job, split, [train, val, test])
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
