//! RR-interval features of each beat, for beat classification.
//!
//! Inter-patient classification of supraventricular beats (AAMI S) rests on
//! timing more than on shape: an atrial premature beat looks normal but comes
//! early. Each beat gets its previous and next RR interval, the local average
//! RR around it, and the record's typical RR, plus the first three divided by
//! the record's, so that a fast and a slow heart compare on one scale.
//! Seconds throughout; the same function serves the trainer and the server.

/// Features of one beat, in [`RrFeatures::NAMES`] order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RrFeatures {
    /// Seconds since the previous beat (the next interval for the first beat).
    pub pre: f64,
    /// Seconds to the next beat (the previous interval for the last beat).
    pub post: f64,
    /// Mean RR of the intervals within `local_beats` beats either side.
    pub local: f64,
    /// The record's median RR (robust to missed beats and pauses).
    pub record: f64,
}

impl RrFeatures {
    /// Feature names in [`RrFeatures::to_array`] order.
    pub const NAMES: [&'static str; 9] = [
        "rr_pre_s",
        "rr_post_s",
        "rr_local_s",
        "rr_record_s",
        "rr_pre_rel",
        "rr_post_rel",
        "rr_local_rel",
        "rr_pre_local",
        "rr_post_local",
    ];

    /// The four intervals; pre, post and local relative to the record's; pre
    /// and post relative to the local average (prematurity against the current
    /// rhythm, which a changing heart rate does not blur).
    pub fn to_array(&self) -> [f32; 9] {
        let r = if self.record > 0.0 { self.record } else { 1.0 };
        let l = if self.local > 0.0 { self.local } else { 1.0 };
        [
            self.pre as f32,
            self.post as f32,
            self.local as f32,
            self.record as f32,
            (self.pre / r) as f32,
            (self.post / r) as f32,
            (self.local / r) as f32,
            (self.pre / l) as f32,
            (self.post / l) as f32,
        ]
    }
}

/// RR features of every beat in `peaks` (sample indices at `fs` Hz, ascending).
/// Fewer than two beats give no intervals: their features are all zero.
pub fn rr_features(peaks: &[usize], fs: f64, local_beats: usize) -> Vec<RrFeatures> {
    if peaks.len() < 2 || fs <= 0.0 || !fs.is_finite() {
        return vec![
            RrFeatures {
                pre: 0.0,
                post: 0.0,
                local: 0.0,
                record: 0.0,
            };
            peaks.len()
        ];
    }
    let rr: Vec<f64> = peaks
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]) as f64 / fs)
        .collect();
    let record = median(&rr);
    // Prefix sums for the local means.
    let mut prefix = Vec::with_capacity(rr.len() + 1);
    prefix.push(0.0);
    for &v in &rr {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
    }
    let k = local_beats.max(1);
    (0..peaks.len())
        .map(|i| {
            // Interval j joins beats j and j + 1: beat i has pre = rr[i - 1], post = rr[i].
            let pre = if i > 0 { rr[i - 1] } else { rr[0] };
            let post = if i < rr.len() {
                rr[i]
            } else {
                rr[rr.len() - 1]
            };
            let from = i.saturating_sub(k);
            let to = (i + k).min(rr.len());
            let local = (prefix[to] - prefix[from]) / (to - from).max(1) as f64;
            RrFeatures {
                pre,
                post,
                local,
                record,
            }
        })
        .collect()
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Names of the per-window rhythm features of [`window_rr_features`], in order.
pub const WINDOW_RR_NAMES: [&str; 6] = [
    "rate_rel",
    "premature_fraction",
    "pre_local_min",
    "rr_cv",
    "pre_post_change",
    "post_local_max",
];

/// A beat is premature when its previous RR is below this fraction of the local mean.
pub const PREMATURE_RATIO: f64 = 0.85;

