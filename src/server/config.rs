//! Every setting of `ecg-serve`: a CLI flag with an environment variable.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::engine::Provider;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `ecg-serve` settings.
#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    name = "ecg-serve",
    version,
    about = "ECG classification service: POST a recording to /predict"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ECG_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "ECG_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Folder holding the model (.onnx) and its card (.json).
    #[arg(long, env = "ECG_MODEL_DIR", default_value = "models")]
    pub model_dir: PathBuf,
    /// Model name: <model-dir>/<model>.json is its card.
    #[arg(long, env = "ECG_MODEL", default_value = "ecg-segment")]
    pub model: String,
    /// Beat model name: <model-dir>/<beat-model>.json is its card; `none` serves
    /// beats without labels.
    #[arg(long, env = "ECG_BEAT_MODEL", default_value = "ecg-beat")]
    pub beat_model: String,
    /// ONNX Runtime execution provider.
    #[arg(
        long,
        env = "ECG_EXECUTION_PROVIDER",
        value_enum,
        default_value = "cpu"
    )]
    pub execution_provider: Provider,
    /// With --execution-provider cuda: use the CPU if CUDA cannot start (else refuse to start).
    #[arg(long, env = "ECG_ALLOW_CPU_FALLBACK")]
    pub allow_cpu_fallback: bool,
    /// Model sessions, each on its own thread.
    #[arg(long, env = "ECG_SESSIONS", default_value_t = 1)]
    pub sessions: usize,
    /// ONNX Runtime intra-op threads per session (default: the available cores,
    /// which follow a container's CPU quota, shared by every session of both
    /// models, since the two models run at the same time: cores / (sessions x
    /// models), at least 1).
    #[arg(long, env = "ECG_INTRA_THREADS")]
    pub intra_threads: Option<usize>,
    /// Requests that may wait for a session; more are refused with 429.
    #[arg(long, env = "ECG_QUEUE_SIZE", default_value_t = 4)]
    pub queue_size: usize,
    /// Most windows per ONNX Runtime run; longer records run in several (default:
    /// 64 on the CPU, 1024 with CUDA). On the CPU it bounds ONNX Runtime's working
    /// memory (about 1.2 MB per window: 64 -> ~200 MB peak RSS, 512 -> ~500 MB,
    /// measured on record 100) at a few % of speed; on an H100, 1024 served ~40 %
    /// more requests/s than 64.
    #[arg(long, env = "ECG_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Largest request body in MiB.
    #[arg(long, env = "ECG_MAX_BODY_MB", default_value_t = 64)]
    pub max_body_mb: usize,
    /// Longest recording accepted, in seconds (default 25 h: a 24-hour Holter fits).
    #[arg(long, env = "ECG_MAX_DURATION_S", default_value_t = 90_000.0)]
    pub max_duration_s: f64,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "ECG_REQUEST_TIMEOUT_S", default_value_t = 120)]
    pub request_timeout_s: u64,
    /// Origins allowed by CORS, comma-separated (none by default: CORS closed).
    #[arg(long, env = "ECG_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Bearer token required on /predict (none by default).
    #[arg(long, env = "ECG_API_KEY", hide_env_values = true)]
    #[serde(skip)]
    pub api_key: Option<String>,
    /// Log format.
    #[arg(long, env = "ECG_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Do not serve: ask the server at --host/--port for /health/ready and exit 0
    /// when it is ready, 1 otherwise (the container's HEALTHCHECK; no curl needed).
    #[arg(long)]
    #[serde(skip)]
    pub probe_ready: bool,
}

impl Config {
    /// The model card's path.
    pub fn card_path(&self) -> PathBuf {
        self.model_dir.join(format!("{}.json", self.model))
    }

    /// The beat model card's path, unless beat labelling is off (`none`).
    pub fn beat_card_path(&self) -> Option<PathBuf> {
        let name = self.beat_model.trim();
        (!name.is_empty() && !name.eq_ignore_ascii_case("none"))
            .then(|| self.model_dir.join(format!("{name}.json")))
    }

    /// Where a local client reaches this server: a wildcard listen address
    /// (0.0.0.0, ::) is reached on loopback.
    pub fn local_addr(&self) -> String {
        let host = match self.host.as_str() {
            "0.0.0.0" | "" => "127.0.0.1",
            "::" | "[::]" => "[::1]",
            h => h,
        };
        format!("{host}:{}", self.port)
    }

    /// Windows per ONNX Runtime run: explicit, else 64 on the CPU and 1024 with CUDA.
    pub fn windows_per_run(&self) -> usize {
        let default = match self.execution_provider {
            Provider::Cpu => 64,
            Provider::Cuda => 1024,
        };
        self.max_batch.unwrap_or(default).max(1)
    }

    /// Intra-op threads per session: explicit, else the cores shared by every
    /// session of every model (the segment and the beat model run at once; on
    /// 2 cores, one thread each served 1.14-1.31x the Python peer's requests/s
    /// at c = 4 where two each served 0.85-0.86x: `../shared/tools/peer/compare.sh`).
    pub fn threads_per_session(&self) -> usize {
        self.intra_threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let models = 1 + usize::from(self.beat_card_path().is_some());
            (cores / (self.sessions.max(1) * models)).max(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_per_run_defaults_by_provider_and_obeys_the_flag() {
        let parse = |args: &[&str]| Config::parse_from(["ecg-serve"].iter().chain(args));
        assert_eq!(parse(&[]).windows_per_run(), 64);
        assert_eq!(
            parse(&["--execution-provider", "cuda"]).windows_per_run(),
            1024
        );
        let explicit = parse(&["--execution-provider", "cuda", "--max-batch", "8"]);
        assert_eq!(explicit.windows_per_run(), 8);
        assert_eq!(parse(&["--max-batch", "0"]).windows_per_run(), 1);
    }

    #[test]
    fn the_cores_are_shared_by_every_session_of_both_models() {
        let parse = |args: &[&str]| Config::parse_from(["ecg-serve"].iter().chain(args));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(parse(&[]).threads_per_session(), (cores / 2).max(1));
        let alone = parse(&["--beat-model", "none"]);
        assert_eq!(alone.threads_per_session(), cores);
        let two = parse(&["--sessions", "2", "--beat-model", "none"]);
        assert_eq!(two.threads_per_session(), (cores / 2).max(1));
        assert_eq!(parse(&["--intra-threads", "3"]).threads_per_session(), 3);
    }
}
