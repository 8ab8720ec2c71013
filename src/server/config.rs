//! Every setting of `ecg-serve`: a CLI flag with an environment variable.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::batch::AnalyzeArgs;
use crate::engine::{available_cpus, Provider, SharedThreads};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// How hard gzip works on an answer (for clients that accept gzip).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Level 1: a 24-hour answer (45 MB of JSON) in 0.5 s, 15 MB.
    Fastest,
    /// Level 6: 2.1 s, 13 MB.
    Default,
    /// Level 9.
    Best,
}

impl Compression {
    /// The level for tower-http's compression layer.
    pub fn level(self) -> tower_http::CompressionLevel {
        match self {
            Compression::Fastest => tower_http::CompressionLevel::Fastest,
            Compression::Default => tower_http::CompressionLevel::Default,
            Compression::Best => tower_http::CompressionLevel::Best,
        }
    }
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
    #[arg(long, env = "ECG_MODEL_DIR", global = true, default_value = "models")]
    pub model_dir: PathBuf,
    /// Model name: <model-dir>/<model>.json is its card.
    #[arg(long, env = "ECG_MODEL", global = true, default_value = "ecg-segment")]
    pub model: String,
    /// Beat model name: <model-dir>/<beat-model>.json is its card; `none` serves
    /// beats without labels.
    #[arg(
        long,
        env = "ECG_BEAT_MODEL",
        global = true,
        default_value = "ecg-beat"
    )]
    pub beat_model: String,
    /// Heartbeat model name (labels uploads of heartbeat rows: a CSV of 187
    /// values in [0, 1] per row, the Kaggle mitbih_*.csv layout):
    /// <model-dir>/<heartbeat-model>.json is its card; `none` refuses such uploads.
    #[arg(
        long,
        env = "ECG_HEARTBEAT_MODEL",
        global = true,
        default_value = "ecg-heartbeat"
    )]
    pub heartbeat_model: String,
    /// ONNX Runtime execution provider.
    #[arg(
        long,
        env = "ECG_EXECUTION_PROVIDER",
        value_enum,
        global = true,
        default_value = "cpu"
    )]
    pub execution_provider: Provider,
    /// With --execution-provider cuda: use the CPU if CUDA cannot start (else refuse to start).
    #[arg(long, env = "ECG_ALLOW_CPU_FALLBACK", global = true)]
    pub allow_cpu_fallback: bool,
    /// Model sessions, each on its own thread.
    #[arg(long, env = "ECG_SESSIONS", global = true, default_value_t = 1)]
    pub sessions: usize,
    /// CPU threads for model inference: one ONNX Runtime thread pool shared by
    /// every session of both models (default: the CPUs this process may use,
    /// which follow a container's CPU quota).
    #[arg(long, env = "ECG_THREADS", global = true)]
    pub threads: Option<usize>,
    /// Whether ONNX Runtime's idle threads spin (busy-wait) for the next piece of work.
    #[arg(long, env = "ECG_SPINNING", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub spinning: bool,
    /// Give each session its own pool of this many intra-op threads instead of
    /// the shared pool (--threads); for experiments.
    #[arg(long, env = "ECG_INTRA_THREADS", global = true)]
    pub intra_threads: Option<usize>,
    /// Requests that may wait for a session; more are refused with 429.
    #[arg(long, env = "ECG_QUEUE_SIZE", default_value_t = 4)]
    pub queue_size: usize,
    /// Most windows per ONNX Runtime run; longer records run in several (default:
    /// 16 on the CPU, 1024 with CUDA; beats run 16x as many). On the CPU, small
    /// batches were the fastest (`cargo bench --bench models`) and bound ONNX
    /// Runtime's working memory (about 1.2 MB per window); on an H100, 1024
    /// served ~40 % more requests/s than 64.
    #[arg(long, env = "ECG_MAX_BATCH", global = true)]
    pub max_batch: Option<usize>,
    /// Largest request body in MiB.
    #[arg(long, env = "ECG_MAX_BODY_MB", default_value_t = 64)]
    pub max_body_mb: usize,
    /// Longest recording accepted, in seconds (default 25 h: a 24-hour Holter fits).
    #[arg(
        long,
        env = "ECG_MAX_DURATION_S",
        global = true,
        default_value_t = 90_000.0
    )]
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
    #[arg(
        long,
        env = "ECG_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// gzip effort for clients that accept gzip (fastest: a quarter of the
    /// default's CPU for answers ~15 % larger).
    #[arg(long, env = "ECG_COMPRESSION", value_enum, default_value = "fastest")]
    pub compression: Compression,
    /// Do not serve: ask the server at --host/--port for /health/ready and exit 0
    /// when it is ready, 1 otherwise (the container's HEALTHCHECK; no curl needed).
    #[arg(long)]
    #[serde(skip)]
    pub probe_ready: bool,
    /// Without a command, serve HTTP.
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Command>,
}

