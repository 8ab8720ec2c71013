//! The one place that maps errors to HTTP statuses.
//!
//! Every error body is `{"error": "...", "error_type": "...", "detail": {...}}`:
//! what was wrong, a stable machine-readable type, and where (field, accepted
//! values). 500 is reserved for our own bugs.

use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::engine::EngineError;
use crate::service::{PoolError, ServiceError};
use crate::signal::upload::{UploadError, ACCEPTED};
use crate::signal::SignalError;

/// The error body of every non-2xx answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = "100.dat: file is shorter than the header says")]
    pub error: String,
    #[schema(example = "invalid_signal")]
    pub error_type: String,
    /// Where the problem is: `field`, `file`, `row`, `column`, `accepted`...
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// An error on its way to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { message: String, detail: Value },
    #[error("missing or wrong API key: send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("request body over the limit of {limit_mb} MiB")]
    TooLarge { limit_mb: usize },
    #[error("{0}")]
    Unsupported(String),
    #[error("{message}")]
    Invalid { message: String, detail: Value },
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    NotReady(String),
    /// A health probe's "false" in the Open Inference Protocol, which answers
    /// it with a 4xx (our own `/health/ready` answers 503).
    #[error("not ready: {0}")]
    NotReadyProbe(String),
    #[error("request took longer than {0} s")]
    Timeout(u64),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The status for this error: the single mapping of the service.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::NotReadyProbe(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotReady(_) | ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `error_type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::Unsupported(_) => "unsupported_media_type",
            ApiError::Invalid { .. } => "invalid_signal",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::NotReady(_) | ApiError::NotReadyProbe(_) => "not_ready",
            ApiError::Timeout(_) => "timeout",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Internal(_) => "internal",
        }
    }

    fn detail(&self) -> Value {
        match self {
            ApiError::BadRequest { detail, .. } | ApiError::Invalid { detail, .. } => {
                detail.clone()
            }
            ApiError::Unsupported(_) => json!({ "accepted": ACCEPTED }),
            ApiError::TooLarge { limit_mb } => json!({ "limit_bytes": limit_mb * 1024 * 1024 }),
            _ => json!({}),
        }
    }

    /// A 400 about `field`.
    pub fn bad_request(message: impl Into<String>, field: &str) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            detail: json!({ "field": field }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, error_type = self.error_type(), "request failed");
        }
        let body = ErrorBody {
            error: self.to_string(),
            error_type: self.error_type().into(),
            detail: self.detail(),
        };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, ApiError::Overloaded(_) | ApiError::NotReady(_)) {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

fn signal_detail(e: &SignalError) -> Value {
    match e {
        SignalError::Header {
            file, line, field, ..
        } => json!({ "file": file, "line": line, "field": field }),
        SignalError::Data { file, .. } => json!({ "file": file }),
        SignalError::Checksum {
            file,
            signal,
            expected,
            actual,
            ..
        } => {
            json!({ "file": file, "signal": signal, "expected": expected, "actual": actual, "hint": "verify_checksums=false skips the check" })
        }
        SignalError::Annotation { file, offset, .. } => json!({ "file": file, "offset": offset }),
        SignalError::Csv {
            file, row, column, ..
        } => json!({ "file": file, "row": row, "column": column }),
        SignalError::Edf { file, field, .. } => json!({ "file": file, "field": field }),
        SignalError::Parameter { field, .. } => json!({ "field": field }),
        SignalError::LeadNotFound { available, .. } => {
            json!({ "field": "lead", "accepted": available })
        }
    }
}

impl From<SignalError> for ApiError {
    fn from(e: SignalError) -> Self {
        ApiError::Invalid {
            detail: signal_detail(&e),
            message: e.to_string(),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::NoFile | UploadError::Duplicate(_) => ApiError::BadRequest {
                message: e.to_string(),
                detail: json!({ "accepted": ACCEPTED }),
            },
            UploadError::UnsupportedType { .. } => ApiError::Unsupported(e.to_string()),
            UploadError::Missing { field, .. } => ApiError::Invalid {
                message: e.to_string(),
                detail: json!({ "field": field, "accepted": ACCEPTED }),
            },
            UploadError::Empty { ref file } => ApiError::Invalid {
                detail: json!({ "file": file }),
                message: e.to_string(),
            },
            UploadError::NotCsv { ref name, .. } => ApiError::Invalid {
                detail: json!({ "file": name, "field": "file", "accepted": ACCEPTED }),
                message: e.to_string(),
            },
            UploadError::Signal(s) => s.into(),
        }
    }
}

/// Query parameters `/predict` accepts (see `PredictParams`).
const QUERY_PARAMETERS: [&str; 11] = [
    "fs",
    "lead",
    "format",
    "dat_format",
    "channels",
    "gain",
    "baseline",
    "include",
    "verify_checksums",
    "start_s",
    "end_s",
];

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::BadRequest {
            message: format!("query string: {}", e.body_text()),
            detail: json!({ "field": "query", "accepted": QUERY_PARAMETERS }),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Upload(u) => u.into(),
            ServiceError::Signal(s) => s.into(),
            ServiceError::TooShort { needed_s, .. } => ApiError::Invalid {
                detail: json!({ "minimum_duration_s": needed_s }),
                message: e.to_string(),
            },
            ServiceError::TooLong { limit_s, .. } => ApiError::Invalid {
                detail: json!({ "maximum_duration_s": limit_s }),
                message: e.to_string(),
            },
            ServiceError::Pool(p) => p.into(),
            ServiceError::Engine(g) => g.into(),
            ServiceError::Card(c) => ApiError::Internal(c.to_string()),
            ServiceError::NoHeartbeatModel => ApiError::Invalid {
                message: e.to_string(),
                detail: json!({ "field": "file", "accepted": ACCEPTED }),
            },
            ServiceError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Full(_) => ApiError::Overloaded(e.to_string()),
            PoolError::NotReady(_) => ApiError::NotReady(e.to_string()),
            PoolError::Stopped => ApiError::NotReady(e.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError::Internal(e.to_string())
    }
}
