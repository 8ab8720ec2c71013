//! Multi-class metrics in the AAMI EC57 style: per class sensitivity (Se),
//! positive predictivity (+P) and F1, accuracy and the confusion matrix. The
//! trainer reports the beat model with them; the server's `reference`
//! comparison uses them on a user's own annotations.

use serde::Serialize;
use utoipa::ToSchema;

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct ClassMetrics {
    pub label: String,
    pub support: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// `a / b`, 0 when `b` is 0 (a class never predicted has precision 0).
pub fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Precision, recall and F1 of every class of the confusion matrix `m`
/// (`m[true][predicted]`, square, classes in `names` order).
pub fn class_metrics(m: &[Vec<usize>], names: &[&str]) -> Vec<ClassMetrics> {
    (0..m.len())
        .map(|c| {
            let tp = m[c][c];
            let support: usize = m[c].iter().sum();
            let predicted: usize = m.iter().map(|row| row[c]).sum();
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassMetrics {
                label: names.get(c).unwrap_or(&"?").to_string(),
                support,
                precision,
                recall,
                f1,
            }
        })
        .collect()
}

/// Multi-class metrics in the AAMI EC57 style: per class Se (= recall),
/// +P (= precision) and F1; overall accuracy; the confusion matrix.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct MultiReport {
    pub examples: usize,
    pub accuracy: f64,
    /// Mean F1 over the classes with support.
    pub macro_f1: f64,
    /// `confusion[true][predicted]`, classes in `classes` order.
    pub confusion: Vec<Vec<usize>>,
    pub classes: Vec<ClassMetrics>,
}

impl MultiReport {
    /// Metrics of `predicted` class indices against `labels`, classes named `names`.
    pub fn new(predicted: &[u8], labels: &[u8], names: &[&str]) -> Self {
        let k = names.len();
        let mut m = vec![vec![0usize; k]; k];
        for (&p, &l) in predicted.iter().zip(labels) {
            if let Some(cell) = m
                .get_mut(usize::from(l))
                .and_then(|r| r.get_mut(usize::from(p)))
            {
                *cell += 1;
            }
        }
        let classes = class_metrics(&m, names);
        let supported: Vec<&ClassMetrics> = classes.iter().filter(|c| c.support > 0).collect();
        let macro_f1 = supported.iter().map(|c| c.f1).sum::<f64>() / supported.len().max(1) as f64;
        let correct: usize = (0..k).map(|c| m[c][c]).sum();
        MultiReport {
            examples: labels.len(),
            accuracy: ratio(correct, labels.len()),
            macro_f1,
            confusion: m,
            classes,
        }
    }

    /// The index of the largest value in each row of `probs` (`[n * classes]`).
    pub fn argmax(probs: &[f32], classes: usize) -> Vec<u8> {
        probs
            .chunks(classes.max(1))
            .map(|row| {
                (0..row.len())
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap_or(0) as u8
            })
            .collect()
    }

    /// A printable table: Se, +P, F1 per class, then the confusion matrix.
    pub fn table(&self, title: &str) -> String {
        let mut s = format!(
            "{title}\n  beats {}  accuracy {:.2} %  macro F1 {:.3}\n  {:<6} {:>8} {:>8} {:>8} {:>7}\n",
            self.examples,
            100.0 * self.accuracy,
            self.macro_f1,
            "class",
            "support",
            "Se",
            "+P",
            "F1"
        );
        for c in &self.classes {
            s.push_str(&format!(
                "  {:<6} {:>8} {:>7.2}% {:>7.2}% {:>7.3}\n",
                c.label,
                c.support,
                100.0 * c.recall,
                100.0 * c.precision,
                c.f1
            ));
        }
        s.push_str("  confusion (rows true, columns predicted)\n        ");
        for c in &self.classes {
            s.push_str(&format!("{:>8}", c.label));
        }
        s.push('\n');
        for (c, row) in self.classes.iter().zip(&self.confusion) {
            s.push_str(&format!("  {:<6}", c.label));
            for v in row {
                s.push_str(&format!("{v:>8}"));
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_class_se_p_and_f1() {
        // true N N S V V F, predicted N S S V N F
        let r = MultiReport::new(
            &[0, 1, 1, 2, 0, 3],
            &[0, 0, 1, 2, 2, 3],
            &["N", "S", "V", "F", "Q"],
        );
        assert_eq!(r.confusion[0], vec![1, 1, 0, 0, 0]);
        assert_eq!(r.confusion[2], vec![1, 0, 1, 0, 0]);
        assert!((r.accuracy - 4.0 / 6.0).abs() < 1e-12);
        let s = &r.classes[1];
        assert_eq!((s.support, s.recall, s.precision), (1, 1.0, 0.5));
        let v = &r.classes[2];
        assert_eq!((v.recall, v.precision), (0.5, 1.0));
        // Q has no support and stays out of the macro mean: (0.5 + 2/3 + 2/3 + 1) / 4
        assert!((r.macro_f1 - (0.5 + 2.0 / 3.0 + 2.0 / 3.0 + 1.0) / 4.0).abs() < 1e-12);
        assert_eq!(MultiReport::argmax(&[0.1, 0.9, 0.7, 0.3], 2), vec![1, 0]);
    }
}
