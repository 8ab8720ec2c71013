//! HTTP handlers: parse the request, call the core, map the result. Nothing else.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::core::analysis::{
    assemble, prepare, BeatOutputs, Include, PredictResponse, PreparedRequest, Timing,
};
use crate::core::pool::{Admission, JobResult, Readiness};
use crate::core::upload::{decode, OutputFormat, PredictParams, UploadPart};
use crate::engine::EngineError;
use crate::model::{BeatInputs, ModelCard};
use crate::signal::qrs::detect_r_peaks;

/// The multipart form of `/predict` (file pickers in Swagger UI).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PredictUpload {
    /// WFDB header (.hea).
    #[schema(value_type = String, format = Binary, required = false)]
    hea: Option<Vec<u8>>,
    /// WFDB signal file (.dat), with its .hea or alone (layout in query parameters).
    #[schema(value_type = String, format = Binary, required = false)]
    dat: Option<Vec<u8>>,
    /// A CSV recording (one column per lead, optional time column).
    #[schema(value_type = String, format = Binary, required = false)]
    file: Option<Vec<u8>>,
    /// Reference annotations (.atr), optional.
    #[schema(value_type = String, format = Binary, required = false)]
    atr: Option<Vec<u8>>,
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

async fn read_parts(
    multipart: Result<Multipart, MultipartRejection>,
    limit_mb: usize,
) -> Result<Vec<UploadPart>, ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::Unsupported(format!(
            "the body must be multipart/form-data ({e}); send {}",
            crate::core::upload::ACCEPTED
        ))
    })?;
    let mut parts = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::TooLarge { limit_mb })
            }
            Err(e) => {
                return Err(ApiError::bad_request(
                    format!("malformed multipart body: {e}"),
                    "body",
                ))
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let bytes = match field.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::TooLarge { limit_mb })
            }
            Err(e) => {
                return Err(ApiError::bad_request(
                    format!("cannot read part `{name}`: {e}"),
                    &name,
                ))
            }
        };
        parts.push(UploadPart {
            field: name,
            file_name,
            content_type,
            bytes,
        });
    }
    Ok(parts)
}

