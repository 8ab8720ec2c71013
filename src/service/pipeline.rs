//! One call from an upload's files to the answer: [`Analyser::analyse`].
//!
//! The order of the work lives here and nowhere else:
//! 1. on one blocking thread: decode the files (the upload's bytes are freed
//!    then), check the duration, and build both models' inputs with
//!    [`model_inputs_owned`] (lead, R peaks, filter in place, rhythm and RR
//!    features: the trainer's `model_inputs` on a recording given up);
//! 2. the segment model is queued on its engine pool as soon as its inputs
//!    exist, and runs while the beat model's features are computed; then the
//!    beat model is queued (both share the process's one ONNX Runtime thread
//!    pool, and each engine makes a batch's tensor only when it runs it);
//! 3. assemble the answer from both outputs ([`assemble`]).
//!
//! An upload of heartbeat rows (one CSV of 187 or 188 numbers per row,
//! [`super::heartbeats`]) is not a recording: its rows go to the heartbeat
//! model as they are, and the answer is one label per row.
//!
//! Admission (a place in the service before the upload is read) and the
//! request timeout stay with the caller, which knows when a request arrived.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::answer::{
    assemble, Include, ModelAnswer, PredictResponse, Prepared, RecordInfo, Timing,
};
use super::heartbeats::{self, rows_part, HeartbeatResponse, HeartbeatRows, HeartbeatTiming};
use super::pool::{EnginePool, JobResult, PoolError, Readiness};
use crate::engine::EngineError;
use crate::model::card::CardError;
use crate::model::{model_inputs_owned, LeadRequest, ModelCard, Models, SegmentInputs};
use crate::signal::heartbeat::LENGTH as HEARTBEAT_LENGTH;
use crate::signal::upload::{decode, ReadRequest, UploadError, UploadPart};
use crate::signal::SignalError;

/// Why a recording could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error("the recording lasts {duration_s:.2} s; at least {needed_s:.1} s (one model window) is needed")]
    TooShort { duration_s: f64, needed_s: f64 },
    #[error("the recording lasts {duration_s:.0} s; the limit is {limit_s:.0} s")]
    TooLong { duration_s: f64, limit_s: f64 },
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A card not of the kind its place needs (the pools refuse those at load).
    #[error(transparent)]
    Card(#[from] CardError),
    /// Heartbeat rows came, and no heartbeat model is served.
    #[error("the upload is heartbeat rows (187 values per row, the Kaggle mitbih_*.csv layout); this server has no heartbeat model (--heartbeat-model none): send a recording (WFDB, EDF or a CSV of leads), or start it with --heartbeat-model ecg-heartbeat")]
    NoHeartbeatModel,
    #[error("{0}")]
    Internal(String),
}

/// One recording to analyse.
#[derive(Debug, Clone)]
pub struct AnalysisRequest {
    /// The uploaded files.
    pub parts: Vec<UploadPart>,
    /// How to read them.
    pub read: ReadRequest,
    /// The lead to analyse (default: the segment model's).
    pub lead: Option<String>,
    pub include: Include,
    /// Warnings from the caller (e.g. an old parameter spelling), first in the answer's.
    pub warnings: Vec<String>,
    /// When the request arrived (`timing_ms.total` counts from here).
    pub received: Instant,
}

/// Runs the analysis on the models of its pools.
pub struct Analyser {
    /// The segment model's engines.
    pub segment: Arc<EnginePool>,
    /// The beat model's engines, if one is served.
    pub beat: Option<Arc<EnginePool>>,
    /// The heartbeat model's engines (uploads of heartbeat rows), if one is served.
    pub heartbeat: Option<Arc<EnginePool>>,
    /// Longest recording accepted, in seconds.
    pub max_duration_s: f64,
}

/// What an analysis answers (`/predict`'s JSON is one or the other).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Analysis {
    /// A recording's labels, segments and beats.
    Recording(Box<PredictResponse>),
    /// Heartbeat rows' labels.
    Heartbeats(HeartbeatResponse),
}

