//! Binary classification metrics for the segment model: confusion matrix,
//! accuracy, per-class precision / recall / F1, ROC AUC, and the ROC operating
//! point at a required specificity. The multi-class report of the beat model
//! lives in [`crate::eval::classes`] (the server uses it for `reference`).

use serde::Serialize;

use super::data::{ABNORMAL, LABELS};
use crate::eval::classes::ratio;
pub use crate::eval::classes::{class_metrics, ClassMetrics, MultiReport};

/// A point of the ROC curve.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OperatingPoint {
    pub threshold: f64,
    pub abnormal_recall: f64,
    pub normal_specificity: f64,
}

/// Metrics of a set of predictions.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BinaryReport {
    pub windows: usize,
    /// The threshold on P(Abnormal) the confusion matrix uses.
    pub threshold: f64,
    pub accuracy: f64,
    /// `confusion[true][predicted]`, classes in `LABELS` order.
    pub confusion: [[usize; 2]; 2],
    pub classes: Vec<ClassMetrics>,
    pub roc_auc: f64,
    /// The ROC point with the highest recall whose specificity is >= 95 %.
    pub at_specificity_95: OperatingPoint,
}

/// ROC AUC by the rank-sum (Mann-Whitney) statistic, ties counted half.
pub fn roc_auc(scores: &[f64], labels: &[u8]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = labels.iter().filter(|&&l| l == ABNORMAL).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid_rank
            * order[i..=j]
                .iter()
                .filter(|&&k| labels[k] == ABNORMAL)
                .count() as f64;
        i = j + 1;
    }
    (rank_sum - (positives * (positives + 1)) as f64 / 2.0) / (positives * negatives) as f64
}

/// The ROC point with the highest abnormal recall at specificity >= `specificity`.
pub fn point_at_specificity(scores: &[f64], labels: &[u8], specificity: f64) -> OperatingPoint {
    let mut thresholds: Vec<f64> = scores.to_vec();
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    let mut best = OperatingPoint {
        threshold: f64::INFINITY,
        abnormal_recall: 0.0,
        normal_specificity: 1.0,
    };
    for &t in thresholds.iter().rev() {
        let c = confusion(scores, labels, t);
        let spec = ratio(c[0][0], c[0][0] + c[0][1]);
        if spec < specificity {
            break;
        }
        best = OperatingPoint {
            threshold: t,
            abnormal_recall: ratio(c[1][1], c[1][0] + c[1][1]),
            normal_specificity: spec,
        };
    }
    best
}

fn confusion(scores: &[f64], labels: &[u8], threshold: f64) -> [[usize; 2]; 2] {
    let mut m = [[0usize; 2]; 2];
    for (&s, &l) in scores.iter().zip(labels) {
        m[l as usize][usize::from(s >= threshold)] += 1;
    }
    m
}

impl BinaryReport {
    /// Metrics of P(Abnormal) `scores` against `labels` at `threshold`.
    pub fn new(scores: &[f64], labels: &[u8], threshold: f64) -> Self {
        let m = confusion(scores, labels, threshold);
        let rows: Vec<Vec<usize>> = m.iter().map(|r| r.to_vec()).collect();
        let classes = class_metrics(&rows, &LABELS);
        BinaryReport {
            windows: labels.len(),
            threshold,
            accuracy: ratio(m[0][0] + m[1][1], labels.len()),
            confusion: m,
            classes,
            roc_auc: roc_auc(scores, labels),
            at_specificity_95: point_at_specificity(scores, labels, 0.95),
        }
    }

    /// A printable table.
    pub fn table(&self, title: &str) -> String {
        let mut s = format!(
            "{title}\n  windows {}  threshold {:.3}  accuracy {:.2} %  ROC AUC {:.4}\n",
            self.windows,
            self.threshold,
            100.0 * self.accuracy,
            self.roc_auc
        );
        s.push_str(&format!(
            "  {:<10} {:>8} {:>10} {:>8} {:>7}\n",
            "class", "support", "precision", "recall", "F1"
        ));
        for c in &self.classes {
            s.push_str(&format!(
                "  {:<10} {:>8} {:>9.2}% {:>7.2}% {:>7.3}\n",
                c.label,
                c.support,
                100.0 * c.precision,
                100.0 * c.recall,
                c.f1
            ));
        }
        s.push_str(&format!(
            "  confusion (rows true, cols predicted)  Normal: {:?}  Abnormal: {:?}\n",
            self.confusion[0], self.confusion[1]
        ));
        let p = &self.at_specificity_95;
        s.push_str(&format!(
            "  ROC point at specificity >= 95 %: Abnormal recall {:.2} %, specificity {:.2} % (threshold {:.3})\n",
            100.0 * p.abnormal_recall, 100.0 * p.normal_specificity, p.threshold
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_reversed_scores() {
        let labels = [0, 0, 1, 1];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), 0.0);
        assert_eq!(roc_auc(&[0.5, 0.5, 0.5, 0.5], &labels), 0.5);
        // sklearn.metrics.roc_auc_score([0,0,1,1,0,1], [.1,.4,.35,.8,.2,.5]) = 0.8889
        let auc = roc_auc(&[0.1, 0.4, 0.35, 0.8, 0.2, 0.5], &[0, 0, 1, 1, 0, 1]);
        assert!((auc - 8.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn confusion_and_class_metrics() {
        let r = BinaryReport::new(&[0.1, 0.6, 0.7, 0.2, 0.9], &[0, 0, 1, 1, 1], 0.5);
        assert_eq!(r.confusion, [[1, 1], [1, 2]]);
        assert!((r.accuracy - 0.6).abs() < 1e-12);
        assert!((r.classes[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.classes[1].recall - 2.0 / 3.0).abs() < 1e-12);
        let p = point_at_specificity(&[0.1, 0.6, 0.7, 0.2, 0.9], &[0, 0, 1, 1, 1], 0.95);
        let multi = MultiReport::new(&[0, 1, 1, 0, 1], &[0, 0, 1, 1, 1], &["Normal", "Abnormal"]);
        assert_eq!(multi.classes, r.classes, "one per-class computation");
        assert_eq!(p.threshold, 0.7);
        assert!((p.abnormal_recall - 2.0 / 3.0).abs() < 1e-12);
    }
}
