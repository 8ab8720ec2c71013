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

/// `.venv-tools/bin/<tool>` (`tests/python-tools.txt`, installed by
/// `scripts/test.sh`), or `None` after saying that `check` is SKIPPED; with
/// ECG_REQUIRE_PYTHON_TOOLS=1 (CI) a missing tool fails instead.
pub fn python_tool(tool: &str, check: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv-tools/bin")
        .join(tool);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("ECG_REQUIRE_PYTHON_TOOLS").as_deref() != Ok("1"),
        "{} is required (ECG_REQUIRE_PYTHON_TOOLS=1) but not installed",
        path.display()
    );
    eprintln!(
        "{} not installed (scripts/test.sh installs it): {check} SKIPPED",
        path.display()
    );
    None
}

/// Reads record `name` from `dir` with its annotations.
pub fn load(dir: &Path, name: &str) -> (Recording, Vec<Annotation>) {
    ecg_serve::eval::load_record(dir, name).unwrap()
}
