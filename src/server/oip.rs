//! The Open Inference Protocol v2 (KServe v2 / Triton), REST, beside our API:
//! server and model metadata, health, and `infer` on the served models'
//! tensors, so that the protocol's clients, gateways and dashboards can call
//! the models without `/predict`'s signal pipeline.
//!
//! The models are named as their cards (`ecg-segment`, `ecg-beat`,
//! `ecg-heartbeat`), at their cards' versions. Their inputs and outputs are
//! the ONNX model's: the segment model takes `signal` `[-1, 1, 3600]`
//! (z-scored 10 s windows at the model rate) and `features` `[-1, 6]`; the
//! beat model `features` `[-1, 80]`; the heartbeat model `signal`
//! `[-1, 1, 187]` (heartbeat rows); all answer `logits`, the segment model
//! also `attention`. Tensors are FP32,
//! any batch, in JSON (`data`, flat or nested, row-major) or in the binary
//! tensor extension (`Inference-Header-Content-Length`, `binary_data_size`,
//! `binary_data` / `binary_data_output`), which `tritonclient` uses by default.
//! Inference runs on the same engine pools as `/predict` (same queue, same
//! thread pool); errors are `{"error": "..."}` (with our `error_type` and
//! `detail` beside it) and their status comes from [`ApiError`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::AppState;
use crate::model::{BeatInputs, ModelCard};
use crate::service::{EnginePool, Readiness};

/// The header that says how many bytes of the body are JSON (binary extension).
const HEADER_LENGTH: &str = "inference-header-content-length";

/// A tensor's name and shape (`-1`: any size).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

fn tensor(name: &str, shape: Vec<i64>) -> TensorMetadata {
    TensorMetadata {
        name: name.to_string(),
        datatype: "FP32",
        shape,
    }
}

/// The ONNX model's inputs, as its card describes them.
pub fn inputs_of(card: &ModelCard) -> Vec<TensorMetadata> {
    let width = card.kind.feature_width() as i64;
    if card.input.name == "features" {
        return vec![tensor("features", vec![-1, width])];
    }
    let [channels, samples] = card.kind.input_shape();
    let mut inputs = vec![tensor(
        &card.input.name,
        vec![-1, channels as i64, samples as i64],
    )];
    if width > 0 {
        inputs.push(tensor("features", vec![-1, width]));
    }
    inputs
}

/// The ONNX model's outputs, as its card names them.
pub fn outputs_of(card: &ModelCard) -> Vec<TensorMetadata> {
    card.outputs
        .iter()
        .map(|o| tensor(&o.name, o.shape.clone()))
        .collect()
}

/// The served model named `name` (at `version`, when one is given).
fn model(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<(Arc<EnginePool>, Arc<ModelCard>), ApiError> {
    let pools = std::iter::once(&state.analyser.segment)
        .chain(state.analyser.beat.as_ref())
        .chain(state.analyser.heartbeat.as_ref());
    let mut names = Vec::new();
    for pool in pools {
        let Some(card) = pool.card() else { continue };
        if card.name == name {
            if let Some(v) = version.filter(|v| *v != card.version) {
                return Err(ApiError::NotFound(format!(
                    "model `{name}` has no version `{v}`; served: {}",
                    card.version
                )));
            }
            return Ok((Arc::clone(pool), card));
        }
        names.push(card.name.clone());
    }
    Err(ApiError::NotFound(format!(
        "no model `{name}`; served: {}",
        if names.is_empty() {
            "none yet (loading)".to_string()
        } else {
            names.join(", ")
        }
    )))
}

/// `GET /v2`: the server's metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "ecg-serve",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

/// `GET /v2/health/live`.
pub async fn live() -> StatusCode {
    StatusCode::OK
}

/// `GET /v2/health/ready`: 200 when every model is ready, else a 4xx (the
/// protocol's "false") with the reason.
pub async fn ready(State(state): State<Arc<AppState>>) -> Result<StatusCode, ApiError> {
    ready_or(state.readiness())
}

fn ready_or(readiness: Readiness) -> Result<StatusCode, ApiError> {
    match readiness {
        Readiness::Ready { .. } => Ok(StatusCode::OK),
        Readiness::Loading => Err(ApiError::NotReadyProbe("the models are loading".into())),
        Readiness::Failed(reason) => Err(ApiError::NotReadyProbe(reason)),
    }
}

/// `GET /v2/models/{name}[/versions/{version}]`: the model's metadata.
pub async fn model_metadata(
    State(state): State<Arc<AppState>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, ApiError> {
    let (_, card) = model(&state, &path.name, path.version.as_deref())?;
    Ok(Json(json!({
        "name": card.name,
        "versions": [card.version],
        "platform": "onnxruntime_onnx",
        "inputs": inputs_of(&card),
        "outputs": outputs_of(&card),
    })))
}

/// `GET /v2/models/{name}[/versions/{version}]/ready`.
pub async fn model_ready(
    State(state): State<Arc<AppState>>,
    Path(path): Path<ModelPath>,
) -> Result<StatusCode, ApiError> {
    let (pool, _) = model(&state, &path.name, path.version.as_deref())?;
    ready_or(pool.readiness())
}

/// A model's path: its name and, optionally, its version.
#[derive(Debug, Deserialize)]
pub struct ModelPath {
    name: String,
    version: Option<String>,
}

/// One input of an inference request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    data: Option<Value>,
}

/// An output the request asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// An inference request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InferRequest {
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<RequestInput>,
    outputs: Option<Vec<RequestOutput>>,
}

