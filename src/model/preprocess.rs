//! The preprocessing each kind of model declares in its card.
//!
//! A segment model reads z-scored fixed windows of the band-passed lead (and,
//! with [`WindowFeatures`], the rhythm features of each window); a beat model
//! reads a window around each R peak (with the record's typical beat beside
//! it) and the beat's RR features. Each kind has its own type, so a field
//! means one thing. The steps themselves live in [`super::inputs`], the one
//! place that turns a recording into model tensors for server and trainer.

use serde::{Deserialize, Serialize};

use crate::signal::beat_features;
use crate::signal::filter::band_pass;
use crate::signal::resample::{resample, resample_owned};
use crate::signal::rr::{RrFeatures, WINDOW_RR_NAMES};
use crate::signal::window::WindowSpec;
use crate::signal::Result;

/// Per-window normalisation of the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalisation {
    /// Zero mean, unit variance per window (a beat window with a template is
    /// scaled by the template's spread instead, see [`BeatWindow::template`]).
    Zscore,
}

/// The band-pass both kinds apply, at the model rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterSpec {
    /// Rate the model runs at; inputs are resampled to it.
    pub sample_rate_hz: f64,
    /// Band-pass edges in Hz (4th-order Butterworth high-pass and low-pass, zero phase).
    pub band_hz: [f64; 2],
}

impl FilterSpec {
    /// Resamples `samples` (at `fs` Hz) to the model rate and band-passes them (zero phase).
    pub fn apply(&self, samples: &[f64], fs: f64) -> Result<Vec<f64>> {
        let filter = band_pass(self.sample_rate_hz, self.band_hz[0], self.band_hz[1])?;
        let mut x = resample(samples, fs, self.sample_rate_hz)?;
        filter.apply_in_place(&mut x);
        Ok(x)
    }

    /// [`Self::apply`] to samples the caller gives up: at the model rate they
    /// are filtered where they lie (the same values, one signal in memory).
    pub fn apply_owned(&self, samples: Vec<f64>, fs: f64) -> Result<Vec<f64>> {
        let filter = band_pass(self.sample_rate_hz, self.band_hz[0], self.band_hz[1])?;
        let mut x = resample_owned(samples, fs, self.sample_rate_hz)?;
        filter.apply_in_place(&mut x);
        Ok(x)
    }
}

/// Rhythm features of each segment window: the segment model's second input
/// `features`, one row per window.
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
    /// The six rhythm features of [`crate::signal::rr::window_rr_features`], RR
    /// averaged over 10 beats each side.
    pub fn rr() -> Self {
        WindowFeatures {
            names: WINDOW_RR_NAMES.iter().map(|s| s.to_string()).collect(),
            rr_local_beats: 10,
            beats_from: "detect_r_peaks".into(),
        }
    }
}

/// A segment model's preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentPreprocessing {
    /// Rate the model runs at; inputs are resampled to it.
    pub sample_rate_hz: f64,
    /// The lead the model was trained on (WFDB description).
    pub lead: String,
    /// Window length at the model rate.
    pub window_samples: usize,
    /// Samples between window starts.
    pub hop_samples: usize,
    /// Band-pass edges in Hz (4th-order Butterworth high-pass and low-pass, zero phase).
    pub band_hz: [f64; 2],
    pub normalisation: Normalisation,
    /// Rhythm features per window (models with a second input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_features: Option<WindowFeatures>,
}

impl SegmentPreprocessing {
    /// MLII at 360 Hz, 0.5-50 Hz, 10 s windows every 5 s, no second input.
    pub fn mitdb_default() -> Self {
        SegmentPreprocessing {
            sample_rate_hz: 360.0,
            lead: "MLII".to_string(),
            window_samples: 3600,
            hop_samples: 1800,
            band_hz: [0.5, 50.0],
            normalisation: Normalisation::Zscore,
            window_features: None,
        }
    }

    /// [`Self::mitdb_default`] plus [`WindowFeatures::rr`] for each window.
    pub fn mitdb_segment() -> Self {
        SegmentPreprocessing {
            window_features: Some(WindowFeatures::rr()),
            ..SegmentPreprocessing::mitdb_default()
        }
    }

    pub fn filter_spec(&self) -> FilterSpec {
        FilterSpec {
            sample_rate_hz: self.sample_rate_hz,
            band_hz: self.band_hz,
        }
    }

    /// Window length and hop.
    pub fn window_spec(&self) -> WindowSpec {
        WindowSpec {
            length: self.window_samples,
            hop: self.hop_samples,
        }
    }

    /// Width of the second input `features` (0: none).
    pub fn feature_width(&self) -> usize {
        self.window_features.as_ref().map_or(0, |w| w.names.len())
    }

    /// Seconds one window covers.
    pub fn window_s(&self) -> f64 {
        self.window_samples as f64 / self.sample_rate_hz
    }
}

