//! `ecg-train segment`: from a WFDB database to a segment model's `.onnx` with
//! its model card, and (for `ecg-train evaluate`) back to held-out metrics.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use super::data::{load_windows, WindowSet, ABNORMAL, LABELS};
use super::experiment::{build_sets, model_card, strings, CardSpecifics, TrainOptions};
use super::inference::{column, predict_onnx};
use super::metrics::{point_at_specificity, BinaryReport};
use super::training::{fit_and_export, TrainingConfig};
use crate::engine::{Provider, Runtime};
use crate::model::card::{Decision, SegmentLabelRule};
use crate::model::{ModelCard, ModelKind, SegmentModel, SegmentPreprocessing};

pub use super::training::PARITY_TOLERANCE;

/// Trains on windows prepared by `prep` (with its rhythm features, if any),
/// exports, checks parity, evaluates and writes `<out>/<name>.onnx`,
/// `<name>.json` (model card), `<name>.metrics.jsonl` and `<name>.report.json`.
/// Returns the card's path.
pub fn run(opts: &TrainOptions, prep: SegmentPreprocessing) -> Result<PathBuf> {
    let rule = opts.training.abnormal_fraction;
    let train_prep = SegmentPreprocessing {
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
    let specifics = segment_specifics(&cfg, prep, decision);
    let card = model_card(opts, &cfg, sets.split, &fitted.bytes, metrics, specifics);
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
    prep: SegmentPreprocessing,
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
        labels: strings(&LABELS),
        input_description,
        kind: ModelKind::Segment(SegmentModel {
            preprocessing: prep,
            decision,
            label_rule: SegmentLabelRule {
                abnormal_when: "fraction of the window's annotated beats that are not AAMI N > abnormal_fraction".into(),
                abnormal_fraction: cfg.abnormal_fraction,
                aami_n: "N L R e j (B)".into(),
                windows_without_beats: "left out".into(),
            },
        }),
    }
}

/// A segment model's held-out report, measured again through ONNX Runtime
/// with the preprocessing of its card on `records`.
pub fn evaluate(
    card: &ModelCard,
    bytes: &[u8],
    db: &Path,
    records: &[String],
) -> Result<BinaryReport> {
    let kind = card.segment()?;
    let set = load_windows(
        db,
        records,
        &kind.preprocessing,
        kind.label_rule.abnormal_fraction,
    )?;
    let mut session = Runtime::get()?.session(bytes, 2, Provider::Cpu)?;
    let probs = column(&predict_onnx(&mut session, &set, 64)?, 2, 1);
    let report = BinaryReport::new(&probs, &set.labels, kind.decision.threshold);
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
    Ok(report)
}
