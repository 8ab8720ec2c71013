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

#[cfg(test)]
mod tests {
    use super::*;

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
