//! The data sets: the segment model's 10 s windows and the beat model's beats,
//! their inputs built by the shared [`model_inputs`] (as the server builds
//! them), each labelled from the reference beat annotations.
//!
//! Label rule (the task's): a window is **Abnormal** when the fraction of its
//! annotated beats that are not AAMI class N is above `abnormal_fraction`
//! (0.5: a strict majority), else **Normal**. Windows without any annotated beat
//! (e.g. inside ventricular flutter) have no label and are left out, and counted.
//! Splits follow de Chazal 2004: DS1 trains (part of it validates), DS2 tests.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::eval::bxb::{label_detections, DetectionCounts};
pub use crate::eval::load_record;
use crate::model::{model_inputs, BeatPreprocessing, LeadRequest, Models, SegmentPreprocessing};
use crate::signal::resample::map_index;
use crate::signal::wfdb::Annotation;
use crate::signal::{AamiClass, Recording};

/// de Chazal et al. 2004, training set.
pub const DS1: [&str; 22] = [
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201",
    "203", "205", "207", "208", "209", "215", "220", "223", "230",
];
/// de Chazal et al. 2004, test set.
pub const DS2: [&str; 22] = [
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213",
    "214", "219", "221", "222", "228", "231", "232", "233", "234",
];
/// Paced records, excluded from AAMI evaluation.
pub const PACED: [&str; 4] = ["102", "104", "107", "217"];
/// DS1 records held out for early stopping by default. They hold ventricular
/// (223, 124), supraventricular (209, 223) and normal-only (101) windows, while
/// the records richest in abnormal windows (208, 106, 207) stay in training.
pub const DEFAULT_VALIDATION: [&str; 4] = ["101", "124", "209", "223"];

/// DS1 records held out for the beat model's early stopping. Unlike the segment
/// model's, they leave record 209 (383 of DS1's ~940 supraventricular beats) in
/// training; 220 and 223 hold S beats, 223 and 124 V beats, 101 normal ones.
pub const BEAT_VALIDATION: [&str; 4] = ["101", "124", "220", "223"];

/// Class indices of the segment model.
pub const NORMAL: u8 = 0;
pub const ABNORMAL: u8 = 1;
/// Labels in class-index order.
pub const LABELS: [&str; 2] = ["Normal", "Abnormal"];

/// Windows of several records, with labels and where each came from.
#[derive(Debug, Clone, Default)]
pub struct WindowSet {
    /// Values per example: `channels * samples`.
    pub window_len: usize,
    /// Input channels per example (0 is read as 1).
    pub channels: usize,
    /// Flattened `[len * window_len]`, z-scored.
    pub windows: Vec<f32>,
    pub labels: Vec<u8>,
    /// Fraction of each window's annotated beats that are not AAMI N (the
    /// quantity the label thresholds; the trainer's soft target).
    pub fractions: Vec<f32>,
    pub records: Vec<String>,
    pub starts: Vec<usize>,
    /// Windows left out because no beat was annotated in them.
    pub unlabelled: usize,
    /// Width of each example's second input (0: none).
    pub n_features: usize,
    /// Flattened `[len * n_features]` (the beat model's RR features, the
    /// segment model's rhythm features).
    pub features: Vec<f32>,
}

/// Counts for reports.
#[derive(Debug, Clone, Serialize)]
pub struct SetSummary {
    pub records: usize,
    pub windows: usize,
    pub normal: usize,
    pub abnormal: usize,
    pub unlabelled: usize,
}

