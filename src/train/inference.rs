//! Running an exported model through ONNX Runtime on a data set: what
//! `evaluate`, `stack`, the parity check and `examples/window_scores.rs` use
//! to measure a model exactly as the server runs it.

use anyhow::Result;

use super::data::WindowSet;
use crate::engine::{softmax, OrtModel};

/// Class probabilities `[len * classes]` of every example of `set` through an
/// ONNX Runtime session.
pub fn predict_onnx(model: &mut OrtModel, set: &WindowSet, batch: usize) -> Result<Vec<f32>> {
    let logits = logits_onnx(model, set, batch)?;
    let classes = logits.len() / set.len().max(1);
    Ok(logits.chunks(classes.max(1)).flat_map(softmax).collect())
}

/// Logits `[len * classes]` of every example of `set` through ONNX Runtime.
pub fn logits_onnx(model: &mut OrtModel, set: &WindowSet, batch: usize) -> Result<Vec<f32>> {
    let mut logits = Vec::new();
    let all: Vec<usize> = (0..set.len()).collect();
    for idx in all.chunks(batch.max(1)) {
        let (input, features) = set.arrays(idx);
        let out = model.run(&input, idx.len(), &set.example_shape(), &features)?;
        logits.extend(out.logits);
    }
    Ok(logits)
}

/// Column `c` of `[n * classes]` probabilities, as f64 scores.
pub fn column(probs: &[f32], classes: usize, c: usize) -> Vec<f64> {
    probs.chunks(classes).map(|r| r[c] as f64).collect()
}
