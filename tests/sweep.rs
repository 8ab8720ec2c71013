//! `ecg-train sweep` end to end: `runs/smoke-sweep.yaml` (three trials of
//! a beat training on four MIT-BIH records, one pruned), the best trial's run
//! config running that trial again, a study resumed after an interruption
//! ending as an uninterrupted one, and bad sweep files refused with a line
//! that names the field. The smoke runs need `../shared/data/mitdb`; the bad
//! files do not.

#![cfg(feature = "train")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecg-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ecg_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecg-train"))
        .current_dir(root())
        .args(args)
        .env_remove("MLFLOW_TRACKING_URI")
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn sweep(study: &Path, extra: &[&str]) -> String {
    let study = study.to_str().unwrap();
    let mut args = vec!["sweep", "runs/smoke-sweep.yaml", "--study", study];
    args.extend(extra);
    let o = ecg_train(&args);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

/// The table's rows: (trial, state, value).
fn rows(table: &str) -> Vec<(String, String, String)> {
    table
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("best") && !l.starts_with("no trial"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

#[test]
fn the_smoke_sweep_prunes_one_trial_and_its_best_config_runs_the_best_trial_again() {
    if common::mitdb().is_none() {
        return;
    }
    let study = temp("smoke");
    let table = sweep(&study, &[]);
    let got = rows(&table);
    let states: Vec<&str> = got.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(states, ["complete", "complete", "pruned"], "{table}");
    // The pruned trial was stopped before its last fold.
    let pruned = std::fs::read_to_string(study.join("trial-2/metrics.jsonl")).unwrap();
    assert!(!pruned.contains("\"cv_score\""), "{pruned}");
    // Its journal holds the three trials.
    let journal = std::fs::read_to_string(study.join("study.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 3, "{journal}");

    // best.yaml runs the best trial again: the same cross-validated score.
    let best = got
        .iter()
        .filter(|r| r.1 == "complete")
        .max_by(|a, b| a.2.parse::<f64>().unwrap().total_cmp(&b.2.parse().unwrap()))
        .unwrap();
    assert!(
        table.contains(&format!("best: trial {} ", best.0)),
        "{table}"
    );
    let config = study.join("best.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("cv-only: false"), "{text}");
    let again = study.join("again");
    let metrics = study.join("again.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_ecg-train"))
        .current_dir(root())
        .args(["beat", "--config"])
        .arg(&config)
        .arg("--cv-only")
        .arg("--out")
        .arg(&again)
        .env("ECG_TRAIN_METRICS", &metrics)
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let score = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|m| m["key"] == "cv_score")
        .and_then(|m| m["value"].as_f64())
        .unwrap();
    assert_eq!(format!("{score:.4}"), best.2, "{table}");

    // Run again: the study is whole, nothing more runs, the table is the same.
    let resumed = sweep(&study, &[]);
    assert_eq!(rows(&resumed), got, "{resumed}");
    std::fs::remove_dir_all(&study).unwrap();
}

#[test]
fn an_interrupted_study_resumes_to_the_same_trials() {
    if common::mitdb().is_none() {
        return;
    }
    let whole = temp("whole");
    let parts = temp("parts");
    let straight = sweep(&whole, &[]);
    let first = sweep(&parts, &["--trials", "1"]);
    assert_eq!(rows(&first).len(), 1, "{first}");
    let rest = sweep(&parts, &[]);
    assert_eq!(rows(&rest), rows(&straight), "{rest}\n{straight}");
    std::fs::remove_dir_all(&whole).unwrap();
    std::fs::remove_dir_all(&parts).unwrap();
}

#[test]
fn tpe_with_median_and_random_with_hyperband_sample_inside_their_ranges() {
    if common::mitdb().is_none() {
        return;
    }
    let smoke = std::fs::read_to_string(root().join("runs/smoke-sweep.yaml")).unwrap();
    let base: String = smoke
        .lines()
        .filter(|l| {
            !l.starts_with("method")
                && !l.starts_with("early_terminate")
                && !l.contains("learning-rate")
                && !l.contains("epochs")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let ranges = "  learning-rate: {min: 0.0005, max: 0.01, distribution: log_uniform_values}\n  epochs: {min: 2, max: 5}\n";
    let dir = temp("methods");
    std::fs::create_dir_all(&dir).unwrap();
    for (method, prune) in [
        ("bayes", "{type: median, min_iter: 1}"),
        (
            "random",
            "{type: hyperband, min_iter: 1, max_iter: 4, eta: 2}",
        ),
    ] {
        // The parameters' block is the file's last but run_cap: append to it.
        let text = base.replace("run_cap: 3", "")
            + ranges
            + &format!("method: {method}\nearly_terminate: {prune}\nrun_cap: 4\n");
        let file = dir.join(format!("{method}.yaml"));
        std::fs::write(&file, &text).unwrap();
        let study = dir.join(method);
        let o = ecg_train(&[
            "sweep",
            file.to_str().unwrap(),
            "--study",
            study.to_str().unwrap(),
        ]);
        let table = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{text}\n{table}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = rows(&table);
        assert_eq!(got.len(), 4, "{table}");
        assert!(
            got.iter().all(|r| r.1 == "complete" || r.1 == "pruned"),
            "{table}"
        );
        for line in table.lines().skip(1).take(4) {
            let value = |key: &str| -> f64 {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(&format!("{key}=")))
                    .unwrap_or_else(|| panic!("no {key} in {line}"))
                    .parse()
                    .unwrap()
            };
            assert!((0.0005..=0.01).contains(&value("learning-rate")), "{line}");
            let epochs = value("epochs");
            assert!(
                epochs.fract() == 0.0 && (2.0..=5.0).contains(&epochs),
                "{line}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_sweep_files_are_one_line_errors_naming_the_field() {
    let dir = temp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let base = "command: beat\nmetric: {name: cv_score, goal: maximize}\n";
    let cases = [
        (
            format!("{base}method: annealing\nparameters: {{}}\n"),
            "method: unknown variant `annealing`, expected one of `grid`, `random`, `bayes`",
        ),
        (
            format!("{base}method: random\nparameters:\n  learning-rate: {{min: 0.1, max: 0.01}}\n"),
            "parameters.learning-rate: min 0.1 is more than max 0.01",
        ),
        (
            "command: beat\nmethod: random\nmetric: {name: val_auc, goal: maximize}\nparameters: {}\n"
                .to_string(),
            "metric.name: `ecg-train beat` does not report `val_auc`; it reports cv_score",
        ),
        (
            format!("{base}method: random\nparameters:\n  dropout: {{values: [0.1]}}\n"),
            "parameters.dropout: `ecg-train beat` has no flag --dropout",
        ),
        (
            format!("{base}method: grid\nparameters:\n  epochs: {{min: 2, max: 9}}\n"),
            "parameters.epochs: a grid takes `values`",
        ),
        (
            format!("{base}method: random\nparameters:\n  learning-rate: {{min: 0, max: 1, distribution: log_uniform_values}}\n"),
            "log_uniform_values needs min > 0",
        ),
        (
            format!("{base}method: random\nparameters: {{}}\nearly_terminate: {{type: patience}}\n"),
            "early_terminate.type: `patience`; accepted: median, hyperband",
        ),
        (
            "command: serve\nmethod: random\nmetric: {name: cv_score, goal: maximize}\nparameters: {}\n"
                .to_string(),
            "command: `serve` is not an ecg-train command a sweep can run",
        ),
        (
            format!("{base}method: random\nparameters:\n  out: {{value: /tmp}}\n"),
            "parameters.out: the sweep sets --out itself",
        ),
        (
            format!("{base}method: random\nparameters: {{}}\nrun_cap: 0\n"),
            "run_cap: at least 1",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad-{i}.yaml"));
        std::fs::write(&file, text).unwrap();
        let study = dir.join(format!("study-{i}"));
        let o = ecg_train(&[
            "sweep",
            file.to_str().unwrap(),
            "--study",
            study.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{text}: {err}");
        assert!(err.contains(want), "{text}: wanted {want:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!study.join("study.jsonl").exists(), "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
