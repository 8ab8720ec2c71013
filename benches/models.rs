//! CPU time of the models on record 100 (30 min, 361 segment windows, 2,273
//! beats): each model's inputs (`model_inputs`: R peaks, filter, windows and
//! features) and its inference through ONNX Runtime (one session, one intra-op
//! thread, batches of 256), for the shipped `ecg-segment` and `ecg-beat` and the
//! 1.0.0 beat network `ecg-beat-net`. Divide the beat rows by 2,273 for the time
//! per beat. Needs ONNX Runtime (`ORT_DYLIB_PATH`, as `scripts/fetch-ort.sh` prints).

use criterion::{criterion_group, criterion_main, Criterion};
use ecg_serve::engine::{Provider, Runtime};
use ecg_serve::model::{model_inputs, LeadRequest, ModelCard, ModelKind, Models};
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
    let mut g = c.benchmark_group("models_record_100");
    g.sample_size(10);
    for name in ["ecg-segment", "ecg-beat", "ecg-beat-net"] {
        let model = Path::new(root).join("models").join(format!("{name}.onnx"));
        let (card, bytes) = ModelCard::open(&model).unwrap();
        let models = match &card.kind {
            ModelKind::Segment(s) => Models {
                segment: Some(&s.preprocessing),
                beat: None,
            },
            ModelKind::Beat(b) => Models {
                segment: None,
                beat: Some(&b.preprocessing),
            },
        };
        let label = format!("{name}-{}", card.version);
        g.bench_function(format!("{label}/inputs"), |b| {
            b.iter(|| model_inputs(black_box(&rec), lead, models).unwrap())
        });
        let inputs = model_inputs(&rec, lead, models).unwrap();
        let (windows, features, n) = match (inputs.segment, inputs.beat) {
            (Some(s), _) => {
                let n = s.starts.len();
                (s.windows, s.features, n)
            }
            (_, Some(b)) => (b.windows, b.features, inputs.peaks.len()),
            _ => unreachable!("one model's inputs were asked for"),
        };
        let tail = card.kind.input_shape();
        let (per, width) = (tail[0] * tail[1], card.kind.feature_width());
        let mut session = Runtime::get()
            .unwrap()
            .session(&bytes, 1, Provider::Cpu)
            .unwrap();
        g.bench_function(format!("{label}/inference"), |b| {
            b.iter(|| {
                for start in (0..n).step_by(256) {
                    let k = 256.min(n - start);
                    let input = &windows
                        [(start * per).min(windows.len())..((start + k) * per).min(windows.len())];
                    let features = &features[start * width..(start + k) * width];
                    black_box(session.run(input, k, &tail, features).unwrap());
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, models);
criterion_main!(benches);
