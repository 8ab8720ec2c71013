//! The model card: a JSON manifest next to each `.onnx` file.
//!
//! It names the model, pins the file by SHA-256, lists labels, declares the
//! preprocessing and how attention tokens map to samples, records the split,
//! the training configuration and the measured test metrics. The server reads
//! every preprocessing parameter from here and nowhere else.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::preprocess::Preprocessing;

/// Name and shape of one model input or output (`-1` is a dynamic dimension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<i64>,
    pub description: String,
}

/// How the `attention` output maps back to the input window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionMap {
    /// Tokens per window.
    pub tokens: usize,
    /// Input samples covered by one token; token `k` starts at sample `k * samples_per_token`.
    pub samples_per_token: usize,
    /// Seconds per token at the model rate.
    pub token_s: f64,
}

/// How a window's probabilities become a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The label the threshold applies to, e.g. `Abnormal`.
    pub positive_label: String,
    /// A window is positive when its probability is at least this.
    pub threshold: f64,
    /// How the threshold was chosen.
    pub chosen_by: String,
}

/// Which records trained, validated and tested the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub kind: String,
    pub train_records: Vec<String>,
    pub validation_records: Vec<String>,
    pub test_records: Vec<String>,
    pub excluded_records: Vec<String>,
}

/// The manifest of one model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    pub version: String,
    /// `segment` (10 s windows) or `beat`.
    pub task: String,
    /// The `.onnx` file, relative to the card.
    pub file: String,
    pub sha256: String,
    pub labels: Vec<String>,
    pub input: TensorSpec,
    pub outputs: Vec<TensorSpec>,
    pub preprocessing: Preprocessing,
    pub attention: AttentionMap,
    pub decision: Decision,
    /// How windows were labelled for training and testing.
    pub label_rule: serde_json::Value,
    pub split: Split,
    /// The training configuration, as the trainer saved it.
    pub training: serde_json::Value,
    /// Measured metrics on the held-out test split.
    pub metrics: serde_json::Value,
    pub created_by: String,
}

/// Why a card could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid model card: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: sha256 is {actual}, the card says {expected}: the model file does not belong to this card")]
    Digest {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ModelCard {
    /// Reads a card from JSON.
    pub fn read(path: &Path) -> Result<Self, CardError> {
        let text = std::fs::read_to_string(path).map_err(|source| CardError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| CardError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The model file this card describes (resolved next to `card_path`).
    pub fn model_path(&self, card_path: &Path) -> PathBuf {
        card_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.file)
    }

    /// Reads the model file and checks it against the card's SHA-256.
    pub fn read_verified_model(&self, card_path: &Path) -> Result<Vec<u8>, CardError> {
        let path = self.model_path(card_path);
        let bytes = std::fs::read(&path).map_err(|source| CardError::Io {
            path: path.clone(),
            source,
        })?;
        let actual = sha256_hex(&bytes);
        if actual != self.sha256 {
            return Err(CardError::Digest {
                path,
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The card beside a `.onnx` file (same stem, `.json`) and the file's bytes,
    /// checked against the card's SHA-256.
    pub fn open(model: &Path) -> Result<(Self, Vec<u8>), CardError> {
        let card_path = model.with_extension("json");
        let card = Self::read(&card_path)?;
        let bytes = card.read_verified_model(&card_path)?;
        Ok((card, bytes))
    }

    /// A segment card's label rule: Abnormal when more than this fraction of a
    /// window's annotated beats are not AAMI N (0.5 where the card says none).
    pub fn abnormal_fraction(&self) -> f64 {
        self.label_rule["abnormal_fraction"].as_f64().unwrap_or(0.5)
    }

    /// Writes the card as pretty JSON.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