/// Milliseconds, to the microsecond (the unit of [`Timing`]).
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Analyser {
    /// Ready when every model is; otherwise the first that is not, named.
    pub fn readiness(&self) -> Readiness {
        match (
            self.segment.readiness(),
            self.beat.as_ref().map(|p| p.readiness()),
        ) {
            (Readiness::Ready { .. }, Some(Readiness::Failed(reason))) => {
                Readiness::Failed(format!("beat model: {reason}"))
            }
            (Readiness::Ready { .. }, Some(Readiness::Loading)) => Readiness::Loading,
            (segment, _) => segment,
        }
    }

    /// The card of the segment model (once loaded).
    pub fn card(&self) -> Option<Arc<ModelCard>> {
        self.segment.card()
    }

    /// Analyses one upload: a recording (decode, inputs, both models, the
    /// answer) or heartbeat rows (the heartbeat model, one label per row).
    pub async fn analyse(&self, request: AnalysisRequest) -> Result<Analysis, ServiceError> {
        if rows_part(&request.parts).is_some() {
            return self.label_rows(request).await.map(Analysis::Heartbeats);
        }
        self.analyse_recording(request)
            .await
            .map(|r| Analysis::Recording(Box::new(r)))
    }

    /// Heartbeat rows through the heartbeat model.
    async fn label_rows(
        &self,
        request: AnalysisRequest,
    ) -> Result<HeartbeatResponse, ServiceError> {
        let pool = self
            .heartbeat
            .as_ref()
            .ok_or(ServiceError::NoHeartbeatModel)?;
        let card = pool.card().ok_or_else(|| {
            PoolError::NotReady(match pool.readiness() {
                Readiness::Failed(reason) => format!("heartbeat model: {reason}"),
                _ => "the heartbeat model is still loading".into(),
            })
        })?;
        let expected = card.heartbeat()?.preprocessing.samples;
        if expected != HEARTBEAT_LENGTH {
            return Err(ServiceError::Internal(format!(
                "{} {} reads rows of {expected} values, the heartbeat format has {HEARTBEAT_LENGTH}",
                card.name, card.version
            )));
        }
        let mut warnings = request.warnings;
        for (given, name) in [
            (request.read.fs.is_some(), "fs"),
            (request.lead.is_some(), "lead"),
        ] {
            if given {
                warnings.push(format!(
                    "{name} ignored: heartbeat rows are one beat each at 125 Hz, read as they are"
                ));
            }
        }
        let (received, parts) = (request.received, request.parts);
        let started = Instant::now();
        let table = tokio::task::spawn_blocking(move || {
            let part = rows_part(&parts)
                .ok_or_else(|| ServiceError::Internal("the heartbeat rows went missing".into()))?;
            Ok::<_, ServiceError>(heartbeats::read(part)?)
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("the analysis task failed: {e}")))??;
        let decode = started.elapsed();
        let labels = table.labels;
        let result = answer(pool.submit(Box::new(HeartbeatRows(table.values)))?).await?;
        let timing = HeartbeatTiming {
            decode: ms(decode),
            queue: ms(result.queue_wait),
            inference: ms(result.inference),
            total: ms(received.elapsed()),
        };
        let mut response = heartbeats::assemble(&card, &result.outputs, labels.as_deref(), timing);
        response.warnings = warnings;
        Ok(response)
    }

    /// Analyses one recording: decode, inputs, both models, the answer.
    async fn analyse_recording(
        &self,
        request: AnalysisRequest,
    ) -> Result<PredictResponse, ServiceError> {
        let not_ready = || PoolError::NotReady("the model is still loading".into());
        let card = self.segment.card().ok_or_else(not_ready)?;
        let beat_card = match &self.beat {
            Some(pool) => Some(pool.card().ok_or_else(not_ready)?),
            None => None,
        };
        let include = request.include;
        let received = request.received;
        let (segment_card, beat_for_inputs) = (Arc::clone(&card), beat_card.clone());
        let max_duration_s = self.max_duration_s;
        let segment_pool = Arc::clone(&self.segment);
        let (mut prepared, early) = tokio::task::spawn_blocking(move || {
            // The segment model starts as soon as its inputs exist; the beat
            // model's are made while it runs. The engines read the rows a
            // batch at a time (the segment inputs are shared, not copied).
            let mut early = None;
            let mut start = |s: &SegmentInputs| {
                early = Some(segment_pool.submit(Box::new(s.clone())));
            };
            let prepared = prepare_with(
                request,
                &segment_card,
                beat_for_inputs.as_deref(),
                max_duration_s,
                &mut start,
            );
            prepared.map(|p| (p, early))
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("the analysis task failed: {e}")))??;
        let inputs = &mut prepared.inputs;
        // `prepare` always asks for the segment model's inputs.
        let reply = early.ok_or_else(|| {
            ServiceError::Internal("the segment model's inputs were not made".into())
        })??;
        let beat_reply = match (&self.beat, inputs.beat.take()) {
            (Some(pool), Some(b)) if !inputs.peaks.is_empty() => Some(pool.submit(Box::new(b))?),
            _ => None,
        };
        let result = answer(reply).await?;
        let beat_result = match beat_reply {
            Some(r) => Some(answer(r).await?),
            None => None,
        };
        let timing = Timing {
            decode: ms(prepared.decode),
            preprocess: ms(inputs.spent.inputs),
            beats: ms(inputs.spent.peaks),
            queue: ms(result.queue_wait),
            inference: ms(result.inference),
            beat_inference: beat_result
                .as_ref()
                .map_or(0.0, |r| ms(r.queue_wait + r.inference)),
            total: ms(received.elapsed()),
        };
        record_metrics(&prepared, &result, &timing);
        let segment = ModelAnswer {
            card: &card,
            outputs: &result.outputs,
        };
        let beat = beat_result
            .as_ref()
            .zip(beat_card.as_deref())
            .map(|(r, card)| ModelAnswer {
                card,
                outputs: &r.outputs,
            });
        Ok(assemble(prepared, segment, beat, include, timing)?)
    }
}

