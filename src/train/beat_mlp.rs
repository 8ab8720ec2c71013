//! `ecg-train beat`: the beat model 2: a small network ([`super::mlp`]) on
//! per-beat RR features and on features that judge each beat against its own
//! patient ([`crate::signal::beat_features`]), trained on MIT-BIH DS1 and the
//! MIT-BIH Supraventricular Arrhythmia Database (svdb), every choice made by
//! record-wise cross-validation over those records, then DS2 once. With
//! `--augment noise-rate` (the default) every training record also trains as
//! one noisy copy at another sampling rate ([`super::augment`]); the
//! cross-validation scores the clean records only.
//!
//! **The protocol.** Grouped k-fold over the training records (a record is
//! never split; folds from a seeded shuffle of the record names). Each
//! candidate configuration of [`grid`] is fitted k times; the held-out
//! predictions of all folds are pooled into one EC57-style table per
//! candidate. The candidate with the best mean of S F1 and V F1 (the classes
//! the clinical targets are stated in) is refitted on all the records and
//! shipped. DS2 is not read until then; `--cv-only` stops before it.
//!
//! **Why no morphology network.** Stacking this layer on the 1.0.0 network's
//! logits (`ecg-beat-net`) cross-validated no better (README, "The beat
//! model"), and an honest stack can train only on records the network never
//! saw, which leaves out DS1's atrial fibrillation (201, 203) and most of its
//! F beats (208): the very beats whose confusion with S the features are for.
//! The model reads only `features`; it has no attention output.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde::Serialize;
use serde_json::json;

use super::augment::{augmented, load_noise};
use super::beat::{label_rule, labels as beat_labels, per_record};
use super::data::{load_beats, load_record, record_beats, SplitMix, WindowSet, DS1, DS2, PACED};
use super::experiment::strings;
use super::inference::logits_onnx;
use super::metrics::MultiReport;
use super::mlp::{Ensemble, Examples, MlpConfig};
use super::onnx::export_mlp;
use crate::engine::{softmax, Provider, Runtime};
use crate::model::card::{sha256_hex, BeatDecision, Split, TensorSpec, TrainingRecord};
use crate::model::preprocess::{BeatWindow, Normalisation};
use crate::model::{BeatModel, BeatPreprocessing, ModelCard, ModelKind};
use crate::signal::beat_features;
use crate::signal::rr::RrFeatures;

/// Everything `ecg-train beat` needs (its command-line options too).
#[derive(Debug, Clone, clap::Args)]
pub struct BeatMlpOptions {
    /// Folder of MIT-BIH Arrhythmia records.
    #[arg(long, env = "ECG_DB", default_value = "../shared/data/mitdb")]
    pub db: PathBuf,
    /// Folder of MIT-BIH Supraventricular Arrhythmia records (svdb).
    #[arg(long, env = "ECG_SVDB", default_value = "../shared/data/svdb")]
    pub svdb: PathBuf,
    /// The svdb lead read (its leads are ECG1 and ECG2; ECG1 is close to MLII).
    #[arg(long, default_value = "ECG1")]
    pub svdb_lead: String,
    /// Output folder for <name>.onnx, <name>.json (card) and <name>.report.json.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    #[arg(long, default_value = "ecg-beat")]
    pub name: String,
    #[arg(long, default_value = "2.3.0")]
    pub version: String,
    /// Folds of the record-wise cross-validation.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Seed of the fold assignment.
    #[arg(long, default_value_t = 2004)]
    pub fold_seed: u64,
    /// Cross-validate the candidates and stop: no final fit, no test set.
    #[arg(long)]
    pub cv_only: bool,
    /// Only these candidates (comma-separated; all by default): each item
    /// selects the candidate of that name or, where none has it, every
    /// candidate whose name contains it.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Write the training rows (record, fold, R-peak sample, label, features) to this CSV
    /// file, for study outside the trainer.
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Write every candidate's cross-validation table and per-record confusions
    /// (held-out predictions, clean records) to this JSON file, `--cv-only` or not.
    #[arg(long)]
    pub cv_report: Option<PathBuf>,
    /// Use at most this many svdb records (0: none; tiny CI runs).
    #[arg(long)]
    pub max_svdb_records: Option<usize>,
    /// MIT-BIH records to train on (comma-separated; DS1 by default).
    #[arg(long, value_delimiter = ',')]
    pub mitdb_records: Option<Vec<String>>,
    /// Augmentation: `noise-rate` adds to every training record one copy with
    /// nstdb noise at a random SNR, resampled to a random rate (train::augment);
    /// cross-validation scores the clean records only. Chosen by CV: S / V F1
    /// 0.576 / 0.849 with it, 0.558 / 0.838 without (`ensemble5-w0`).
    #[arg(long, value_enum, default_value_t = Augment::NoiseRate)]
    pub augment: Augment,
    /// Folder of the MIT-BIH Noise Stress Test Database (its bw, em, ma).
    #[arg(long, env = "ECG_NSTDB", default_value = "../shared/data/nstdb")]
    pub nstdb: PathBuf,
    /// Seed of the augmentation draws.
    #[arg(long, default_value_t = 118)]
    pub augment_seed: u64,
    /// Network settings that replace the candidates' own (for sweeps and
    /// studies; unset: each candidate as [`grid`] defines it).
    #[command(flatten)]
    pub network: NetworkOverrides,
}

