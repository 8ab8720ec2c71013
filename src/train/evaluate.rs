//! `ecg-train evaluate`: a shipped model's held-out figures measured again
//! through ONNX Runtime with the preprocessing of its card, for either kind.

use std::path::Path;

use anyhow::Result;

use crate::model::{ModelCard, ModelKind};

/// The model's report on `records` (default: its card's test records).
pub fn evaluate(model: &Path, db: &Path, records: &[String]) -> Result<serde_json::Value> {
    let (card, bytes) = ModelCard::open(model)?;
    let records = if records.is_empty() {
        card.split.test_records.clone()
    } else {
        records.to_vec()
    };
    Ok(match card.kind {
        ModelKind::Segment(_) => {
            serde_json::to_value(super::segment::evaluate(&card, &bytes, db, &records)?)?
        }
        ModelKind::Beat(_) => {
            serde_json::to_value(super::beat::evaluate(&card, &bytes, db, &records)?)?
        }
        ModelKind::Heartbeat(_) => {
            serde_json::to_value(super::heartbeat::evaluate(&card, &bytes, db, &records)?)?
        }
    })
}