impl WindowSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Window `i`.
    pub fn window(&self, i: usize) -> &[f32] {
        &self.windows[i * self.window_len..(i + 1) * self.window_len]
    }

    /// `[channels, samples]` of one example.
    pub fn example_shape(&self) -> [usize; 2] {
        let c = self.channels.max(1);
        [c, self.window_len / c]
    }

    /// The flattened windows and features at `idx`, for ONNX Runtime.
    pub fn arrays(&self, idx: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let mut input = Vec::with_capacity(idx.len() * self.window_len);
        let mut features = Vec::with_capacity(idx.len() * self.n_features);
        for &i in idx {
            input.extend_from_slice(self.window(i));
            features.extend_from_slice(self.feature_row(i));
        }
        (input, features)
    }

    /// Features of example `i` (empty without a feature input).
    pub fn feature_row(&self, i: usize) -> &[f32] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }

    /// Examples per class index, for `classes` classes.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }

    /// Counts of windows by class.
    pub fn summary(&self) -> SetSummary {
        let abnormal = self.labels.iter().filter(|&&l| l == ABNORMAL).count();
        let mut names = self.records.clone();
        names.dedup();
        SetSummary {
            records: names.len(),
            windows: self.len(),
            normal: self.len() - abnormal,
            abnormal,
            unlabelled: self.unlabelled,
        }
    }

    /// The windows at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> WindowSet {
        let mut out = WindowSet {
            window_len: self.window_len,
            channels: self.channels,
            n_features: self.n_features,
            ..Default::default()
        };
        for &i in indices {
            out.windows.extend_from_slice(self.window(i));
            out.features.extend_from_slice(self.feature_row(i));
            out.labels.push(self.labels[i]);
            if let Some(&f) = self.fractions.get(i) {
                out.fractions.push(f);
            }
            out.records.push(self.records[i].clone());
            out.starts.push(self.starts[i]);
        }
        out
    }

    /// Appends `other` (same window length and feature width).
    pub fn append(&mut self, other: WindowSet) {
        self.window_len = other.window_len;
        self.channels = other.channels;
        self.n_features = other.n_features;
        self.windows.extend(other.windows);
        self.features.extend(other.features);
        self.labels.extend(other.labels);
        self.fractions.extend(other.fractions);
        self.records.extend(other.records);
        self.starts.extend(other.starts);
        self.unlabelled += other.unlabelled;
    }
}

/// The label of a window from the AAMI classes of the beats inside it, or `None`
/// when it holds no annotated beat.
pub fn label_window(classes: &[AamiClass], abnormal_fraction: f64) -> Option<u8> {
    let fraction = non_n_fraction(classes)?;
    Some(if fraction > abnormal_fraction {
        ABNORMAL
    } else {
        NORMAL
    })
}

/// Fraction of `classes` that are not AAMI N, or `None` when empty.
pub fn non_n_fraction(classes: &[AamiClass]) -> Option<f64> {
    if classes.is_empty() {
        return None;
    }
    let non_n = classes.iter().filter(|&&c| c != AamiClass::N).count();
    Some(non_n as f64 / classes.len() as f64)
}

/// The lead a data set reads: the card's, never another (an absent lead is an error).
fn lead(name: &str) -> LeadRequest<'_> {
    LeadRequest {
        name,
        fallback: false,
    }
}

/// Prepares and labels every window of one record: the inputs are
/// [`model_inputs`]'s, as the server builds them (rhythm features from our
/// detector's beats).
pub fn record_windows(
    rec: &Recording,
    annotations: &[Annotation],
    prep: &SegmentPreprocessing,
    abnormal_fraction: f64,
) -> Result<WindowSet> {
    let models = Models {
        segment: Some(prep),
        beat: None,
    };
    let inputs = model_inputs(rec, lead(&prep.lead), models)?
        .segment
        .unwrap_or_default();
    let beats: Vec<(usize, AamiClass)> = annotations
        .iter()
        .filter_map(|a| {
            let at = map_index(a.sample as usize, rec.sampling_rate, prep.sample_rate_hz);
            a.aami().map(|c| (at, c))
        })
        .collect();
    let len = prep.window_samples;
    let width = prep.feature_width();
    let mut out = WindowSet {
        window_len: len,
        n_features: width,
        ..Default::default()
    };
    for (k, &start) in inputs.starts.iter().enumerate() {
        let from = beats.partition_point(|b| b.0 < start);
        let to = beats.partition_point(|b| b.0 < start + len);
        let classes: Vec<AamiClass> = beats[from..to].iter().map(|b| b.1).collect();
        match (
            label_window(&classes, abnormal_fraction),
            non_n_fraction(&classes),
        ) {
            (Some(label), Some(fraction)) => {
                out.windows.extend(inputs.windows(k..k + 1));
                out.features
                    .extend_from_slice(&inputs.features[k * width..(k + 1) * width]);
                out.labels.push(label);
                out.fractions.push(fraction as f32);
                out.records.push(rec.name.clone());
                out.starts.push(start);
            }
            _ => out.unlabelled += 1,
        }
    }
    Ok(out)
}

