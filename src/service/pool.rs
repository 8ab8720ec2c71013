//! The engine pool: model sessions on dedicated OS threads behind one bounded queue.
//!
//! `Session::run` needs `&mut`, so each worker thread owns its own session.
//! Requests go in with [`EnginePool::submit`], which never waits: a full queue is
//! an immediate [`PoolError::Full`] (the server answers 429). Replies come back
//! on a oneshot channel. The model is loaded, checked against its card's SHA-256
//! and warmed up on a loader thread; until then the pool reports `Loading`, and
//! if anything fails it reports `Failed` with the reason instead of crashing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::engine::{EngineError, ModelOutputs, OrtModel, Provider, Runtime};
use crate::model::card::Task;
use crate::model::ModelCard;
use crate::model::Rows;

/// How to start the pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// The model card (`<model>.json`); the `.onnx` sits beside it.
    pub card_path: PathBuf,
    /// The kind of model this pool is for (`segment` or `beat`): a card of
    /// another kind fails the load with a reason.
    pub task: Task,
    pub provider: Provider,
    pub allow_cpu_fallback: bool,
    /// Sessions (worker threads).
    pub sessions: usize,
    /// ONNX Runtime intra-op threads of each session's own pool; `None`: the
    /// process's shared pool ([`Runtime::start`]).
    pub intra_threads: Option<usize>,
    /// Requests that may wait for a session.
    pub queue_size: usize,
    /// Most windows per ONNX Runtime run; larger requests run in chunks.
    pub max_batch: usize,
}

/// Where the pool is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    Loading,
    Ready { provider: Provider },
    Failed(String),
}

/// Why a job was not accepted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PoolError {
    #[error("the inference queue is full ({0} requests waiting); retry later")]
    Full(usize),
    #[error("the model is not ready: {0}")]
    NotReady(String),
    #[error("the engine stopped before answering")]
    Stopped,
}

/// What a job gives back.
#[derive(Debug)]
pub struct JobResult {
    pub outputs: ModelOutputs,
    pub queue_wait: Duration,
    pub inference: Duration,
}

struct Job {
    /// The windows or beats, read a batch at a time.
    rows: Box<dyn Rows>,
    enqueued: Instant,
    reply: oneshot::Sender<Result<JobResult, EngineError>>,
}

/// The pool (cheap to share behind an `Arc`).
pub struct EnginePool {
    tx: SyncSender<Job>,
    rx: Arc<Mutex<Receiver<Job>>>,
    state: RwLock<Readiness>,
    card: OnceLock<Arc<ModelCard>>,
    depth: AtomicUsize,
    /// Requests between [`EnginePool::admit`] and their answer.
    admitted: AtomicUsize,
    options: PoolOptions,
}