/// Settings of [`MlpConfig`] that, when given, replace those of every
/// candidate the run cross-validates (its name then says so).
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct NetworkOverrides {
    /// Hidden layer widths (comma-separated, e.g. 64,32).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// Training epochs of each network.
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Factor on the learning rate after every epoch.
    #[arg(long)]
    pub lr_decay: Option<f64>,
    /// L2 penalty on the weights.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Class weights (n / (k n_c)) ^ power (0: none, 1: inverse frequency).
    #[arg(long)]
    pub class_weight_power: Option<f64>,
    /// Networks in the ensemble (their logits are averaged).
    #[arg(long)]
    pub members: Option<usize>,
    /// Seed of the first network (the others take the next ones).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl NetworkOverrides {
    /// `candidate` with the given settings in place of its own; its name
    /// gains them (`all[epochs=5,members=3]`).
    fn apply(&self, mut candidate: Candidate) -> Candidate {
        let mut set = Vec::new();
        let mlp = &mut candidate.mlp;
        macro_rules! put {
            ($($field:ident),*) => {$(
                if let Some(v) = &self.$field {
                    mlp.$field = v.clone();
                    set.push(format!("{}={:?}", stringify!($field), v));
                }
            )*};
        }
        put!(
            hidden,
            epochs,
            batch_size,
            learning_rate,
            lr_decay,
            weight_decay,
            class_weight_power,
            members,
            seed
        );
        if !set.is_empty() {
            candidate.name = format!("{}[{}]", candidate.name, set.join(","));
        }
        candidate
    }

    /// Whether the settings can train (a one-line error naming the flag).
    fn check(&self) -> Result<()> {
        let positive = [
            ("--epochs", self.epochs),
            ("--batch-size", self.batch_size),
            ("--members", self.members),
        ];
        for (flag, v) in positive {
            ensure!(v != Some(0), "{flag} must be at least 1");
        }
        if let Some(h) = &self.hidden {
            ensure!(
                !h.is_empty() && !h.contains(&0),
                "--hidden: widths must be at least 1 (e.g. 64,32)"
            );
        }
        for (flag, v) in [
            ("--learning-rate", self.learning_rate),
            ("--lr-decay", self.lr_decay),
        ] {
            ensure!(
                v.is_none_or(|v| v > 0.0 && v.is_finite()),
                "{flag} must be a positive number"
            );
        }
        for (flag, v) in [
            ("--weight-decay", self.weight_decay),
            ("--class-weight-power", self.class_weight_power),
        ] {
            ensure!(
                v.is_none_or(|v| v >= 0.0 && v.is_finite()),
                "{flag} must be zero or more"
            );
        }
        Ok(())
    }
}

/// How training records are augmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    None,
    NoiseRate,
}

/// The suffix of an augmented copy's record name.
const COPY: &str = "+augmented";

fn is_copy(record: &str) -> bool {
    record.ends_with(COPY)
}

/// The rows of `set` that are not augmented copies (what CV scores).
fn clean_rows(set: &WindowSet) -> Vec<usize> {
    (0..set.len())
        .filter(|&i| !is_copy(&set.records[i]))
        .collect()
}

/// The inputs a candidate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Inputs {
    /// The beat and beat-minus-template waveform points (`w..`, `d..`).
    pub waveform: bool,
    /// Everything of [`beat_features`] (false: the nine RR features alone).
    pub beat_features: bool,
    /// The rhythm-context features ([`beat_features::CONTEXT`]).
    pub context: bool,
    /// The P-wave fit against a population prior ([`beat_features::ATRIAL`]).
    pub atrial: bool,
    /// The timing measured against the record's majority: all of it, all but
    /// the median-relative ([`MEDIAN_TIMING`] left out) or none of it
    /// ([`SLOW_TIMING`] left out too).
    pub majority: Majority,
}

