//! `ecg-train stack`: the segment network stacked with a logistic regression on
//! its own rhythm features, built into the ONNX graph.
//!
//! The served score is `logit(P_net) + w · z_LR`: `z_LR` is a class-balanced,
//! L2-penalised logistic regression on the window's standardised rhythm
//! features, fitted on the network's own training records (never on its
//! validation or test records). The regression is a linear function of the
//! `features` input, so it goes into the graph as one MatMul + Add on the
//! Abnormal logit ([`super::onnx::add_feature_logit`]); the server needs no new
//! code and the card describes it. `w = 1` was chosen by a two-fold record-wise
//! cross-validation over DS1 (`scripts/stack_cv.py`; README, "The model").
//!
//! The regression is fitted here by Newton's method rather than with a crate:
//! seven parameters make each step a 7×7 solve, and writing the objective out
//! lets it be exactly scikit-learn's `LogisticRegression(C, class_weight=
//! "balanced")` (unpenalised intercept, weights `n / (2 n_class)`), which the
//! tests check against committed scikit-learn output.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use serde_json::json;

use super::data::{load_windows, WindowSet, ABNORMAL};
use super::metrics::BinaryReport;
use super::onnx::add_feature_logit;
use super::segment::per_record;
use super::training::{column, logits_onnx};
use crate::engine::{softmax, Provider, Runtime};
use crate::model::card::sha256_hex;
use crate::model::ModelCard;

/// A fitted binary logistic regression on standardised features.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Logistic {
    /// Feature means of the training rows (the standardisation).
    pub mean: Vec<f64>,
    /// Feature standard deviations (population; 1 where a feature is constant).
    pub scale: Vec<f64>,
    /// Coefficients of the standardised features.
    pub coef: Vec<f64>,
    pub intercept: f64,
    /// Inverse L2 strength, as scikit-learn's `C`.
    pub c: f64,
    /// Weights of Normal and Abnormal rows (`n / (2 n_class)`).
    pub class_weights: [f64; 2],
    /// Newton steps taken.
    pub iterations: usize,
}

