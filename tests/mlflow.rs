//! Run configs and MLflow tracking end to end: `ecg-train beat --config
//! runs/smoke.yaml` against a real MLflow server (PyPI `mlflow==3.17.2` from
//! `.venv-tools/`, started here on a free loopback port with a sqlite store
//! and the artifact proxy), then the run read back through the REST API:
//! params, tags, status, a metric's history with its steps, artifacts. An
//! unreachable server is a warning and the training still succeeds. Needs
//! `../shared/data/mitdb` (the smoke run reads two of its records).

#![cfg(feature = "train")]

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Mlflow {
    child: Child,
    url: String,
}

impl Drop for Mlflow {
    /// Stops the server's whole process group: `mlflow server` starts uvicorn,
    /// a job runner and its huey consumers, which outlive a kill of the parent
    /// alone (they were left running after every test run).
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(url: &str) -> Value {
    let out = Command::new("curl").args(["-sf", url]).output().unwrap();
    assert!(out.status.success(), "GET {url} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The steps of metric `key`'s history in run `run_id`, and the history.
fn metric_steps(url: &str, run_id: &str, key: &str) -> (Vec<u64>, Value) {
    let history = get(&format!(
        "{url}/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key={key}"
    ));
    let steps = history["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_u64().unwrap())
        .collect();
    (steps, history)
}

fn start_mlflow(bin: &Path, dir: &Path) -> Mlflow {
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--workers",
            "1",
        ])
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
        .arg("--artifacts-destination")
        .arg(dir.join("artifacts"))
        .args([
            "--allowed-hosts",
            &format!("127.0.0.1:{port},localhost:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let server = Mlflow {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let up = Command::new("curl")
            .args(["-sf", &format!("{}/health", server.url)])
            .output()
            .is_ok_and(|o| o.status.success());
        if up {
            return server;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("mlflow server did not start in 120 s");
}

fn train(out: &Path, extra: &[&str]) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(env!("CARGO_BIN_EXE_ecg-train"))
        .current_dir(root)
        .args(["beat", "--config", "runs/smoke.yaml", "--out"])
        .arg(out)
        .args(extra)
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_smoke_training_is_tracked_in_a_real_mlflow_server() {
    if common::mitdb().is_none() {
        return;
    }
    let Some(mlflow) = common::python_tool("mlflow", "the MLflow tracking check") else {
        return;
    };
    let dir: PathBuf = std::env::temp_dir().join(format!("ecg-mlflow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = start_mlflow(&mlflow, &dir);
    let out = dir.join("model");
    let (ok, log) = train(
        &out,
        &[
            "--mlflow-uri",
            &server.url,
            "--mlflow-experiment",
            "smoke",
            "--folds",
            "3",
        ],
    );
    assert!(ok, "{log}");
    let run_id = log
        .lines()
        .find_map(|l| l.strip_prefix("mlflow: run "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id in the log:\n{log}"))
        .to_string();
    let run = get(&format!(
        "{}/api/2.0/mlflow/runs/get?run_id={run_id}",
        server.url
    ));
    let run = &run["run"];
    assert_eq!(run["info"]["status"], "FINISHED");
    let find = |list: &str, key: &str| -> Option<String> {
        run["data"][list]
            .as_array()?
            .iter()
            .find(|p| p["key"] == key)
            .and_then(|p| p["value"].as_str().map(String::from))
    };
    // The file's options, the flag that overrode one, the tags.
    assert_eq!(find("params", "only").as_deref(), Some("weights"));
    assert_eq!(find("params", "folds").as_deref(), Some("3"));
    assert_eq!(find("params", "mitdb-records").as_deref(), Some("101,106"));
    assert_eq!(
        find("tags", "model.name").as_deref(),
        Some("ecg-beat-smoke")
    );
    assert_eq!(
        find("tags", "mlflow.source.name").as_deref(),
        Some("ecg-train beat")
    );
    assert!(find("tags", "data.db.sha256").is_some_and(|h| h.len() == 64));
    assert!(find("tags", "mlflow.source.git.commit").is_some());
    // The selection metric of each candidate, one step each.
    let (steps, history) = metric_steps(&server.url, &run_id, "cv_score");
    assert_eq!(steps, [0, 1], "{history}");
    let metrics = run["data"]["metrics"].as_array().unwrap();
    assert!(
        metrics.iter().any(|m| m["key"] == "final.test.accuracy"),
        "{metrics:?}"
    );
    let files = get(&format!(
        "{}/api/2.0/mlflow/artifacts/list?run_id={run_id}",
        server.url
    ));
    let names: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for want in [
        "ecg-beat-smoke.onnx",
        "ecg-beat-smoke.json",
        "ecg-beat-smoke.report.json",
        "ecg-beat-smoke.run.yaml",
    ] {
        assert!(names.contains(&want), "{want} not among {names:?}");
    }
    // The run config written beside the model runs the same options again.
    let effective = std::fs::read_to_string(out.join("ecg-beat-smoke.run.yaml")).unwrap();
    assert!(effective.contains("folds: 3"), "{effective}");

    // A sweep: its own run, each trial a child run of it.
    let o = Command::new(env!("CARGO_BIN_EXE_ecg-train"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(["sweep", "runs/smoke-sweep.yaml", "--study"])
        .arg(dir.join("study"))
        .args(["--mlflow-uri", &server.url, "--mlflow-experiment", "sweep"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let experiment = get(&format!(
        "{}/api/2.0/mlflow/experiments/get-by-name?experiment_name=sweep",
        server.url
    ));
    let id = experiment["experiment"]["experiment_id"].as_str().unwrap();
    let found = Command::new("curl")
        .args(["-sf", "-H", "Content-Type: application/json", "-d"])
        .arg(format!(
            r#"{{"experiment_ids": ["{id}"], "max_results": 100}}"#
        ))
        .arg(format!("{}/api/2.0/mlflow/runs/search", server.url))
        .output()
        .unwrap();
    let runs: Value = serde_json::from_slice(&found.stdout).unwrap();
    let runs = runs["runs"].as_array().unwrap();
    let tag = |run: &Value, key: &str| -> Option<String> {
        run["data"]["tags"]
            .as_array()?
            .iter()
            .find(|t| t["key"] == key)
            .and_then(|t| t["value"].as_str().map(String::from))
    };
    let parent = runs
        .iter()
        .find(|r| r["info"]["run_name"] == "sweep smoke-sweep")
        .unwrap_or_else(|| panic!("no sweep run among {runs:?}"));
    assert_eq!(parent["info"]["status"], "FINISHED");
    let parent_id = parent["info"]["run_id"].as_str().unwrap();
    let mut children: Vec<(String, String)> = runs
        .iter()
        .filter(|r| tag(r, "mlflow.parentRunId").as_deref() == Some(parent_id))
        .map(|r| {
            (
                r["info"]["run_name"].as_str().unwrap().to_string(),
                r["info"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    children.sort();
    // The pruned trial was stopped with SIGTERM and marked its run so.
    assert_eq!(
        children,
        [
            ("trial-0".to_string(), "FINISHED".to_string()),
            ("trial-1".to_string(), "FINISHED".to_string()),
            ("trial-2".to_string(), "KILLED".to_string()),
        ]
    );
    let (steps, history) = metric_steps(&server.url, parent_id, "trial_value");
    assert_eq!(steps, [0, 1], "{history}");
    drop(server);

    // A server that is not there: a warning, and the model is still trained.
    let (ok, log) = train(
        &dir.join("offline"),
        &["--mlflow-uri", "http://127.0.0.1:9"],
    );
    assert!(ok, "{log}");
    assert!(log.contains("warning: mlflow: cannot open a run"), "{log}");
    assert!(dir.join("offline/ecg-beat-smoke.onnx").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
