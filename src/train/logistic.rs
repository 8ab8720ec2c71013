//! A class-balanced, L2-penalised binary logistic regression on standardised
//! features (what `ecg-train stack` adds to the segment network).
//!
//! Fitted here by Newton's method rather than with a crate: seven parameters
//! make each step a 7×7 solve, and writing the objective out lets it be
//! exactly scikit-learn's `LogisticRegression(C, class_weight="balanced")`
//! (unpenalised intercept, weights `n / (2 n_class)`), which the tests check
//! against committed scikit-learn output.

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use super::data::ABNORMAL;

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
