//! The answer to an analysis, and how model outputs become it.
//!
//! The types are the service's output contract: they serialise to the JSON of
//! `/predict` and carry their schemas (utoipa) for the API document, but know
//! nothing of HTTP. [`assemble`] turns the prepared record and the models'
//! outputs into a [`PredictResponse`]; [`reference`] scores our beats against
//! an upload's annotations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::engine::ModelOutputs;
use crate::eval::bxb::label_detections;
use crate::eval::classes::MultiReport;
use crate::model::card::CardError;
use crate::model::{BeatModel, ModelCard, ModelInputs, SegmentModel};
use crate::signal::edf::Event;
use crate::signal::wfdb::Annotation;
use crate::signal::AamiClass;

/// The record as received.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordInfo {
    #[schema(example = "100")]
    pub name: String,
    #[schema(example = "MLII")]
    pub lead: String,
    /// `wfdb`, `dat`, `edf` or `csv`.
    #[schema(example = "wfdb")]
    pub source: String,
    #[schema(example = 360.0)]
    pub sampling_rate_hz: f64,
    #[schema(example = 360.0)]
    pub model_rate_hz: f64,
    #[schema(example = 650000)]
    pub n_samples: usize,
    #[schema(example = 1805.6)]
    pub duration_s: f64,
    /// All leads in the upload.
    pub leads: Vec<String>,
}

/// The model that answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelInfo {
    #[schema(example = "ecg-segment")]
    pub name: String,
    #[schema(example = "1.0.0")]
    pub version: String,
    pub sha256: String,
}

/// The whole-record verdict.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    /// `Abnormal` when any segment is abnormal, else `Normal`.
    #[schema(example = "Abnormal")]
    pub label: String,
    #[schema(example = 361)]
    pub segments: usize,
    #[schema(example = 12)]
    pub abnormal_segments: usize,
    #[schema(example = 0.033)]
    pub abnormal_fraction: f64,
    /// Mean heart rate over the detected beats; null with fewer than two beats.
    #[schema(example = 75.2)]
    pub heart_rate_bpm: Option<f64>,
    #[schema(example = 2273)]
    pub beats: usize,
    /// Beats per AAMI class (N, S, V, F, Q) by the beat model; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!({"N": 2239, "S": 33, "V": 1, "F": 0, "Q": 0}))]
    pub beat_counts: Option<BTreeMap<String, usize>>,
    /// Percentage of beats that are S or V (ectopic beats); absent without a beat model.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 1.5)]
    pub ectopic_burden: Option<f64>,
}

/// Where the model looked in one segment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attention {
    /// Seconds per token; token `k` starts `k * token_s` after the segment start.
    #[schema(example = 0.0444)]
    pub token_s: f64,
    /// Attention each token receives (sums to 1).
    pub weights: Vec<f32>,
}

/// One model window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Segment {
    pub index: usize,
    #[schema(example = 0.0)]
    pub start_s: f64,
    #[schema(example = 10.0)]
    pub end_s: f64,
    #[schema(example = "Normal")]
    pub label: String,
    /// Probability of each label.
    pub probabilities: BTreeMap<String, f32>,
    pub attention: Attention,
}

/// One detected R peak, with its AAMI class when the beat model ran.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Beat {
    /// Sample index at the uploaded record's own sampling rate.
    #[schema(example = 77)]
    pub sample: usize,
    #[schema(example = 0.214)]
    pub time_s: f64,
    /// AAMI class: N (normal, bundle branch block), S (supraventricular ectopic),
    /// V (ventricular ectopic), F (fusion), Q (paced or unclassifiable).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "N")]
    pub label: Option<String>,
    /// Probability of each class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<BTreeMap<String, f32>>,
    /// Where the beat model looked (`include=beat_attention`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention: Option<BeatAttention>,
}

