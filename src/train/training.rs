//! The training loop: Adam with a per-epoch learning-rate decay, class-weighted
//! cross-entropy on soft targets, Gaussian-noise augmentation, early stopping on
//! validation ROC AUC with the best weights kept, a seed, an `indicatif` progress
//! bar and a JSON-lines metrics log per epoch; then ONNX export, the ONNX Runtime
//! parity check and held-out evaluation through the exported file.
//!
//! Soft targets: a window's target is `[1 - f, f]` with `f` the fraction of its
//! beats that are not AAMI N, the very quantity the label rule thresholds. A
//! window with 40 % premature beats is labelled Normal, but it still teaches the
//! network what those beats look like; with hard 0/1 targets the few hundred
//! Abnormal windows of DS1 were all the network learnt abnormal beats from.
//! Selection: the validation set is small (73 Abnormal windows), and its
//! class-weighted loss picked an epoch whose ranking was barely above chance;
//! ROC AUC is the threshold-free quantity the targets are stated in.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
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
    /// Epochs without a better validation ROC AUC before stopping.
    #[config(default = 4)]
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
    /// Train on soft targets `[1 - f, f]` (`f`: non-N beat fraction) instead of
    /// the 0/1 labels.
    #[config(default = true)]
    pub soft_targets: bool,
    /// Standard deviation of the Gaussian noise added to training windows
    /// (z-score units; 0 turns augmentation off).
    #[config(default = 0.05)]
    pub noise_std: f64,
    /// The learning rate is multiplied by this after every epoch.
    #[config(default = 0.85)]
    pub lr_decay: f64,
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

/// The windows at `idx` as `[batch, 1, samples]`, with Gaussian noise of
/// standard deviation `noise.1` when `noise` is given.
fn batch_tensor(
    set: &WindowSet,
    idx: &[usize],
    noise: Option<(&mut SplitMix, f64)>,
    device: &Device,
) -> Tensor<3> {
    let mut data = Vec::with_capacity(idx.len() * set.window_len);
    for &i in idx {
        data.extend_from_slice(set.window(i));
    }
    if let Some((rng, std)) = noise.filter(|(_, std)| *std > 0.0) {
        for pair in data.chunks_mut(2) {
            let (a, b) = rng.gaussian_pair();
            pair[0] += (a * std) as f32;
            if let Some(x) = pair.get_mut(1) {
                *x += (b * std) as f32;
            }
        }
    }
    Tensor::from_data(
        TensorData::new(data, [idx.len(), 1, set.window_len]),
        device,
    )
}

/// Weighted targets `[batch, 2]`: `w [1 - f, f]` with `f` the soft target
/// (non-N fraction) or the 0/1 label, and `w` the class weight of the window's
/// label. The weight scales a window's whole target, not one component: weighting
/// the components (`[w_n (1 - f), w_a f]`) would move the loss's optimum to
/// `P(Abnormal) = w_a f / (w_n (1 - f) + w_a f)`, which with `w_a / w_n` near 25
/// passes 0.5 at `f` = 4 %: the network learnt "any ectopic beat", not the rule.
fn target_tensor(
    set: &WindowSet,
    idx: &[usize],
    weights: &[f32],
    soft: bool,
    device: &Device,
) -> Tensor<2> {
    let mut data = Vec::with_capacity(idx.len() * 2);
    for &i in idx {
        let f = if soft {
            set.fractions[i]
        } else {
            f32::from(set.labels[i] == ABNORMAL)
        };
        let w = weights[usize::from(set.labels[i])];
        data.extend_from_slice(&[w * (1.0 - f), w * f]);
    }
    Tensor::from_data(TensorData::new(data, [idx.len(), 2]), device)
}

/// Weighted cross-entropy against (soft) targets: `-sum(t * log p) / sum(t)`
/// (rows of `t` sum to their window's weight). With 0/1 targets this is the usual
/// class-weighted cross-entropy.
fn loss(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    let total = targets.clone().sum();
    (log_p * targets).sum().neg() / total
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
    cfg: &TrainingConfig,
    device: &Device,
) -> Result<(Vec<f64>, f64)> {
    let mut probs = Vec::with_capacity(set.len());
    let mut loss_sum = 0.0;
    let all: Vec<usize> = (0..set.len()).collect();
    for idx in all.chunks(batch.max(1)) {
        let out = net.forward(batch_tensor(set, idx, None, device));
        let targets = target_tensor(set, idx, &cfg.class_weights, cfg.soft_targets, device);
        loss_sum += scalar(loss(out.logits.clone(), targets))? * idx.len() as f64;
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
    let mut noise_rng = SplitMix::new(cfg.seed ^ 0x5eed);
    let mut log_file =
        std::fs::File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
    let mut rng = SplitMix::new(cfg.seed);
    let (mut best, mut best_auc, mut best_epoch, mut history) =
        (net.valid(), f64::NEG_INFINITY, 0, Vec::new());
    let mut lr = cfg.learning_rate;
    for epoch in 1..=cfg.max_epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        let batches: Vec<&[usize]> = order.chunks(cfg.batch_size).collect();
        let bar = progress(epoch, batches.len());
        let mut loss_sum = 0.0;
        for (b, idx) in batches.iter().enumerate() {
            let input = batch_tensor(train, idx, Some((&mut noise_rng, cfg.noise_std)), &device);
            let targets = target_tensor(train, idx, &cfg.class_weights, cfg.soft_targets, &device);
            let loss = loss(net.forward(input).logits, targets);
            loss_sum += scalar(loss.clone())? * idx.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
            bar.inc(1);
            if b % 10 == 0 {
                bar.set_message(format!(
                    "loss {:.4}",
                    loss_sum / ((b * cfg.batch_size + idx.len()) as f64)
                ));
            }
        }
        let valid = net.valid();
        lr *= cfg.lr_decay;
        let (probs, val_loss) = predict(&valid, val, 64, cfg, &valid_device(&device))?;
        let report = BinaryReport::new(&probs, &val.labels, 0.5);
        let is_best = report.roc_auc > best_auc;
        if is_best {
            (best, best_auc, best_epoch) = (valid, report.roc_auc, epoch);
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
                "early stop: no better validation ROC AUC for {} epochs; keeping epoch {best_epoch}",
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
    let out = net.forward(batch_tensor(set, &idx, None, &device));
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