/// The timing features whose yardstick is the record's majority:
/// [`MEDIAN_TIMING`] and [`SLOW_TIMING`]. Where ectopic beats outnumber sinus
/// beats (MIT-BIH 232, svdb 865) every one of them is the ectopic rhythm's,
/// and an atrial premature beat measures as on time. What is left without
/// them judges a beat against its neighbours (the local mean RR, the beats
/// before and after) and the 5-minute average RR.
///
/// Those measured against a median: the record's median RR (and the RRs
/// relative to it) and the dominant beats' median RR (the normal RR).
pub const MEDIAN_TIMING: [&str; 7] = [
    "rr_record_s",
    "rr_pre_rel",
    "rr_post_rel",
    "rr_local_rel",
    "pre_normal",
    "post_normal",
    "local_normal",
];

/// Those measured against the dominant beats' 75th percentile RR (the slow
/// normal RR), which stays the sinus rhythm's until ectopic beats are three
/// in four.
pub const SLOW_TIMING: [&str; 2] = ["pre_slow", "local_slow"];

/// How much of the majority-relative timing a candidate keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Majority {
    All,
    SlowOnly,
    None,
}

impl Majority {
    fn drops(self, name: &str) -> bool {
        match self {
            Majority::All => false,
            Majority::SlowOnly => MEDIAN_TIMING.contains(&name),
            Majority::None => MEDIAN_TIMING.contains(&name) || SLOW_TIMING.contains(&name),
        }
    }
}

/// One configuration the cross-validation compares.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub name: String,
    pub inputs: Inputs,
    pub mlp: MlpConfig,
}

/// The candidates: the default design, what each input group and the class
/// weighting are worth, and a wider network trained longer.
pub fn grid() -> Vec<Candidate> {
    let all = Inputs {
        waveform: true,
        beat_features: true,
        context: false,
        atrial: false,
        majority: Majority::All,
    };
    let base = MlpConfig::default();
    let mut out = Vec::new();
    let mut add = |name: &str, inputs: Inputs, mlp: MlpConfig| {
        out.push(Candidate {
            name: name.into(),
            inputs,
            mlp,
        })
    };
    add("all", all, base.clone());
    add(
        "rr-only",
        Inputs {
            waveform: false,
            beat_features: false,
            context: false,
            atrial: false,
            majority: Majority::All,
        },
        base.clone(),
    );
    add(
        "no-waveform",
        Inputs {
            waveform: false,
            ..all
        },
        base.clone(),
    );
    for power in [0.0, 1.0] {
        add(
            &format!("weights^{power}"),
            all,
            MlpConfig {
                class_weight_power: power,
                ..base.clone()
            },
        );
    }
    add(
        "wide-long",
        all,
        MlpConfig {
            hidden: vec![128, 64],
            epochs: 20,
            ..base.clone()
        },
    );
    add(
        "ensemble5",
        all,
        MlpConfig {
            members: 5,
            ..base.clone()
        },
    );
    add(
        "ensemble5-w0",
        all,
        MlpConfig {
            members: 5,
            class_weight_power: 0.0,
            ..base.clone()
        },
    );
    let ensemble5_w0 = MlpConfig {
        members: 5,
        class_weight_power: 0.0,
        ..base
    };
    let context = Inputs {
        context: true,
        ..all
    };
    add("context-ensemble5-w0", context, ensemble5_w0.clone());
    add(
        "context-ensemble5-w0-no-majority",
        Inputs {
            majority: Majority::None,
            ..context
        },
        ensemble5_w0.clone(),
    );
    add(
        "context-ensemble5-w0-slow-only",
        Inputs {
            majority: Majority::SlowOnly,
            ..context
        },
        ensemble5_w0.clone(),
    );
    add(
        "context-ensemble5-w0-atrial",
        Inputs {
            atrial: true,
            ..context
        },
        ensemble5_w0,
    );
    out
}

/// The candidates `only` names ([`BeatMlpOptions::only`]), in grid order;
/// all of them for an empty list. An item that selects nothing is an error
/// that lists the names.
pub fn select(grid: Vec<Candidate>, only: &[String]) -> Result<Vec<Candidate>> {
    if only.is_empty() {
        return Ok(grid);
    }
    let picks = |o: &String, c: &Candidate| {
        if grid.iter().any(|c| &c.name == o) {
            &c.name == o
        } else {
            c.name.contains(o.as_str())
        }
    };
    if let Some(o) = only.iter().find(|o| !grid.iter().any(|c| picks(o, c))) {
        let all: Vec<&str> = grid.iter().map(|c| c.name.as_str()).collect();
        anyhow::bail!(
            "--only {o:?} matches no candidate; the candidates are {}",
            all.join(", ")
        );
    }
    let keep: Vec<bool> = grid
        .iter()
        .map(|c| only.iter().any(|o| picks(o, c)))
        .collect();
    Ok(grid
        .into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect())
}

