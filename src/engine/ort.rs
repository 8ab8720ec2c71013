//! ONNX Runtime engine (`ort` with `load-dynamic`).
//!
//! The shared library comes from `ORT_DYLIB_PATH`, else from the project-local
//! `.ort/cpu/` that `scripts/fetch-ort.sh` fills. A missing or unloadable library
//! is an [`EngineError`] naming `ORT_DYLIB_PATH`, never a panic.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("ONNX Runtime library not found (looked in: {}); run scripts/fetch-ort.sh or set ORT_DYLIB_PATH to libonnxruntime.so", looked.join(", "))]
    LibraryMissing { looked: Vec<String> },
    #[error("cannot load ONNX Runtime from {path} (set ORT_DYLIB_PATH to a working libonnxruntime.so 1.31): {message}")]
    LibraryLoad { path: String, message: String },
    #[error("execution provider {provider} could not start: {message}")]
    Provider { provider: String, message: String },
    #[error("cannot load the model: {0}")]
    Model(String),
    #[error("inference failed: {0}")]
    Run(String),
}

/// Which hardware runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Cpu,
    Cuda,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
        })
    }
}

/// Where to look for the ONNX Runtime library, in order.
pub fn library_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(p));
        return out;
    }
    let local = Path::new(".ort").join("cpu").join("libonnxruntime.so");
    out.push(local.clone());
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/<binary> -> the checkout's .ort/
        if let Some(root) = exe.ancestors().nth(3) {
            out.push(root.join(&local));
        }
    }
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(&local));
    out
}

/// The process-wide ONNX Runtime: the library, loaded once, and (for the
/// server) one intra-op thread pool that every session shares.
pub struct Runtime {
    env: Environment,
    /// The library file in use.
    pub library: PathBuf,
    /// The shared thread pool, if the process asked for one.
    pub shared: Option<SharedThreads>,
}

/// One CPU budget for every model of the process: ONNX Runtime's global
/// intra-op thread pool, which sessions built with [`Runtime::shared_session`]
/// run on. Two models (or two requests) running at once then share `threads`
/// threads instead of each bringing its own, which oversubscribed the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SharedThreads {
    /// Threads in the pool (the calling thread takes part in each run).
    pub threads: usize,
    /// Whether idle pool threads spin (busy-wait) for the next piece of work.
    pub spinning: bool,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

impl Runtime {
    /// Loads ONNX Runtime (once per process) from `ORT_DYLIB_PATH` or the project's `.ort/`.
    pub fn get() -> Result<&'static Runtime, EngineError> {
        Self::start(None)
    }

    /// Loads ONNX Runtime like [`Runtime::get`] and, on the first call of the
    /// process only, creates the shared thread pool `shared` (later calls get
    /// the runtime as it was first made: check [`Runtime::shared`]).
    pub fn start(shared: Option<SharedThreads>) -> Result<&'static Runtime, EngineError> {
        let candidates = library_candidates();
        let Some(path) = candidates.iter().find(|p| p.exists()).cloned() else {
            return Err(EngineError::LibraryMissing {
                looked: candidates.iter().map(|p| p.display().to_string()).collect(),
            });
        };
        let loaded = RUNTIME.get_or_init(|| {
            let mut builder = ort::init_from(&path)
                .map_err(|e| e.to_string())?
                .with_name("ecg-serve");
            if let Some(t) = shared {
                let pool = ort::environment::GlobalThreadPoolOptions::default()
                    .with_intra_threads(t.threads.max(1))
                    .and_then(|o| o.with_inter_threads(1))
                    .and_then(|o| o.with_spin_control(t.spinning))
                    .map_err(|e| e.to_string())?;
                builder = builder.with_global_thread_pool(pool);
            }
            let env = builder.build().map_err(|e| e.to_string())?;
            Ok(Runtime {
                env,
                library: path.clone(),
                shared,
            })
        });
        loaded.as_ref().map_err(|message| EngineError::LibraryLoad {
            path: path.display().to_string(),
            message: message.clone(),
        })
    }

    /// Builds a session for the model in `bytes` with its own pool of
    /// `intra_threads` threads (the trainer's checks, benchmarks, `--intra-threads`).
    pub fn session(
        &self,
        bytes: &[u8],
        intra_threads: usize,
        provider: Provider,
    ) -> Result<OrtModel, EngineError> {
        self.build(bytes, Some(intra_threads), provider)
    }

    /// Builds a session that runs on the shared thread pool (one made by
    /// [`Runtime::start`]); without one, on its own pool of as many threads as
    /// the process may use.
    pub fn shared_session(
        &self,
        bytes: &[u8],
        provider: Provider,
    ) -> Result<OrtModel, EngineError> {
        match self.shared {
            Some(_) => self.build(bytes, None, provider),
            None => self.build(bytes, Some(available_cpus()), provider),
        }
    }

    fn build(
        &self,
        bytes: &[u8],
        own_threads: Option<usize>,
        provider: Provider,
    ) -> Result<OrtModel, EngineError> {
        let model = |e: ort::Error| EngineError::Model(e.to_string());
        let mut builder = Session::builder(&self.env)
            .map_err(model)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| model(e.into()))?;
        if let Some(threads) = own_threads {
            let spinning = self.shared.is_none_or(|s| s.spinning);
            builder = builder
                .with_independent_thread_pool()
                .map_err(|e| model(e.into()))?
                .with_intra_threads(threads.max(1))
                .map_err(|e| model(e.into()))?
                .with_inter_threads(1)
                .map_err(|e| model(e.into()))?
                .with_intra_op_spinning(spinning)
                .map_err(|e| model(e.into()))?;
        }
        if provider == Provider::Cuda {
            builder = with_cuda(builder)?;
        }
        let session = builder.commit_from_memory(bytes).map_err(model)?;
        Ok(OrtModel { session, provider })
    }
}

