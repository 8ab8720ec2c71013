//! The QRS benchmark: run our R-peak detector over every record of a WFDB
//! database and score it against the reference beats with [`bxb`](super::bxb).

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::bxb::{compare, excluded_intervals, DetectionCounts};
use crate::signal::qrs::detect_r_peaks;
use crate::signal::DEFAULT_LEAD;

/// One record's score.
#[derive(Debug, Clone, Serialize)]
pub struct RecordScore {
    pub record: String,
    pub lead: String,
    pub reference_beats: usize,
    pub detections: usize,
    #[serde(flatten)]
    pub counts: DetectionCounts,
    pub sensitivity: f64,
    pub positive_predictivity: f64,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct QrsReport {
    pub match_window_s: f64,
    pub start_s: f64,
    pub records: Vec<RecordScore>,
    /// Pooled over all beats of all records (bxb's "gross" statistics).
    pub pooled: DetectionCounts,
    pub pooled_sensitivity: f64,
    pub pooled_positive_predictivity: f64,
}

/// Record names (`.hea` stems) in `dir`, sorted.
pub fn record_names(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read database folder {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "hea").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Detects and scores one record of `dir`.
pub fn score_record(dir: &Path, name: &str, window_s: f64, start_s: f64) -> Result<RecordScore> {
    let (rec, annotations) = super::load_record(dir, name)?;
    let lead = rec.select_lead(DEFAULT_LEAD, true)?;
    let fs = rec.sampling_rate;
    let peaks: Vec<u64> = detect_r_peaks(&rec.leads[lead.index].samples, fs)
        .into_iter()
        .map(|p| p as u64)
        .collect();
    let reference: Vec<u64> = annotations
        .iter()
        .filter(|a| a.is_beat())
        .map(|a| a.sample)
        .collect();
    let cmp = compare(
        &reference,
        &peaks,
        (window_s * fs).round() as u64,
        (start_s * fs).round() as u64,
        &excluded_intervals(&annotations),
    );
    let c = cmp.counts;
    Ok(RecordScore {
        record: name.to_string(),
        lead: rec.leads[lead.index].name.clone(),
        reference_beats: c.true_positives + c.false_negatives,
        detections: c.true_positives + c.false_positives,
        counts: c,
        sensitivity: c.sensitivity(),
        positive_predictivity: c.positive_predictivity(),
    })
}

/// Scores `records` of `dir` (all of them when empty).
pub fn run(dir: &Path, records: &[String], window_s: f64, start_s: f64) -> Result<QrsReport> {
    let names = if records.is_empty() {
        record_names(dir)?
    } else {
        records.to_vec()
    };
    let mut rows = Vec::with_capacity(names.len());
    let mut pooled = DetectionCounts::default();
    for name in &names {
        let row = score_record(dir, name, window_s, start_s)?;
        pooled.add(&row.counts);
        rows.push(row);
    }
    Ok(QrsReport {
        match_window_s: window_s,
        start_s,
        records: rows,
        pooled,
        pooled_sensitivity: pooled.sensitivity(),
        pooled_positive_predictivity: pooled.positive_predictivity(),
    })
}

impl QrsReport {
    /// The report as a plain-text table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<8} {:<5} {:>7} {:>7} {:>5} {:>5} {:>8} {:>8}\n",
            "record", "lead", "beats", "TP", "FN", "FP", "Se %", "+P %"
        );
        let row = |name: &str, lead: &str, c: &DetectionCounts| {
            format!(
                "{:<8} {:<5} {:>7} {:>7} {:>5} {:>5} {:>8.2} {:>8.2}\n",
                name,
                lead,
                c.true_positives + c.false_negatives,
                c.true_positives,
                c.false_negatives,
                c.false_positives,
                100.0 * c.sensitivity(),
                100.0 * c.positive_predictivity()
            )
        };
        for r in &self.records {
            s.push_str(&row(&r.record, &r.lead, &r.counts));
        }
        s.push_str(&row("pooled", "", &self.pooled));
        s
    }
}
