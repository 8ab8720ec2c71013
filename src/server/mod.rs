//! The HTTP layer: routes, middleware (request IDs, timing, auth, CORS, limits),
//! metrics, OpenAPI and Swagger UI, graceful shutdown. Thin: `/predict` parses
//! its parameters ([`params`]) and upload, admits the request, calls
//! [`crate::service::Analyser::analyse`] and writes the answer as JSON, CSV or
//! SVG ([`formats`]); [`oip`] serves the models' tensors by the Open Inference
//! Protocol v2; [`error`] maps every error to its status.

pub mod config;
pub mod error;
pub mod formats;
pub mod oip;
pub mod openapi;
pub mod params;
pub mod routes;
pub mod svg;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{header, HeaderName, HeaderValue, Method, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use subtle::ConstantTimeEq;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::engine::{Provider, Runtime};
use crate::model::card::Task;
use crate::service::{Analyser, EnginePool, PoolOptions, Readiness};
pub use config::Config;
use error::ApiError;

/// Shared state of the handlers.
pub struct AppState {
    pub config: Config,
    /// The analysis and the models' engines (admission control lives in the
    /// segment model's pool).
    pub analyser: Analyser,
    pub metrics: Option<PrometheusHandle>,
}

impl AppState {
    /// Ready when every model is; otherwise the first that is not, named.
    pub fn readiness(&self) -> Readiness {
        self.analyser.readiness()
    }
}

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder (installed once; `None` if another recorder is).
fn metrics_handle() -> Option<PrometheusHandle> {
    METRICS
        .get_or_init(|| {
            let buckets = [
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("seconds".into()), &buckets)
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

/// Request IDs: a per-process random prefix and a counter.
#[derive(Clone)]
struct RequestIds {
    prefix: u32,
    next: Arc<AtomicU64>,
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{:08x}-{n:06}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

async fn require_api_key(
    State(state): State<Arc<AppState>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    if let Some(key) = &state.config.api_key {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

async fn record_metrics(request: Request<Body>, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("ecg_requests_total", "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!("ecg_request_duration_seconds", "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}

fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

/// The application router.
pub fn router(state: Arc<AppState>) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let ids = RequestIds {
        prefix: std::process::id() ^ (Instant::now().elapsed().subsec_nanos()),
        next: Arc::new(AtomicU64::new(1)),
    };
    let body_limit = state.config.max_body_mb * 1024 * 1024;
    let predict = Router::new()
        .route("/predict", post(routes::predict))
        .route("/v2/models/{name}/infer", post(oip::infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(oip::infer),
        )
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_api_key,
        ))
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        .merge(predict)
        .route("/", get(routes::viewer))
        .route("/health/live", get(routes::live))
        .route("/health/ready", get(routes::ready))
        .route("/info", get(routes::info))
        .route("/metrics", get(routes::metrics))
        .route("/v2", get(oip::server_metadata))
        .route("/v2/health/live", get(oip::live))
        .route("/v2/health/ready", get(oip::ready))
        .route("/v2/models/{name}", get(oip::model_metadata))
        .route("/v2/models/{name}/ready", get(oip::model_ready))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(oip::model_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(oip::model_ready),
        )
        .merge(SwaggerUi::new("/swagger-ui").url("/openapi.json", openapi::ApiDoc::openapi()))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(middleware::from_fn(record_metrics))
        // gzip when the client accepts it, at `--compression`: record 100's
        // answer goes from 923 kB to 315 kB at the fastest level (271 kB at the
        // default); a 24-hour Holter's 45 MB of JSON to 15 MB in 0.5 s of CPU,
        // where the default level took 2.1 s for 13 MB.
        .layer(CompressionLayer::new().quality(state.config.compression.level()))
        .layer(cors(&state.config.cors_origins))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<Body>| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_failure(log_failure),
        )
        .layer(SetRequestIdLayer::new(request_id, ids))
        .with_state(state)
}

/// 5xx answers in the logs: a 503 (loading, not ready, timed out) is expected
/// operation and logs as a warning; anything else is our bug and logs as an error.
fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let ms = latency.as_secs_f64() * 1e3;
    match class {
        ServerErrorsFailureClass::StatusCode(code) if code == 503 => {
            tracing::warn!(status = %code, latency_ms = ms, "service unavailable")
        }
        other => tracing::error!(failure = %other, latency_ms = ms, "response failed"),
    }
}

/// Loads ONNX Runtime with the process's one shared thread pool (unless
/// `--intra-threads` gives each session its own), before any session is built.
/// A library that does not load is reported by the pools, which name it.
pub fn start_runtime(config: &Config) {
    let shared = config
        .intra_threads
        .is_none()
        .then(|| config.shared_threads());
    match Runtime::start(shared) {
        Ok(runtime) => tracing::info!(shared = ?runtime.shared, "ONNX Runtime loaded"),
        Err(e) => tracing::warn!(error = %e, "ONNX Runtime did not load"),
    }
}

/// Starts the engine pool for `config`.
pub fn start_pool(config: &Config) -> Arc<EnginePool> {
    EnginePool::start(PoolOptions {
        card_path: config.card_path(),
        task: Task::Segment,
        provider: config.execution_provider,
        allow_cpu_fallback: config.allow_cpu_fallback,
        sessions: config.sessions.max(1),
        intra_threads: config.intra_threads,
        queue_size: config.queue_size.max(1),
        max_batch: config.windows_per_run(),
    })
}

/// Starts the heartbeat model's pool (uploads of heartbeat rows), unless
/// `--heartbeat-model none`. A heartbeat model that does not load leaves
/// recordings served; uploads of rows are then refused with its reason.
pub fn start_heartbeat_pool(config: &Config) -> Option<Arc<EnginePool>> {
    Some(start_per_request_pool(
        config,
        config.heartbeat_card_path()?,
        Task::Heartbeat,
    ))
}

/// Starts the beat model's pool, unless `--beat-model none`.
pub fn start_beat_pool(config: &Config) -> Option<Arc<EnginePool>> {
    Some(start_per_request_pool(
        config,
        config.beat_card_path()?,
        Task::Beat,
    ))
}

/// A pool of beat-sized rows (the beat model's, the heartbeat model's). Every
/// admitted request may queue one job here, so its queue holds all of them:
/// a request admitted by the segment pool is never refused here.
fn start_per_request_pool(
    config: &Config,
    card_path: std::path::PathBuf,
    task: Task,
) -> Arc<EnginePool> {
    EnginePool::start(PoolOptions {
        card_path,
        task,
        provider: config.execution_provider,
        allow_cpu_fallback: config.allow_cpu_fallback,
        sessions: config.sessions.max(1),
        intra_threads: config.intra_threads,
        queue_size: config.sessions.max(1) + config.queue_size.max(1),
        // A beat window is 14x shorter than a segment window.
        max_batch: config.windows_per_run() * BEAT_BATCH_FACTOR,
    })
}

/// Beat windows per segment window in one ONNX Runtime run.
const BEAT_BATCH_FACTOR: usize = 16;

/// Binds, serves until `shutdown` resolves, then drains in-flight requests.
/// `on_bound` receives the bound address (port 0 picks one).
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    start_runtime(&config);
    let analyser = Analyser {
        segment: start_pool(&config),
        beat: start_beat_pool(&config),
        heartbeat: start_heartbeat_pool(&config),
        max_duration_s: config.max_duration_s,
    };
    if config.execution_provider == Provider::Cuda && !config.allow_cpu_fallback {
        // An explicit CUDA request that cannot start is a start-up failure, not a
        // service that stays up unready: wait for the load and refuse to serve.
        loop {
            match analyser.readiness() {
                Readiness::Loading => tokio::time::sleep(Duration::from_millis(50)).await,
                Readiness::Failed(reason) => anyhow::bail!(
                    "--execution-provider cuda cannot start: {reason} (pass --allow-cpu-fallback to run on the CPU instead)"
                ),
                Readiness::Ready { .. } => break,
            }
        }
    }
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let state = Arc::new(AppState {
        config,
        analyser,
        metrics: metrics_handle(),
    });
    tracing::info!(address = %bound, "listening");
    on_bound(bound);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("stopped: in-flight requests drained");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; draining in-flight requests");
}

/// `GET /health/ready` over plain HTTP/1.0 with a 3 s budget; Ok when the answer is 200.
pub fn probe_ready(addr: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    let timeout = Duration::from_secs(3);
    let socket = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&socket, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    write!(
        stream,
        "GET /health/ready HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| format!("{addr}: {e}"))?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("/health/ready answered {code}")),
        None => Err("no HTTP answer".into()),
    }
}
