//! `ecg-serve analyze` end to end, through the binary: a folder of records
//! (WFDB with its annotations, EDF, a broken CSV) gives the answers `/predict`
//! gives, a summary table, an exit status that says one failed, a resumed run
//! that keeps what was done, and shards that split the folder.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::server::{file, fixture, post, Server};
use reqwest::multipart::Form;
use serde_json::Value;

fn folder() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecg-analyze-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("mitdb")).unwrap();
    std::fs::create_dir_all(input.join("edf")).unwrap();
    for f in ["100.hea", "100.dat", "100.atr"] {
        std::fs::write(input.join("mitdb").join(f), fixture(f)).unwrap();
    }
    std::fs::copy(
        common::fixtures().join("edf/100-2min.edf"),
        input.join("edf/100-2min.edf"),
    )
    .unwrap();
    std::fs::write(input.join("bad.csv"), "MLII\nx\n").unwrap();
    std::fs::write(input.join("notes.txt"), "not a record").unwrap();
    dir
}

fn analyze(dir: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ecg-serve"))
        .args(["analyze", "in", "--out", "out", "--model-dir"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

fn rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn without_timing(mut answer: Value) -> Value {
    answer.as_object_mut().unwrap().remove("timing_ms");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_is_analysed_as_predict_would_with_a_summary_resume_and_shards() {
    let dir = folder();
    let (code, stderr) = analyze(&dir, &["--jobs", "2"]);
    assert_eq!(code, 1, "one record fails, so the run says so: {stderr}");
    assert!(
        stderr.contains("3 records: 2 analysed, 0 kept from an earlier run, 1 failed"),
        "{stderr}"
    );
    let summary = rows(&dir.join("out/summary.jsonl"));
    let names: Vec<&str> = summary
        .iter()
        .map(|r| r["record"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bad", "edf/100-2min", "mitdb/100"]);
    let status: Vec<&str> = summary
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["failed", "ok", "ok"]);
    assert!(
        summary[0]["error"].as_str().unwrap().contains("bad.csv"),
        "{}",
        summary[0]
    );
    let csv = std::fs::read_to_string(dir.join("out/summary.csv")).unwrap();
    assert!(
        csv.starts_with(
            "record,path,status,lead,sampling_rate_hz,duration_s,beats,heart_rate_bpm,N,S,V,F,Q,"
        ),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4);

    // The answer is /predict's for the same files, timing aside.
    let written: Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/mitdb/100.json")).unwrap()).unwrap();
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let form = Form::new()
        .part("hea", file(fixture("100.hea"), "100.hea"))
        .part("dat", file(fixture("100.dat"), "100.dat"))
        .part("atr", file(fixture("100.atr"), "100.atr"));
    let (code, served) = post(&server, "", form).await;
    server.stop().await;
    assert_eq!(code, 200);
    assert_eq!(without_timing(written.clone()), without_timing(served));
    assert!(written["reference"]["sensitivity"].as_f64().unwrap() > 0.99);
    assert_eq!(summary[2]["beats"], written["summary"]["beats"]);
    let edf: Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/edf/100-2min.json")).unwrap()).unwrap();
    assert_eq!(edf["events"].as_array().unwrap().len(), 3);

    // A resumed run keeps both answers and reads their rows back unchanged.
    let (code, stderr) = analyze(&dir, &["--skip-existing"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("0 analysed, 2 kept from an earlier run, 1 failed"),
        "{stderr}"
    );
    let resumed = rows(&dir.join("out/summary.jsonl"));
    for (a, b) in summary.iter().zip(&resumed).skip(1) {
        let mut b = b.clone();
        assert_eq!(b["status"], "skipped");
        b["status"] = a["status"].clone();
        assert_eq!(*a, b);
    }

    // Two shards split the folder between them.
    let mut seen = Vec::new();
    for i in 0..2 {
        let (_, stderr) = analyze(&dir, &["--shard", &format!("{i}/2"), "--skip-existing"]);
        let part = rows(&dir.join(format!("out/summary-{i}-of-2.jsonl")));
        assert!(!part.is_empty(), "{stderr}");
        seen.extend(
            part.iter()
                .map(|r| r["record"].as_str().unwrap().to_string()),
        );
    }
    seen.sort();
    assert_eq!(seen, names);
    let (code, stderr) = analyze(&dir, &["--shard", "2/2"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("0 <= i < n"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
