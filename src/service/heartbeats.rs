//! Heartbeat rows through the heartbeat model: an upload of one CSV in the
//! heartbeat format ([`crate::signal::heartbeat`]: 187 values in [0, 1] per
//! row, optionally the class last; the Kaggle `mitbih_*.csv` layout) is
//! recognised by its shape ([`rows_part`]) and answered with one label and
//! its probabilities per row ([`HeartbeatResponse`]). The rows are the model's
//! input as they are: no filter, no detector, no resampling.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use serde::Serialize;
use utoipa::ToSchema;

use super::answer::{model_info, ModelInfo};
use crate::engine::ModelOutputs;
use crate::model::{ModelCard, Rows};
use crate::signal::heartbeat::{looks_like_rows, read_rows, HeartbeatTable, LENGTH};
use crate::signal::upload::{PartKind, UploadPart};

/// The one part of an upload that holds heartbeat rows, if that is what it is.
pub fn rows_part(parts: &[UploadPart]) -> Option<&UploadPart> {
    match parts {
        [p] if p.kind() == Some(PartKind::Csv) && looks_like_rows(&p.bytes) => Some(p),
        _ => None,
    }
}

/// Reads the rows of `part` (errors name the row and column).
pub fn read(part: &UploadPart) -> crate::signal::Result<HeartbeatTable> {
    let name = part.file_name.clone().unwrap_or_else(|| part.field.clone());
    read_rows(&name, &part.bytes)
}

/// The rows as the engine reads them.
pub struct HeartbeatRows(pub Vec<f32>);

impl Rows for HeartbeatRows {
    fn rows(&self) -> usize {
        self.0.len() / LENGTH
    }

    fn batch(&self, range: Range<usize>) -> (Cow<'_, [f32]>, &[f32]) {
        (
            Cow::Borrowed(&self.0[range.start * LENGTH..range.end * LENGTH]),
            &[],
        )
    }
}

/// One row's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowLabel {
    /// The row's place among the file's rows, from 1.
    #[schema(example = 1)]
    pub row: usize,
    #[schema(example = "N")]
    pub label: String,
    /// Per class, by the class names (the model's labels).
    pub probabilities: BTreeMap<String, f32>,
    /// The file's class for the row (its 188th column), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "N")]
    pub reference: Option<String>,
}

/// Where the time went, in ms.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HeartbeatTiming {
    /// Reading the CSV.
    pub decode: f64,
    /// The wait for an engine.
    pub queue: f64,
    pub inference: f64,
    /// From the request's arrival to its answer.
    pub total: f64,
}

/// The `/predict` answer for a CSV of heartbeat rows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HeartbeatResponse {
    /// The heartbeat model that labelled the rows.
    pub heartbeat_model: ModelInfo,
    #[schema(example = 2)]
    pub rows: usize,
    /// Rows per label.
    pub counts: BTreeMap<String, usize>,
    /// When the file gives each row's class: the fraction of rows whose label
    /// is that class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// One per row, in the file's order.
    pub predictions: Vec<RowLabel>,
    pub timing_ms: HeartbeatTiming,
    pub warnings: Vec<String>,
}

/// The answer from the model's outputs over `table`'s rows.
pub fn assemble(
    card: &ModelCard,
    outputs: &ModelOutputs,
    references: Option<&[u8]>,
    timing_ms: HeartbeatTiming,
) -> HeartbeatResponse {
    let rows = outputs.logits.len() / outputs.classes.max(1);
    let mut counts = BTreeMap::new();
    let mut agree = 0;
    let predictions: Vec<RowLabel> = (0..rows)
        .map(|i| {
            let p = outputs.probabilities(i);
            let k = (0..p.len())
                .max_by(|&x, &y| p[x].total_cmp(&p[y]))
                .unwrap_or(0);
            let label = card.labels.get(k).cloned().unwrap_or_default();
            *counts.entry(label.clone()).or_insert(0) += 1;
            // The file's class index, named as the model names its classes.
            let reference =
                references
                    .and_then(|r| r.get(i))
                    .map(|&c| match card.labels.get(usize::from(c)) {
                        Some(l) => l.clone(),
                        None => c.to_string(),
                    });
            agree += usize::from(reference.as_deref() == Some(label.as_str()));
            RowLabel {
                row: i + 1,
                label,
                probabilities: card.labels.iter().cloned().zip(p).collect(),
                reference,
            }
        })
        .collect();
    HeartbeatResponse {
        heartbeat_model: model_info(card),
        rows,
        counts,
        agreement: references.map(|_| agree as f64 / rows.max(1) as f64),
        predictions,
        timing_ms,
        warnings: Vec::new(),
    }
}

/// The answer as CSV: `row,label,p_<class>...` (and `reference` when known).
pub fn rows_csv(response: &HeartbeatResponse) -> Result<String, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let classes: Vec<String> = response
        .predictions
        .first()
        .map(|p| p.probabilities.keys().cloned().collect())
        .unwrap_or_default();
    let with_reference = response.agreement.is_some();
    let mut header = vec!["row".to_string(), "label".to_string()];
    header.extend(classes.iter().map(|c| format!("p_{c}")));
    if with_reference {
        header.push("reference".into());
    }
    out.write_record(&header)?;
    for p in &response.predictions {
        let mut row = vec![p.row.to_string(), p.label.clone()];
        row.extend(classes.iter().map(|c| format!("{:.4}", p.probabilities[c])));
        if with_reference {
            row.push(p.reference.clone().unwrap_or_default());
        }
        out.write_record(&row)?;
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
