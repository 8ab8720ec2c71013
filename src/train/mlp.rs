//! A small multi-layer perceptron on standardised tabular features: the beat
//! model's stacked layer ([`super::beat_mlp`]).
//!
//! Written out here rather than with burn because this network is two hidden
//! layers on ~80 numbers, and what the beat model needs of it is to be
//! **bit-for-bit reproducible** (the same config gives the same `.onnx`,
//! sha256 included) and cheap enough to cross-validate on 2 cores: plain f32
//! loops in one fixed order, a seeded generator, no thread pool. Training:
//! Adam, class-weighted cross-entropy, L2 weight decay, a per-epoch
//! learning-rate decay, a fixed number of epochs (chosen by cross-validation,
//! never by a test set). The standardisation is part of the model (and of its
//! ONNX graph).

use serde::{Deserialize, Serialize};

use super::data::SplitMix;

/// Hyper-parameters (saved in the card).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Multiplies the learning rate after every epoch.
    pub lr_decay: f64,
    /// L2 penalty on the weights (not the biases).
    pub weight_decay: f64,
    /// Class weights `(n / (k n_c)) ^ power`, capped at `max_class_weight`.
    pub class_weight_power: f64,
    pub max_class_weight: f64,
    pub seed: u64,
    /// Networks trained with seeds `seed`, `seed + 1`, ...; their logits are averaged.
    pub members: usize,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            hidden: vec![64, 32],
            epochs: 12,
            batch_size: 256,
            learning_rate: 2e-3,
            lr_decay: 0.85,
            weight_decay: 1e-4,
            class_weight_power: 0.5,
            max_class_weight: 20.0,
            seed: 7,
            members: 1,
        }
    }
}

/// One dense layer, `weights` row-major `[inputs, outputs]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A trained network: standardisation, then dense layers with ReLU between.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    pub mean: Vec<f32>,
    /// 1 / standard deviation per input (1 for a constant column).
    pub inv_std: Vec<f32>,
    pub layers: Vec<Dense>,
}

/// Networks whose logits are averaged (one member: that network).
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    pub members: Vec<Mlp>,
}

impl Ensemble {
    /// Trains `cfg.members` networks (seeds `cfg.seed + k`) on `data`.
    pub fn fit(data: &Examples, cfg: &MlpConfig) -> Ensemble {
        let members = (0..cfg.members.max(1) as u64)
            .map(|k| {
                Mlp::fit(
                    data,
                    &MlpConfig {
                        seed: cfg.seed + k,
                        ..cfg.clone()
                    },
                )
            })
            .collect();
        Ensemble { members }
    }

    /// Mean logits of the members, flattened `[n * classes]`.
    pub fn logits(&self, rows: &[f32]) -> Vec<f32> {
        let mut sum: Vec<f32> = Vec::new();
        for m in &self.members {
            let l = m.logits(rows);
            if sum.is_empty() {
                sum = l;
            } else {
                sum.iter_mut().zip(&l).for_each(|(s, v)| *s += v);
            }
        }
        let k = self.members.len().max(1) as f32;
        sum.iter_mut().for_each(|s| *s /= k);
        sum
    }
}

/// Training examples: `rows` flattened `[n * width]`, `labels` class indices.
pub struct Examples<'a> {
    pub rows: &'a [f32],
    pub width: usize,
    pub labels: &'a [u8],
    pub classes: usize,
}

impl Examples<'_> {
    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// Adam state of one tensor.
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Moments {
    fn new(n: usize) -> Self {
        Moments {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    fn step(&mut self, param: &mut [f32], grad: &[f32], lr: f32, t: i32, decay: f32) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for (((p, &g), m), v) in param.iter_mut().zip(grad).zip(&mut self.m).zip(&mut self.v) {
            let g = g + decay * *p;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
        }
    }
}

/// Class weights `(n / (k * n_c)) ^ power`, at most `max`.
pub fn class_weights(labels: &[u8], classes: usize, power: f64, max: f64) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for &l in labels {
        counts[usize::from(l)] += 1;
    }
    let n = labels.len().max(1) as f64;
    counts
        .iter()
        .map(|&c| {
            (n / (classes as f64 * c.max(1) as f64))
                .powf(power)
                .min(max) as f32
        })
        .collect()
}