/// The shipped preprocessing: MLII at 360 Hz, 0.5-50 Hz, no window input,
/// the nine RR features then every [`beat_features::NAMES`].
pub fn preprocessing() -> BeatPreprocessing {
    let mitdb = BeatPreprocessing::mitdb_beat();
    BeatPreprocessing {
        beat: BeatWindow {
            before_samples: 0,
            after_samples: 0,
            template: false,
            features: strings(&RrFeatures::NAMES)
                .into_iter()
                .chain(strings(&beat_features::NAMES))
                .collect(),
            ..mitdb.beat
        },
        normalisation: Normalisation::Zscore,
        ..mitdb
    }
}

/// Which feature columns a candidate keeps; the others are set to zero (a
/// zero column standardises to zero, so the layer cannot use it, and the
/// graph keeps one shape).
fn mask(inputs: Inputs, names: &[String]) -> Vec<bool> {
    let waveform = |n: &str| {
        n.len() == 3 && (n.starts_with('w') || n.starts_with('d')) && n[1..].parse::<u8>().is_ok()
    };
    let rr = |n: &str| RrFeatures::NAMES.contains(&n);
    let context = |n: &str| beat_features::CONTEXT.contains(&n);
    let atrial = |n: &str| beat_features::ATRIAL.contains(&n);
    names
        .iter()
        .map(|n| {
            !inputs.majority.drops(n)
                && (rr(n)
                    || (inputs.beat_features
                        && (inputs.waveform || !waveform(n))
                        && (inputs.context || !context(n))
                        && (inputs.atrial || !atrial(n))))
        })
        .collect()
}

/// Rows `idx` of `set`'s features with the columns `keep` leaves out zeroed.
fn rows(set: &WindowSet, idx: &[usize], keep: &[bool]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * set.n_features);
    for &i in idx {
        let row = set.feature_row(i).iter().zip(keep);
        out.extend(row.map(|(&v, &k)| if k { v } else { 0.0 }));
    }
    out
}

fn fit(set: &WindowSet, idx: &[usize], keep: &[bool], cfg: &MlpConfig, classes: usize) -> Ensemble {
    let x = rows(set, idx, keep);
    let y: Vec<u8> = idx.iter().map(|&i| set.labels[i]).collect();
    Ensemble::fit(
        &Examples {
            rows: &x,
            width: set.n_features,
            labels: &y,
            classes,
        },
        cfg,
    )
}

/// Pooled held-out predictions of one candidate over the folds. As the folds
/// finish, in fold order, the scores pooled over the folds so far go to
/// [`super::tracking::log_metrics`] as `fold_score`, `fold_S_F1`, `fold_V_F1`
/// and `fold_accuracy` at step `first_step + folds scored` (what a sweep prunes
/// on; the values do not depend on the thread count).
fn cross_validate(
    set: &WindowSet,
    folds: &[usize],
    k: usize,
    candidate: &Candidate,
    names: &[String],
    labels: &[&str],
    first_step: u64,
) -> (MultiReport, Vec<u8>) {
    let keep = mask(candidate.inputs, names);
    let copy: Vec<bool> = set.records.iter().map(|r| is_copy(r)).collect();
    let fold = |f: usize| {
        let train: Vec<usize> = (0..set.len()).filter(|&i| folds[i] != f).collect();
        // Scored on the clean records only; their copies train the other folds.
        let held: Vec<usize> = (0..set.len())
            .filter(|&i| folds[i] == f && !copy[i])
            .collect();
        let mlp = fit(set, &train, &keep, &candidate.mlp, labels.len());
        let logits = mlp.logits(&rows(set, &held, &keep));
        let predicted: Vec<u8> = logits.chunks(labels.len()).map(argmax).collect();
        (held, predicted)
    };
    // Folds are independent: one thread per core takes the next fold, each fit
    // single-threaded (the result does not depend on the thread count).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut predicted = vec![0u8; set.len()];
    let mut scored: Vec<usize> = Vec::new();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..threads.min(k) {
            let (tx, fold, next) = (tx.clone(), &fold, &next);
            scope.spawn(move || loop {
                let f = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if f >= k || tx.send((f, fold(f))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut done: Vec<Option<(Vec<usize>, Vec<u8>)>> = vec![None; k];
        let mut in_order = 0;
        for (f, result) in rx {
            done[f] = Some(result);
            while let Some((held, p)) = done.get_mut(in_order).and_then(Option::take) {
                for (&i, c) in held.iter().zip(p) {
                    predicted[i] = c;
                }
                scored.extend(held);
                in_order += 1;
                let so_far = MultiReport::new(
                    &scored.iter().map(|&i| predicted[i]).collect::<Vec<_>>(),
                    &scored.iter().map(|&i| set.labels[i]).collect::<Vec<_>>(),
                    labels,
                );
                super::tracking::log_metrics(
                    &[
                        ("fold_score", score(&so_far)),
                        ("fold_S_F1", f1(&so_far, "S")),
                        ("fold_V_F1", f1(&so_far, "V")),
                        ("fold_accuracy", so_far.accuracy),
                    ],
                    first_step + in_order as u64,
                );
            }
        }
    });
    let clean = clean_rows(set);
    let report = MultiReport::new(
        &clean.iter().map(|&i| predicted[i]).collect::<Vec<_>>(),
        &clean.iter().map(|&i| set.labels[i]).collect::<Vec<_>>(),
        labels,
    );
    (report, predicted)
}

fn argmax(row: &[f32]) -> u8 {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u8
}

fn f1(r: &MultiReport, label: &str) -> f64 {
    r.classes
        .iter()
        .find(|c| c.label == label)
        .map_or(0.0, |c| c.f1)
}

/// Mean F1 of S and V: what the candidates are ranked by.
fn score(r: &MultiReport) -> f64 {
    (f1(r, "S") + f1(r, "V")) / 2.0
}

/// One line of the CV table.
pub fn summary_line(name: &str, r: &MultiReport) -> String {
    let mut s = format!("{name:<14} acc {:>6.2}%", 100.0 * r.accuracy);
    for l in ["N", "S", "V", "F"] {
        if let Some(c) = r.classes.iter().find(|c| c.label == l) {
            s.push_str(&format!(
                "  {l} Se {:>5.1} +P {:>5.1} F1 {:.3}",
                100.0 * c.recall,
                100.0 * c.precision,
                c.f1
            ));
        }
    }
    s
}

/// Fold of each record: a seeded shuffle of the sorted names, dealt round robin.
pub fn record_folds(records: &[String], k: usize, seed: u64) -> Vec<(String, usize)> {
    let mut names = records.to_vec();
    names.sort();
    SplitMix::new(seed).shuffle(&mut names);
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, i % k.max(1)))
        .collect()
}

