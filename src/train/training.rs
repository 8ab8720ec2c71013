//! The training loop of both models: Adam with a per-epoch learning-rate decay,
//! class-weighted cross-entropy (on soft targets for the segment model), Gaussian-noise augmentation, early stopping on
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
use super::inference::{column, predict_onnx};
use super::metrics::{BinaryReport, MultiReport};
use super::model::{AttentionNet, AttentionNetConfig, NetOutput};
use crate::engine::{Provider, Runtime};

/// Fewest validation examples of a class for it to count in [`Selection::MacroF1`].
pub const MIN_SELECTION_SUPPORT: usize = 20;

/// The validation quantity that picks the epoch to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Selection {
    /// ROC AUC of the second class (binary models: Abnormal).
    RocAuc,
    /// Mean F1 over the classes with at least [`MIN_SELECTION_SUPPORT`]
    /// validation examples (a class of 2 examples would make the choice a coin toss).
    MacroF1,
}

impl Selection {
    /// The score of `probs` (`[n * classes]`) against `set`'s labels.
    pub fn score(self, probs: &[f32], set: &WindowSet, classes: usize) -> f64 {
        match self {
            Selection::RocAuc => {
                BinaryReport::new(&column(probs, classes, 1), &set.labels, 0.5).roc_auc
            }
            Selection::MacroF1 => {
                let names = vec![""; classes];
                let r = MultiReport::new(&MultiReport::argmax(probs, classes), &set.labels, &names);
                let f1: Vec<f64> = r
                    .classes
                    .iter()
                    .filter(|c| c.support >= MIN_SELECTION_SUPPORT)
                    .map(|c| c.f1)
                    .collect();
                if f1.is_empty() {
                    r.macro_f1
                } else {
                    f1.iter().sum::<f64>() / f1.len() as f64
                }
            }
        }
    }
}

/// Training hyper-parameters (saved in the model card).
#[derive(Config, Debug)]
pub struct TrainingConfig {
    pub model: AttentionNetConfig,
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
    /// Class weights of the loss: `(n / (classes * n_c)) ^ class_weight_power`
    /// from the training set's class counts `n_c` (filled in by `train`).
    #[config(default = "Vec::new()")]
    pub class_weights: Vec<f32>,
    /// 1: inverse class frequency; 0.5: its square root (gentler for classes
    /// a hundred times rarer than the commonest); 0: no weighting.
    #[config(default = 1.0)]
    pub class_weight_power: f64,
    /// Upper bound of any class weight (a class of a handful of examples,
    /// such as Q in DS1, would otherwise get a weight in the thousands).
    #[config(default = 1e9)]
    pub max_class_weight: f64,
    /// Train on soft targets `[1 - f, f]` (`f`: non-N beat fraction) instead of
    /// the 0/1 labels (binary models only).
    #[config(default = true)]
    pub soft_targets: bool,
    /// What picks the epoch to keep.
    #[config(default = "Selection::RocAuc")]
    pub selection: Selection,
    /// Standard deviation of the Gaussian noise added to training windows
    /// (z-score units; 0 turns augmentation off).
    #[config(default = 0.05)]
    pub noise_std: f64,
    /// Training beats move by up to this many samples (first channel only).
    #[config(default = 0)]
    pub shift_max: usize,
    /// Training beats are scaled by `1 + N(0, scale_std)` (first channel only).
    #[config(default = 0.0)]
    pub scale_std: f64,
    /// The learning rate is multiplied by this after every epoch.
    #[config(default = 0.85)]
    pub lr_decay: f64,
    /// Binary models: the decision threshold is the validation set's ROC point
    /// with at least this specificity (0: the argmax threshold 0.5).
    #[config(default = 0.0)]
    pub target_specificity: f64,
}

/// One line of the metrics log.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    /// The selection quantity (`selection` of the config).
    pub val_score: f64,
    /// Recall of each class at argmax.
    pub val_recall: Vec<f64>,
    pub seconds: f64,
    pub windows_per_s: f64,
    pub best: bool,
}

/// A network the training loop can train: logits (and attention, if it has
/// any) of a batch of examples and, for networks with a second input, their
/// features.
pub trait Classifier: burn::module::Module {
    fn output(&self, signal: Tensor<3>, features: Option<Tensor<2>>) -> NetOutput;

    /// The network with its feature extractor (everything before the dense
    /// head) frozen: what `ecg-train finetune --freeze backbone` trains.
    fn freeze_backbone(self) -> Self;

    /// The network with a freshly initialised last layer of `classes`
    /// outputs (fine-tuning to another task).
    fn with_new_head(self, classes: usize, device: &Device) -> Self;
}

