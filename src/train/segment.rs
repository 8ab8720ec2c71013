//! `ecg-train segment` and `ecg-train evaluate`: from a WFDB database to a shipped
//! `.onnx` with its model card, and back to held-out metrics.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::data::{load_windows, SplitMix, WindowSet, ABNORMAL, DS1, DS2, LABELS, PACED};
use super::metrics::{point_at_specificity, BinaryReport};
use super::training::{column, fit_and_export, predict_onnx, TrainingConfig};
use crate::engine::{Provider, Runtime};
use crate::model::card::{sha256_hex, AttentionMap, Decision, Split, TensorSpec};
use crate::model::{ModelCard, Preprocessing};

pub use super::training::PARITY_TOLERANCE;

/// How records become train / validation / test sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitKind {
    /// DS1 trains (minus validation records), DS2 tests (de Chazal 2004).
    InterPatient,
    /// Windows of all non-paced records pooled and split 80/10/10 at random.
    /// Leaks patients between sets: only for comparison with papers that do it.
    Random,
}

/// Everything `ecg-train segment` and `ecg-train beat` need.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub db: PathBuf,
    pub out: PathBuf,
    pub name: String,
    pub version: String,
    pub split: SplitKind,
    pub validation_records: Vec<String>,
    pub training: TrainingConfig,
    /// Cap on windows per set (tiny CI runs); `None` uses everything.
    pub max_windows: Option<usize>,
}

/// The three sets of a run and the split that made them.
pub struct Sets {
    pub split: Split,
    pub train: WindowSet,
    pub val: WindowSet,
    pub test: WindowSet,
}

/// Owned copies of a list of record names.
pub fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Loads the examples of some records; `true` for the training set.
pub type Loader<'a> = &'a dyn Fn(&[String], bool) -> Result<WindowSet>;

fn cap(set: WindowSet, max: Option<usize>, seed: u64) -> WindowSet {
    match max {
        Some(m) if m < set.len() => {
            let mut idx: Vec<usize> = (0..set.len()).collect();
            SplitMix::new(seed).shuffle(&mut idx);
            idx.truncate(m);
            idx.sort();
            set.subset(&idx)
        }
        _ => set,
    }
}

/// The train / validation / test sets of `opts.split`, each from `load`.
pub fn build_sets(opts: &TrainOptions, load: Loader) -> Result<Sets> {
    let seed = opts.training.seed;
    match opts.split {
        SplitKind::InterPatient => {
            let val_names = opts.validation_records.clone();
            if let Some(r) = val_names.iter().find(|r| !DS1.contains(&r.as_str())) {
                bail!("validation record {r} is not in DS1; validation must come from the training patients' set");
            }
            let train_names: Vec<String> = strings(&DS1)
                .into_iter()
                .filter(|r| !val_names.contains(r))
                .collect();
            eprintln!(
                "loading DS1 ({} train + {} validation records) and DS2 ({} test records)",
                train_names.len(),
                val_names.len(),
                DS2.len()
            );
            let train = cap(load(&train_names, true)?, opts.max_windows, seed);
            let val = cap(load(&val_names, false)?, opts.max_windows, seed);
            let test = cap(load(&strings(&DS2), false)?, opts.max_windows, seed);
            let split = Split {
                kind: "inter-patient: DS1 -> DS2 (de Chazal 2004)".into(),
                train_records: train_names,
                validation_records: val_names,
                test_records: strings(&DS2),
                excluded_records: strings(&PACED),
            };
            Ok(Sets {
                split,
                train,
                val,
                test,
            })
        }
        SplitKind::Random => {
            let all: Vec<String> = strings(&DS1).into_iter().chain(strings(&DS2)).collect();
            eprintln!("loading {} non-paced records for a RANDOM split", all.len());
            let pooled = load(&all, false)?;
            let mut idx: Vec<usize> = (0..pooled.len()).collect();
            SplitMix::new(seed).shuffle(&mut idx);
            let (n_test, n_val) = (pooled.len() / 10, pooled.len() / 10);
            let (test_idx, rest) = idx.split_at(n_test);
            let (val_idx, train_idx) = rest.split_at(n_val);
            let split = Split {
                kind: "RANDOM split of windows or beats 80/10/10 (patients leak between sets; figures are inflated, not inter-patient)".into(),
                train_records: all.clone(),
                validation_records: all.clone(),
                test_records: all,
                excluded_records: strings(&PACED),
            };
            let m = opts.max_windows;
            Ok(Sets {
                split,
                train: cap(pooled.subset(train_idx), m, seed),
                val: cap(pooled.subset(val_idx), m, seed),
                test: cap(pooled.subset(test_idx), m, seed),
            })
        }
    }
}

