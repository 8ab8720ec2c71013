//! `ecg-train beat-stack`: the beat model 2: the morphology network of
//! `ecg-beat` 1 stacked with a small network ([`super::mlp`]) on its logits and
//! on features that judge each beat against its own patient
//! ([`crate::signal::beat_features`]), trained on MIT-BIH DS1 and the MIT-BIH
//! Supraventricular Arrhythmia Database, chosen by record-wise
//! cross-validation, built into one ONNX graph.
//!
//! **Honest stacking.** The stacked layer learns how far to trust the
//! network's logits, so it must see logits of beats the network never trained
//! on: it trains on the svdb records and on the network's own validation
//! records (never on the network's training records). DS2 is not read until
//! every choice is made; `--cv-only` stops before it.
//!
//! **The protocol.** Grouped k-fold over those records (a record is never
//! split; folds from a seeded shuffle of the record names). Each candidate
//! configuration of [`grid`] is fitted k times; the held-out predictions of
//! all folds are pooled into one EC57-style table per candidate. The
//! candidate with the best mean of S F1 and V F1 (the classes the clinical
//! targets are stated in) is refitted on all the records and shipped. Then,
//! once, DS2.
//!
//! **The graph.** The network's nodes are unchanged; its `features` input is
//! now the wider row of the card and the network reads its first columns
//! (the nine RR features it was trained on) through a Slice; its logits, the
//! features, standardised, and the dense layers follow, and write `logits`.
//! The network's `attention` is still an output: where the morphology network
//! looked.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde::Serialize;
use serde_json::json;

use super::data::{load_beats, SplitMix, WindowSet, DS2};
use super::experiment::strings;
use super::inference::logits_onnx;
use super::metrics::MultiReport;
use super::mlp::{Examples, Mlp, MlpConfig};
use super::onnx::stack_dense;
use crate::engine::{Provider, Runtime};
use crate::model::card::{sha256_hex, BeatDecision};
use crate::model::{ModelCard, ModelKind};
use crate::signal::beat_features;
use crate::signal::rr::RrFeatures;

/// Everything `ecg-train beat-stack` needs (its command-line options too).
#[derive(Debug, Clone, clap::Args)]
pub struct BeatStackOptions {
    /// The morphology network (`ecg-beat` 1.0.0); its card is the .json beside it.
    #[arg(long, default_value = "models/ecg-beat-net.onnx")]
    pub base: PathBuf,
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
    #[arg(long, default_value = "2.0.0")]
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
    /// Only the candidates whose name contains this (all by default).
    #[arg(long)]
    pub only: Option<String>,
    /// Use at most this many svdb records (tiny CI runs).
    #[arg(long)]
    pub max_svdb_records: Option<usize>,
}

/// The stacked layer's inputs: which feature groups a candidate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Inputs {
    /// The network's five logits.
    pub net_logits: bool,
    /// The beat minus template waveform points (`w..`, `d..`).
    pub waveform: bool,
}

/// One configuration the cross-validation compares.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub name: String,
    pub inputs: Inputs,
    pub mlp: MlpConfig,
}

/// The candidates: the shipped design, and what each input group and the
/// class weighting are worth.
pub fn grid() -> Vec<Candidate> {
    let all = Inputs {
        net_logits: true,
        waveform: true,
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
        "no-net",
        Inputs {
            net_logits: false,
            ..all
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
            ..base
        },
    );
    out
}

/// The stack's rows: per beat, the network's logits then the card's features.
pub struct StackSet {
    pub beats: WindowSet,
    /// `[len * classes]`.
    pub net_logits: Vec<f32>,
    pub classes: usize,
}

impl StackSet {
    fn width(&self) -> usize {
        self.classes + self.beats.n_features
    }

    /// Full rows `[net logits | features]` of examples `idx`, with the columns
    /// `inputs` leaves out set to zero (a zero column standardises to zero: the
    /// layer cannot use it, and the graph stays one shape).
    fn rows(&self, idx: &[usize], mask: &[bool]) -> Vec<f32> {
        let mut out = Vec::with_capacity(idx.len() * self.width());
        for &i in idx {
            let logits = &self.net_logits[i * self.classes..(i + 1) * self.classes];
            let row = logits.iter().chain(self.beats.feature_row(i));
            out.extend(row.zip(mask).map(|(&v, &keep)| if keep { v } else { 0.0 }));
        }
        out
    }
}

