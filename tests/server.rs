//! Integration tests: the real server on an ephemeral port, real HTTP, the
//! committed model. Covers the checks: WFDB and CSV agree, formats 212 and
//! 16 agree, resampled input mostly agrees, every error status comes from a real
//! bad request, readiness, and draining on shutdown.

mod common;

use common::server::{config, file, fixture, post, wfdb_form, Server};

use std::path::PathBuf;
use std::time::Duration;

use ecg_serve::server::{probe_ready, serve};
use ecg_serve::signal::wfdb::{write_record, Format};
use reqwest::multipart::Form;
use serde_json::Value;

async fn post_status(url: String, form: Form) -> u16 {
    reqwest::Client::new()
        .post(url)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn labels(v: &Value) -> Vec<String> {
    v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap().to_string())
        .collect()
}

fn record_100_csv() -> Vec<u8> {
    let (rec, _) = common::load(&common::fixtures().join("mitdb"), "100");
    let mut s = String::from("'sample #','MLII','V5'\n");
    for i in 0..rec.n_samples() {
        s.push_str(&format!(
            "{i},{},{}\n",
            rec.leads[0].samples[i], rec.leads[1].samples[i]
        ));
    }
    s.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_100_as_wfdb_and_as_csv_give_the_same_labels() {
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let form = wfdb_form(fixture("100.hea"), fixture("100.dat"));
    let (status, wfdb) = post(&server, "", form).await;
    assert_eq!(status, 200, "{wfdb}");
    assert_eq!(wfdb["record"]["name"], "100");
    assert_eq!(wfdb["record"]["lead"], "MLII");
    assert_eq!(wfdb["record"]["n_samples"], 650000);
    assert_eq!(wfdb["summary"]["segments"], 361);
    let beats = wfdb["beats"].as_array().unwrap();
    assert!(
        (2263..=2283).contains(&beats.len()),
        "{} beats",
        beats.len()
    );
    assert!(
        beats[0]["sample"].as_u64().unwrap().abs_diff(77) <= 10,
        "first beat {} (reference: sample 77)",
        beats[0]
    );
    let seg = &wfdb["segments"][0];
    let token_s = seg["attention"]["token_s"].as_f64().unwrap();
    let tokens = seg["attention"]["weights"].as_array().unwrap().len();
    assert_eq!(
        tokens,
        (10.0 / token_s).floor() as usize,
        "one weight per token"
    );
    let sum: f64 = seg["attention"]["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-3, "attention sums to {sum}");
    let p = &seg["probabilities"];
    assert!((p["Normal"].as_f64().unwrap() + p["Abnormal"].as_f64().unwrap() - 1.0).abs() < 1e-4);
    let hr = wfdb["summary"]["heart_rate_bpm"].as_f64().unwrap();
    assert!((70.0..80.0).contains(&hr), "{hr}");

    let form = Form::new().part("file", file(record_100_csv(), "100.csv"));
    let (status, csv) = post(&server, "?fs=360", form).await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(labels(&wfdb), labels(&csv));
    assert_eq!(wfdb["beats"], csv["beats"]);
    server.stop().await;
}

/// Issue 5's serving: every beat labelled, counts and burden, the reference
/// comparison against the uploaded `.atr`, the CSV beat table, beat attention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beats_are_labelled_compared_with_the_reference_and_served_as_csv() {
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let form = wfdb_form(fixture("100.hea"), fixture("100.dat"))
        .part("atr", file(fixture("100.atr"), "100.atr"));
    let (status, v) = post(&server, "?include=beat_attention", form).await;
    assert_eq!(status, 200, "{v}");
    let beats = v["beats"].as_array().unwrap();
    let counts = &v["summary"]["beat_counts"];
    let total: u64 = ["N", "S", "V", "F", "Q"]
        .iter()
        .map(|c| counts[c].as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, beats.len(), "{counts}");
    // Record 100: 2239 N, 33 S, 1 V in the reference; the model must find mostly N.
    assert!(counts["N"].as_u64().unwrap() > 2150, "{counts}");
    let burden = v["summary"]["ectopic_burden"].as_f64().unwrap();
    let s_v = counts["S"].as_u64().unwrap() + counts["V"].as_u64().unwrap();
    assert!((burden - 100.0 * s_v as f64 / beats.len() as f64).abs() < 1e-9);
    for b in beats {
        let p = &b["probabilities"];
        let sum: f64 = ["N", "S", "V", "F", "Q"]
            .iter()
            .map(|c| p[c].as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-3, "{b}");
        let label = b["label"].as_str().unwrap();
        let best = ["N", "S", "V", "F", "Q"]
            .iter()
            .max_by(|a, c| {
                p[**a]
                    .as_f64()
                    .unwrap()
                    .total_cmp(&p[**c].as_f64().unwrap())
            })
            .unwrap();
        assert_eq!(label, *best, "{b}");
        // The beat model 2 reads features and has no attention: none, and a warning.
        assert!(b.get("attention").is_none(), "{b}");
    }
    let warned = v["warnings"].as_array().unwrap();
    assert!(
        warned
            .iter()
            .any(|w| w.as_str().unwrap().contains("has no attention")),
        "{warned:?}"
    );
    assert_eq!(v["beat_model"]["name"], "ecg-beat");
    let r = &v["reference"];
    assert_eq!(r["reference_beats"], 2273, "{r}");
    assert!(r["sensitivity"].as_f64().unwrap() > 0.995, "{r}");
    assert!(r["positive_predictivity"].as_f64().unwrap() > 0.995, "{r}");
    let confusion = r["classification"]["confusion"].as_array().unwrap();
    let matched: u64 = confusion
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(matched, r["true_positives"].as_u64().unwrap());
    assert_eq!(
        confusion[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .sum::<u64>(),
        2239,
        "reference N row"
    );

    // Without include=beat_attention the beats carry no attention; no atr, no reference.
    let (_, plain) = post(
        &server,
        "",
        wfdb_form(fixture("100.hea"), fixture("100.dat")),
    )
    .await;
    assert!(plain["beats"][0].get("attention").is_none());
    assert!(plain.get("reference").is_none());
    assert_eq!(plain["beats"][0]["label"], v["beats"][0]["label"]);

    // The beat table as CSV, by query and by Accept header.
    for (query, accept) in [("?format=csv", "*/*"), ("", "text/csv")] {
        let r = reqwest::Client::new()
            .post(server.url(&format!("/predict{query}")))
            .header("accept", accept)
            .multipart(wfdb_form(fixture("100.hea"), fixture("100.dat")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        let text = r.text().await.unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "sample,time_s,label,p_N,p_S,p_V,p_F,p_Q"
        );
        let first: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(first[0], plain["beats"][0]["sample"].to_string());
        assert_eq!(first[2], plain["beats"][0]["label"].as_str().unwrap());
        assert_eq!(text.lines().count(), beats.len() + 1);
    }
    // gzip for clients that accept it.
    let r = reqwest::Client::new()
        .post(server.url("/predict"))
        .header("accept-encoding", "gzip")
        .multipart(wfdb_form(fixture("100.hea"), fixture("100.dat")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let zipped = r.bytes().await.unwrap().len();
    assert!(
        zipped * 2 < serde_json::to_vec(&plain).unwrap().len(),
        "{zipped} bytes gzipped"
    );
    // Unknown include parts and answer formats are named in a 400.
    for (query, field) in [
        ("?include=everything", "include"),
        ("?format=xml", "format"),
    ] {
        let (status, body) = post(
            &server,
            query,
            wfdb_form(fixture("100.hea"), fixture("100.dat")),
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["detail"]["field"], field, "{body}");
    }
    server.stop().await;
}

/// `--beat-model none`: beats without labels, no counts, a two-column CSV; a
/// missing beat model makes the service unready, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_beat_model_beats_come_unlabelled() {
    let server = Server::start(&["--beat-model", "none"]).await;
    server.wait_ready().await;
    let (status, v) = post(
        &server,
        "",
        wfdb_form(fixture("100.hea"), fixture("100.dat")),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["beats"].as_array().unwrap().len() > 2000);
    assert!(v["beats"][0].get("label").is_none(), "{}", v["beats"][0]);
    assert!(v["summary"].get("beat_counts").is_none());
    assert!(v.get("beat_model").is_none());
    let text = reqwest::Client::new()
        .post(server.url("/predict?format=csv"))
        .multipart(wfdb_form(fixture("100.hea"), fixture("100.dat")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.lines().next(), Some("sample,time_s"));
    server.stop().await;

    let server = Server::start(&["--beat-model", "no-such-beat-model"]).await;
    // The segment model may still be loading at first: wait for the verdict.
    let mut body = Value::Null;
    for _ in 0..200 {
        let r = reqwest::get(server.url("/health/ready")).await.unwrap();
        assert_eq!(r.status(), 503);
        body = r.json().await.unwrap();
        if body["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        body["reason"].as_str().unwrap().contains("beat model")
            && body["reason"]
                .as_str()
                .unwrap()
                .contains("no-such-beat-model.json"),
        "{body}"
    );
    server.stop().await;
}

/// Record 100's reference beats as heartbeat rows, in the Kaggle file's
/// spelling (`1.000000000000000000e+00`), with the class column or without.
fn record_100_rows(with_class: bool) -> (Vec<u8>, Vec<u8>) {
    let (rec, ann) = common::load(&common::fixtures().join("mitdb"), "100");
    let beats: Vec<_> = ann.iter().filter(|a| a.is_beat()).collect();
    let at: Vec<usize> = beats.iter().map(|a| a.sample as usize).collect();
    let rows =
        ecg_serve::signal::heartbeat::heartbeat_rows(&rec.leads[0].samples, rec.sampling_rate, &at)
            .unwrap();
    let mut text = String::new();
    let mut classes = Vec::new();
    for r in &rows {
        let class = beats[r.beat].aami().map_or(4, |c| c.index()) as u8;
        let mut cells: Vec<String> = r.samples.iter().map(|v| format!("{:.18e}", v)).collect();
        if with_class {
            cells.push(format!("{:.18e}", class as f64));
        }
        text.push_str(&cells.join(","));
        text.push('\n');
        classes.push(class);
    }
    (text.into_bytes(), classes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_rows_are_recognised_and_labelled_row_by_row() {
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let (csv, classes) = record_100_rows(true);
    let n = classes.len();
    assert!(n > 2000, "{n} rows");
    let form = Form::new().part("file", file(csv.clone(), "mitbih_test.csv"));
    let (status, v) = post(&server, "", form).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["heartbeat_model"]["name"], "ecg-heartbeat");
    assert_eq!(v["rows"], n);
    let predictions = v["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), n);
    assert_eq!(predictions[0]["row"], 1);
    let first = &predictions[0];
    let p: f64 = first["probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|x| x.as_f64().unwrap())
        .sum();
    assert!((p - 1.0).abs() < 1e-4, "{first}");
    assert_eq!(first["reference"], "N");
    // Record 100 is 99 % N (and a training record of the model): most rows agree.
    let agreement = v["agreement"].as_f64().unwrap();
    assert!(agreement > 0.9, "agreement {agreement}");
    let counted: u64 = v["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, n);
    // Without the class column: the same labels, no reference.
    let (bare, _) = record_100_rows(false);
    let (status, w) = post(
        &server,
        "",
        Form::new().part("file", file(bare, "rows.csv")),
    )
    .await;
    assert_eq!(status, 200, "{w}");
    assert!(w.get("agreement").is_none() && w["predictions"][0].get("reference").is_none());
    let same = (0..n)
        .filter(|&i| w["predictions"][i]["label"] == v["predictions"][i]["label"])
        .count();
    assert_eq!(same, n);
    // As CSV.
    let text = reqwest::Client::new()
        .post(server.url("/predict?format=csv"))
        .multipart(Form::new().part("file", file(csv.clone(), "rows.csv")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        text.lines().next(),
        Some("row,label,p_F,p_N,p_Q,p_S,p_V,reference")
    );
    assert_eq!(text.lines().count(), n + 1);
    // A bad row: 422 naming the row and the column.
    let mut lines: Vec<String> = String::from_utf8(csv)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines[4] = lines[4]
        .replacen(',', ",x,", 1)
        .rsplit_once(',')
        .unwrap()
        .0
        .to_string();
    let (status, e) = post(
        &server,
        "",
        Form::new().part("file", file(lines.join("\n").into_bytes(), "rows.csv")),
    )
    .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(
        (e["detail"]["row"].as_u64(), e["detail"]["column"].as_u64()),
        (Some(5), Some(2)),
        "{e}"
    );
    let mut lines: Vec<String> = lines.into_iter().take(3).collect();
    lines[2] = lines[2].rsplit_once(',').unwrap().0.to_string() + ",7";
    let (status, e) = post(
        &server,
        "",
        Form::new().part("file", file(lines.join("\n").into_bytes(), "rows.csv")),
    )
    .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(
        (e["detail"]["row"].as_u64(), e["detail"]["column"].as_u64()),
        (Some(3), Some(188)),
        "{e}"
    );
    assert!(e["error"].as_str().unwrap().contains("N S V F Q"), "{e}");
    // A picture needs a recording.
    let (status, e) = post(
        &server,
        "?format=svg",
        Form::new().part("file", file(record_100_rows(false).0, "rows.csv")),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    server.stop().await;

    let server = Server::start(&["--heartbeat-model", "none"]).await;
    server.wait_ready().await;
    let (status, e) = post(
        &server,
        "",
        Form::new().part("file", file(record_100_rows(true).0, "rows.csv")),
    )
    .await;
    assert_eq!(status, 422, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("no heartbeat model"),
        "{e}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_212_and_16_agree_and_resampled_input_mostly_agrees() {
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let (rec, _) = common::load(&common::fixtures().join("mitdb"), "100");
    let adc: Vec<Vec<i32>> = rec
        .leads
        .iter()
        .map(|l| {
            l.samples
                .iter()
                .map(|v| (v * 200.0).round() as i32 + 1024)
                .collect()
        })
        .collect();
    let mut results = Vec::new();
    let mut dat16 = Vec::new();
    for format in [Format::F212, Format::F16] {
        let (hea, dat) = write_record(
            "syn",
            360.0,
            format,
            &[("MLII", 200.0, 1024, &adc[0]), ("V5", 200.0, 1024, &adc[1])],
        );
        dat16 = dat.clone();
        let form = Form::new()
            .part("hea", file(hea.into_bytes(), "syn.hea"))
            .part("dat", file(dat, "syn.dat"));
        let (status, body) = post(&server, "", form).await;
        assert_eq!(status, 200, "{body}");
        results.push(body);
    }
    assert_eq!(labels(&results[0]), labels(&results[1]));
    // The format-16 .dat alone, its layout in `dat_format` (or in the old
    // spelling `format=16`, which still works and says it is deprecated).
    let layout = "channels=2&fs=360&gain=200&baseline=1024";
    for (query, deprecated) in [("dat_format=16", false), ("format=16", true)] {
        let form = Form::new().part("dat", file(dat16.clone(), "syn.dat"));
        let (status, body) = post(&server, &format!("?{query}&{layout}"), form).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(body["record"]["source"], "dat");
        assert_eq!(labels(&body), labels(&results[1]), "{query}");
        let warned = body["warnings"].as_array().unwrap().iter().any(|w| {
            w.as_str()
                .unwrap()
                .contains("deprecated; send dat_format=16")
        });
        assert_eq!(warned, deprecated, "{query}: {}", body["warnings"]);
    }
    assert_eq!(
        results[0]["segments"][7]["probabilities"],
        results[1]["segments"][7]["probabilities"]
    );

    // The same record at 250 Hz (our resampler, written as format 16).
    let down: Vec<Vec<i32>> = rec
        .leads
        .iter()
        .map(|l| {
            ecg_serve::signal::resample::resample(&l.samples, 360.0, 250.0)
                .unwrap()
                .iter()
                .map(|v| (v * 1000.0).round() as i32)
                .collect()
        })
        .collect();
    let (hea, dat) = write_record(
        "r250",
        250.0,
        Format::F16,
        &[("MLII", 1000.0, 0, &down[0]), ("V5", 1000.0, 0, &down[1])],
    );
    let form = Form::new()
        .part("hea", file(hea.into_bytes(), "r250.hea"))
        .part("dat", file(dat, "r250.dat"));
    let (status, body) = post(&server, "", form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["sampling_rate_hz"], 250.0);
    let (a, b) = (labels(&results[0]), labels(&body));
    let n = a.len().min(b.len());
    let same = (0..n).filter(|&i| a[i] == b[i]).count();
    assert!(same as f64 >= 0.9 * n as f64, "{same}/{n} windows agree");
    assert!(body["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("resampled")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_documented_statuses() {
    let server = Server::start(&["--max-body-mb", "1", "--api-key", "s3cret"]).await;
    server.wait_ready().await;
    let client = reqwest::Client::new();
    let send = |form: Form, key: Option<&str>| {
        let mut req = client.post(server.url("/predict")).multipart(form);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    let check = |r: reqwest::Response, status: u16, error_type: &'static str| async move {
        assert_eq!(r.status().as_u16(), status);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_type"], error_type, "{body}");
        assert!(body["error"].as_str().unwrap().len() > 10, "{body}");
        body
    };
    let csv = || Form::new().part("file", file(b"MLII\n1\n2\n".to_vec(), "x.csv"));
    check(send(csv(), None).await.unwrap(), 401, "unauthorized").await;
    check(
        send(csv(), Some("wrong")).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let key = Some("s3cret");
    check(
        send(Form::new().text("note", "hello"), key).await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    check(
        send(
            Form::new().part("upload", file(b"x".to_vec(), "x.pdf")),
            key,
        )
        .await
        .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    // A part `file` is the CSV recording the form documents; a PDF there is
    // told so by its own name.
    let body = check(
        send(Form::new().part("file", file(b"x".to_vec(), "x.pdf")), key)
            .await
            .unwrap(),
        422,
        "invalid_signal",
    )
    .await;
    assert_eq!(body["detail"]["file"], "x.pdf", "{body}");
    let r = client
        .post(server.url("/predict"))
        .bearer_auth("s3cret")
        .body("not multipart")
        .send()
        .await
        .unwrap();
    check(r, 415, "unsupported_media_type").await;
    check(send(Form::new(), key).await.unwrap(), 400, "bad_request").await;
    let body = check(send(csv(), key).await.unwrap(), 422, "invalid_signal").await;
    assert!(
        body["error"].as_str().unwrap().contains("sampling rate"),
        "{body}"
    );
    let short = Form::new().part("file", file(b"MLII\n1\n2\n".to_vec(), "x.csv"));
    let r = client
        .post(server.url("/predict?fs=360"))
        .bearer_auth("s3cret")
        .multipart(short)
        .send()
        .await
        .unwrap();
    check(r, 422, "invalid_signal").await;
    let hea = Form::new()
        .part("hea", file(fixture("100.hea"), "100.hea"))
        .part("dat", file(vec![0u8; 1000], "100.dat"));
    let body = check(send(hea, key).await.unwrap(), 422, "invalid_signal").await;
    assert_eq!(body["detail"]["file"], "100.dat");
    // The server answers 413 before it has read the whole body and closes the
    // connection; a client still uploading may see the reset instead of the
    // answer (seen on a loaded 2-core machine), so up to three tries must see it.
    let mut errors = Vec::new();
    for _ in 0..3 {
        let big = Form::new().part("dat", file(vec![0u8; 2 * 1024 * 1024], "x.dat"));
        match send(big, key).await {
            Ok(r) => {
                check(r, 413, "payload_too_large").await;
                errors.clear();
                break;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert!(
        errors.is_empty(),
        "oversized body, no 413 in three tries: {errors:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_model_is_not_ready_with_a_reason() {
    let server = Server::start(&["--model", "no-such-model"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = reqwest::get(server.url("/health/ready")).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "failed");
    let addr = server.addr.to_string();
    let probe = tokio::task::spawn_blocking(move || probe_ready(&addr))
        .await
        .unwrap();
    assert_eq!(probe, Err("/health/ready answered 503".to_string()));
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("no-such-model.json"),
        "{body}"
    );
    assert_eq!(
        reqwest::get(server.url("/health/live"))
            .await
            .unwrap()
            .status(),
        200
    );
    let form = Form::new().part("file", file(b"MLII\n1\n".to_vec(), "x.csv"));
    let (status, body) = post(&server, "?fs=360", form).await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (503, Some("not_ready"))
    );
    server.stop().await;

    // A beat model where the segment model goes: not ready, and says why.
    let server = Server::start(&["--model", "ecg-beat"]).await;
    let mut body = Value::Null;
    for _ in 0..100 {
        body = reqwest::get(server.url("/health/ready"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["status"] != "loading" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(body["status"], "failed", "{body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("is a beat model; a segment model is needed"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_429_and_shutdown_drains_in_flight_requests() {
    let server = Server::start(&["--queue-size", "1", "--sessions", "1"]).await;
    server.wait_ready().await;
    let hea = fixture("100.hea");
    let dat = fixture("100.dat");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(tokio::spawn(post_status(
            server.url("/predict"),
            wfdb_form(hea.clone(), dat.clone()),
        )));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&200) && statuses.contains(&429),
        "{statuses:?}"
    );

    // A request in flight when shutdown starts still gets its answer.
    let in_flight = tokio::spawn(post_status(server.url("/predict"), wfdb_form(hea, dat)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop().await;
    assert_eq!(in_flight.await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_endpoints() {
    let server = Server::start(&[]).await;
    let ready = server.wait_ready().await;
    assert_eq!(ready["provider"], "cpu");
    // The container's HEALTHCHECK (`ecg-serve --probe-ready`) agrees.
    let addr = server.addr.to_string();
    let probe = tokio::task::spawn_blocking(move || probe_ready(&addr));
    assert_eq!(probe.await.unwrap(), Ok(()));
    let r = reqwest::get(server.url("/health/live")).await.unwrap();
    assert!(r.headers().contains_key("x-request-id"));
    let info: Value = reqwest::get(server.url("/info"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["model"]["preprocessing"]["sample_rate_hz"], 360.0);
    assert!(info["limits"]["max_body_bytes"].as_u64().unwrap() >= 64 * 1024 * 1024);
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ecg_requests_total"), "{metrics}");
    let page = reqwest::get(server.url("/swagger-ui/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let doc: Value = reqwest::get(server.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/predict"]["post"].is_object());
    // CORS is closed by default: no allow-origin header for a foreign origin.
    let r = reqwest::Client::new()
        .get(server.url("/info"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    server.stop().await;
}

#[test]
fn committed_openapi_document_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let generated = ecg_serve::server::openapi::json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test --test server committed_openapi` and commit it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuda_that_cannot_start_refuses_to_serve_unless_fallback_is_allowed() {
    // This test binary is built without the `cuda` feature, so CUDA cannot start.
    if cfg!(feature = "cuda") {
        eprintln!("built with `cuda`: the refusal path needs a machine without CUDA; SKIPPED");
        return;
    }
    let refused = serve(config(&["--execution-provider", "cuda"]), async {}, |_| {
        panic!("must not bind")
    })
    .await;
    let message = format!("{:#}", refused.unwrap_err());
    assert!(message.contains("--allow-cpu-fallback"), "{message}");
    // With the fallback it serves on the CPU and says so.
    let server = Server::start(&["--execution-provider", "cuda", "--allow-cpu-fallback"]).await;
    assert_eq!(server.wait_ready().await["provider"], "cpu");
    server.stop().await;
}

/// A PTB record (1000 Hz, 15 leads in two signal files, `.dat` + `.xyz`:
/// the committed fixture) uploads with each file as a part by its name;
/// without its `.xyz` it is a 422 that names the missing file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_in_two_signal_files_is_read_from_both() {
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let dir = common::fixtures().join("ptb/patient001");
    let read = |ext: &str| std::fs::read(dir.join(format!("s0001_re.{ext}"))).unwrap();
    let form = |with_xyz: bool| {
        let f = Form::new()
            .part("hea", file(read("hea"), "s0001_re.hea"))
            .part("dat", file(read("dat"), "s0001_re.dat"));
        if with_xyz {
            f.part("xyz", file(read("xyz"), "s0001_re.xyz"))
        } else {
            f
        }
    };
    let (status, body) = post(&server, "", form(true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["record"]["leads"].as_array().unwrap().len(),
        15,
        "{body}"
    );
    assert_eq!(body["record"]["sampling_rate_hz"], 1000.0);
    assert!(body["summary"]["beats"].as_u64().unwrap() > 10, "{body}");
    let (status, body) = post(&server, "", form(false)).await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("missing: s0001_re.xyz"), "{error}");
    assert_eq!(body["detail"]["field"], "dat", "{body}");
    server.stop().await;
}
