//! The one function that turns a recording into each model's input tensors.
//!
//! [`model_inputs`] picks the lead, finds the R peaks on it at its own rate,
//! band-passes it at each model's rate (once when both models filter alike)
//! and builds the segment model's windows and rhythm features and the beat
//! model's windows and RR features, all from the cards' preprocessing. The
//! server (`service::pipeline`), the trainer's data sets, `ecg-train evaluate`
//! and `examples/window_scores.rs` all call it, so a model never sees tensors
//! built differently from those it was trained on; `tests/inputs.rs` checks
//! that the trainer's tensors for a record equal the server's bit for bit.
//!
//! The segment windows are not built up front: [`SegmentInputs`] keeps the
//! filtered lead and the window starts, and [`Rows::batch`] z-scores a batch
//! of windows when an engine asks for it. A 24-hour record's windows overlap
//! by half and would take twice its filtered lead in memory (250 MB at 360 Hz)
//! if they were built at once; one batch takes 16 x 3,600 samples.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::preprocess::{BeatPreprocessing, FeatureColumn, SegmentPreprocessing};
use crate::signal::beat_features::beat_features_each;
use crate::signal::qrs::detect_r_peaks;
use crate::signal::resample::map_index;
use crate::signal::rr::{rr_features, window_rr_features};
use crate::signal::window::{beat_windows, beat_windows_with_template, windows};
use crate::signal::{LeadChoice, Recording, Result, SignalError};

/// Which models to build inputs for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Models<'a> {
    pub segment: Option<&'a SegmentPreprocessing>,
    pub beat: Option<&'a BeatPreprocessing>,
}

/// Which lead to read.
#[derive(Debug, Clone, Copy)]
pub struct LeadRequest<'a> {
    /// By name (`MLII`) or index (`"0"`).
    pub name: &'a str,
    /// Use the first lead, with a warning, when `name` is absent (the server);
    /// without it an absent lead is an error (the trainer).
    pub fallback: bool,
}

/// The segment model's inputs (cheap to clone: the lead and starts are shared).
#[derive(Debug, Clone, Default)]
pub struct SegmentInputs {
    /// The band-passed lead at the model rate.
    pub filtered: Arc<Vec<f64>>,
    /// Start sample (model rate) of each window.
    pub starts: Arc<[usize]>,
    /// Samples per window.
    pub window_samples: usize,
    /// Rhythm features, flattened `[starts.len() * feature_width]` (empty
    /// without [`super::preprocess::WindowFeatures`]).
    pub features: Arc<[f32]>,
}

impl SegmentInputs {
    /// The z-scored windows `range` (indices into `starts`), flattened
    /// `[range.len() * window_samples]`; `windows(0..starts.len())` is all of them.
    pub fn windows(&self, range: Range<usize>) -> Vec<f32> {
        windows(&self.filtered, self.window_samples, &self.starts[range])
    }
}

/// A model's input rows (windows or beats), read a batch at a time.
pub trait Rows: Send + Sync {
    /// How many rows there are.
    fn rows(&self) -> usize;
    /// Rows `range`: the model's main input flattened (empty for a model of
    /// features alone) and its `features` flattened (empty for a model without).
    fn batch(&self, range: Range<usize>) -> (Cow<'_, [f32]>, &[f32]);
}

impl Rows for SegmentInputs {
    fn rows(&self) -> usize {
        self.starts.len()
    }

    fn batch(&self, range: Range<usize>) -> (Cow<'_, [f32]>, &[f32]) {
        let width = self.features.len() / self.starts.len().max(1);
        let features = &self.features[range.start * width..range.end * width];
        (Cow::Owned(self.windows(range)), features)
    }
}

impl Rows for BeatInputs {
    fn rows(&self) -> usize {
        self.beats
    }

    fn batch(&self, range: Range<usize>) -> (Cow<'_, [f32]>, &[f32]) {
        let per = self.windows.len() / self.beats.max(1);
        let width = self.features.len() / self.beats.max(1);
        (
            Cow::Borrowed(&self.windows[range.start * per..range.end * per]),
            &self.features[range.start * width..range.end * width],
        )
    }
}

/// The beat model's inputs, one example per R peak.
#[derive(Debug, Clone, Default)]
pub struct BeatInputs {
    /// Beats (rows).
    pub beats: usize,
    /// Windows, flattened `[beats * channels * (before + after)]`.
    pub windows: Vec<f32>,
    /// RR features, flattened `[beats * features]`.
    pub features: Vec<f32>,
}

/// Where the time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    /// R-peak detection.
    pub peaks: Duration,
    /// Filtering and features (the segment windows are made later, a batch at a time).
    pub inputs: Duration,
}