/// Rhythm features of each window `[from_s, to_s)` (seconds) from the beats at
/// `peaks` (samples at `fs` Hz, ascending), for a classifier of whole windows:
///
/// - `rate_rel`: the record's median RR over the window's mean previous RR (its
///   heart rate against the record's usual rate);
/// - `premature_fraction`: beats whose previous RR is under [`PREMATURE_RATIO`]
///   of the local mean (what an atrial or ventricular premature beat does);
/// - `pre_local_min`: the smallest previous RR over the local mean;
/// - `rr_cv`: spread of the previous RRs over their mean (irregularity);
/// - `pre_post_change`: mean |post - pre| over the local mean (a premature beat
///   and its compensatory pause);
/// - `post_local_max`: the longest following RR over the local mean (pauses).
///
/// Every ratio is against the patient's own rhythm, so that the features carry
/// from one patient to another. The per-beat values are those of
/// [`rr_features`] (shared with the beat model). A window without beats is all zeros.
pub fn window_rr_features(
    peaks: &[usize],
    fs: f64,
    windows: &[(f64, f64)],
    local_beats: usize,
) -> Vec<[f32; 6]> {
    let beats = rr_features(peaks, fs, local_beats);
    windows
        .iter()
        .map(|&(from_s, to_s)| {
            let first = peaks.partition_point(|&p| (p as f64) < from_s * fs);
            let last = peaks.partition_point(|&p| (p as f64) < to_s * fs);
            let inside = &beats[first..last.max(first)];
            if inside.is_empty() || inside[0].record <= 0.0 {
                return [0.0; 6];
            }
            let n = inside.len() as f64;
            let local = |b: &RrFeatures| if b.local > 0.0 { b.local } else { 1.0 };
            let mean_pre = inside.iter().map(|b| b.pre).sum::<f64>() / n;
            let var_pre = inside
                .iter()
                .map(|b| (b.pre - mean_pre).powi(2))
                .sum::<f64>()
                / n;
            let pre_local: Vec<f64> = inside.iter().map(|b| b.pre / local(b)).collect();
            let post_local: Vec<f64> = inside.iter().map(|b| b.post / local(b)).collect();
            let premature = pre_local.iter().filter(|&&r| r < PREMATURE_RATIO).count() as f64;
            let change = pre_local
                .iter()
                .zip(&post_local)
                .map(|(a, b)| (b - a).abs())
                .sum::<f64>()
                / n;
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
            [
                ratio(inside[0].record, mean_pre) as f32,
                (premature / n) as f32,
                pre_local.iter().copied().fold(f64::INFINITY, f64::min) as f32,
                ratio(var_pre.sqrt(), mean_pre) as f32,
                change as f32,
                post_local.iter().copied().fold(0.0, f64::max) as f32,
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_features_see_premature_beats_and_pauses() {
        // A regular rhythm (1 s), then a window with premature beats at 0.6 s
        // followed by 1.4 s pauses (bigeminy).
        let mut peaks: Vec<usize> = (0..30).map(|i| i * 360).collect();
        let mut t = 30 * 360;
        for _ in 0..10 {
            peaks.push(t + 216);
            peaks.push(t + 720);
            t += 720;
        }
        let f = window_rr_features(
            &peaks,
            360.0,
            &[(5.0, 15.0), (32.0, 42.0), (100.0, 110.0)],
            10,
        );
        assert_eq!(f.len(), 3);
        let regular = f[0];
        assert!((regular[0] - 1.0).abs() < 1e-6, "{regular:?}");
        assert_eq!(regular[1], 0.0);
        assert!((regular[2] - 1.0).abs() < 1e-6);
        assert!(regular[3].abs() < 1e-6);
        let bigeminy = f[1];
        assert!(bigeminy[1] > 0.4 && bigeminy[1] < 0.6, "{bigeminy:?}");
        assert!(bigeminy[2] < 0.85);
        assert!(bigeminy[3] > 0.3);
        assert!(bigeminy[4] > 0.5);
        assert!(bigeminy[5] > 1.2);
        assert_eq!(f[2], [0.0; 6], "no beats after the record ends");
    }

    #[test]
    fn a_regular_rhythm_is_one_everywhere() {
        let peaks: Vec<usize> = (0..20).map(|i| 100 + i * 300).collect();
        for f in rr_features(&peaks, 360.0, 5) {
            let a = f.to_array();
            assert!((a[0] - 300.0 / 360.0).abs() < 1e-6);
            for rel in &a[4..] {
                assert!((rel - 1.0).abs() < 1e-6, "{a:?}");
            }
        }
    }

    #[test]
    fn a_premature_beat_comes_early_and_is_followed_by_a_pause() {
        // Beats every 1 s; beat 10 comes 0.4 s early, with a compensatory pause.
        let mut peaks: Vec<usize> = (0..20).map(|i| i * 360).collect();
        peaks[10] -= 144;
        let f = rr_features(&peaks, 360.0, 5);
        let premature = f[10].to_array();
        assert!((premature[4] - 0.6).abs() < 1e-6, "{premature:?}");
        assert!((premature[5] - 1.4).abs() < 1e-6, "{premature:?}");
        assert!((f[9].to_array()[4] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn edges_and_degenerate_input() {
        let f = rr_features(&[10, 370, 730], 360.0, 2);
        assert_eq!(f[0].pre, f[0].post);
        assert_eq!(f[2].post, f[2].pre);
        assert!(rr_features(&[], 360.0, 5).is_empty());
        let one = rr_features(&[5], 360.0, 5);
        assert_eq!(one[0].to_array(), [0.0; 9]);
        assert_eq!(rr_features(&[1, 2], 0.0, 5).len(), 2);
    }
}