/// Trains on windows prepared by `prep` (with its rhythm features, if any),
/// exports, checks parity, evaluates and writes `<out>/<name>.onnx`,
/// `<name>.json` (model card), `<name>.metrics.jsonl` and `<name>.report.json`.
/// Returns the card's path.
pub fn run(opts: &TrainOptions, prep: Preprocessing) -> Result<PathBuf> {
    let rule = opts.training.abnormal_fraction;
    let train_prep = Preprocessing {
        hop_samples: opts.training.train_hop,
        ..prep.clone()
    };
    let load = |records: &[String], training: bool| {
        let p = if training { &train_prep } else { &prep };
        load_windows(&opts.db, records, p, rule)
    };
    let sets = build_sets(opts, &load)?;
    for (name, set) in [
        ("train", &sets.train),
        ("validation", &sets.val),
        ("test", &sets.test),
    ] {
        let s = set.summary();
        eprintln!(
            "{name:<10} {:>6} windows ({} Normal, {} Abnormal; {} without beats left out)",
            s.windows, s.normal, s.abnormal, s.unlabelled
        );
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let base = opts.out.join(&opts.name);
    let mut cfg = opts.training.clone();
    let fitted = fit_and_export(
        &mut cfg,
        [&sets.train, &sets.val, &sets.test],
        &base,
        &opts.name,
        &opts.version,
    )?;
    let val_probs = column(&fitted.val_probs, 2, 1);
    let decision = decision(&cfg, &val_probs, &sets.val.labels);
    let threshold = decision.threshold;
    let val_report = BinaryReport::new(&val_probs, &sets.val.labels, threshold);
    let test_probs = column(&fitted.test_probs, 2, 1);
    let test_report = BinaryReport::new(&test_probs, &sets.test.labels, threshold);
    print!(
        "{}",
        val_report.table(&format!("validation: {}", sets.split.kind))
    );
    print!(
        "{}",
        test_report.table(&format!("test: {}", sets.split.kind))
    );
    let metrics = json!({
        "test": test_report,
        "test_per_record": per_record(&sets.test, &test_probs, threshold),
        "validation": val_report,
        "parity": fitted.parity,
        "best_epoch": fitted.best_epoch,
        "epochs_run": fitted.epochs_run,
        "sets": {"train": sets.train.summary(), "validation": sets.val.summary(), "test": sets.test.summary()},
        "measured_with": format!("ecg-train segment (ONNX Runtime, {} test windows)", sets.test.len()),
    });
    std::fs::write(
        base.with_extension("report.json"),
        serde_json::to_string_pretty(&metrics)?,
    )?;
    let specifics = segment_specifics(&cfg, &prep, decision);
    let card = model_card(
        opts,
        &cfg,
        &prep,
        sets.split,
        &fitted.bytes,
        metrics,
        specifics,
    );
    let card_path = base.with_extension("json");
    card.write(&card_path)?;
    eprintln!(
        "wrote {} and {}",
        fitted.onnx_path.display(),
        card_path.display()
    );
    Ok(card_path)
}

/// Per record: windows, Abnormal windows, windows flagged at `threshold`, and
/// how many of the Abnormal ones were flagged. One record can dominate a split's
/// Abnormal windows (232 holds 345 of DS2's 427), which the pooled figures hide.
pub fn per_record(set: &WindowSet, probs: &[f64], threshold: f64) -> serde_json::Value {
    let mut rows: Vec<(String, [usize; 4])> = Vec::new();
    for ((record, &label), &p) in set.records.iter().zip(&set.labels).zip(probs) {
        if rows.last().map(|r| &r.0) != Some(record) {
            rows.push((record.clone(), [0; 4]));
        }
        let Some((_, c)) = rows.last_mut() else {
            continue;
        };
        let (abnormal, flagged) = (label == ABNORMAL, p >= threshold);
        c[0] += 1;
        c[1] += usize::from(abnormal);
        c[2] += usize::from(flagged);
        c[3] += usize::from(abnormal && flagged);
    }
    rows.into_iter()
        .map(|(record, c)| {
            json!({"record": record, "windows": c[0], "abnormal": c[1], "flagged": c[2], "abnormal_flagged": c[3]})
        })
        .collect()
}

/// What differs between the segment and the beat model's cards.
pub struct CardSpecifics {
    pub task: &'static str,
    pub labels: Vec<String>,
    pub input_description: String,
    pub decision: Decision,
    pub label_rule: serde_json::Value,
}

/// The model card of a trained network: the parts both models share (name,
/// file digest, tensor shapes, preprocessing, attention map, split, training
/// configuration, metrics) plus their `specifics`.
pub fn model_card(
    opts: &TrainOptions,
    cfg: &TrainingConfig,
    prep: &Preprocessing,
    split: Split,
    bytes: &[u8],
    metrics: serde_json::Value,
    specifics: CardSpecifics,
) -> ModelCard {
    let m = &cfg.model;
    let spt = m.samples_per_token();
    ModelCard {
        name: opts.name.clone(),
        version: opts.version.clone(),
        task: specifics.task.into(),
        file: format!("{}.onnx", opts.name),
        sha256: sha256_hex(bytes),
        labels: specifics.labels,
        input: TensorSpec {
            name: "signal".into(),
            shape: vec![-1, m.input_channels as i64, m.input_samples as i64],
            description: specifics.input_description,
        },
        outputs: vec![
            TensorSpec {
                name: "logits".into(),
                shape: vec![-1, m.classes as i64],
                description: "class logits; softmax gives probabilities in `labels` order".into(),
            },
            TensorSpec {
                name: "attention".into(),
                shape: vec![-1, m.tokens() as i64],
                description: "attention each token receives, averaged over heads and queries"
                    .into(),
            },
        ],
        preprocessing: prep.clone(),
        attention: AttentionMap {
            tokens: m.tokens(),
            samples_per_token: spt,
            token_s: spt as f64 / prep.sample_rate_hz,
        },
        decision: specifics.decision,
        label_rule: specifics.label_rule,
        split,
        training: serde_json::to_value(cfg).unwrap_or_default(),
        metrics,
        created_by: format!("ecg-train {}", env!("CARGO_PKG_VERSION")),
    }
}

/// The card's decision rule: P(Abnormal) at or above the validation set's ROC
/// point with `cfg.target_specificity` (never the test set's), or 0.5 (argmax)
/// when no target is set or validation has no such point.
fn decision(cfg: &TrainingConfig, val_probs: &[f64], val_labels: &[u8]) -> Decision {
    let point = (cfg.target_specificity > 0.0)
        .then(|| point_at_specificity(val_probs, val_labels, cfg.target_specificity))
        .filter(|p| p.threshold.is_finite());
    let (threshold, chosen_by) = if let Some(point) = point {
        (
            point.threshold,
            format!(
                "validation ROC point with Normal specificity >= {:.0} % (validation: specificity {:.2} %, Abnormal recall {:.2} %)",
                100.0 * cfg.target_specificity,
                100.0 * point.normal_specificity,
                100.0 * point.abnormal_recall
            ),
        )
    } else {
        (
            0.5,
            "argmax of a class-weighted model (P(Abnormal) >= 0.5)".to_string(),
        )
    };
    Decision {
        positive_label: "Abnormal".into(),
        threshold,
        chosen_by,
    }
}

/// The segment model's part of its card.
fn segment_specifics(
    cfg: &TrainingConfig,
    prep: &Preprocessing,
    decision: Decision,
) -> CardSpecifics {
    let mut input_description =
        "z-scored 10 s windows of the band-passed lead at the model rate".to_string();
    if prep.feature_width() > 0 {
        input_description += &format!(
            "; second input `features` [-1, {}]: the rhythm features of each window named in preprocessing.window_features",
            prep.feature_width()
        );
    }
    CardSpecifics {
        task: "segment",
        labels: strings(&LABELS),
        input_description,
        decision,
        label_rule: json!({
            "abnormal_when": "fraction of the window's annotated beats that are not AAMI N > abnormal_fraction",
            "abnormal_fraction": cfg.abnormal_fraction,
            "aami_n": "N L R e j (B)",
            "windows_without_beats": "left out",
        }),
    }
}

/// `ecg-train evaluate`: the model's held-out metrics, measured again through
/// ONNX Runtime with the preprocessing of its card (segment or beat model).
/// `records` overrides the card's test records.
pub fn evaluate(model: &Path, db: &Path, records: &[String]) -> Result<serde_json::Value> {
    let (card, bytes) = ModelCard::open(model)?;
    let records = if records.is_empty() {
        card.split.test_records.clone()
    } else {
        records.to_vec()
    };
    if card.task == "beat" {
        let report = super::beat::evaluate(&card, &bytes, db, &records)?;
        return Ok(serde_json::to_value(report)?);
    }
    let set = load_windows(db, &records, &card.preprocessing, card.abnormal_fraction())?;
    let mut session = Runtime::get()?.session(&bytes, 2, Provider::Cpu)?;
    let probs = column(&predict_onnx(&mut session, &set, 64)?, 2, 1);
    let report = BinaryReport::new(&probs, &set.labels, card.decision.threshold);
    print!(
        "{}",
        report.table(&format!(
            "{} {} on {} records ({})",
            card.name,
            card.version,
            records.len(),
            card.split.kind
        ))
    );
    Ok(serde_json::to_value(report)?)
}
