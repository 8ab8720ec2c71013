//! The "heartbeat" beat format of Kachuee, Fazeli & Sarrafzadeh 2018 ("ECG
//! Heartbeat Classification: A Deep Transferable Representation", arXiv
//! 1805.00794, section III.A), the format of the Kaggle `mitbih_train.csv`
//! that many notebooks read: one beat per row, 187 samples at 125 Hz in
//! [0, 1], zero-padded.
//!
//! The steps, as the paper lists them:
//! 1. the lead at 125 Hz ([`super::resample`]), cut into 10 s windows (1,250
//!    samples, side by side; a last, shorter window is left out);
//! 2. each window scaled to [0, 1] (its minimum to 0, its maximum to 1);
//! 3. the R peaks in the window (the paper finds them as local maxima above 0.9
//!    of the scaled window; we take them as given, e.g. a database's reference
//!    beats, so that each row keeps its label and its place in the record);
//! 4. `T`, the median of the window's R-R intervals (a window needs two beats);
//! 5. from each R peak, `1.2 T` samples (cut at the window's end);
//! 6. each part zero-padded (or cut) to 187 samples.

use crate::signal::error::Result;
use crate::signal::resample::{map_index, resample};

/// The format's sampling rate.
pub const RATE_HZ: f64 = 125.0;
/// The windows' length (10 s at 125 Hz).
pub const WINDOW: usize = 1250;
/// Samples in a row.
pub const LENGTH: usize = 187;
/// A row spans this many median R-R intervals from its R peak.
pub const SPAN_RR: f64 = 1.2;

/// One row: which of the given beats it is, and its [`LENGTH`] samples.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatRow {
    /// Index into the `beats` given to [`heartbeat_rows`].
    pub beat: usize,
    pub samples: Vec<f32>,
}

/// The rows of `lead` (at `rate_hz`) for the R peaks `beats` (sample indices
/// at `rate_hz`, ascending). A beat in a window with fewer than two beats, in
/// a flat window, or in the last, short window has no row.
pub fn heartbeat_rows(lead: &[f64], rate_hz: f64, beats: &[usize]) -> Result<Vec<HeartbeatRow>> {
    let x = resample(lead, rate_hz, RATE_HZ)?;
    let at: Vec<usize> = beats
        .iter()
        .map(|&b| map_index(b, rate_hz, RATE_HZ))
        .collect();
    let mut rows = Vec::new();
    let mut first = 0; // the first beat not before the window
    for start in (0..x.len() / WINDOW).map(|w| w * WINDOW) {
        let end = start + WINDOW;
        while first < at.len() && at[first] < start {
            first += 1;
        }
        let mut last = first;
        while last < at.len() && at[last] < end {
            last += 1;
        }
        let inside = first..last;
        if inside.len() < 2 {
            continue;
        }
        let window = &x[start..end];
        let (lo, hi) = window
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if hi - lo <= 0.0 || !(hi - lo).is_finite() {
            continue;
        }
        let mut rr: Vec<usize> = at[inside.clone()].windows(2).map(|w| w[1] - w[0]).collect();
        rr.sort_unstable();
        let t = if rr.len() % 2 == 1 {
            rr[rr.len() / 2] as f64
        } else {
            (rr[rr.len() / 2 - 1] + rr[rr.len() / 2]) as f64 / 2.0
        };
        let span = ((SPAN_RR * t).round() as usize).min(LENGTH);
        for beat in inside {
            let from = at[beat];
            let to = (from + span).min(end);
            let mut samples = vec![0f32; LENGTH];
            for (o, &v) in samples.iter_mut().zip(&x[from..to]) {
                *o = ((v - lo) / (hi - lo)) as f32;
            }
            rows.push(HeartbeatRow { beat, samples });
        }
        first = last;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 125 Hz train of spikes (1.1) every `rr` samples on a baseline of
    /// 0.1, with a 0 at each window's start (the windows scale to [0, 1.1]).
    fn spikes(n: usize, rr: usize) -> (Vec<f64>, Vec<usize>) {
        let beats: Vec<usize> = (rr / 2..n).step_by(rr).collect();
        let mut x = vec![0.1; n];
        for &b in &beats {
            x[b] = 1.1;
        }
        for w in (0..n).step_by(WINDOW) {
            x[w] = 0.0;
        }
        (x, beats)
    }

    #[test]
    fn rows_start_at_the_r_peak_span_1_2_rr_and_are_zero_padded() {
        let (x, beats) = spikes(WINDOW * 3 + 100, 96);
        let rows = heartbeat_rows(&x, RATE_HZ, &beats).unwrap();
        // Three whole windows; the beats of the short tail have no row.
        let in_windows = beats.iter().filter(|&&b| b < 3 * WINDOW).count();
        assert_eq!(rows.len(), in_windows);
        for r in &rows {
            assert_eq!(r.samples.len(), LENGTH);
            assert!(r.samples.iter().all(|v| (0.0..=1.0).contains(v)));
            // The R peak is the window's maximum: 1 at the row's start.
            assert!((r.samples[0] - 1.0).abs() < 1e-6, "{:?}", &r.samples[..3]);
        }
        // round(1.2 x 96) = 115 samples of signal then zeros (not at a window's end).
        let r = &rows[1];
        assert!(r.samples[114] > 0.0 && r.samples[115..].iter().all(|&v| v == 0.0));
        // The row indices name the given beats, in order.
        let order: Vec<usize> = rows.iter().map(|r| r.beat).collect();
        assert_eq!(order, (0..in_windows).collect::<Vec<_>>());
    }

    #[test]
    fn other_rates_are_resampled_and_lonely_or_flat_windows_give_no_row() {
        // 360 Hz: the same spikes land at 125 Hz positions.
        let (x125, beats125) = spikes(WINDOW * 2, 125);
        let x360 = resample(&x125, RATE_HZ, 360.0).unwrap();
        let beats360: Vec<usize> = beats125
            .iter()
            .map(|&b| map_index(b, RATE_HZ, 360.0))
            .collect();
        let rows = heartbeat_rows(&x360, 360.0, &beats360).unwrap();
        assert_eq!(rows.len(), beats125.len());
        // One beat in a window: no T, no row. A flat window: no row.
        assert!(heartbeat_rows(&x125, RATE_HZ, &[300]).unwrap().is_empty());
        assert!(
            heartbeat_rows(&vec![0.5; WINDOW], RATE_HZ, &[100, 300, 500])
                .unwrap()
                .is_empty()
        );
        // A long R-R: the row is cut at 187 samples.
        let (x, beats) = spikes(WINDOW, 400);
        let rows = heartbeat_rows(&x, RATE_HZ, &beats).unwrap();
        assert!(rows[0].samples[LENGTH - 1] > 0.0);
    }
}
