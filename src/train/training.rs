//! The training loop: Adam, class-weighted cross-entropy, early stopping on
//! validation loss with the best weights kept, a seed, an `indicatif` progress
//! bar and a JSON-lines metrics log per epoch; then ONNX export, the ONNX Runtime
//! parity check and held-out evaluation through the exported file.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::data::{SplitMix, WindowSet, ABNORMAL};
use super::metrics::BinaryReport;
use super::model::{SegmentNet, SegmentNetConfig};
use crate::engine::{OrtModel, Provider, Runtime};

/// Training hyper-parameters (saved in the model card).
#[derive(Config, Debug)]
pub struct TrainingConfig {
    pub model: SegmentNetConfig,
    #[config(default = 12)]
    pub max_epochs: usize,
    #[config(default = 32)]
    pub batch_size: usize,
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    /// Epochs without a better validation loss before stopping.
    #[config(default = 3)]
    pub patience: usize,
    #[config(default = 42)]
    pub seed: u64,
    /// Label rule: Abnormal when the non-N fraction of a window's beats exceeds this.
    #[config(default = 0.5)]
    pub abnormal_fraction: f64,
    /// Hop between training windows in samples (serving uses the card's hop):
    /// a smaller hop shows the network each event at more offsets.
    #[config(default = 900)]
    pub train_hop: usize,
    /// Class weights of the loss: inverse class frequency in the training set,
    /// normalised to mean 1 (filled in by `train`).
    #[config(default = "Vec::new()")]
    pub class_weights: Vec<f32>,
}

/// One line of the metrics log.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_roc_auc: f64,
    pub val_abnormal_recall: f64,
    pub val_normal_specificity: f64,
    pub seconds: f64,
    pub windows_per_s: f64,
    pub best: bool,
}

/// A trained network and how it got there.
pub struct Trained {
    pub net: SegmentNet,
    pub best_epoch: usize,
    pub history: Vec<EpochLog>,
}

/// The values of a float tensor.
pub fn to_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("cannot read tensor data: {e:?}"))
}

fn scalar(t: Tensor<1>) -> Result<f64> {
    Ok(to_f32(t)?.first().copied().unwrap_or(f32::NAN) as f64)
}

fn batch_tensor(set: &WindowSet, idx: &[usize], device: &Device) -> Tensor<3> {
    let mut data = Vec::with_capacity(idx.len() * set.window_len);
    for &i in idx {
        data.extend_from_slice(set.window(i));
    }
    Tensor::from_data(
        TensorData::new(data, [idx.len(), 1, set.window_len]),
        device,
    )
}

fn label_tensor(set: &WindowSet, idx: &[usize], device: &Device) -> Tensor<1, Int> {
    let labels: Vec<i64> = idx.iter().map(|&i| set.labels[i] as i64).collect();
    Tensor::from_data(TensorData::new(labels, [idx.len()]), device)
}

/// Inverse class frequencies normalised to mean 1.
pub fn class_weights(labels: &[u8]) -> Vec<f32> {
    let n = labels.len().max(1) as f64;
    let abnormal = labels.iter().filter(|&&l| l == ABNORMAL).count().max(1) as f64;
    let normal = (n - abnormal).max(1.0);
    let (wn, wa) = (n / (2.0 * normal), n / (2.0 * abnormal));
    vec![wn as f32, wa as f32]
}

/// P(Abnormal) and mean loss of `net` over `set` (no gradients, no dropout).
pub fn predict(
    net: &SegmentNet,
    set: &WindowSet,
    batch: usize,
    weights: &[f32],
    device: &Device,
) -> Result<(Vec<f64>, f64)> {
    let loss_fn = CrossEntropyLossConfig::new()
        .with_weights(Some(weights.to_vec()))
        .init(device);
    let mut probs = Vec::with_capacity(set.len());
    let mut loss_sum = 0.0;
    let all: Vec<usize> = (0..set.len()).collect();
    for idx in all.chunks(batch.max(1)) {
        let out = net.forward(batch_tensor(set, idx, device));
        let loss = loss_fn.forward(out.logits.clone(), label_tensor(set, idx, device));
        loss_sum += scalar(loss)? * idx.len() as f64;
        let p = to_f32(burn::tensor::activation::softmax(out.logits, 1))?;
        probs.extend(p.chunks(2).map(|r| r[1] as f64));
    }
    Ok((probs, loss_sum / set.len().max(1) as f64))
}

