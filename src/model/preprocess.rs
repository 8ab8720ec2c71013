//! The preprocessing a model declares, and the one function that applies it.
//!
//! Resample to the model rate, band-pass with zero phase, cut windows and
//! z-score each: the trainer builds its data set with [`Preprocessing::prepare`]
//! and the server prepares every upload with it, from the parameters in the
//! model card.

use serde::{Deserialize, Serialize};

use crate::signal::filter::band_pass;
use crate::signal::resample::{map_index, resample};
use crate::signal::rr::{rr_features, window_rr_features, RrFeatures, WINDOW_RR_NAMES};
use crate::signal::segment::{beat_windows, beat_windows_with_template, windows, WindowSpec};
use crate::signal::Result;

/// The beat model's input around each R peak (in beat model cards only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeatWindow {
    /// Samples (model rate) before the R peak.
    pub before_samples: usize,
    /// Samples from the R peak on (the peak included).
    pub after_samples: usize,
    /// Beats either side averaged into the local RR.
    pub rr_local_beats: usize,
    /// The `features` input, in order ([`RrFeatures::NAMES`]).
    pub features: Vec<String>,
    /// A second channel with the record's typical beat (median template), both
    /// scaled by the template's spread ([`beat_windows_with_template`]); without
    /// it, one z-scored channel ([`beat_windows`]).
    #[serde(default)]
    pub template: bool,
}

impl BeatWindow {
    /// Input channels of the beat window.
    pub fn channels(&self) -> usize {
        if self.template {
            2
        } else {
            1
        }
    }
}

impl BeatWindow {
    /// 0.25 s before to 0.45 s after the peak at 360 Hz, RR averaged over 10 beats each side.
    pub fn mitdb_default() -> Self {
        BeatWindow {
            before_samples: 90,
            after_samples: 162,
            rr_local_beats: 10,
            features: RrFeatures::NAMES.iter().map(|s| s.to_string()).collect(),
            template: true,
        }
    }
}

/// Rhythm features of each segment window (segment model cards that have them):
/// the model's second input `features`, one row per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowFeatures {
    /// The `features` input, in order ([`WINDOW_RR_NAMES`]).
    pub names: Vec<String>,
    /// Beats either side averaged into the local RR.
    pub rr_local_beats: usize,
    /// Beats are those of the server's R-peak detector
    /// ([`crate::signal::qrs::detect_r_peaks`]) on the unfiltered lead at its own rate.
    pub beats_from: String,
}

impl WindowFeatures {
    /// The six rhythm features of [`window_rr_features`], RR averaged over 10 beats each side.
    pub fn rr() -> Self {
        WindowFeatures {
            names: WINDOW_RR_NAMES.iter().map(|s| s.to_string()).collect(),
            rr_local_beats: 10,
            beats_from: "detect_r_peaks".into(),
        }
    }
}

/// The beat model's inputs for a set of beats.
#[derive(Debug, Clone, Default)]
pub struct BeatInputs {
    /// Windows, flattened `[beats * channels * (before + after)]`.
    pub windows: Vec<f32>,
    /// RR features, flattened `[beats * features]`.
    pub features: Vec<f32>,
}

/// Preprocessing parameters, stored in the model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Rate the model runs at; inputs are resampled to it.
    pub sample_rate_hz: f64,
    /// The lead the model was trained on (WFDB description).
    pub lead: String,
    pub window_samples: usize,
    pub hop_samples: usize,
    /// Band-pass edges in Hz (4th-order Butterworth high-pass and low-pass, zero phase).
    pub band_hz: [f64; 2],
    /// Per-window normalisation; `zscore` is the only one.
    pub normalisation: String,
    /// Beat windows and RR features (beat models; then `window_samples` is
    /// `before + after` and `hop_samples` unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beat: Option<BeatWindow>,
    /// Rhythm features per window (segment models with a second input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_features: Option<WindowFeatures>,
}

impl Preprocessing {
    /// The models' preprocessing: MLII at 360 Hz, 0.5-50 Hz, 10 s windows every 5 s.
    pub fn mitdb_default() -> Self {
        Preprocessing {
            sample_rate_hz: 360.0,
            lead: "MLII".to_string(),
            window_samples: 3600,
            hop_samples: 1800,
            band_hz: [0.5, 50.0],
            normalisation: "zscore".to_string(),
            beat: None,
            window_features: None,
        }
    }

    /// The segment model's preprocessing with rhythm features: [`Self::mitdb_default`]
    /// plus [`WindowFeatures::rr`] for each window.
    pub fn mitdb_segment() -> Self {
        Preprocessing {
            window_features: Some(WindowFeatures::rr()),
            ..Preprocessing::mitdb_default()
        }
    }

    /// The beat model's preprocessing: the same rate, lead and band, beat windows.
    pub fn mitdb_beat() -> Self {
        let beat = BeatWindow::mitdb_default();
        Preprocessing {
            window_samples: beat.before_samples + beat.after_samples,
            hop_samples: beat.before_samples + beat.after_samples,
            beat: Some(beat),
            ..Preprocessing::mitdb_default()
        }
    }

    /// Width of the model's second input `features` (0: none).
    pub fn feature_width(&self) -> usize {
        match (&self.beat, &self.window_features) {
            (Some(b), _) => b.features.len(),
            (None, Some(w)) => w.names.len(),
            (None, None) => 0,
        }
    }