/// Everything the models read from one recording.
#[derive(Debug, Clone)]
pub struct ModelInputs {
    /// The lead read, and whether it was a fallback.
    pub lead: LeadChoice,
    /// R peaks at the recording's own rate.
    pub peaks: Vec<usize>,
    pub segment: Option<SegmentInputs>,
    pub beat: Option<BeatInputs>,
    pub spent: Spent,
}

/// The inputs of `models` for `rec`'s lead `lead`.
pub fn model_inputs(rec: &Recording, lead: LeadRequest, models: Models) -> Result<ModelInputs> {
    let choice = rec.select_lead(lead.name, lead.fallback)?;
    let samples = Cow::Borrowed(&rec.leads[choice.index].samples[..]);
    inputs_of(samples, rec.sampling_rate, choice, models, &mut |_| {})
}

/// [`model_inputs`] of a recording the caller gives up (the server, once it
/// has what it needs of it): the other leads are freed, the lead is
/// band-passed where it lies when nothing reads the raw samples after that,
/// so it holds one copy of its lead (a 24-hour lead is 250 MB; the R-peak
/// search of a long lead holds a piece at a time, [`crate::signal::qrs::STREAM_FROM`]).
/// The same tensors, bit for bit.
///
/// `segment_ready` sees the segment model's inputs as soon as they are made,
/// before the beat model's (the server starts the segment model there, so
/// that the beat features are computed while it runs).
pub fn model_inputs_owned(
    mut rec: Recording,
    lead: LeadRequest,
    models: Models,
    segment_ready: &mut dyn FnMut(&SegmentInputs),
) -> Result<ModelInputs> {
    let choice = rec.select_lead(lead.name, lead.fallback)?;
    let samples = std::mem::take(&mut rec.leads[choice.index].samples);
    let fs = rec.sampling_rate;
    drop(rec);
    inputs_of(Cow::Owned(samples), fs, choice, models, segment_ready)
}

/// The inputs of `samples` (filtered in place when given up).
fn inputs_of(
    samples: Cow<'_, [f64]>,
    fs: f64,
    choice: LeadChoice,
    models: Models,
    segment_ready: &mut dyn FnMut(&SegmentInputs),
) -> Result<ModelInputs> {
    // R peaks first: the detector's working copies are gone before the
    // filtered leads are made (a long record's peak memory).
    let t = Instant::now();
    let peaks = detect_r_peaks(&samples, fs);
    let mut spent = Spent {
        peaks: t.elapsed(),
        ..Spent::default()
    };
    // The beat model reads the segment model's filtered lead when it filters
    // alike; else it filters the raw samples after the segment model has.
    let shares = |s: &SegmentPreprocessing| {
        models
            .beat
            .is_none_or(|b| b.filter_spec() == s.filter_spec())
    };
    let mut samples = Some(samples);
    let t = Instant::now();
    let segment = models
        .segment
        .map(|pre| -> Result<_> {
            let spec = pre.window_spec();
            spec.validate()?;
            let filtered = match samples.take_if(|_| shares(pre)) {
                Some(Cow::Owned(own)) => pre.filter_spec().apply_owned(own, fs)?,
                Some(Cow::Borrowed(raw)) => pre.filter_spec().apply(raw, fs)?,
                None => pre
                    .filter_spec()
                    .apply(samples.as_deref().unwrap_or(&[]), fs)?,
            };
            let starts = spec.starts(filtered.len());
            let features = segment_features(pre, &peaks, fs, &starts);
            Ok(SegmentInputs {
                filtered: Arc::new(filtered),
                starts: starts.into(),
                window_samples: spec.length,
                features: features.into(),
            })
        })
        .transpose()?;
    if let Some(s) = &segment {
        segment_ready(s);
    }
    let beat = models
        .beat
        .map(|pre| -> Result<_> {
            let shared = segment
                .as_ref()
                .zip(models.segment)
                .filter(|(_, s)| s.filter_spec() == pre.filter_spec());
            Ok(match (shared, samples.take()) {
                (Some((s, _)), _) => beat_inputs(pre, &s.filtered, &peaks, fs)?,
                (None, Some(Cow::Owned(own))) => {
                    beat_inputs(pre, &pre.filter_spec().apply_owned(own, fs)?, &peaks, fs)?
                }
                (None, raw) => {
                    let raw = raw.as_deref().unwrap_or(&[]);
                    beat_inputs(pre, &pre.filter_spec().apply(raw, fs)?, &peaks, fs)?
                }
            })
        })
        .transpose()?;
    spent.inputs = t.elapsed();
    Ok(ModelInputs {
        lead: choice,
        peaks,
        segment,
        beat,
        spent,
    })
}