/// Attention over one beat's window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BeatAttention {
    /// Seconds of the window's first sample in the record (0.25 s before the peak).
    #[schema(example = -0.036)]
    pub start_s: f64,
    /// Seconds per token.
    #[schema(example = 0.0333)]
    pub token_s: f64,
    /// Attention each token receives (sums to 1).
    pub weights: Vec<f32>,
}

/// The upload's own annotations (part `atr`) against our beats.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reference {
    /// A detection matches a reference beat at most this far away (WFDB `bxb`).
    #[schema(example = 0.15)]
    pub match_window_s: f64,
    /// Reference beats scored (outside ventricular flutter episodes).
    #[schema(example = 2273)]
    pub reference_beats: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    /// Detection sensitivity TP / (TP + FN).
    #[schema(example = 1.0)]
    pub sensitivity: f64,
    /// Detection positive predictivity TP / (TP + FP).
    #[schema(example = 1.0)]
    pub positive_predictivity: f64,
    /// Matched beats: reference AAMI class (rows) against ours (columns), with
    /// Se, +P and F1 per class; absent without a beat model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<MultiReport>,
}

/// Time spent in each stage, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Timing {
    /// Reading the uploaded files.
    pub decode: f64,
    /// Filtering and the features of both models (R peaks not included).
    pub preprocess: f64,
    /// R-peak detection (before the rest: the segment model's rhythm features
    /// and the beat model's inputs need the beats).
    pub beats: f64,
    /// The segment model's wait for an engine.
    pub queue: f64,
    /// The segment model's inference: all windows, each batch z-scored just
    /// before ONNX Runtime runs it (about 1 % of this).
    pub inference: f64,
    /// The beat model's queue wait and inference (0 without a beat model); it
    /// runs at the same time as the segment model, on the same thread pool.
    pub beat_inference: f64,
    /// From the request's arrival to its answer (the upload's reading included).
    pub total: f64,
}

/// The filtered lead, decimated for plotting (`include=signal`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignalPlot {
    pub sampling_rate_hz: f64,
    /// Millivolts, band-passed as the model saw them.
    pub values: Vec<f32>,
}

/// The `/predict` answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PredictResponse {
    pub record: RecordInfo,
    pub model: ModelInfo,
    pub summary: Summary,
    pub segments: Vec<Segment>,
    pub beats: Vec<Beat>,
    pub timing_ms: Timing,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<SignalPlot>,
    /// The uploaded annotations compared with our beats (when a part `atr` came).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// The beat model that labelled the beats, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beat_model: Option<ModelInfo>,
    /// The recording's own annotations (EDF+ TALs: sleep stages, arousals,
    /// events marked by the device or a technician), as the file has them;
    /// absent when it has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

/// What the answer is built from: the record, the models' inputs (peaks,
/// window starts, the filtered lead; the tensors themselves have gone to the
/// engines), the upload's annotations and the warnings so far.
#[derive(Debug)]
pub struct Prepared {
    pub record: RecordInfo,
    pub inputs: ModelInputs,
    /// The upload's reference annotations (part `atr`), at the record's own rate.
    pub annotations: Option<Vec<Annotation>>,
    /// The recording's own annotations (EDF+), passed through.
    pub events: Vec<Event>,
    pub warnings: Vec<String>,
    /// Time spent decoding the upload.
    pub decode: std::time::Duration,
}

/// Largest plotting rate for `include=signal`.
pub const PLOT_RATE_HZ: f64 = 180.0;

/// A model's card and its outputs (for every window, or every beat).
#[derive(Clone, Copy)]
pub struct ModelAnswer<'a> {
    pub card: &'a ModelCard,
    pub outputs: &'a ModelOutputs,
}

/// Optional parts of the answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Include {
    pub signal: bool,
    pub beat_attention: bool,
}

pub(crate) fn model_info(card: &ModelCard) -> ModelInfo {
    ModelInfo {
        name: card.name.clone(),
        version: card.version.clone(),
        sha256: card.sha256.clone(),
    }
}

