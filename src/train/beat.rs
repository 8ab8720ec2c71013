//! `ecg-train beat`: the AAMI beat classifier (N, S, V, F, Q), from the beats our
//! own detector finds to a shipped `.onnx` with its card and an EC57-style report.
//!
//! Data ([`super::data::record_beats`]): every record's inputs come from
//! [`crate::model::model_inputs`], exactly as the server builds them: our
//! detector's R peaks, and per beat a window 0.25 s before to 0.45 s after the
//! peak beside the record's typical beat, and nine RR features. Each detection
//! takes the AAMI class of the reference beat it matches within 150 ms (bxb's
//! rule). Detections that match no reference beat (false positives) and
//! reference beats we miss are left out of training and of the classification
//! figures, and counted in the report's `detection`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use super::data::{load_beats, WindowSet, MATCH_WINDOW_S};
use super::experiment::{build_sets, model_card, strings, CardSpecifics, TrainOptions};
use super::inference::predict_onnx;
use super::metrics::MultiReport;
use super::training::{fit_and_export, TrainingConfig};
use crate::engine::{Provider, Runtime};
use crate::model::card::{BeatDecision, BeatLabelRule};
use crate::model::{BeatModel, BeatPreprocessing, ModelCard, ModelKind};
use crate::signal::AamiClass;

/// Class labels in index order.
pub fn labels() -> Vec<&'static str> {
    AamiClass::ALL.iter().map(|c| c.as_str()).collect()
}

fn describe(name: &str, set: &WindowSet) {
    let counts = set.class_counts(AamiClass::ALL.len());
    let per: Vec<String> = labels()
        .iter()
        .zip(&counts)
        .map(|(l, c)| format!("{l} {c}"))
        .collect();
    eprintln!(
        "{name:<10} {:>6} beats ({}; {} unmatched detections left out)",
        set.len(),
        per.join(", "),
        set.unlabelled
    );
}

/// Per record: beats per true class and per predicted class, and the S and V
/// beats found. A few records hold most of DS2's S beats (232 alone ~1,380 of
/// ~1,840), which pooled figures hide.
pub fn per_record(set: &WindowSet, predicted: &[u8]) -> serde_json::Value {
    let mut rows: Vec<(String, Vec<Vec<usize>>)> = Vec::new();
    for ((record, &label), &p) in set.records.iter().zip(&set.labels).zip(predicted) {
        if rows.last().map(|r| &r.0) != Some(record) {
            rows.push((record.clone(), vec![vec![0; 5]; 5]));
        }
        if let Some((_, m)) = rows.last_mut() {
            m[usize::from(label)][usize::from(p)] += 1;
        }
    }
    rows.into_iter()
        .map(|(record, m)| json!({"record": record, "confusion": m}))
        .collect()
}

/// Trains, exports, checks parity, evaluates and writes `<out>/<name>.onnx`,
/// its card `<name>.json`, `<name>.metrics.jsonl` and `<name>.report.json`.
pub fn run(opts: &TrainOptions) -> Result<PathBuf> {
    let prep = BeatPreprocessing::mitdb_beat();
    let detection = std::cell::RefCell::new(Vec::new());
    let load = |records: &[String], _training: bool| {
        let (set, counts) = load_beats(&opts.db, records, &prep)?;
        detection.borrow_mut().push(counts);
        Ok(set)
    };
    let sets = build_sets(opts, &load)?;
    for (name, set) in [
        ("train", &sets.train),
        ("validation", &sets.val),
        ("test", &sets.test),
    ] {
        describe(name, set);
    }
    let detection = detection.into_inner();
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
    let names = labels();
    let k = names.len();
    let val_pred = MultiReport::argmax(&fitted.val_probs, k);
    let test_pred = MultiReport::argmax(&fitted.test_probs, k);
    let val_report = MultiReport::new(&val_pred, &sets.val.labels, &names);
    let test_report = MultiReport::new(&test_pred, &sets.test.labels, &names);
    print!(
        "{}",
        val_report.table(&format!("validation: {}", sets.split.kind))
    );
    print!(
        "{}",
        test_report.table(&format!("test: {}", sets.split.kind))
    );
    let test_detection = detection.last().copied().unwrap_or_default();
    let metrics = json!({
        "test": test_report,
        "test_detection": {
            "counts": test_detection,
            "sensitivity": test_detection.sensitivity(),
            "positive_predictivity": test_detection.positive_predictivity(),
            "note": "beats of the test records found by our detector (150 ms rule); the classification figures cover the matched beats",
        },
        "test_per_record": per_record(&sets.test, &test_pred),
        "validation": val_report,
        "parity": fitted.parity,
        "best_epoch": fitted.best_epoch,
        "epochs_run": fitted.epochs_run,
        "excluded": "paced records 102, 104, 107, 217; detections matching no reference beat; beats inside ventricular flutter episodes; all other beats of the whole 30 min (not only after the first 5 min)",
        "measured_with": format!("ecg-train beat (ONNX Runtime, {} test beats)", sets.test.len()),
    });
    std::fs::write(
        base.with_extension("report.json"),
        serde_json::to_string_pretty(&metrics)?,
    )?;
    let specifics = beat_specifics(&cfg, prep);
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

/// How every beat model's training beats are labelled (its card's `label_rule`).
pub fn label_rule() -> BeatLabelRule {
    let aami = [
        ("N", "N L R e j (B)"),
        ("S", "A a J S (n)"),
        ("V", "V E (r)"),
        ("F", "F"),
        ("Q", "/ f Q (?)"),
    ];
    BeatLabelRule {
        label: "AAMI class of the reference beat matched within 150 ms".into(),
        match_window_s: MATCH_WINDOW_S,
        aami: aami
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        unmatched_detections: "left out".into(),
    }
}

/// The beat model's part of its card.
fn beat_specifics(cfg: &TrainingConfig, prep: BeatPreprocessing) -> CardSpecifics {
    CardSpecifics {
        labels: strings(&labels()),
        input_description: format!("window around each R peak of the band-passed lead at the model rate, beside the record's median beat (preprocessing.beat); second input `features` [-1, {}]: the RR features named in preprocessing.beat.features", cfg.model.features),
        kind: ModelKind::Beat(BeatModel {
            preprocessing: prep,
            decision: BeatDecision {
                chosen_by: "argmax over the five classes (class-weighted training)".into(),
            },
            label_rule: label_rule(),
        }),
    }
}

/// `ecg-train evaluate` for a beat model: its EC57-style figures measured again
/// through ONNX Runtime on the card's test records (or `records`).
pub fn evaluate(
    card: &ModelCard,
    bytes: &[u8],
    db: &Path,
    records: &[String],
) -> Result<MultiReport> {
    let (set, detection) = load_beats(db, records, &card.beat()?.preprocessing)?;
    let mut session = Runtime::get()?.session(bytes, 2, Provider::Cpu)?;
    let k = card.labels.len();
    let predicted = MultiReport::argmax(&predict_onnx(&mut session, &set, 256)?, k);
    let names: Vec<&str> = card.labels.iter().map(String::as_str).collect();
    let report = MultiReport::new(&predicted, &set.labels, &names);
    print!(
        "{}",
        report.table(&format!(
            "{} {} on {} records ({}); detection Se {:.2} % +P {:.2} %",
            card.name,
            card.version,
            records.len(),
            card.split.kind,
            100.0 * detection.sensitivity(),
            100.0 * detection.positive_predictivity()
        ))
    );
    Ok(report)
}