/// The segment model's `features` for the windows at `starts` (model rate)
/// given the R peaks `peaks` (samples at the record's rate `fs`).
fn segment_features(
    pre: &SegmentPreprocessing,
    peaks: &[usize],
    fs: f64,
    starts: &[usize],
) -> Vec<f32> {
    let Some(w) = &pre.window_features else {
        return Vec::new();
    };
    let rate = pre.sample_rate_hz;
    let spans: Vec<(f64, f64)> = starts
        .iter()
        .map(|&s| (s as f64 / rate, (s + pre.window_samples) as f64 / rate))
        .collect();
    window_rr_features(peaks, fs, &spans, w.rr_local_beats)
        .into_iter()
        .flatten()
        .collect()
}

/// The beat model's inputs for R peaks `peaks` (samples at the record's own
/// rate `fs`) given the lead `filtered` at the model rate: a window around each
/// peak (with the record's template when [`super::preprocess::BeatWindow::template`])
/// and the features the card names ([`super::preprocess::FeatureColumn`]).
fn beat_inputs(
    pre: &BeatPreprocessing,
    filtered: &[f64],
    peaks: &[usize],
    fs: f64,
) -> Result<BeatInputs> {
    let beat = &pre.beat;
    let columns = beat
        .feature_columns()
        .map_err(|m| SignalError::parameter("preprocessing.beat.features", m))?;
    let at_model_rate: Vec<usize> = peaks
        .iter()
        .map(|&p| map_index(p, fs, pre.sample_rate_hz))
        .collect();
    let (b, a) = (beat.before_samples, beat.after_samples);
    let rr = rr_features(peaks, fs, beat.rr_local_beats);
    let rr_rows: Vec<[f32; 9]> = rr.iter().map(|f| f.to_array()).collect();
    // Each beat's row of the card's columns, written as its beat features
    // come (never all of them beside the input: 31 MB for 24 hours).
    let mut features = Vec::with_capacity(peaks.len() * columns.len());
    let mut write = |i: usize, beat_row: &[f32]| {
        features.extend(columns.iter().map(|c| match *c {
            FeatureColumn::Rr(j) => rr_rows[i][j],
            FeatureColumn::Beat(j) => beat_row[j],
        }))
    };
    if columns.iter().any(|c| matches!(c, FeatureColumn::Beat(_))) {
        let mut i = 0;
        beat_features_each(filtered, pre.sample_rate_hz, &at_model_rate, &rr, |row| {
            write(i, &row);
            i += 1;
        });
    } else {
        (0..peaks.len()).for_each(|i| write(i, &[]));
    }
    Ok(BeatInputs {
        beats: peaks.len(),
        windows: if beat.samples() == 0 {
            Vec::new()
        } else if beat.template {
            beat_windows_with_template(filtered, &at_model_rate, b, a)
        } else {
            beat_windows(filtered, &at_model_rate, b, a)
        },
        features,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Lead;

    fn recording(fs: f64, seconds: usize) -> Recording {
        // A spike train at 75 bpm on a slow sine: beats the detector finds.
        let n = (fs as usize) * seconds;
        let period = (fs * 0.8) as usize;
        let samples = (0..n)
            .map(|i| {
                let spike = if i % period < 3 { 1.5 } else { 0.0 };
                spike + 0.05 * (i as f64 * 0.01).sin()
            })
            .collect();
        Recording {
            name: "t".into(),
            sampling_rate: fs,
            leads: vec![Lead {
                name: "MLII".into(),
                units: "mV".into(),
                samples,
            }],
        }
    }

    const MLII: LeadRequest = LeadRequest {
        name: "MLII",
        fallback: false,
    };

    #[test]
    fn windows_and_beats_at_the_model_rate() {
        let rec = recording(250.0, 25);
        let seg = SegmentPreprocessing::mitdb_segment();
        let beat = BeatPreprocessing::mitdb_beat();
        let models = Models {
            segment: Some(&seg),
            beat: Some(&beat),
        };
        let out = model_inputs(&rec, MLII, models).unwrap();
        let s = out.segment.unwrap();
        assert_eq!(s.filtered.len(), 9000);
        assert_eq!(s.starts[..], [0, 1800, 3600, 5400]);
        assert_eq!(s.windows(0..4).len(), 4 * 3600);
        assert_eq!(s.batch(1..3).0[..], s.windows(0..4)[3600..3 * 3600]);
        assert_eq!(s.features.len(), 4 * 6);
        let b = out.beat.unwrap();
        assert!(out.peaks.len() > 20, "{} peaks", out.peaks.len());
        assert_eq!(b.windows.len(), out.peaks.len() * 2 * 252);
        assert_eq!(b.features.len(), out.peaks.len() * 9);
        // the second beat's previous RR, in seconds at the record's own rate
        let rr = (out.peaks[1] - out.peaks[0]) as f32 / 250.0;
        assert!(
            (b.features[9] - rr).abs() < 1e-6,
            "{} vs {rr}",
            b.features[9]
        );
    }

    #[test]
    fn one_model_alone_gives_the_same_tensors() {
        let rec = recording(360.0, 20);
        let seg = SegmentPreprocessing::mitdb_segment();
        let beat = BeatPreprocessing::mitdb_beat();
        let both = model_inputs(
            &rec,
            MLII,
            Models {
                segment: Some(&seg),
                beat: Some(&beat),
            },
        )
        .unwrap();
        let beat_only = model_inputs(
            &rec,
            MLII,
            Models {
                segment: None,
                beat: Some(&beat),
            },
        )
        .unwrap();
        assert!(beat_only.segment.is_none());
        let (a, b) = (both.beat.unwrap(), beat_only.beat.unwrap());
        assert_eq!(a.windows, b.windows);
        assert_eq!(a.features, b.features);
    }

    #[test]
    fn a_recording_given_up_gives_the_same_tensors() {
        let seg = SegmentPreprocessing::mitdb_segment();
        let beat = BeatPreprocessing::mitdb_beat();
        let mut other = BeatPreprocessing::mitdb_beat();
        other.band_hz = [1.0, 40.0];
        let cases = [
            (Some(&seg), Some(&beat)),  // one filtered lead for both
            (Some(&seg), Some(&other)), // the beat model filters on its own
            (Some(&seg), None),
            (None, Some(&beat)),
        ];
        // At the model rate (filtered in place) and at 250 Hz (resampled first).
        for (fs, seconds) in [(360.0, 25), (250.0, 25), (360.0, 200)] {
            let rec = recording(fs, seconds);
            for (segment, beat) in cases {
                let models = Models { segment, beat };
                let kept = model_inputs(&rec, MLII, models).unwrap();
                let mut seen = 0;
                let given =
                    model_inputs_owned(rec.clone(), MLII, models, &mut |_| seen += 1).unwrap();
                assert_eq!(seen, usize::from(segment.is_some()));
                assert_eq!(kept.peaks, given.peaks);
                let case = format!(
                    "{fs} Hz, {seconds} s, {} {}",
                    segment.is_some(),
                    beat.is_some()
                );
                match (kept.segment, given.segment) {
                    (Some(a), Some(b)) => {
                        assert!(a.filtered == b.filtered, "{case}");
                        assert_eq!(a.starts, b.starts, "{case}");
                        assert_eq!(a.features, b.features, "{case}");
                        let n = a.starts.len();
                        assert!(a.windows(0..n) == b.windows(0..n), "{case}");
                    }
                    (None, None) => {}
                    _ => panic!("{case}: segment inputs on one side only"),
                }
                match (kept.beat, given.beat) {
                    (Some(a), Some(b)) => {
                        assert!(a.windows == b.windows, "{case}");
                        assert!(a.features == b.features, "{case}");
                    }
                    (None, None) => {}
                    _ => panic!("{case}: beat inputs on one side only"),
                }
            }
        }
    }

    #[test]
    fn an_absent_lead_is_an_error_without_fallback() {
        let rec = recording(360.0, 20);
        let missing = LeadRequest {
            name: "V5",
            fallback: false,
        };
        assert!(model_inputs(&rec, missing, Models::default()).is_err());
        let fallback = LeadRequest {
            fallback: true,
            ..missing
        };
        let out = model_inputs(&rec, fallback, Models::default()).unwrap();
        assert!(out.lead.fallback_warning.is_some());
    }
}
