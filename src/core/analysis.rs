//! From a decoded recording to the `/predict` answer.
//!
//! [`prepare`] (CPU work, run off the async threads) picks the lead, detects the
//! beats at the upload's own rate and prepares model windows with the card's
//! preprocessing. [`assemble`] turns model outputs into the documented response.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::engine::ModelOutputs;
use crate::model::ModelCard;
use crate::signal::{Recording, SignalError};

/// Why a recording cannot be analysed.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error("the recording lasts {duration_s:.2} s; at least {needed_s:.1} s (one model window) is needed")]
    TooShort { duration_s: f64, needed_s: f64 },
    #[error("the recording lasts {duration_s:.0} s; the limit is {limit_s:.0} s")]
    TooLong { duration_s: f64, limit_s: f64 },
}

/// The record as received.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordInfo {
    #[schema(example = "100")]
    pub name: String,
    #[schema(example = "MLII")]
    pub lead: String,
    /// `wfdb`, `dat` or `csv`.
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
#[derive(Debug, Clone, Serialize, ToSchema)]
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

/// One detected R peak.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Beat {
    /// Sample index at the uploaded record's own sampling rate.
    #[schema(example = 77)]
    pub sample: usize,
    #[schema(example = 0.214)]
    pub time_s: f64,
}

/// Time spent in each stage, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Timing {
    pub decode: f64,
    pub preprocess: f64,
    /// R-peak detection; it runs while the model runs, so it adds little to `total`.
    pub beats: f64,
    pub queue: f64,
    pub inference: f64,
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
}

/// A recording made ready for the model.
#[derive(Debug)]
pub struct PreparedRequest {
    pub record: RecordInfo,
    /// The chosen lead at its own rate, for [`detect_r_peaks`](crate::signal::qrs::detect_r_peaks) (taken by it).
    pub lead: Vec<f64>,
    /// R peaks at the record's own rate; empty until [`detect_r_peaks`](crate::signal::qrs::detect_r_peaks) fills it.
    pub beats: Vec<usize>,
    pub windows: Vec<f32>,
    pub starts: Vec<usize>,
    pub filtered: Vec<f64>,
    pub warnings: Vec<String>,
}

/// Largest plotting rate for `include=signal`.
pub const PLOT_RATE_HZ: f64 = 90.0;

/// Picks the lead and prepares the card's windows; beats come separately from
/// [`detect_r_peaks`](crate::signal::qrs::detect_r_peaks), so that they can be found while the model runs.
pub fn prepare(
    mut rec: Recording,
    source: &str,
    lead: &str,
    card: &ModelCard,
    max_duration_s: f64,
    mut warnings: Vec<String>,
) -> Result<PreparedRequest, AnalysisError> {
    let pre = &card.preprocessing;
    let duration_s = rec.duration_s();
    if duration_s > max_duration_s {
        return Err(AnalysisError::TooLong {
            duration_s,
            limit_s: max_duration_s,
        });
    }
    let needed_s = pre.window_samples as f64 / pre.sample_rate_hz;
    if duration_s < needed_s {
        return Err(AnalysisError::TooShort {
            duration_s,
            needed_s,
        });
    }
    let choice = rec.select_lead(lead, true)?;
    warnings.extend(choice.fallback_warning);
    let x = &rec.leads[choice.index].samples;
    if rec.sampling_rate != pre.sample_rate_hz {
        warnings.push(format!(
            "resampled from {} Hz to the model's {} Hz",
            rec.sampling_rate, pre.sample_rate_hz
        ));
    }
    let prepared = pre.prepare(x, rec.sampling_rate)?;
    let record = RecordInfo {
        name: rec.name.clone(),
        lead: rec.leads[choice.index].name.clone(),
        source: source.to_string(),
        sampling_rate_hz: rec.sampling_rate,
        model_rate_hz: pre.sample_rate_hz,
        n_samples: rec.n_samples(),
        duration_s,
        leads: rec.leads.iter().map(|l| l.name.clone()).collect(),
    };
    Ok(PreparedRequest {
        record,
        lead: std::mem::take(&mut rec.leads[choice.index].samples),
        beats: Vec::new(),
        windows: prepared.windows,
        starts: prepared.starts,
        filtered: prepared.filtered,
        warnings,
    })
}

/// The response for `prep` given the model's `outputs`.
pub fn assemble(
    prep: PreparedRequest,
    outputs: &ModelOutputs,
    card: &ModelCard,
    include_signal: bool,
    timing: Timing,
) -> PredictResponse {
    let rate = card.preprocessing.sample_rate_hz;
    let len = card.preprocessing.window_samples as f64;
    let positive = card
        .labels
        .iter()
        .position(|l| *l == card.decision.positive_label);
    let segments: Vec<Segment> = prep
        .starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let p = outputs.probabilities(i);
            // The positive label at or above its threshold, else the likeliest other label.
            let chosen = match positive {
                Some(k) if p[k] as f64 >= card.decision.threshold => k,
                _ => (0..p.len())
                    .filter(|&j| Some(j) != positive)
                    .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                    .unwrap_or(0),
            };
            let label = card.labels[chosen].clone();
            Segment {
                index: i,
                start_s: start as f64 / rate,
                end_s: (start as f64 + len) / rate,
                label,
                probabilities: card.labels.iter().cloned().zip(p).collect(),
                attention: Attention {
                    token_s: card.attention.token_s,
                    weights: outputs.attention_row(i).to_vec(),
                },
            }
        })
        .collect();
    let abnormal = segments
        .iter()
        .filter(|s| Some(&s.label) == positive.map(|k| &card.labels[k]))
        .count();
    let fs = prep.record.sampling_rate_hz;
    let heart_rate_bpm = match (prep.beats.first(), prep.beats.last()) {
        (Some(&a), Some(&b)) if prep.beats.len() > 1 && b > a => {
            Some(60.0 * (prep.beats.len() - 1) as f64 / ((b - a) as f64 / fs))
        }
        _ => None,
    };
    let summary = Summary {
        label: if abnormal > 0 {
            card.decision.positive_label.clone()
        } else {
            card.labels.first().cloned().unwrap_or_default()
        },
        segments: segments.len(),
        abnormal_segments: abnormal,
        abnormal_fraction: abnormal as f64 / segments.len().max(1) as f64,
        heart_rate_bpm,
        beats: prep.beats.len(),
    };
    let signal = include_signal.then(|| {
        let step = (rate / PLOT_RATE_HZ).ceil().max(1.0) as usize;
        SignalPlot {
            sampling_rate_hz: rate / step as f64,
            values: prep
                .filtered
                .iter()
                .step_by(step)
                .map(|&v| v as f32)
                .collect(),
        }
    });
    PredictResponse {
        model: ModelInfo {
            name: card.name.clone(),
            version: card.version.clone(),
            sha256: card.sha256.clone(),
        },
        summary,
        segments,
        beats: prep
            .beats
            .iter()
            .map(|&s| Beat {
                sample: s,
                time_s: s as f64 / fs,
            })
            .collect(),
        record: prep.record,
        timing_ms: timing,
        warnings: prep.warnings,
        signal,
    }
}
