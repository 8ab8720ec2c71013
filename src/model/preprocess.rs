//! The preprocessing a model declares, and the one function that applies it.
//!
//! Resample to the model rate, band-pass with zero phase, cut windows and
//! z-score each: the trainer builds its data set with [`Preprocessing::prepare`]
//! and the server prepares every upload with it, from the parameters in the
//! model card.

use serde::{Deserialize, Serialize};

use crate::signal::filter::band_pass;
use crate::signal::resample::resample;
use crate::signal::segment::{windows, WindowSpec};
use crate::signal::Result;

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
        let resampled = resample(samples, fs, self.sample_rate_hz)?;
        let filter = band_pass(self.sample_rate_hz, self.band_hz[0], self.band_hz[1])?;
        let filtered = filter.apply(&resampled);
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
}