    /// The segment model's `features` for the windows at `starts` (model
    /// rate) given the R peaks `peaks` (samples at the record's rate `fs`):
    /// flattened `[starts.len() * feature_width]`, empty for a card without
    /// [`WindowFeatures`].
    pub fn window_features(&self, peaks: &[usize], fs: f64, starts: &[usize]) -> Vec<f32> {
        let Some(w) = &self.window_features else {
            return Vec::new();
        };
        let rate = self.sample_rate_hz;
        let spans: Vec<(f64, f64)> = starts
            .iter()
            .map(|&s| (s as f64 / rate, (s + self.window_samples) as f64 / rate))
            .collect();
        window_rr_features(peaks, fs, &spans, w.rr_local_beats)
            .into_iter()
            .flatten()
            .collect()
    }

    /// Channels of one model input window (2 for a beat model with a template).
    pub fn input_channels(&self) -> usize {
        self.beat.as_ref().map_or(1, BeatWindow::channels)
    }

    /// True when `other` filters the same way (same rate and band), so one
    /// filtered lead serves both models.
    pub fn same_filter(&self, other: &Preprocessing) -> bool {
        self.sample_rate_hz == other.sample_rate_hz && self.band_hz == other.band_hz
    }

    /// Resamples `samples` (at `fs` Hz) to the model rate and band-passes them (zero phase).
    pub fn filter(&self, samples: &[f64], fs: f64) -> Result<Vec<f64>> {
        let resampled = resample(samples, fs, self.sample_rate_hz)?;
        let filter = band_pass(self.sample_rate_hz, self.band_hz[0], self.band_hz[1])?;
        Ok(filter.apply(&resampled))
    }

    /// The beat model's inputs for R peaks `peaks` (samples at the record's own
    /// rate `fs`) given the lead `filtered` by [`Preprocessing::filter`]: a
    /// window around each peak (mapped to the model rate; with the record's
    /// template when [`BeatWindow::template`]) and its RR features. Empty for a card without [`BeatWindow`].
    pub fn beat_inputs(&self, filtered: &[f64], peaks: &[usize], fs: f64) -> BeatInputs {
        let Some(beat) = &self.beat else {
            return BeatInputs::default();
        };
        let at_model_rate: Vec<usize> = peaks
            .iter()
            .map(|&p| map_index(p, fs, self.sample_rate_hz))
            .collect();
        let (b, a) = (beat.before_samples, beat.after_samples);
        BeatInputs {
            windows: if beat.template {
                beat_windows_with_template(filtered, &at_model_rate, b, a)
            } else {
                beat_windows(filtered, &at_model_rate, b, a)
            },
            features: rr_features(peaks, fs, beat.rr_local_beats)
                .iter()
                .flat_map(|f| f.to_array())
                .collect(),
        }
    }

    /// Window length and hop.
    pub fn window_spec(&self) -> WindowSpec {
        WindowSpec {
            length: self.window_samples,
            hop: self.hop_samples,
        }
    }

    /// Resamples `samples` (at `fs` Hz) to the model rate, band-passes them and
    /// cuts z-scored windows.
    pub fn prepare(&self, samples: &[f64], fs: f64) -> Result<Prepared> {
        let spec = self.window_spec();
        spec.validate()?;
        let filtered = self.filter(samples, fs)?;
        let starts = spec.starts(filtered.len());
        let windows = windows(&filtered, spec, &starts);
        Ok(Prepared {
            filtered,
            starts,
            windows,
        })
    }
}

/// Model input prepared from one lead.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The band-passed lead at the model rate.
    pub filtered: Vec<f64>,
    /// Start sample (model rate) of each window.
    pub starts: Vec<usize>,
    /// Z-scored windows, flattened `[starts.len() * window_samples]`.
    pub windows: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepares_windows_at_the_model_rate() {
        let p = Preprocessing::mitdb_default();
        let x: Vec<f64> = (0..250 * 25).map(|i| (i as f64 * 0.1).sin()).collect();
        let out = p.prepare(&x, 250.0).unwrap();
        assert_eq!(out.filtered.len(), 9000);
        assert_eq!(out.starts, vec![0, 1800, 3600, 5400]);
        assert_eq!(out.windows.len(), 4 * 3600);
    }

    #[test]
    fn beat_inputs_map_peaks_to_the_model_rate() {
        let p = Preprocessing::mitdb_beat();
        let x: Vec<f64> = (0..250 * 10).map(|i| (i as f64 * 0.05).sin()).collect();
        let filtered = p.filter(&x, 250.0).unwrap();
        let peaks = [250, 500, 750, 1000];
        let inputs = p.beat_inputs(&filtered, &peaks, 250.0);
        assert_eq!(inputs.windows.len(), 4 * 2 * 252);
        assert_eq!(inputs.features.len(), 4 * 9);
        // previous RR of the second beat: 250 samples at 250 Hz = 1 s
        assert!((inputs.features[9] - 1.0).abs() < 1e-6);
        assert!(Preprocessing::mitdb_default()
            .beat_inputs(&filtered, &peaks, 250.0)
            .windows
            .is_empty());
    }
}
