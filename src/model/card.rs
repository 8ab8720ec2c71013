//! The model card: a JSON manifest next to each `.onnx` file.
//!
//! It names the model, pins the file by SHA-256, lists labels, says what kind
//! of model it is ([`ModelKind`]: a segment or a beat model, each with its own
//! preprocessing, decision and label rule), how attention tokens map to
//! samples, and records the split, the training configuration and the
//! measured test metrics. The server reads every preprocessing parameter from
//! here and nowhere else; everything it reads is typed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::preprocess::{BeatPreprocessing, HeartbeatPreprocessing, SegmentPreprocessing};

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

/// How a segment window's probabilities become a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The label the threshold applies to, e.g. `Abnormal`.
    pub positive_label: String,
    /// A window is positive when its probability is at least this.
    pub threshold: f64,
    /// How the threshold was chosen.
    pub chosen_by: String,
}

/// How a beat's probabilities become a label: the likeliest class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeatDecision {
    /// Why argmax (e.g. how the classes were weighted in training).
    pub chosen_by: String,
}

/// How a segment model's windows were labelled for training and testing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentLabelRule {
    /// The annotation codes counted as AAMI N.
    pub aami_n: String,
    /// A window is Abnormal when more than this fraction of its annotated
    /// beats are not AAMI N.
    pub abnormal_fraction: f64,
    pub abnormal_when: String,
    pub windows_without_beats: String,
}

/// How a beat model's beats were labelled for training and testing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeatLabelRule {
    /// The annotation codes of each AAMI class.
    pub aami: BTreeMap<String, String>,
    pub label: String,
    /// A detection takes the class of the reference beat within this many seconds.
    pub match_window_s: f64,
    pub unmatched_detections: String,
}

/// A segment model: 10 s windows, a thresholded positive label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentModel {
    pub preprocessing: SegmentPreprocessing,
    pub decision: Decision,
    pub label_rule: SegmentLabelRule,
}

/// A beat model: one example per R peak, the likeliest class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeatModel {
    pub preprocessing: BeatPreprocessing,
    pub decision: BeatDecision,
    pub label_rule: BeatLabelRule,
}

/// A heartbeat model: one uploaded row of the heartbeat format per example,
/// the likeliest class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatModel {
    pub preprocessing: HeartbeatPreprocessing,
    pub decision: BeatDecision,
    /// How the training rows were labelled.
    pub label_rule: String,
}

/// The kinds of model, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Segment,
    Beat,
    Heartbeat,
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Segment => "segment",
            Task::Beat => "beat",
            Task::Heartbeat => "heartbeat",
        })
    }
}

/// What kind of model a card describes (`task` in the JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum ModelKind {
    Segment(SegmentModel),
    Beat(BeatModel),
    Heartbeat(HeartbeatModel),
}

impl ModelKind {
    /// Which kind (`task` in the card).
    pub fn task(&self) -> Task {
        match self {
            ModelKind::Segment(_) => Task::Segment,
            ModelKind::Beat(_) => Task::Beat,
            ModelKind::Heartbeat(_) => Task::Heartbeat,
        }
    }

    /// `[channels, samples]` of one input example.
    pub fn input_shape(&self) -> [usize; 2] {
        match self {
            ModelKind::Segment(s) => [1, s.preprocessing.window_samples],
            ModelKind::Beat(b) => [
                b.preprocessing.beat.channels(),
                b.preprocessing.beat.samples(),
            ],
            ModelKind::Heartbeat(h) => [1, h.preprocessing.samples],
        }
    }

    /// Width of the second input `features` (0: none).
    pub fn feature_width(&self) -> usize {
        match self {
            ModelKind::Segment(s) => s.preprocessing.feature_width(),
            ModelKind::Beat(b) => b.preprocessing.feature_width(),
            ModelKind::Heartbeat(_) => 0,
        }
    }

