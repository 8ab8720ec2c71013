//! MLflow tracking, over MLflow's REST API (`/api/2.0/mlflow/...`; artifacts
//! through the tracking server's artifact proxy, `/api/2.0/mlflow-artifacts/`),
//! when `--mlflow-uri` / `MLFLOW_TRACKING_URI` is set; nothing otherwise.
//!
//! One run per training: the experiment by name (created if missing), the run's
//! options as params (logged once: MLflow's params are immutable), tags (git
//! commit, data set hashes, host, then the card's model name and version),
//! metrics with their step as the trainers produce them, artifacts at the end,
//! and the status: `FINISHED`, `FAILED`, or `KILLED` on Ctrl-C.
//!
//! A tracking server that is down or slow never costs the training: every
//! call has a timeout, a failure is a warning (the first of each kind is
//! printed), and the trainer's own files (`<name>.metrics.jsonl`, the report)
//! hold everything anyway. The trainers call [`log_metrics`] wherever they
//! are; like the `metrics` facade of the server, it is a no-op until [`start`]
//! succeeded. Plain `http://` only: this build carries no TLS.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The run in progress.
struct Run {
    http: reqwest::blocking::Client,
    /// The tracking server, without a trailing slash.
    base: String,
    run_id: String,
    /// `<experiment>/<run>/artifacts` under the artifact proxy, when the
    /// server proxies artifacts.
    artifacts: Option<String>,
    /// The kinds of failure already reported.
    warned: BTreeSet<String>,
}

static RUN: OnceLock<Mutex<Run>> = OnceLock::new();

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn call(request: reqwest::blocking::RequestBuilder) -> Result<Value, String> {
    let response = request.send().map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.text().map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!(
            "{status}: {}",
            text.chars().take(300).collect::<String>()
        ));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Run {
    fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        call(self.http.post(url).json(&body))
    }

    fn warn(&mut self, what: &str, why: &str) {
        if self.warned.insert(what.to_string()) {
            eprintln!(
                "warning: mlflow: {what} failed ({why}); training goes on, its files keep every figure"
            );
        }
    }
}

/// Opens the run: finds or creates `experiment`, creates a run named
/// `run_name` with `tags`, logs `params`. On failure, warns and leaves
/// tracking off.
pub fn start(
    uri: &str,
    experiment: &str,
    run_name: &str,
    params: &[(String, String)],
    tags: &[(String, String)],
) {
    let base = uri.trim_end_matches('/').to_string();
    if !base.starts_with("http://") {
        eprintln!(
            "warning: mlflow: tracking URI `{uri}` is not http://...; this build speaks plain HTTP only: tracking is off"
        );
        return;
    }
    let http = match reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warning: mlflow: no HTTP client ({e}): tracking is off");
            return;
        }
    };
    let opened = (|| -> Result<Run, String> {
        let url = reqwest::Url::parse_with_params(
            &format!("{base}/api/2.0/mlflow/experiments/get-by-name"),
            [("experiment_name", experiment)],
        )
        .map_err(|e| e.to_string())?;
        let found = call(http.get(url));
        let experiment_id = match found {
            Ok(v) => v["experiment"]["experiment_id"]
                .as_str()
                .map(String::from)
                .ok_or("no experiment_id in the answer")?,
            Err(e) if e.contains("RESOURCE_DOES_NOT_EXIST") => {
                let url = format!("{base}/api/2.0/mlflow/experiments/create");
                let v = call(http.post(url).json(&json!({ "name": experiment })))?;
                v["experiment_id"]
                    .as_str()
                    .map(String::from)
                    .ok_or("no experiment_id in the answer")?
            }
            Err(e) => return Err(e),
        };
        let url = format!("{base}/api/2.0/mlflow/runs/create");
        let parent = std::env::var(PARENT_ENV)
            .ok()
            .map(|p| ("mlflow.parentRunId".to_string(), p));
        let tags: Vec<Value> = tags
            .iter()
            .chain(parent.as_ref())
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        let run_name = std::env::var(RUN_NAME_ENV).unwrap_or_else(|_| run_name.to_string());
        let created = call(http.post(url).json(&json!({
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": now_ms(),
            "tags": tags,
        })))?;
        let info = &created["run"]["info"];
        let run_id = info["run_id"].as_str().ok_or("no run_id in the answer")?;
        let artifacts = info["artifact_uri"]
            .as_str()
            .and_then(|u| u.strip_prefix("mlflow-artifacts:/"))
            .map(|p| p.trim_start_matches('/').to_string());
        Ok(Run {
            http: http.clone(),
            base: base.clone(),
            run_id: run_id.to_string(),
            artifacts,
            warned: BTreeSet::new(),
        })
    })();
    let mut run = match opened {
        Ok(run) => run,
        Err(why) => {
            eprintln!("warning: mlflow: cannot open a run at {base} ({why}): tracking is off, training goes on");
            return;
        }
    };
    // Params in batches of 100 (the API's limit), values at most 6000 characters.
    for chunk in params.chunks(100) {
        let params: Vec<Value> = chunk
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v.chars().take(6000).collect::<String>() }))
            .collect();
        let body = json!({ "run_id": run.run_id, "params": params });
        if let Err(e) = run.post("runs/log-batch", body) {
            run.warn("logging params", &e);
        }
    }
    eprintln!(
        "mlflow: run {} in experiment `{experiment}` at {base}",
        run.run_id
    );
    let _ = RUN.set(Mutex::new(run));
}

