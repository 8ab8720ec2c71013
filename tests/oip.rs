//! The Open Inference Protocol v2 with its real client: `tests/oip/check.py`
//! drives `tritonclient[http]` (PyPI) against a server on an ephemeral port
//! (metadata, health, readiness, JSON and binary inference equal to ONNX
//! Runtime's on the same tensors, errors). `scripts/test.sh` installs the
//! client into `.venv-tools/` (`tests/python-tools.txt`); without it the
//! client check says SKIPPED, unless ECG_REQUIRE_PYTHON_TOOLS=1 (CI), where
//! it fails. The protocol's rules that need no client are
//! checked here with reqwest either way.

mod common;

use std::process::Command;

use common::server::Server;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_talks_to_the_server() {
    let Some(py) = common::python_tool("python", "the OIP client check") else {
        return;
    };
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let url = server.url("").trim_start_matches("http://").to_string();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .current_dir(root)
            .args(["tests/oip/check.py", &url, "models"])
            .output()
    })
    .await
    .unwrap()
    .expect("python runs");
    server.stop().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "tritonclient check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_rules_and_errors() {
    let server = Server::start(&["--api-key", "k"]).await;
    server.wait_ready().await;
    // The shipped beat model's card: its version and its features' width.
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string("models/ecg-beat.json").unwrap()).unwrap();
    let w = card["input"]["shape"][1].as_u64().unwrap() as usize;
    let ready = format!(
        "/v2/models/ecg-beat/versions/{}/ready",
        card["version"].as_str().unwrap()
    );
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(server.url(path)).send();
    for (path, status) in [
        ("/v2", 200),
        ("/v2/health/live", 200),
        ("/v2/health/ready", 200),
        ("/v2/models/ecg-segment/ready", 200),
        (ready.as_str(), 200),
        ("/v2/models/ecg-beat/versions/9.9.9", 404),
        ("/v2/models/nope/ready", 404),
    ] {
        assert_eq!(get(path).await.unwrap().status().as_u16(), status, "{path}");
    }
    let infer = |body: Value, key: Option<&str>| {
        let mut r = client
            .post(server.url("/v2/models/ecg-beat/infer"))
            .json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    let features = |rows: usize| {
        json!({"inputs": [{"name": "features", "shape": [rows, w], "datatype": "FP32",
            "data": vec![vec![0.5f32; w]; rows]}]})
    };
    // Inference is guarded by the API key, as /predict is.
    let r = infer(features(2), None).await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = infer(features(2), Some("k")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["model_name"], "ecg-beat");
    assert_eq!(body["outputs"][0]["shape"], json!([2, 5]));
    assert_eq!(body["outputs"][0]["data"].as_array().unwrap().len(), 10);
    // The heartbeat-rows model: `signal` [-1, 1, 187] in, `logits` out.
    let r = client
        .post(server.url("/v2/models/ecg-heartbeat/infer"))
        .bearer_auth("k")
        .json(
            &json!({"inputs": [{"name": "signal", "shape": [3, 1, 187], "datatype": "FP32",
            "data": vec![0.25f32; 3 * 187]}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["model_name"], "ecg-heartbeat");
    assert_eq!(body["outputs"][0]["shape"], json!([3, 5]));
    let (two, zero) = (
        format!("2 values for shape [1, {w}]"),
        format!("shape [0, {w}]"),
    );
    for (bad, says) in [
        (json!({"inputs": []}), "input `features` is missing"),
        (
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}),
            "unknown input `x`",
        ),
        (
            json!({"inputs": [{"name": "features", "shape": [1, w], "datatype": "INT64", "data": [1]}]}),
            "datatype `INT64`",
        ),
        (
            json!({"inputs": [{"name": "features", "shape": [1, w], "datatype": "FP32", "data": [1, 2]}]}),
            two.as_str(),
        ),
        (
            json!({"inputs": [{"name": "features", "shape": [0, w], "datatype": "FP32", "data": []}]}),
            zero.as_str(),
        ),
        (
            json!({"inputs": [{"name": "features", "shape": [4611686018427387904i64, w], "datatype": "FP32", "data": []}]}),
            "holds more values than",
        ),
        (
            json!({"inputs": [{"name": "features", "shape": [1, w], "datatype": "FP32", "data": ["a"]}]}),
            "is not a number",
        ),
        (
            json!({"inputs": [{"name": "features", "shape": [1, w], "datatype": "FP32", "data": vec![0; w]}], "outputs": [{"name": "attention"}]}),
            "unknown output `attention`",
        ),
        (json!({"inputs": "nope"}), "not valid JSON of the protocol"),
    ] {
        // The request id pads the body past a row's values, so that what is
        // wrong is the case's own fault, not the body's size.
        let mut padded = bad.clone();
        if let Some(o) = padded.as_object_mut() {
            o.insert("id".into(), json!("x".repeat(4 * w)));
        }
        let r = infer(padded, Some("k")).await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{bad}: {body}"
        );
    }
    server.stop().await;
}