/// `log(1 + e^x)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Solves `a x = b` for a symmetric positive definite `a` (`n × n`, row-major)
/// by Cholesky; `None` if `a` is not positive definite.
fn solve_spd(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for j in 0..n {
        let d = a[j * n + j] - (0..j).map(|k| a[j * n + k].powi(2)).sum::<f64>();
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let s = a[i * n + j] - (0..j).map(|k| a[i * n + k] * a[j * n + k]).sum::<f64>();
            a[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        b[i] = (b[i] - (0..i).map(|k| a[i * n + k] * b[k]).sum::<f64>()) / a[i * n + i];
    }
    for i in (0..n).rev() {
        b[i] = (b[i] - (i + 1..n).map(|k| a[k * n + i] * b[k]).sum::<f64>()) / a[i * n + i];
    }
    Some(b)
}

impl Logistic {
    /// Fits `rows` (`len × width`, row-major) against 0/1 `labels`: minimises
    /// `Σ s_i [log(1 + e^η_i) − y_i η_i] + |coef|² / (2c)` with `η = intercept +
    /// coef · standardised row` and `s_i` the balanced weight of row `i`'s class.
    pub fn fit(rows: &[f32], width: usize, labels: &[u8], c: f64) -> Result<Self> {
        let n = labels.len();
        ensure!(
            width > 0 && rows.len() == n * width,
            "{} feature values for {n} rows of {width}",
            rows.len()
        );
        ensure!(c > 0.0 && c.is_finite(), "C must be positive, not {c}");
        ensure!(
            rows.iter().all(|v| v.is_finite()),
            "the features hold NaN or infinite values"
        );
        let positives = labels.iter().filter(|&&l| l == ABNORMAL).count();
        if positives == 0 || positives == n {
            bail!("a logistic regression needs both classes: {positives} of {n} rows are Abnormal");
        }
        let class_weights = [
            n as f64 / (2 * (n - positives)) as f64,
            n as f64 / (2 * positives) as f64,
        ];
        let column = |j: usize| rows.iter().skip(j).step_by(width).map(|&v| v as f64);
        let mean: Vec<f64> = (0..width)
            .map(|j| column(j).sum::<f64>() / n as f64)
            .collect();
        let scale: Vec<f64> = (0..width)
            .map(|j| {
                let sd = (column(j).map(|v| (v - mean[j]).powi(2)).sum::<f64>() / n as f64).sqrt();
                if sd > 0.0 {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        // Design rows [1, standardised features], class weight and 0/1 target.
        let d = width + 1;
        let x: Vec<f64> = rows
            .chunks(width)
            .flat_map(|r| {
                std::iter::once(1.0).chain(
                    r.iter()
                        .enumerate()
                        .map(|(j, &v)| (v as f64 - mean[j]) / scale[j]),
                )
            })
            .collect();
        let y: Vec<f64> = labels.iter().map(|&l| f64::from(l == ABNORMAL)).collect();
        let s: Vec<f64> = labels
            .iter()
            .map(|&l| class_weights[usize::from(l == ABNORMAL)])
            .collect();
        let objective = |theta: &[f64]| {
            let loss: f64 = x
                .chunks(d)
                .zip(&y)
                .zip(&s)
                .map(|((xi, yi), si)| {
                    let eta: f64 = xi.iter().zip(theta).map(|(a, b)| a * b).sum();
                    si * (softplus(eta) - yi * eta)
                })
                .sum();
            loss + theta[1..].iter().map(|t| t * t).sum::<f64>() / (2.0 * c)
        };
        let mut theta = vec![0.0; d];
        let mut current = objective(&theta);
        for iteration in 1..=100 {
            let mut grad = vec![0.0; d];
            let mut hess = vec![0.0; d * d];
            for ((xi, yi), si) in x.chunks(d).zip(&y).zip(&s) {
                let p = sigmoid(xi.iter().zip(&theta).map(|(a, b)| a * b).sum());
                let (g, h) = (si * (p - yi), si * p * (1.0 - p));
                for a in 0..d {
                    grad[a] += g * xi[a];
                    for b in 0..d {
                        hess[a * d + b] += h * xi[a] * xi[b];
                    }
                }
            }
            for a in 1..d {
                grad[a] += theta[a] / c;
                hess[a * d + a] += 1.0 / c;
            }
            let step = solve_spd(hess, grad).context("the regression's Hessian is singular")?;
            // Newton's step, halved while it does not lower the objective.
            let mut t = 1.0;
            let (next, value) = loop {
                let next: Vec<f64> = theta.iter().zip(&step).map(|(a, b)| a - t * b).collect();
                let value = objective(&next);
                if value <= current || t < 1e-6 {
                    break (next, value);
                }
                t /= 2.0;
            };
            let moved = step.iter().fold(0.0f64, |m, v| m.max((t * v).abs()));
            theta = next;
            current = value;
            if moved < 1e-10 {
                return Ok(Logistic {
                    mean,
                    scale,
                    coef: theta[1..].to_vec(),
                    intercept: theta[0],
                    c,
                    class_weights,
                    iterations: iteration,
                });
            }
        }
        bail!("the logistic regression did not converge in 100 Newton steps")
    }

    /// The regression's log-odds of Abnormal for one row of raw features.
    pub fn decision(&self, row: &[f32]) -> f64 {
        let (weights, bias) = self.raw();
        bias + row
            .iter()
            .zip(&weights)
            .map(|(&v, w)| v as f64 * w)
            .sum::<f64>()
    }

    /// The same function on raw (unstandardised) features: weights and bias.
    pub fn raw(&self) -> (Vec<f64>, f64) {
        let weights: Vec<f64> = self
            .coef
            .iter()
            .zip(&self.scale)
            .map(|(c, s)| c / s)
            .collect();
        let bias = self.intercept
            - weights
                .iter()
                .zip(&self.mean)
                .map(|(w, m)| w * m)
                .sum::<f64>();
        (weights, bias)
    }
}

/// The regression's weight that the cross-validation over DS1 chose.
pub const DEFAULT_WEIGHT: f64 = 1.0;

/// Everything `ecg-train stack` needs (its command-line options too).
#[derive(Debug, Clone, clap::Args)]
pub struct StackOptions {
    /// The segment network's .onnx; its card is the .json beside it.
    #[arg(long, default_value = "models/ecg-segment-net.onnx")]
    pub model: PathBuf,
    /// Folder of MIT-BIH records (.hea, .dat, .atr).
    #[arg(long, env = "ECG_DB", default_value = "../shared/data/mitdb")]
    pub db: PathBuf,
    /// Output folder for <name>.onnx, <name>.json (card) and <name>.report.json.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    #[arg(long, default_value = "ecg-segment")]
    pub name: String,
    #[arg(long, default_value = "2.1.0")]
    pub version: String,
    /// The regression's weight in logit(P_net) + weight * z (1: chosen by a
    /// 2-fold cross-validation over DS1, scripts/stack_cv.py).
    #[arg(long, default_value_t = DEFAULT_WEIGHT)]
    pub weight: f64,
    /// Inverse L2 strength of the regression (scikit-learn's C).
    #[arg(long, default_value_t = 1.0)]
    pub c: f64,
}

/// P(Abnormal) of each row of `[n × 2]` logits, as the server computes it.
fn abnormal_probs(logits: &[f32]) -> Vec<f64> {
    let probs: Vec<f32> = logits.chunks(2).flat_map(softmax).collect();
    column(&probs, 2, 1)
}

/// One held-out set through the network alone and through the stacked graph:
/// both reports, and the largest gap between the stacked graph's logit margin
/// and the network's margin plus `w · z_LR` computed here in f64.
struct Measured {
    net: BinaryReport,
    stacked: BinaryReport,
    stacked_probs: Vec<f64>,
    max_abs_diff: f64,
}

fn measure(
    net_logits: &[f32],
    stacked_logits: &[f32],
    set: &WindowSet,
    lr: &Logistic,
    weight: f64,
    threshold: f64,
) -> Measured {
    let margin = |l: &[f32]| l[1] as f64 - l[0] as f64;
    let max_abs_diff = net_logits
        .chunks(2)
        .zip(stacked_logits.chunks(2))
        .enumerate()
        .map(|(i, (a, b))| (margin(b) - margin(a) - weight * lr.decision(set.feature_row(i))).abs())
        // A NaN gap (a non-finite logit) must fail the check, not vanish in `max`.
        .map(|d| if d.is_nan() { f64::INFINITY } else { d })
        .fold(0.0, f64::max);
    let stacked_probs = abnormal_probs(stacked_logits);
    Measured {
        net: BinaryReport::new(&abnormal_probs(net_logits), &set.labels, threshold),
        stacked: BinaryReport::new(&stacked_probs, &set.labels, threshold),
        stacked_probs,
        max_abs_diff,
    }
}

/// Largest accepted gap between the graph's stacked margin and the f64 sum
/// (the graph computes in f32).
pub const STACK_TOLERANCE: f64 = 1e-3;

/// Fits the regression on the card's training records, writes the stacked
/// `<out>/<name>.onnx`, its card and `<name>.report.json`, and prints the
/// validation and test reports of the network alone and stacked. Returns the
/// new card's path.
pub fn run(opts: &StackOptions) -> Result<PathBuf> {
    let (base, bytes) = ModelCard::open(&opts.model)?;
    ensure!(
        base.task == "segment",
        "{} is a {} model; stacking is for the segment model",
        base.name,
        base.task
    );
    let names = base
        .preprocessing
        .window_features
        .as_ref()
        .map(|f| f.names.clone())
        .context("the model has no rhythm features (`preprocessing.window_features`) to stack")?;
    ensure!(
        base.training.get("stack").is_none(),
        "{} {} is already stacked",
        base.name,
        base.version
    );
    ensure!(opts.weight.is_finite(), "the weight must be finite");
    let file = format!("{}.onnx", opts.name);
    let base_path = opts.out.join(&opts.name);
    let onnx_path = opts.out.join(&file);
    ensure!(
        !same_file(&onnx_path, &opts.model),
        "the output would overwrite the network it stacks ({}); give another --name or --out",
        opts.model.display()
    );
    let fraction = base.abnormal_fraction();
    let load = |records: &[String]| load_windows(&opts.db, records, &base.preprocessing, fraction);
    let split = &base.split;
    eprintln!(
        "loading the network's {} training, {} validation and {} test records",
        split.train_records.len(),
        split.validation_records.len(),
        split.test_records.len()
    );
    let train = load(&split.train_records)?;
    let lr = Logistic::fit(&train.features, names.len(), &train.labels, opts.c)?;
    println!(
        "logistic regression on {} training windows ({} Abnormal), C = {}, {} Newton steps",
        train.len(),
        train.labels.iter().filter(|&&l| l == ABNORMAL).count(),
        lr.c,
        lr.iterations
    );
    println!(
        "{:<20} {:>10} {:>10} {:>12}",
        "feature", "mean", "sd", "coefficient"
    );
    for (k, name) in names.iter().enumerate() {
        println!(
            "{name:<20} {:>10.4} {:>10.4} {:>12.4}",
            lr.mean[k], lr.scale[k], lr.coef[k]
        );
    }
    println!("{:<20} {:>34.4}", "intercept", lr.intercept);
    let (raw, bias) = lr.raw();
    let weights: Vec<f32> = raw.iter().map(|v| (opts.weight * v) as f32).collect();
    let note = format!(
        "; stacked: Abnormal logit + {} x a logistic regression on its {} rhythm features (ecg-train stack)",
        opts.weight,
        names.len()
    );
    let stacked = add_feature_logit(
        &bytes,
        ABNORMAL as usize,
        &weights,
        (opts.weight * bias) as f32,
        &note,
    )?;
    let runtime = Runtime::get()?;
    let mut net = runtime.session(&bytes, 2, Provider::Cpu)?;
    let mut both = runtime.session(&stacked, 2, Provider::Cpu)?;
    let threshold = base.decision.threshold;
    let mut run_set = |set: &WindowSet| -> Result<Measured> {
        let a = logits_onnx(&mut net, set, 64)?;
        let b = logits_onnx(&mut both, set, 64)?;
        Ok(measure(&a, &b, set, &lr, opts.weight, threshold))
    };
    let val = load(&split.validation_records)?;
    let val_m = run_set(&val)?;
    let test = load(&split.test_records)?;
    let test_m = run_set(&test)?;
    let max_abs_diff = val_m.max_abs_diff.max(test_m.max_abs_diff);
    ensure!(
        max_abs_diff < STACK_TOLERANCE,
        "the stacked graph's margin differs from network + w * regression by {max_abs_diff}"
    );
    for (title, m) in [("validation", &val_m), ("test", &test_m)] {
        print!("{}", m.net.table(&format!("{title}: network alone")));
        print!(
            "{}",
            m.stacked
                .table(&format!("{title}: stacked (w = {})", opts.weight))
        );
    }
    let stack = json!({
        "score": "logit(P_net(Abnormal)) + weight * z, z = intercept + coef . (features - mean) / scale",
        "weight": opts.weight,
        "weight_chosen_by": if opts.weight == DEFAULT_WEIGHT {
            "2-fold record-wise cross-validation over DS1 (scripts/stack_cv.py): mean held-out ROC AUC 0.904 at weight 0, 0.922 at 1 (chosen), 0.916 at 2"
        } else {
            "given on the command line (--weight), not the cross-validated 1"
        },
        "features": names,
        "logistic": lr,
        "class_weight": "balanced",
        "fitted_on": {"records": split.train_records, "windows": train.summary()},
        "base": {"name": base.name, "version": base.version, "sha256": base.sha256},
    });
    let mut training = base.training.clone();
    if let Some(t) = training.as_object_mut() {
        t.insert("stack".into(), stack);
    }
    let mut metrics = base.metrics.clone();
    if let Some(m) = metrics.as_object_mut() {
        m.insert("test".into(), serde_json::to_value(&test_m.stacked)?);
        m.insert("validation".into(), serde_json::to_value(&val_m.stacked)?);
        m.insert(
            "test_per_record".into(),
            per_record(&test, &test_m.stacked_probs, threshold),
        );
        m.insert(
            "network_alone".into(),
            json!({"test": test_m.net, "validation": val_m.net}),
        );
        m.insert(
            "stack_check".into(),
            json!({"max_abs_diff_margin": max_abs_diff, "windows": val.len() + test.len()}),
        );
        m.insert(
            "measured_with".into(),
            json!(format!(
                "ecg-train stack (ONNX Runtime, {} test windows)",
                test.len()
            )),
        );
    }
    let mut card = base.clone();
    card.name = opts.name.clone();
    card.version = opts.version.clone();
    card.file = file.clone();
    card.sha256 = sha256_hex(&stacked);
    card.training = training;
    card.metrics = metrics.clone();
    card.created_by = format!("ecg-train {} stack", env!("CARGO_PKG_VERSION"));
    card.decision.chosen_by = format!(
        "{}, kept from {} {} and applied to the stacked logits",
        base.decision.chosen_by, base.name, base.version
    );
    if let Some(logits) = card.outputs.iter_mut().find(|o| o.name == "logits") {
        logits.description = format!(
            "class logits; softmax gives probabilities in `labels` order. The Abnormal logit is the network's plus {} x a logistic regression on `features` (training.stack)",
            opts.weight
        );
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    std::fs::write(&onnx_path, &stacked)?;
    std::fs::write(
        base_path.with_extension("report.json"),
        serde_json::to_string_pretty(&metrics)?,
    )?;
    let new_card = base_path.with_extension("json");
    card.write(&new_card)?;
    eprintln!("wrote {} and {}", onnx_path.display(), new_card.display());
    Ok(new_card)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        let a = vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let x = [1.0, -2.0, 0.5];
        let b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| a[i * 3 + j] * x[j]).sum())
            .collect();
        let got = solve_spd(a, b).unwrap();
        for (g, w) in got.iter().zip(x) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        assert!(solve_spd(vec![1.0, 2.0, 2.0, 1.0], vec![1.0, 1.0]).is_none());
    }

    #[test]
    fn one_class_or_bad_values_are_errors_not_fits() {
        assert!(Logistic::fit(&[0.1, 0.2, 0.3], 1, &[0, 0, 0], 1.0).is_err());
        assert!(Logistic::fit(&[0.1, f32::NAN], 1, &[0, 1], 1.0).is_err());
        assert!(Logistic::fit(&[0.1, 0.2], 1, &[0, 1], 0.0).is_err());
        assert!(Logistic::fit(&[0.1, 0.2, 0.3], 2, &[0, 1], 1.0).is_err());
    }

    #[test]
    fn a_stronger_penalty_shrinks_the_coefficients() {
        // One informative feature (label follows its sign, with overlap) and a constant one.
        let rows: Vec<f32> = (0..200)
            .flat_map(|i| [((i % 20) as f32 - 9.5) / 3.0, 1.0])
            .collect();
        let labels: Vec<u8> = (0..200)
            .map(|i| u8::from((i % 20) >= 9 + (i % 3)))
            .collect();
        let loose = Logistic::fit(&rows, 2, &labels, 100.0).unwrap();
        let tight = Logistic::fit(&rows, 2, &labels, 0.01).unwrap();
        assert!(
            loose.coef[0] > tight.coef[0] && tight.coef[0] > 0.0,
            "{loose:?} {tight:?}"
        );
        // A constant feature is not scaled (sd 1) and gets no weight.
        assert_eq!(loose.scale[1], 1.0);
        assert!(loose.coef[1].abs() < 1e-9);
        // decision() is the standardised model on raw rows.
        let row = [0.7f32, 1.0];
        let z = loose.intercept + loose.coef[0] * (0.7f32 as f64 - loose.mean[0]) / loose.scale[0];
        assert!((loose.decision(&row) - z).abs() < 1e-9);
    }
}