fn progress(epoch: usize, batches: usize) -> ProgressBar {
    let bar = ProgressBar::new(batches as u64);
    let style = ProgressStyle::with_template(
        "epoch {prefix:>3} [{bar:30}] {pos}/{len} batches {elapsed_precise} eta {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(epoch.to_string());
    bar
}

/// Trains on `train`, early-stopping on `val`; writes one JSON line per epoch to `log`.
pub fn train(
    cfg: &mut TrainingConfig,
    train: &WindowSet,
    val: &WindowSet,
    log: &Path,
) -> Result<Trained> {
    if train.is_empty() || val.is_empty() {
        bail!(
            "empty training ({}) or validation ({}) set",
            train.len(),
            val.len()
        );
    }
    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    cfg.class_weights = class_weights(&train.labels);
    let mut net = cfg.model.init(&device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new()
        .with_weights(Some(cfg.class_weights.clone()))
        .init(&device);
    let mut log_file =
        std::fs::File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
    let mut rng = SplitMix::new(cfg.seed);
    let (mut best, mut best_loss, mut best_epoch, mut history) =
        (net.valid(), f64::INFINITY, 0, Vec::new());
    for epoch in 1..=cfg.max_epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        let batches: Vec<&[usize]> = order.chunks(cfg.batch_size).collect();
        let bar = progress(epoch, batches.len());
        let mut loss_sum = 0.0;
        for (b, idx) in batches.iter().enumerate() {
            let out = net.forward(batch_tensor(train, idx, &device));
            let loss = loss_fn.forward(out.logits, label_tensor(train, idx, &device));
            loss_sum += scalar(loss.clone())? * idx.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(cfg.learning_rate, net, grads);
            bar.inc(1);
            if b % 10 == 0 {
                bar.set_message(format!(
                    "loss {:.4}",
                    loss_sum / ((b * cfg.batch_size + idx.len()) as f64)
                ));
            }
        }
        let valid = net.valid();
        let (probs, val_loss) =
            predict(&valid, val, 64, &cfg.class_weights, &valid_device(&device))?;
        let report = BinaryReport::new(&probs, &val.labels, 0.5);
        let is_best = val_loss < best_loss;
        if is_best {
            (best, best_loss, best_epoch) = (valid, val_loss, epoch);
        }
        let seconds = started.elapsed().as_secs_f64();
        let entry = EpochLog {
            epoch,
            train_loss: loss_sum / train.len() as f64,
            val_loss,
            val_accuracy: report.accuracy,
            val_roc_auc: report.roc_auc,
            val_abnormal_recall: report.classes[1].recall,
            val_normal_specificity: report.classes[0].recall,
            seconds,
            windows_per_s: train.len() as f64 / seconds,
            best: is_best,
        };
        let line = format!(
            "train loss {:.4} val loss {:.4} val AUC {:.4} val acc {:.2}% {:.0} windows/s{}",
            entry.train_loss,
            val_loss,
            report.roc_auc,
            100.0 * report.accuracy,
            entry.windows_per_s,
            if is_best { " (best)" } else { "" }
        );
        if bar.is_hidden() {
            eprintln!("epoch {epoch:>3}: {line}");
        }
        bar.finish_with_message(line);
        writeln!(log_file, "{}", serde_json::to_string(&entry)?)?;
        history.push(entry);
        if epoch - best_epoch >= cfg.patience {
            eprintln!(
                "early stop: no better validation loss for {} epochs; keeping epoch {best_epoch}",
                cfg.patience
            );
            break;
        }
    }
    Ok(Trained {
        net: best,
        best_epoch,
        history,
    })
}

fn valid_device(device: &Device) -> Device {
    device.clone().without_autodiff()
}

/// Largest absolute differences between burn and ONNX Runtime on the same windows.
#[derive(Debug, Clone, Serialize)]
pub struct Parity {
    pub windows: usize,
    pub max_abs_diff_logits: f64,
    pub max_abs_diff_attention: f64,
}

/// Runs `net` (burn) and `onnx` (ONNX Runtime) on up to `n` windows of `set` and compares.
pub fn check_parity(net: &SegmentNet, onnx: &[u8], set: &WindowSet, n: usize) -> Result<Parity> {
    let device = Device::flex();
    let idx: Vec<usize> = (0..set.len().min(n)).collect();
    let out = net.forward(batch_tensor(set, &idx, &device));
    let logits = to_f32(out.logits)?;
    let attention = to_f32(out.attention)?;
    let mut ort = Runtime::get()?.session(onnx, 2, Provider::Cpu)?;
    let mut input = Vec::with_capacity(idx.len() * set.window_len);
    for &i in &idx {
        input.extend_from_slice(set.window(i));
    }
    let got = ort.run(&input, idx.len(), &[1, set.window_len])?;
    let diff = |a: &[f32], b: &[f32]| -> f64 {
        if a.len() != b.len() {
            return f64::INFINITY;
        }
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() as f64)
            .fold(0.0, f64::max)
    };
    Ok(Parity {
        windows: idx.len(),
        max_abs_diff_logits: diff(&logits, &got.logits),
        max_abs_diff_attention: diff(&attention, &got.attention),
    })
}

/// P(Abnormal) of every window of `set` through an ONNX Runtime session.
pub fn predict_onnx(model: &mut OrtModel, set: &WindowSet, batch: usize) -> Result<Vec<f64>> {
    let mut probs = Vec::with_capacity(set.len());
    let all: Vec<usize> = (0..set.len()).collect();
    for idx in all.chunks(batch.max(1)) {
        let mut input = Vec::with_capacity(idx.len() * set.window_len);
        for &i in idx {
            input.extend_from_slice(set.window(i));
        }
        let out = model.run(&input, idx.len(), &[1, set.window_len])?;
        probs.extend((0..idx.len()).map(|r| out.probabilities(r)[1] as f64));
    }
    Ok(probs)
}