fn with_run(f: impl FnOnce(&mut Run)) {
    if let Some(run) = RUN.get() {
        if let Ok(mut run) = run.lock() {
            f(&mut run);
        }
    }
}

/// The environment variable that names a sweep's run, whose child this run is.
pub const PARENT_ENV: &str = "ECG_MLFLOW_PARENT_RUN";

/// The environment variable that names the run in place of the model's name
/// (a sweep's trials: `trial-<n>`).
pub const RUN_NAME_ENV: &str = "ECG_MLFLOW_RUN_NAME";

/// The open run's id.
pub fn run_id() -> Option<String> {
    RUN.get()?.lock().ok().map(|r| r.run_id.clone())
}

/// Logs `metrics` at `step` (non-finite values are left out: MLflow refuses
/// them); also, when `ecg-train sweep` runs this training as a trial, to the
/// file it reads them from ([`super::sweep::METRICS_ENV`]).
pub fn log_metrics(metrics: &[(&str, f64)], step: u64) {
    if let Some(path) = std::env::var_os(super::sweep::METRICS_ENV) {
        use std::io::Write;
        let lines: String = metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| format!("{}\n", json!({ "key": k, "value": v, "step": step })))
            .collect();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(lines.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "warning: cannot write the sweep's metrics to {}: {e}",
                path.to_string_lossy()
            );
        }
    }
    with_run(|run| {
        let at = now_ms();
        let list: Vec<Value> = metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| json!({ "key": k, "value": v, "timestamp": at, "step": step }))
            .collect();
        for chunk in list.chunks(1000) {
            let body = json!({ "run_id": run.run_id, "metrics": chunk });
            if let Err(e) = run.post("runs/log-batch", body) {
                run.warn("logging metrics", &e);
            }
        }
    });
}

/// Sets `tags` on the run.
pub fn set_tags(tags: &[(String, String)]) {
    with_run(|run| {
        let tags: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        let body = json!({ "run_id": run.run_id, "tags": tags });
        if let Err(e) = run.post("runs/log-batch", body) {
            run.warn("setting tags", &e);
        }
    });
}

/// Uploads each of `files` that exists as an artifact of the run (at its top).
pub fn log_artifacts(files: &[std::path::PathBuf]) {
    with_run(|run| {
        let Some(root) = run.artifacts.clone() else {
            run.warn(
                "uploading artifacts",
                "the server does not proxy artifacts (start it with --serve-artifacts)",
            );
            return;
        };
        for file in files.iter().filter(|f| f.is_file()) {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            let url = format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{root}/{name}",
                run.base
            );
            let sent = std::fs::read(file)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    call(
                        run.http
                            .put(url)
                            .timeout(Duration::from_secs(300))
                            .body(bytes),
                    )
                });
            if let Err(e) = sent {
                run.warn("uploading artifacts", &format!("{name}: {e}"));
            }
        }
    });
}

/// Closes the run with `status` (`FINISHED`, `FAILED`, `KILLED`).
pub fn finish(status: &str) {
    with_run(|run| {
        let body = json!({ "run_id": run.run_id, "status": status, "end_time": now_ms() });
        if let Err(e) = run.post("runs/update", body) {
            run.warn("closing the run", &e);
        }
    });
}

/// Every number in `report` whose path runs through objects only (lists are
/// per-record or per-candidate tables, left to the report file), as
/// `prefix.path.to.value`.
pub fn numbers(report: &Value, prefix: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    fn walk(v: &Value, path: String, out: &mut Vec<(String, f64)>) {
        match v {
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.push((path, x));
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    // MLflow keys: letters, digits, `_ - . / space`.
                    let key: String = k
                        .chars()
                        .map(|c| {
                            if c.is_alphanumeric() || "_-. /".contains(c) {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    walk(v, format!("{path}.{key}"), out);
                }
            }
            _ => {}
        }
    }
    walk(report, prefix.to_string(), &mut out);
    out
}

/// SHA-256 of the files of `dir` (names and contents, in name order), for
/// tagging the data a run read.
pub fn folder_digest(dir: &Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    names.sort();
    let mut hash = Sha256::new();
    for path in names {
        hash.update(path.file_name()?.to_string_lossy().as_bytes());
        hash.update(std::fs::read(&path).ok()?);
    }
    Some(format!("{:x}", hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_numbers_skip_tables() {
        let report = json!({"test": {"accuracy": 0.9, "S (F1)": 0.2}, "per_record": [{"a": 1}], "name": "x"});
        let got = numbers(&report, "final");
        assert_eq!(
            got,
            [
                ("final.test.S _F1_".to_string(), 0.2),
                ("final.test.accuracy".to_string(), 0.9)
            ]
        );
    }

    #[test]
    fn no_run_no_cost() {
        // Without start, every call is a no-op.
        log_metrics(&[("x", 1.0)], 1);
        finish("FINISHED");
    }
}