    /// Rate the model runs at.
    pub fn sample_rate_hz(&self) -> f64 {
        match self {
            ModelKind::Segment(s) => s.preprocessing.sample_rate_hz,
            ModelKind::Beat(b) => b.preprocessing.sample_rate_hz,
            ModelKind::Heartbeat(h) => h.preprocessing.sample_rate_hz,
        }
    }
}

/// The training configuration as the trainer saved it: a record for people,
/// never read by the service, except whether a stack was added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    #[serde(flatten)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// The logistic regression `ecg-train stack` added to the network's logits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<serde_json::Value>,
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
    /// `task`, `preprocessing`, `decision` and `label_rule` in the JSON.
    #[serde(flatten)]
    pub kind: ModelKind,
    /// The `.onnx` file, relative to the card.
    pub file: String,
    pub sha256: String,
    pub labels: Vec<String>,
    pub input: TensorSpec,
    pub outputs: Vec<TensorSpec>,
    /// Where the model's `attention` output points (models without one: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<AttentionMap>,
    pub split: Split,
    /// The training configuration, as the trainer saved it.
    pub training: TrainingRecord,
    /// Measured metrics on the held-out test split (a record for people; never
    /// read by the service).
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
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{model} is a {found} model; a {expected} model is needed here")]
    Kind {
        model: String,
        expected: Task,
        found: Task,
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
        let card: Self = serde_json::from_str(&text).map_err(|source| CardError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| CardError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        match &card.kind {
            ModelKind::Beat(b) => {
                b.preprocessing.beat.feature_columns().map_err(invalid)?;
            }
            ModelKind::Segment(_) if card.attention.is_none() => {
                return Err(invalid(
                    "a segment model needs its `attention` map (segments answer with attention)"
                        .into(),
                ));
            }
            ModelKind::Segment(_) | ModelKind::Heartbeat(_) => {}
        }
        Ok(card)
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

    /// The segment model this card describes, or an error naming what it is.
    pub fn segment(&self) -> Result<&SegmentModel, CardError> {
        match &self.kind {
            ModelKind::Segment(s) => Ok(s),
            other => Err(self.wrong_kind(Task::Segment, other)),
        }
    }

    /// The beat model this card describes, or an error naming what it is.
    pub fn beat(&self) -> Result<&BeatModel, CardError> {
        match &self.kind {
            ModelKind::Beat(b) => Ok(b),
            other => Err(self.wrong_kind(Task::Beat, other)),
        }
    }

    /// The heartbeat model this card describes, or an error naming what it is.
    pub fn heartbeat(&self) -> Result<&HeartbeatModel, CardError> {
        match &self.kind {
            ModelKind::Heartbeat(h) => Ok(h),
            other => Err(self.wrong_kind(Task::Heartbeat, other)),
        }
    }

    fn wrong_kind(&self, expected: Task, found: &ModelKind) -> CardError {
        CardError::Kind {
            model: format!("{} {}", self.name, self.version),
            expected,
            found: found.task(),
        }
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

    /// The shipped cards read into their kinds and write back the same JSON
    /// values (the typed card drops nothing a card holds).
    #[test]
    fn shipped_cards_round_trip() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        for (file, task) in [
            ("ecg-segment.json", Task::Segment),
            ("ecg-segment-net.json", Task::Segment),
            ("ecg-beat.json", Task::Beat),
            ("ecg-heartbeat.json", Task::Heartbeat),
        ] {
            let path = dir.join(file);
            let card = ModelCard::read(&path).unwrap();
            assert_eq!(card.kind.task(), task);
            let text = std::fs::read_to_string(&path).unwrap();
            let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(serde_json::to_value(&card).unwrap(), raw, "{file}");
        }
    }

    #[test]
    fn unknown_task_is_refused() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ecg-beat.json"),
        )
        .unwrap()
        .replace("\"task\": \"beat\"", "\"task\": \"rhythm\"");
        let err = serde_json::from_str::<ModelCard>(&text).unwrap_err();
        assert!(err.to_string().contains("rhythm"), "{err}");
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