/// Windows of `records` from `db`.
pub fn load_windows(
    db: &Path,
    records: &[String],
    prep: &SegmentPreprocessing,
    abnormal_fraction: f64,
) -> Result<WindowSet> {
    let mut set = WindowSet {
        window_len: prep.window_samples,
        n_features: prep.feature_width(),
        ..Default::default()
    };
    for name in records {
        let (rec, ann) = load_record(db, name)?;
        set.append(record_windows(&rec, &ann, prep, abnormal_fraction)?);
    }
    Ok(set)
}

/// The match window of the beat labelling and of the detection figures (bxb's).
pub const MATCH_WINDOW_S: f64 = 0.15;

/// The labelled beats of one record and how detection went on it: every beat
/// our detector finds (the inputs are [`model_inputs`]'s, as the server builds
/// them), labelled with the class of the reference beat within
/// [`MATCH_WINDOW_S`]; detections matching none are left out and counted.
pub fn record_beats(
    rec: &Recording,
    annotations: &[Annotation],
    prep: &BeatPreprocessing,
) -> Result<(WindowSet, DetectionCounts)> {
    let models = Models {
        segment: None,
        beat: Some(prep),
    };
    let inputs = model_inputs(rec, lead(&prep.lead), models)?;
    let peaks = &inputs.peaks;
    let beat = inputs.beat.unwrap_or_default();
    let fs = rec.sampling_rate;
    let (classes, comparison) = label_detections(peaks, annotations, fs, MATCH_WINDOW_S);
    let channels = prep.beat.channels();
    let len = channels * prep.beat.samples();
    let width = prep.feature_width();
    let mut out = WindowSet {
        window_len: len,
        channels,
        n_features: width,
        ..Default::default()
    };
    for (i, class) in classes.iter().enumerate() {
        let Some(class) = class else {
            out.unlabelled += 1;
            continue;
        };
        out.windows
            .extend_from_slice(&beat.windows[i * len..(i + 1) * len]);
        out.features
            .extend_from_slice(&beat.features[i * width..(i + 1) * width]);
        out.labels.push(class.index() as u8);
        out.records.push(rec.name.clone());
        out.starts.push(peaks[i]);
    }
    Ok((out, comparison.counts))
}

/// Labelled beats of `records` from `db`, with the pooled detection counts.
pub fn load_beats(
    db: &Path,
    records: &[String],
    prep: &BeatPreprocessing,
) -> Result<(WindowSet, DetectionCounts)> {
    let mut set = WindowSet::default();
    let mut counts = DetectionCounts::default();
    for name in records {
        let (rec, ann) = load_record(db, name)?;
        let (beats, c) = record_beats(&rec, &ann, prep)?;
        set.append(beats);
        counts.add(&c);
    }
    Ok((set, counts))
}

/// A small deterministic generator (SplitMix64) for shuffling with a seed.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform number in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Two independent standard normal numbers (Box-Muller).
    pub fn gaussian_pair(&mut self) -> (f64, f64) {
        let r = (-2.0 * self.unit().ln()).sqrt();
        let theta = std::f64::consts::TAU * self.unit();
        (r * theta.cos(), r * theta.sin())
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rule_is_a_strict_majority_of_non_n_beats() {
        use AamiClass::*;
        assert_eq!(label_window(&[N, N, V], 0.5), Some(NORMAL));
        assert_eq!(label_window(&[N, V], 0.5), Some(NORMAL));
        assert_eq!(label_window(&[N, V, S], 0.5), Some(ABNORMAL));
        assert_eq!(label_window(&[Q], 0.5), Some(ABNORMAL));
        assert_eq!(label_window(&[N, V], 0.4), Some(ABNORMAL));
        assert_eq!(label_window(&[], 0.5), None);
    }

    #[test]
    fn splits_are_disjoint_and_complete() {
        for r in DS1 {
            assert!(!DS2.contains(&r) && !PACED.contains(&r));
        }
        assert!(DEFAULT_VALIDATION.iter().all(|r| DS1.contains(r)));
        assert_eq!(DS1.len() + DS2.len() + PACED.len(), 48);
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<usize> = (0..100).collect();
        SplitMix::new(7).shuffle(&mut a);
        let mut b: Vec<usize> = (0..100).collect();
        SplitMix::new(7).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        a.sort();
        assert_eq!(a, (0..100).collect::<Vec<_>>());
    }
}
