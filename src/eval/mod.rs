//! Scoring what we find against reference annotations: beat detection in the
//! manner of WFDB's `bxb` ([`bxb`]) and the QRS benchmark over a WFDB database
//! ([`qrs`]). Used by the `ecg-eval` binary and the full-database tests.

pub mod bxb;
pub mod classes;
pub mod qrs;

use std::path::Path;

use anyhow::{Context, Result};

use crate::signal::wfdb::{parse_header, read_annotations, read_record, Annotation, ReadOptions};
use crate::signal::Recording;

/// Reads record `name` of a WFDB database folder: header, signals (checksums
/// verified) and reference annotations (`.atr`).
pub fn load_record(db: &Path, name: &str) -> Result<(Recording, Vec<Annotation>)> {
    let rec = load_signals(db, name)?;
    let annotations = read_annotations(&format!("{name}.atr"), &read(db, name, "atr")?)?;
    Ok((rec, annotations))
}

/// Reads record `name`'s header and signals (checksums verified), without
/// annotations (nstdb's noise recordings have none). `name` may sit in a
/// subfolder (PTB's `patient001/s0010_re`); each signal file is the one its
/// header line names, beside the header: MIT-BIH's one `.dat`, PTB's `.dat`
/// and `.xyz` (its Frank leads), the Challenge's `.mat`.
pub fn load_signals(db: &Path, name: &str) -> Result<Recording> {
    let hea = String::from_utf8_lossy(&read(db, name, "hea")?).into_owned();
    let header = parse_header(&format!("{name}.hea"), &hea)?;
    let folder = db.join(name);
    let folder = folder.parent().unwrap_or(db);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for s in &header.signals {
        if files.iter().all(|(f, _)| *f != s.file_name) {
            let path = folder.join(&s.file_name);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            files.push((s.file_name.clone(), bytes));
        }
    }
    Ok(read_record(
        &header,
        |file| {
            files
                .iter()
                .find(|(f, _)| f == file)
                .map(|(_, b)| b.as_slice())
        },
        ReadOptions::default(),
    )?)
}

fn read(db: &Path, name: &str, ext: &str) -> Result<Vec<u8>> {
    let path = db.join(format!("{name}.{ext}"));
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}
