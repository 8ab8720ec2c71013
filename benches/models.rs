//! Time of the models on record 100 (30 min, 361 segment windows, 2,273
//! beats): each model's inputs (`model_inputs`: R peaks, filter, windows and
//! features) and its inference through ONNX Runtime as the server runs it (one
//! session on the process's shared thread pool of every CPU, no spinning, the
//! server's default batch: 16 segment windows, 256 beats), for the shipped
//! `ecg-segment` and `ecg-beat`, the 1.0.0 beat network `ecg-beat-net` and
//! the heartbeat-rows model `ecg-heartbeat` (on record 100's rows: `rows` is
//! making them from the lead, which the server does not do; it runs uploaded
//! rows). Divide the beat rows by 2,273 for the time per beat. `segment_batch/N` runs
//! the segment model in batches of N (how the server's default was chosen).
//! Needs ONNX Runtime (`ORT_DYLIB_PATH`, as `scripts/fetch-ort.sh` prints).
//! `BENCH_MODELS=a,b` runs the models `models/a.onnx`, `models/b.onnx`
//! instead; a name with a `/` is a path to a `.onnx` beside its card (e.g. a
//! previous version beside the shipped one, in one run).

use criterion::{criterion_group, criterion_main, Criterion};
use ecg_serve::engine::{available_cpus, Provider, Runtime, SharedThreads};
use ecg_serve::model::{model_inputs, LeadRequest, ModelCard, ModelKind, Models, Rows};
use ecg_serve::service::heartbeats::HeartbeatRows;
use ecg_serve::service::run_batches;
use ecg_serve::signal::heartbeat::heartbeat_rows;
use ecg_serve::signal::qrs::detect_r_peaks;
use ecg_serve::signal::wfdb::{parse_header, read_record, ReadOptions};
use std::hint::black_box;
use std::path::Path;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn models(c: &mut Criterion) {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = format!("{root}/tests/fixtures/mitdb");
    let hea = std::fs::read_to_string(format!("{dir}/100.hea")).unwrap();
    let dat = std::fs::read(format!("{dir}/100.dat")).unwrap();
    let header = parse_header("100.hea", &hea).unwrap();
    let rec = read_record(&header, |_| Some(&dat[..]), ReadOptions::default()).unwrap();
    let lead = LeadRequest {
        name: "MLII",
        fallback: false,
    };
    let runtime = Runtime::start(Some(SharedThreads {
        threads: available_cpus(),
        spinning: false,
    }))
    .unwrap();
    let mut g = c.benchmark_group("models_record_100");
    g.sample_size(10);
    let names = std::env::var("BENCH_MODELS")
        .unwrap_or_else(|_| "ecg-segment,ecg-beat,ecg-beat-net,ecg-heartbeat".into());
    for name in names.split(',') {
        let model = if name.contains('/') {
            Path::new(name).to_path_buf()
        } else {
            Path::new(root).join("models").join(format!("{name}.onnx"))
        };
        let (card, bytes) = ModelCard::open(&model).unwrap();
        let label = format!("{name}-{}", card.version);
        let models = match &card.kind {
            ModelKind::Segment(s) => Models {
                segment: Some(&s.preprocessing),
                beat: None,
            },
            ModelKind::Beat(b) => Models {
                segment: None,
                beat: Some(&b.preprocessing),
            },
            ModelKind::Heartbeat(_) => Models {
                segment: None,
                beat: None,
            },
        };
        let rows: Box<dyn Rows> = if let ModelKind::Heartbeat(_) = card.kind {
            // Record 100 as heartbeat rows of its detected beats (what an
            // upload of rows holds; the server runs them as they come).
            let x = &rec.leads[0].samples;
            let make = || {
                let peaks = detect_r_peaks(x, rec.sampling_rate);
                heartbeat_rows(x, rec.sampling_rate, &peaks).unwrap()
            };
            g.bench_function(format!("{label}/rows"), |b| b.iter(|| black_box(make())));
            let values = make().into_iter().flat_map(|r| r.samples).collect();
            Box::new(HeartbeatRows(values))
        } else {
            g.bench_function(format!("{label}/inputs"), |b| {
                b.iter(|| model_inputs(black_box(&rec), lead, models).unwrap())
            });
            let inputs = model_inputs(&rec, lead, models).unwrap();
            match (inputs.segment, inputs.beat) {
                (Some(s), _) => Box::new(s),
                (_, Some(b)) => Box::new(b),
                _ => unreachable!("one model's inputs were asked for"),
            }
        };
        let tail = card.kind.input_shape();
        let mut session = runtime.shared_session(&bytes, Provider::Cpu).unwrap();
        let batch = match card.kind {
            ModelKind::Segment(_) => SEGMENT_BATCH,
            ModelKind::Beat(_) | ModelKind::Heartbeat(_) => BEAT_BATCH,
        };
        g.bench_function(format!("{label}/inference"), |b| {
            b.iter(|| black_box(run_batches(&mut session, &*rows, &tail, batch).unwrap()))
        });
        if matches!(card.kind, ModelKind::Segment(_)) {
            for batch in [4, 8, 16, 32, 64, 128] {
                g.bench_function(format!("segment_batch/{batch}"), |b| {
                    b.iter(|| black_box(run_batches(&mut session, &*rows, &tail, batch).unwrap()))
                });
            }
        }
    }
    g.finish();
}

/// The server's default batches (`--max-batch`, and 16x that for beats).
const SEGMENT_BATCH: usize = 16;
const BEAT_BATCH: usize = 256;

criterion_group!(benches, models);
criterion_main!(benches);