/// The beat model's input around each R peak. `before_samples` and
/// `after_samples` both 0: no window input (a model of `features` alone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeatWindow {
    /// Samples (model rate) before the R peak.
    pub before_samples: usize,
    /// Samples from the R peak on (the peak included).
    pub after_samples: usize,
    /// Beats either side averaged into the local RR.
    pub rr_local_beats: usize,
    /// The `features` input, in order: names of [`RrFeatures::NAMES`] and of
    /// [`beat_features::NAMES`] ([`BeatWindow::feature_columns`]).
    pub features: Vec<String>,
    /// A second channel with the record's typical beat (median template), both
    /// scaled by the template's spread
    /// ([`crate::signal::window::beat_windows_with_template`]); without it, one
    /// z-scored channel ([`crate::signal::window::beat_windows`]).
    #[serde(default)]
    pub template: bool,
}

impl BeatWindow {
    /// 0.25 s before to 0.45 s after the peak at 360 Hz, RR averaged over 10
    /// beats each side, with the template.
    pub fn mitdb_default() -> Self {
        BeatWindow {
            before_samples: 90,
            after_samples: 162,
            rr_local_beats: 10,
            features: RrFeatures::NAMES.iter().map(|s| s.to_string()).collect(),
            template: true,
        }
    }

    /// Input channels of the beat window.
    pub fn channels(&self) -> usize {
        if self.template {
            2
        } else {
            1
        }
    }

    /// Samples of one channel of the window.
    pub fn samples(&self) -> usize {
        self.before_samples + self.after_samples
    }

    /// Where each named feature comes from: an error names the first unknown one.
    pub fn feature_columns(&self) -> std::result::Result<Vec<FeatureColumn>, String> {
        self.features
            .iter()
            .map(|name| {
                let rr = RrFeatures::NAMES.iter().position(|n| n == name);
                let beat = beat_features::NAMES.iter().position(|n| n == name);
                rr.map(FeatureColumn::Rr)
                    .or(beat.map(FeatureColumn::Beat))
                    .ok_or_else(|| {
                        format!(
                            "unknown beat feature `{name}`; known: {}, {}",
                            RrFeatures::NAMES.join(", "),
                            beat_features::NAMES.join(", ")
                        )
                    })
            })
            .collect()
    }
}

/// One column of the beat model's `features` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureColumn {
    /// Index into [`RrFeatures::to_array`].
    Rr(usize),
    /// Index into [`beat_features::beat_features`]'s rows.
    Beat(usize),
}

/// A beat model's preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeatPreprocessing {
    /// Rate the model runs at; inputs are resampled to it.
    pub sample_rate_hz: f64,
    /// The lead the model was trained on (WFDB description).
    pub lead: String,
    /// Band-pass edges in Hz (4th-order Butterworth high-pass and low-pass, zero phase).
    pub band_hz: [f64; 2],
    pub normalisation: Normalisation,
    /// The window around each peak and the RR features.
    pub beat: BeatWindow,
}

impl BeatPreprocessing {
    /// The segment model's rate, lead and band with [`BeatWindow::mitdb_default`].
    pub fn mitdb_beat() -> Self {
        let segment = SegmentPreprocessing::mitdb_default();
        BeatPreprocessing {
            sample_rate_hz: segment.sample_rate_hz,
            lead: segment.lead,
            band_hz: segment.band_hz,
            normalisation: Normalisation::Zscore,
            beat: BeatWindow::mitdb_default(),
        }
    }

    pub fn filter_spec(&self) -> FilterSpec {
        FilterSpec {
            sample_rate_hz: self.sample_rate_hz,
            band_hz: self.band_hz,
        }
    }

    /// Width of the second input `features`.
    pub fn feature_width(&self) -> usize {
        self.beat.features.len()
    }
}

/// A heartbeat model's input: one row of the heartbeat format of Kachuee et
/// al. 2018 ([`crate::signal::heartbeat`]), as the Kaggle `mitbih_*.csv`
/// files and `ecg-train dataset heartbeat` write it. The service reads such
/// rows as they are uploaded; it does not make them from a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatPreprocessing {
    /// The rows' sampling rate.
    pub sample_rate_hz: f64,
    /// Values per row.
    pub samples: usize,
    /// How a row was made (a record for people).
    pub steps: String,
}

impl HeartbeatPreprocessing {
    /// The format as [`crate::signal::heartbeat`] writes it.
    pub fn kachuee() -> Self {
        use crate::signal::heartbeat::{LENGTH, RATE_HZ, SPAN_RR, WINDOW};
        HeartbeatPreprocessing {
            sample_rate_hz: RATE_HZ,
            samples: LENGTH,
            steps: format!(
                "Kachuee et al. 2018, section III.A: the lead at {RATE_HZ} Hz in windows of {WINDOW} samples, each scaled to [0, 1]; from each R peak {SPAN_RR} x the window's median RR, zero-padded to {LENGTH} samples"
            ),
        }
    }
}