/// Which columns of the stack row a candidate keeps.
fn mask(inputs: Inputs, classes: usize, names: &[String]) -> Vec<bool> {
    let waveform = |n: &str| {
        n.len() == 3 && (n.starts_with('w') || n.starts_with('d')) && n[1..].parse::<u8>().is_ok()
    };
    (0..classes)
        .map(|_| inputs.net_logits)
        .chain(names.iter().map(|n| inputs.waveform || !waveform(n)))
        .collect()
}

/// Loads `records` of `db` with the new card's preprocessing (lead `lead`) and
/// runs the network over them.
fn load(
    db: &Path,
    records: &[String],
    lead: &str,
    card: &ModelCard,
    net: &mut crate::engine::OrtModel,
    rr_width: usize,
) -> Result<StackSet> {
    let mut prep = card.beat()?.preprocessing.clone();
    prep.lead = lead.to_string();
    let (beats, _) = load_beats(db, records, &prep)?;
    // The network reads the first `rr_width` feature columns, as in the graph.
    let mut rr_view = beats.clone();
    rr_view.n_features = rr_width;
    rr_view.features = (0..beats.len())
        .flat_map(|i| beats.feature_row(i)[..rr_width].to_vec())
        .collect();
    let net_logits = logits_onnx(net, &rr_view, 512)?;
    Ok(StackSet {
        classes: card.labels.len(),
        net_logits,
        beats,
    })
}

