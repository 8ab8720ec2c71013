//! A tiny training run through export and ONNX Runtime parity, so the trainer's
//! path cannot rot: windows of the committed record 100, one epoch, export, then
//! burn and ONNX Runtime must agree within the trainer's tolerance.
#![cfg(feature = "train")]

mod common;

use ecg_serve::model::Preprocessing;
use ecg_serve::train::data::record_windows;
use ecg_serve::train::model::SegmentNetConfig;
use ecg_serve::train::onnx;
use ecg_serve::train::segment::PARITY_TOLERANCE;
use ecg_serve::train::training::{check_parity, train, TrainingConfig};

#[test]
fn one_epoch_trains_exports_and_matches_onnx_runtime() {
    let (rec, ann) = common::load(&common::fixtures().join("mitdb"), "100");
    let set = record_windows(&rec, &ann, &Preprocessing::mitdb_default(), 0.5).unwrap();
    assert_eq!(set.len(), 361);
    let train_set = set.subset(&(0..24).collect::<Vec<_>>());
    let val_set = set.subset(&(100..116).collect::<Vec<_>>());
    let mut cfg = TrainingConfig::new(SegmentNetConfig::new())
        .with_max_epochs(1)
        .with_batch_size(8);
    let log = std::env::temp_dir().join(format!("ecg-train-tiny-{}.jsonl", std::process::id()));
    let trained = train(&mut cfg, &train_set, &val_set, &log).unwrap();
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 1, "one JSON line per epoch");
    let entry: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert!(entry["train_loss"].as_f64().unwrap().is_finite());
    let bytes = onnx::export(&trained.net, &cfg.model, "tiny", "0.0.0");
    let parity = check_parity(&trained.net, &bytes, &val_set, 16).unwrap();
    eprintln!("tiny model parity: {parity:?}");
    assert!(parity.max_abs_diff_logits < PARITY_TOLERANCE, "{parity:?}");
    assert!(
        parity.max_abs_diff_attention < PARITY_TOLERANCE,
        "{parity:?}"
    );
}
