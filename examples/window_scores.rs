//! Every 10 s window of DS1 and DS2 (the card's preprocessing and 1800-sample
//! hop) with its label, non-N beat fraction, six rhythm features and the
//! model's P(Abnormal) through ONNX Runtime, as CSV: the input of
//! `scripts/stack_cv.py`.
//!
//! ```sh
//! cargo run --release --features train --example window_scores -- models/ecg-segment-net.onnx scores.csv
//! ```

use anyhow::{Context, Result};
use ecg_serve::engine::ort::{Provider, Runtime};
use ecg_serve::model::card::ModelCard;
use ecg_serve::train::data::{load_windows, DS1, DS2};
use ecg_serve::train::experiment::strings;
use ecg_serve::train::inference::{column, predict_onnx};
use std::io::Write;
use std::path::PathBuf;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: window_scores MODEL.onnx OUT.csv [DB]";
    let model = PathBuf::from(args.next().context(usage)?);
    let out_path = args.next().context(usage)?;
    let db = PathBuf::from(args.next().unwrap_or("../shared/data/mitdb".into()));
    let (card, bytes) = ModelCard::open(&model)?;
    let kind = card.segment()?;
    let mut session = Runtime::get()?.session(&bytes, 2, Provider::Cpu)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&out_path)?);
    writeln!(
        out,
        "set,record,start,label,fraction,f0,f1,f2,f3,f4,f5,prob"
    )?;
    for (name, list) in [("ds1", &DS1[..]), ("ds2", &DS2[..])] {
        let set = load_windows(
            &db,
            &strings(list),
            &kind.preprocessing,
            kind.label_rule.abnormal_fraction,
        )?;
        let probs = column(&predict_onnx(&mut session, &set, 64)?, 2, 1);
        for (i, p) in probs.iter().enumerate() {
            let features: Vec<String> = set.feature_row(i).iter().map(|v| v.to_string()).collect();
            writeln!(
                out,
                "{name},{},{},{},{},{},{p}",
                set.records[i],
                set.starts[i],
                set.labels[i],
                set.fractions[i],
                features.join(",")
            )?;
        }
    }
    Ok(())
}