/// The CPUs this process may use: the machine's, or fewer where a container's
/// CPU quota or affinity mask says so (what the standard library reports).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(feature = "cuda")]
fn with_cuda(
    builder: ort::session::builder::SessionBuilder,
) -> Result<ort::session::builder::SessionBuilder, EngineError> {
    builder
        // Full f32 arithmetic, so CUDA answers what the card's CPU figures were
        // measured with (TF32 moved probabilities by up to 1.5e-3 on an H100, and
        // was not faster). cuDNN's exhaustive convolution search ran again for
        // every new batch shape, which every record length makes: the heuristic
        // choice served 3x (one client) to 7x (four) more requests/s there.
        .with_execution_providers([ort::ep::CUDA::default()
            .with_tf32(false)
            .with_conv_algorithm_search(ort::ep::cuda::ConvAlgorithmSearch::Heuristic)
            .build()
            .error_on_failure()])
        .map_err(|e| EngineError::Provider {
            provider: "cuda".into(),
            message: e.to_string(),
        })
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(
    _builder: ort::session::builder::SessionBuilder,
) -> Result<ort::session::builder::SessionBuilder, EngineError> {
    Err(EngineError::Provider {
        provider: "cuda".into(),
        message: "this binary was built without the `cuda` feature (cargo build --features cuda)"
            .into(),
    })
}

/// A loaded model: one ONNX Runtime session (`run` needs `&mut`).
pub struct OrtModel {
    session: Session,
    /// The execution provider the session was built for.
    pub provider: Provider,
}

/// The model's outputs for a batch, flattened row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutputs {
    /// `[batch, classes]` logits.
    pub logits: Vec<f32>,
    pub classes: usize,
    /// `[batch, tokens]` attention each token receives.
    pub attention: Vec<f32>,
    pub tokens: usize,
}

/// Softmax of one row of logits.
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|v| v / sum).collect()
}

impl ModelOutputs {
    /// Softmax probabilities of row `i`.
    pub fn probabilities(&self, i: usize) -> Vec<f32> {
        softmax(&self.logits[i * self.classes..(i + 1) * self.classes])
    }

    /// Attention of row `i`.
    pub fn attention_row(&self, i: usize) -> &[f32] {
        &self.attention[i * self.tokens..(i + 1) * self.tokens]
    }
}

impl OrtModel {
    /// Runs `batch` inputs of `shape_tail` (e.g. `[1, 3600]`) flattened in `input`
    /// and, for a model with a second input (the beat model's `features`), `batch`
    /// rows of `features` (empty for a model without one; a model of features
    /// alone gets an empty `input`); the outputs `logits` and, where the model
    /// has it, `attention` come back (none: `tokens` 0).
    pub fn run(
        &mut self,
        input: &[f32],
        batch: usize,
        shape_tail: &[usize],
        features: &[f32],
    ) -> Result<ModelOutputs, EngineError> {
        let run = |e: ort::Error| EngineError::Run(e.to_string());
        let mut shape = vec![batch];
        shape.extend_from_slice(shape_tail);
        let width = features.len() / batch.max(1);
        let outputs = if features.is_empty() {
            let tensor = TensorRef::from_array_view((shape, input)).map_err(run)?;
            self.session.run(ort::inputs![tensor])
        } else if input.is_empty() {
            // A model of features alone (the beat model 2).
            let extra = TensorRef::from_array_view(([batch, width], features)).map_err(run)?;
            self.session.run(ort::inputs!["features" => extra])
        } else {
            let tensor = TensorRef::from_array_view((shape, input)).map_err(run)?;
            let extra = TensorRef::from_array_view(([batch, width], features)).map_err(run)?;
            self.session
                .run(ort::inputs!["signal" => tensor, "features" => extra])
        }
        .map_err(run)?;
        let extract = |name: &str| -> Result<(Vec<f32>, usize), EngineError> {
            let value = outputs
                .get(name)
                .ok_or_else(|| EngineError::Run(format!("the model has no output `{name}`")))?;
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(run)?;
            let width = shape.get(1).copied().unwrap_or(1).max(0) as usize;
            Ok((data.to_vec(), width))
        };
        let (logits, classes) = extract("logits")?;
        // Optional: a model of features alone has no attention.
        let (attention, tokens) = match outputs.get("attention") {
            Some(_) => extract("attention")?,
            None => (Vec::new(), 0),
        };
        Ok(ModelOutputs {
            logits,
            classes,
            attention,
            tokens,
        })
    }
}