/// The beats at `peaks` (record rate `fs`), labelled by `beat` when it ran.
fn beats(
    peaks: &[usize],
    fs: f64,
    beat: Option<(ModelAnswer, &BeatModel)>,
    include: Include,
) -> Vec<Beat> {
    peaks
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let labelled = beat.filter(|(b, _)| i * b.outputs.classes < b.outputs.logits.len());
            let probs = labelled.map(|(b, _)| b.outputs.probabilities(i));
            let label = labelled.zip(probs.as_ref()).and_then(|((b, _), p)| {
                let k = (0..p.len()).max_by(|&x, &y| p[x].total_cmp(&p[y]))?;
                b.card.labels.get(k).cloned()
            });
            let attention = labelled
                .filter(|_| include.beat_attention)
                .and_then(|(b, kind)| {
                    let pre = &kind.preprocessing;
                    Some(BeatAttention {
                        start_s: s as f64 / fs
                            - pre.beat.before_samples as f64 / pre.sample_rate_hz,
                        token_s: b.card.attention.as_ref()?.token_s,
                        weights: b.outputs.attention_row(i).to_vec(),
                    })
                });
            Beat {
                sample: s,
                time_s: s as f64 / fs,
                probabilities: labelled
                    .zip(probs)
                    .map(|((b, _), p)| b.card.labels.iter().cloned().zip(p).collect()),
                label,
                attention,
            }
        })
        .collect()
}

/// Beats per class and the percentage that are S or V.
fn beat_counts(beats: &[Beat]) -> (BTreeMap<String, usize>, f64) {
    let mut counts: BTreeMap<String, usize> = AamiClass::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), 0))
        .collect();
    for label in beats.iter().filter_map(|b| b.label.as_ref()) {
        *counts.entry(label.clone()).or_default() += 1;
    }
    let ectopic = counts.get("S").copied().unwrap_or(0) + counts.get("V").copied().unwrap_or(0);
    let burden = 100.0 * ectopic as f64 / beats.len().max(1) as f64;
    (counts, burden)
}

/// Our beats against the upload's annotations: detection by bxb's 150 ms rule,
/// and for matched beats the reference class against ours.
pub fn reference(annotations: &[Annotation], beats: &[Beat], fs: f64) -> Reference {
    let peaks: Vec<usize> = beats.iter().map(|b| b.sample).collect();
    let window_s = 0.15;
    let (classes, comparison) = label_detections(&peaks, annotations, fs, window_s);
    let names: Vec<&str> = AamiClass::ALL.iter().map(|c| c.as_str()).collect();
    let labelled = beats.iter().any(|b| b.label.is_some());
    let classification = labelled.then(|| {
        let (mut truth, mut ours) = (Vec::new(), Vec::new());
        for (class, beat) in classes.iter().zip(beats) {
            let predicted = beat
                .label
                .as_deref()
                .and_then(|l| names.iter().position(|n| *n == l));
            if let (Some(c), Some(p)) = (class, predicted) {
                truth.push(c.index() as u8);
                ours.push(p as u8);
            }
        }
        MultiReport::new(&ours, &truth, &names)
    });
    let c = comparison.counts;
    Reference {
        match_window_s: window_s,
        reference_beats: c.true_positives + c.false_negatives,
        true_positives: c.true_positives,
        false_positives: c.false_positives,
        false_negatives: c.false_negatives,
        sensitivity: c.sensitivity(),
        positive_predictivity: c.positive_predictivity(),
        classification,
    }
}

