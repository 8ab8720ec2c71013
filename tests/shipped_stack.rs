//! The shipped segment model is `ecg-train stack` of the shipped network: where
//! the full database is present, stacking `models/ecg-segment-net.onnx` again must
//! give the same file, byte for byte, and the card's held-out figures.
#![cfg(feature = "train")]

mod common;

use std::path::Path;

use ecg_serve::model::ModelCard;
use ecg_serve::train::stack::{run, StackOptions};

#[test]
fn stacking_the_shipped_network_reproduces_the_shipped_model() {
    let Some(db) = common::mitdb() else {
        return;
    };
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let shipped = ModelCard::read(&models.join("ecg-segment.json")).unwrap();
    let stack = shipped.training.stack.as_ref().unwrap();
    let out = std::env::temp_dir().join(format!("ecg-stack-{}", std::process::id()));
    let card_path = run(&StackOptions {
        model: models.join("ecg-segment-net.onnx"),
        db,
        out: out.clone(),
        name: shipped.name.clone(),
        version: shipped.version.clone(),
        weight: stack["weight"].as_f64().unwrap(),
        c: stack["logistic"]["c"].as_f64().unwrap(),
    })
    .unwrap();
    let again = ModelCard::read(&card_path).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    assert_eq!(again.sha256, shipped.sha256, "the stacked file differs");
    assert_eq!(again.metrics["test"], shipped.metrics["test"]);
    let auc = again.metrics["test"]["roc_auc"].as_f64().unwrap();
    eprintln!("stacked again: same sha256, DS2 ROC AUC {auc:.4}");
}