/// The blocking stage: decode, check, build both models' inputs (public so
/// that `tests/inputs.rs` can compare the server's tensors with the trainer's).
pub fn prepare(
    request: AnalysisRequest,
    card: &ModelCard,
    beat_card: Option<&ModelCard>,
    max_duration_s: f64,
) -> Result<Prepared, ServiceError> {
    prepare_with(request, card, beat_card, max_duration_s, &mut |_| {})
}

/// [`prepare`], calling `segment_ready` with the segment model's inputs as
/// soon as they exist (before the beat model's are made).
fn prepare_with(
    mut request: AnalysisRequest,
    card: &ModelCard,
    beat_card: Option<&ModelCard>,
    max_duration_s: f64,
    segment_ready: &mut dyn FnMut(&SegmentInputs),
) -> Result<Prepared, ServiceError> {
    let t = Instant::now();
    let decoded = decode(&request.parts, &request.read)?;
    let decode_time = t.elapsed();
    // The upload is read: its bytes go before the big buffers come.
    drop(std::mem::take(&mut request.parts));
    let segment = card.segment()?;
    let beat = beat_card.map(|c| c.beat()).transpose()?;
    let pre = &segment.preprocessing;
    let rec = &decoded.recording;
    let duration_s = rec.duration_s();
    if duration_s > max_duration_s {
        return Err(ServiceError::TooLong {
            duration_s,
            limit_s: max_duration_s,
        });
    }
    let needed_s = pre.window_s();
    if duration_s < needed_s {
        return Err(ServiceError::TooShort {
            duration_s,
            needed_s,
        });
    }
    let lead = LeadRequest {
        name: request.lead.as_deref().unwrap_or(&pre.lead),
        fallback: true,
    };
    let models = Models {
        segment: Some(pre),
        beat: beat.map(|b| &b.preprocessing),
    };
    let mut record = RecordInfo {
        name: rec.name.clone(),
        lead: String::new(),
        source: decoded.source.to_string(),
        sampling_rate_hz: rec.sampling_rate,
        model_rate_hz: pre.sample_rate_hz,
        n_samples: rec.n_samples(),
        duration_s,
        leads: rec.leads.iter().map(|l| l.name.clone()).collect(),
    };
    let inputs = model_inputs_owned(decoded.recording, lead, models, segment_ready)?;
    record.lead = record.leads[inputs.lead.index].clone();
    let mut warnings = request.warnings;
    warnings.extend(decoded.warnings);
    warnings.extend(inputs.lead.fallback_warning.clone());
    if record.sampling_rate_hz != pre.sample_rate_hz {
        warnings.push(format!(
            "resampled from {} Hz to the model's {} Hz",
            record.sampling_rate_hz, pre.sample_rate_hz
        ));
    }
    Ok(Prepared {
        record,
        inputs,
        annotations: decoded.annotations,
        events: decoded.events,
        warnings,
        decode: decode_time,
    })
}

/// An engine's answer, or why there is none.
async fn answer(
    reply: oneshot::Receiver<Result<JobResult, EngineError>>,
) -> Result<JobResult, ServiceError> {
    Ok(reply.await.map_err(|_| PoolError::Stopped)??)
}

fn record_metrics(prepared: &Prepared, result: &JobResult, timing: &Timing) {
    metrics::histogram!("ecg_decode_seconds").record(timing.decode / 1e3);
    metrics::histogram!("ecg_preprocess_seconds").record(timing.preprocess / 1e3);
    metrics::histogram!("ecg_beats_seconds").record(timing.beats / 1e3);
    metrics::histogram!("ecg_queue_seconds").record(result.queue_wait.as_secs_f64());
    metrics::histogram!("ecg_inference_seconds").record(result.inference.as_secs_f64());
    let windows = prepared
        .inputs
        .segment
        .as_ref()
        .map_or(0, |s| s.starts.len());
    metrics::counter!("ecg_windows_total").increment(windows as u64);
    metrics::counter!("ecg_samples_total").increment(prepared.record.n_samples as u64);
    metrics::counter!("ecg_beats_total").increment(prepared.inputs.peaks.len() as u64);
}
