//! The answer's formats other than JSON: the beat table as CSV and the SVG
//! picture of a time range ([`super::svg`]), chosen by `format` or `Accept`;
//! heartbeat rows' labels as JSON or CSV.

use std::time::Instant;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::params::{OutputFormat, PredictParams};
use crate::model::ModelCard;
use crate::service::heartbeats::rows_csv;
use crate::service::pipeline::ms;
use crate::service::{Analysis, HeartbeatResponse, PredictResponse};
use crate::signal::AamiClass;

/// The answer in `output`, with the timing headers.
pub fn respond(
    analysis: Analysis,
    output: (OutputFormat, &PredictParams),
    card: &ModelCard,
    received: Instant,
) -> Result<Response, ApiError> {
    match analysis {
        Analysis::Recording(r) => respond_recording(*r, output, card, received),
        Analysis::Heartbeats(h) => respond_rows(h, output.0, received),
    }
}

/// Heartbeat rows' labels as JSON or CSV (a picture needs a recording).
fn respond_rows(
    response: HeartbeatResponse,
    output: OutputFormat,
    received: Instant,
) -> Result<Response, ApiError> {
    let t = &response.timing_ms;
    let mut headers = timing_headers((t.inference, t.queue), received);
    match output {
        OutputFormat::Json => Ok((headers, Json(response)).into_response()),
        OutputFormat::Csv => {
            let body = rows_csv(&response)
                .map_err(|e| ApiError::Internal(format!("cannot write the CSV answer: {e}")))?;
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            Ok((headers, body).into_response())
        }
        OutputFormat::Svg => Err(ApiError::bad_request(
            "format=svg draws a recording; heartbeat rows are answered as json or csv",
            "format",
        )),
    }
}

/// A recording's answer in `output`, with the timing headers; `params` give an
/// SVG its range, and the picture shades the segment model's (`card`) positive label.
fn respond_recording(
    response: PredictResponse,
    (output, params): (OutputFormat, &PredictParams),
    card: &ModelCard,
    received: Instant,
) -> Result<Response, ApiError> {
    let t = &response.timing_ms;
    let mut headers = timing_headers((t.inference, t.queue), received);
    let kind = card
        .segment()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let positive = kind.decision.positive_label.as_str();
    let (content_type, body) = match output {
        OutputFormat::Json => return Ok((headers, Json(response)).into_response()),
        OutputFormat::Csv => (
            "text/csv; charset=utf-8",
            beats_csv(&response)
                .map_err(|e| ApiError::Internal(format!("cannot write the CSV answer: {e}")))?,
        ),
        OutputFormat::Svg => {
            let (start_s, end_s) = svg_range(params, &response, positive)?;
            (
                "image/svg+xml",
                super::svg::svg(&response, start_s, end_s, positive),
            )
        }
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok((headers, body).into_response())
}

/// `x-inference-time`, `x-queue-time` and `x-total-time`, in ms.
fn timing_headers((inference, queue): (f64, f64), received: Instant) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-inference-time", inference),
        ("x-queue-time", queue),
        ("x-total-time", ms(received.elapsed())),
    ] {
        if let Ok(v) = HeaderValue::from_str(&format!("{value:.3}")) {
            headers.insert(name, v);
        }
    }
    headers
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
        (None, None) => super::svg::default_range(response, positive),
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

/// The beat table of `response` as CSV: `sample,time_s` and, when the beat
/// model ran, `label` and one `p_<class>` column per class.
pub fn beats_csv(response: &PredictResponse) -> Result<String, csv::Error> {
    let classes: Vec<String> = response
        .beats
        .iter()
        .find_map(|b| b.probabilities.as_ref())
        .map(|p| {
            // AAMI order (N, S, V, F, Q) first, any other label after.
            let mut keys: Vec<String> = p.keys().cloned().collect();
            keys.sort_by_key(|k| {
                AamiClass::ALL
                    .iter()
                    .position(|c| c.as_str() == k)
                    .unwrap_or(usize::MAX)
            });
            keys
        })
        .unwrap_or_default();
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["sample".to_string(), "time_s".to_string()];
    if !classes.is_empty() {
        header.push("label".into());
        header.extend(classes.iter().map(|c| format!("p_{c}")));
    }
    out.write_record(&header)?;
    for b in &response.beats {
        let mut row = vec![b.sample.to_string(), format!("{:.4}", b.time_s)];
        if !classes.is_empty() {
            row.push(b.label.clone().unwrap_or_default());
            row.extend(classes.iter().map(|c| {
                b.probabilities
                    .as_ref()
                    .and_then(|p| p.get(c))
                    .map_or(String::new(), |v| format!("{v:.4}"))
            }));
        }
        out.write_record(&row)?;
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