/// Classify a recording.
///
/// Upload a WFDB pair (`hea` + `dat`), a `.dat` alone (layout in query parameters;
/// MIT-BIH defaults are reported in `warnings`), or a `.csv` (rate from `fs` or its
/// time column). Any sampling rate is resampled to the model's. The answer holds a
/// label, probabilities and attention weights per 10 s segment, and every detected
/// beat (at the upload's own sampling rate) with its AAMI class and probabilities,
/// beat counts and ectopic burden. Add a part `atr` (WFDB annotations) to get
/// `reference`: our detection and classification scored against it. `format=csv`
/// (or `Accept: text/csv`) answers with the beat table as CSV, `format=svg` with a
/// picture of `start_s`..`end_s` (default: the most abnormal segment).
#[utoipa::path(
    post,
    path = "/predict",
    tag = "inference",
    params(PredictParams),
    request_body(content = PredictUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Labels, probabilities, attention and labelled beats (JSON), the beat table (`format=csv`) or a picture (`format=svg`)", body = PredictResponse,
            content(
                (PredictResponse = "application/json"),
                (String = "text/csv", example = "sample,time_s,label,p_N,p_S,p_V,p_F,p_Q\n77,0.2139,N,0.5296,0.4695,0.0006,0.0003,0.0000\n"),
                (String = "image/svg+xml")
            )),
        (status = 400, description = "Malformed request (no file, duplicate parts, bad multipart)", body = ErrorBody,
            example = json!({"error": "no file in the upload; send a WFDB pair (.hea + .dat), a .dat alone (layout in query parameters), or a .csv; optionally a .atr", "error_type": "bad_request", "detail": {}})),
        (status = 401, description = "Missing or wrong API key (when one is configured)", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Not multipart, or a file type we do not read", body = ErrorBody),
        (status = 422, description = "Unreadable or invalid recording: which file, which field, what was expected", body = ErrorBody,
            example = json!({"error": "100.dat: file is shorter than the header says: 650000 samples x 2 signals in format 212 need 1950000 bytes, the file has 1000", "error_type": "invalid_signal", "detail": {"file": "100.dat"}})),
        (status = 429, description = "Inference queue full; retry", body = ErrorBody),
        (status = 503, description = "Model not ready, or the request timed out", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn predict(
    State(state): State<Arc<AppState>>,
    query: Result<Query<PredictParams>, QueryRejection>,
    request_headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let accept = request_headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let output = match query.as_ref().map(|Query(p)| p.output(accept)) {
        Ok(Err(e)) => {
            discard(multipart).await;
            return Err(ApiError::bad_request(e.to_string(), &e.field()));
        }
        Ok(Ok(o)) => o,
        Err(_) => OutputFormat::Json,
    };
    let (params, card, _admission) = match admit(&state, query) {
        Ok(admitted) => admitted,
        Err(e) => {
            // Read the upload to its end (without decoding it) before refusing:
            // answering mid-upload would reach the client as a connection reset.
            discard(multipart).await;
            return Err(e);
        }
    };
    let parts = read_parts(multipart, state.config.max_body_mb).await?;
    let timeout = std::time::Duration::from_secs(state.config.request_timeout_s);
    let include = Include {
        signal: params.includes("signal") || output == OutputFormat::Svg,
        beat_attention: params.includes("beat_attention"),
    };
    let work = async {
        let lead = params
            .lead
            .clone()
            .unwrap_or_else(|| card.preprocessing.lead.clone());
        let max_duration_s = state.config.max_duration_s;
        let card_for_prep = Arc::clone(&card);
        let params_for_prep = params.clone();
        let (mut prepared, decode_ms, preprocess_ms) =
            tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
                let t = Instant::now();
                let decoded = decode(&parts, &params_for_prep)?;
                let decode_ms = ms(t.elapsed());
                let t = Instant::now();
                let mut prepared = prepare(
                    decoded.recording,
                    decoded.source,
                    &lead,
                    &card_for_prep,
                    max_duration_s,
                    decoded.warnings,
                )?;
                prepared.annotations = decoded.annotations;
                Ok((prepared, decode_ms, ms(t.elapsed())))
            })
            .await
            .map_err(|e| ApiError::Internal(format!("preprocessing task failed: {e}")))??;
        metrics::histogram!("ecg_decode_seconds").record(decode_ms / 1e3);
        metrics::histogram!("ecg_preprocess_seconds").record(preprocess_ms / 1e3);
        let batch = prepared.starts.len();
        let samples = prepared.record.n_samples;
        let windows = std::mem::take(&mut prepared.windows);
        // Beats first (a few ms): a segment model with rhythm features needs them.
        let beat_card = state.beat_pool.as_ref().and_then(|p| p.card());
        let (beats_ms, beat_inputs) = find_beats(&mut prepared, &card, beat_card.clone()).await?;
        let features = card.preprocessing.window_features(
            &prepared.beats,
            prepared.record.sampling_rate_hz,
            &prepared.starts,
        );
        let reply = state.pool.submit(windows, features, batch)?;
        let beat_reply = match (&state.beat_pool, beat_inputs) {
            (Some(pool), Some(inputs)) if !prepared.beats.is_empty() => {
                Some(pool.submit(inputs.windows, inputs.features, prepared.beats.len())?)
            }
            _ => None,
        };
        let result = answer(reply).await?;
        let beat_result = match beat_reply {
            Some(r) => Some(answer(r).await?),
            None => None,
        };
        metrics::histogram!("ecg_beats_seconds").record(beats_ms / 1e3);
        metrics::histogram!("ecg_queue_seconds").record(result.queue_wait.as_secs_f64());
        metrics::histogram!("ecg_inference_seconds").record(result.inference.as_secs_f64());
        metrics::counter!("ecg_windows_total").increment(batch as u64);
        metrics::counter!("ecg_samples_total").increment(samples as u64);
        metrics::counter!("ecg_beats_total").increment(prepared.beats.len() as u64);
        let timing = Timing {
            decode: decode_ms,
            preprocess: preprocess_ms,
            beats: beats_ms,
            queue: ms(result.queue_wait),
            inference: ms(result.inference),
            beat_inference: beat_result
                .as_ref()
                .map_or(0.0, |r| ms(r.queue_wait + r.inference)),
            total: ms(started.elapsed()),
        };
        let beat = beat_result
            .as_ref()
            .zip(beat_card.as_deref())
            .map(|(r, card)| BeatOutputs {
                outputs: &r.outputs,
                card,
            });
        Ok::<_, ApiError>(assemble(
            prepared,
            &result.outputs,
            beat,
            &card,
            include,
            timing,
        ))
    };
    let response = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ApiError::Timeout(state.config.request_timeout_s))??;
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-inference-time", response.timing_ms.inference),
        ("x-queue-time", response.timing_ms.queue),
        ("x-total-time", ms(started.elapsed())),
    ] {
        if let Ok(v) = HeaderValue::from_str(&format!("{value:.3}")) {
            headers.insert(name, v);
        }
    }
    match output {
        OutputFormat::Json => Ok((headers, Json(response)).into_response()),
        OutputFormat::Csv => {
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            let body = crate::core::analysis::beats_csv(&response)
                .map_err(|e| ApiError::Internal(format!("cannot write the CSV answer: {e}")))?;
            Ok((headers, body).into_response())
        }
        OutputFormat::Svg => {
            let positive = &card.decision.positive_label;
            let (start_s, end_s) = svg_range(&params, &response, positive)?;
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            );
            let body = crate::core::render::svg(&response, start_s, end_s, positive);
            Ok((headers, body).into_response())
        }
    }
}

