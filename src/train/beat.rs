//! `ecg-train beat`: the AAMI beat classifier (N, S, V, F, Q), from the beats our
//! own detector finds to a shipped `.onnx` with its card and an EC57-style report.
//!
//! Data: every record's lead is filtered by [`Preprocessing::filter`] and its R
//! peaks found by [`detect_r_peaks`], exactly as the server does; each detection
//! takes the AAMI class of the reference beat it matches within 150 ms
//! ([`label_detections`], bxb's rule). Detections that match no reference beat
//! (false positives) and reference beats we miss are left out of training and
//! of the classification figures, and counted in the report's `detection`.
//! Inputs per beat come from [`Preprocessing::beat_inputs`]: a
//! window 0.25 s before to 0.45 s after the peak beside the record's typical
//! beat, and nine RR features.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use super::data::{load_record, WindowSet};
use super::metrics::MultiReport;
use super::segment::{build_sets, model_card, strings, CardSpecifics, TrainOptions};
use super::training::{fit_and_export, predict_onnx, TrainingConfig};
use crate::engine::{Provider, Runtime};
use crate::eval::bxb::{label_detections, DetectionCounts};
use crate::model::card::Decision;
use crate::model::{ModelCard, Preprocessing};
use crate::signal::qrs::detect_r_peaks;
use crate::signal::wfdb::Annotation;
use crate::signal::{AamiClass, Recording};

/// The match window of the labelling and of the detection figures (bxb's).
pub const MATCH_WINDOW_S: f64 = 0.15;

/// Class labels in index order.
pub fn labels() -> Vec<&'static str> {
    AamiClass::ALL.iter().map(|c| c.as_str()).collect()
}

/// The labelled beats of one record and how detection went on it.
pub fn record_beats(
    rec: &Recording,
    annotations: &[Annotation],
    prep: &Preprocessing,
) -> Result<(WindowSet, DetectionCounts)> {
    let lead = rec.select_lead(&prep.lead, false)?;
    let samples = &rec.leads[lead.index].samples;
    let fs = rec.sampling_rate;
    let filtered = prep.filter(samples, fs)?;
    let peaks = detect_r_peaks(samples, fs);
    let (classes, comparison) = label_detections(&peaks, annotations, fs, MATCH_WINDOW_S);
    let inputs = prep.beat_inputs(&filtered, &peaks, fs);
    let channels = prep.input_channels();
    let len = channels * prep.window_samples;
    let width = inputs.features.len() / peaks.len().max(1);
    let mut out = WindowSet {
        window_len: len,
        channels,
        n_features: width,
        ..Default::default()
    };
    for (i, class) in classes.iter().enumerate() {
        let Some(class) = class else {
            out.unlabelled += 1;
            continue;
        };
        out.windows
            .extend_from_slice(&inputs.windows[i * len..(i + 1) * len]);
        out.features
            .extend_from_slice(&inputs.features[i * width..(i + 1) * width]);
        out.labels.push(class.index() as u8);
        out.records.push(rec.name.clone());
        out.starts.push(peaks[i]);
    }
    Ok((out, comparison.counts))
}

/// Labelled beats of `records` from `db`, with the pooled detection counts.
pub fn load_beats(
    db: &Path,
    records: &[String],
    prep: &Preprocessing,
) -> Result<(WindowSet, DetectionCounts)> {
    let mut set = WindowSet::default();
    let mut counts = DetectionCounts::default();
    for name in records {
        let (rec, ann) = load_record(db, name)?;
        let (beats, c) = record_beats(&rec, &ann, prep)?;
        set.append(beats);
        counts.add(&c);
    }
    Ok((set, counts))
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
fn per_record(set: &WindowSet, predicted: &[u8]) -> serde_json::Value {
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
    let prep = Preprocessing::mitdb_beat();
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
    let specifics = beat_specifics(&cfg);
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

/// The beat model's part of its card.
fn beat_specifics(cfg: &TrainingConfig) -> CardSpecifics {
    CardSpecifics {
        task: "beat",
        labels: strings(&labels()),
        input_description: format!("window around each R peak of the band-passed lead at the model rate, beside the record's median beat (preprocessing.beat); second input `features` [-1, {}]: the RR features named in preprocessing.beat.features", cfg.model.features),
        decision: Decision {
            positive_label: "N".into(),
            threshold: 0.0,
            chosen_by: "argmax over the five classes (class-weighted training)".into(),
        },
        label_rule: json!({
            "label": "AAMI class of the reference beat matched within 150 ms",
            "match_window_s": MATCH_WINDOW_S,
            "aami": {"N": "N L R e j (B)", "S": "A a J S (n)", "V": "V E (r)", "F": "F", "Q": "/ f Q (?)"},
            "unmatched_detections": "left out",
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
    let (set, detection) = load_beats(db, records, &card.preprocessing)?;
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