/// A request's place in the service, from arrival to answer; released on drop.
pub struct Admission {
    pool: Arc<EnginePool>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.pool.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EnginePool {
    /// Creates the pool and starts loading the model on a background thread.
    pub fn start(options: PoolOptions) -> Arc<EnginePool> {
        let (tx, rx) = sync_channel(options.queue_size.max(1));
        let pool = Arc::new(EnginePool {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            state: RwLock::new(Readiness::Loading),
            card: OnceLock::new(),
            depth: AtomicUsize::new(0),
            admitted: AtomicUsize::new(0),
            options,
        });
        let loader = Arc::clone(&pool);
        let spawned = std::thread::Builder::new()
            .name("model-loader".into())
            .spawn(move || loader.load());
        if let Err(e) = spawned {
            pool.set(Readiness::Failed(format!(
                "cannot start the loader thread: {e}"
            )));
        }
        pool
    }

    fn set(&self, state: Readiness) {
        match &state {
            Readiness::Failed(reason) => tracing::error!(%reason, "model not ready"),
            Readiness::Ready { provider } => tracing::info!(%provider, "model ready"),
            Readiness::Loading => {}
        }
        if let Ok(mut s) = self.state.write() {
            *s = state;
        }
    }

    /// Current readiness.
    pub fn readiness(&self) -> Readiness {
        self.state
            .read()
            .map(|s| s.clone())
            .unwrap_or(Readiness::Failed("state lock poisoned".into()))
    }

    /// The model card, once read.
    pub fn card(&self) -> Option<Arc<ModelCard>> {
        self.card.get().cloned()
    }

    /// Requests waiting for a session.
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// The options the pool was started with.
    pub fn options(&self) -> &PoolOptions {
        &self.options
    }

    fn load(self: Arc<Self>) {
        match self.load_sessions() {
            Ok((sessions, provider)) => {
                for (i, session) in sessions.into_iter().enumerate() {
                    let rx = Arc::clone(&self.rx);
                    let pool = Arc::clone(&self);
                    let spawned = std::thread::Builder::new()
                        .name(format!("engine-{i}"))
                        .spawn(move || pool.work(session, rx));
                    if let Err(e) = spawned {
                        return self.set(Readiness::Failed(format!(
                            "cannot start engine thread: {e}"
                        )));
                    }
                }
                self.set(Readiness::Ready { provider });
            }
            Err(reason) => self.set(Readiness::Failed(reason)),
        }
    }

    fn load_sessions(&self) -> Result<(Vec<OrtModel>, Provider), String> {
        let o = &self.options;
        let card = ModelCard::read(&o.card_path).map_err(|e| e.to_string())?;
        if card.kind.task() != o.task {
            return Err(format!(
                "{} ({} {}) is a {} model; a {} model is needed here",
                o.card_path.display(),
                card.name,
                card.version,
                card.kind.task(),
                o.task
            ));
        }
        let bytes = card
            .read_verified_model(&o.card_path)
            .map_err(|e| e.to_string())?;
        let runtime = Runtime::get().map_err(|e| e.to_string())?;
        tracing::info!(library = %runtime.library.display(), model = %card.name, version = %card.version, "loading model");
        let mut provider = o.provider;
        let mut sessions = Vec::with_capacity(o.sessions);
        let build = |provider| match o.intra_threads {
            Some(threads) => runtime.session(&bytes, threads, provider),
            None => runtime.shared_session(&bytes, provider),
        };
        for _ in 0..o.sessions.max(1) {
            let session = match build(provider) {
                Err(EngineError::Provider {
                    provider: p,
                    message,
                }) if o.allow_cpu_fallback => {
                    tracing::warn!(provider = %p, %message, "execution provider failed; falling back to CPU (--allow-cpu-fallback)");
                    provider = Provider::Cpu;
                    build(provider)
                }
                other => other,
            };
            sessions.push(session.map_err(|e| e.to_string())?);
        }
        let shape_tail = input_shape(&card);
        let warm = vec![0.0f32; shape_tail[0] * shape_tail[1]];
        let warm_features = vec![1.0f32; feature_width(&card)];
        for s in &mut sessions {
            let out = s
                .run(&warm, 1, &shape_tail, &warm_features)
                .map_err(|e| format!("warm-up inference failed: {e}"))?;
            let tokens = card.attention.as_ref().map_or(0, |a| a.tokens);
            if out.classes != card.labels.len() || out.tokens != tokens {
                return Err(format!(
                    "the model's outputs ({} classes, {} attention tokens) do not match its card ({} labels, {tokens} tokens)",
                    out.classes, out.tokens, card.labels.len()
                ));
            }
        }
        let _ = self.card.set(Arc::new(card));
        Ok((sessions, provider))
    }

    fn work(&self, mut session: OrtModel, rx: Arc<Mutex<Receiver<Job>>>) {
        let tail = match self.card() {
            Some(c) => input_shape(&c),
            None => return,
        };
        loop {
            let job = match rx.lock() {
                Ok(guard) => match guard.recv() {
                    Ok(job) => job,
                    Err(_) => return, // pool dropped: shut down
                },
                Err(_) => return,
            };
            self.depth.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("ecg_queue_depth").set(self.queue_depth() as f64);
            let queue_wait = job.enqueued.elapsed();
            let started = Instant::now();
            let result = run_batches(&mut session, &*job.rows, &tail, self.options.max_batch);
            let reply = result.map(|outputs| JobResult {
                outputs,
                queue_wait,
                inference: started.elapsed(),
            });
            // The rows go before the answer does: the requester may free what
            // they share (a long record's filtered lead) as soon as it has it.
            drop(job.rows);
            // The requester may have gone (timeout, disconnect): nothing to do then.
            let _ = job.reply.send(reply);
        }
    }

    /// Admits a request, or refuses it at once when `sessions + queue_size`
    /// requests are already in the service. Called before the upload is read, so a
    /// refused request costs no decoding and an admitted one finds room in the
    /// queue: under overload the CPU goes to requests that will be answered, and
    /// memory is bounded by the number admitted.
    pub fn admit(self: &Arc<Self>) -> Result<Admission, PoolError> {
        let capacity = self.options.sessions.max(1) + self.options.queue_size.max(1);
        let mut current = self.admitted.load(Ordering::Acquire);
        loop {
            if current >= capacity {
                return Err(PoolError::Full(self.options.queue_size));
            }
            match self.admitted.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Admission {
                        pool: Arc::clone(self),
                    })
                }
                Err(now) => current = now,
            }
        }
    }

    /// Queues `rows` (windows or beats, with their features) for inference.
    pub fn submit(
        &self,
        rows: Box<dyn Rows>,
    ) -> Result<oneshot::Receiver<Result<JobResult, EngineError>>, PoolError> {
        match self.readiness() {
            Readiness::Ready { .. } => {}
            Readiness::Loading => {
                return Err(PoolError::NotReady("the model is still loading".into()))
            }
            Readiness::Failed(reason) => return Err(PoolError::NotReady(reason)),
        }
        let (reply, rx) = oneshot::channel();
        let job = Job {
            rows,
            enqueued: Instant::now(),
            reply,
        };
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(job) {
            Ok(()) => {
                metrics::gauge!("ecg_queue_depth").set(self.queue_depth() as f64);
                Ok(rx)
            }
            Err(e) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => PoolError::Full(self.options.queue_size),
                    TrySendError::Disconnected(_) => PoolError::Stopped,
                })
            }
        }
    }
}

/// `[channels, samples]` of one input window of the card's model.
fn input_shape(card: &ModelCard) -> [usize; 2] {
    card.kind.input_shape()
}

/// Width of the card's `features` input (0 for a model without one).
fn feature_width(card: &ModelCard) -> usize {
    card.kind.feature_width()
}

/// Runs every row of `rows` in batches of at most `max_batch` (each batch's
/// tensor made only when it runs) and concatenates the outputs: what an
/// engine thread does with a job (public for `cargo bench --bench models`).
pub fn run_batches(
    session: &mut OrtModel,
    rows: &dyn Rows,
    tail: &[usize; 2],
    max_batch: usize,
) -> Result<ModelOutputs, EngineError> {
    let n = rows.rows();
    let chunk = max_batch.max(1);
    let mut out: Option<ModelOutputs> = None;
    for start in (0..n).step_by(chunk) {
        let range = start..chunk.min(n - start) + start;
        let (input, features) = rows.batch(range.clone());
        let part = session.run(&input, range.len(), tail, features)?;
        match out.as_mut() {
            None => out = Some(part),
            Some(o) => {
                o.logits.extend(part.logits);
                o.attention.extend(part.attention);
            }
        }
    }
    out.ok_or_else(|| EngineError::Run("no windows to run".into()))
}