/// Pooled held-out predictions of one candidate over the folds.
fn cross_validate(
    set: &StackSet,
    folds: &[usize],
    k: usize,
    candidate: &Candidate,
    names: &[String],
    labels: &[&str],
) -> MultiReport {
    let m = mask(candidate.inputs, set.classes, names);
    let mut predicted = vec![0u8; set.beats.len()];
    for f in 0..k {
        let (train, held): (Vec<usize>, Vec<usize>) =
            (0..set.beats.len()).partition(|&i| folds[i] != f);
        let rows = set.rows(&train, &m);
        let y: Vec<u8> = train.iter().map(|&i| set.beats.labels[i]).collect();
        let mlp = Mlp::fit(
            &Examples {
                rows: &rows,
                width: set.width(),
                labels: &y,
                classes: set.classes,
            },
            &candidate.mlp,
        );
        let logits = mlp.logits(&set.rows(&held, &m));
        for (&i, l) in held.iter().zip(logits.chunks(set.classes)) {
            predicted[i] = argmax(l);
        }
    }
    MultiReport::new(&predicted, &set.beats.labels, labels)
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

/// Mean F1 of S and V: what the candidates are ranked by.
fn score(r: &MultiReport) -> f64 {
    let f1 = |l: &str| {
        r.classes
            .iter()
            .find(|c| c.label == l)
            .map_or(0.0, |c| c.f1)
    };
    (f1("S") + f1("V")) / 2.0
}

/// One line of the CV table.
fn cv_line(name: &str, r: &MultiReport) -> String {
    let c = |l: &str| r.classes.iter().find(|c| c.label == l);
    let mut s = format!("{name:<14} acc {:>6.2}%", 100.0 * r.accuracy);
    for l in ["N", "S", "V", "F"] {
        if let Some(c) = c(l) {
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

/// Runs the study; unless `cv_only`, fits, exports and tests the chosen
/// candidate and writes its card. Returns the card's path (or `None`).
pub fn run(opts: &BeatStackOptions) -> Result<Option<PathBuf>> {
    ensure!(opts.folds >= 2, "--folds must be at least 2");
    let (base, base_bytes) = ModelCard::open(&opts.base)?;
    let base_beat = base.beat()?;
    let rr_width = base_beat.preprocessing.beat.features.len();
    ensure!(
        base_beat.preprocessing.beat.features == strings(&RrFeatures::NAMES),
        "the base network must read the nine RR features"
    );
    let mut card = base.clone();
    let ModelKind::Beat(kind) = &mut card.kind else {
        unreachable!("checked by base.beat()")
    };
    kind.preprocessing
        .beat
        .features
        .extend(strings(&beat_features::NAMES));
    let feature_names = kind.preprocessing.beat.features.clone();
    let mut net = Runtime::get()?.session(&base_bytes, 2, Provider::Cpu)?;

    let mut svdb: Vec<String> = std::fs::read_dir(&opts.svdb)
        .with_context(|| format!("cannot read {}", opts.svdb.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".atr").map(str::to_string))
        .collect();
    svdb.sort();
    if let Some(m) = opts.max_svdb_records {
        svdb.truncate(m);
    }
    let mitdb = base.split.validation_records.clone();
    eprintln!(
        "stack training records: {} svdb ({}) + {} MIT-BIH (the network's validation records)",
        svdb.len(),
        opts.svdb_lead,
        mitdb.len()
    );
    let mut set = load(
        &opts.svdb,
        &svdb,
        &opts.svdb_lead,
        &card,
        &mut net,
        rr_width,
    )?;
    let mit = load(
        &opts.db,
        &mitdb,
        &base_beat.preprocessing.lead,
        &card,
        &mut net,
        rr_width,
    )?;
    set.beats.append(mit.beats);
    set.net_logits.extend(mit.net_logits);
    let records: Vec<String> = svdb.iter().chain(&mitdb).cloned().collect();
    let assignment = record_folds(&records, opts.folds, opts.fold_seed);
    let fold_of = |r: &str| {
        assignment
            .iter()
            .find(|(n, _)| n == r)
            .map_or(0, |(_, f)| *f)
    };
    let folds: Vec<usize> = set.beats.records.iter().map(|r| fold_of(r)).collect();
    let labels: Vec<&str> = card.labels.iter().map(String::as_str).collect();
    eprintln!(
        "{} beats, per class {:?}; {}-fold record-wise cross-validation",
        set.beats.len(),
        set.beats.class_counts(labels.len()),
        opts.folds
    );

    let net_alone: Vec<u8> = set.net_logits.chunks(set.classes).map(argmax).collect();
    let net_report = MultiReport::new(&net_alone, &set.beats.labels, &labels);
    eprintln!("{}", cv_line("network alone", &net_report));
    let mut table = Vec::new();
    for c in grid().into_iter().filter(|c| {
        opts.only
            .as_ref()
            .is_none_or(|o| c.name.contains(o.as_str()))
    }) {
        let started = std::time::Instant::now();
        let report = cross_validate(&set, &folds, opts.folds, &c, &feature_names, &labels);
        eprintln!(
            "{}  ({:.0} s)",
            cv_line(&c.name, &report),
            started.elapsed().as_secs_f64()
        );
        table.push((c, report));
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
    let m = mask(chosen.inputs, set.classes, &feature_names);
    let all: Vec<usize> = (0..set.beats.len()).collect();
    let rows = set.rows(&all, &m);
    let mlp = Mlp::fit(
        &Examples {
            rows: &rows,
            width: set.width(),
            labels: &set.beats.labels,
            classes: set.classes,
        },
        &chosen.mlp,
    );
    let stacked = stack_dense(
        &base_bytes,
        rr_width,
        feature_names.len(),
        &mlp,
        &m,
        &opts.name,
        &opts.version,
    )?;
    // Parity: the graph against the network's logits and this MLP, on the training rows.
    let mut session = Runtime::get()?.session(&stacked, 2, Provider::Cpu)?;
    let sample: Vec<usize> = (0..set.beats.len()).step_by(97).collect();
    let graph_logits = logits_onnx(&mut session, &set.beats.subset(&sample), 256)?;
    let here = mlp.logits(&set.rows(&sample, &m));
    let max_abs_diff = graph_logits
        .iter()
        .zip(&here)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(0.0, |acc, d| {
            if d.is_nan() {
                f64::INFINITY
            } else {
                acc.max(d)
            }
        });
    ensure!(
        max_abs_diff < 1e-3,
        "the graph differs from the fitted layer by {max_abs_diff}"
    );
    eprintln!(
        "parity: graph vs fitted layer, {} beats, max |logit diff| {max_abs_diff:.2e}",
        sample.len()
    );

    eprintln!("DS2, once, with the chosen model:");
    let (test, detection) = load_beats(&opts.db, &strings(&DS2), &card.beat()?.preprocessing)?;
    let probs = super::inference::predict_onnx(&mut session, &test, 256)?;
    let predicted = MultiReport::argmax(&probs, set.classes);
    let report = MultiReport::new(&predicted, &test.labels, &labels);
    print!("{}", report.table("DS2 (inter-patient test, run once)"));
    let keep: Vec<usize> = (0..test.len())
        .filter(|&i| test.records[i] != "232")
        .collect();
    let without_232 = MultiReport::new(
        &keep.iter().map(|&i| predicted[i]).collect::<Vec<_>>(),
        &keep.iter().map(|&i| test.labels[i]).collect::<Vec<_>>(),
        &labels,
    );
    print!("{}", without_232.table("DS2 without record 232"));

    std::fs::create_dir_all(&opts.out)?;
    let out = opts.out.join(&opts.name);
    let onnx_path = out.with_extension("onnx");
    std::fs::write(&onnx_path, &stacked)?;
    let cv: Vec<serde_json::Value> = table
        .iter()
        .map(|(c, r)| json!({"candidate": c, "report": r, "score": score(r)}))
        .collect();
    let metrics = json!({
        "test": report,
        "test_without_232": without_232,
        "test_detection": {
            "counts": detection,
            "sensitivity": detection.sensitivity(),
            "positive_predictivity": detection.positive_predictivity(),
        },
        "test_per_record": super::beat::per_record(&test, &predicted),
        "cross_validation": cv,
        "network_alone_on_the_cv_records": net_report,
        "parity_max_abs_diff": max_abs_diff,
        "measured_with": format!("ecg-train beat-stack (ONNX Runtime, {} DS2 beats, run once after the choice)", test.len()),
    });
    std::fs::write(
        out.with_extension("report.json"),
        serde_json::to_string_pretty(&metrics)?,
    )?;
    card.name = opts.name.clone();
    card.version = opts.version.clone();
    card.file = format!("{}.onnx", opts.name);
    card.sha256 = sha256_hex(&stacked);
    card.input.description = format!(
        "window around each R peak of the band-passed lead at the model rate, beside the record's median beat (preprocessing.beat); second input `features` [-1, {}]: preprocessing.beat.features (the network reads the first {rr_width})",
        feature_names.len()
    );
    if let ModelKind::Beat(kind) = &mut card.kind {
        kind.decision = BeatDecision {
            chosen_by: format!(
                "argmax over the five classes of the stacked layer; candidate `{}` chosen by {}-fold record-wise cross-validation (mean of S F1 and V F1)",
                chosen.name, opts.folds
            ),
        };
    }
    card.split.kind = "inter-patient: DS1 + svdb -> DS2".into();
    card.split.train_records = card
        .split
        .train_records
        .iter()
        .chain(&records)
        .cloned()
        .collect();
    card.split.validation_records = Vec::new();
    card.training.stack = Some(json!({
        "network": {"name": base.name, "version": base.version, "sha256": base.sha256, "trained_on": base.split.train_records},
        "layer_trained_on": records,
        "svdb_lead": opts.svdb_lead,
        "folds": {"k": opts.folds, "seed": opts.fold_seed, "assignment": assignment},
        "chosen": chosen,
        "selection": "mean of S F1 and V F1 over the pooled held-out predictions of all folds; DS2 not read before the choice",
    }));
    card.metrics = metrics;
    card.created_by = format!("ecg-train {} beat-stack", env!("CARGO_PKG_VERSION"));
    let card_path = out.with_extension("json");
    card.write(&card_path)?;
    eprintln!("wrote {} and {}", onnx_path.display(), card_path.display());
    Ok(Some(card_path))
}
