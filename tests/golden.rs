//! A golden answer: record 100's whole `/predict` JSON (with its `.atr`, so the
//! `reference` block too) is committed in `tests/fixtures/golden/100.json.gz`
//! and every answer is compared with it, so a change that moves an answer
//! fails here. Strings, integers, booleans, keys and array lengths must be
//! equal; numbers within [`TOLERANCE`]. `timing_ms` is left out (it is a
//! measurement). After a deliberate change (a new model, a new field), write
//! it again with `UPDATE_GOLDEN=1 cargo test --test golden` and say why in
//! the commit.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;

use common::server::{file, fixture, post, wfdb_form, Server};
use serde_json::Value;

/// Largest accepted difference of a number: ONNX Runtime's kernels differ in
/// the last bits between CPUs (SIMD width, FMA), about 1e-7 on the
/// probabilities; 1e-4 leaves room for that and for nothing that changes an
/// answer a reader would see (probabilities are printed to 4 digits).
const TOLERANCE: f64 = 1e-4;

fn golden_path() -> PathBuf {
    common::fixtures().join("golden/100.json.gz")
}

/// Every difference between `want` and `got` beyond [`TOLERANCE`], by JSON path.
fn differences(want: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    differences_within(TOLERANCE, want, got, path, out)
}

/// Every difference between `want` and `got` beyond `tolerance`, by JSON path.
fn differences_within(
    tolerance: f64,
    want: &Value,
    got: &Value,
    path: &str,
    out: &mut Vec<String>,
) {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => {
                        differences_within(tolerance, x, y, &format!("{path}.{k}"), out)
                    }
                    _ => out.push(format!("{path}.{k}: present in only one answer")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences_within(tolerance, x, y, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (x, y) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            // NaN is never close.
            let close = (x - y).abs() <= tolerance;
            if !close {
                out.push(format!("{path}: {x} != {y}"));
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} != {b}")),
        _ => {}
    }
}

/// Record 100's answer (with its `.atr`, so the `reference` block too) from a
/// server started with `flags`, asked with `query`, without `timing_ms`.
async fn answer_with(flags: &[&str], query: &str) -> Value {
    let server = Server::start(flags).await;
    server.wait_ready().await;
    let form = wfdb_form(fixture("100.hea"), fixture("100.dat"))
        .part("atr", file(fixture("100.atr"), "100.atr"));
    let (status, mut got) = post(&server, query, form).await;
    assert_eq!(status, 200, "{got}");
    got.as_object_mut().unwrap().remove("timing_ms");
    got
}

/// Fails, naming the first 20, when `got` differs from `want` beyond `tolerance`.
fn assert_same(tolerance: f64, want: &Value, got: &Value, what: &str) {
    let mut diffs = Vec::new();
    differences_within(tolerance, want, got, "", &mut diffs);
    assert!(
        diffs.is_empty(),
        "{what}: {} differences (first 20):\n{}",
        diffs.len(),
        diffs[..diffs.len().min(20)].join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_100_answers_as_committed() {
    let got = answer_with(&[], "").await;
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(serde_json::to_string(&got).unwrap().as_bytes())
            .unwrap();
        std::fs::create_dir_all(golden_path().parent().unwrap()).unwrap();
        std::fs::write(golden_path(), gz.finish().unwrap()).unwrap();
        eprintln!("wrote {}", golden_path().display());
        return;
    }
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(golden_path()).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let want: Value = serde_json::from_str(&text).unwrap();
    assert_same(TOLERANCE, &want, &got, "the golden answer");
    eprintln!(
        "record 100: the answer equals the golden one ({} beats, {} segments; numbers within {TOLERANCE})",
        want["summary"]["beats"], want["summary"]["segments"]
    );
}

/// The engines run a record in batches, each batch's windows made when it runs:
/// one window (and 16 beats) per run, or the whole record in one run, must give
/// the same beats, labels and (within 1e-5) probabilities as the default. Asked
/// with `include=signal,beat_attention`, so every field is compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_does_not_depend_on_the_batches() {
    let query = "?include=signal,beat_attention";
    let default = answer_with(&[], query).await;
    for flags in [["--max-batch", "1"], ["--max-batch", "1000"]] {
        let got = answer_with(&flags, query).await;
        assert_same(1e-5, &default, &got, &format!("{flags:?}"));
    }
    eprintln!(
        "record 100: the same answer in batches of 1, 16 and 1000 windows ({} beats)",
        default["summary"]["beats"]
    );
}

#[test]
fn a_moved_number_or_label_is_a_difference() {
    let want: Value = serde_json::json!({"a": [0.5, "N"], "b": {"c": 3}});
    let mut out = Vec::new();
    differences(
        &want,
        &serde_json::json!({"a": [0.50001, "N"], "b": {"c": 3}}),
        "",
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
    differences(
        &want,
        &serde_json::json!({"a": [0.6, "S"], "b": {"c": 4}}),
        "",
        &mut out,
    );
    assert_eq!(out.len(), 3, "{out:?}");
    out.clear();
    differences(
        &want,
        &serde_json::json!({"a": [0.5], "b": {}}),
        "",
        &mut out,
    );
    assert_eq!(out.len(), 2, "{out:?}");
}
