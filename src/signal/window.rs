//! Cutting a filtered signal into model inputs: fixed windows for the segment
//! model and beat-centred windows for the beat model, each z-scored.
//!
//! Windows are `length` samples every `hop`; when the last regular window stops
//! short of the end, one more window is aligned to the end so the tail is
//! covered. A record shorter than one window yields no windows: the caller
//! decides whether that is an error.

use serde::{Deserialize, Serialize};

use crate::signal::error::{Result, SignalError};

/// Window length and hop, in samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    pub length: usize,
    pub hop: usize,
}

impl WindowSpec {
    /// 10 s windows with 50 % overlap at 360 Hz.
    pub const MITDB_10S: WindowSpec = WindowSpec {
        length: 3600,
        hop: 1800,
    };

    /// Checks that the spec describes real windows.
    pub fn validate(&self) -> Result<()> {
        if self.length == 0 || self.hop == 0 {
            return Err(SignalError::parameter(
                "window",
                "length and hop must be positive",
            ));
        }
        Ok(())
    }

    /// Start sample of every window over a signal of `n` samples, tail included.
    pub fn starts(&self, n: usize) -> Vec<usize> {
        if n < self.length || self.length == 0 || self.hop == 0 {
            return Vec::new();
        }
        let last = n - self.length;
        let mut starts: Vec<usize> = (0..=last).step_by(self.hop).collect();
        if starts.last() != Some(&last) {
            starts.push(last);
        }
        starts
    }
}

/// Standard deviation below which a window is treated as flat (no division blow-up).
pub const FLAT_STD: f64 = 1e-6;

/// Z-scores `x` into `out` (f32, the models' input type): zero mean, unit variance.
/// A flat window becomes all zeros.
pub fn zscore_into(x: &[f64], out: &mut Vec<f32>) {
    let n = x.len().max(1) as f64;
    let mean = sum_by(x, |v| v) / n;
    let var = sum_by(x, |v| (v - mean) * (v - mean)) / n;
    let std = var.sqrt();
    let inv = if std > FLAT_STD { 1.0 / std } else { 0.0 };
    out.extend(x.iter().map(|v| ((v - mean) * inv) as f32));
}

/// The sum of `f(v)` over `x` in eight running partial sums: the additions of
/// one partial sum wait on each other, the eight do not (and fill SIMD
/// registers), where one running sum waits on every addition.
fn sum_by(x: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut partial = [0.0; 8];
    let chunks = x.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (p, &v) in partial.iter_mut().zip(c) {
            *p += f(v);
        }
    }
    partial.iter().sum::<f64>() + rest
}

/// Windows of `length` samples of `x` at `starts`, each z-scored, flattened
/// `[starts.len() * length]`.
pub fn windows(x: &[f64], length: usize, starts: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(starts.len() * length);
    for &s in starts {
        zscore_into(&x[s..s + length], &mut out);
    }
    out
}

/// Samples `p - before .. p + after` of `x` into `buf` (cleared first); parts
/// outside the signal repeat the edge sample (zeros for an empty signal).
fn beat_window_into(x: &[f64], p: usize, before: usize, after: usize, buf: &mut Vec<f64>) {
    buf.clear();
    buf.extend((0..before + after).map(|k| {
        let i = (p + k)
            .saturating_sub(before)
            .min(x.len().saturating_sub(1));
        x.get(i).copied().unwrap_or(0.0)
    }));
}

/// A window around each peak: `before` samples before to `after` samples after
/// (peak included, `before + after` samples). Parts outside the signal repeat
/// the edge sample. Each window is z-scored; flattened `[peaks.len() * (before + after)]`.
pub fn beat_windows(x: &[f64], peaks: &[usize], before: usize, after: usize) -> Vec<f32> {
    let len = before + after;
    let mut out = Vec::with_capacity(peaks.len() * len);
    let mut buf = Vec::with_capacity(len);
    for &p in peaks {
        beat_window_into(x, p, before, after, &mut buf);
        zscore_into(&buf, &mut out);
    }
    out
}

/// Most beats the record's template is taken from (evenly spaced).
pub const TEMPLATE_BEATS: usize = 512;

