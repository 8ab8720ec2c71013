//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod server;

use std::path::{Path, PathBuf};

use ecg_serve::signal::wfdb::Annotation;
use ecg_serve::signal::Recording;

/// The committed fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The full MIT-BIH database beside the project, if present (`../shared/data/mitdb`,
/// or `MITDB_DIR`). Tests over it say when they ran and when they did not.
pub fn mitdb() -> Option<PathBuf> {
    let dir = std::env::var_os("MITDB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mitdb"));
    if dir.join("100.hea").exists() {
        eprintln!(
            "full MIT-BIH database found at {}: running the full-database check",
            dir.display()
        );
        Some(dir)
    } else {
        eprintln!("full MIT-BIH database not found (set MITDB_DIR): full-database check SKIPPED");
        None
    }
}

/// Reads record `name` from `dir` with its annotations.
pub fn load(dir: &Path, name: &str) -> (Recording, Vec<Annotation>) {
    ecg_serve::eval::load_record(dir, name).unwrap()
}