fn bad(message: impl Into<String>, field: &str) -> ApiError {
    ApiError::bad_request(message, field)
}

fn flag(parameters: &Map<String, Value>, name: &str) -> bool {
    parameters.get(name).and_then(Value::as_bool) == Some(true)
}

/// `data`, flat or nested, as f32 values.
fn flatten(value: &Value, out: &mut Vec<f32>, field: &str) -> Result<(), ApiError> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| flatten(v, out, field)),
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or(f64::NAN) as f32;
            if !v.is_finite() {
                return Err(bad(
                    format!("{field}: {n} is not a finite FP32 value"),
                    field,
                ));
            }
            out.push(v);
            Ok(())
        }
        other => Err(bad(
            format!("{field}: `{other}` is not a number (FP32 tensors hold numbers)"),
            field,
        )),
    }
}

/// The input tensors of a request, checked against the model's inputs:
/// their values in the model's order, and the batch.
fn input_tensors(
    request: &[RequestInput],
    expected: &[TensorMetadata],
    binary: &mut &[u8],
    body_bytes: usize,
) -> Result<(Vec<Vec<f32>>, usize), ApiError> {
    let names = || {
        expected
            .iter()
            .map(|t| format!("`{}` {:?}", t.name, t.shape))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for given in request {
        if !expected.iter().any(|t| t.name == given.name) {
            return Err(bad(
                format!(
                    "unknown input `{}`; the model takes {}",
                    given.name,
                    names()
                ),
                "inputs",
            ));
        }
    }
    // Binary data follows the JSON in the order the inputs are listed.
    let mut by_name: Vec<Option<Vec<f32>>> = vec![None; expected.len()];
    let mut batch: Option<usize> = None;
    for given in request {
        let field = format!("inputs.{}", given.name);
        let slot = expected
            .iter()
            .position(|t| t.name == given.name)
            .unwrap_or(0);
        let want = &expected[slot];
        if by_name[slot].is_some() {
            return Err(bad(format!("input `{}` given twice", given.name), &field));
        }
        if given.datatype != "FP32" {
            return Err(bad(
                format!(
                    "{field}: datatype `{}`; the model takes FP32",
                    given.datatype
                ),
                &field,
            ));
        }
        let fits = given.shape.len() == want.shape.len()
            && given.shape[0] >= 1
            && given
                .shape
                .iter()
                .zip(&want.shape)
                .skip(1)
                .all(|(g, w)| g == w);
        if !fits {
            return Err(bad(
                format!(
                    "{field}: shape {:?}; the model takes {:?} (-1: any batch of at least 1)",
                    given.shape, want.shape
                ),
                &field,
            ));
        }
        let rows = given.shape[0] as usize;
        if *batch.get_or_insert(rows) != rows {
            return Err(bad(
                format!(
                    "{field}: batch {rows}, other inputs have {}",
                    batch.unwrap_or(0)
                ),
                &field,
            ));
        }
        // A count the body cannot hold (at least one byte a value) is refused
        // before anything is allocated for it.
        let count = given
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
            .filter(|&n| n <= body_bytes)
            .ok_or_else(|| {
                bad(
                    format!(
                        "{field}: shape {:?} holds more values than the {body_bytes}-byte body",
                        given.shape
                    ),
                    &field,
                )
            })?;
        let values = match (&given.data, given.parameters.get("binary_data_size")) {
            (Some(data), None) => {
                let mut values = Vec::with_capacity(count);
                flatten(data, &mut values, &field)?;
                values
            }
            (None, Some(size)) => {
                let size = size.as_u64().unwrap_or(u64::MAX) as usize;
                if size != 4 * count || binary.len() < size {
                    return Err(bad(
                        format!(
                            "{field}: binary_data_size {size}; {count} FP32 values are {} bytes and {} remain in the body",
                            4 * count,
                            binary.len()
                        ),
                        &field,
                    ));
                }
                let (mine, rest) = binary.split_at(size);
                *binary = rest;
                mine.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            }
            _ => {
                return Err(bad(
                    format!("{field}: give either `data` or parameters.binary_data_size"),
                    &field,
                ))
            }
        };
        if values.len() != count {
            return Err(bad(
                format!(
                    "{field}: {} values for shape {:?} ({count})",
                    values.len(),
                    given.shape
                ),
                &field,
            ));
        }
        by_name[slot] = Some(values);
    }
    let mut tensors = Vec::with_capacity(expected.len());
    for (want, got) in expected.iter().zip(by_name) {
        tensors.push(got.ok_or_else(|| {
            bad(
                format!(
                    "input `{}` is missing; the model takes {}",
                    want.name,
                    names()
                ),
                "inputs",
            )
        })?);
    }
    Ok((tensors, batch.unwrap_or(0)))
}

/// `POST /v2/models/{name}[/versions/{version}]/infer`.
pub async fn infer(
    State(state): State<Arc<AppState>>,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (pool, card) = model(&state, &path.name, path.version.as_deref())?;
    let json_length = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n <= body.len())
            .ok_or_else(|| {
                bad(
                    format!("Inference-Header-Content-Length must be a byte count of at most the body's {}", body.len()),
                    "Inference-Header-Content-Length",
                )
            })?,
    };
    let (head, mut binary) = body.split_at(json_length);
    let request: InferRequest = serde_json::from_slice(head).map_err(|e| {
        bad(
            format!("the inference request is not valid JSON of the protocol: {e}"),
            "body",
        )
    })?;
    let expected = inputs_of(&card);
    let (mut tensors, rows) = input_tensors(&request.inputs, &expected, &mut binary, body.len())?;
    if !binary.is_empty() {
        return Err(bad(
            format!("{} bytes after the inputs' binary data", binary.len()),
            "body",
        ));
    }
    let produced = outputs_of(&card);
    let wanted: Vec<(String, bool)> = match &request.outputs {
        None => produced
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    flag(&request.parameters, "binary_data_output"),
                )
            })
            .collect(),
        Some(asked) => {
            let mut wanted = Vec::new();
            for o in asked {
                if !produced.iter().any(|p| p.name == o.name) {
                    let names: Vec<&str> = produced.iter().map(|p| p.name.as_str()).collect();
                    return Err(bad(
                        format!(
                            "unknown output `{}`; the model gives {}",
                            o.name,
                            names.join(", ")
                        ),
                        "outputs",
                    ));
                }
                let binary = o.parameters.get("binary_data").and_then(Value::as_bool);
                wanted.push((
                    o.name.clone(),
                    binary.unwrap_or_else(|| flag(&request.parameters, "binary_data_output")),
                ));
            }
            wanted
        }
    };
    // The main input and `features`, as the engine takes them.
    let features = if expected.iter().any(|t| t.name == "features") {
        tensors.pop().unwrap_or_default()
    } else {
        Vec::new()
    };
    let input = tensors.pop().unwrap_or_default();
    let _admission = pool.admit()?;
    // The request's tensors as the engine reads a beat model's: rows of a main
    // input (empty for a model of features alone) and of `features`.
    let reply = pool.submit(Box::new(BeatInputs {
        beats: rows,
        windows: input,
        features,
    }))?;
    let result = reply
        .await
        .map_err(|_| ApiError::Internal("the engine stopped before answering".into()))??;
    let out = result.outputs;
    let mut json_outputs = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    for (name, binary) in wanted {
        let (data, width) = match name.as_str() {
            "logits" => (&out.logits, out.classes),
            "attention" => (&out.attention, out.tokens),
            other => {
                return Err(ApiError::Internal(format!(
                    "the card names output `{other}`, which the engine does not return"
                )))
            }
        };
        let mut o = json!({ "name": name, "datatype": "FP32", "shape": [rows, width] });
        if binary {
            o["parameters"] = json!({ "binary_data_size": 4 * data.len() });
            bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
        } else {
            o["data"] = json!(data);
        }
        json_outputs.push(o);
    }
    let mut answer = json!({
        "model_name": card.name,
        "model_version": card.version,
        "outputs": json_outputs,
    });
    if let Some(id) = request.id {
        answer["id"] = json!(id);
    }
    let head = serde_json::to_vec(&answer).map_err(|e| ApiError::Internal(e.to_string()))?;
    if bytes.is_empty() {
        return Ok(([(header::CONTENT_TYPE, "application/json")], head).into_response());
    }
    let length = HeaderValue::from(head.len());
    let mut body = head;
    body.extend(bytes);
    let mut response = ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
    response.headers_mut().insert(HEADER_LENGTH, length);
    Ok(response)
}
