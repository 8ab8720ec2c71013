//! Beat-by-beat detection scoring in the manner of WFDB's `bxb` (ANSI/AAMI EC57).
//!
//! A detection matches a reference beat when they are at most the match window
//! apart (150 ms by default); each beat and each detection matches at most once,
//! closest pairs first in time order. Unmatched reference beats are false
//! negatives, unmatched detections false positives. As `bxb` does, periods of
//! ventricular flutter or fibrillation (between `[` and `]` annotations) are left
//! out of the comparison, and scoring may start later than the record (bxb's
//! default is 5 minutes; ours is 0, the whole record).

use serde::Serialize;

use crate::signal::wfdb::Annotation;
use crate::signal::AamiClass;

/// Counts of one comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DetectionCounts {
    pub true_positives: usize,
    pub false_negatives: usize,
    pub false_positives: usize,
}

impl DetectionCounts {
    /// Sensitivity, TP / (TP + FN); 1 when there was nothing to find.
    pub fn sensitivity(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// Positive predictivity, TP / (TP + FP); 1 when nothing was detected.
    pub fn positive_predictivity(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    /// Adds another comparison's counts (pooled, "gross" statistics).
    pub fn add(&mut self, other: &DetectionCounts) {
        self.true_positives += other.true_positives;
        self.false_negatives += other.false_negatives;
        self.false_positives += other.false_positives;
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// One matched pair: indices into the reference and detection lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub reference: usize,
    pub detection: usize,
}

/// Result of [`compare`]: counts plus who matched whom.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub counts: DetectionCounts,
    pub matches: Vec<Match>,
}

/// Sample intervals `[start, end)` left out of scoring: ventricular flutter /
/// fibrillation episodes, from `[` to `]` (or to the record's end).
pub fn excluded_intervals(annotations: &[Annotation]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut open = None;
    for a in annotations {
        match (a.symbol, open) {
            ("[", None) => open = Some(a.sample),
            ("]", Some(start)) => {
                out.push((start, a.sample + 1));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        out.push((start, u64::MAX));
    }
    out
}

/// Compares reference beat positions with detections (both sorted, in samples).
/// Positions before `start` or inside `excluded` are not scored.
pub fn compare(
    reference: &[u64],
    detections: &[u64],
    window: u64,
    start: u64,
    excluded: &[(u64, u64)],
) -> Comparison {
    let scored = |t: u64| t >= start && !excluded.iter().any(|&(a, b)| t >= a && t < b);
    let refs: Vec<usize> = (0..reference.len())
        .filter(|&i| scored(reference[i]))
        .collect();
    let dets: Vec<usize> = (0..detections.len())
        .filter(|&j| scored(detections[j]))
        .collect();
    let mut out = Comparison::default();
    let (mut i, mut j) = (0, 0);
    while i < refs.len() && j < dets.len() {
        let (r, d) = (reference[refs[i]], detections[dets[j]]);
        if d + window < r {
            out.counts.false_positives += 1;
            j += 1;
        } else if r + window < d {
            out.counts.false_negatives += 1;
            i += 1;
        } else {
            // In the window: prefer the next detection if it is closer to this beat
            // and this detection is then left with no beat of its own.
            let next_closer = dets
                .get(j + 1)
                .is_some_and(|&n| detections[n].abs_diff(r) < d.abs_diff(r));
            if next_closer {
                out.counts.false_positives += 1;
                j += 1;
                continue;
            }
            out.matches.push(Match {
                reference: refs[i],
                detection: dets[j],
            });
            out.counts.true_positives += 1;
            i += 1;
            j += 1;
        }
    }
    out.counts.false_negatives += refs.len() - i;
    out.counts.false_positives += dets.len() - j;
    out
}

/// Labels detected beats by the reference: each detection gets the AAMI class
/// of the reference beat it matches within `window_s` seconds (bxb's rule), or
/// `None` when it matches none (a false positive). Ventricular flutter episodes
/// are left out as in [`compare`]. Detections and annotations are in samples at
/// the same rate `fs`. The trainer labels the beats it trains on this way, so
/// training sees the beats serving finds; the comparison gives Se and +P.
pub fn label_detections(
    detections: &[usize],
    annotations: &[Annotation],
    fs: f64,
    window_s: f64,
) -> (Vec<Option<AamiClass>>, Comparison) {
    let beats: Vec<&Annotation> = annotations.iter().filter(|a| a.is_beat()).collect();
    let reference: Vec<u64> = beats.iter().map(|a| a.sample).collect();
    let found: Vec<u64> = detections.iter().map(|&d| d as u64).collect();
    let window = (window_s * fs).round().max(0.0) as u64;
    let comparison = compare(
        &reference,
        &found,
        window,
        0,
        &excluded_intervals(annotations),
    );
    let mut labels = vec![None; detections.len()];
    for m in &comparison.matches {
        labels[m.detection] = beats[m.reference].aami();
    }
    (labels, comparison)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_matches_misses_and_extras() {
        let r = [100, 400, 700, 1000];
        let d = [110, 300, 690, 1200];
        let c = compare(&r, &d, 54, 0, &[]);
        assert_eq!(
            c.counts,
            DetectionCounts {
                true_positives: 2,
                false_negatives: 2,
                false_positives: 2
            }
        );
        assert_eq!(
            c.matches[1],
            Match {
                reference: 2,
                detection: 2
            }
        );
        assert!((c.counts.sensitivity() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn window_edge_is_inclusive_and_closest_wins() {
        let c = compare(&[100], &[154], 54, 0, &[]);
        assert_eq!(c.counts.true_positives, 1);
        let c = compare(&[100], &[155], 54, 0, &[]);
        assert_eq!(c.counts.true_positives, 0);
        let c = compare(&[100], &[60, 98], 54, 0, &[]);
        assert_eq!(
            c.matches,
            vec![Match {
                reference: 0,
                detection: 1
            }]
        );
        assert_eq!(c.counts.false_positives, 1);
    }

    #[test]
    fn start_and_excluded_intervals_are_not_scored() {
        let c = compare(&[10, 500, 900], &[600, 700, 905], 54, 100, &[(550, 800)]);
        assert_eq!(
            c.counts,
            DetectionCounts {
                true_positives: 1,
                false_negatives: 1,
                false_positives: 0
            }
        );
        assert_eq!(compare(&[], &[], 54, 0, &[]).counts.sensitivity(), 1.0);
    }
}