impl Mlp {
    /// Trains on `data` with `cfg`.
    pub fn fit(data: &Examples, cfg: &MlpConfig) -> Mlp {
        let (n, width) = (data.len(), data.width);
        let (mean, inv_std) = standardisation(data.rows, width);
        let x: Vec<f32> = data
            .rows
            .chunks(width)
            .flat_map(|r| {
                r.iter()
                    .zip(&mean)
                    .zip(&inv_std)
                    .map(|((v, m), s)| (v - m) * s)
            })
            .collect();
        let mut rng = SplitMix::new(cfg.seed);
        let mut sizes = vec![width];
        sizes.extend(&cfg.hidden);
        sizes.push(data.classes);
        let mut layers: Vec<Dense> = sizes
            .windows(2)
            .map(|s| {
                let scale = (2.0 / s[0] as f64).sqrt();
                Dense {
                    inputs: s[0],
                    outputs: s[1],
                    weights: (0..s[0] * s[1])
                        .map(|_| (rng.gaussian_pair().0 * scale) as f32)
                        .collect(),
                    bias: vec![0.0; s[1]],
                }
            })
            .collect();
        let mut moments: Vec<(Moments, Moments)> = layers
            .iter()
            .map(|l| (Moments::new(l.weights.len()), Moments::new(l.bias.len())))
            .collect();
        let weights = class_weights(
            data.labels,
            data.classes,
            cfg.class_weight_power,
            cfg.max_class_weight,
        );
        let mut lr = cfg.learning_rate;
        let mut t = 0;
        let mut order: Vec<usize> = (0..n).collect();
        for _ in 0..cfg.epochs {
            rng.shuffle(&mut order);
            for batch in order.chunks(cfg.batch_size.max(1)) {
                t += 1;
                let grads = gradients(&layers, &x, width, data.labels, &weights, batch);
                for ((layer, (mw, mb)), (gw, gb)) in layers.iter_mut().zip(&mut moments).zip(&grads)
                {
                    mw.step(
                        &mut layer.weights,
                        gw,
                        lr as f32,
                        t,
                        cfg.weight_decay as f32,
                    );
                    mb.step(&mut layer.bias, gb, lr as f32, t, 0.0);
                }
            }
            lr *= cfg.lr_decay;
        }
        Mlp {
            mean,
            inv_std,
            layers,
        }
    }

    /// Logits of each row of `rows` (`[n * width]`), flattened `[n * classes]`.
    pub fn logits(&self, rows: &[f32]) -> Vec<f32> {
        let width = self.mean.len();
        rows.chunks(width)
            .flat_map(|r| {
                let x: Vec<f32> = r
                    .iter()
                    .zip(&self.mean)
                    .zip(&self.inv_std)
                    .map(|((v, m), s)| (v - m) * s)
                    .collect();
                forward(&self.layers, &x).pop().unwrap_or_default()
            })
            .collect()
    }
}

/// Per column mean and 1 / standard deviation.
fn standardisation(rows: &[f32], width: usize) -> (Vec<f32>, Vec<f32>) {
    let n = (rows.len() / width.max(1)).max(1) as f64;
    let mut sum = vec![0.0f64; width];
    let mut sq = vec![0.0f64; width];
    for r in rows.chunks(width) {
        for (j, &v) in r.iter().enumerate() {
            sum[j] += v as f64;
            sq[j] += (v as f64).powi(2);
        }
    }
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let inv_std = sum
        .iter()
        .zip(&sq)
        .map(|(s, q)| {
            let var = (q / n - (s / n).powi(2)).max(0.0);
            if var > 1e-12 {
                (1.0 / var.sqrt()) as f32
            } else {
                1.0
            }
        })
        .collect();
    (mean, inv_std)
}