/// Longest range one picture shows.
const SVG_MAX_SPAN_S: f64 = 120.0;

/// The picture's range: `start_s`/`end_s`, else the most abnormal segment.
fn svg_range(
    params: &PredictParams,
    response: &PredictResponse,
    positive: &str,
) -> Result<(f64, f64), ApiError> {
    let duration = response.record.duration_s;
    let (start, end) = match (params.start_s, params.end_s) {
        (None, None) => crate::core::render::default_range(response, positive),
        (Some(s), None) => (s, s + 10.0),
        (None, Some(e)) => (e - 10.0, e),
        (Some(s), Some(e)) => (s, e),
    };
    let bad = |what: &str| {
        ApiError::bad_request(
            format!("{what}; the record lasts {duration:.1} s and one picture shows at most {SVG_MAX_SPAN_S} s"),
            "start_s",
        )
    };
    if !(start.is_finite() && end.is_finite()) || end <= start {
        return Err(bad(&format!(
            "start_s {start} must come before end_s {end}"
        )));
    }
    if end - start > SVG_MAX_SPAN_S {
        return Err(bad(&format!("the range {start}..{end} s is too long")));
    }
    if start >= duration || end <= 0.0 {
        return Err(bad(&format!(
            "the range {start}..{end} s lies outside the record"
        )));
    }
    Ok((start.max(0.0), end.min(duration)))
}

/// An engine's answer, or why there is none.
async fn answer(
    reply: tokio::sync::oneshot::Receiver<Result<JobResult, EngineError>>,
) -> Result<JobResult, ApiError> {
    Ok(reply
        .await
        .map_err(|_| ApiError::NotReady("the engine stopped before answering".into()))??)
}

/// Detects the R peaks of `prepared`'s lead (off the async threads) into
/// `prepared.beats` and, when a beat model is loaded, prepares its inputs from
/// the filtered lead (filtered again only if the beat model's band differs).
/// Returns the detection time in ms and the beat inputs.
async fn find_beats(
    prepared: &mut PreparedRequest,
    card: &ModelCard,
    beat_card: Option<Arc<ModelCard>>,
) -> Result<(f64, Option<BeatInputs>), ApiError> {
    let lead = std::mem::take(&mut prepared.lead);
    let filtered = std::mem::take(&mut prepared.filtered);
    let fs = prepared.record.sampling_rate_hz;
    let segment_prep = card.preprocessing.clone();
    let (peaks, filtered, beats_ms, inputs) = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let peaks = detect_r_peaks(&lead, fs);
        let beats_ms = ms(t.elapsed());
        let inputs = beat_card.map(|c| {
            let pre = &c.preprocessing;
            if pre.same_filter(&segment_prep) {
                Ok(pre.beat_inputs(&filtered, &peaks, fs))
            } else {
                pre.filter(&lead, fs)
                    .map(|own| pre.beat_inputs(&own, &peaks, fs))
            }
        });
        (peaks, filtered, beats_ms, inputs)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("beat detection task failed: {e}")))?;
    prepared.beats = peaks;
    prepared.filtered = filtered;
    let inputs = inputs
        .transpose()
        .map_err(crate::core::analysis::AnalysisError::from)?;
    Ok((beats_ms, inputs))
}