/// Beat windows paired with the record's typical beat, for a classifier that
/// must judge a beat against its own patient's normal:
/// `[peaks.len() * 2 * (before + after)]`, per beat its window then the template.
///
/// The template is the sample-wise median of up to [`TEMPLATE_BEATS`] windows
/// spread over the record, so ectopic beats (a minority) do not shape it. Both
/// are centred (mean removed) and divided by the template's standard deviation:
/// a beat twice as tall as the patient's usual one stays twice as tall.
pub fn beat_windows_with_template(
    x: &[f64],
    peaks: &[usize],
    before: usize,
    after: usize,
) -> Vec<f32> {
    let len = before + after;
    let mut buf = Vec::with_capacity(len);
    let step = peaks.len().div_ceil(TEMPLATE_BEATS).max(1);
    let sampled: Vec<Vec<f64>> = peaks
        .iter()
        .step_by(step)
        .map(|&p| {
            beat_window_into(x, p, before, after, &mut buf);
            buf.clone()
        })
        .collect();
    let mut column = Vec::with_capacity(sampled.len());
    let template: Vec<f64> = (0..len)
        .map(|k| {
            column.clear();
            column.extend(sampled.iter().map(|w| w[k]));
            column.sort_by(f64::total_cmp);
            match column.len() {
                0 => 0.0,
                n if n % 2 == 1 => column[n / 2],
                n => (column[n / 2 - 1] + column[n / 2]) / 2.0,
            }
        })
        .collect();
    let mean = template.iter().sum::<f64>() / len.max(1) as f64;
    let std = (template.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / len.max(1) as f64).sqrt();
    let inv = if std > FLAT_STD { 1.0 / std } else { 0.0 };
    let centred = |w: &[f64], out: &mut Vec<f32>| {
        let m = w.iter().sum::<f64>() / len.max(1) as f64;
        out.extend(w.iter().map(|v| ((v - m) * inv) as f32));
    };
    let mut template_row = Vec::with_capacity(len);
    centred(&template, &mut template_row);
    let mut out = Vec::with_capacity(peaks.len() * 2 * len);
    for &p in peaks {
        beat_window_into(x, p, before, after, &mut buf);
        centred(&buf, &mut out);
        out.extend_from_slice(&template_row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_tail() {
        let spec = WindowSpec::MITDB_10S;
        assert_eq!(spec.starts(650000).len(), 361);
        assert_eq!(*spec.starts(650000).last().unwrap(), 650000 - 3600);
        assert_eq!(spec.starts(3600), vec![0]);
        assert_eq!(spec.starts(5400), vec![0, 1800]);
        assert_eq!(spec.starts(5401), vec![0, 1800, 1801]);
        assert!(spec.starts(3599).is_empty());
        assert!(WindowSpec { length: 10, hop: 0 }.validate().is_err());
    }

    #[test]
    fn zscore_and_flat_windows() {
        let x: Vec<f64> = (0..3600).map(|i| (i % 7) as f64 * 0.3 + 5.0).collect();
        let w = windows(&x, WindowSpec::MITDB_10S.length, &[0]);
        let mean: f64 = w.iter().map(|&v| v as f64).sum::<f64>() / 3600.0;
        let var: f64 = w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 3600.0;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4);
        let flat = windows(&[2.0; 3600], WindowSpec::MITDB_10S.length, &[0]);
        assert!(flat.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn beat_windows_pad_at_the_edges() {
        let x: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let w = beat_windows(&x, &[0, 50, 99], 10, 20);
        assert_eq!(w.len(), 90);
        assert!(w.iter().all(|v| v.is_finite()));
        assert!(beat_windows(&[], &[3], 2, 2).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn the_template_is_the_typical_beat_and_keeps_relative_size() {
        // Beats every 100 samples: a spike of 1 mV, every fifth twice as tall.
        let mut x = vec![0.0; 2000];
        let peaks: Vec<usize> = (1..19).map(|i| i * 100).collect();
        for (n, &p) in peaks.iter().enumerate() {
            x[p] = if n % 5 == 0 { 2.0 } else { 1.0 };
        }
        let w = beat_windows_with_template(&x, &peaks, 10, 20);
        assert_eq!(w.len(), peaks.len() * 2 * 30);
        let row = |i: usize| &w[i * 60..(i + 1) * 60];
        // The template (second half) is the 1 mV beat for every beat.
        assert_eq!(row(0)[30..], row(1)[30..]);
        let peak = |r: &[f32]| r.iter().copied().fold(f32::MIN, f32::max);
        let (normal, tall) = (peak(&row(1)[..30]), peak(&row(0)[..30]));
        assert!((peak(&row(1)[30..]) - normal).abs() < 1e-6);
        assert!((tall / normal - 2.0).abs() < 0.1, "{tall} vs {normal}");
        assert!(beat_windows_with_template(&[], &[3], 2, 2)
            .iter()
            .all(|v| v.is_finite()));
    }
}