/// Activations of every layer for one standardised input (the last: logits).
fn forward(layers: &[Dense], x: &[f32]) -> Vec<Vec<f32>> {
    let mut acts = vec![x.to_vec()];
    for (i, l) in layers.iter().enumerate() {
        let input = &acts[acts.len() - 1];
        let mut out = l.bias.clone();
        for (k, &a) in input.iter().enumerate() {
            if a != 0.0 {
                let row = &l.weights[k * l.outputs..(k + 1) * l.outputs];
                for (o, w) in out.iter_mut().zip(row) {
                    *o += a * w;
                }
            }
        }
        if i + 1 < layers.len() {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        acts.push(out);
    }
    acts
}

/// Mean weighted cross-entropy gradients of every layer over `batch`.
fn gradients(
    layers: &[Dense],
    x: &[f32],
    width: usize,
    labels: &[u8],
    class_weights: &[f32],
    batch: &[usize],
) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut grads: Vec<(Vec<f32>, Vec<f32>)> = layers
        .iter()
        .map(|l| (vec![0.0; l.weights.len()], vec![0.0; l.bias.len()]))
        .collect();
    let total: f32 = batch
        .iter()
        .map(|&i| class_weights[usize::from(labels[i])])
        .sum::<f32>()
        .max(1e-12);
    for &i in batch {
        let acts = forward(layers, &x[i * width..(i + 1) * width]);
        let logits = &acts[acts.len() - 1];
        let y = usize::from(labels[i]);
        let w = class_weights[y] / total;
        let probs = crate::engine::softmax(logits);
        let mut delta: Vec<f32> = probs
            .iter()
            .enumerate()
            .map(|(c, p)| w * (p - if c == y { 1.0 } else { 0.0 }))
            .collect();
        for li in (0..layers.len()).rev() {
            let l = &layers[li];
            let input = &acts[li];
            let (gw, gb) = &mut grads[li];
            for (g, d) in gb.iter_mut().zip(&delta) {
                *g += d;
            }
            for (k, &a) in input.iter().enumerate() {
                if a != 0.0 {
                    let row = &mut gw[k * l.outputs..(k + 1) * l.outputs];
                    for (g, d) in row.iter_mut().zip(&delta) {
                        *g += a * d;
                    }
                }
            }
            if li > 0 {
                delta = (0..l.inputs)
                    .map(|k| {
                        if input[k] > 0.0 {
                            let row = &l.weights[k * l.outputs..(k + 1) * l.outputs];
                            row.iter().zip(&delta).map(|(w, d)| w * d).sum()
                        } else {
                            0.0
                        }
                    })
                    .collect();
            }
        }
    }
    grads
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two noisy rings of points: not linearly separable.
    fn rings(n: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
        let mut rng = SplitMix::new(seed);
        let (mut rows, mut labels) = (Vec::new(), Vec::new());
        for i in 0..n {
            let class = (i % 2) as u8;
            let r = if class == 0 { 1.0 } else { 3.0 } + 0.3 * rng.gaussian_pair().0;
            let a = rng.unit() * std::f64::consts::TAU;
            rows.extend([(r * a.cos()) as f32 * 10.0 + 5.0, (r * a.sin()) as f32]);
            labels.push(class);
        }
        (rows, labels)
    }

    fn accuracy(mlp: &Mlp, rows: &[f32], labels: &[u8]) -> f64 {
        let logits = mlp.logits(rows);
        let right = logits
            .chunks(2)
            .zip(labels)
            .filter(|(l, &y)| u8::from(l[1] > l[0]) == y)
            .count();
        right as f64 / labels.len() as f64
    }

    #[test]
    fn learns_a_nonlinear_boundary_and_repeats_itself() {
        let (rows, labels) = rings(2000, 1);
        let data = Examples {
            rows: &rows,
            width: 2,
            labels: &labels,
            classes: 2,
        };
        let cfg = MlpConfig {
            hidden: vec![16, 8],
            epochs: 20,
            batch_size: 64,
            ..MlpConfig::default()
        };
        let a = Mlp::fit(&data, &cfg);
        let (test, test_labels) = rings(1000, 2);
        let acc = accuracy(&a, &test, &test_labels);
        assert!(acc > 0.95, "held-out accuracy {acc}");
        assert_eq!(a, Mlp::fit(&data, &cfg), "same data and seed, same network");
        let other = Mlp::fit(&data, &MlpConfig { seed: 8, ..cfg });
        assert_ne!(a, other);
    }

    #[test]
    fn class_weights_balance_and_cap() {
        let labels = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let w = class_weights(&labels, 3, 1.0, 10.0);
        assert!((w[0] - 10.0 / 27.0).abs() < 1e-6);
        assert!((w[1] - 10.0 / 3.0).abs() < 1e-6);
        assert_eq!(w[2], w[1], "an absent class weighs as a class of one");
        assert_eq!(class_weights(&labels, 3, 1.0, 2.0)[1], 2.0, "capped");
        assert_eq!(
            class_weights(&labels, 3, 0.0, 2.0),
            vec![1.0; 3],
            "power 0: none"
        );
    }
}