/// The checks before an upload is read: query, readiness, and a place in the
/// service (429 at once when `sessions + queue_size` requests are in it).
fn admit(
    state: &Arc<AppState>,
    query: Result<Query<PredictParams>, QueryRejection>,
) -> Result<(PredictParams, Arc<ModelCard>, Admission), ApiError> {
    let Query(params) = query?;
    params
        .check_include()
        .map_err(|e| ApiError::bad_request(e.to_string(), &e.field()))?;
    let card = state.pool.card().ok_or_else(|| match state.readiness() {
        Readiness::Failed(reason) => {
            ApiError::NotReady(format!("the model is not ready: {reason}"))
        }
        _ => ApiError::NotReady("the model is still loading".into()),
    })?;
    if !matches!(state.readiness(), Readiness::Ready { .. }) {
        return Err(ApiError::NotReady("the model is still loading".into()));
    }
    Ok((params, card, state.pool.admit()?))
}

/// Reads and drops the rest of an upload (the body limit still applies).
async fn discard(multipart: Result<Multipart, MultipartRejection>) {
    if let Ok(mut multipart) = multipart {
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    }
}

/// Any path we do not serve: a JSON 404 like every other error.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!(
        "no route {}; see /swagger-ui/ or /openapi.json for the API",
        uri.path()
    ))
}

/// A known path with a method it does not take: a JSON 405.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{method} is not allowed on {}; see /swagger-ui/ for the methods",
        uri.path()
    ))
}

/// The viewer page (one self-contained HTML file, embedded in the binary).
const VIEWER: &str = include_str!("viewer/index.html");

/// The ECG viewer: upload a recording, see the filtered trace, segment labels,
/// attention and labelled beats.
#[utoipa::path(get, path = "/", tag = "operations",
    responses((status = 200, description = "The viewer page", body = String, content_type = "text/html")))]
pub async fn viewer() -> axum::response::Html<&'static str> {
    axum::response::Html(VIEWER)
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "alive"}))))]
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

/// Readiness of `/health/ready`.
#[derive(Serialize, ToSchema)]
pub struct ReadyBody {
    #[schema(example = "ready")]
    pub status: String,
    /// Why the service is not ready, when it is not.
    pub reason: Option<String>,
    /// The execution provider in use, when ready.
    pub provider: Option<String>,
}

/// Readiness: 200 once the model is loaded and warmed up, else 503 with the reason.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, description = "Model loaded and warm", body = ReadyBody),
              (status = 503, description = "Loading, or failed (reason given)", body = ReadyBody)))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let (status, body) = match state.readiness() {
        Readiness::Ready { provider } => (
            StatusCode::OK,
            ReadyBody {
                status: "ready".into(),
                reason: None,
                provider: Some(provider.to_string()),
            },
        ),
        Readiness::Loading => (
            StatusCode::SERVICE_UNAVAILABLE,
            ReadyBody {
                status: "loading".into(),
                reason: Some("the model is loading".into()),
                provider: None,
            },
        ),
        Readiness::Failed(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ReadyBody {
                status: "failed".into(),
                reason: Some(r),
                provider: None,
            },
        ),
    };
    (status, Json(body)).into_response()
}

/// Service and model information: the model card, labels, rates, limits, version.
#[utoipa::path(get, path = "/info", tag = "operations",
    responses((status = 200, description = "Service, model card and limits", body = Object)))]
pub async fn info(State(state): State<Arc<AppState>>) -> Json<Value> {
    let c = &state.config;
    let card = state.pool.card();
    Json(json!({
        "service": { "name": "ecg-serve", "version": env!("CARGO_PKG_VERSION"), "git_sha": env!("ECG_GIT_SHA") },
        "readiness": format!("{:?}", state.readiness()),
        "model": card.as_deref(),
        "labels": card.as_ref().map(|c| c.labels.clone()),
        "model_rate_hz": card.as_ref().map(|c| c.preprocessing.sample_rate_hz),
        "limits": {
            "max_body_bytes": c.max_body_mb * 1024 * 1024,
            "max_duration_s": c.max_duration_s,
            "queue_size": c.queue_size,
            "sessions": c.sessions,
            "intra_threads": c.threads_per_session(),
            "max_batch": c.windows_per_run(),
            "request_timeout_s": c.request_timeout_s,
        },
        "accepted_inputs": crate::core::upload::ACCEPTED,
        "auth": if c.api_key.is_some() { "bearer" } else { "none" },
    }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    metrics::gauge!("ecg_queue_depth").set(state.pool.queue_depth() as f64);
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}