/// A fresh dense layer in place of `layer`: its inputs, `outputs` outputs
/// (what [`Classifier::with_new_head`] puts on).
pub fn relinked(layer: &burn::nn::Linear, outputs: usize, device: &Device) -> burn::nn::Linear {
    let [inputs, _] = layer.weight.dims();
    burn::nn::LinearConfig::new(inputs, outputs).init(device)
}

/// A trained network and how it got there.
pub struct Trained<M = AttentionNet> {
    pub net: M,
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

/// Augmentation of training examples.
#[derive(Debug, Clone, Copy)]
struct Augment {
    noise_std: f64,
    shift_max: usize,
    scale_std: f64,
}

/// Shifts the first channel of `example` (`[channels * samples]`) by a random
/// whole number of samples in `-max..=max` (edge samples repeat) and scales it by
/// `1 + N(0, scale_std)`: an R peak found a few samples off, a beat a little
/// taller or smaller. The other channels (the template) stay as they are.
fn jitter(example: &mut [f32], samples: usize, rng: &mut SplitMix, a: Augment) {
    let n = samples.min(example.len());
    let first = &mut example[..n];
    if a.shift_max > 0 && !first.is_empty() {
        let span = 2 * a.shift_max + 1;
        let shift = (rng.next_u64() % span as u64) as isize - a.shift_max as isize;
        let original = first.to_vec();
        let last = original.len() as isize - 1;
        for (k, v) in first.iter_mut().enumerate() {
            *v = original[(k as isize + shift).clamp(0, last) as usize];
        }
    }
    if a.scale_std > 0.0 {
        let factor = (1.0 + rng.gaussian_pair().0 * a.scale_std) as f32;
        first.iter_mut().for_each(|v| *v *= factor);
    }
}

/// The windows at `idx` as `[batch, channels, samples]`, augmented when
/// `augment` is given, and their features as `[batch, n_features]` when the set
/// has any.
fn batch_tensor(
    set: &WindowSet,
    idx: &[usize],
    augment: Option<(&mut SplitMix, Augment)>,
    device: &Device,
) -> (Tensor<3>, Option<Tensor<2>>) {
    let mut data = Vec::with_capacity(idx.len() * set.window_len);
    for &i in idx {
        data.extend_from_slice(set.window(i));
    }
    let [_, samples] = set.example_shape();
    let noise = augment.map(|(rng, a)| {
        if a.shift_max > 0 || a.scale_std > 0.0 {
            for example in data.chunks_mut(set.window_len.max(1)) {
                jitter(example, samples, rng, a);
            }
        }
        (rng, a.noise_std)
    });
    if let Some((rng, std)) = noise.filter(|(_, std)| *std > 0.0) {
        for pair in data.chunks_mut(2) {
            let (a, b) = rng.gaussian_pair();
            pair[0] += (a * std) as f32;
            if let Some(x) = pair.get_mut(1) {
                *x += (b * std) as f32;
            }
        }
    }
    let [channels, samples] = set.example_shape();
    let signal = Tensor::from_data(
        TensorData::new(data, [idx.len(), channels, samples]),
        device,
    );
    let features = (set.n_features > 0).then(|| {
        let rows: Vec<f32> = idx
            .iter()
            .flat_map(|&i| set.feature_row(i))
            .copied()
            .collect();
        Tensor::from_data(TensorData::new(rows, [idx.len(), set.n_features]), device)
    });
    (signal, features)
}

/// Weighted targets `[batch, classes]`: for a binary model `w [1 - f, f]` with
/// `f` the soft target (non-N fraction) or the 0/1 label, otherwise `w` times
/// the one-hot label; `w` is the class weight of the example's label. The weight scales a window's whole target, not one component: weighting
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
    let classes = weights.len();
    let mut data = Vec::with_capacity(idx.len() * classes);
    for &i in idx {
        let label = usize::from(set.labels[i]);
        let w = weights[label];
        if classes == 2 {
            let f = if soft && !set.fractions.is_empty() {
                set.fractions[i]
            } else {
                f32::from(set.labels[i] == ABNORMAL)
            };
            data.extend_from_slice(&[w * (1.0 - f), w * f]);
        } else {
            data.extend((0..classes).map(|c| if c == label { w } else { 0.0 }));
        }
    }
    Tensor::from_data(TensorData::new(data, [idx.len(), classes]), device)
}

/// Weighted cross-entropy against (soft) targets: `-sum(t * log p) / sum(t)`
/// (rows of `t` sum to their window's weight). With 0/1 targets this is the usual
/// class-weighted cross-entropy.
fn loss(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    let total = targets.clone().sum();
    (log_p * targets).sum().neg() / total
}