fn dump(path: &Path, set: &WindowSet, folds: &[usize], names: &[String]) -> Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "record,fold,sample,label,{}", names.join(","))?;
    for (i, ((record, fold), label)) in set.records.iter().zip(folds).zip(&set.labels).enumerate() {
        let row: Vec<String> = set.feature_row(i).iter().map(|v| v.to_string()).collect();
        let sample = set.starts[i];
        writeln!(w, "{record},{fold},{sample},{label},{}", row.join(","))?;
    }
    Ok(())
}

/// The training records: MIT-BIH (DS1 by default) and svdb, loaded.
fn training_set(
    opts: &BeatMlpOptions,
    prep: &BeatPreprocessing,
) -> Result<(WindowSet, Vec<String>)> {
    let mitdb = opts.mitdb_records.clone().unwrap_or_else(|| strings(&DS1));
    if let Some(r) = mitdb
        .iter()
        .find(|r| DS2.contains(&r.as_str()) || PACED.contains(&r.as_str()))
    {
        anyhow::bail!("record {r} is a test (DS2) or paced record; it cannot train");
    }
    let mut svdb: Vec<String> = match opts.max_svdb_records {
        Some(0) => Vec::new(),
        _ => std::fs::read_dir(&opts.svdb)
            .with_context(|| format!("cannot read {}", opts.svdb.display()))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|f| f.strip_suffix(".atr").map(str::to_string))
            .collect(),
    };
    svdb.sort();
    if let Some(m) = opts.max_svdb_records {
        svdb.truncate(m);
    }
    eprintln!(
        "training records: {} MIT-BIH ({}) + {} svdb ({})",
        mitdb.len(),
        prep.lead,
        svdb.len(),
        opts.svdb_lead
    );
    let svdb_prep = BeatPreprocessing {
        lead: opts.svdb_lead.clone(),
        ..prep.clone()
    };
    let noise = match opts.augment {
        Augment::None => Vec::new(),
        Augment::NoiseRate => load_noise(&opts.nstdb)?,
    };
    let mut rng = SplitMix::new(opts.augment_seed);
    let mut set = WindowSet::default();
    let sources = mitdb
        .iter()
        .map(|r| (&opts.db, r, prep))
        .chain(svdb.iter().map(|r| (&opts.svdb, r, &svdb_prep)));
    for (db, name, prep) in sources {
        let (rec, ann) = load_record(db, name)?;
        set.append(record_beats(&rec, &ann, prep)?.0);
        if opts.augment == Augment::NoiseRate {
            let (copy, moved, made) = augmented(&rec, &ann, &noise, &mut rng)?;
            let (mut beats, _) = record_beats(&copy, &moved, prep)?;
            beats.records.iter_mut().for_each(|r| r.push_str(COPY));
            eprintln!(
                "  {name}: copy with {} at {} dB, {} Hz: {} beats",
                made.noise,
                made.snr_db,
                made.rate_hz,
                beats.len()
            );
            set.append(beats);
        }
    }
    Ok((set, mitdb.into_iter().chain(svdb).collect()))
}