/// One labelled segment per window start: the positive label at or above its
/// threshold, else the likeliest other label.
fn segments(
    card: &ModelCard,
    kind: &SegmentModel,
    outputs: &ModelOutputs,
    starts: &[usize],
) -> Vec<Segment> {
    let rate = kind.preprocessing.sample_rate_hz;
    let len = kind.preprocessing.window_samples as f64;
    let decision = &kind.decision;
    let positive = card
        .labels
        .iter()
        .position(|l| *l == decision.positive_label);
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let p = outputs.probabilities(i);
            let chosen = match positive {
                Some(k) if p[k] as f64 >= decision.threshold => k,
                _ => (0..p.len())
                    .filter(|&j| Some(j) != positive)
                    .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                    .unwrap_or(0),
            };
            Segment {
                index: i,
                start_s: start as f64 / rate,
                end_s: (start as f64 + len) / rate,
                label: card.labels[chosen].clone(),
                probabilities: card.labels.iter().cloned().zip(p).collect(),
                attention: Attention {
                    // A segment card without one is refused when it is read.
                    token_s: card.attention.as_ref().map_or(0.0, |a| a.token_s),
                    weights: outputs.attention_row(i).to_vec(),
                },
            }
        })
        .collect()
}

/// The answer for `prep` given the segment model's outputs and, when a beat
/// model ran, its outputs for `prep.inputs.peaks`. Fails only when a card is
/// not of the kind its place needs.
pub fn assemble(
    prep: Prepared,
    segment: ModelAnswer,
    beat: Option<ModelAnswer>,
    include: Include,
    timing: Timing,
) -> Result<PredictResponse, CardError> {
    let card = segment.card;
    let kind = card.segment()?;
    let beat = beat.map(|b| b.card.beat().map(|k| (b, k))).transpose()?;
    let inputs = prep.inputs.segment.unwrap_or_default();
    let rate = kind.preprocessing.sample_rate_hz;
    let signal = include.signal.then(|| {
        let step = (rate / PLOT_RATE_HZ).ceil().max(1.0) as usize;
        SignalPlot {
            sampling_rate_hz: rate / step as f64,
            values: inputs
                .filtered
                .iter()
                .step_by(step)
                .map(|&v| v as f32)
                .collect(),
        }
    });
    // The filtered lead (8 bytes a sample: 250 MB for 24 hours) goes before
    // the answer's beats and segments are made (the engines have let it go).
    let starts = inputs.starts;
    drop(inputs.filtered);
    let segments = segments(card, kind, segment.outputs, &starts);
    let decision = &kind.decision;
    let abnormal = segments
        .iter()
        .filter(|s| s.label == decision.positive_label)
        .count();
    let fs = prep.record.sampling_rate_hz;
    let peaks = &prep.inputs.peaks;
    let heart_rate_bpm = match (peaks.first(), peaks.last()) {
        (Some(&a), Some(&b)) if peaks.len() > 1 && b > a => {
            Some(60.0 * (peaks.len() - 1) as f64 / ((b - a) as f64 / fs))
        }
        _ => None,
    };
    let beats = beats(peaks, fs, beat, include);
    let counted = beat.map(|_| beat_counts(&beats));
    let summary = Summary {
        beat_counts: counted.as_ref().map(|c| c.0.clone()),
        ectopic_burden: counted.map(|c| c.1),
        label: if abnormal > 0 {
            decision.positive_label.clone()
        } else {
            card.labels.first().cloned().unwrap_or_default()
        },
        segments: segments.len(),
        abnormal_segments: abnormal,
        abnormal_fraction: abnormal as f64 / segments.len().max(1) as f64,
        heart_rate_bpm,
        beats: peaks.len(),
    };
    let mut warnings = prep.warnings;
    if let Some((b, _)) = beat.filter(|(b, _)| include.beat_attention && b.card.attention.is_none())
    {
        warnings.push(format!(
            "include=beat_attention: the beat model {} {} reads per-beat features and has no attention; beats carry none",
            b.card.name, b.card.version
        ));
    }
    Ok(PredictResponse {
        model: model_info(card),
        summary,
        segments,
        reference: prep.annotations.as_ref().map(|a| reference(a, &beats, fs)),
        events: prep.events,
        beat_model: beat.map(|(b, _)| model_info(b.card)),
        beats,
        record: prep.record,
        timing_ms: timing,
        warnings,
        signal,
    })
}
