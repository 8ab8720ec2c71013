//! The one error type of the signal library.
//!
//! Every variant says *what* was wrong, *where* (file, line, row, column or field)
//! and, where it helps, *what is accepted*, so the HTTP layer can hand it to a
//! user as it is. Nothing in this library panics on bad input.

use thiserror::Error;

/// What went wrong while reading or preparing a recording.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SignalError {
    /// A WFDB header (`.hea`) line or field that cannot be read.
    #[error("{file}: line {line}: field `{field}`: {message}")]
    Header {
        file: String,
        line: usize,
        field: String,
        message: String,
    },
    /// Signal data (`.dat`) that does not match its header.
    #[error("{file}: {message}")]
    Data { file: String, message: String },
    /// A signal whose checksum differs from the header's.
    #[error("{file}: signal {signal} (`{description}`): checksum mismatch: header says {expected}, data sums to {actual} (mod 65536)")]
    Checksum {
        file: String,
        signal: usize,
        description: String,
        expected: i64,
        actual: u16,
    },
    /// An annotation file (`.atr`) that cannot be read.
    #[error("{file}: byte {offset}: {message}")]
    Annotation {
        file: String,
        offset: usize,
        message: String,
    },
    /// A CSV cell, row or header that cannot be read.
    #[error("{file}: row {row}, column {column}: {message}")]
    Csv {
        file: String,
        row: usize,
        column: usize,
        message: String,
    },
    /// An EDF file whose header or data cannot be read.
    #[error("{file}: {field}: {message}")]
    Edf {
        file: String,
        field: String,
        message: String,
    },
    /// A parameter given by the caller (rate, format, lead, window...) that is out of range.
    #[error("parameter `{field}`: {message}")]
    Parameter { field: String, message: String },
    /// The requested lead is not in the recording.
    #[error("lead `{requested}` not found; the recording has: {}", available.join(", "))]
    LeadNotFound {
        requested: String,
        available: Vec<String>,
    },
}

impl SignalError {
    /// Shorthand for a [`SignalError::Parameter`].
    pub fn parameter(field: impl Into<String>, message: impl Into<String>) -> Self {
        SignalError::Parameter {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The name of the input field the error is about, for API error bodies.
    pub fn field(&self) -> String {
        match self {
            SignalError::Header { field, .. } | SignalError::Parameter { field, .. } => {
                field.clone()
            }
            SignalError::Data { file, .. }
            | SignalError::Checksum { file, .. }
            | SignalError::Annotation { file, .. }
            | SignalError::Csv { file, .. } => file.clone(),
            SignalError::Edf { file, .. } => file.clone(),
            SignalError::LeadNotFound { .. } => "lead".to_string(),
        }
    }
}

/// Result of the signal library.
pub type Result<T> = std::result::Result<T, SignalError>;