/// `min((n / (classes * n_c)) ^ power, max)` per class (`n_c` at least 1):
/// with power 1 and no cap every class carries the same total weight.
pub fn class_weights(counts: &[usize], power: f64, max: f64) -> Vec<f32> {
    let n = counts.iter().sum::<usize>().max(1) as f64;
    let k = counts.len().max(1) as f64;
    counts
        .iter()
        .map(|&c| (n / (k * c.max(1) as f64)).powf(power).min(max) as f32)
        .collect()
}

/// Class probabilities `[n * classes]` and mean loss of `net` over `set` (no
/// gradients, no dropout).
pub fn predict<M: Classifier>(
    net: &M,
    set: &WindowSet,
    batch: usize,
    cfg: &TrainingConfig,
    device: &Device,
) -> Result<(Vec<f32>, f64)> {
    let mut probs = Vec::with_capacity(set.len() * cfg.model.classes);
    let mut loss_sum = 0.0;
    let all: Vec<usize> = (0..set.len()).collect();
    for idx in all.chunks(batch.max(1)) {
        let (signal, features) = batch_tensor(set, idx, None, device);
        let out = net.output(signal, features);
        let targets = target_tensor(set, idx, &cfg.class_weights, cfg.soft_targets, device);
        loss_sum += scalar(loss(out.logits.clone(), targets))? * idx.len() as f64;
        probs.extend(to_f32(burn::tensor::activation::softmax(out.logits, 1))?);
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

/// Trains `cfg.model` on `train`, early-stopping on `val`; writes one JSON
/// line per epoch to `log`.
pub fn train(
    cfg: &mut TrainingConfig,
    train: &WindowSet,
    val: &WindowSet,
    log: &Path,
) -> Result<Trained> {
    let (model, classes) = (cfg.model.clone(), cfg.model.classes);
    train_with(
        cfg,
        classes,
        |device| Ok(model.init(device)),
        [train, val],
        log,
    )
}

/// Trains the network `init` makes on the training device (`classes`
/// outputs; fresh, or loaded from a saved record) on `train`, early-stopping
/// on `val`, with `cfg`'s loop settings (`cfg.model` is not read); writes one
/// JSON line per epoch to `log`.
pub fn train_with<M: Classifier>(
    cfg: &mut TrainingConfig,
    classes: usize,
    init: impl FnOnce(&Device) -> Result<M>,
    [train, val]: [&WindowSet; 2],
    log: &Path,
) -> Result<Trained<M>> {
    if train.is_empty() || val.is_empty() {
        bail!(
            "empty training ({}) or validation ({}) set",
            train.len(),
            val.len()
        );
    }
    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    cfg.class_weights = class_weights(
        &train.class_counts(classes),
        cfg.class_weight_power,
        cfg.max_class_weight,
    );
    let mut net = init(&device)?;
    let mut optim = AdamConfig::new().init();
    let mut noise_rng = SplitMix::new(cfg.seed ^ 0x5eed);
    let augment = Augment {
        noise_std: cfg.noise_std,
        shift_max: cfg.shift_max,
        scale_std: cfg.scale_std,
    };
    let mut log_file =
        std::fs::File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
    let mut rng = SplitMix::new(cfg.seed);
    let (mut best, mut best_score, mut best_epoch, mut history) =
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
            let (signal, features) =
                batch_tensor(train, idx, Some((&mut noise_rng, augment)), &device);
            let targets = target_tensor(train, idx, &cfg.class_weights, cfg.soft_targets, &device);
            let loss = loss(net.output(signal, features).logits, targets);
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
        let names = vec![""; classes];
        let report = MultiReport::new(&MultiReport::argmax(&probs, classes), &val.labels, &names);
        let score = cfg.selection.score(&probs, val, classes);
        let is_best = score > best_score;
        if is_best {
            (best, best_score, best_epoch) = (valid, score, epoch);
        }
        let seconds = started.elapsed().as_secs_f64();
        let entry = EpochLog {
            epoch,
            train_loss: loss_sum / train.len() as f64,
            val_loss,
            val_accuracy: report.accuracy,
            val_score: score,
            val_recall: report.classes.iter().map(|c| c.recall).collect(),
            seconds,
            windows_per_s: train.len() as f64 / seconds,
            best: is_best,
        };
        let line = format!(
            "train loss {:.4} val loss {:.4} val {:?} {:.4} val acc {:.2}% {:.0} examples/s{}",
            entry.train_loss,
            val_loss,
            cfg.selection,
            score,
            100.0 * report.accuracy,
            entry.windows_per_s,
            if is_best { " (best)" } else { "" }
        );
        if bar.is_hidden() {
            eprintln!("epoch {epoch:>3}: {line}");
        }
        bar.finish_with_message(line);
        writeln!(log_file, "{}", serde_json::to_string(&entry)?)?;
        super::tracking::log_metrics(
            &[
                ("train_loss", entry.train_loss),
                ("val_loss", entry.val_loss),
                ("val_score", entry.val_score),
                ("val_accuracy", entry.val_accuracy),
            ],
            epoch as u64,
        );
        history.push(entry);
        if epoch - best_epoch >= cfg.patience {
            eprintln!(
                "early stop: no better validation {:?} for {} epochs; keeping epoch {best_epoch}",
                cfg.selection, cfg.patience
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
pub fn check_parity<M: Classifier>(
    net: &M,
    onnx: &[u8],
    set: &WindowSet,
    n: usize,
) -> Result<Parity> {
    let device = Device::flex();
    let idx: Vec<usize> = (0..set.len().min(n)).collect();
    let (signal, features) = batch_tensor(set, &idx, None, &device);
    let out = net.output(signal, features);
    let logits = to_f32(out.logits)?;
    let attention = out.attention.map(to_f32).transpose()?.unwrap_or_default();
    let mut ort = Runtime::get()?.session(onnx, 2, Provider::Cpu)?;
    let (input, features) = set.arrays(&idx);
    let got = ort.run(&input, idx.len(), &set.example_shape(), &features)?;
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

/// Largest ONNX-vs-burn difference accepted after export.
pub const PARITY_TOLERANCE: f64 = 1e-4;

/// A trained, exported and parity-checked model with its held-out predictions.
pub struct Fitted {
    /// The `.onnx` bytes (already written).
    pub bytes: Vec<u8>,
    pub onnx_path: std::path::PathBuf,
    /// The trained weights as a burn record (burnpack), what
    /// `ecg-train finetune` starts from.
    pub record_path: std::path::PathBuf,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub parity: Parity,
    /// Class probabilities through ONNX Runtime, `[len * classes]`.
    pub val_probs: Vec<f32>,
    pub test_probs: Vec<f32>,
}

/// What both models do after their data are ready: train (metrics log at
/// `<base>.metrics.jsonl`), export `<base>.onnx`, check ONNX Runtime against burn
/// on up to 64 test examples (an error beyond [`PARITY_TOLERANCE`]), and predict
/// the validation and test sets through the exported file.
pub fn fit_and_export(
    cfg: &mut TrainingConfig,
    sets: [&WindowSet; 3],
    base: &Path,
    name: &str,
    version: &str,
) -> Result<Fitted> {
    let (model, classes) = (cfg.model.clone(), cfg.model.classes);
    fit_and_export_with(
        cfg,
        (classes, |device: &Device| Ok(model.init(device))),
        sets,
        base,
        |net: &AttentionNet| super::onnx::export(net, &model, name, version),
    )
}

/// [`fit_and_export`] for the network `init` makes (`classes` outputs),
/// written as ONNX by `export`.
pub fn fit_and_export_with<M: Classifier>(
    cfg: &mut TrainingConfig,
    (classes, init): (usize, impl FnOnce(&Device) -> Result<M>),
    sets: [&WindowSet; 3],
    base: &Path,
    export: impl FnOnce(&M) -> Vec<u8>,
) -> Result<Fitted> {
    let [train_set, val, test] = sets;
    let trained = train_with(
        cfg,
        classes,
        init,
        [train_set, val],
        &base.with_extension("metrics.jsonl"),
    )?;
    let bytes = export(&trained.net);
    let record_path = base.with_extension("bpk");
    trained
        .net
        .clone()
        .save_file(&record_path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e:?}", record_path.display()))?;
    let onnx_path = base.with_extension("onnx");
    std::fs::write(&onnx_path, &bytes)
        .with_context(|| format!("cannot write {}", onnx_path.display()))?;
    let parity = check_parity(&trained.net, &bytes, test, 64)?;
    eprintln!(
        "ONNX Runtime parity on {} test examples: max |diff| logits {:.2e}, attention {:.2e}",
        parity.windows, parity.max_abs_diff_logits, parity.max_abs_diff_attention
    );
    if parity.max_abs_diff_logits > PARITY_TOLERANCE
        || parity.max_abs_diff_attention > PARITY_TOLERANCE
    {
        bail!("exported model differs from the trained network by more than {PARITY_TOLERANCE}");
    }
    let mut session = Runtime::get()?.session(&bytes, 2, Provider::Cpu)?;
    Ok(Fitted {
        val_probs: predict_onnx(&mut session, val, 256)?,
        test_probs: predict_onnx(&mut session, test, 256)?,
        bytes,
        onnx_path,
        record_path,
        best_epoch: trained.best_epoch,
        epochs_run: trained.history.len(),
        parity,
    })
}