/// Runs the study; unless `cv_only`, fits, exports and tests the chosen
/// candidate and writes its card. Returns the card's path (or `None`).
pub fn run(opts: &BeatMlpOptions) -> Result<Option<PathBuf>> {
    ensure!(opts.folds >= 2, "--folds must be at least 2");
    opts.network.check()?;
    let prep = preprocessing();
    let names = prep.beat.features.clone();
    let labels = beat_labels();
    let classes = labels.len();
    let (set, records) = training_set(opts, &prep)?;
    let assignment = record_folds(&records, opts.folds, opts.fold_seed);
    let fold_of = |r: &str| {
        let source = r.strip_suffix(COPY).unwrap_or(r);
        assignment
            .iter()
            .find(|(n, _)| n == source)
            .map_or(0, |(_, f)| *f)
    };
    let folds: Vec<usize> = set.records.iter().map(|r| fold_of(r)).collect();
    eprintln!(
        "{} beats, per class {:?}; {}-fold record-wise cross-validation",
        set.len(),
        set.class_counts(classes),
        opts.folds
    );
    if let Some(path) = &opts.dump {
        dump(path, &set, &folds, &names)?;
    }
    let mut table = Vec::new();
    let candidates: Vec<Candidate> = select(grid(), &opts.only)?
        .into_iter()
        .map(|c| opts.network.apply(c))
        .collect();
    for c in candidates {
        let started = std::time::Instant::now();
        let first_step = (table.len() * opts.folds) as u64;
        let (report, predicted) =
            cross_validate(&set, &folds, opts.folds, &c, &names, &labels, first_step);
        eprintln!(
            "{}  ({:.0} s)",
            summary_line(&c.name, &report),
            started.elapsed().as_secs_f64()
        );
        // The selection metric of each candidate, in grid order (MLflow's step).
        super::tracking::log_metrics(
            &[
                ("cv_score", score(&report)),
                ("cv_S_F1", f1(&report, "S")),
                ("cv_V_F1", f1(&report, "V")),
                ("cv_accuracy", report.accuracy),
            ],
            table.len() as u64,
        );
        table.push((c, report, predicted));
    }
    if let Some(path) = &opts.cv_report {
        let clean = clean_rows(&set);
        let held = set.subset(&clean);
        let report: Vec<serde_json::Value> = table
            .iter()
            .map(|(c, r, predicted)| {
                let predicted: Vec<u8> = clean.iter().map(|&i| predicted[i]).collect();
                json!({"candidate": c, "score": score(r), "report": r,
                       "per_record": per_record(&held, &predicted)})
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("wrote {}", path.display());
    }
    let best = table
        .iter()
        .max_by(|a, b| score(&a.1).total_cmp(&score(&b.1)))
        .context("no candidate")?;
    eprintln!("chosen by CV (mean of S F1 and V F1): {}", best.0.name);
    if opts.cv_only {
        return Ok(None);
    }
    let chosen = best.0.clone();
    let keep = mask(chosen.inputs, &names);
    let all: Vec<usize> = (0..set.len()).collect();
    let mlp = fit(&set, &all, &keep, &chosen.mlp, classes);
    let bytes = export_mlp(&mlp, &keep, &opts.name, &opts.version)?;
    let mut session = Runtime::get()?.session(&bytes, 2, Provider::Cpu)?;
    // Parity: the graph against the fitted network, on every 97th training beat.
    let sample: Vec<usize> = (0..set.len()).step_by(97).collect();
    let graph = logits_onnx(&mut session, &set.subset(&sample), 256)?;
    let here = mlp.logits(&rows(&set, &sample, &keep));
    let parity = graph
        .iter()
        .zip(&here)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(
            0.0,
            |m: f64, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        );
    ensure!(
        parity < 1e-3,
        "the graph differs from the fitted network by {parity}"
    );
    eprintln!(
        "parity: ONNX Runtime vs the fitted network, {} beats, max |logit diff| {parity:.2e}",
        sample.len()
    );

    eprintln!("DS2, once, with the chosen model:");
    let (test, detection) = load_beats(&opts.db, &strings(&DS2), &prep)?;
    let logits = logits_onnx(&mut session, &test, 512)?;
    let probs: Vec<f32> = logits.chunks(classes).flat_map(softmax).collect();
    let predicted = MultiReport::argmax(&probs, classes);
    let report = MultiReport::new(&predicted, &test.labels, &labels);
    print!("{}", report.table("DS2 (inter-patient test, run once)"));
    let keep_232: Vec<usize> = (0..test.len())
        .filter(|&i| test.records[i] != "232")
        .collect();
    let without_232 = MultiReport::new(
        &keep_232.iter().map(|&i| predicted[i]).collect::<Vec<_>>(),
        &keep_232.iter().map(|&i| test.labels[i]).collect::<Vec<_>>(),
        &labels,
    );
    print!("{}", without_232.table("DS2 without record 232"));
    let (chosen_report, chosen_predicted) = (&best.1, &best.2);
    let clean = clean_rows(&set);
    print!(
        "{}",
        chosen_report.table(&format!(
            "cross-validation ({}-fold, record-wise) of `{}` over the training records",
            opts.folds, chosen.name
        ))
    );

    std::fs::create_dir_all(&opts.out)?;
    let out = opts.out.join(&opts.name);
    let onnx_path = out.with_extension("onnx");
    std::fs::write(&onnx_path, &bytes)?;
    let cv: Vec<serde_json::Value> = table
        .iter()
        .map(|(c, r, _)| json!({"candidate": c, "report": r, "score": score(r)}))
        .collect();
    let metrics = json!({
        "test": report,
        "test_without_232": without_232,
        "test_detection": {
            "counts": detection,
            "sensitivity": detection.sensitivity(),
            "positive_predictivity": detection.positive_predictivity(),
            "note": "beats of DS2 found by our detector (150 ms rule); the classification figures cover the matched beats",
        },
        "test_per_record": per_record(&test, &predicted),
        "cross_validation": cv,
        "cross_validation_per_record": per_record(
            &set.subset(&clean),
            &clean.iter().map(|&i| chosen_predicted[i]).collect::<Vec<_>>()
        ),
        "parity_max_abs_diff": parity,
        "excluded": "paced records 102, 104, 107, 217; detections matching no reference beat; beats inside ventricular flutter episodes",
        "measured_with": format!("ecg-train beat (ONNX Runtime, {} DS2 beats, run once after the choice)", test.len()),
    });
    std::fs::write(
        out.with_extension("report.json"),
        serde_json::to_string_pretty(&metrics)?,
    )?;
    let card = card(opts, prep, &bytes, &records, &assignment, &chosen, metrics);
    let card_path = out.with_extension("json");
    card.write(&card_path)?;
    eprintln!("wrote {} and {}", onnx_path.display(), card_path.display());
    Ok(Some(card_path))
}

/// How each setting of the shipped model was chosen (the card's record).
fn choices() -> serde_json::Value {
    json!({
        "features": "the groups compared by the record-wise CV of the grid (2.1.0's study): the nine RR features alone (rr-only), without the 48 waveform points (no-waveform), all 75 (chosen then)",
        "context": "the five rhythm-context features (beat_features::CONTEXT: RR against the slow normal RR and the 5-minute average, the onset ratio, the P wave against the previous beat's) added to all 75, against ensemble5-w0 without them, by the same CV (2.2.0: S F1 0.601 against 0.584, V F1 0.841 against 0.848, score 0.721 against 0.716); chosen. Their constants (quantile 0.75, 150 s) were set before the study, not tuned",
        "atrial": "the three P-wave features against a population prior (beat_features::ATRIAL: the best fit of a 0.09 s Hann bump before the QRS, its height over the beat's own QRS, the neighbours' fit) added to context-ensemble5-w0's 80, against it without them, by the same CV (2.3.0's study: this card's cross_validation table); chosen. A tie within the seeds' spread: with member seeds 17-21 (--seed 17 --cv-only, after the choice) 0.718 with them against 0.7195 without. The bump's length and search region were set before the study, not tuned; a residual feature was dropped before any CV because a synthetic test showed it did not separate fibrillatory waves from a P wave's shape",
        "majority_timing": "before 2.3.0's study, with 80 columns and --cv-only: context-ensemble5-w0 without the nine majority-relative timing features (no-majority: S F1 0.584, V F1 0.840) and without the seven median-relative ones (slow-only: 0.589, 0.835) against it with them (0.601, 0.841); both rejected",
        "class_weights": "(n / (k n_c)) ^ power with power 0, 0.5 and 1 compared by CV; 0 (none) chosen with the 5-member ensemble",
        "hidden_layers": "64-32 (set before the study) against 128-64 with 20 epochs (wide-long) by CV; 64-32 chosen",
        "members": "1 against 5 networks by CV; 5 chosen",
        "epochs": "12, set before the study and not tuned (wide-long's 20 the one alternative, by CV); no early stopping, so no epoch is picked on any set",
        "learning_rate_decay_batch_weight_decay": "2e-3, 0.85 per epoch, 256, 1e-4: set before the study, not tuned",
        "seeds": "members 7..11, folds 2004, augmentation 118: set before the study, never chosen",
        "threshold": "none: argmax over the five classes",
        "augmentation": "noise-rate against none by CV (ensemble5-w0: 0.713 against 0.698); noise-rate chosen",
        "test_set": "DS2 read once per shipped model, after its choice (2.0.0 without augmentation, 2.1.0, 2.2.0, then this model)",
    })
}

/// The card of the shipped model.
fn card(
    opts: &BeatMlpOptions,
    prep: BeatPreprocessing,
    bytes: &[u8],
    records: &[String],
    assignment: &[(String, usize)],
    chosen: &Candidate,
    metrics: serde_json::Value,
) -> ModelCard {
    let width = prep.beat.features.len();
    let config = json!({
        "candidate": chosen,
        "choices": choices(),
        "records": records,
        "svdb_lead": opts.svdb_lead,
        "augment": {
            "kind": opts.augment,
            "seed": opts.augment_seed,
            "noise": super::augment::NOISE,
            "snr_db": super::augment::SNR_DB,
            "rate_hz": super::augment::RATE_HZ,
            "copies": "one per training record, beside the clean record; cross-validation scores the clean records only",
        },
        "cross_validation": {"folds": opts.folds, "seed": opts.fold_seed, "assignment": assignment},
        "selection": "mean of S F1 and V F1 over the pooled held-out predictions of all folds; DS2 read once, after the choice",
    });
    ModelCard {
        name: opts.name.clone(),
        version: opts.version.clone(),
        file: format!("{}.onnx", opts.name),
        sha256: sha256_hex(bytes),
        labels: strings(&beat_labels()),
        input: TensorSpec {
            name: "features".into(),
            shape: vec![-1, width as i64],
            description: format!("per beat, the {width} features named in preprocessing.beat.features (RR intervals and the beat against the record's dominant beat)"),
        },
        outputs: vec![TensorSpec {
            name: "logits".into(),
            shape: vec![-1, beat_labels().len() as i64],
            description: "class logits; softmax gives probabilities in `labels` order".into(),
        }],
        attention: None,
        kind: ModelKind::Beat(BeatModel {
            preprocessing: prep,
            decision: BeatDecision {
                chosen_by: format!(
                    "argmax over the five classes; candidate `{}` chosen by {}-fold record-wise cross-validation over the training records (mean of S F1 and V F1)",
                    chosen.name, opts.folds
                ),
            },
            label_rule: label_rule(),
        }),
        split: Split {
            kind: "inter-patient: DS1 + svdb -> DS2".into(),
            train_records: records.to_vec(),
            validation_records: Vec::new(),
            test_records: strings(&DS2),
            excluded_records: strings(&PACED),
        },
        training: TrainingRecord {
            config: match config {
                serde_json::Value::Object(map) => map,
                _ => Default::default(),
            },
            stack: None,
        },
        metrics,
        created_by: format!("ecg-train {} beat", env!("CARGO_PKG_VERSION")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_picks_names_then_parts_of_names() {
        let names = |only: &[&str]| -> Vec<String> {
            let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
            select(grid(), &only)
                .unwrap()
                .into_iter()
                .map(|c| c.name)
                .collect()
        };
        assert_eq!(names(&[]).len(), grid().len());
        assert_eq!(names(&["ensemble5-w0"]), ["ensemble5-w0"]);
        assert_eq!(
            names(&["context-ensemble5-w0-atrial", "rr-only"]),
            ["rr-only", "context-ensemble5-w0-atrial"]
        );
        assert_eq!(names(&["weights"]), ["weights^0", "weights^1"]);
        let err = select(grid(), &["nope".to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"nope\"") && err.contains("rr-only"), "{err}");
    }

    #[test]
    fn every_candidate_masks_columns_that_exist() {
        let names = preprocessing().beat.features;
        let groups = [
            &MEDIAN_TIMING[..],
            &SLOW_TIMING,
            &beat_features::CONTEXT,
            &beat_features::ATRIAL,
        ];
        for n in groups.concat() {
            assert!(names.iter().any(|m| m == n), "{n} is not a feature");
        }
        let kept = |c: &Candidate| mask(c.inputs, &names).iter().filter(|&&k| k).count();
        let grid = grid();
        let by_name = |n: &str| grid.iter().find(|c| c.name == n).unwrap();
        assert_eq!(kept(by_name("rr-only")), RrFeatures::NAMES.len());
        let atrial = beat_features::ATRIAL.len();
        let context = beat_features::CONTEXT.len();
        assert_eq!(kept(by_name("all")), names.len() - context - atrial);
        assert_eq!(kept(by_name("context-ensemble5-w0")), names.len() - atrial);
        assert_eq!(kept(by_name("context-ensemble5-w0-atrial")), names.len());
        assert_eq!(
            kept(by_name("context-ensemble5-w0-no-majority")),
            names.len() - MEDIAN_TIMING.len() - SLOW_TIMING.len() - atrial
        );
        assert_eq!(
            kept(by_name("context-ensemble5-w0-slow-only")),
            names.len() - MEDIAN_TIMING.len() - atrial
        );
    }
}