/// What `ecg-serve` does instead of serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Analyse records on disk (folders of WFDB, EDF, CSV) without HTTP: one
    /// JSON answer per record and a summary table in --out. The model flags
    /// (--model-dir, --model, --beat-model, --threads, ...) are the server's.
    Analyze(AnalyzeArgs),
}

impl Config {
    /// The model card's path.
    pub fn card_path(&self) -> PathBuf {
        self.model_dir.join(format!("{}.json", self.model))
    }

    /// The beat model card's path, unless beat labelling is off (`none`).
    pub fn beat_card_path(&self) -> Option<PathBuf> {
        self.optional_card(&self.beat_model)
    }

    /// The heartbeat model card's path, unless it is off (`none`).
    pub fn heartbeat_card_path(&self) -> Option<PathBuf> {
        self.optional_card(&self.heartbeat_model)
    }

    fn optional_card(&self, name: &str) -> Option<PathBuf> {
        let name = name.trim();
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

    /// Windows per ONNX Runtime run: explicit, else 16 on the CPU (the fastest
    /// in `cargo bench --bench models`, `segment_batch/*`: smaller batches keep
    /// the convolutions' activations in cache) and 1024 with CUDA.
    pub fn windows_per_run(&self) -> usize {
        let default = match self.execution_provider {
            Provider::Cpu => 16,
            Provider::Cuda => 1024,
        };
        self.max_batch.unwrap_or(default).max(1)
    }

    /// The shared ONNX Runtime thread pool: `--threads` (else every CPU this
    /// process may use) and `--spinning`.
    pub fn shared_threads(&self) -> SharedThreads {
        SharedThreads {
            threads: self.threads.unwrap_or_else(available_cpus).max(1),
            spinning: self.spinning,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_per_run_defaults_by_provider_and_obeys_the_flag() {
        let parse = |args: &[&str]| Config::parse_from(["ecg-serve"].iter().chain(args));
        assert_eq!(parse(&[]).windows_per_run(), 16);
        assert_eq!(
            parse(&["--execution-provider", "cuda"]).windows_per_run(),
            1024
        );
        let explicit = parse(&["--execution-provider", "cuda", "--max-batch", "8"]);
        assert_eq!(explicit.windows_per_run(), 8);
        assert_eq!(parse(&["--max-batch", "0"]).windows_per_run(), 1);
    }

    #[test]
    fn one_thread_pool_for_the_process_by_default() {
        let parse = |args: &[&str]| Config::parse_from(["ecg-serve"].iter().chain(args));
        let default = parse(&[]);
        assert_eq!(default.shared_threads().threads, available_cpus());
        assert!(!default.shared_threads().spinning);
        assert_eq!(default.intra_threads, None);
        let set = parse(&["--threads", "3", "--spinning", "true"]);
        assert_eq!(
            set.shared_threads(),
            SharedThreads {
                threads: 3,
                spinning: true
            }
        );
        assert_eq!(parse(&["--threads", "0"]).shared_threads().threads, 1);
    }
}
